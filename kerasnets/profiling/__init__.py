"""Parameters and multiply-adds per block: the papers' tables, for the model you built.

``kerasnets.profile("googlenet")`` gives one row per paper-level block (a VGG
block, a ResNet stage and its blocks, an Inception module with the paper's
width columns, the stem layers, the heads), with the columns of GoogLeNet's
Table 1: type, patch size/stride, output size, depth, params, ops. Auxiliary
heads are shown apart from the main path; ``per_layer=True`` views every layer.

Counting conventions (also printed under every table):

* **params** are learnable weights: BatchNorm's moving mean and variance are
  not counted (as torchvision's ``num_params`` and the papers).
  ``keras_params`` is ``model.count_params()``, which includes them.
* **MACs** are multiply-accumulates (multiply-adds) of convolutions (grouped,
  depthwise, separable, transposed) and dense layers for one image of the
  model's input size. Biases, BatchNorm, activations, pooling, LRN, dropout,
  additions and concatenations are not counted. One MAC is two FLOPs; the
  GoogLeNet paper's "ops", the ResNet paper's "FLOPs", torchvision's "GFLOPS"
  and timm's "GMACs" are all multiply-adds.

The numbers are computed analytically from each layer's configuration and the
static shapes of the graph: the model is built (without initialising its
weights when profiled by name) but never run.

Example:

>>> import kerasnets
>>> p = kerasnets.profile("resnet50")
>>> print(p)                      # the paper-style table
>>> p.macs, p.params
(3858726912, 25557032)
>>> kerasnets.profile("resnet50", width_multiplier=0.5).to_markdown()
"""

from __future__ import annotations

import dataclasses

import keras

from kerasnets._keras_compat import deferred_variables
from kerasnets._validate import check_size, fail
from kerasnets.card import ModelCard, model_card
from kerasnets.layers import image_shape
from kerasnets.profiling._blocks import describe, inception_widths, is_quiet, kind, patch_of, split_name
from kerasnets.profiling._graph import COUNTED, NOT_COUNTED, conv_macs, walk
from kerasnets.profiling._render import render, shape_text
from kerasnets.profiling._catalog import (
    ModelSummary,
    format_models,
    format_presets,
    preset_rows,
    summarize_models,
)
from kerasnets.registry import get_entry

__all__ = [
    "profile", "Profile", "Row", "LayerRow", "conv_macs", "inception_module_arithmetic",
    "ModelSummary", "summarize_models", "format_models", "preset_rows", "format_presets",
]


@dataclasses.dataclass
class Row:
    """One paper-level row: a stem layer, a block, a stage, a module or a head.

    Attributes:
        name: the block's name prefix (``conv2_block1``, ``inception_3a``, ``fc1``).
        type: the paper's word (``convolution``, ``max pool``, ``inception``,
            ``residual block``, ``stage``, ``linear``, ...).
        patch: kernel size/stride (``7×7/2``); for blocks, the convolutions along
            their longest path (``1×1/2, 3×3/1, 1×1/1``).
        output_shape: the block's output shape without the batch axis.
        depth: layers with weights (convolutions, dense) on the longest path
            through the block, as the GoogLeNet paper counts depth.
        params: learnable weights (BatchNorm moving statistics excluded).
        keras_params: ``params`` plus BatchNorm moving statistics (what
            ``count_params()`` counts).
        macs: multiply-adds for one image.
        widths: for Inception modules, the paper's width columns (``#1×1``,
            ``#3×3 reduce``, ``#3×3``, ``#5×5 reduce``, ``#5×5``, ``pool proj``).
        level: 0 for a top-level row, 1 for a block inside a stage.
        head: ``"main"``, or the auxiliary output the row belongs to (``"aux1"``).
        layers: the names of the layers in the row.
    """

    name: str
    type: str
    patch: str
    output_shape: tuple
    depth: int
    params: int
    keras_params: int
    macs: int
    widths: dict = dataclasses.field(default_factory=dict)
    level: int = 0
    head: str = "main"
    layers: list = dataclasses.field(default_factory=list)

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["output_shape"] = list(self.output_shape)
        return out


@dataclasses.dataclass
class LayerRow:
    """One layer call: the per-layer view."""

    name: str
    type: str
    patch: str
    output_shape: tuple
    params: int
    keras_params: int
    macs: int
    block: str
    head: str = "main"

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["output_shape"] = list(self.output_shape)
        return out


