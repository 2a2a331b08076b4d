"""The application contract's validation and weights, and the registry."""

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets.models._application import build_application, conv_output_size, min_input_size
from kerasnets.registry import register_model


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValueError, match=r"Unknown model 'resnet5'.*Did you mean: .*resnet50.*Received: name='resnet5'"):
        kerasnets.get_model("resnet5")


def test_list_models_pattern_and_case():
    assert "resnet50" in kerasnets.list_models()
    assert kerasnets.list_models("resnet1*") == ["resnet18", "resnet101", "resnet110", "resnet152"]  # natural order
    assert kerasnets.get_model("ResNet20", include_top=False).name == "resnet20"
    assert kerasnets.get_model("resnet20", include_top=False, name="mine").name == "mine"


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet50", kerasnets.ResNet50)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(weights="torchvision_v9"), r"resnet18 has no preset 'torchvision_v9'.*Received: weights='torchvision_v9'"),
        (dict(weights="/no/such/file.weights.h5"), r"existing weights file.*Received: weights='/no/such/file.weights.h5'"),
        (dict(pooling="mean"), r"pooling must be one of None, 'avg' or 'max'. Received: pooling='mean'"),
        (dict(classes=0), r"classes must be a positive integer. Received: classes=0"),
        (dict(classes=2.5), r"Received: classes=2.5"),
        (dict(classifier_activation="softmaxx"), r"classifier_activation.*Received: classifier_activation='softmaxx'"),
        (dict(input_shape=(32, 32)), r"3 entries.*Received: input_shape=\(32, 32\)"),
        (dict(width_multiplier=0), r"width_multiplier must be a positive number.*Received: width_multiplier=0"),
        (dict(stage_widths=(64, 128)), r"stage_widths must be 4 positive integers.*Received"),
        (dict(downsample_on="2x2"), r"downsample_on must be '1x1' or '3x3'. Received: downsample_on='2x2'"),
    ],
)
def test_bad_arguments_raise_before_building(kwargs, message, monkeypatch):
    built = []
    monkeypatch.setattr(keras.layers.Conv2D, "build", lambda *a, **k: built.append(1))
    with pytest.raises(ValueError, match=message):
        kerasnets.ResNet18(**kwargs)
    assert not built, "validation must happen before any layer is built"


def test_input_tensor_disagreeing_with_input_shape():
    inputs = keras.Input(shape=(64, 64, 3))
    with pytest.raises(ValueError, match=r"input_shape must be None or the shape of input_tensor for .*Received: input_shape=\(32, 32, 3\), input_tensor.shape="):
        kerasnets.ResNet18(input_tensor=inputs, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match=r"must be a Keras tensor.*Received: input_tensor="):
        kerasnets.ResNet18(input_tensor=np.zeros((1, 32, 32, 3)))


def test_fixed_size_top_refuses_unknown_size():
    def backbone(inputs, head):
        return keras.layers.Conv2D(2, 3, name="c")(inputs)

    def flatten_top(features, head):
        return head.classifier(keras.layers.Flatten(name="flatten")(features))

    info = kerasnets.ResNet18.info
    common = dict(backbone=backbone, info=info, model_name="Toy", min_size=3, top=flatten_top, fixed_size_top=True)
    with pytest.raises(ValueError, match=r"needs a fixed height and width.*Received: input_shape=\(None, None, 3\)"):
        build_application(input_shape=(None, None, 3), **common)
    # Without the top, variable sizes are fine.
    model = build_application(input_shape=(None, None, 3), include_top=False, **common)
    assert model(np.zeros((1, 9, 9, 3))).shape == (1, 7, 7, 2)
    with pytest.raises(ValueError, match=r"at least 3x3 for Toy. Received: input_shape=\(2, 2, 3\)"):
        build_application(input_shape=(2, 2, 3), **common)


def test_weights_file_round_trip(tmp_path):
    model = kerasnets.ResNet20(classes=3)
    path = tmp_path / "r20.weights.h5"
    model.save_weights(path)
    loaded = kerasnets.ResNet20(classes=3, weights=str(path))
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    with pytest.raises(ValueError, match=r"\.weights\.h5.*Received"):
        other = tmp_path / "weights.bin"
        other.write_bytes(b"")
        kerasnets.ResNet20(weights=str(other))
    with pytest.raises(ValueError):  # a different architecture does not load silently
        kerasnets.ResNet32(classes=3, weights=str(path))


def test_spatial_arithmetic():
    assert conv_output_size(224, 7, 2, 3) == 112
    assert conv_output_size(112, 3, 2, 1) == 56
    assert conv_output_size(299, 3, 2, "valid") == 149
    assert conv_output_size(5, 3, 2, "same") == 3
    assert conv_output_size(14, 3, 2, 0, ceil_mode=True) == 7
    # five 2x2/2 pools (VGG) need 32 pixels
    assert min_input_size([(2, 2, 0)] * 5) == 32
    # a following 5x5 valid pool needs a 5x5 map
    assert min_input_size([(2, 2, 0)], final_size=5) == 10


def test_heavy_submodules_load_on_first_use():
    # `import kerasnets` stays light (no tensorflow-datasets, keras-tuner); the
    # submodules are attributes all the same.
    import subprocess
    import sys

    code = (
        "import sys, kerasnets\n"
        "assert 'tensorflow_datasets' not in sys.modules and 'keras_tuner' not in sys.modules\n"
        "for name in ('data', 'export', 'training', 'tuning'):\n"
        "    assert getattr(kerasnets, name).__name__ == 'kerasnets.' + name\n"
        "assert callable(kerasnets.data.load) and 'tensorflow_datasets' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        kerasnets.nope  # noqa: B018
