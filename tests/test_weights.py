"""Pretrained weights, offline: files written here in the published layouts, placed in
the cache under the published names, loaded through the same path as a download.

keras.applications sources: the keras.applications model with random weights,
written as a Keras 2 legacy ``.h5`` (the layout of the published files); outputs
compared after each side's own preprocessing. torchvision sources: see
``test_torchvision_weights.py``.
"""

import dataclasses
import os

import h5py
import keras
import numpy as np
import pytest

import kerasnets
from kerasnets.weights import _presets, file_hash

REL_TOL = 1e-4


@pytest.fixture(autouse=True)
def weight_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASNETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERASNETS_OFFLINE", "1")
    os.makedirs(kerasnets.weights.cache_dir())
    return kerasnets.weights.cache_dir()


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    values = []
    for w in model.weights:
        if "variance" in w.path:
            values.append(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
        else:
            scale = 1.0 / np.sqrt(np.prod(w.shape[:-1])) if len(w.shape) > 1 else 0.1
            values.append(rng.normal(0, scale, w.shape).astype("float32"))
    model.set_weights(values)


def write_legacy_h5(model, path, rename=None):
    """The Keras 2 HDF5 weights layout keras.applications' files have."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
        for old, new in (rename or {}).items():  # e.g. keras-applications' "probs"
            f.move(old, new)
            names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
            f.attrs["layer_names"] = [(new if n == old else n).encode() for n in names]


def place(monkeypatch, model_name, preset_name, include_top, write):
    """Writes a file under the preset's published name; the preset takes its hash."""
    presets = _presets.PRESETS[model_name]
    preset = next(p for p in presets if p.name == preset_name)
    field = "file" if include_top or preset.notop_file is None else "notop_file"
    file = getattr(preset, field)
    path = os.path.join(kerasnets.weights.cache_dir(), file.name)
    write(path)
    patched = dataclasses.replace(
        preset, **{field: dataclasses.replace(file, file_hash=file_hash(path, file.algorithm))}
    )
    monkeypatch.setitem(
        _presets.PRESETS, model_name, tuple(patched if p is preset else p for p in presets)
    )
    return path, patched


def _images(size, n=2, seed=1):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def _run(model, x):
    """An eager call: no graph to trace for each new input shape (predict would)."""
    return np.asarray(model(np.asarray(x, np.float32), training=False))


def _rel_err(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _drop_layers(path, prefixes):
    """The same file without some layers (keras.applications' no-top file is its
    top file without the classifier)."""
    with h5py.File(path, "a") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
        keep = [n for n in names if not n.startswith(prefixes)]
        for n in set(names) - set(keep):
            del f[n]
        f.attrs["layer_names"] = [n.encode() for n in keep]


KA_CASES = [
    # (kerasnets builder, registered name, keras.applications builder, its preprocess,
    #  size, test the top (cheap enough), the classifier's layers, the last feature layer)
    ("ResNet50", "resnet50", "ResNet50", keras.applications.resnet.preprocess_input, 64, True,
     ("avg_pool", "predictions", "probs"), "conv5_block3_out"),
    ("InceptionV3", "inception_v3", "InceptionV3", keras.applications.inception_v3.preprocess_input, 75, True,
     ("avg_pool", "predictions"), "mixed10"),
    # VGG with its top is 138M parameters (a 0.5 GB file): the no-top path here; the
    # top layers load by the same names (fc1, fc2, predictions).
    ("VGG16", "vgg16", "VGG16", keras.applications.vgg16.preprocess_input, 32, False, (), "block5_pool"),
    ("VGG19", "vgg19", "VGG19", keras.applications.vgg19.preprocess_input, 32, False, (), "block5_pool"),
]


@pytest.mark.parametrize("builder,name,ka_builder,ka_preprocess,size,top,top_layers,last", KA_CASES)
def test_keras_applications_preset_matches_source(
    monkeypatch, builder, name, ka_builder, ka_preprocess, size, top, top_layers, last
):
    """Top and no-top files, placed in the cache under their published names."""
    ka = getattr(keras.applications, ka_builder)(
        weights=None, include_top=top, input_shape=(size, size, 3),
        **({"classifier_activation": None} if top else {}),
    )
    _randomize(ka)
    x = _images(size)
    ka_x = ka_preprocess(x.copy())
    x = kerasnets.preprocess_input(x, model=name, weights="imagenet")
    if top:
        # keras-applications' ResNet file called its classifier "probs" (Keras 3: "predictions").
        rename = {"predictions": "probs"} if name == "resnet50" else None
        place(monkeypatch, name, "keras_applications", True, lambda p: write_legacy_h5(ka, p, rename))
        model = getattr(kerasnets, builder)(
            weights="imagenet", input_shape=(size, size, 3), classifier_activation=None
        )
        assert _rel_err(_run(model, x), _run(ka, ka_x)) <= REL_TOL
        # The export signature normalises as the preset's weights expect.
        from kerasnets.export._spec import resolve_spec

        assert resolve_spec(model).preprocessing.name == kerasnets.weights.preprocessing_for(name, "imagenet").name

    def write_notop(path):
        write_legacy_h5(ka, path)
        if top_layers:
            _drop_layers(path, top_layers)

    place(monkeypatch, name, "keras_applications", False, write_notop)
    # No-top weights load at any allowed size: a variable-size model.
    model = getattr(kerasnets, builder)(weights="imagenet", include_top=False, input_shape=(None, None, 3))
    features = keras.Model(ka.inputs, ka.get_layer(last).output)
    got = _run(model, x)
    assert _rel_err(got, _run(features, ka_x)) <= REL_TOL
    assert _run(model, np.zeros((1, size + 32, size + 16, 3))).shape[1:3] != got.shape[1:3]


# --------------------------------------------------------------------------- presets


def test_every_preset_has_a_url_a_hash_and_the_facts():
    presets = kerasnets.weights.list_presets()
    assert {p.model for p in presets} == {
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg11", "vgg11_bn",
        "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "alexnet", "inception_v3",
        "googlenet",
    }
    for p in presets:
        assert p.model in kerasnets.list_models()
        for f in p.files:
            # BVLC publishes over http only: the full SHA-1 is checked before the file is read.
            assert f.url.startswith("https://") or (f.url.startswith("http://") and f.algorithm == "sha1"), p
            assert len(f.file_hash) in (8, 32, 40, 64) and int(f.file_hash, 16) >= 0, p
        assert 50 < p.top1 < 90 and p.top1 < p.top5 < 100
        assert p.input_size in (224, 227, 299)
        assert p.preprocessing.name in (
            "mean_subtraction", "imagenet_mean_std", "inception", "bvlc_googlenet", "bvlc_alexnet")
    names = {(p.model, p.name) for p in presets}
    assert len(names) == len(presets)
    # "imagenet" is the preset that fits the default architecture.
    assert kerasnets.weights.get_preset("resnet50").name == "keras_applications"
    assert kerasnets.weights.get_preset("resnet50", downsample_on="3x3").name == "torchvision_v1"
    assert kerasnets.weights.get_preset("resnet18").name == "torchvision_v1"


def test_a_preset_sets_its_architecture_and_rejects_a_conflicting_one():
    with pytest.raises(OSError, match="resnet50-11ad3fa6.pth"):  # resolved, then not in the cache
        kerasnets.ResNet50(weights="torchvision_v2")
    with pytest.raises(ValueError, match="downsample_on"):
        kerasnets.ResNet50(weights="torchvision_v2", downsample_on="1x1")
    with pytest.raises(ValueError, match="No ImageNet preset of resnet50 fits width_multiplier=0.5"):
        kerasnets.ResNet50(weights="imagenet", width_multiplier=0.5)
    with pytest.raises(ValueError, match="no preset 'torchvision_v3'.*keras_applications"):
        kerasnets.ResNet50(weights="torchvision_v3")


def test_preprocessing_follows_the_preset():
    assert kerasnets.weights.preprocessing_for("resnet50", "imagenet").name == "mean_subtraction"
    assert kerasnets.weights.preprocessing_for("resnet50", None).name == "imagenet_mean_std"
    v2 = kerasnets.weights.preprocessing_for("resnet50", "torchvision_v2")
    assert v2.name == "imagenet_mean_std" and v2.crop_fraction == pytest.approx(224 / 232)
    x = np.full((1, 2, 2, 3), 128.0, np.float32)
    np.testing.assert_allclose(
        kerasnets.preprocess_input(x, model="vgg16")[0, 0, 0], [128 - 123.68, 128 - 116.779, 128 - 103.939],
        rtol=1e-6,
    )
    np.testing.assert_allclose(kerasnets.preprocess_input(x, model="inception_v3"), 128 / 127.5 - 1, rtol=1e-6)


def test_decode_predictions_uses_the_shipped_class_names():
    classes = kerasnets.weights.imagenet_classes()
    assert len(classes) == 1000 and len({w for w, _ in classes}) == 1000
    assert classes[0] == ("n01440764", "tench, Tinca tinca") and classes[409][1] == "analog clock"
    preds = np.zeros((2, 1000), np.float32)
    preds[0, 1], preds[0, 409], preds[1, 999] = 0.7, 0.2, 1.0
    decoded = kerasnets.decode_predictions(preds, top=2)
    assert decoded[0][0] == ("n01443537", "goldfish", pytest.approx(0.7))
    assert decoded[0][1][:2] == ("n02708093", "analog clock")
    assert decoded[1][0][1] == "toilet tissue"
    with pytest.raises(ValueError, match=r"\(batch, 1000\)"):
        kerasnets.decode_predictions(np.zeros((2, 10)))


# --------------------------------------------------------------------------- errors


def test_offline_names_the_url_the_cache_path_and_how_to_place_the_file(weight_cache):
    with pytest.raises(OSError) as info:
        kerasnets.VGG16(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    message = str(info.value)
    assert "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" in message
    assert os.path.join(weight_cache, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5") in message
    assert "copy it to" in message and "KERASNETS_HOME" in message


def test_a_failed_download_names_the_url_and_the_cache_path(monkeypatch, weight_cache):
    monkeypatch.delenv("KERASNETS_OFFLINE")

    def no_network(**kwargs):
        raise Exception("URL fetch failure: no network")  # what get_file raises offline

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    with pytest.raises(OSError, match="Could not download.*no network.*URL: https://.*Cache path: " + weight_cache):
        kerasnets.InceptionV3(weights="imagenet", include_top=False, input_shape=(75, 75, 3))


def test_a_corrupt_or_truncated_file_is_refused(weight_cache):
    preset = kerasnets.weights.get_preset("resnet50")
    path = os.path.join(weight_cache, preset.notop_file.name)
    with open(path, "wb") as f:
        f.write(b"\x89HDF\r\n" + b"\0" * 1000)  # a truncated download
    with pytest.raises(ValueError, match="is not the published .*md5 is .*published one is 4d473c1d.*delete it"):
        kerasnets.ResNet50(weights="imagenet", include_top=False)


def test_a_wrong_file_with_the_right_hash_never_half_loads(monkeypatch):
    ka = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))

    def write(path):  # a VGG-16 file without its last block
        write_legacy_h5(ka, path)
        _drop_layers(path, ("block5",))

    _, preset = place(monkeypatch, "vgg16", "keras_applications", False, write)
    with pytest.raises(ValueError, match="no weights for layer 'block5_conv1'.*Nothing was loaded"):
        kerasnets.VGG16(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    model = kerasnets.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="Nothing was loaded"):
        kerasnets.weights.load_preset(model, preset, include_top=False)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_imagenet_top_needs_1000_classes_and_the_preset_size():
    with pytest.raises(ValueError, match="classes must be 1000 with include_top=True.*Received: classes=10"):
        kerasnets.ResNet50(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match="224x224.*include_top=False"):
        kerasnets.VGG16(weights="imagenet", input_shape=(64, 64, 3))


@pytest.mark.parametrize("name", ["GoogLeNetBN", "InceptionV2", "VGG16C", "ResNet20", "VGG11LRN"])
def test_models_without_an_exact_source_say_which_have_weights(name):
    with pytest.raises(ValueError, match="no public source matches its architecture exactly.*resnet50.*vgg16"):
        getattr(kerasnets, name)(weights="imagenet")


def test_paper_alexnet_and_the_torchvision_variant_each_have_their_weights():
    with pytest.raises(OSError, match="bvlc_alexnet.caffemodel"):
        kerasnets.AlexNet(weights="imagenet", include_top=False)  # BVLC's; not in the cache
    with pytest.raises(OSError, match="alexnet-owt-7be5be79.pth"):
        kerasnets.AlexNet(weights="imagenet", variant="torchvision", include_top=False)
    with pytest.raises(ValueError, match="variant"):
        kerasnets.AlexNet(weights="torchvision_v1", variant="paper")


def test_a_weights_file_of_another_architecture_gives_one_clear_error(tmp_path, recwarn):
    path = str(tmp_path / "resnet18.weights.h5")
    kerasnets.ResNet18(weights=None, include_top=False, input_shape=(32, 32, 3)).save_weights(path)
    with pytest.raises(ValueError) as info:
        kerasnets.ResNet20(weights=path)
    message = str(info.value)
    assert "saved from the model 'resnet18'" in message and "'resnet20'" in message
    assert "Nothing was loaded" in message
    assert not [w for w in recwarn.list if "skipping" in str(w.message).lower()]


def test_a_weights_file_of_the_same_architecture_loads(tmp_path):
    path = str(tmp_path / "r20.weights.h5")
    source = kerasnets.ResNet20(weights=None)
    source.save_weights(path)
    model = kerasnets.ResNet20(weights=path)
    assert all(np.array_equal(a, b) for a, b in zip(source.get_weights(), model.get_weights()))


def test_a_keras_applications_legacy_file_loads_by_path_as_stored(tmp_path):
    """By path, a keras.applications file loads as stored (BGR: feed it keras.applications'
    own preprocess_input); the presets convert it to RGB."""
    ka = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    _randomize(ka, seed=5)
    path = str(tmp_path / "vgg16_notop.h5")
    write_legacy_h5(ka, path)
    model = kerasnets.VGG16(weights=path, include_top=False, input_shape=(32, 32, 3))
    x = keras.applications.vgg16.preprocess_input(_images(32))
    assert _rel_err(_run(model, x), _run(ka, x)) <= REL_TOL


def test_bad_weights_values():
    with pytest.raises(ValueError, match="does not exist"):
        kerasnets.ResNet18(weights="/nonexistent/file.weights.h5")
    with pytest.raises(ValueError, match=r"weights must be None \(random initialization\).*Received: weights=3"):
        kerasnets.ResNet18(weights=3)


def test_kerasnets_list_weights_shows_the_presets(capsys):
    from kerasnets.cli import main

    assert main(["list", "resnet*", "--weights"]) == 0
    out = capsys.readouterr().out
    import re

    assert re.search(r"resnet50 +torchvision_v2 ", out) and "80.9" in out and "downsample_on='3x3'" in out
    assert "keras.applications resnet50 (published .h5)" in out and "mean_subtraction" in out
    assert "No exact public ImageNet weights: resnet20, resnet32, resnet44, resnet56, resnet110." in out
