"""Walks a functional model's graph and counts each call's parameters and multiply-adds.

Nothing here runs the model: every number comes from a layer's configuration
and the static shapes of the symbolic tensors it was called on.
"""

from __future__ import annotations

import dataclasses
import math
import keras

from kerasnets._keras_compat import inbound_nodes, keras_history
from kerasnets._validate import check_int, fail
from kerasnets.layers import channels_of, spatial_shape

__all__ = ["NodeStats", "walk", "layer_macs", "conv_macs", "COUNTED", "NOT_COUNTED"]

# What the multiply-add count covers, stated once (rendered under every table).
COUNTED = "convolutions (grouped, depthwise, separable, transposed) and dense layers"
NOT_COUNTED = (
    "biases, BatchNorm, activations, pooling, LRN, dropout, additions and concatenations"
)

# Variables of these layers that are running statistics rather than learnt weights.
_STATISTICS = {"moving_mean", "moving_variance"}


@dataclasses.dataclass
class NodeStats:
    """One call of one layer in the graph."""

    layer: object
    name: str
    parents: list  # indices of the NodeStats this call reads from
    input_shapes: list
    output_shape: tuple
    params: int  # learnable weights (statistics excluded); 0 for repeated calls
    stats: int  # BatchNorm moving statistics (non-learnable, in count_params())
    macs: int
    counted: bool  # whether MACs are modelled for this layer type
    weighted: bool  # a layer with a kernel (counts towards the paper's "depth")
    output_key: str = "main"
    depth: int = 0  # longest path from the input, in weighted layers (inclusive)


def _positions(shape, data_format):
    """Number of spatial positions (product of the spatial dims) of a batched shape."""
    spatial = spatial_shape(shape[1:], data_format)
    if any(d is None for d in spatial):
        return None
    return math.prod(spatial)


def _channels(shape, data_format):
    return channels_of(shape[1:], data_format)


