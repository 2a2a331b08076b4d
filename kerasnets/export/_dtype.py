"""Re-building a model under another dtype policy (same layers, same weights)."""

from __future__ import annotations

import keras

from kerasnets._keras_compat import nested_layers, producing_layer
from kerasnets._validate import check_keras_name

__all__ = ["with_dtype_policy", "policy_names"]


def policy_names(model) -> set:
    """The dtype policies of ``model``'s layers, by name (``{"mixed_bfloat16"}``)."""
    return {
        layer.dtype_policy.name
        for layer in nested_layers(model)
        if getattr(layer, "dtype_policy", None) is not None
        and not isinstance(layer, keras.layers.InputLayer)
    }


def with_dtype_policy(model, policy: str | None):
    """``model`` computing under ``policy`` (e.g. ``"float32"``); itself if it already does.

    A copy is built layer for layer with the policy in every layer's config and
    given the original weights (variables are float32 under every mixed policy).
    Under a mixed policy the layer that produces the output keeps its own policy
    (the classifier computes in float32, as `keras.mixed_precision` advises).
    """
    if policy is None or policy_names(model) <= {policy}:
        return model
    check_keras_name("compute_dtype", policy, keras.dtype_policies.get,
                     "None or a Keras dtype policy such as 'float32' or 'mixed_bfloat16'")

    keep = {producing_layer(t).name for t in model.outputs} if policy != "float32" else set()

    def clone_function(layer):
        config = layer.get_config()
        if "dtype" in config and layer.name not in keep:
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=clone_function)
    clone.set_weights(model.get_weights())
    return clone