@dataclasses.dataclass
class Profile:
    """The profile of one model; see `profile`.

    Attributes:
        name: the model's name.
        input_shape: the input shape without the batch axis.
        rows: main-path rows in graph order; a stage row is followed by its blocks.
        aux_rows: rows of the auxiliary heads (``row.head`` says which), kept out of
            the main totals.
        layers: one `LayerRow` per layer call, in graph order.
        params, keras_params, macs, depth: totals of the main path (what runs at
            inference).
        aux: ``{head: {"params", "keras_params", "macs"}}`` for each auxiliary head.
        total_params, total_keras_params, total_macs: main path plus auxiliary
            heads; ``total_keras_params == model.count_params()``.
        uncounted: names of layers with weights whose multiply-adds are not
            modelled (none for the kerasnets models).
        card: the model's `kerasnets.model_card` (registered name, builder arguments,
            weights, preprocessing); ``None`` for a model kerasnets did not build.
    """

    name: str
    input_shape: tuple
    rows: list
    aux_rows: list
    layers: list
    params: int
    keras_params: int
    macs: int
    depth: int
    aux: dict
    uncounted: list = dataclasses.field(default_factory=list)
    card: ModelCard | None = None

    @property
    def title(self) -> str:
        """What the model is: its model card's name and builder arguments (else its name)."""
        if self.card is None:
            return self.name
        kwargs = ", ".join(f"{k}={v!r}" for k, v in self.card.builder_kwargs.items() if k != "input_shape")
        named = f" named '{self.name}'" if self.name != self.card.model else ""
        return f"{self.card.model}" + (f" ({kwargs})" if kwargs else "") + named

    @property
    def total_params(self):
        return self.params + sum(a["params"] for a in self.aux.values())

    @property
    def total_keras_params(self):
        return self.keras_params + sum(a["keras_params"] for a in self.aux.values())

    @property
    def total_macs(self):
        return self.macs + sum(a["macs"] for a in self.aux.values())

    def row(self, name: str) -> Row:
        """The row named ``name`` (``"inception_3a"``, ``"conv2_block1"``, ``"aux1"``)."""
        for row in self.rows + self.aux_rows:
            if row.name == name:
                return row
        names = [r.name for r in self.rows + self.aux_rows]
        raise KeyError(f"No row named {name!r} in the profile of {self.name}. Rows: {names}")

    @property
    def conventions(self) -> str:
        """How the numbers are counted, in one paragraph."""
        stats = self.total_keras_params - self.total_params
        if stats:
            params = (
                "params: learnable weights; BatchNorm moving statistics excluded "
                f"(model.count_params() = {self.total_keras_params:,} includes {stats:,} of them). "
            )
        else:
            params = "params: learnable weights (= model.count_params(); no BatchNorm statistics). "
        text = (
            params +
            f"MACs: multiply-adds of {COUNTED} for one {shape_text(self.input_shape)} image; "
            f"{NOT_COUNTED} are not counted. 1 MAC = 2 FLOPs. "
            f"depth: layers with weights on the longest path. K, M, G = 10^3, 10^6, 10^9."
        )
        if self.uncounted:
            text += f" Layers whose MACs are not modelled (counted as 0): {', '.join(self.uncounted)}."
        return text

    def to_dicts(self, per_layer: bool = False) -> list:
        """Plain data: one dict per row (main path, then auxiliary heads) or per layer."""
        if per_layer:
            return [r.to_dict() for r in self.layers]
        return [r.to_dict() for r in self.rows + self.aux_rows]

    def to_dict(self) -> dict:
        """Everything as plain data (JSON-serialisable): totals, rows and layers."""
        return {
            "name": self.name,
            "model_card": None if self.card is None else self.card.to_dict(),
            "input_shape": list(self.input_shape),
            "params": self.params,
            "keras_params": self.keras_params,
            "macs": self.macs,
            "depth": self.depth,
            "aux": self.aux,
            "total_params": self.total_params,
            "total_keras_params": self.total_keras_params,
            "total_macs": self.total_macs,
            "conventions": self.conventions,
            "rows": self.to_dicts(),
            "layers": self.to_dicts(per_layer=True),
        }

    def to_text(self, per_layer: bool = False, exact: bool = False, unicode: bool = True) -> str:
        """An aligned text table for the terminal.

        Args:
            per_layer: one row per layer instead of per block.
            exact: full integers (``163,328``) instead of ``163.3K``.
            unicode: ``False`` writes ``x`` for ``×`` (for terminals that lack it).
        """
        return render(self, "text", per_layer=per_layer, exact=exact, unicode=unicode)

    def to_markdown(self, per_layer: bool = False, exact: bool = False) -> str:
        """A Markdown table (GitHub flavour), with the conventions underneath."""
        return render(self, "markdown", per_layer=per_layer, exact=exact)

    def __str__(self):
        return self.to_text()

    def _repr_markdown_(self):  # Jupyter
        return self.to_markdown()


