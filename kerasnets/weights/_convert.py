"""From a source's arrays to kerasnets layers, exact to float32 rounding.

A converter takes the built model and the file's contents and returns
``{layer_name: [arrays in layer.get_weights() order]}``; nothing is assigned here.
`assign` then checks every array of every layer against the model before setting
any, so a wrong or partial file never leaves a model half-loaded.

Conventions: PyTorch (and Caffe) convolutions are ``(out, in, kh, kw)``, Keras ``(kh, kw, in,
out)``; PyTorch ``Linear`` is ``(out, in)``; PyTorch flattens ``(C, H, W)`` where a
channels-last Keras ``Flatten`` flattens ``(H, W, C)``, so the first
fully-connected layer after a flatten has its input rows permuted.
"""

from __future__ import annotations

import re

import keras
import numpy as np

from kerasnets._keras_compat import inbound_nodes
from kerasnets.layers import LocalResponseNormalization, channels_last, channels_of

__all__ = ["CONVERTERS", "assign", "weight_layers"]


class ConversionError(ValueError):
    """The file's contents do not fit the model."""


def weight_layers(model):
    return [layer for layer in model.layers if layer.weights]


def _f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


# ---------------------------------------------------------------------------
# keras.applications legacy files
# ---------------------------------------------------------------------------

def keras_by_name(model, layers, *, flip_first=None):
    """Same layer names and weight order (keras.applications VGG16/VGG19).

    ``flip_first``: a layer whose kernel's input channels are reversed (BGR-trained
    weights fed RGB pixels: exact, the channel order is all that changes)."""
    source = dict(layers)
    out = {}
    for layer in weight_layers(model):
        if layer.name in source:
            arrays = [_f32(a) for a in source[layer.name]]
            if layer.name == flip_first:
                arrays[0] = _f32(arrays[0][:, :, ::-1, :])
            out[layer.name] = arrays
    return out


def keras_resnet(model, layers):
    """keras.applications ResNet v1 -> kerasnets ResNet (``downsample_on="1x1"``).

    Names are the same. Every keras.applications convolution has a bias before its
    BatchNorm; kerasnets' have none, so each bias is folded into the BatchNorm's
    moving mean (``BN(Wx + b)`` with mean ``mu`` is ``BN(Wx)`` with mean ``mu - b``).
    keras.applications' BN epsilon is 1.001e-5, kerasnets' is the layer's epsilon
    (1e-5): the variance takes the difference. ``conv1_conv`` is flipped from BGR to
    RGB input channels.
    """
    source = dict(layers)
    if "probs" in source and "predictions" not in source:  # keras-applications' old name
        source["predictions"] = source.pop("probs")
    out = {}
    for layer in weight_layers(model):
        name = layer.name
        if name not in source:
            continue
        arrays = source[name]
        if name.endswith("_conv"):
            kernel = arrays[0]
            if name == "conv1_conv":
                kernel = kernel[:, :, ::-1, :]
            out[name] = [_f32(kernel)]
        elif name.endswith("_bn"):
            gamma, beta, mean, var = (np.asarray(a, np.float64) for a in arrays)
            conv = source.get(name[: -len("_bn")] + "_conv", [])
            bias = np.asarray(conv[1], np.float64) if len(conv) > 1 else 0.0
            eps_shift = 1.001e-5 - float(layer.epsilon)
            out[name] = [_f32(gamma), _f32(beta), _f32(mean - bias), _f32(var + eps_shift)]
        else:
            out[name] = [_f32(a) for a in arrays]
    return out


def keras_by_order(model, layers):
    """By position (keras.applications InceptionV3, whose file has automatic names).

    The model's weight layers and the file's are paired in order; a model without
    its top may take the file with it (the trailing top layers are left out)."""
    targets = weight_layers(model)
    if len(layers) < len(targets):
        raise ConversionError(
            f"The file has {len(layers)} layers with weights, {model.name} needs {len(targets)}."
        )
    return {t.name: [_f32(a) for a in arrays] for t, (_, arrays) in zip(targets, layers)}


# ---------------------------------------------------------------------------
# torchvision / timm state dicts
# ---------------------------------------------------------------------------

