"""Inception v2 and v3 (Szegedy et al., "Rethinking the Inception Architecture", 2015).

**Inception v2** is the network of Table 1 of the paper at 299x299x3: a stem of
3x3 convolutions and a pool (35x35x288 out), 3x the module of Figure 5 (each 5x5
replaced by two 3x3), a grid reduction (Figure 10) to 17x17x768, 5x the module of
Figure 6 (n x n factorised into 1 x n and n x 1, n = 7), a grid reduction to
8x8x1280, 2x the module of Figure 7 (expanded filter banks) to 8x8x2048, 8x8
average pooling, linear, softmax. The table gives the grids but not every width;
the widths chosen here are the released network's where its module exists, and
listed in ``V2_TABLE`` with the other choices (see the comments there).

**Inception v3** is v2 with the paper's improvements (factorised 7x7 convolutions,
BatchNorm in the auxiliary classifier; label smoothing is a training recipe) in
the layout of the released network, which ``keras.applications.InceptionV3``
follows: a stem ending in 35x35x192, three 35x35 modules that keep a 5x5 branch,
four Figure 6 modules. With ``aux_classifiers=False`` (the default, as in
keras.applications) its weights match ``keras.applications.InceptionV3`` shape for
shape and in the same order (23,851,784 parameters), under our own names.

Both use conv + BatchNorm (epsilon 1e-3, ``scale=False``) + ReLU, 'valid' strided
convolutions and pools (no asymmetric padding), average pooling in the pool
branches, and dropout 20% before the classifier (the released network's; Keras'
copy has none, which changes no weight). ``aux_classifiers=True`` adds the
auxiliary classifier of Figure 8 on the last 17x17 grid (average pool 5x5/3, 1x1
conv 128, a 5x5 conv of 768 as the "FC", the classifier), batch-normalised in v3
only; the outputs become ``{"main", "aux"}`` and ``fit`` trains both heads from
one label per image (`kerasnets.models._multi_output`). The 17x17 grid must be
17x17 for the 5x5/3 pool then 5x5 conv: 299x299 inputs at least.

Layer names: ``conv1a_conv``, ``mixed5b_b1_conv``, ``mixed5b_b5_conv``,
``mixed6b_b7dbl_2_conv``, ``mixed7b_b3_concat``; a module's output is its name
(``mixed5b`` .. ``mixed7c``, as Keras' ``mixed0`` .. ``mixed10``).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, NamedTuple, Optional

import keras

from kerasnets.layers import channel_axis, conv_bn_act
from kerasnets.models._application import (
    ModelInfo,
    build_application,
    make_builder,
    module_groups,
    min_input_size,
    validate_width_multiplier,
)
from kerasnets.models._inception_common import (
    aux_model_class,
    check_aux_args,
    dropout_top,
    resolve_widths,
)
from kerasnets.preprocessing import INCEPTION
from kerasnets.registry import ModelSpec, WidthSpace, spec_table

PAPER = (
    "Szegedy et al., Rethinking the Inception Architecture for Computer Vision, "
    "CVPR 2016 (arXiv:1512.00567)"
)


class StemV2(NamedTuple):
    """Table 1's first seven layers: conv 3x3/2, 3x3, 3x3 padded, pool, 3x3, 3x3/2, 3x3."""

    conv1: int
    conv2: int
    conv3: int
    conv4: int
    conv5: int
    conv6: int


class StemV3(NamedTuple):
    """The released stem: 3x3/2, 3x3, 3x3 padded, pool, 1x1, 3x3, pool."""

    conv1a: int
    conv2a: int
    conv2b: int
    conv3b: int
    conv4a: int


class Figure5Widths(NamedTuple):
    """Figure 5: 1x1; 1x1 then 3x3; 1x1 then two 3x3; pool then 1x1."""

    b1: int
    b3_reduce: int
    b3: int
    b3dbl_reduce: int
    b3dbl: int
    pool_proj: int


class Mixed35Widths(NamedTuple):
    """The released 35x35 module: Figure 5 with the single 3x3 branch kept a 5x5."""

    b1: int
    b5_reduce: int
    b5: int
    b3dbl_reduce: int
    b3dbl: int
    pool_proj: int