def conv_macs(output_size, in_channels, filters, kernel_size, groups=1):
    """Multiply-adds of a convolution: ``positions x filters x (in_channels/groups) x kernel``.

    Args:
        output_size: the output's spatial size: an int (square) or a tuple (H, W, ...).
        in_channels: input channels.
        filters: output channels.
        kernel_size: an int (square) or a tuple.
        groups: grouped convolution (AlexNet's two-GPU layers, depthwise = in_channels).

    Example: the arithmetic that motivates the Inception module (Szegedy et al.
    2014, section 4). A 5x5 convolution from 192 to 32 channels on a 28x28 map:

    >>> conv_macs(28, 192, 32, 5)
    120422400

    With a 1x1 reduction to 16 channels first, about ten times less:

    >>> conv_macs(28, 192, 16, 1) + conv_macs(28, 16, 32, 5)
    12443648
    """
    dims = len(output_size) if isinstance(output_size, (tuple, list)) else 2
    out = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * dims
    kernel = kernel_size if isinstance(kernel_size, (tuple, list)) else (kernel_size,) * dims
    for value, label in ((in_channels, "in_channels"), (filters, "filters"), (groups, "groups")):
        check_int(label, value)
    if in_channels % groups:
        fail("in_channels", "divisible by groups", in_channels, received=f"in_channels={in_channels}, groups={groups}")
    return math.prod(out) * filters * (in_channels // groups) * math.prod(kernel)


def _einsum_macs(layer, in_shape, out_shape):
    # Every index letter of the equation is multiplied over once; the batch
    # letter (size None) counts as 1.
    equation = layer.get_config()["equation"]
    inputs, output = equation.split("->")
    lhs, rhs = inputs.split(",")
    kernel_shape = tuple(layer.kernel.shape)
    sizes = {}
    for letters, shape in ((lhs, in_shape), (rhs, kernel_shape), (output, out_shape)):
        if "." in letters:
            return None
        for letter, size in zip(letters, shape):
            if size is not None:
                sizes[letter] = size
    return math.prod(sizes.values())


def layer_macs(layer, input_shapes, output_shape):
    """Multiply-adds of one call, or ``None`` when the layer type is not modelled.

    Layer types without multiplications (pooling, BatchNorm, activations, ...)
    return 0; types with weights that this function does not know return None.
    """
    L = keras.layers
    config = layer.get_config()
    fmt = config.get("data_format")
    in_shape = tuple(input_shapes[0]) if input_shapes else ()
    out = _positions(output_shape, fmt) if len(output_shape) > 2 else 1

    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        cin = _channels(in_shape, fmt)
        mid = cin * config["depth_multiplier"]
        k = math.prod(config["kernel_size"])
        return None if out is None else out * mid * k + out * mid * config["filters"]
    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):
        cin = _channels(in_shape, fmt)
        k = math.prod(config["kernel_size"])
        return None if out is None else out * cin * config["depth_multiplier"] * k
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        positions = _positions(in_shape, fmt)
        cin = _channels(in_shape, fmt)
        k = math.prod(config["kernel_size"])
        return None if positions is None else positions * cin * config["filters"] * k
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        cin = _channels(in_shape, fmt)
        groups = config.get("groups", 1) or 1
        k = math.prod(config["kernel_size"])
        return None if out is None else out * config["filters"] * (cin // groups) * k
    if isinstance(layer, L.Dense):
        rows = math.prod(d for d in in_shape[1:-1]) if all(d is not None for d in in_shape[1:-1]) else None
        return None if rows is None else rows * in_shape[-1] * config["units"]
    if isinstance(layer, L.EinsumDense):
        return _einsum_macs(layer, in_shape, output_shape)
    if layer.weights and not isinstance(layer, (L.BatchNormalization, keras.Model)):
        non_stat = [v for v in layer.weights if _var_name(v) not in _STATISTICS]
        if non_stat:
            return None  # a layer with weights we do not model (LSTM, attention, ...)
    return 0


def _var_name(variable):
    return getattr(variable, "name", "").split("/")[-1].split(":")[0]


def _weight_counts(layer):
    params = stats = 0
    is_bn = isinstance(layer, keras.layers.BatchNormalization)
    for v in layer.weights:
        size = math.prod(v.shape)
        if is_bn and _var_name(v) in _STATISTICS:
            stats += size
        else:
            params += size
    return params, stats


def _is_weighted(layer):
    """Layers the papers count in "depth": those with a kernel (conv, dense)."""
    if isinstance(layer, (keras.layers.BatchNormalization, keras.Model)):
        return False
    return any(_var_name(v) in ("kernel", "depthwise_kernel", "pointwise_kernel") for v in layer.weights)


def _producer(tensor):
    history = keras_history(tensor)
    if history is None or history.operation is None:
        return None
    return inbound_nodes(history.operation)[history.node_index]


def _ordered_nodes(outputs):
    """The graph's nodes in topological order (iterative depth-first search)."""
    order, done, on_stack = [], set(), set()
    stack = [(_producer(t), False) for t in reversed(outputs)]
    while stack:
        node, expanded = stack.pop()
        if node is None or id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append(node)
            continue
        if id(node) in on_stack:
            continue
        on_stack.add(id(node))
        stack.append((node, True))
        for tensor in reversed(node.input_tensors):
            parent = _producer(tensor)
            if parent is not None and id(parent) not in done:
                stack.append((parent, False))
    return order


def output_structure(model):
    """``[(key, tensor)]`` for the model's outputs; the first is the main one."""
    out = model.output
    if isinstance(out, dict):
        keys = sorted(out, key=lambda k: (k != "main", k))
        return [(k, out[k]) for k in keys]
    if isinstance(out, (list, tuple)):
        return [("main" if i == 0 else f"output_{i}", t) for i, t in enumerate(out)]
    return [("main", out)]


def walk(model):
    """Returns ``[NodeStats]`` in topological order, input layers excluded."""
    if isinstance(model, keras.Sequential):
        model = getattr(model, "_functional", None) or model
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        fail("model", "a functional (or built Sequential) Keras model whose graph profile() can walk", model)
    outputs = output_structure(model)
    nodes = _ordered_nodes([t for _, t in outputs])
    index = {id(n): i for i, n in enumerate(nodes)}
    seen_layers = set()
    stats = []
    for node in nodes:
        layer = node.operation
        parents = [index[id(p)] for p in (_producer(t) for t in node.input_tensors) if p is not None]
        input_shapes = [tuple(t.shape) for t in node.input_tensors]
        output_shape = tuple(node.output_tensors[0].shape)
        first_call = id(layer) not in seen_layers
        seen_layers.add(id(layer))
        params, bn_stats = _weight_counts(layer) if first_call else (0, 0)
        if isinstance(layer, keras.Model):
            macs = _nested_macs(layer)
        else:
            macs = layer_macs(layer, input_shapes, output_shape)
        stats.append(
            NodeStats(
                layer=layer, name=layer.name, parents=parents, input_shapes=input_shapes,
                output_shape=output_shape, params=params, stats=bn_stats,
                macs=macs or 0, counted=macs is not None, weighted=_is_weighted(layer),
            )
        )
    # Longest path in weighted layers (the papers' "depth").
    for s in stats:
        s.depth = max((stats[p].depth for p in s.parents), default=0) + int(s.weighted)
    # Which output each call serves: the main output claims everything it needs.
    claimed = {}
    for key, tensor in outputs:
        start = _producer(tensor)
        todo = [index[id(start)]] if start is not None and id(start) in index else []
        while todo:
            i = todo.pop()
            if i in claimed:
                continue
            claimed[i] = key
            todo.extend(stats[i].parents)
    for i, s in enumerate(stats):
        s.output_key = claimed.get(i, outputs[0][0])
    # Drop the input layers and renumber the parents.
    keep = [i for i, s in enumerate(stats) if not isinstance(s.layer, keras.layers.InputLayer)]
    new_index = {old: new for new, old in enumerate(keep)}
    kept = [stats[i] for i in keep]
    for s in kept:
        s.parents = [new_index[p] for p in s.parents if p in new_index]
    return kept, outputs


def _nested_macs(model):
    try:
        nodes, _ = walk(model)
    except ValueError:
        return None
    if any(not n.counted for n in nodes):
        return None
    return sum(n.macs for n in nodes)