def _conv(state, key):
    out = [_f32(state[f"{key}.weight"].transpose(2, 3, 1, 0))]
    if f"{key}.bias" in state:
        out.append(_f32(state[f"{key}.bias"]))
    return out


def _bn(state, key):
    return [_f32(state[f"{key}.{p}"]) for p in ("weight", "bias", "running_mean", "running_var")]


def _dense(state, key):
    return [_f32(state[f"{key}.weight"].T), _f32(state[f"{key}.bias"])]


def _flatten_dense(state, key, layer):
    """The first fully-connected layer after a flatten: rows from (C, H, W) to (H, W, C)."""
    w = np.asarray(state[f"{key}.weight"])
    units = w.shape[0]
    if w.ndim == 4:  # timm's VGG keeps fc1 as a 7x7 convolution
        channels, h, wd = w.shape[1:]
    else:
        inputs = layer.kernel.shape[0]
        channels = _flatten_channels(layer)
        h = wd = int(round((inputs / channels) ** 0.5))
        w = w.reshape(units, channels, h, wd)
    if not channels_last():
        kernel = w.reshape(units, -1).T
    else:
        kernel = w.transpose(2, 3, 1, 0).reshape(h * wd * channels, units)
    return [_f32(kernel), _f32(state[f"{key}.bias"])]


def _flatten_channels(dense_layer):
    flatten = inbound_nodes(dense_layer)[0].parent_nodes[0].operation
    while not isinstance(flatten, keras.layers.Flatten):  # a dropout may sit in between
        flatten = inbound_nodes(flatten)[0].parent_nodes[0].operation
    shape = flatten.input.shape
    return channels_of(shape[1:])


def _vector_dense(state, key):
    w = np.asarray(state[f"{key}.weight"])
    return [_f32(w.reshape(w.shape[0], -1).T), _f32(state[f"{key}.bias"])]


_RESNET_NAME = re.compile(r"conv(\d)_block(\d+)_(\d)_(conv|bn)$")


def torchvision_resnet(model, state):
    """torchvision/timm ``resnet*`` -> kerasnets ResNet (v1.5: ``downsample_on="3x3"``)."""
    out = {}
    for layer in weight_layers(model):
        name = layer.name
        if name == "conv1_conv":
            out[name] = _conv(state, "conv1")
        elif name == "conv1_bn":
            out[name] = _bn(state, "bn1")
        elif name == "predictions":
            out[name] = _dense(state, "fc")
        else:
            match = _RESNET_NAME.match(name)
            if not match:
                continue
            stage, block, j, kind = match.groups()
            prefix = f"layer{int(stage) - 1}.{int(block) - 1}"
            key = f"{prefix}.downsample.{0 if kind == 'conv' else 1}" if j == "0" else f"{prefix}.{kind}{j}"
            out[name] = (_conv if kind == "conv" else _bn)(state, key)
    return out


_VGG_CONV = re.compile(r"block(\d)_conv(\d)$")


def torchvision_vgg(model, state):
    """torchvision ``vgg*`` / ``vgg*_bn`` (or timm's form of them) -> kerasnets VGG."""
    indices = sorted(
        int(k.split(".")[1]) for k, v in state.items()
        if k.startswith("features.") and k.endswith(".weight") and np.ndim(v) == 4
    )
    convs = [layer for layer in model.layers if _VGG_CONV.match(layer.name)]
    if len(convs) != len(indices):
        raise ConversionError(
            f"The file has {len(indices)} convolutions, {model.name} has {len(convs)}."
        )
    out = {}
    for layer, index in zip(convs, indices):
        out[layer.name] = _conv(state, f"features.{index}")
        if f"features.{index + 1}.running_mean" in state:
            out[f"{layer.name}_bn"] = _bn(state, f"features.{index + 1}")
    timm = "pre_logits.fc1.weight" in state
    keys = {"fc1": "pre_logits.fc1" if timm else "classifier.0",
            "fc2": "pre_logits.fc2" if timm else "classifier.3",
            "predictions": "head.fc" if timm else "classifier.6"}
    names = {layer.name: layer for layer in model.layers}
    if "fc1" in names:
        out["fc1"] = _flatten_dense(state, keys["fc1"], names["fc1"])
        out["fc2"] = _vector_dense(state, keys["fc2"])
    if "predictions" in names:
        out["predictions"] = _dense(state, keys["predictions"])
    return out