class Figure6Widths(NamedTuple):
    """Figure 6 (n = 7): 1x1; 1x1, 1x7, 7x1; 1x1 then two (1x7, 7x1); pool then 1x1.

    The factorised layers before a branch's last keep the reduce width.
    """

    b1: int
    b7_reduce: int
    b7: int
    b7dbl_reduce: int
    b7dbl: int
    pool_proj: int


class Figure7Widths(NamedTuple):
    """Figure 7: 1x1; 1x1 then (1x3 | 3x1); 1x1, 3x3 then (1x3 | 3x1); pool then 1x1."""

    b1: int
    b3_reduce: int
    b3: int
    b3dbl_reduce: int
    b3dbl: int
    pool_proj: int


class ReductionWidths(NamedTuple):
    """Figure 10: [1x1 then] 3x3/2; 1x1, 3x3, 3x3/2; max pool 3x3/2.

    ``b3_reduce=None``: no 1x1 before the single 3x3/2 (the released 35->17 one).
    """

    b3_reduce: Optional[int]
    b3: int
    b3dbl_reduce: int
    b3dbl: int


class AuxWidths(NamedTuple):
    """Figure 8: the 1x1 conv and the "FC" (a 5x5 conv over the 5x5 map)."""

    proj: int
    fc: int


_fig6 = lambda c: Figure6Widths(192, c, 192, c, 192, 192)  # noqa: E731
_fig7 = Figure7Widths(320, 384, 384, 448, 384, 192)

# Inception v2: Table 1's grids; the widths are the released network's where it
# has the module. Choices: the stem's last conv has 288 filters (Table 1 feeds
# the modules 35x35x288); the three Figure 5 modules keep 288 channels; both
# grid reductions have the 1x1 reduce Figure 10 draws on each conv branch; the
# five Figure 6 modules have reduce widths 128, 160, 160, 160, 192 (the released
# four plus one more 160).
V2_TABLE = {
    "stem": StemV2(32, 32, 64, 80, 192, 288),
    **{m: Figure5Widths(64, 48, 64, 64, 96, 64) for m in ("mixed5b", "mixed5c", "mixed5d")},
    "mixed6a": ReductionWidths(192, 384, 64, 96),
    **{m: _fig6(c) for m, c in zip(("mixed6b", "mixed6c", "mixed6d", "mixed6e", "mixed6f"),
                                   (128, 160, 160, 160, 192))},
    "mixed7a": ReductionWidths(192, 320, 192, 192),
    "mixed7b": _fig7,
    "mixed7c": _fig7,
    "aux": AuxWidths(128, 768),
}
# Inception v3 as released (keras.applications' mixed0 .. mixed10).
V3_TABLE = {
    "stem": StemV3(32, 32, 64, 80, 192),
    "mixed5b": Mixed35Widths(64, 48, 64, 64, 96, 32),
    "mixed5c": Mixed35Widths(64, 48, 64, 64, 96, 64),
    "mixed5d": Mixed35Widths(64, 48, 64, 64, 96, 64),
    "mixed6a": ReductionWidths(None, 384, 64, 96),
    **{m: _fig6(c) for m, c in zip(("mixed6b", "mixed6c", "mixed6d", "mixed6e"), (128, 160, 160, 192))},
    "mixed7a": ReductionWidths(192, 320, 192, 192),
    "mixed7b": _fig7,
    "mixed7c": _fig7,
    "aux": AuxWidths(128, 768),
}

# Epsilon and scale as the released network and keras.applications.
_conv = functools.partial(conv_bn_act, bn_epsilon=1e-3, bn_momentum=0.99, bn_scale=False)


def _chain(x, convs, *, name, **kwargs):
    """Convolutions in sequence; ``convs`` is ``[(suffix, filters, kernel), ...]``."""
    for suffix, filters, kernel in convs:
        x = _conv(x, filters, kernel, name=f"{name}_{suffix}", **kwargs)
    return x


def _pool_proj(x, filters, name):
    x = keras.layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    return _conv(x, filters, 1, name=f"{name}_pool_proj")


def _concat(branches, name):
    return keras.layers.Concatenate(axis=channel_axis(), name=name)(branches)