# ---------------------------------------------------------------------------
# Building without initialising weights.
# ---------------------------------------------------------------------------


def _build(name, input_size, builder_kwargs):
    entry = get_entry(name)  # unknown names raise here, with suggestions
    kwargs = dict(builder_kwargs)
    if input_size is not None:
        if "input_shape" in kwargs:
            fail("input_size", "None when input_shape is given (pass one of them, not both)", input_size,
                 received=f"input_size={input_size!r}, input_shape={kwargs['input_shape']!r}")
        size = check_size("input_size", input_size)
        channels = 3
        kwargs["input_shape"] = image_shape(size, channels)
    try:
        with deferred_variables():
            return entry.build(**kwargs)
    except ValueError as error:
        if "stateless scope" not in str(error):
            raise
    return entry.build(**kwargs)  # a layer that needs its variables' values to build


# ---------------------------------------------------------------------------
# profile()
# ---------------------------------------------------------------------------


def profile(model_or_name, *, input_size=None, **builder_kwargs) -> Profile:
    """Parameters and multiply-adds per paper-level block of a model.

    Args:
        model_or_name: a registered name (``"googlenet"``) or a built functional
            `keras.Model` (any model, not only kerasnets'; its layers are grouped by
            name prefix, see `kerasnets.profiling._blocks`).
        input_size: with a name: the square input size (an int) or ``(height,
            width)``; default: the model's default size. MACs scale with it.
        **builder_kwargs: with a name: the builder's arguments
            (``width_multiplier=0.5``, ``include_top=False``, ...).

    Returns:
        A `Profile`: ``print(p)`` shows the table, ``p.to_markdown()``,
        ``p.to_dicts()`` for code; ``p.params``, ``p.macs`` and ``p.depth`` are the
        main path's totals, ``p.aux`` the auxiliary heads'.

    Raises:
        ValueError: for an unknown name (with suggestions), builder arguments the
            builder rejects, or an input whose height and width are unknown.

    Example:

    >>> p = kerasnets.profile("googlenet")
    >>> p.row("inception_3a").widths
    {'#1×1': 64, '#3×3 reduce': 96, '#3×3': 128, '#5×5 reduce': 16, '#5×5': 32, 'pool proj': 32}
    >>> print(p.to_markdown())
    """
    if isinstance(model_or_name, str):
        model = _build(model_or_name, input_size, builder_kwargs)
    elif isinstance(model_or_name, keras.Model):
        if builder_kwargs or input_size is not None:
            fail("input_size", "None, with no builder arguments, for a built model (they apply when "
                 "profiling a model by name; a built model has its own)", input_size,
                 received=f"input_size={input_size!r}, builder_kwargs={builder_kwargs!r}")
        model = model_or_name
    else:
        fail("model_or_name", "a registered model name or a keras.Model", model_or_name, context="profile()")
    return profile_model(model)