def torchvision_alexnet(model, state):
    """torchvision ``alexnet`` -> kerasnets ``AlexNet(variant="torchvision")``."""
    out = {f"conv{i}": _conv(state, f"features.{k}") for i, k in enumerate((0, 3, 6, 8, 10), start=1)}
    names = {layer.name: layer for layer in model.layers}
    if "fc6" in names:
        out["fc6"] = _flatten_dense(state, "classifier.1", names["fc6"])
        out["fc7"] = _dense(state, "classifier.4")
    if "predictions" in names:
        out["predictions"] = _dense(state, "classifier.6")
    return out


# ---------------------------------------------------------------------------
# Caffe (BVLC's model zoo), from `kerasnets.weights._caffe.state_dict`
# ---------------------------------------------------------------------------

# Caffe's blobs are PyTorch's layouts (convolution ``(out, in / group, kh, kw)``, whose
# groups split the channels into contiguous blocks as Keras' ``groups`` does;
# InnerProduct ``(out, in)``; Caffe flattens ``(C, H, W)``), so the helpers above apply.
_GOOGLENET_STEM = {"conv1_conv": "conv1/7x7_s2", "conv2_reduce_conv": "conv2/3x3_reduce",
                   "conv2_conv": "conv2/3x3", "predictions": "loss3/classifier"}
_GOOGLENET_BRANCH = re.compile(r"inception_(\d[a-e])_(b1|b3_reduce|b3|b5_reduce|b5|pool_proj)_conv$")
_GOOGLENET_BRANCHES = {"b1": "1x1", "b3_reduce": "3x3_reduce", "b3": "3x3", "b5_reduce": "5x5_reduce",
                       "b5": "5x5", "pool_proj": "pool_proj"}
_GOOGLENET_AUX = re.compile(r"(aux[12])_(proj_conv|fc|predictions)$")
_GOOGLENET_AUX_PARTS = {"proj_conv": "conv", "fc": "fc", "predictions": "classifier"}


def googlenet_caffe_name(name):
    """The BVLC GoogLeNet layer of a kerasnets GoogLeNet weight layer (``None``: none)."""
    if name in _GOOGLENET_STEM:
        return _GOOGLENET_STEM[name]
    match = _GOOGLENET_BRANCH.match(name)
    if match:
        return f"inception_{match[1]}/{_GOOGLENET_BRANCHES[match[2]]}"
    match = _GOOGLENET_AUX.match(name)
    if match:
        return f"loss{match[1][-1]}/{_GOOGLENET_AUX_PARTS[match[2]]}"
    return None


def _check_caffe_lrn(model):
    """Caffe's LRN scales the mean of the squares over its window (k is 1 in BVLC's models):
    a model built with other constants would take the weights and compute something else."""
    for layer in model.layers:
        if isinstance(layer, LocalResponseNormalization) and not (layer.alpha_is_averaged and layer.k == 1.0):
            raise ConversionError(
                f"{model.name}'s {layer.name} normalises with k={layer.k:g} and alpha={layer.alpha:g} on the sum "
                "of the squares; the Caffe models were trained with Caffe's LRN (k=1, alpha on their mean over "
                "the window): build AlexNet with lrn='caffe'."
            )


def _flip_input_channels(converted, name):
    """BGR-trained weights fed RGB pixels: the first convolution's input channels reversed."""
    kernel, *rest = converted[name]
    converted[name] = [_f32(kernel[:, :, ::-1, :]), *rest]