def module_35(x, w, *, name):
    """Figure 5 (`Figure5Widths`), or the released module (`Mixed35Widths`, a 5x5 branch)."""
    second = (
        [("b3_reduce", w.b3_reduce, 1), ("b3", w.b3, 3)]
        if isinstance(w, Figure5Widths)
        else [("b5_reduce", w.b5_reduce, 1), ("b5", w.b5, 5)]
    )
    return _concat([
        _conv(x, w.b1, 1, name=f"{name}_b1"),
        _chain(x, second, name=name),
        _chain(x, [("b3dbl_reduce", w.b3dbl_reduce, 1), ("b3dbl_1", w.b3dbl, 3),
                   ("b3dbl_2", w.b3dbl, 3)], name=name),
        _pool_proj(x, w.pool_proj, name),
    ], name)


def module_17(x, w: Figure6Widths, *, name, dbl_kernels):
    """Figure 6 with n = 7; ``dbl_kernels`` orders the double branch's 1x7 and 7x1."""
    dbl = [("b7dbl_reduce", w.b7dbl_reduce, 1)] + [
        (f"b7dbl_{i}", w.b7dbl if i == 4 else w.b7dbl_reduce, k)
        for i, k in enumerate(dbl_kernels, start=1)
    ]
    return _concat([
        _conv(x, w.b1, 1, name=f"{name}_b1"),
        _chain(x, [("b7_reduce", w.b7_reduce, 1), ("b7_1x7", w.b7_reduce, (1, 7)),
                   ("b7_7x1", w.b7, (7, 1))], name=name),
        _chain(x, dbl, name=name),
        _pool_proj(x, w.pool_proj, name),
    ], name)


def module_8(x, w: Figure7Widths, *, name):
    """Figure 7: the last 3x3 of two branches split into parallel 1x3 and 3x1."""

    def split(y, filters, prefix):
        return _concat([
            _conv(y, filters, (1, 3), name=f"{name}_{prefix}_1x3"),
            _conv(y, filters, (3, 1), name=f"{name}_{prefix}_3x1"),
        ], f"{name}_{prefix}_concat")

    b1 = _conv(x, w.b1, 1, name=f"{name}_b1")
    b3 = split(_conv(x, w.b3_reduce, 1, name=f"{name}_b3_reduce"), w.b3, "b3")
    dbl = _chain(x, [("b3dbl_reduce", w.b3dbl_reduce, 1), ("b3dbl_3x3", w.b3dbl, 3)], name=name)
    dbl = split(dbl, w.b3dbl, "b3dbl")
    return _concat([b1, b3, dbl, _pool_proj(x, w.pool_proj, name)], name)


def reduction(x, w: ReductionWidths, *, name, middle):
    """Figure 10: stride-2 conv branches and a stride-2 max pool, concatenated.

    ``middle`` are the kernels of the double branch before its 3x3/2: ``(3,)`` in
    the paper, ``((1, 7), (7, 1))`` in v3's 17x17 -> 8x8 reduction (released).
    """
    strided = dict(strides=2, padding="valid")
    b3 = x if w.b3_reduce is None else _conv(x, w.b3_reduce, 1, name=f"{name}_b3_reduce")
    b3 = _conv(b3, w.b3, 3, name=f"{name}_b3", **strided)
    dbl = _chain(x, [("b3dbl_reduce", w.b3dbl_reduce, 1)] + [
        (f"b3dbl_{i}", w.b3dbl, k) for i, k in enumerate(middle, start=1)
    ], name=name)
    dbl = _conv(dbl, w.b3dbl, 3, name=f"{name}_b3dbl_{len(middle) + 1}", **strided)
    pool = keras.layers.MaxPooling2D(3, strides=2, name=f"{name}_pool")(x)
    return _concat([b3, dbl, pool], name)


