"""BVLC's Caffe models (the ``"bvlc"`` presets of GoogLeNet and AlexNet), offline.

The reference is OpenCV's Caffe importer (``cv2.dnn.readNetFromCaffe``), which runs a
Caffe network with Caffe's own semantics (ceil-mode pooling windows, Caffe's LRN,
grouped convolutions, the (C, H, W) flatten). Each test writes a prototxt with the BVLC
layer names and parameters and a ``.caffemodel`` of random weights in the real wire
format (``tests/_caffe_files.py``), runs both on the same images, each preprocessed its
own way (OpenCV: BGR minus the mean, NCHW; kerasnets: `kerasnets.preprocess_input` of
RGB), and compares the probabilities.
"""

import os

import cv2
import numpy as np
import pytest

import _caffe_files as cf
import kerasnets
from kerasnets.weights import _caffe, _convert, _readers
# The cache of every weights test: a fresh $KERASNETS_HOME, offline (autouse).
from test_weights import place, weight_cache  # noqa: F401

REL_TOL = 1e-4
GOOGLENET_BGR_MEAN = np.array([104.0, 117.0, 123.0], np.float32)
ALEXNET_BGR_MEAN = np.array([104.007, 116.669, 122.679], np.float32)


def _images(size, n=2, seed=1):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def _bgr(images, mean):
    """Caffe's input: BGR pixels minus the mean (NHWC here; OpenCV takes NCHW)."""
    return images[..., ::-1] - mean


def _opencv(prototxt, caffemodel, bgr, outputs):
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setInput(np.ascontiguousarray(bgr.transpose(0, 3, 1, 2)))
    return [np.asarray(o) for o in net.forward(outputs)]


def _run(model, x):
    out = model(np.asarray(x, np.float32), training=False)
    return {k: np.asarray(v) for k, v in out.items()} if isinstance(out, dict) else np.asarray(out)


def _rel_err(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _nhwc(features):
    return features.transpose(0, 2, 3, 1)


# --------------------------------------------------------------------------- the reader


@pytest.mark.parametrize("form", ["layer", "layers"])
@pytest.mark.parametrize("encoding", [
    dict(), dict(legacy=True), dict(packed=False), dict(double=True), dict(legacy=True, packed=False),
])
def test_the_reader_reads_both_forms_and_every_blob_encoding(tmp_path, form, encoding):
    rng = np.random.default_rng(0)
    conv = [rng.standard_normal((4, 3, 3, 3), dtype=np.float32), rng.standard_normal(4, dtype=np.float32)]
    fc = [rng.standard_normal((5, 36), dtype=np.float32), rng.standard_normal(5, dtype=np.float32)]
    path = tmp_path / "net.caffemodel"
    cf.caffemodel([("conv1/7x7_s2", "Convolution", conv), ("fc", "InnerProduct", fc)], form=form,
                  **encoding).write(path)
    layers = _caffe.read_caffemodel(path)
    assert list(layers) == ["conv1/7x7_s2", "fc"]
    assert [layer.type for layer in layers.values()] == ["Convolution", "InnerProduct"]
    if encoding.get("legacy", form == "layers"):  # Caffe's legacy 4-D blobs, read from the end
        assert layers["fc"].blobs[0].shape == (1, 1, 5, 36) and layers["fc"].blobs[1].shape == (1, 1, 1, 5)
    state = _caffe.state_dict(layers)
    for key, expected in [("conv1/7x7_s2.weight", conv[0]), ("conv1/7x7_s2.bias", conv[1]),
                          ("fc.weight", fc[0]), ("fc.bias", fc[1])]:
        assert state[key].dtype == np.float32 and state[key].shape == expected.shape
        np.testing.assert_array_equal(state[key], expected)


def test_damaged_and_foreign_files_give_one_error_naming_the_file(tmp_path):
    rng = np.random.default_rng(0)
    layers = [("conv", "Convolution", [rng.standard_normal((8, 3, 3, 3), dtype=np.float32), np.zeros(8, np.float32)])]
    good = tmp_path / "good.caffemodel"
    cf.caffemodel(layers, form="layers").write(good)
    data = good.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "hdf5": b"\x89HDF\r\n\x1a\n" + bytes(200),
        "text": b'name: "GoogleNet"\nlayer { name: "conv1" type: "Convolution" }\n',
        "a net without weights": b"".join(cf.caffemodel([], name="GoogleNet").chunks),
    }
    for case, content in cases.items():
        path = tmp_path / f"{case.replace(' ', '_')}.caffemodel"
        path.write_bytes(content)
        with pytest.raises(_readers.WeightFileError, match="not a Caffe model|no layers with weights|empty") as info:
            _caffe.read_caffemodel(path)
        assert str(path) in str(info.value), case


