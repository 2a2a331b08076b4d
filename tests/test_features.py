"""Named feature stages: names, shapes and strides per family (shapes from the graph)."""

import keras
import numpy as np
import pytest

import kerasnets

CASES = [
    # name, input size, {stage: (spatial size, channels)}
    ("resnet50", 224, {"conv2": (56, 256), "conv3": (28, 512), "conv4": (14, 1024), "conv5": (7, 2048)}),
    ("resnet18", 224, {"conv2": (56, 64), "conv3": (28, 128), "conv4": (14, 256), "conv5": (7, 512)}),
    ("resnet20", 32, {"conv2": (32, 16), "conv3": (16, 32), "conv4": (8, 64)}),
    ("vgg16", 224, {f"block{b}": (224 // 2**b, c) for b, c in zip(range(1, 6), (64, 128, 256, 512, 512))}),
    ("vgg11_bn", 64, {f"block{b}": (64 // 2**b, c) for b, c in zip(range(1, 6), (64, 128, 256, 512, 512))}),
    ("googlenet", 224, {"inception_3b": (28, 480), "inception_4e": (14, 832), "inception_5b": (7, 1024)}),
    ("inception_v3", 299, {"mixed5d": (35, 288), "mixed6e": (17, 768), "mixed7c": (8, 2048)}),
    ("inception_v2", 299, {"mixed5d": (35, 288), "mixed6f": (17, 768), "mixed7c": (8, 2048)}),
]


def _spatial_and_channels(tensor):
    return tuple(tensor.shape[1:3]), tensor.shape[-1]


@pytest.mark.parametrize("name,size,expected", CASES, ids=[c[0] for c in CASES])
def test_stage_names_shapes_and_strides(no_random_init, name, size, expected):
    assert list(kerasnets.models.feature_stages(name)) == list(expected)
    extractor = kerasnets.feature_extractor(name, input_shape=(size, size, 3))
    outputs = extractor.output
    assert isinstance(outputs, dict) and set(outputs) == set(expected)
    for stage, (side, channels) in expected.items():
        assert _spatial_and_channels(outputs[stage]) == ((side, side), channels), stage
    sides = [expected[s][0] for s in expected]
    assert sides == sorted(sides, reverse=True)  # finest first


def test_alexnet_torchvision_stages(no_random_init):
    extractor = kerasnets.feature_extractor("alexnet", variant="torchvision", input_shape=(224, 224, 3))
    assert {k: _spatial_and_channels(v) for k, v in extractor.output.items()} == {
        "conv1": ((27, 27), 64), "conv2": ((13, 13), 192), "conv5": ((6, 6), 256)
    }


def test_a_built_model_a_subset_and_the_values():
    model = kerasnets.ResNet18(weights=None, include_top=False, input_shape=(64, 64, 3))
    extractor = kerasnets.feature_extractor(model, stages=["conv3", "conv5"])
    x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype("float32")
    out = extractor(x)
    assert sorted(out) == ["conv3", "conv5"]
    np.testing.assert_allclose(np.asarray(out["conv5"]), np.asarray(model(x)), rtol=1e-5, atol=1e-6)
    conv3 = keras.Model(model.inputs, model.get_layer("conv3_block2_out").output)
    np.testing.assert_allclose(np.asarray(out["conv3"]), np.asarray(conv3(x)), rtol=1e-5, atol=1e-6)


def test_the_registry_holds_the_stages_and_presets():
    from kerasnets.registry import get_entry

    entry = get_entry("resnet50")
    assert entry.feature_stages == kerasnets.models.feature_stages("resnet50")
    # The spec names the presets; kerasnets.weights holds their files, in the spec's order.
    assert entry.presets == ("keras_applications", "torchvision_v1", "torchvision_v2")
    assert [p.name for p in kerasnets.weights.presets_of("resnet50")] == list(entry.presets)
    assert get_entry("googlenet_bn").presets == () and kerasnets.weights.presets_of("googlenet_bn") == ()


def test_errors():
    with pytest.raises(ValueError, match="its stages are conv2, conv3, conv4, conv5"):
        kerasnets.feature_extractor("resnet18", stages=["conv6"], input_shape=(64, 64, 3))
    model = kerasnets.ResNet18(weights=None, include_top=False, input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="builder arguments"):
        kerasnets.feature_extractor(model, input_shape=(64, 64, 3))
