"""What an export serves, resolved and validated before any work is done.

`resolve_spec` turns the user's arguments plus what the model and the registry
know (its model card: registered name, builder arguments, weights, preprocessing;
input size, number of classes, whether the classifier ends in a softmax) into an
`ExportSpec`, raising a clear ``ValueError`` for anything inconsistent. The model's
``name`` is never read: a renamed model exports as what it is. `exportable_model` strips auxiliary heads and checks one output is left.
"""

from __future__ import annotations

import dataclasses
import datetime
import os

import keras

from kerasnets._keras_compat import nested_layers, producing_layer
from kerasnets._validate import check_choice, check_instance, check_int, check_size, fail
from kerasnets._version import versions
from kerasnets.card import ModelCard, model_card
from kerasnets.layers import channels_of, spatial_shape
from kerasnets.models import inference_model, outputs_logits
from kerasnets.preprocessing import Preprocessing
from kerasnets.registry import get_entry, list_models

__all__ = ["ExportSpec", "resolve_spec", "exportable_model", "find_lambda_layers", "OUTPUT_KINDS"]

# What the model's output is: "probabilities" are served as they are, "logits"
# go through a softmax in the serving graph, "features" (include_top=False)
# are served as they are, with no top-k.
OUTPUT_KINDS = ("auto", "probabilities", "logits", "features")
_PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """Everything an export needs besides the model itself."""

    model_name: str | None
    image_size: tuple  # (height, width) the model sees
    preprocessing: Preprocessing
    output: str  # "probabilities" | "logits" | "features"
    num_classes: int | None
    class_names: tuple | None
    top_k: int  # 0 for "features"
    builder_kwargs: dict | None = None
    source: str | None = None
    card: ModelCard | None = None  # the model's record (kerasnets.model_card), if it has one

    def metadata(self, *, format, fold_batch_norm=False, signatures=None, extra=None) -> dict:
        """The readable record of what produced an export (written as JSON)."""
        family = None
        if self.model_name is not None:
            try:
                family = _model_info(self.model_name).family
            except ValueError:
                family = None
        record = {
            "format": format,
            "model_name": self.model_name,
            "family": family,
            "builder_kwargs": self.builder_kwargs,
            # The weights the model was loaded from: preset, source, file, hash (its model card).
            "weights": None if self.card is None or self.card.weights is None else self.card.weights.to_dict(),
            "input_size": list(self.image_size),
            "preprocessing": {
                **self.preprocessing.to_dict(),
                "description": (
                    "RGB in [0, 255]; the central square whose side is crop_fraction of "
                    "the shorter side, resized (bilinear, antialiased) to input_size; then "
                    "(pixels - mean) / std per channel (kerasnets.data.preprocess_for_eval)"
                ),
            },
            "output": self.output,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names) if self.class_names else None,
            "top_k": self.top_k,
            "fold_batch_norm": bool(fold_batch_norm),
            "signatures": signatures,
            "source": self.source,
            "versions": versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        record.update(extra or {})
        return record


def exportable_model(model):
    """`kerasnets.inference_model` (auxiliary heads stripped), checked to have one output."""
    check_instance("model", model, keras.Model, "a keras.Model")
    model = inference_model(model)
    if len(model.outputs) != 1:
        fail("model", "a model with one output, or with auxiliary heads and a 'main' output, to be exported",
             model, received=f"model outputs {list(model.output_names)}")
    return model


def find_lambda_layers(model) -> list:
    """Names of the `keras.layers.Lambda` layers anywhere in ``model`` (nested models too)."""
    found = []
    for layer in nested_layers(model):
        if isinstance(layer, keras.layers.Lambda):
            found.append(layer.name)
    return found


def _output_kind(model) -> str:
    tensor = model.outputs[0]
    if len(tensor.shape) != 2:
        return "features"
    layer = producing_layer(tensor)
    config = layer.get_config()
    activation = config.get("activation")
    if isinstance(layer, keras.layers.Softmax):
        return "probabilities"
    if isinstance(layer, (keras.layers.Dense, keras.layers.Activation)):
        if activation in _PROBABILITY_ACTIVATIONS:
            return "probabilities"
        if isinstance(layer, keras.layers.Dense) and outputs_logits(model):
            return "logits"
    if isinstance(layer, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)):
        return "features"
    raise ValueError(
        f"Cannot tell whether the output of layer '{layer.name}' is probabilities, logits or "
        "features. Pass output='probabilities', 'logits' or 'features'. "
        f"Received: output layer {type(layer).__name__} with activation={activation!r}"
    )


def _as_preprocessing(value) -> Preprocessing:
    if isinstance(value, Preprocessing):
        return value
    if isinstance(value, str):
        from kerasnets.data import get_preprocessing  # kerasnets.data (tensorflow-datasets) only when used

        return get_preprocessing(value)
    if isinstance(value, dict):
        fields = {f.name for f in dataclasses.fields(Preprocessing)}
        try:
            return Preprocessing(**{k: v for k, v in value.items() if k in fields})
        except TypeError:
            pass
    fail("preprocessing", "a kerasnets.preprocessing.Preprocessing, its name or its to_dict()", value)


def _as_size(image_size):
    return check_size("image_size", image_size)


def _model_info(name):
    return get_entry(name).info


def _registered(name) -> bool:
    return isinstance(name, str) and name.lower() in list_models()


