"""Groups a graph's layer calls into the papers' blocks and describes each block.

Grouping reads the deterministic hierarchical layer names (docs/architecture.md, Names):
the *unit* of a layer is its name up to the first ``_``-separated token that
holds a digit (``conv1_conv`` -> ``conv1``, ``inception_3a_b1_conv`` ->
``inception_3a``, ``block2_conv1`` -> ``block2``, ``aux1_fc`` -> ``aux1``); a
name without a digit is its own unit (``avg_pool``, ``predictions``). A unit
whose next token is ``block<N>`` or ``unit<N>`` is a stage of blocks
(``conv2_block1_1_conv`` -> stage ``conv2``, block ``conv2_block1``).

Everything else (type, patch size, depth, the Inception width columns) is read
from the layers of the block and the shapes of the graph, not from the model
files' tables, so it follows ``width_multiplier`` and any other option.
"""

from __future__ import annotations

import re

import keras
from kerasnets.layers import spatial_shape

__all__ = ["split_name", "describe", "inception_widths", "patch_of"]

_DIGIT = re.compile(r"\d")
_BLOCK = re.compile(r"(block|unit)\d+")


def split_name(name: str):
    """``(unit, block_or_None)`` of a layer name; see the module docstring."""
    tokens = name.split("_")
    for i, token in enumerate(tokens):
        if _DIGIT.search(token):
            unit = "_".join(tokens[: i + 1])
            rest = tokens[i + 1 :]
            if rest and _BLOCK.fullmatch(rest[0]):
                return unit, f"{unit}_{rest[0]}"
            return unit, None
    return name, None


# -- layer kinds ------------------------------------------------------------

_CONV = (
    keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
    keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D, keras.layers.SeparableConv2D,
    keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose,
)
_POOL = {
    keras.layers.MaxPooling1D: "max pool", keras.layers.MaxPooling2D: "max pool",
    keras.layers.MaxPooling3D: "max pool", keras.layers.AveragePooling1D: "avg pool",
    keras.layers.AveragePooling2D: "avg pool", keras.layers.AveragePooling3D: "avg pool",
}
_GLOBAL_POOL = {
    keras.layers.GlobalAveragePooling1D: "avg pool", keras.layers.GlobalAveragePooling2D: "avg pool",
    keras.layers.GlobalAveragePooling3D: "avg pool", keras.layers.GlobalMaxPooling1D: "max pool",
    keras.layers.GlobalMaxPooling2D: "max pool", keras.layers.GlobalMaxPooling3D: "max pool",
}
# Layers that never make a row's type on their own when a unit has others.
_QUIET = (
    keras.layers.BatchNormalization, keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D, keras.layers.ReLU, keras.layers.Identity,
)


def is_quiet(layer):
    """Bookkeeping layers that never make a row of their own (padding, BN, identity)."""
    return isinstance(layer, _QUIET)


def is_conv(layer):
    return isinstance(layer, _CONV)


def is_pool(layer):
    return isinstance(layer, tuple(_POOL))


def kind(layer, input_shape=None):
    """The paper's word for a layer ("convolution", "max pool", "linear", ...)."""
    if is_conv(layer):
        return "convolution"
    if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)):
        activation = layer.get_config().get("activation")
        return "linear + softmax" if activation == "softmax" else "linear"
    for cls, name in {**_POOL, **_GLOBAL_POOL}.items():
        if isinstance(layer, cls):
            return name
    if isinstance(layer, keras.layers.Dropout):
        return f"dropout ({layer.rate:.0%})"
    if isinstance(layer, keras.layers.Activation):
        return _activation_name(layer)
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    if isinstance(layer, keras.layers.Concatenate):
        return "concatenate"
    if isinstance(layer, keras.layers.Add):
        return "add"
    if type(layer).__name__ == "LocalResponseNormalization":
        return "LRN"
    if isinstance(layer, keras.layers.BatchNormalization):
        return "batch norm"
    if isinstance(layer, keras.layers.Flatten):
        return "flatten"
    return type(layer).__name__


def _activation_name(layer):
    activation = layer.get_config().get("activation")
    return activation if isinstance(activation, str) else "activation"


def _window(config, key):
    size = config.get(key)
    return tuple(size) if isinstance(size, (tuple, list)) else (size,)


def _times(sizes):
    return "×".join(str(s) for s in sizes)


def patch_of(layer, input_shape=None):
    """``"7×7/2"`` for a convolution or pool, the map size for a global pool, else ``""``."""
    config = layer.get_config()
    if is_conv(layer):
        kernel, strides = _window(config, "kernel_size"), _window(config, "strides")
    elif is_pool(layer):
        kernel, strides = _window(config, "pool_size"), _window(config, "strides")
    elif isinstance(layer, tuple(_GLOBAL_POOL)) and input_shape is not None:
        spatial = spatial_shape(input_shape[1:], config.get("data_format"))
        if any(d is None for d in spatial):
            return "global"
        return f"{_times(spatial)}/1"
    else:
        return ""
    stride = strides[0] if len(set(strides)) == 1 else _times(strides)
    return f"{_times(kernel)}/{stride}"


# -- describing a block -----------------------------------------------------