_V2_ORDER = ((1, 7), (7, 1), (1, 7), (7, 1))  # Figure 6, bottom to top
_V3_ORDER = ((7, 1), (1, 7), (7, 1), (1, 7))  # as released
# Module kinds, by dictionary lookup (docs/architecture.md, Blocks).
MODULES = {
    "module_35": module_35,
    "module_17_v2": functools.partial(module_17, dbl_kernels=_V2_ORDER),
    "module_17_v3": functools.partial(module_17, dbl_kernels=_V3_ORDER),
    "module_8": module_8,
    "reduction": functools.partial(reduction, middle=(3,)),
    "reduction_7x7": functools.partial(reduction, middle=((1, 7), (7, 1))),
}
V2_LAYOUT = (
    *((m, "module_35") for m in ("mixed5b", "mixed5c", "mixed5d")),
    ("mixed6a", "reduction"),
    *((m, "module_17_v2") for m in ("mixed6b", "mixed6c", "mixed6d", "mixed6e", "mixed6f")),
    ("mixed7a", "reduction"),
    ("mixed7b", "module_8"),
    ("mixed7c", "module_8"),
)
V3_LAYOUT = (
    *((m, "module_35") for m in ("mixed5b", "mixed5c", "mixed5d")),
    ("mixed6a", "reduction"),
    *((m, "module_17_v3") for m in ("mixed6b", "mixed6c", "mixed6d", "mixed6e")),
    ("mixed7a", "reduction_7x7"),
    ("mixed7b", "module_8"),
    ("mixed7c", "module_8"),
)


def _unpadded_max_pool(x, name):
    """3x3/2 max pooling without padding (``"valid"``), as the papers' stems and the released graph."""
    return keras.layers.MaxPooling2D(3, strides=2, name=name)(x)


def stem_v2(x, w: StemV2):
    x = _conv(x, w.conv1, 3, strides=2, padding="valid", name="conv1")  # 149x149x32
    x = _conv(x, w.conv2, 3, padding="valid", name="conv2")  # 147x147x32
    x = _conv(x, w.conv3, 3, name="conv3")  # padded: 147x147x64
    x = _unpadded_max_pool(x, "pool1")  # 73x73x64
    x = _conv(x, w.conv4, 3, padding="valid", name="conv4")  # 71x71x80
    x = _conv(x, w.conv5, 3, strides=2, padding="valid", name="conv5")  # 35x35x192
    return _conv(x, w.conv6, 3, name="conv6")  # 35x35x288


def stem_v3(x, w: StemV3):
    x = _conv(x, w.conv1a, 3, strides=2, padding="valid", name="conv1a")  # 149x149x32
    x = _conv(x, w.conv2a, 3, padding="valid", name="conv2a")  # 147x147x32
    x = _conv(x, w.conv2b, 3, name="conv2b")  # 147x147x64
    x = _unpadded_max_pool(x, "pool3a")  # 73x73x64
    x = _conv(x, w.conv3b, 1, padding="valid", name="conv3b")  # 73x73x80
    x = _conv(x, w.conv4a, 3, padding="valid", name="conv4a")  # 71x71x192
    return _unpadded_max_pool(x, "pool5a")  # 35x35x192


def aux_classifier(x, w: AuxWidths, head, *, bn_fc):
    """Figure 8 on the last 17x17 grid; ``bn_fc``: batch-normalise the "FC" (v3)."""
    x = keras.layers.AveragePooling2D(5, strides=3, name="aux_pool")(x)  # 5x5
    x = _conv(x, w.proj, 1, name="aux_proj")
    x = _conv(
        x, w.fc, 5, padding="valid", batch_norm=bn_fc, name="aux_fc",
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01),
    )
    x = keras.layers.GlobalAveragePooling2D(name="aux_avg_pool")(x)
    return head.classifier(x, name="aux_predictions")


ARCHITECTURES = {
    # version: (stem, table, layout, the module the auxiliary classifier follows, BN in its FC)
    "v2": (stem_v2, V2_TABLE, V2_LAYOUT, "mixed6f", False),
    "v3": (stem_v3, V3_TABLE, V3_LAYOUT, "mixed6e", True),
}
# conv1, conv2, pool, conv 3x3 valid, pool (v3) or conv 3x3/2 (v2): both stems
# reduce alike; then the 35->17 reduction. Both 3x3/2 reductions follow.
_TO_17 = [(3, 2, 0), (3, 1, 0), (3, 2, 0), (3, 1, 0), (3, 2, 0), (3, 2, 0)]