def caffe_googlenet(model, state, *, rgb=True):
    """BVLC GoogLeNet (``bvlc_googlenet.caffemodel``) -> kerasnets GoogLeNet.

    The auxiliary classifiers (``loss1/*``, ``loss2/*``) load when the model has them;
    ``aux1_fc`` and ``aux2_fc`` follow a flatten of the 4x4x128 map (rows permuted).
    ``rgb``: reverse ``conv1_conv``'s input channels (the file's are BGR)."""
    _check_caffe_lrn(model)
    names = {layer.name: layer for layer in weight_layers(model)}
    if any(n.startswith("aux") for n in names) and "loss1/fc.weight" not in state:
        raise ConversionError(
            "the file has no auxiliary classifiers (loss1/*, loss2/*): build the model with "
            "aux_classifiers=False (or include_top=False) to load it."
        )
    out = {}
    for name, layer in names.items():
        key = googlenet_caffe_name(name)
        if key is None:
            continue
        if name.endswith("_conv"):
            out[name] = _conv(state, key)
        elif name.endswith("_fc"):
            stored, needed = state[f"{key}.weight"].shape[1], layer.kernel.shape[0]
            if stored != needed:
                raise ConversionError(
                    f"{name} flattens {needed} values at this input size, the file's {key} {stored} "
                    "(4x4x128, at 224x224): build the model at 224x224, or with aux_classifiers=False."
                )
            out[name] = _flatten_dense(state, key, layer)
        else:
            out[name] = _dense(state, key)
    if rgb:
        _flip_input_channels(out, "conv1_conv")
    return out


def caffe_alexnet(model, state, *, rgb=True):
    """BVLC AlexNet (``bvlc_alexnet.caffemodel``) -> kerasnets ``AlexNet(lrn="caffe")``:
    the same names (``fc8`` is ``predictions``); ``fc6`` follows a flatten of the 6x6x256
    map (rows permuted). ``rgb``: reverse ``conv1``'s input channels (the file's are BGR)."""
    _check_caffe_lrn(model)
    names = {layer.name: layer for layer in weight_layers(model)}
    out = {f"conv{i}": _conv(state, f"conv{i}") for i in range(1, 6)}
    if "fc6" in names:
        out["fc6"] = _flatten_dense(state, "fc6", names["fc6"])
        out["fc7"] = _dense(state, "fc7")
    if "predictions" in names:
        out["predictions"] = _dense(state, "fc8")
    if rgb:
        _flip_input_channels(out, "conv1")
    return out


CONVERTERS = {
    "keras_resnet": keras_resnet,
    "keras_vgg": lambda model, layers: keras_by_name(model, layers, flip_first="block1_conv1"),
    "keras_by_order": keras_by_order,
    "torchvision_resnet": torchvision_resnet,
    "torchvision_vgg": torchvision_vgg,
    "torchvision_alexnet": torchvision_alexnet,
    "caffe_googlenet": caffe_googlenet,
    "caffe_alexnet": caffe_alexnet,
    # A .caffemodel loaded by path keeps its channels as stored (BGR), as a
    # keras.applications file does.
    "caffe_googlenet_bgr": lambda model, state: caffe_googlenet(model, state, rgb=False),
    "caffe_alexnet_bgr": lambda model, state: caffe_alexnet(model, state, rgb=False),
}


def convert(converter, model, contents, *, source):
    """Runs a converter; a missing key or a bad array becomes one clear error."""
    try:
        return CONVERTERS[converter](model, contents)
    except KeyError as error:
        raise ConversionError(
            f"{source} lacks {error} that {model.name} needs: it is not a file of this model."
        ) from None
    except (ValueError, IndexError) as error:
        if isinstance(error, ConversionError):
            raise ConversionError(f"{source}: {error}") from None
        raise ConversionError(f"{source} does not fit {model.name}: {error}") from None


def assign(model, converted, *, source, allow_extra=()):
    """Checks every array against the model, then sets them all (or none)."""
    problems = []
    plan = []
    for layer in weight_layers(model):
        expected = [tuple(w.shape) for w in layer.weights]
        arrays = converted.get(layer.name)
        if arrays is None:
            problems.append(f"no weights for layer {layer.name!r}")
            continue
        got = [tuple(np.shape(a)) for a in arrays]
        if got != expected:
            problems.append(f"{layer.name}: the file has shapes {got}, the model {expected}")
            continue
        if not all(np.all(np.isfinite(a)) for a in arrays):
            problems.append(f"{layer.name}: the file holds NaN or infinite values")
            continue
        plan.append((layer, arrays))
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ConversionError(
            f"{source} does not fit {model.name}: " + "; ".join(problems[:5]) + more
            + ". Nothing was loaded."
        )
    for layer, arrays in plan:
        layer.set_weights(arrays)
