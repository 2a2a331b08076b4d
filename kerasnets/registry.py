"""The model registry: one declarative `ModelSpec` per registered variant, its name typed once.

Like torchvision's ``_api.register_model`` and timm's ``@register_model``: a variant is
registered under a lowercase name, ``get_model(name, **kwargs)`` builds it and
``list_models()`` lists the names. Registering a name twice raises.

Every model of kerasnets is declared once, as data: a `ModelSpec` holds its family
builder and that builder's fixed arguments (``depth=50``, ``config="D"``), its
`kerasnets.models.ModelInfo`, its weight presets (`kerasnets.weights.Preset`: file, hash,
converter, preprocessing, accuracy, declared here and nowhere else), its searchable width
groups (`WidthSpace`) and its named feature stages. The model modules declare the specs and make the public
builders from them (`kerasnets.models._application.make_builder`); the profiler, the
tuning search spaces, the CLI, export metadata and training read them here, through
`get_entry(name).spec`.

The registry imports nothing of kerasnets but the shared argument checks (`_validate`): the
model modules import it, one way.
It is filled when ``kerasnets.models`` is imported, which ``import kerasnets`` (and
so any ``import kerasnets.registry``) does first.

A builder without a spec (a user's own model) can still be registered with
`register_model`; ``defaults`` are fixed arguments the caller's keyword arguments
override.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re
import types
from typing import Any, Callable, Mapping

from kerasnets._validate import check_choice, check_string, fail
from kerasnets.preprocessing import Preprocessing

__all__ = [
    "ModelInfo",
    "ModelSpec",
    "spec_table",
    "WidthSpace",
    "ModelEntry",
    "register_spec",
    "register_model",
    "get_model",
    "get_entry",
    "list_models",
    "entries",
    "WIDTH_ARGUMENT",
]

# The builder argument that takes a model's per-stage widths, in every family.
WIDTH_ARGUMENT = "stage_widths"


def _frozen_mapping(value) -> Mapping:
    return types.MappingProxyType(dict(value or {}))


@dataclasses.dataclass(frozen=True, eq=False)
class WidthSpace:
    """Which of a model's widths a width search varies (`kerasnets.tuning.search_space`).

    Attributes:
        kind: ``"stage"`` (one base width per stage, searched as an integer),
            ``"module"`` (one scale per Inception module) or ``"global"`` (only
            ``width_multiplier``).
        groups: ``"stage"``: ``{hp name: base width}`` in the order of the builder's
            ``stage_widths``; ``"module"``: ``{hp name: (module key, record of branch
            widths)}``.
        depth_group: models whose specs carry the same label differ only in depth
            and share the width groups (``"resnet_basic"``); the ``depth``
            hyperparameter moves among them (by `ModelSpec.depth`).
        module_layer: ``"module"`` kind: the name of a module's output layer, a
            ``str.format`` template of the module key (``"inception_{}_output"``).
        monotonic: the stage widths must not decrease (the CIFAR ResNets'
            zero-padding shortcuts only add channels).
    """

    kind: str = "global"
    groups: Mapping = dataclasses.field(default_factory=dict)
    depth_group: str | None = None
    module_layer: str = "{}"
    monotonic: bool = False

    def __post_init__(self):
        check_choice("kind", self.kind, ("stage", "module", "global"))
        object.__setattr__(self, "groups", _frozen_mapping(self.groups))

    @property
    def argument(self) -> str | None:
        """The builder argument that receives the searched widths (``None``: only the multiplier)."""
        return None if self.kind == "global" else WIDTH_ARGUMENT


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Facts about a model family that users, the data pipeline and exports need.

    Attributes:
        family: ``"resnet"``, ``"vgg"``, ...
        paper: the reference, for docs and the CLI.
        default_size: the default square input size (224, 299, 32).
        preprocessing: the input normalisation the family is trained with.
        default_classes: the default ``classes`` (1000; 10 for the CIFAR ResNets).
        min_size: the smallest square input the default options accept, computed
            from the family's own layer table with `min_input_size` (the test
            matrix checks it: one pixel less must raise).
    """

    family: str
    paper: str
    default_size: int
    preprocessing: Preprocessing
    default_classes: int = 1000
    min_size: int = 1


@dataclasses.dataclass(frozen=True, eq=False)
class ModelSpec:
    """One registered variant, declared once.

    Attributes:
        name: the registered name (``"resnet50"``), lowercase.
        builder_name: the public builder (``"ResNet50"``, ``kerasnets.ResNet50``).
        family: the family function ``family(*, model_name, <fixed arguments>,
            <contract arguments>, <family options>)`` that builds the model.
        arguments: the family function's fixed arguments for this variant
            (``{"depth": 50}``, ``{"config": "D", "batch_norm": True}``).
        info: its `ModelInfo` (family, paper, input size,
            preprocessing, minimum size).
        summary: the first paragraph of the builder's docstring.
        options_doc: the docstring text of the family options.
        example: the docstring's example line (default: ``model = kerasnets.X(weights=None)``).
        depth: the depth in the model's name (ResNet-50: 50, VGG-16: 16), ``None``
            for models without one; the depth search moves along it.
        presets: its ImageNet weight presets (`kerasnets.weights.Preset`), default first:
            each preset is declared here, once; the spec gives each its registered name
            (``Preset.for_model``). `kerasnets.weights.presets_of` returns them.
        widths: its searchable width groups (`WidthSpace`).
        feature_stages: ``{stage: layer name}`` that `kerasnets.feature_extractor`
            returns, finest first.
        aliases: other accepted names of builder arguments, ``{alias: argument}``
            (``{"block_widths": "stage_widths"}``).
    """

    name: str
    builder_name: str
    family: Callable[..., Any]
    info: ModelInfo
    summary: str
    arguments: Mapping = dataclasses.field(default_factory=dict)
    options_doc: str = ""
    example: str | None = None
    depth: int | None = None
    presets: tuple = ()
    widths: WidthSpace = WidthSpace()
    feature_stages: Mapping = dataclasses.field(default_factory=dict)
    aliases: Mapping = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if check_string("name", self.name) != self.name.lower():
            fail("name", "lowercase (a registered name)", self.name)
        for field in ("arguments", "feature_stages", "aliases"):
            object.__setattr__(self, field, _frozen_mapping(getattr(self, field)))
        object.__setattr__(self, "presets", tuple(p.for_model(self.name) for p in self.presets))


