"""torchvision sources, without torch: fixtures recorded once from real torchvision by
``scripts/torchvision_fixtures.py`` (key names and shapes, outputs for weights drawn
from a seed); here the same weights are drawn with NumPy, written in the source's
real file format (safetensors, as the Hugging Face mirrors publish them; a real
``torch.save`` file for the torch-free ``.pth`` reader), loaded and compared."""

import dataclasses
import importlib.util
import json
import os

import numpy as np
import pytest

import kerasnets
from kerasnets.models.vgg import CONFIGS
from kerasnets.weights import _convert, _presets, _readers, file_hash

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
REL_TOL = 1e-4


def _script():
    path = os.path.join(os.path.dirname(__file__), "..", "scripts", "torchvision_fixtures.py")
    spec = importlib.util.spec_from_file_location("torchvision_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _script()
META = json.load(open(os.path.join(FIXTURES, "torchvision.json")))
OUTPUTS = np.load(os.path.join(FIXTURES, "torchvision_outputs.npz"))


@pytest.fixture(autouse=True)
def weight_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASNETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERASNETS_OFFLINE", "1")
    os.makedirs(kerasnets.weights.cache_dir())


def _state(case):
    c = META["cases"][case]
    return SCRIPT.draw_state_dict([(k, tuple(s)) for k, s in c["keys"]], c["seed"])


def _images(case):
    c = META["cases"][case]
    return SCRIPT.images(c["size"], c["image_seed"])


def _save_safetensors(state, path):
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, path)


def _run(model, x):
    """An eager call: no graph to trace for each new input shape (predict would)."""
    return np.asarray(model(np.asarray(x, np.float32), training=False))


