"""Named feature stages: a backbone whose outputs are a dict of stage outputs.

Each registered model declares its stages in its spec (``ModelSpec.feature_stages``, e.g. ResNet
``conv2`` .. ``conv5``, VGG ``block1`` .. ``block5``, Inception the last module on
each grid), finest first. As keras-hub's ``pyramid_outputs``, the result is a
model with dict outputs, for detection or segmentation heads.
"""

from __future__ import annotations

import keras

from kerasnets._validate import fail
from kerasnets.registry import get_entry, list_models

__all__ = ["feature_extractor", "feature_stages"]


def feature_stages(name: str) -> dict:
    """``{stage: layer name}`` of a registered model, finest first."""
    return get_entry(name).feature_stages


def _stages_of_model(model):
    position = {layer.name: i for i, layer in enumerate(model.layers)}
    key = model.name.lower()
    registered = list_models()
    if key in registered and set(get_entry(key).feature_stages.values()) <= position.keys():
        return get_entry(key).feature_stages
    # A model renamed: of the families whose stage layers it has all of, the one whose
    # stages end deepest (a renamed ResNet-50 also has ResNet-18's conv5_block2_out).
    matches = [get_entry(name).feature_stages for name in registered]
    matches = [stages for stages in matches if stages and set(stages.values()) <= position.keys()]
    if matches:
        return max(matches, key=lambda stages: [position[layer] for layer in reversed(stages.values())])
    fail("model_or_name", f"a kerasnets model or a registered name ({model.name} has none of the "
         "declared feature stages of the registered models)", model, received=f"model_or_name={model.name!r}")


def feature_extractor(model_or_name, stages=None, **builder_kwargs):
    """A model whose outputs are ``{stage name: feature map}``.

    Args:
        model_or_name: a registered name (``"resnet50"``; the model is built with
            ``include_top=False`` unless ``builder_kwargs`` say otherwise) or a
            built kerasnets model.
        stages: the stage names to return (default: all the declared ones; see
            `kerasnets.models.feature_stages`).
        **builder_kwargs: arguments of the builder, e.g. ``weights="imagenet"``,
            ``input_shape=(None, None, 3)``.

    Returns:
        A `keras.Model` with dict outputs (Keras orders dict outputs by name).

    Example:

    >>> backbone = kerasnets.feature_extractor("resnet50", input_shape=(224, 224, 3))
    >>> features = backbone(images)  # {"conv2": (n, 56, 56, 256), ..., "conv5": (n, 7, 7, 2048)}  # doctest: +SKIP
    """
    if isinstance(model_or_name, str):
        entry = get_entry(model_or_name)
        declared = entry.feature_stages
        if not declared:
            fail("model_or_name", f"a model with feature stages ({entry.name} declares none)", model_or_name)
        model = entry.build(**{"include_top": False, **builder_kwargs})
    else:
        if builder_kwargs:
            fail("builder_kwargs", "empty for a built model (builder arguments apply to a model built "
                 "from its name)", builder_kwargs, received=f"builder_kwargs={sorted(builder_kwargs)}")
        model = model_or_name
        declared = _stages_of_model(model)
    if stages is None:
        stages = list(declared)
    elif isinstance(stages, str):
        stages = [stages]
    unknown = [s for s in stages if s not in declared]
    if unknown or not stages:
        fail("stages", f"some of the feature stages of {model.name}: its stages are "
             f"{', '.join(declared)}", stages)
    outputs = {s: model.get_layer(declared[s]).output for s in stages}
    return keras.Model(model.inputs, outputs, name=f"{model.name}_features")
