"""What a model is: the record every kerasnets builder attaches to the model it builds.

A `ModelCard` holds the registered name, every builder argument that differs from its
default, the weights the model was loaded from (preset, source, file, hash) and the
preprocessing its inputs need. `model_card(model)` reads it; ``None`` means kerasnets
did not build the model.

The record lives in the model's graph, in a `ModelCardLayer`: an identity layer right
after the input, registered and serialisable like every kerasnets layer. So it is saved
in ``.keras`` files and restored by ``keras.models.load_model`` (``safe_mode=True``, no
``custom_objects``) under TensorFlow, JAX and torch, and every model made from the same
graph carries it: ``keras.models.clone_model`` (with or without a ``clone_function``),
`kerasnets.inference_model`, `kerasnets.feature_extractor`, the models training saves,
and a model that puts a new head on a kerasnets backbone (``keras.Model(base.input,
head)``, or a model that calls the backbone as a layer): the record then describes the
kerasnets model inside, whose preprocessing the derived model's inputs still need. A
model that holds two records (two kerasnets models) has none of its own: `model_card`
returns ``None``. The model's name is never read.

Readers: export (the serving signature's preprocessing, ``kerasnets_export.json``),
`kerasnets.training.recipe_for`, `kerasnets.feature_extractor`, the profiler,
`kerasnets.preprocess_input` and `kerasnets.data.load` given a built model.
"""

from __future__ import annotations

import dataclasses
import json
import types
from typing import Mapping

import keras

from kerasnets._keras_compat import nested_layers
from kerasnets._validate import check_instance, fail
from kerasnets.preprocessing import Preprocessing

__all__ = ["ModelCard", "WeightsOrigin", "ModelCardLayer", "model_card", "set_model_card", "CARD_LAYER"]

# The name of the layer that holds the record (one per kerasnets model).
CARD_LAYER = "model_card"


def _plain(value):
    """``value`` as JSON holds it: records (NamedTuples) become dicts, tuples lists, a
    callable its Keras name. What a builder reads back the same way (``get_model(name,
    **builder_kwargs)`` rebuilds the model)."""
    if hasattr(value, "_asdict"):
        value = value._asdict()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # a NumPy number
        return value.item()
    if callable(value):
        serialized = keras.saving.serialize_keras_object(value)
        return serialized if isinstance(serialized, str) else getattr(value, "__name__", repr(value))
    return json.loads(json.dumps(value, default=str))