def _longest_path(nodes, members, end):
    """Convolutions and pools on the longest weighted path inside ``members`` ending at ``end``."""
    path, i = [], end
    while i is not None and i in members:
        layer = nodes[i].layer
        if nodes[i].weighted or is_pool(layer) or isinstance(layer, tuple(_GLOBAL_POOL)):
            path.append(i)
        inside = [p for p in nodes[i].parents if p in members]
        i = max(inside, key=lambda p: (nodes[p].depth, p)) if inside else None
    return path[::-1]


def _compress(items):
    """``["3×3/1", "3×3/1", "1×1/1"]`` -> ``"3×3/1 ×2, 1×1/1"``."""
    out = []
    for item in items:
        if out and out[-1][0] == item:
            out[-1][1] += 1
        else:
            out.append([item, 1])
    return ", ".join(f"{item} ×{n}" if n > 1 else item for item, n in out)


def describe(nodes, members: list, *, is_block=False, is_head=False):
    """``(type, patch)`` of a unit or block given the indices of its layer calls."""
    member_set = set(members)
    layers = [nodes[i].layer for i in members]
    end = max(members)
    if any(isinstance(l, keras.layers.Concatenate) for l in layers):
        return "inception", ""
    path = _longest_path(nodes, member_set, end)
    patches = [patch_of(nodes[i].layer, nodes[i].input_shapes[0]) for i in path]
    patches = [p for p in patches if p]
    if is_head:
        return "auxiliary classifier", _compress(patches)
    if is_block or any(isinstance(l, keras.layers.Add) for l in layers):
        kind_ = "residual block" if any(isinstance(l, keras.layers.Add) for l in layers) else "plain block"
        return kind_, _compress(patches)
    kinds = []
    for i in members:
        layer = nodes[i].layer
        if is_quiet(layer) or (
            isinstance(layer, keras.layers.Activation) and len(members) > 1
            and _activation_name(layer) != "softmax"
        ):
            continue
        kinds.append(kind(layer))
    if not kinds:
        kinds = [kind(layers[-1])]
    return _compress(kinds), _compress(patches)


def _square(kernel):
    return len(set(kernel)) == 1


def _branch_chain(nodes, members, start):
    """Convolutions and pools from the module input up to ``start`` (None if the branch forks)."""
    chain, i = [], start
    while i in members:
        layer = nodes[i].layer
        if is_conv(layer) or is_pool(layer):
            chain.append(layer)
        inside = [p for p in nodes[i].parents if p in members]
        if len(inside) > 1:
            return None
        i = inside[0] if inside else None
    return chain[::-1]


def _label_chain(chain):
    """The paper's width columns for one branch, or None if it has no paper name."""
    kinds = ["pool" if is_pool(l) else "conv" for l in chain]
    convs = [l for l in chain if is_conv(l)]
    kernels = [tuple(l.get_config()["kernel_size"]) for l in convs]
    if not all(_square(k) for k in kernels):
        return None
    k = [f"{kk[0]}×{kk[0]}" for kk in kernels]
    filters = [l.get_config().get("filters") for l in convs]
    if kinds == ["conv"]:
        return {f"#{k[0]}": filters[0]}
    if kinds == ["pool", "conv"] and k[0] == "1×1":
        return {"pool proj": filters[0]}
    if kinds == ["conv", "conv"] and k[0] == "1×1":
        return {f"#{k[1]} reduce": filters[0], f"#{k[1]}": filters[1]}
    if kinds == ["conv", "conv", "conv"] and k[0] == "1×1" and k[1] == k[2] and filters[1] == filters[2]:
        return {f"double #{k[1]} reduce": filters[0], f"double #{k[1]}": filters[1]}
    return None


# Column order of GoogLeNet's Table 1 (and Inception v2's double 3×3 columns).
WIDTH_ORDER = [
    "#1×1", "#3×3 reduce", "#3×3", "double #3×3 reduce", "double #3×3",
    "#5×5 reduce", "#5×5", "pool proj",
]


def inception_widths(nodes, members: list):
    """The paper's width columns of an Inception module (or of a 1×1-reduce + conv unit).

    Read from the filters of the branch convolutions: each path from the
    module's input to its concatenation is labelled by its shape (``1×1``;
    ``1×1 -> k×k``: ``#k×k reduce``, ``#k×k``; ``pool -> 1×1``: ``pool proj``;
    ``1×1 -> 3×3 -> 3×3``: ``double #3×3``). A module with a branch that has no
    paper name (factorised 1×7 convolutions, branches that fork) gets no columns.
    """
    member_set = set(members)
    end = max(members)
    layer = nodes[end].layer
    if isinstance(layer, keras.layers.Concatenate):
        branches = [p for p in nodes[end].parents if p in member_set]
        if len(branches) != len(nodes[end].parents):
            return {}  # a branch passes the input through
    elif all(not isinstance(nodes[i].layer, (keras.layers.Add, keras.layers.Concatenate)) for i in members):
        branches = [end]
    else:
        return {}
    widths = {}
    for start in branches:
        chain = _branch_chain(nodes, member_set, start)
        labels = _label_chain(chain) if chain else None
        if labels is None or any(key in widths for key in labels):
            return {}
        widths.update(labels)
    if not isinstance(layer, keras.layers.Concatenate) and not any("reduce" in k for k in widths):
        return {}  # a plain convolution has no width columns
    order = {name: i for i, name in enumerate(WIDTH_ORDER)}
    return dict(sorted(widths.items(), key=lambda kv: order.get(kv[0], len(order))))
