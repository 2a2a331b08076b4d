"""The model registry: one registered builder per variant, its name typed once.

Like torchvision's ``_api.register_model`` and timm's ``@register_model``: a builder
is registered under a lowercase name, ``get_model(name, **kwargs)`` builds it and
``list_models()`` lists the names. Registering a name twice raises.

Variants that are a builder plus fixed arguments (``vgg16_bn`` is ``VGG16`` with
``batch_norm=True``) are registered with ``defaults``; the caller's keyword
arguments override them.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from typing import Any, Callable

__all__ = ["ModelEntry", "register_model", "get_model", "get_entry", "list_models"]


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """What the registry knows of a model: its builder and the fixed arguments."""

    name: str
    builder: Callable[..., Any]
    defaults: dict = dataclasses.field(default_factory=dict)

    @property
    def info(self):
        """The family's `kerasnets.models.ModelInfo` (input size, paper, preprocessing)."""
        return self.builder.info

    @property
    def presets(self):
        """The model's ImageNet weight presets (`kerasnets.weights.Preset`), default first."""
        from kerasnets.weights import presets_of

        return presets_of(self.name)

    @property
    def feature_stages(self) -> dict:
        """``{stage: layer name}`` that `kerasnets.feature_extractor` returns, finest first."""
        return dict(getattr(self.builder, "feature_stages", {}))

    def build(self, **kwargs):
        return self.builder(**{**self.defaults, **kwargs})


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str | None = None, builder: Callable | None = None, **defaults):
    """Registers a builder under ``name`` (default: the builder's name, lowercased).

    Used as a decorator, ``@register_model()`` or ``@register_model("vgg11_lrn")``;
    or as a call that registers a variant of an existing builder:
    ``register_model("vgg16_bn", VGG16, batch_norm=True)``.

    Raises:
        ValueError: if the name is already registered.
    """

    def _register(fn):
        key = (name or fn.__name__).lower()
        if key in _REGISTRY:
            raise ValueError(
                f"A model named '{key}' is already registered "
                f"(by {_REGISTRY[key].builder.__module__}.{_REGISTRY[key].builder.__name__}). "
                f"Received: name={key!r}"
            )
        _REGISTRY[key] = ModelEntry(key, fn, dict(defaults))
        return fn

    if builder is not None:
        return _register(builder)
    return _register


def _ensure_models_imported():
    # Model modules register themselves on import; importing the package does it.
    import kerasnets.models  # noqa: F401


def get_entry(name: str) -> ModelEntry:
    """Returns the `ModelEntry` of ``name``; unknown names raise with suggestions."""
    _ensure_models_imported()
    if not isinstance(name, str):
        raise ValueError(f"A model name must be a string. Received: name={name!r}")
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


def list_models(pattern: str | None = None) -> list[str]:
    """The registered names, sorted; ``pattern`` is a shell-style filter (``"resnet*"``)."""
    _ensure_models_imported()
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern.lower())]
    return names
