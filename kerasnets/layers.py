"""Layers and small block helpers shared by the model families.

Backend-agnostic: `keras.layers` and `keras.ops` only (docs/architecture.md, Layers).
"""

from __future__ import annotations

import keras
from keras import ops

from kerasnets._validate import check_choice, fail, is_int, is_number

__all__ = [
    "channels_last",
    "channel_axis",
    "image_shape",
    "spatial_shape",
    "channels_of",
    "he_normal",
    "conv_bn_act",
    "LocalResponseNormalization",
    "ChannelZeroPad",
]


def channels_last(data_format=None) -> bool:
    """Whether images are laid out ``(height, width, channels)``: ``data_format``, or
    ``keras.config.image_data_format()`` when it is None. Every layout test of kerasnets
    asks this function."""
    return (data_format or keras.config.image_data_format()) == "channels_last"


def channel_axis() -> int:
    """The channel axis of a 4D image tensor in the current data format."""
    return -1 if channels_last() else 1


def image_shape(size, channels=3) -> tuple:
    """The shape of one image (no batch axis) in the current data format.

    Args:
        size: ``(height, width)``, or one integer for a square.
        channels: the number of channels.
    """
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    return (height, width, channels) if channels_last() else (channels, height, width)


def spatial_shape(shape, data_format=None) -> tuple:
    """The spatial dimensions of an image ``shape`` without its batch axis (``(H, W)`` of
    ``(H, W, C)`` or ``(C, H, W)``) in ``data_format`` (default Keras's)."""
    shape = tuple(shape)
    return shape[:-1] if channels_last(data_format) else shape[1:]


def channels_of(shape, data_format=None):
    """The number of channels of an image ``shape`` without its batch axis."""
    return shape[-1] if channels_last(data_format) else shape[0]


def he_normal():
    """He et al. (2015)'s initializer as written: a Gaussian of variance 2 / fan_in.

    Keras's ``"he_normal"`` draws from a *truncated* normal (rescaled to the same
    variance), which TensorFlow samples slower on CPU (benchmarks/README.md, "Measurements
    behind the code's defaults").
    """
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_in", distribution="untruncated_normal")