# --------------------------------------------------------------------------- GoogLeNet


@pytest.fixture(scope="module")
def googlenet_files(tmp_path_factory):
    """BVLC GoogLeNet as the 2014 release would be written: V1 ``layers``, legacy blobs."""
    folder = tmp_path_factory.mktemp("bvlc_googlenet")
    layers = cf.random_layers(cf.googlenet_shapes())
    cf.caffemodel(layers, form="layers", name="GoogleNet").write(folder / "bvlc_googlenet.caffemodel")
    (folder / "deploy.prototxt").write_text(cf.googlenet_prototxt(batch=2))
    bgr = _bgr(_images(224), GOOGLENET_BGR_MEAN)
    outputs = _opencv(folder / "deploy.prototxt", folder / "bvlc_googlenet.caffemodel", bgr,
                      ["prob", "loss1/prob", "loss2/prob", "inception_5b/output"])
    return folder, layers, dict(zip(["main", "aux1", "aux2", "features"], outputs))


def test_googlenet_bvlc_preset_matches_opencv(monkeypatch, googlenet_files):
    folder, _, expected = googlenet_files
    source = (folder / "bvlc_googlenet.caffemodel").read_bytes()
    place(monkeypatch, "googlenet", "bvlc", True, lambda path: open(path, "wb").write(source))
    x = kerasnets.preprocess_input(_images(224), model="googlenet", weights="imagenet")
    model = kerasnets.GoogLeNet(weights="imagenet")  # its auxiliary heads load too
    got = _run(model, x)
    assert sorted(got) == ["aux1", "aux2", "main"]
    for head in ("main", "aux1", "aux2"):
        assert expected[head].max() > 2 / 1000  # not a flat softmax: the weights matter
        assert _rel_err(got[head], expected[head]) <= REL_TOL, head
    assert model.kerasnets_preprocessing.name == "bvlc_googlenet"
    # include_top=False: the backbone only, from the same file.
    backbone = kerasnets.GoogLeNet(weights="imagenet", include_top=False)
    assert not [layer for layer in backbone.layers if layer.name.startswith(("aux", "predictions"))]
    assert _rel_err(_run(backbone, x), _nhwc(expected["features"])) <= REL_TOL


def test_googlenet_caffemodel_by_path_keeps_its_bgr_channels(googlenet_files):
    folder, _, expected = googlenet_files
    model = kerasnets.GoogLeNet(weights=str(folder / "bvlc_googlenet.caffemodel"), aux_classifiers=False)
    got = _run(model, _bgr(_images(224), GOOGLENET_BGR_MEAN))
    assert _rel_err(got, expected["main"]) <= REL_TOL


def test_a_googlenet_file_without_auxiliary_heads(tmp_path, googlenet_files):
    _, layers, _ = googlenet_files
    path = tmp_path / "deploy_only.caffemodel"
    deploy = [layer for layer in layers if not layer[0].startswith(("loss1/", "loss2/"))]
    cf.caffemodel(deploy, form="layers").write(path)
    with pytest.raises(ValueError, match=r"no auxiliary classifiers \(loss1/\*, loss2/\*\).*aux_classifiers=False"):
        kerasnets.GoogLeNet(weights=str(path))
    model = kerasnets.GoogLeNet(weights=str(path), aux_classifiers=False)
    np.testing.assert_array_equal(model.get_layer("predictions").get_weights()[0], layers[-1][2][0].T)
    # A truncated file and another net's file: one clear error each, and nothing loaded.
    before = [w.copy() for w in model.get_weights()]
    truncated = tmp_path / "truncated.caffemodel"
    truncated.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(ValueError, match=f"{truncated} is not a Caffe model.*truncated"):
        kerasnets.weights.load_file(model, truncated, family="googlenet")
    alexnet = tmp_path / "alexnet.caffemodel"
    cf.caffemodel([(n, t, [np.zeros(w, np.float32), np.zeros(b, np.float32)])
                   for n, t, (w, b) in cf.alexnet_shapes()[:5]]).write(alexnet)
    with pytest.raises(ValueError, match=f"{alexnet} lacks 'conv1/7x7_s2.weight'.*not a file of this model"):
        kerasnets.weights.load_file(model, alexnet, family="googlenet")
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


# --------------------------------------------------------------------------- AlexNet