def spec_table(*specs: ModelSpec) -> Mapping[str, ModelSpec]:
    """A family module's specs by registered name, in the order given (``SPECS["resnet50"]``).

    Raises:
        ValueError: if two specs have the same name.
    """
    table: dict[str, ModelSpec] = {}
    for spec in specs:
        if spec.name in table:
            fail("specs", "specs of distinct names", spec.name, received=f"name={spec.name!r} twice")
        table[spec.name] = spec
    return types.MappingProxyType(table)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """What the registry holds for a name: the public builder, and its spec when declared."""

    name: str
    builder: Callable[..., Any]
    defaults: dict = dataclasses.field(default_factory=dict)
    spec: ModelSpec | None = None

    @property
    def info(self) -> ModelInfo:
        """The `kerasnets.models.ModelInfo` (input size, paper, preprocessing)."""
        return self.spec.info if self.spec is not None else self.builder.info

    @property
    def presets(self) -> tuple:
        """The model's ImageNet weight presets (`kerasnets.weights.Preset`), default first (``()``: none)."""
        return self.spec.presets if self.spec is not None else ()

    @property
    def feature_stages(self) -> dict:
        """``{stage: layer name}`` that `kerasnets.feature_extractor` returns, finest first."""
        return dict(self.spec.feature_stages) if self.spec is not None else {}

    @property
    def widths(self) -> WidthSpace | None:
        """The searchable width groups (`WidthSpace`); ``None`` for a builder without a spec."""
        return self.spec.widths if self.spec is not None else None

    def build(self, **kwargs):
        return self.builder(**{**self.defaults, **kwargs})


_REGISTRY: dict[str, ModelEntry] = {}


def _add(entry: ModelEntry):
    if entry.name in _REGISTRY:
        held = _REGISTRY[entry.name].builder
        raise ValueError(
            f"A model named '{entry.name}' is already registered "
            f"(by {held.__module__}.{held.__name__}). Received: name={entry.name!r}"
        )
    _REGISTRY[entry.name] = entry


def register_spec(spec: ModelSpec, builder: Callable) -> Callable:
    """Registers the public ``builder`` made from ``spec`` under ``spec.name``.

    Raises:
        ValueError: if the name is already registered.
    """
    _add(ModelEntry(spec.name, builder, spec=spec))
    return builder


def register_model(name: str | None = None, builder: Callable | None = None, **defaults):
    """Registers a builder without a spec under ``name`` (default: the builder's name, lowercased).

    Used as a decorator, ``@register_model()`` or ``@register_model("my_net")``;
    or as a call that registers a variant of an existing builder:
    ``register_model("my_vgg16_bn", kerasnets.VGG16, batch_norm=True)``.
    kerasnets' own models are declared as `ModelSpec` (`register_spec`).

    Raises:
        ValueError: if the name is already registered.
    """

    def _register(fn):
        _add(ModelEntry((name or fn.__name__).lower(), fn, dict(defaults)))
        return fn

    if builder is not None:
        return _register(builder)
    return _register


def get_entry(name: str) -> ModelEntry:
    """Returns the `ModelEntry` of ``name``; unknown names raise with suggestions."""
    check_string("name", name, expected="a model name (a string)")
    key = name.lower()
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown model '{name}'.{hint} See kerasnets.list_models() for all "
            f"{len(_REGISTRY)} models. Received: name={name!r}"
        )
    return _REGISTRY[key]


def get_model(name: str, /, **kwargs):
    """Builds the registered model ``name``.

    Args:
        name: a registered name such as ``"resnet50"`` (case-insensitive);
            positional-only, so that ``name=`` reaches the builder (the model's name).
        **kwargs: the builder's arguments (``include_top``, ``classes``, ``name``, ...).

    Example:

    >>> model = kerasnets.get_model("resnet18", classes=10, input_shape=(64, 64, 3))
    """
    return get_entry(name).build(**kwargs)


def _natural_key(name: str):
    """``resnet18`` before ``resnet101``: runs of digits compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def list_models(pattern: str | None = None) -> list[str]:
    """The registered names in natural order (``resnet18`` before ``resnet101``); ``pattern``
    is a shell-style filter (``"resnet*"``)."""
    if pattern is not None and not isinstance(pattern, str):
        fail("pattern", "a shell-style pattern such as 'resnet*', or None", pattern)
    names = sorted(_REGISTRY, key=_natural_key)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern.lower())]
    return names


def entries(pattern: str | None = None) -> list[ModelEntry]:
    """The `ModelEntry` of every registered name (of those matching ``pattern``), in `list_models` order."""
    return [_REGISTRY[n] for n in list_models(pattern)]