def conv_bn_act(
    x,
    filters,
    kernel_size,
    *,
    name,
    strides=1,
    padding="same",
    batch_norm=True,
    activation="relu",
    use_bias=None,
    groups=1,
    bn_epsilon=1e-5,
    bn_momentum=0.9,
    bn_scale=True,
    bn_gamma_initializer="ones",
    kernel_initializer=None,
):
    """Convolution, optional BatchNormalization, optional activation.

    Layers are named ``{name}_conv``, ``{name}_bn``, ``{name}_{activation}`` and,
    with explicit padding, ``{name}_pad``.

    Args:
        padding: ``"same"`` (only where ``strides == 1``, where it is symmetric for
            odd kernels), ``"valid"``, or an int: explicit symmetric zero padding
            (``ZeroPadding2D``) before a ``"valid"`` convolution. TensorFlow's
            ``"same"`` pads a stride-2 layer asymmetrically; PyTorch and Caffe pad
            symmetrically (docs/architecture.md, Padding).
        use_bias: default: no bias when BatchNormalization follows.
        kernel_initializer: default `he_normal` (the untruncated Gaussian of the
            ResNet paper's initialisation).
        bn_gamma_initializer: the BatchNormalization scale's initializer (``"zeros"``
            for a zero-initialised residual branch).
        Family-wide settings (BatchNorm epsilon and momentum, initializer) are fixed
        with `functools.partial` in each model file.
    """
    if padding == "same" and strides != 1 and kernel_size != 1:
        fail("padding", f"explicit and symmetric (an integer) for the strided convolution {name}",
             padding, received=f"padding='same', strides={strides}")
    if isinstance(padding, int):
        if padding:
            x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
        padding = "valid"
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        groups=groups,
        use_bias=(not batch_norm) if use_bias is None else use_bias,
        kernel_initializer=he_normal() if kernel_initializer is None else kernel_initializer,
        name=f"{name}_conv",
    )(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(
            axis=channel_axis(),
            epsilon=bn_epsilon,
            momentum=bn_momentum,
            scale=bn_scale,
            gamma_initializer=bn_gamma_initializer,
            name=f"{name}_bn",
        )(x)
    if activation:
        x = keras.layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


@keras.saving.register_keras_serializable(package="kerasnets")
class LocalResponseNormalization(keras.layers.Layer):
    """Local Response Normalization across channels (Krizhevsky et al., 2012, §3.3).

    ``b[c] = a[c] / (k + alpha * sum(a[j]**2 for j in window(c))) ** beta``

    where ``window(c)`` holds the ``size`` channels centred on ``c``, clipped at
    the edges (channels ``max(0, c - size // 2)`` to ``min(C - 1, c + size // 2)``).
    The arguments are the paper's: ``size`` n, ``k``, ``alpha``, ``beta``;
    AlexNet (and VGG's A-LRN) use n=5, k=2, alpha=1e-4, beta=0.75.

    How the arguments map to other libraries (the paper's alpha multiplies the
    plain sum of squares; PyTorch and Caffe's multiplies their mean over n):

    * ``tf.nn.local_response_normalization(x, depth_radius, bias, alpha, beta)``
      computes the same function with ``depth_radius = (size - 1) // 2``,
      ``bias = k``, ``alpha = alpha`` and ``beta = beta``.
    * PyTorch ``nn.LocalResponseNorm(size, alpha, beta, k)`` and Caffe's
      ``LRN(local_size, alpha, beta, k)`` (``ACROSS_CHANNELS``) compute it with
      their ``alpha = size * alpha``. To use their value as it is, pass it
      with ``alpha_is_averaged=True``: this layer then divides it by ``size``.
      (Caffe's reference AlexNet, ``local_size=5, alpha=1e-4, k=1``, is
      ``LocalResponseNormalization(5, k=1, alpha=1e-4, alpha_is_averaged=True)``.)

    Args:
        size: the number of channels in the window, n; odd, so that the window
            is centred on its channel (TensorFlow can express no other).
        k: the additive constant (TensorFlow's ``bias``).
        alpha: the scale of the sum of squares (see ``alpha_is_averaged``).
        beta: the exponent.
        alpha_is_averaged: ``alpha`` is PyTorch/Caffe's, which scales the mean
            of the squares over the window (the sum divided by ``size``).
        data_format: ``"channels_last"`` or ``"channels_first"``; default
            ``keras.config.image_data_format()``. Inputs of any rank >= 2 are
            normalised along that channel axis (the last or axis 1).

    Computed in float32 whatever the layer's dtype policy (mixed precision
    would overflow the squares in float16). Uses `keras.ops` only: it runs under
    the TensorFlow, JAX and PyTorch backends.

    Example:

    >>> x = keras.random.normal((2, 55, 55, 96))
    >>> y = LocalResponseNormalization(size=5, k=2.0, alpha=1e-4, beta=0.75)(x)
    """

    def __init__(
        self, size=5, k=2.0, alpha=1e-4, beta=0.75, alpha_is_averaged=False, data_format=None, **kwargs
    ):
        super().__init__(**kwargs)
        if not is_int(size) or size < 1 or size % 2 == 0:
            fail("size", "a positive odd integer", size)
        for arg, value in (("k", k), ("alpha", alpha), ("beta", beta)):
            if not is_number(value):
                fail(arg, "a finite number", value)
        data_format = data_format or keras.config.image_data_format()
        check_choice("data_format", data_format, ("channels_last", "channels_first"))
        self.size = int(size)
        self.k = float(k)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.alpha_is_averaged = bool(alpha_is_averaged)
        self.data_format = data_format

    def build(self, input_shape):
        if len(input_shape) < 2:
            fail("input_shape", "of rank 2 or more (with a channel axis)", input_shape, context=self.name)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        rank = len(x.shape)
        axis = rank - 1 if channels_last(self.data_format) else 1
        channels = x.shape[axis]
        if channels is None:
            channels = ops.shape(x)[axis]
        # Sum of squares over the window: zero-pad the channel axis by size // 2
        # on both sides and add the `size` shifted slices of length `channels`
        # (cheap for the small windows LRN uses, and exact: no cumulative sums).
        radius = self.size // 2
        pad = [[0, 0]] * rank
        pad[axis] = [radius, radius]
        padded = ops.pad(ops.square(x), pad)
        total = None
        for offset in range(self.size):
            index = [slice(None)] * rank
            index[axis] = slice(offset, offset + channels)
            window = padded[tuple(index)]
            total = window if total is None else total + window
        alpha = self.alpha / self.size if self.alpha_is_averaged else self.alpha
        out = x / ops.power(self.k + alpha * total, self.beta)
        return ops.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            size=self.size,
            k=self.k,
            alpha=self.alpha,
            beta=self.beta,
            alpha_is_averaged=self.alpha_is_averaged,
            data_format=self.data_format,
        )
        return config


@keras.saving.register_keras_serializable(package="kerasnets")
class ChannelZeroPad(keras.layers.Layer):
    """Pads the channel axis with zeros up to ``channels`` (ResNet shortcut option A).

    He et al. (2015), §3.3 option (A): "the shortcut still performs identity
    mapping, with extra zero entries padded for increasing dimensions". The
    CIFAR networks of §4.2 use it. The extra channels are split evenly before
    and after the input's, as in the authors' Torch code.
    """

    def __init__(self, channels, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.data_format = data_format or keras.config.image_data_format()

    def _axis(self):
        return 3 if channels_last(self.data_format) else 1

    def call(self, inputs):
        axis = self._axis()
        extra = self.channels - inputs.shape[axis]
        if extra <= 0:
            return inputs
        pad = [[0, 0]] * 4
        pad[axis] = [extra // 2, extra - extra // 2]
        return ops.pad(inputs, pad)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        shape[self._axis()] = max(self.channels, shape[self._axis()])
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, data_format=self.data_format)
        return config