def profile_model(model) -> Profile:
    """The `Profile` of a built functional model (``profile`` with a model)."""
    nodes, outputs = walk(model)
    input_shape = tuple(model.inputs[0].shape[1:]) if model.inputs else ()
    unknown = [
        n.name for n in nodes
        if not n.counted and any(d is None for shape in (*n.input_shapes, n.output_shape) for d in shape[1:])
    ]
    missing = [n.name for n in nodes if not n.counted]
    if unknown:
        fail("model", f"a model with a fixed input height and width: multiply-adds depend on the input "
             f"size (first affected layer of {model.name}: {unknown[0]}). Profile it by name with "
             "input_size=N, or build it with a fixed input_shape", model, received=f"input_shape={input_shape}")

    main_key = outputs[0][0]
    layer_rows = []
    for n in nodes:
        unit, block = split_name(n.name)
        layer_rows.append(
            LayerRow(
                name=n.name, type=kind(n.layer), patch=patch_of(n.layer, n.input_shapes[0] if n.input_shapes else None),
                output_shape=n.output_shape[1:], params=n.params, keras_params=n.params + n.stats,
                macs=n.macs, block=(block or unit) if n.output_key == main_key else n.output_key,
                head=n.output_key,
            )
        )

    rows, aux_rows, aux = [], [], {}
    for head in [main_key] + [k for k, _ in outputs[1:]]:
        members = [i for i, n in enumerate(nodes) if n.output_key == head]
        if not members:
            continue
        if head == main_key:
            rows = _rows_for(nodes, members, head)
        else:  # an auxiliary head is one row; per_layer=True shows its layers
            aux_rows.append(_make_row(nodes, members, head, head, is_head=True))
            aux[head] = _totals(nodes, members)
    main = [i for i, n in enumerate(nodes) if n.output_key == main_key]
    totals = _totals(nodes, main)
    return Profile(
        name=model.name, input_shape=input_shape, rows=rows, aux_rows=aux_rows, layers=layer_rows,
        params=totals["params"], keras_params=totals["keras_params"], macs=totals["macs"],
        depth=max((nodes[i].depth for i in main), default=0), aux=aux, uncounted=missing,
        card=model_card(model),
    )


def _totals(nodes, members):
    return {
        "params": sum(nodes[i].params for i in members),
        "keras_params": sum(nodes[i].params + nodes[i].stats for i in members),
        "macs": sum(nodes[i].macs for i in members),
    }


def _rows_for(nodes, members, head):
    """Rows of one head: units in graph order, each stage followed by its blocks."""
    units: dict[str, list] = {}
    blocks: dict[str, dict[str, list]] = {}
    for i in members:
        unit, block = split_name(nodes[i].name)
        units.setdefault(unit, []).append(i)
        if block:
            blocks.setdefault(unit, {}).setdefault(block, []).append(i)
    rows = []
    for unit, idx in units.items():
        if all(is_quiet(nodes[i].layer) and not nodes[i].params + nodes[i].stats for i in idx):
            continue  # e.g. the Identity that names a dict output
        unit_blocks = blocks.get(unit, {})
        if unit_blocks:
            row = _make_row(nodes, idx, unit, head, level=0)
            row.type = f"stage ({len(unit_blocks)} blocks)" if len(unit_blocks) > 1 else "stage (1 block)"
            row.patch = ""
            rows.append(row)
            for block, bidx in unit_blocks.items():
                rows.append(_make_row(nodes, bidx, block, head, level=1, is_block=True))
        else:
            rows.append(_make_row(nodes, idx, unit, head, level=0))
    return rows


def _make_row(nodes, members, name, head, level=0, is_block=False, is_head=False):
    member_set = set(members)
    end = max(members)
    base = max((nodes[p].depth for i in members for p in nodes[i].parents if p not in member_set), default=0)
    type_, patch = describe(nodes, members, is_block=is_block, is_head=is_head)
    return Row(
        name=name,
        type=type_,
        patch=patch,
        output_shape=nodes[end].output_shape[1:],
        depth=max(nodes[i].depth for i in members) - base,
        params=sum(nodes[i].params for i in members),
        keras_params=sum(nodes[i].params + nodes[i].stats for i in members),
        macs=sum(nodes[i].macs for i in members),
        widths=inception_widths(nodes, members),
        level=level,
        head=head,
        layers=[nodes[i].name for i in members],
    )


def inception_module_arithmetic(size=28, in_channels=192, filters=32, reduce_to=16, kernel=5) -> dict:
    """The arithmetic that motivates the Inception module's 1×1 reductions.

    Szegedy et al. (2014), section 4 / Figure 2: a 5×5 convolution from 192 to
    32 channels on a 28×28 map costs about 120 million multiply-adds; reducing
    to 16 channels with a 1×1 convolution first costs about 12.4 million.

    Returns:
        ``{"direct": ..., "reduced": ..., "ratio": direct / reduced}``.

    Example:

    >>> inception_module_arithmetic()
    {'direct': 120422400, 'reduced': 12443648, 'ratio': 9.677...}
    """
    direct = conv_macs(size, in_channels, filters, kernel)
    reduced = conv_macs(size, in_channels, reduce_to, 1) + conv_macs(size, reduce_to, filters, kernel)
    return {"direct": direct, "reduced": reduced, "ratio": direct / reduced}