def _registered_name(card, model_name, preprocessing):
    """The registered name (given, else the model card's) and its `ModelInfo`."""
    if model_name is not None:
        if not _registered(model_name) and preprocessing is None:
            _model_info(model_name)  # raises "Unknown model ... Did you mean"
        if card is not None and str(model_name).lower() != card.model:
            fail("model_name", f"None or '{card.model}', the registered name in the model's model card",
                 model_name)
        model_name = model_name.lower() if _registered(model_name) else model_name
    elif card is not None:
        model_name = card.model
    return model_name, _model_info(model_name) if _registered(model_name) else None


def _preprocessing_of(model, card, model_name, info, preprocessing):
    """Given, else the model card's (its preset's, or what training fed it), else the registered model's."""
    if preprocessing is None and card is not None:
        preprocessing = card.preprocessing
    if preprocessing is None:
        if info is None:
            raise ValueError(
                f"Cannot tell which preprocessing the model '{model.name}' expects: it carries no "
                "kerasnets model card (kerasnets builders attach one; see kerasnets.model_card) and "
                "no registered name was given. Pass model_name= (e.g. 'resnet50') or "
                "preprocessing= (e.g. kerasnets.preprocessing.IMAGENET_MEAN_STD). "
                f"Received: model.name={model.name!r}, model_name={model_name!r}"
            )
        preprocessing = info.preprocessing
    return _as_preprocessing(preprocessing)


def _image_size_of(model, info, image_size):
    """The square ``(height, width)`` the serving graph resizes to, checked against the input."""
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3:
        fail("model", "an image model (4D inputs) to be exported", model, received=f"model input shape {shape}")
    spatial, channels = spatial_shape(shape), channels_of(shape)
    if channels != 3:
        fail("model", "a model with 3 input channels (the serving signatures take RGB images)", model,
             received=f"model input shape {shape}")
    if image_size is not None:
        image_size = _as_size(image_size)
        if any(d is not None and d != s for d, s in zip(spatial, image_size)):
            fail("image_size", f"None or the model's input size {spatial}", image_size)
    elif all(d is not None for d in spatial):
        image_size = tuple(int(d) for d in spatial)
    elif info is not None:
        image_size = (info.default_size, info.default_size)
    else:
        fail("image_size", "given for a model that takes any input size (it is the size the serving graph "
             "resizes and crops images to)", image_size, received=f"image_size=None, model input shape {shape}")
    if image_size[0] != image_size[1]:
        fail("image_size", "square (the serving preprocessing, kerasnets.data.preprocess_for_eval, crops "
             "square images)", image_size)
    return image_size


def _num_classes(model, kind):
    out_shape = tuple(model.outputs[0].shape[1:])
    if kind != "features" and len(out_shape) != 1:
        fail("output", "'features' for a model without a 2D (batch, classes) output", kind,
             received=f"output={kind!r}, model output shape {out_shape}")
    return int(out_shape[0]) if kind != "features" else None


def _check_class_names(class_names, kind, num_classes):
    if class_names is None:
        return None
    if kind == "features":
        fail("class_names", "None for a model without a classifier (this one outputs features: "
             "include_top=False)", class_names, received=f"class_names of length {len(class_names)}")
    if isinstance(class_names, (str, bytes)) or not all(isinstance(c, str) for c in class_names):
        fail("class_names", "a list of strings", class_names, received=f"class_names={class_names!r:.200}")
    class_names = tuple(class_names)
    if len(class_names) != num_classes:
        fail("class_names", f"one name per class ({num_classes})", class_names,
             received=f"{len(class_names)} class_names")
    return class_names


def resolve_spec(
    model,
    *,
    model_name=None,
    image_size=None,
    preprocessing=None,
    class_names=None,
    top_k=5,
    output="auto",
    builder_kwargs=None,
    source=None,
) -> ExportSpec:
    """Validates the export arguments against ``model`` (the inference model).

    What the model is comes from its `kerasnets.model_card`: ``model_name``,
    ``preprocessing`` and ``builder_kwargs`` default to the card's; without a card,
    ``model_name`` or ``preprocessing`` must be given.
    """
    check_instance("model", model, keras.Model, "a keras.Model")
    if len(model.inputs) != 1:
        fail("model", "a single-input image model to be exported", model,
             received=f"model with {len(model.inputs)} inputs")
    check_choice("output", output, OUTPUT_KINDS)
    check_int("top_k", top_k)
    if builder_kwargs is not None:
        check_instance("builder_kwargs", builder_kwargs, dict, "a dict")

    card = model_card(model)
    model_name, info = _registered_name(card, model_name, preprocessing)
    preprocessing = _preprocessing_of(model, card, model_name, info, preprocessing)
    if builder_kwargs is None and card is not None:
        builder_kwargs = dict(card.builder_kwargs)
    image_size = _image_size_of(model, info, image_size)
    kind = _output_kind(model) if output == "auto" else output
    num_classes = _num_classes(model, kind)
    class_names = _check_class_names(class_names, kind, num_classes)
    k = 0 if kind == "features" else min(top_k, num_classes)
    return ExportSpec(
        model_name=model_name,
        image_size=image_size,
        preprocessing=preprocessing,
        output=kind,
        num_classes=num_classes,
        class_names=class_names,
        top_k=k,
        builder_kwargs=dict(builder_kwargs) if builder_kwargs is not None else None,
        source=os.fspath(source) if source is not None else None,
        card=card,
    )