def test_alexnet_bvlc_preset_matches_opencv(monkeypatch, tmp_path, no_random_init):
    """The full network (61M parameters, a 244 MB file): newer ``layer`` form, shaped blobs.
    The models start from zeros (``no_random_init``): every weight is then loaded."""
    layers = cf.random_layers(cf.alexnet_shapes(), fc_gain=1.0)
    path, _ = place(monkeypatch, "alexnet", "bvlc", True,
                    lambda p: cf.caffemodel(layers, form="layer", name="AlexNet").write(p))
    del layers
    prototxt = tmp_path / "deploy.prototxt"
    prototxt.write_text(cf.alexnet_prototxt(batch=2))
    expected, features = _opencv(prototxt, path, _bgr(_images(227), ALEXNET_BGR_MEAN), ["prob", "pool5"])
    assert expected.max() > 2 / 1000
    model = kerasnets.AlexNet(weights="imagenet")  # sets lrn="caffe"
    assert model.get_layer("norm1").k == 1.0 and model.get_layer("norm1").alpha_is_averaged
    x = kerasnets.preprocess_input(_images(227), model="alexnet", weights="imagenet")
    assert _rel_err(_run(model, x), expected) <= REL_TOL
    del model
    # By path: the backbone, its channels as stored (BGR), Caffe's LRN asked for.
    backbone = kerasnets.AlexNet(weights=path, include_top=False, lrn="caffe")
    assert _rel_err(_run(backbone, _bgr(_images(227), ALEXNET_BGR_MEAN)), _nhwc(features)) <= REL_TOL
    with pytest.raises(ValueError, match="Caffe's LRN.*lrn='caffe'"):
        kerasnets.AlexNet(weights=path, include_top=False)


# --------------------------------------------------------------------------- presets


def test_imagenet_resolves_to_bvlc_and_the_preset_sets_its_architecture(tmp_path):
    get = kerasnets.weights.get_preset
    assert get("googlenet").name == "bvlc" and get("googlenet", aux_classifiers=False).name == "bvlc"
    assert get("alexnet").name == "bvlc" and get("alexnet").builder_kwargs == {"lrn": "caffe"}
    assert get("alexnet", variant="torchvision").name == "torchvision_v1"
    with pytest.raises(ValueError, match="lrn must be left as it is for the bvlc weights"):
        kerasnets.AlexNet(weights="imagenet", lrn="paper")
    with pytest.raises(ValueError, match="No ImageNet preset of googlenet fits batch_norm=True"):
        kerasnets.GoogLeNet(weights="imagenet", batch_norm=True)
    with pytest.raises(ValueError, match="no public source matches"):
        kerasnets.GoogLeNetBN(weights="imagenet")
    with pytest.raises(ValueError, match="input_shape must be 227x227 for AlexNet"):
        kerasnets.AlexNet(weights="imagenet", input_shape=(224, 224, 3))
    with pytest.raises(ValueError, match="Caffe models load into GoogLeNet and AlexNet models only"):
        (tmp_path / "bvlc_googlenet.caffemodel").write_bytes(b"")
        kerasnets.ResNet18(weights=str(tmp_path / "bvlc_googlenet.caffemodel"))


def test_the_published_sha1_is_checked(weight_cache):
    preset = kerasnets.weights.get_preset("googlenet")
    assert preset.file.algorithm == "sha1" and preset.file.full_hash is None
    path = os.path.join(weight_cache, "bvlc_googlenet.caffemodel")
    with open(path, "wb") as f:
        f.write(b"\x0a\x09GoogleNet" + bytes(100))  # a truncated download
    with pytest.raises(ValueError, match="not the published bvlc_googlenet.caffemodel: its sha1 is .*405fc5ac"):
        kerasnets.weights.fetch(preset.file)


def test_preprocessing_of_the_bvlc_presets():
    x = np.full((1, 1, 1, 3), 128.0, np.float32)
    np.testing.assert_allclose(kerasnets.preprocess_input(x, model="googlenet")[0, 0, 0], [5.0, 11.0, 24.0])
    alexnet = kerasnets.weights.preprocessing_for("alexnet", "imagenet")
    assert alexnet.name == "bvlc_alexnet" and alexnet.crop_fraction == pytest.approx(227 / 256)
    # The paper's models without weights keep the paper's mean RGB value.
    assert kerasnets.weights.preprocessing_for("googlenet", None).name == "mean_subtraction"
    assert _convert.googlenet_caffe_name("inception_4a_b5_reduce_conv") == "inception_4a/5x5_reduce"
    assert _convert.googlenet_caffe_name("aux2_proj_conv") == "loss2/conv"
