"""The search spaces: a model's declared width groups -> hyperparameters -> builder arguments.

Each registered model declares in its spec (`kerasnets.registry.ModelSpec.widths`, a
`WidthSpace`) which of its widths are searched, and its depth
(`ModelSpec.depth`) and depth group (the models it shares a depth search with);
`search_space` turns them into `Hyperparameter` records. There is no table of widths or
model names here: a new spec has a search space as soon as it is registered.

Two kinds of width groups:

* ``"stage"``: one base width per group, searched as an integer
  (``conv3_width``: ResNet stages, ``block4_width``: VGG blocks); the builder
  receives the list of them (``stage_widths=[...]``).
* ``"module"``: one scale per Inception module, searched from a choice
  (``inception_4a_scale``, ``mixed6b_scale``); every branch width of the module
  is multiplied by it, and the builder receives the scaled rows
  (``stage_widths={"4a": {"b1": 96, ...}}``).

A spec of the ``"global"`` kind searches only ``width_multiplier``, which applies on
top of the groups in every case, inside the builder.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Mapping

from kerasnets._validate import check_int, check_number, fail
from kerasnets.layers import channel_axis
from kerasnets.models import scale_width
from kerasnets.registry import WidthSpace, entries, get_entry

FamilySpace = WidthSpace  # the name earlier releases exported

__all__ = [
    "Hyperparameter",
    "WidthSpace",
    "FamilySpace",
    "WIDTH_MULTIPLIERS",
    "MODULE_SCALES",
    "family_space",
    "search_space",
    "depth_choices",
    "builder_kwargs",
    "effective_widths",
]

WIDTH_MULTIPLIERS = (0.25, 0.5, 0.75, 1.0)
MODULE_SCALES = (0.25, 0.5, 0.75, 1.0)
# A searched stage width runs over base/4, base/2, 3*base/4, base.
_STAGE_STEPS = 4


@dataclasses.dataclass(frozen=True)
class Hyperparameter:
    """One entry of a search space.

    Exactly one of ``values`` (a choice; one value is a fixed hyperparameter) or
    ``min_value``/``max_value`` (a range: integer when both bounds and the step
    are integers, float otherwise) is given.

    Attributes:
        name: the keras-tuner name (``"conv3_width"``).
        kind: what it controls: ``"width_multiplier"``, ``"width"``, ``"scale"``,
            ``"depth"`` or ``"learning_rate"`` (decides how values are validated).
        values: the choices.
        min_value, max_value, step, sampling: the range (``sampling`` is
            ``"linear"`` or ``"log"``).
        default: the value of the default trial (the paper's model).
        doc: one line for humans.
        allowed: the only values an override may use (the depths of a family), or
            ``None``.
    """

    name: str
    kind: str
    values: tuple | None = None
    min_value: float | None = None
    max_value: float | None = None
    step: float | None = None
    sampling: str = "linear"
    default: Any = None
    doc: str = ""
    allowed: tuple | None = None

    @property
    def is_int(self) -> bool:
        return all(isinstance(v, int) for v in (self.min_value, self.max_value, self.step or 1))

    def declare(self, hp):
        """Declares it in a `keras_tuner.HyperParameters`; returns the current value.

        A name the ``hp`` container already holds (the tuner's
        ``hyperparameters=`` argument) keeps the container's definition.
        """
        if self.values is not None:
            if len(self.values) == 1:
                return hp.Fixed(self.name, self.values[0])
            ordered = all(isinstance(v, numbers.Real) for v in self.values)
            return hp.Choice(self.name, list(self.values), ordered=ordered, default=self.default)
        if self.is_int:
            return hp.Int(
                self.name, self.min_value, self.max_value, step=self.step,
                sampling=self.sampling, default=self.default,
            )
        return hp.Float(
            self.name, float(self.min_value), float(self.max_value), step=self.step,
            sampling=self.sampling, default=None if self.default is None else float(self.default),
        )

    def describe(self) -> str:
        """The range in words: ``"one of 0.25, 0.5, 0.75, 1.0"``, ``"16..64 step 16"``."""
        if self.values is not None:
            if len(self.values) == 1:
                return f"fixed at {self.values[0]}"
            return "one of " + ", ".join(str(v) for v in self.values)
        text = f"{_number(self.min_value)}..{_number(self.max_value)}"
        if self.step:
            text += f" step {_number(self.step)}"
        if self.sampling != "linear":
            text += f" ({self.sampling})"
        return text

    def with_values(self, override) -> "Hyperparameter":
        """This hyperparameter with a user's override (see `search_space`)."""
        if isinstance(override, Mapping):
            unknown = set(override) - {"min_value", "max_value", "step", "sampling", "default"}
            if unknown or not {"min_value", "max_value"} <= set(override):
                fail(self.name, "a range: a dict with min_value and max_value (and optionally step, "
                     "sampling, default)", dict(override))
            lo, hi = override["min_value"], override["max_value"]
            for value in (lo, hi):
                self.check(value)
            if hi < lo:
                fail(self.name, "a range that is not empty (max_value >= min_value)", dict(override))
            default = override.get("default", self.default if lo <= self.default <= hi else lo)
            return dataclasses.replace(
                self, values=None, min_value=lo, max_value=hi, step=override.get("step"),
                sampling=override.get("sampling", "linear"), default=default,
            )
        values = tuple(override) if isinstance(override, (list, tuple)) else (override,)
        if not values:
            fail(self.name, "a value or a non-empty list of values", [])
        for value in values:
            self.check(value)
        default = self.default if self.default in values else values[0]
        return dataclasses.replace(
            self, values=values, min_value=None, max_value=None, step=None, default=default,
        )

    def check(self, value):
        """Raises a ValueError if ``value`` cannot be a value of this hyperparameter."""
        _CHECKS[self.kind](self, value)


def _number(value):
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _positive_int(hp, value):
    check_int(hp.name, value)


def _positive_number(hp, value):
    check_number(hp.name, value)


def _depth(hp, value):
    if value not in hp.allowed:
        fail(hp.name, "one of the depths of the same family and block type: "
             f"{', '.join(str(d) for d in hp.allowed)}", value)


_CHECKS = {
    "width_multiplier": _positive_number,
    "width": _positive_int,
    "scale": _positive_number,
    "learning_rate": _positive_number,
    "depth": _depth,
}


def family_space(model_name: str) -> WidthSpace:
    """The `WidthSpace` a registered model's spec declares; a builder without a spec raises."""
    entry = get_entry(model_name)
    if entry.widths is None:
        searchable = [e.name for e in entries() if e.widths is not None]
        fail("model", f"a model with a declared width search space, {', '.join(searchable)} "
             f"({entry.name} was registered without a ModelSpec)", model_name)
    return entry.widths


def _depth_of(model_name: str) -> int | None:
    return get_entry(model_name).spec.depth


def depth_choices(model_name: str) -> dict[int, str]:
    """``{depth: registered name}`` of the models the depth search may pick (``{}``: none):
    the specs of the same depth group, by their depth."""
    group = family_space(model_name).depth_group
    if group is None:
        return {}
    return dict(sorted(
        (e.spec.depth, e.name) for e in entries()
        if e.widths is not None and e.widths.depth_group == group and e.spec.depth is not None
    ))


def _learning_rate_hp(default):
    return Hyperparameter(
        "learning_rate", "learning_rate", min_value=default / 30, max_value=default * 3,
        sampling="log", default=default,
        doc="the optimizer's initial learning rate (the recipe's, at the batch size used)",
    )


def search_space(
    model_name: str,
    *,
    per_block: bool = True,
    depth: bool = False,
    learning_rate: float | None = None,
    overrides: Mapping | None = None,
) -> list[Hyperparameter]:
    """The hyperparameters searched for ``model_name``, in declaration order.

    Args:
        model_name: a registered model (``"resnet20"``).
        per_block: search the per-stage / per-block / per-module widths as well as
            the global ``width_multiplier``.
        depth: search the depth among the models of the same family and block type.
        learning_rate: the default (recipe's) learning rate to search around, or
            ``None`` to leave the rate out of the search.
        overrides: ``{hp name: override}``: a list of values (a choice), one value
            (fixed), or a dict with ``min_value``, ``max_value`` and optionally
            ``step``, ``sampling``, ``default`` (a range). Names must be in the space.

    Example:

    >>> [hp.name for hp in search_space("resnet20")]
    ['width_multiplier', 'conv2_width', 'conv3_width', 'conv4_width']
    """
    space = family_space(model_name)
    hps = [
        Hyperparameter(
            "width_multiplier", "width_multiplier", values=WIDTH_MULTIPLIERS, default=1.0,
            doc="scales every width of the network (rounded, at least 1)",
        )
    ]
    if depth:
        hps.append(_depth_hp(model_name, depth))
    if per_block:
        hps.extend(_group_hps(space))
    if learning_rate is not None:
        hps.append(_learning_rate_hp(learning_rate))
    hps = _with_overrides(hps, dict(overrides or {}), model_name)
    if space.monotonic:
        _check_monotonic([hp for hp in hps if hp.kind == "width"], model_name)
    return hps


def _depth_hp(model_name, depth):
    choices = depth_choices(model_name)
    if len(choices) < 2:
        fail("depth", f"False for {model_name}: it has no other depths to search (its family and "
             "block type have one)", depth, received=f"model={model_name!r}, depth=True")
    return Hyperparameter(
        "depth", "depth", values=tuple(choices), default=_depth_of(model_name),
        doc=f"the depth: one of the registered {', '.join(choices.values())}",
        allowed=tuple(choices),
    )


def _group_hps(space):
    """One hyperparameter per width group: a stage's base width, or a module's scale."""
    hps = []
    if space.kind == "stage":
        previous = 0
        for name, base in space.groups.items():
            step = max(1, base // _STAGE_STEPS)
            low = max(step, previous) if space.monotonic else step
            previous = base
            hps.append(
                Hyperparameter(
                    name, "width", min_value=low, max_value=base, step=step, default=base,
                    doc=f"the base filters of {name[: -len('_width')]} (paper: {base}), before width_multiplier",
                )
            )
    elif space.kind == "module":
        for name, (key, row) in space.groups.items():
            fields = "/".join(str(v) for v in row if v is not None)
            hps.append(
                Hyperparameter(
                    name, "scale", values=MODULE_SCALES, default=1.0,
                    doc=f"scales every branch of module {key} (paper: {fields}) together",
                )
            )
    return hps


def _with_overrides(hps, overrides, model_name):
    """``hps`` with the user's overrides applied; a name outside the space raises."""
    names = [hp.name for hp in hps]
    unknown = [k for k in overrides if k not in names]
    if unknown:
        hint = ""
        if "depth" in unknown:
            hint = "; searching the depth needs depth=True (--search-depth)"
        if "learning_rate" in unknown:
            hint += "; searching the learning rate needs learning_rate (--search-learning-rate)"
        fail("overrides", f"keyed by the hyperparameters of {model_name}'s search space, {', '.join(names)} "
             f"(unknown hyperparameters: {unknown}){hint}", overrides)
    return [hp.with_values(overrides[hp.name]) if hp.name in overrides else hp for hp in hps]


def _bounds(hp):
    if hp.values is not None:
        return min(hp.values), max(hp.values)
    return hp.min_value, hp.max_value


def _check_monotonic(stages, model_name):
    for before, after in zip(stages, stages[1:]):
        if _bounds(after)[0] < _bounds(before)[1]:
            fail("overrides", f"ranges in which {after.name} is never below {before.name} ({after.name} "
                 f"can be {_bounds(after)[0]} while {before.name} can be {_bounds(before)[1]}: the stage "
                 f"widths of {model_name} must not decrease, its zero-padding shortcuts only add channels)",
                 None, received=f"{before.name} {before.describe()}, {after.name} {after.describe()}")


def builder_kwargs(model_name: str, values: Mapping) -> tuple[str, dict]:
    """``(registered name, builder kwargs)`` for the hyperparameter ``values`` of a trial."""
    space = family_space(model_name)
    name = model_name.lower()
    if "depth" in values:
        name = depth_choices(model_name)[values["depth"]]
    kwargs = {"width_multiplier": values["width_multiplier"]}
    groups = family_space(name).groups
    if space.kind == "stage":
        if all(k in values for k in groups):
            kwargs[space.argument] = [int(values[k]) for k in groups]
    elif space.kind == "module":
        stage_widths = {}
        for hp_name, (key, row) in groups.items():
            scale = values.get(hp_name, 1.0)
            if scale != 1.0:
                stage_widths[key] = {
                    field: scale_width(width, scale)
                    for field, width in row._asdict().items() if width is not None
                }
        if stage_widths:
            kwargs[space.argument] = stage_widths
    return name, kwargs


def effective_widths(model_name: str, values: Mapping, model=None) -> list[int]:
    """The widths of a trial's model, one per searched group.

    A stage's (block's) filters, computed from ``values``; for Inception
    families, each module's output channels, read from the built ``model``
    (``None`` without one). AlexNet has no groups: ``[]``.
    """
    name, kwargs = builder_kwargs(model_name, values)
    space = family_space(name)
    multiplier = kwargs["width_multiplier"]
    if space.kind == "stage":
        bases = kwargs.get(space.argument) or list(space.groups.values())
        return [scale_width(w, multiplier) for w in bases]
    if space.kind == "module":
        if model is None:
            return None
        return [
            int(model.get_layer(space.module_layer.format(key)).output.shape[channel_axis()])
            for key, _ in space.groups.values()
        ]
    return []