@dataclasses.dataclass(frozen=True)
class WeightsOrigin:
    """The weights a model was loaded from.

    Attributes:
        preset: the preset's name (``"torchvision_v2"``); ``None`` for a file given by path.
        source: who publishes the weights (``"torchvision resnet50 IMAGENET1K_V2
            (download.pytorch.org)"``), or ``"file"``.
        file: the file's published name (a preset) or its path.
        file_hash: the file's hash: the published one a preset's file was checked
            against, the SHA-256 of a file given by path.
        new_head: only the backbone came from the file; the classifier is new
            (fine-tuning, ``kerasnets train --weights``).
    """

    preset: str | None
    source: str
    file: str
    file_hash: str
    new_head: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """What a model built by kerasnets is (see the module's docstring).

    Attributes:
        model: the registered name (``"resnet50"``), whatever the model's ``name``.
        builder_kwargs: every argument of the builder that differs from its default
            (``width_multiplier``, ``residual``, ``downsample_on``, ``classes``,
            ``include_top``, ``pooling``, ``input_shape``, ...; a preset's architecture
            arguments included; not ``weights`` nor ``name``), as JSON holds them:
            ``kerasnets.get_model(card.model, **card.builder_kwargs)`` rebuilds the
            architecture.
        preprocessing: what the model's inputs need: the preset's, the model's own for
            random or file weights (`kerasnets.get_model_info(name).preprocessing`), and
            after ``kerasnets train`` the preprocessing the training data was fed with
            (its evaluation crop included).
        weights: where the weights came from (`WeightsOrigin`); ``None``: randomly
            initialised.
    """

    model: str
    builder_kwargs: Mapping
    preprocessing: Preprocessing
    weights: WeightsOrigin | None = None

    def __post_init__(self):
        object.__setattr__(self, "builder_kwargs", types.MappingProxyType(_plain(dict(self.builder_kwargs))))

    def replace(self, **changes) -> "ModelCard":
        """A copy with some fields changed (``card.replace(preprocessing=...)``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The record as plain JSON data (what the model's config holds)."""
        return {
            "model": self.model,
            "builder_kwargs": dict(self.builder_kwargs),
            "preprocessing": _plain(self.preprocessing.to_dict()),
            "weights": None if self.weights is None else self.weights.to_dict(),
        }

    @classmethod
    def from_dict(cls, data) -> "ModelCard":
        """The card of `to_dict`'s data (from a saved model's config)."""
        check_instance("card", data, Mapping, "a dict written by ModelCard.to_dict")
        try:
            pre = data["preprocessing"]
            weights = data.get("weights")
            return cls(
                model=data["model"],
                builder_kwargs=data.get("builder_kwargs") or {},
                preprocessing=Preprocessing(pre["name"], tuple(pre["mean"]), tuple(pre["std"]),
                                            float(pre["crop_fraction"])),
                weights=None if weights is None else WeightsOrigin(**weights),
            )
        except (KeyError, TypeError) as error:
            fail("card", f"a dict written by ModelCard.to_dict (missing or unexpected: {error})", data)

    def describe(self) -> str:
        """One line: ``resnet50 (width_multiplier=0.5); weights torchvision_v1; preprocessing ...``."""
        kwargs = ", ".join(f"{k}={v!r}" for k, v in self.builder_kwargs.items())
        weights = "random" if self.weights is None else (self.weights.preset or self.weights.file)
        if self.weights is not None and self.weights.new_head:
            weights += " (backbone; new head)"
        return (f"{self.model}" + (f" ({kwargs})" if kwargs else "") + f"; weights {weights}; "
                f"preprocessing {self.preprocessing.name} (crop {self.preprocessing.crop_fraction:.3f})")


@keras.saving.register_keras_serializable(package="kerasnets")
class ModelCardLayer(keras.layers.Identity):
    """An identity layer that holds a model's `ModelCard` in its config.

    kerasnets puts it right after a model's input (named ``model_card``); it passes its
    input on unchanged, whatever its dtype, and has no weights.

    Args:
        card: a `ModelCard`, its `ModelCard.to_dict`, or ``None`` (filled by the builder).
    """

    def __init__(self, card=None, **kwargs):
        kwargs.pop("autocast", None)
        super().__init__(autocast=False, **kwargs)  # passes float16 and float32 as they come
        self.card = card if card is None or isinstance(card, ModelCard) else ModelCard.from_dict(card)

    def get_config(self):
        config = super().get_config()
        config["card"] = None if self.card is None else self.card.to_dict()
        return config


def _card_layers(model, filled=True):
    """The `ModelCardLayer`s of ``model``, nested models' included (with a card, if ``filled``)."""
    return [layer for layer in nested_layers(model)
            if isinstance(layer, ModelCardLayer) and (layer.card is not None or not filled)]


def model_card(model) -> ModelCard | None:
    """The `ModelCard` of ``model``, or ``None`` when kerasnets did not build it.

    Example:

    >>> model = kerasnets.ResNet50(weights=None, width_multiplier=0.5, name="backbone")
    >>> kerasnets.model_card(model).model, dict(kerasnets.model_card(model).builder_kwargs)
    ('resnet50', {'width_multiplier': 0.5})
    """
    check_instance("model", model, keras.Model, "a keras.Model", context="model_card")
    layers = _card_layers(model)
    return layers[0].card if len(layers) == 1 else None


def set_model_card(model, card: ModelCard) -> None:
    """Replaces the record of a model kerasnets built (training records what it fed the model).

    Raises:
        ValueError: for a model without exactly one `ModelCardLayer`.
    """
    check_instance("card", card, ModelCard, "a kerasnets.card.ModelCard")
    check_instance("model", model, keras.Model, "a keras.Model", context="set_model_card")
    layers = _card_layers(model, filled=False)
    if len(layers) != 1:
        fail("model", "a model built by a kerasnets builder (it holds one model_card layer)", model,
             received=f"model with {len(layers)} model_card layers")
    layers[0].card = card
