"""Inception v2 (the paper's Table 1) and v3 (the released layout, = keras.applications).

The registry matrix covers the contract options of ``inception_v2`` and
``inception_v3``; this file covers the architecture against its references.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasnets
from kerasnets.models import inception
from kerasnets.models._multi_output import AuxiliaryClassifierModel
from kerasnets.preprocessing import INCEPTION

# keras.applications' stage outputs, in order, and ours.
KERAS_STAGES = [f"mixed{i}" for i in range(11)]
OUR_STAGES = ["mixed5b", "mixed5c", "mixed5d", "mixed6a", "mixed6b", "mixed6c", "mixed6d",
              "mixed6e", "mixed7a", "mixed7b", "mixed7c"]


def _random_weights(model, seed=0):
    """Random values for every weight, BatchNorm statistics included (variances positive)."""
    rng = np.random.default_rng(seed)
    return [
        rng.uniform(0.5, 1.5, w.shape).astype("float32") if "variance" in w.path
        else (0.1 * rng.normal(size=w.shape)).astype("float32")
        for w in model.weights
    ]


def test_v3_matches_keras_applications_layer_for_layer(no_random_init):
    ours = kerasnets.InceptionV3(weights=None, input_shape=(75, 75, 3))
    reference = keras.applications.InceptionV3(weights=None, input_shape=(75, 75, 3))
    assert ours.count_params() == reference.count_params() == 23_851_784
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in reference.weights]
    # Same weights, same function: every stage output and the predictions agree.
    weights = _random_weights(reference)
    reference.set_weights(weights)
    ours.set_weights(weights)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 75, 75, 3)).astype("float32")
    ours_stages = keras.Model(ours.input, [ours.get_layer(n).output for n in OUR_STAGES] + [ours.output])
    ref_stages = keras.Model(reference.input, [reference.get_layer(n).output for n in KERAS_STAGES]
                             + [reference.output])
    for name, a, b in zip(OUR_STAGES + ["predictions"], ours_stages(x), ref_stages(x)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=name)
    # Our own hierarchical names.
    names = {layer.name for layer in ours.layers}
    assert {"conv1a_conv", "mixed5b_b1_conv", "mixed5b_b5_conv", "mixed6b_b7dbl_4_conv",
            "mixed7a_b3dbl_3_conv", "mixed7b_b3_concat", "predictions"} <= names
    assert not any(name.startswith(("conv2d", "batch_normalization")) for name in names)


def test_v3_settings(no_random_init):
    model = kerasnets.InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3))
    bn = model.get_layer("mixed6b_b7_7x1_bn")
    assert (bn.epsilon, bn.scale, bn.center) == (1e-3, False, True)
    assert model.get_layer("mixed6b_b7_7x1_conv").bias is None
    assert tuple(model.get_layer("mixed6b_b7_7x1_conv").kernel.shape) == (7, 1, 128, 192)
    assert model.name == "inception_v3"
    info = kerasnets.get_model_info("inception_v3")
    assert (info.default_size, info.min_size, info.preprocessing) == (299, 75, INCEPTION)
    assert kerasnets.get_model_info("inception_v2").preprocessing == INCEPTION
    with pytest.raises(ValueError, match="at least 75x75"):
        kerasnets.InceptionV3(weights=None, input_shape=(74, 74, 3))


def test_v3_auxiliary_head_trains_saves_and_loads(tmp_path):
    model = kerasnets.InceptionV3(
        weights=None, aux_classifiers=True, input_shape=(299, 299, 3), classes=5, width_multiplier=0.125
    )
    assert isinstance(model, AuxiliaryClassifierModel)
    assert model.output_names == ["aux", "main"] and model.aux_loss_weight == 0.4
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["aux_pool"] == (5, 5, 96)  # on mixed6e: 17x17
    assert shapes["aux_fc_relu"] == (1, 1, 96)
    assert {"aux_proj_bn", "aux_fc_bn"} <= set(shapes)  # BN-auxiliary
    # Batch of 2: BatchNorm over a 1x1 map of one image would output its beta.
    x = np.random.default_rng(0).uniform(-1, 1, (2, 299, 299, 3)).astype("float32")
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        loss = tf.reduce_sum(out["main"] * [1.0, -2, 3, 0, 1])
        loss += tf.reduce_sum(out["aux"] * [2.0, 1, -1, 3, 0])
    grads = tape.gradient(loss, model.trainable_weights)
    for weight, grad in zip(model.trainable_weights, grads):
        assert grad is not None and np.any(grad.numpy() != 0), weight.path
    assert len([w for w in model.trainable_weights if w.path.startswith("aux")]) == 6
    path = os.fspath(tmp_path / "v3.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded) is AuxiliaryClassifierModel and loaded.aux_loss_weight == 0.4
    expected, got = model(x), loaded(x)
    for key in ("main", "aux"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6)
    serving = kerasnets.inference_model(loaded)
    assert not any(layer.name.startswith("aux") for layer in serving.layers)
    with pytest.raises(ValueError, match="at least 299x299"):
        kerasnets.InceptionV3(weights=None, aux_classifiers=True, input_shape=(298, 298, 3))


def test_v3_auxiliary_head_count_matches_torchvision(no_random_init):
    model = kerasnets.InceptionV3(weights=None, aux_classifiers=True)
    # 1x1 conv 128 + BN, 5x5 conv 768 + BN, linear 768 -> 1000
    assert model.count_params() - 23_851_784 == 768 * 128 + 3 * 128 + 25 * 128 * 768 + 3 * 768 + 769_000
    # torchvision's inception_v3(aux_logits=True) counts each BN's gamma instead of
    # the two moving statistics: ours minus one per BN channel.
    bn_channels = sum(int(w.shape[0]) for w in model.weights if w.path.endswith("moving_mean"))
    assert model.count_params() - bn_channels == 27_161_264


def test_v2_follows_table1(no_random_init):
    model = kerasnets.InceptionV2(weights=None)
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    # The stem (Table 1's first seven rows).
    assert shapes["conv1_relu"] == (149, 149, 32)
    assert shapes["conv2_relu"] == (147, 147, 32)
    assert shapes["conv3_relu"] == (147, 147, 64)
    assert shapes["pool1"] == (73, 73, 64)
    assert shapes["conv4_relu"] == (71, 71, 80)
    assert shapes["conv5_relu"] == (35, 35, 192)
    assert shapes["conv6_relu"] == (35, 35, 288)  # into the Figure 5 modules
    for module in ("mixed5b", "mixed5c", "mixed5d"):
        assert shapes[module] == (35, 35, 288)
    assert shapes["mixed6a"] == (17, 17, 768)  # into the Figure 6 modules
    for module in ("mixed6b", "mixed6c", "mixed6d", "mixed6e", "mixed6f"):
        assert shapes[module] == (17, 17, 768)
    assert shapes["mixed7a"] == (8, 8, 1280)  # into the Figure 7 modules
    assert shapes["mixed7b"] == shapes["mixed7c"] == (8, 8, 2048)  # into the 8x8 pool
    kinds = [kind for _, kind in inception.V2_LAYOUT]
    assert (kinds.count("module_35"), kinds.count("module_17_v2"), kinds.count("module_8")) == (3, 5, 2)

    kernels = {
        layer.name: tuple(layer.kernel.shape[:2]) for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D)
    }
    assert (5, 5) not in kernels.values()  # Figure 5: every 5x5 became two 3x3
    assert kernels["mixed5b_b3dbl_1_conv"] == kernels["mixed5b_b3dbl_2_conv"] == (3, 3)
    assert [kernels[f"mixed6b_b7dbl_{i}_conv"] for i in range(1, 5)] == [(1, 7), (7, 1), (1, 7), (7, 1)]
    assert (kernels["mixed6b_b7_1x7_conv"], kernels["mixed6b_b7_7x1_conv"]) == ((1, 7), (7, 1))
    # Figure 7: 1x3 and 3x1 in parallel on the same input, concatenated.
    split = model.get_layer("mixed7b_b3_concat")
    parents = [node.operation.name for t in split.input for node in [t._keras_history]]
    assert parents == ["mixed7b_b3_1x3_relu", "mixed7b_b3_3x1_relu"]
    assert model.get_layer("mixed7b_b3_1x3_conv").input is model.get_layer("mixed7b_b3_3x1_conv").input
    # Figure 10: each strided conv branch starts with a 1x1.
    assert kernels["mixed6a_b3_reduce_conv"] == (1, 1)
    assert model.count_params() == 25_512_712
    assert model.get_layer("top_dropout").rate == 0.2


def test_v2_auxiliary_head_has_no_bn_in_its_fc():
    model = kerasnets.InceptionV2(weights=None, aux_classifiers=True, width_multiplier=0.125, classes=3)
    names = {layer.name for layer in model.layers}
    assert "aux_proj_bn" in names and "aux_fc_bn" not in names
    assert model.get_layer("aux_fc_conv").bias is not None
    assert model.get_layer("aux_pool").input is model.get_layer("mixed6f").output


def test_widths_overrides_and_errors(no_random_init):
    kwargs = dict(weights=None, include_top=False, input_shape=(75, 75, 3))
    model = kerasnets.InceptionV3(module_widths={"mixed5b": {"pool_proj": 16}}, **kwargs)
    assert model.get_layer("mixed5b").output.shape[-1] == 64 + 64 + 96 + 16
    model = kerasnets.InceptionV3(width_multiplier=0.5, **kwargs)
    assert model.output_shape[-1] == 1024
    model = kerasnets.InceptionV2(
        module_widths={"mixed7c": inception.Figure7Widths(8, 8, 8, 8, 8, 8), "stem": {"conv6": 100}}, **kwargs
    )
    assert model.output_shape[-1] == 8 * 6
    assert model.get_layer("conv6_relu").output.shape[-1] == 100
    with pytest.raises(ValueError, match="unknown modules"):
        kerasnets.InceptionV3(module_widths={"mixed6f": {"b1": 3}}, **kwargs)
    with pytest.raises(ValueError, match="must be a Mixed35Widths"):
        kerasnets.InceptionV3(module_widths={"mixed5b": inception.Figure7Widths(1, 1, 1, 1, 1, 1)}, **kwargs)
    with pytest.raises(ValueError, match=r"stage_widths\['mixed6a'\]\.b3_reduce must be a positive integer"):
        kerasnets.InceptionV3(module_widths={"mixed6a": {"b3_reduce": 2.5}}, **kwargs)
    with pytest.raises(ValueError, match="dict keyed by module name"):
        kerasnets.InceptionV3(module_widths=[1, 2], **kwargs)
    with pytest.raises(ValueError, match="width_multiplier"):
        kerasnets.InceptionV2(width_multiplier=0, **kwargs)
    with pytest.raises(ValueError, match="need include_top=True"):
        kerasnets.InceptionV3(aux_classifiers=True, **kwargs)
