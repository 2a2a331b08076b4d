"""Pretrained ImageNet weights: presets, the weight cache, preprocessing and class names.

>>> model = kerasnets.ResNet50(weights="imagenet")           # keras.applications' file  # doctest: +SKIP
>>> model = kerasnets.ResNet50(weights="torchvision_v2")     # builds downsample_on="3x3"  # doctest: +SKIP
>>> model = kerasnets.GoogLeNet(weights="imagenet")          # BVLC's Caffe model (docs/caffe.md)  # doctest: +SKIP
>>> kerasnets.weights.list_presets("resnet50")               # doctest: +SKIP

Files are kept in `cache_dir` (``$KERASNETS_HOME/weights``, by default
``~/.keras/kerasnets/weights``) under their published names; a file placed there by
hand is used offline. ``KERASNETS_OFFLINE=1`` never downloads.
"""

from kerasnets.weights._api import (
    WeightsRequest,
    decode_predictions,
    fine_tuning_model,
    get_preset,
    imagenet_classes,
    load_file,
    load_preset,
    models_with_weights,
    preprocess_input,
    preprocessing_for,
    presets_of,
    resolve_weights,
)
from kerasnets.weights._convert import ConversionError
from kerasnets.weights._files import WeightFile, cache_dir, fetch, file_hash
from kerasnets.weights._presets import PRESETS, Preset
from kerasnets.weights._readers import WeightFileError

__all__ = [
    "Preset", "PRESETS", "WeightFile", "WeightsRequest", "ConversionError", "WeightFileError",
    "cache_dir", "fetch", "file_hash", "get_preset", "list_presets", "presets_of",
    "models_with_weights", "load_preset", "load_file", "preprocess_input", "preprocessing_for",
    "decode_predictions", "imagenet_classes", "fine_tuning_model", "resolve_weights",
]


def list_presets(model: str | None = None) -> list[Preset]:
    """Every preset (of ``model`` when given), in the order the models' specs name them."""
    if model is not None:
        return list(presets_of(model))
    return [p for name in models_with_weights() for p in presets_of(name)]