def _geometry(aux_classifiers):
    if aux_classifiers:  # average pool 5x5/3 then the 5x5 "FC" on the 17x17 grid
        return _TO_17 + [(5, 3, 0), (5, 1, 0)]
    return _TO_17 + [(3, 2, 0)]


def inception(
    *, model_name, version, aux_classifiers: bool = False, aux_loss_weight: float = 0.4,
    width_multiplier: float = 1.0, stage_widths: Mapping[str, Any] | None = None, **contract,
):
    stem, table, layout, aux_after, bn_fc = ARCHITECTURES[version]
    aux_classifiers = check_aux_args(
        bool(aux_classifiers) if aux_classifiers is None else aux_classifiers,
        aux_loss_weight, contract.get("include_top", True), model_name,
    )
    validate_width_multiplier(width_multiplier, model_name)
    widths = resolve_widths(table, stage_widths, width_multiplier, model_name)
    contract["name"] = contract.get("name") or f"inception_{version}"

    def backbone(inputs, head):
        x = stem(inputs, widths["stem"])
        aux = None
        for module, kind in layout:
            x = MODULES[kind](x, widths[module], name=module)
            if aux_classifiers and module == aux_after:
                aux = aux_classifier(x, widths["aux"], head, bn_fc=bn_fc)
        return x if aux is None else {"main": x, "aux": aux}

    return build_application(
        backbone=backbone, info=INFO[version], model_name=model_name,
        min_size=min_input_size(_geometry(aux_classifiers)), top=dropout_top(0.2),
        model_class=aux_model_class(aux_loss_weight), **contract,
    )


INFO = {
    v: ModelInfo("inception", PAPER, 299, INCEPTION, min_size=min_input_size(_geometry(False)))
    for v in ARCHITECTURES
}

_DOC = """
        aux_classifiers: add the auxiliary classifier of Figure 8 on the last 17x17
            grid (batch-normalised in v3); the outputs are then a dict
            ``{"main", "aux"}`` and ``fit`` trains both heads from one label per
            image. Needs inputs of at least 299x299. `kerasnets.inference_model`
            drops it.
        aux_loss_weight: weight of the auxiliary loss in the total loss when the
            model is compiled with one loss (default 0.4, the released training
            script's; the paper gives none).
        width_multiplier: scales every width (rounded, at least 1).
        stage_widths: overrides rows of the width table before
            ``width_multiplier``: ``{"mixed6b": {"b7_reduce": 96}}`` or a whole
            record; keys are the module names, ``"stem"`` and ``"aux"``.
"""

def _feature_stages(layout):
    """The last module on each grid: 35x35, 17x17, 8x8 at 299x299."""
    last = {}
    for module, _ in layout:
        last[module[:6]] = module  # mixed5*, mixed6*, mixed7*
    return {m: m for m in last.values()}


def _spec(version, builder, summary, **facts):
    _, table, layout, _, _ = ARCHITECTURES[version]
    return ModelSpec(
        f"inception_{version}", builder, inception, INFO[version], summary=summary,
        arguments={"version": version}, options_doc=_DOC,
        # Width searches (kerasnets.tuning): one scale per module of the version's table.
        widths=WidthSpace("module", module_groups(table, ""), module_layer="{}"),
        feature_stages=_feature_stages(layout), aliases={"module_widths": "stage_widths"}, **facts,
    )


SPECS = spec_table(
    _spec("v2", "InceptionV2",
          "Inception v2: Table 1 of Szegedy et al. (2015), Figures 5, 6 and 7 modules (299x299)."),
    _spec(
        "v3", "InceptionV3",
        "Inception v3 as released (Szegedy et al. 2015), weights as keras.applications.InceptionV3.",
        presets=("keras_applications",),
        example=(
            "model = kerasnets.InceptionV3(weights=None)  # keras.applications' weight layout\n"
            "    >>> trainer = kerasnets.InceptionV3(weights=None, aux_classifiers=True)  # main, aux"
        ),
    ),
)
InceptionV2 = make_builder(SPECS["inception_v2"])
InceptionV3 = make_builder(SPECS["inception_v3"])