def _rel_err(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _place_preset(monkeypatch, model, preset_name, state):
    presets = _presets.PRESETS[model]
    preset = next(p for p in presets if p.name == preset_name)
    path = os.path.join(kerasnets.weights.cache_dir(), preset.file.name)
    if path.endswith(".safetensors"):
        _save_safetensors(state, path)
    else:
        pytest.skip("this preset's file is a .pth; covered by the .pth reader test")
    patched = dataclasses.replace(
        preset, file=dataclasses.replace(preset.file, file_hash=file_hash(path, "sha256"))
    )
    monkeypatch.setitem(_presets.PRESETS, model, tuple(patched if p is preset else p for p in presets))


@pytest.mark.parametrize("case,preset", [("resnet18", "torchvision_v1"), ("resnet50", "torchvision_v1")])
def test_resnet_presets_match_torchvision(monkeypatch, case, preset):
    c = META["cases"][case]
    _place_preset(monkeypatch, case, preset, _state(case))
    size = c["size"]
    x = kerasnets.preprocess_input(_images(case), model=case, weights=preset)
    top = kerasnets.get_model(case, weights=preset, input_shape=(size, size, 3), classifier_activation=None)
    assert _rel_err(_run(top, x), OUTPUTS[f"{case}/logits"]) <= REL_TOL
    features = kerasnets.get_model(case, weights=preset, include_top=False, input_shape=(size, size, 3))
    assert _rel_err(_run(features, x), OUTPUTS[f"{case}/features"]) <= REL_TOL
    if case == "resnet50":  # the preset built torchvision's v1.5 layout
        assert top.get_layer("conv3_block1_2_pad") is not None


@pytest.mark.parametrize("case", ["vgg11_small", "vgg11_bn_small"])
@pytest.mark.parametrize("layout", ["torchvision", "timm"])
def test_vgg_from_a_safetensors_state_dict(tmp_path, case, layout):
    c = META["cases"][case]
    state = _state(case)
    if layout == "timm":  # timm's form of the same weights: fc1 as a 7x7 conv, fc2 1x1
        state["pre_logits.fc1.weight"] = state.pop("classifier.0.weight").reshape(64, 8, 7, 7)
        state["pre_logits.fc1.bias"] = state.pop("classifier.0.bias")
        state["pre_logits.fc2.weight"] = state.pop("classifier.3.weight").reshape(64, 64, 1, 1)
        state["pre_logits.fc2.bias"] = state.pop("classifier.3.bias")
        state["head.fc.weight"] = state.pop("classifier.6.weight")
        state["head.fc.bias"] = state.pop("classifier.6.bias")
    path = str(tmp_path / f"{case}.safetensors")
    _save_safetensors(state, path)
    model = getattr(kerasnets, c["builder"])(
        weights=path, classes=10, classifier_activation=None, **c["kwargs"]
    )
    x = kerasnets.preprocess_input(_images(case), model="vgg11", weights="torchvision_v1")
    assert _rel_err(_run(model, x), OUTPUTS[f"{case}/logits"]) <= REL_TOL


def test_alexnet_from_a_real_torch_checkpoint_without_torch():
    path = os.path.join(FIXTURES, "torchvision_alexnet_small.pth")
    state = _readers.read_torch_zip(path)
    expected = _state("alexnet_small")
    assert sorted(state) == sorted(expected)
    for key in expected:
        np.testing.assert_array_equal(state[key], expected[key])
    c = META["cases"]["alexnet_small"]
    model = kerasnets.AlexNet(weights=path, classes=10, classifier_activation=None, **c["kwargs"])
    x = kerasnets.preprocess_input(_images("alexnet_small"), model="alexnet", weights="torchvision_v1")
    assert _rel_err(_run(model, x), OUTPUTS["alexnet_small/logits"]) <= REL_TOL


def test_without_the_flatten_permutation_alexnet_would_differ():
    """The fc6 row permutation matters (guards against a no-op conversion)."""
    state = _state("alexnet_small")
    w = state["classifier.1.weight"]
    assert not np.allclose(
        w.T, w.reshape(64, 4, 6, 6).transpose(2, 3, 1, 0).reshape(144, 64)
    )


def test_the_torch_reader_refuses_code():
    import io
    import pickle
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x/data.pkl", pickle.dumps(print))  # builtins.print: not allowed
    with pytest.raises(ValueError, match="not allowed"):
        _readers.read_torch_zip(buffer)


@pytest.mark.parametrize(
    "name,builder,kwargs",
    [
        ("resnet18", "ResNet18", {}),
        ("resnet34", "ResNet34", {}),
        ("resnet50", "ResNet50", {"downsample_on": "3x3"}),
        ("resnet101", "ResNet101", {"downsample_on": "3x3"}),
        ("resnet152", "ResNet152", {"downsample_on": "3x3"}),
        ("vgg16_bn", "VGG16BN", {}),
        ("alexnet", "AlexNet", {"variant": "torchvision"}),
    ],
)
def test_key_maps_cover_the_real_state_dicts(no_random_init, name, builder, kwargs):
    """Every layer of the kerasnets model is filled from torchvision's real key names."""
    keys = META["state_dict_keys"][name]
    state = {k: np.broadcast_to(np.float32(0.5), s) for k, s in keys}
    model = getattr(kerasnets, builder)(weights=None, **kwargs)
    converter = {"resnet": "torchvision_resnet", "vgg": "torchvision_vgg", "alexnet": "torchvision_alexnet"}[
        "resnet" if name.startswith("resnet") else "vgg" if name.startswith("vgg") else "alexnet"
    ]
    converted = _convert.convert(converter, model, state, source=name)
    expected = {l.name: [tuple(w.shape) for w in l.weights] for l in _convert.weight_layers(model)}
    assert {k: [a.shape for a in v] for k, v in converted.items()} == expected
    used = sum(int(np.prod(s)) for k, s in keys if not k.endswith("num_batches_tracked"))
    assert used == sum(int(np.prod(s)) for shapes in expected.values() for s in shapes)


def test_vgg_feature_indices_match_every_configuration():
    for name, config in [("vgg11", "A"), ("vgg13", "B"), ("vgg16", "D"), ("vgg19", "E")]:
        for suffix in ("", "_bn"):
            keys = META["state_dict_keys"][name + suffix]
            convs = [k for k, s in keys if k.startswith("features.") and k.endswith(".weight") and len(s) == 4]
            assert len(convs) == sum(len(block) for block in CONFIGS[config])


def test_fine_tuning_from_a_preset_keeps_the_backbone_and_builds_a_new_head(monkeypatch, tmp_path):
    """What `kerasnets train resnet18 --weights imagenet` prepares: the preset's backbone,
    a new 10-class head, the data normalised as the weights expect."""
    from kerasnets.training import prepare

    from PIL import Image

    state = _state("resnet18")
    _place_preset(monkeypatch, "resnet18", "torchvision_v1", state)
    rng = np.random.default_rng(0)
    for label in ("a", "b", "c"):  # a tiny folder dataset: root/<class>/<image>
        os.makedirs(tmp_path / "images" / label)
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                tmp_path / "images" / label / f"{i}.png")
    run = prepare("resnet18", str(tmp_path / "images"), weights="imagenet", epochs=1, batch_size=4,
                  image_size=32, output=str(tmp_path / "run"), export=False)
    model = run.model
    assert model.output_shape == (None, run.train.num_classes)
    np.testing.assert_allclose(
        model.get_layer("conv1_conv").get_weights()[0], state["conv1.weight"].transpose(2, 3, 1, 0)
    )
    assert run.train.preprocessing.name == "imagenet_mean_std"
    assert run.request["weights"] == "imagenet"


def test_a_wrong_or_truncated_state_dict_is_one_clear_error(tmp_path):
    state = _state("resnet18")
    del state["layer4.1.bn2.running_var"]
    path = str(tmp_path / "partial.safetensors")
    _save_safetensors(state, path)
    with pytest.raises(ValueError, match="lacks 'layer4.1.bn2.running_var'"):
        kerasnets.ResNet18(weights=path, input_shape=(32, 32, 3))
    truncated = str(tmp_path / "truncated.safetensors")
    with open(path, "rb") as f, open(truncated, "wb") as g:
        g.write(f.read()[:1000])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        kerasnets.ResNet18(weights=truncated, input_shape=(32, 32, 3))
