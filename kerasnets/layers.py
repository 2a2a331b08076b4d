"""Layers and small block helpers shared by the model families.

Backend-agnostic: `keras.layers` and `keras.ops` only (DESIGN principle 12).
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = [
    "channel_axis",
    "conv_bn_act",
    "LocalResponseNormalization",
    "ChannelZeroPad",
]


def channel_axis() -> int:
    """The channel axis of a 4D image tensor in the current data format."""
    return -1 if keras.config.image_data_format() == "channels_last" else 1


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
    kernel_initializer="he_normal",
):
    """Convolution, optional BatchNormalization, optional activation.

    Layers are named ``{name}_conv``, ``{name}_bn``, ``{name}_{activation}`` and,
    with explicit padding, ``{name}_pad``.

    Args:
        padding: ``"same"`` (only where ``strides == 1``, where it is symmetric for
            odd kernels), ``"valid"``, or an int: explicit symmetric zero padding
            (``ZeroPadding2D``) before a ``"valid"`` convolution. TensorFlow's
            ``"same"`` pads a stride-2 layer asymmetrically; PyTorch and Caffe pad
            symmetrically (DESIGN principle 8).
        use_bias: default: no bias when BatchNormalization follows.
        Family-wide settings (BatchNorm epsilon and momentum, initializer) are fixed
        with `functools.partial` in each model file.
    """
    if padding == "same" and strides != 1 and kernel_size != 1:
        raise ValueError(
            f"Use explicit symmetric padding for strided convolutions ({name}). "
            f"Received: padding='same', strides={strides}"
        )
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
        kernel_initializer=kernel_initializer,
        name=f"{name}_conv",
    )(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(
            axis=channel_axis(),
            epsilon=bn_epsilon,
            momentum=bn_momentum,
            scale=bn_scale,
            name=f"{name}_bn",
        )(x)
    if activation:
        x = keras.layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


@keras.saving.register_keras_serializable(package="kerasnets")
class LocalResponseNormalization(keras.layers.Layer):
    """Local Response Normalization across channels (Krizhevsky et al., 2012, §3.3).

    ``b[c] = a[c] / (k + alpha * sum(a[c']**2 for c' in window(c))) ** beta``

    where ``window(c)`` holds the ``size`` channels centred on ``c`` (clipped at
    the edges). The arguments are the paper's: ``size`` n, ``k``, ``alpha``,
    ``beta``; AlexNet used n=5, k=2, alpha=1e-4, beta=0.75.

    How the arguments map to other libraries:

    * ``tf.nn.local_response_normalization(depth_radius, bias, alpha, beta)``:
      ``depth_radius = (size - 1) // 2``, ``bias = k``, ``alpha = alpha``,
      ``beta = beta`` (TensorFlow's window is ``2 * depth_radius + 1`` channels
      and its alpha multiplies the plain sum, as in the paper).
    * PyTorch ``nn.LocalResponseNorm(size, alpha, beta, k)`` and Caffe's LRN
      divide alpha by n: pass ``alpha_paper = alpha_torch / size`` here, or set
      ``alpha_is_averaged=True`` to give PyTorch/Caffe's alpha directly.

    ``size`` must be odd so the window is centred (as in TensorFlow and the paper).
    Computed in float32 for stability under mixed precision.
    """

    def __init__(
        self, size=5, k=2.0, alpha=1e-4, beta=0.75, alpha_is_averaged=False, data_format=None, **kwargs
    ):
        super().__init__(**kwargs)
        if not isinstance(size, int) or size < 1 or size % 2 == 0:
            raise ValueError(f"size must be a positive odd integer. Received: size={size!r}")
        self.size = size
        self.k = float(k)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.alpha_is_averaged = bool(alpha_is_averaged)
        self.data_format = data_format or keras.config.image_data_format()

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        axis = -1 if self.data_format == "channels_last" else 1
        squared = ops.square(x)
        radius = (self.size - 1) // 2
        # Sum of squares over the channel window: pad the channel axis and add
        # `size` shifted slices (cheap for the small windows LRN uses).
        pad = [[0, 0]] * 4
        pad[axis] = [radius, radius]
        padded = ops.pad(squared, pad)
        channels = ops.shape(x)[axis]
        total = None
        for offset in range(self.size):
            window = (
                padded[..., offset : offset + channels]
                if axis == -1
                else padded[:, offset : offset + channels]
            )
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
        return 3 if self.data_format == "channels_last" else 1

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
