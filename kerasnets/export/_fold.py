"""Folding inference-mode BatchNormalization into the convolution before it.

At inference a BatchNormalization is a per-channel affine map,
``y = gamma * (x - mean) / sqrt(var + eps) + beta``; after a convolution it can be
merged into the convolution's kernel and bias:

    kernel' = kernel * s,    bias' = (bias - mean) * s + beta,   s = gamma / sqrt(var + eps)

so the exported graph runs one convolution (which TensorFlow fuses with its bias
and ReLU) instead of a convolution then two element-wise passes over the
activations. The result is the same function up to float32 rounding.
"""

from __future__ import annotations

import keras
import numpy as np

from kerasnets._keras_compat import inbound_nodes
from kerasnets.layers import channels_last

__all__ = ["fold_batch_norm", "foldable_pairs"]


def _single_call(layer):
    return len(inbound_nodes(layer)) == 1


def _channel_axis(conv):
    return 3 if channels_last(conv.data_format) else 1


def foldable_pairs(model) -> dict:
    """``{batch_norm_name: conv_name}`` for every BatchNormalization that can be folded.

    A pair qualifies when the BatchNormalization is called once, on the output of a
    `Conv2D` that is called once, has no activation, feeds nothing else, and the
    normalised axis is the convolution's channel axis.
    """
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or not _single_call(layer):
            continue
        parents = inbound_nodes(layer)[0].parent_nodes
        if len(parents) != 1:
            continue
        conv = parents[0].operation
        if (
            type(conv) is not keras.layers.Conv2D
            or not _single_call(conv)
            or len(conv._outbound_nodes) != 1
            or conv.get_config().get("activation") not in (None, "linear")
        ):
            continue
        axis = layer.axis if isinstance(layer.axis, int) else None
        if axis is None or axis % 4 != _channel_axis(conv):
            continue
        pairs[layer.name] = conv.name
    return pairs


def _folded_weights(conv, bn):
    kernel = np.asarray(keras.ops.convert_to_numpy(conv.kernel), np.float64)
    channels = kernel.shape[-1]
    bias = (
        np.asarray(keras.ops.convert_to_numpy(conv.bias), np.float64)
        if conv.use_bias
        else np.zeros(channels)
    )

    def value(weight, default):
        return np.asarray(keras.ops.convert_to_numpy(weight), np.float64) if weight is not None else default

    gamma = value(bn.gamma, np.ones(channels))
    beta = value(bn.beta, np.zeros(channels))
    mean = value(bn.moving_mean, None)
    var = value(bn.moving_variance, None)
    scale = gamma / np.sqrt(var + bn.epsilon)
    return kernel * scale, (bias - mean) * scale + beta


def fold_batch_norm(model):
    """A model computing the same function with Conv2D -> BatchNormalization pairs folded.

    The other layers are shared with ``model`` (not copied); each folded pair becomes
    one new `Conv2D` with a bias, under the convolution's name. Meant for inference
    and export: the folded model has no BatchNormalization to train.

    Args:
        model: a functional `keras.Model`.

    Returns:
        The folded `keras.Model` (``model`` itself when nothing can be folded).

    Example:

    >>> model = kerasnets.ResNet18(weights=None)
    >>> folded = kerasnets.export.fold_batch_norm(model)
    >>> any(isinstance(l, keras.layers.BatchNormalization) for l in folded.layers)
    False
    """
    pairs = foldable_pairs(model)
    if not pairs:
        return model
    convs = {conv: bn for bn, conv in pairs.items()}

    def clone_function(layer):
        if layer.name in convs:
            config = dict(layer.get_config(), use_bias=True)
            return layer.__class__.from_config(config)
        return layer  # shared, weights included

    def call_function(layer, *args, **kwargs):
        if layer.name in pairs:
            return args[0]  # the folded BatchNormalization: identity
        return layer(*args, **kwargs)

    folded = keras.models.clone_model(
        model, clone_function=clone_function, call_function=call_function
    )
    for conv_name, bn_name in convs.items():
        kernel, bias = _folded_weights(model.get_layer(conv_name), model.get_layer(bn_name))
        new_conv = folded.get_layer(conv_name)
        new_conv.kernel.assign(kernel.astype(new_conv.kernel.dtype))
        new_conv.bias.assign(bias.astype(new_conv.bias.dtype))
    return folded
