"""Named feature stages: a backbone whose outputs are a dict of stage outputs.

Each registered model declares its stages in its spec (``ModelSpec.feature_stages``, e.g. ResNet
``conv2`` .. ``conv5``, VGG ``block1`` .. ``block5``, Inception the last module on
each grid), finest first. As keras-hub's ``pyramid_outputs``, the result is a
model with dict outputs, for detection or segmentation heads.
"""

from __future__ import annotations

import keras

from kerasnets._validate import fail
from kerasnets.card import model_card
from kerasnets.registry import get_entry, list_models

__all__ = ["feature_extractor", "feature_stages"]


def feature_stages(name: str) -> dict:
    """``{stage: layer name}`` of a registered model, finest first."""
    return get_entry(name).feature_stages


def _stages_of_model(model):
    """The stages its model card's registered model declares (those the model holds); for a
    model without a card, the family whose stage layers it holds (of those, the one whose
    stages end deepest: a ResNet-50 also has ResNet-18's conv5_block2_out)."""
    position = {layer.name: i for i, layer in enumerate(model.layers)}
    card = model_card(model)
    if card is not None:
        return {s: layer for s, layer in get_entry(card.model).feature_stages.items() if layer in position}
    matches = [get_entry(name).feature_stages for name in list_models()]
    matches = [stages for stages in matches if stages and set(stages.values()) <= position.keys()]
    if matches:
        return max(matches, key=lambda stages: [position[layer] for layer in reversed(stages.values())])
    fail("model_or_name", f"a kerasnets model or a registered name ({model.name} carries no kerasnets "
         "model card and has none of the declared feature stages of the registered models)", model,
         received=f"model_or_name={model.name!r}")


def feature_extractor(model_or_name, stages=None, **builder_kwargs):
    """A model whose outputs are ``{stage name: feature map}``.

    Args:
        model_or_name: a registered name (``"resnet50"``; the model is built with
            ``include_top=False`` unless ``builder_kwargs`` say otherwise) or a
            built kerasnets model (its `kerasnets.model_card` names its stages, whatever
            the model's name).
        stages: the stage names to return (default: all the declared ones; see
            `kerasnets.models.feature_stages`).
        **builder_kwargs: arguments of the builder, e.g. ``weights="imagenet"``,
            ``input_shape=(None, None, 3)``.

    Returns:
        A `keras.Model` with dict outputs (Keras orders dict outputs by name), sharing the
        model's layers, its model card included.

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
