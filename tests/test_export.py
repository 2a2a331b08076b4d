"""Export for serving: SavedModel signatures checked in a TensorFlow-only process,
atomic writes, argument errors, .keras in safe mode, TFLite, BatchNorm folding, the CLI."""

import collections
import inspect
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasnets
import kerasnets.cli
import kerasnets.export as ke
from kerasnets.card import ModelCard, ModelCardLayer
from kerasnets.data import preprocess_for_eval
from kerasnets.data._augment import eval_transform
from kerasnets.export._fold import foldable_pairs
from kerasnets.preprocessing import IMAGENET_MEAN_STD, Preprocessing

CLASSES = 7
# The model that stands for each family (default: the first registered name).
PREFERRED = {"resnet": "resnet18", "resnet_cifar": "resnet20", "inception": "inception_v3"}
EXTRA = []
HERE = os.path.dirname(os.path.abspath(__file__))
CUSTOM = Preprocessing("custom", mean=(10.0, 20.0, 30.0), std=(50.0, 60.0, 70.0), crop_fraction=1.0)


def _families():
    families = collections.defaultdict(list)
    for name in kerasnets.list_models():
        families[kerasnets.get_model_info(name).family].append(name)
    return families


def _representatives():
    names = [PREFERRED.get(family, models[0]) for family, models in sorted(_families().items())]
    return names + [n for n in EXTRA if n in kerasnets.list_models() and n not in names]


def _small_model(model_name, **kwargs):
    """A narrow model at its smallest size (at least 32), logits out."""
    size = max(kerasnets.get_model_info(model_name).min_size, 32)
    entry = kerasnets.registry.get_entry(model_name)
    small = {"width_multiplier": 0.25} if "width_multiplier" in inspect.signature(entry.builder).parameters else {}
    kwargs = {"classes": CLASSES, "classifier_activation": None, "input_shape": (size, size, 3), **small, **kwargs}
    return entry.build(**kwargs), size  # (get_model(name, ...) can't take the builder's `name`)


def _randomize_batch_norm(model, seed=0):
    """Trained-looking BatchNorm statistics (fresh ones are the identity)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.3, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
            if layer.gamma is not None:
                layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(0, 0.2, n).astype("float32"))


def _image_batches(size, rng):
    """Batches of several sizes: non-square, larger and smaller than the model, exact."""
    shapes = [(1, size + 13, size + 29), (3, 2 * size, size + 5), (2, size, size), (4, size // 2, size - 3)]
    return [rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8) for n, h, w in shapes]


def _write_files(folder, prefix, rng, size):
    """Two PNGs (one grey) and a JPEG of different sizes."""
    files = []
    smooth = lambda h, w, c: tf.cast(  # noqa: E731  (JPEG-friendly content)
        tf.image.resize(rng.uniform(0, 255, (h // 4, w // 4, c)), (h, w)), tf.uint8
    )
    for i, (h, w, c, kind) in enumerate([(size + 7, size + 21, 3, "png"), (size, 2 * size, 1, "png"), (3 * size, size + 3, 3, "jpeg")]):
        image = smooth(h, w, c)
        data = tf.io.encode_png(image) if kind == "png" else tf.io.encode_jpeg(image, quality=90)
        path = os.path.join(folder, f"{prefix}_image{i}.{kind}")
        tf.io.write_file(path, data)
        files.append(path)
    return files


def _tolerance(reference):
    """float32 rounding of a deep network: relative to the outputs' scale."""
    return 2e-5 * max(1.0, float(np.max(np.abs(reference))))


def _run_tf_only(tmp, jobs):
    jobs_file = os.path.join(tmp, "jobs.json")
    report_file = os.path.join(tmp, "report.json")
    with open(jobs_file, "w") as f:
        json.dump(jobs, f)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "_serving_check.py"), jobs_file, report_file],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(report_file) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Exports every family (plus special cases), runs them all in ONE TensorFlow-only
    subprocess, and returns the in-process references next to the served outputs."""
    tmp = str(tmp_path_factory.mktemp("served"))
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    cases, jobs = {}, []

    def add(label, model, size, prep, expected_fn, **export_kwargs):
        path = os.path.join(tmp, label)
        record = ke.saved_model(model, path, **export_kwargs)
        case = cases[label] = {"model": model, "record": record, "path": path, "runs": []}
        for i, images in enumerate(_image_batches(size, rng)):
            npy = os.path.join(tmp, f"{label}_{i}.npy")
            np.save(npy, images)
            expected = expected_fn(preprocess_for_eval(images, size, prep))
            case["runs"].append(("serving_default", images.shape, expected, f"{npy}.out.npz"))
            jobs.append({"path": path, "signature": "serving_default", "images": npy, "output": f"{npy}.out.npz"})
        files = _write_files(tmp, label, rng, size)
        decoded = tf.stack([
            eval_transform(tf.io.read_file(f), size, prep, prep.crop_fraction) for f in files
        ])
        out = os.path.join(tmp, f"{label}_bytes.out.npz")
        case["runs"].append(("serving_bytes", len(files), expected_fn(decoded), out))
        jobs.append({"path": path, "signature": "serving_bytes", "files": files, "output": out})

    raw = lambda model: lambda x: model(x, training=False).numpy()  # noqa: E731
    for name in _representatives():
        model, size = _small_model(name)
        _randomize_batch_norm(model)
        if len(model.outputs) > 1:  # GoogLeNet: trained with its auxiliary heads
            model.compile("sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            model.fit(rng.uniform(-1, 1, (2, size, size, 3)), np.array([0, 1]), epochs=1, verbose=0)
        inference = kerasnets.inference_model(model)
        prep = kerasnets.get_model_info(name).preprocessing
        # output="probabilities" serves the raw logits: the most sensitive comparison.
        add(name, model, size, prep, raw(inference), output="probabilities")

    # Softmax added to a logits model; top-k and class names; fold_batch_norm.
    model, size = _small_model("resnet20")
    _randomize_batch_norm(model)
    softmax = lambda x: tf.nn.softmax(model(x, training=False)).numpy()  # noqa: E731
    names = [f"class_{i}" for i in range(CLASSES)]
    prep = kerasnets.get_model_info("resnet20").preprocessing
    add("logits_topk", model, size, prep, softmax, class_names=names, top_k=3)
    add("folded", model, size, prep, softmax, fold_batch_norm=True)
    # A model that ends in a softmax, and a preprocessing given explicitly.
    model, size = _small_model("resnet20", classifier_activation="softmax", name="my_net")
    add("softmax_custom", model, size, CUSTOM, raw(model), preprocessing=CUSTOM)

    report = _run_tf_only(tmp, jobs)
    for case in cases.values():
        case["served"] = [(sig, shape, expected, dict(np.load(out))) for sig, shape, expected, out in case["runs"]]
    return cases, report


def test_every_family_is_exported(served):
    cases, _ = served
    assert set(_families()) <= {kerasnets.get_model_info(c).family for c in cases if c in kerasnets.list_models()}


def test_fresh_process_needs_no_kerasnets(served):
    cases, report = served
    assert report["kerasnets_modules"] == []
    for path, signatures in report["signatures"].items():
        assert set(ke.SIGNATURES) <= set(signatures), path


@pytest.mark.parametrize("name", _representatives())
def test_served_outputs_equal_in_process_model(served, name):
    cases, _ = served
    case = cases[name]
    assert ke.find_lambda_layers(case["model"]) == []  # so its .keras file loads in safe mode
    assert len(case["served"]) == 5  # four uint8 batches, one batch of files
    for signature, shape, expected, outputs in case["served"]:
        got = outputs["probabilities"]
        assert got.dtype == np.float32
        assert got.shape == expected.shape == (shape[0] if signature == "serving_default" else shape, CLASSES)
        diff = np.max(np.abs(got - expected))
        assert diff <= _tolerance(expected), (signature, shape, diff, np.max(np.abs(expected)))
    # the outputs depend on the image: not a constant model
    everything = np.concatenate([expected for _, _, expected, _ in case["served"]])
    assert np.ptp(everything, axis=0).max() > 1e-3


def test_googlenet_with_aux_heads_exports_single_output(served):
    cases, _ = served
    name = next(n for n in cases if n in kerasnets.list_models() and len(cases[n]["model"].outputs) > 1)
    case = cases[name]
    assert sorted(case["model"].output_names) == ["aux1", "aux2", "main"]
    for _, _, _, outputs in case["served"]:
        assert sorted(outputs) == ["probabilities", "top_k_indices", "top_k_scores"]
        assert outputs["probabilities"].shape[1] == CLASSES


def test_logits_get_softmax_top_k_and_class_names(served):
    cases, _ = served
    case = cases["logits_topk"]
    assert case["record"]["output"] == "logits" and case["record"]["top_k"] == 3
    for _, _, expected, outputs in case["served"]:
        probabilities = outputs["probabilities"]
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
        assert np.max(np.abs(probabilities - expected)) <= 1e-6
        order = np.argsort(-expected, axis=1)[:, :3]
        np.testing.assert_array_equal(outputs["top_k_indices"], order)
        assert outputs["top_k_indices"].dtype == np.int32
        np.testing.assert_allclose(outputs["top_k_scores"], np.take_along_axis(expected, order, 1), atol=1e-6)
        np.testing.assert_array_equal(outputs["top_k_class_names"], np.array([f"class_{i}" for i in range(CLASSES)])[order])


def test_folded_batch_norm_export_matches(served):
    cases, _ = served
    assert cases["folded"]["record"]["fold_batch_norm"] is True
    for _, _, expected, outputs in cases["folded"]["served"]:
        assert np.max(np.abs(outputs["probabilities"] - expected)) <= 1e-5
        assert "top_k_class_names" not in outputs


def test_softmax_model_and_explicit_preprocessing(served):
    cases, _ = served
    case = cases["softmax_custom"]
    assert case["record"]["output"] == "probabilities"
    # Named "my_net", it is still a ResNet-20 (its model card); the preprocessing given wins.
    assert case["record"]["model_name"] == "resnet20" and case["record"]["preprocessing"]["name"] == "custom"
    for signature, _, expected, outputs in case["served"]:
        assert np.max(np.abs(outputs["probabilities"] - expected)) <= 1e-6
    # With crop_fraction=1 an image of the model's size is only normalised:
    # checked against the NumPy reference of the preprocessing.
    _, shape, _, outputs = case["served"][2]
    images = np.load(os.path.join(os.path.dirname(case["path"]), "softmax_custom_2.npy"))
    reference = case["model"](CUSTOM.normalize_numpy(images), training=False).numpy()
    assert np.max(np.abs(outputs["probabilities"] - reference)) <= 1e-6


def test_metadata_records_what_produced_the_export(served):
    cases, _ = served
    case = cases["logits_topk"]
    record = ke.read_metadata(case["path"])
    assert record == json.loads(json.dumps(case["record"]))
    assert record["model_name"] == "resnet20" and record["family"] == "resnet_cifar"
    assert record["input_size"] == [32, 32]
    assert record["preprocessing"]["mean"] == list(IMAGENET_MEAN_STD.mean)
    assert record["class_names"] == [f"class_{i}" for i in range(CLASSES)]
    assert record["versions"]["tensorflow"] == tf.__version__
    assert record["versions"]["kerasnets"] == kerasnets.__version__
    assert set(record["signatures"]) >= set(ke.SIGNATURES)


# ---------------------------------------------------------------------------
# Atomic writes and argument errors (no subprocess).
# ---------------------------------------------------------------------------


# The record of a ResNet-20 (kerasnets.card): what a tiny model with it exports as.
RESNET20_CARD = ModelCard("resnet20", {}, kerasnets.get_model_info("resnet20").preprocessing)


def _tiny_model(name="tiny", card=None):
    """A few layers (Conv2D, BatchNorm, softmax classifier): exports in about a second."""
    inputs = keras.Input((32, 32, 3))
    x = inputs if card is None else ModelCardLayer(card, name="model_card")(inputs)
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x), name=name)


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(1)
    return _tiny_model(card=RESNET20_CARD)  # its model card: a ResNet-20's preprocessing


def _boom(*args, **kwargs):
    raise RuntimeError("disk full")


def test_interrupted_export_leaves_nothing(tiny, tmp_path, monkeypatch):
    path = tmp_path / "model"
    archive_class = type(keras.export.ExportArchive())
    write_out = archive_class.write_out
    for error in (RuntimeError, KeyboardInterrupt):

        def half_written(self, filepath, error=error, **kwargs):
            write_out(self, filepath, **kwargs)  # the SavedModel is complete ...
            raise error("interrupted")  # ... and the export dies before the metadata

        with monkeypatch.context() as patch:
            patch.setattr(archive_class, "write_out", half_written)
            with pytest.raises(error):
                ke.saved_model(tiny, path)
        assert os.listdir(tmp_path) == []  # no path, no staging folder left
    ke.saved_model(tiny, path)
    assert sorted(os.listdir(path)) == [".kerasnets-manifest.json", "assets", "fingerprint.pb",
                                        "kerasnets_export.json", "saved_model.pb", "variables"]


def test_failed_overwrite_keeps_the_previous_export(tiny, tmp_path, monkeypatch):
    path = tmp_path / "model"
    ke.saved_model(tiny, path, top_k=2)
    monkeypatch.setattr(ke, "write_json", _boom)
    with pytest.raises(RuntimeError, match="disk full"):
        ke.saved_model(tiny, path, top_k=1, overwrite=True)
    monkeypatch.undo()
    assert ke.read_metadata(path)["top_k"] == 2
    assert os.listdir(tmp_path) == ["model"]
    ke.saved_model(tiny, path, top_k=1, overwrite=True)
    assert ke.read_metadata(path)["top_k"] == 1


def test_bad_arguments_fail_before_writing(tiny, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    cases = [
        (dict(format="coreml"), "format must be one of"),
        (dict(path=taken), "already exists"),
        (dict(top_k=0), "top_k must be a positive integer"),
        (dict(class_names=["a", "b"]), r"one name per class \(3\)"),
        (dict(class_names="abc"), "must be a list of strings"),
        (dict(image_size=64), r"image_size must be None or the model's input size \(32, 32\)"),
        (dict(output="scores"), "output must be one of"),
        (dict(model_name="resnet2O"), "Did you mean"),
        (dict(preprocessing="imagenet"), "preprocessing must be"),
    ]
    for kwargs, message in cases:
        kwargs = {"path": tmp_path / "out", **kwargs}
        with pytest.raises(ValueError, match=message) as info:
            ke.export(tiny, **kwargs)
        assert "Received:" in str(info.value)
    assert os.listdir(tmp_path) == ["taken"]
    with pytest.raises(ValueError, match=r"\.keras"):
        ke.keras_file(tiny, tmp_path / "model.h5")
    with pytest.raises(ValueError, match=r"\.tflite"):
        ke.tflite(tiny, tmp_path / "model.lite")
    with pytest.raises(ValueError, match="Cannot tell which preprocessing.*no kerasnets model card"):
        ke.saved_model(_tiny_model("resnet20"), tmp_path / "out")  # a registered name is no card
    variable = kerasnets.ResNet20(classes=3, width_multiplier=0.25, input_shape=(None, None, 3))
    assert ke.resolve_spec(variable).image_size == (32, 32)  # the family's default size
    assert ke.resolve_spec(variable, image_size=48).image_size == (48, 48)
    assert os.listdir(tmp_path) == ["taken"]


def test_mixed_precision_model_is_served_in_float32(tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = _tiny_model(card=RESNET20_CARD)  # as `kerasnets train --precision mixed_bfloat16` builds it
    keras.config.set_dtype_policy("float32")
    record = ke.saved_model(model, tmp_path / "f32")
    assert record["compute_dtype"] == ["float32"]
    float32_model = ke._dtype.with_dtype_policy(model, "float32")
    assert float32_model.get_layer("conv").dtype_policy.name == "float32"
    images = np.random.default_rng(0).integers(0, 256, (2, 40, 36, 3), dtype=np.uint8)
    x = preprocess_for_eval(images, 32, kerasnets.get_model_info("resnet20").preprocessing)
    served = tf.saved_model.load(str(tmp_path / "f32")).signatures["serving_default"]
    got = served(images=tf.constant(images))["probabilities"].numpy()
    np.testing.assert_allclose(got, float32_model(x).numpy(), atol=1e-6)
    assert np.max(np.abs(got - model(x).numpy())) > 1e-6  # bfloat16 rounding is gone
    kept = ke.saved_model(model, tmp_path / "bf16", compute_dtype=None)
    assert kept["compute_dtype"] == ["mixed_bfloat16"]
    faster = ke._dtype.with_dtype_policy(_tiny_model(), "mixed_bfloat16")
    assert faster.get_layer("conv").dtype_policy.name == "mixed_bfloat16"
    assert faster.layers[-1].dtype_policy.name == "float32"  # the classifier stays float32
    report = ke.tflite(model, tmp_path / "m.tflite")  # TFLite has no bfloat16 kernels
    assert report["max_abs_diff"] <= 1e-4


# ---------------------------------------------------------------------------
# .keras, TFLite, BatchNorm folding.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet20", "googlenet"])  # ChannelZeroPad; LRN + aux heads
def test_keras_file_loads_in_safe_mode(tmp_path, name):
    model, size = _small_model(name)
    model.compile("adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    path = ke.keras_file(model, tmp_path / f"{name}.keras")
    loaded = keras.models.load_model(path)  # safe_mode=True, no custom_objects
    assert getattr(loaded, "optimizer", None) is None  # an inference file
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    expected = kerasnets.inference_model(model)(x)
    assert len(loaded.outputs) == 1
    np.testing.assert_allclose(loaded(x), expected, atol=1e-6)
    assert sorted(os.listdir(tmp_path)) == [f"{name}.keras"]


def test_keras_file_refuses_lambda_layers(tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    with pytest.raises(ValueError, match=r"Lambda layers \['double'\]"):
        ke.keras_file(model, tmp_path / "m.keras")
    assert os.listdir(tmp_path) == []


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_tflite_matches_keras(tmp_path, monkeypatch):
    model, size = _small_model("resnet20")
    _randomize_batch_norm(model)
    images = np.random.default_rng(3).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    report = ke.tflite(model, tmp_path / "m.tflite", check_images=images)
    assert report["max_abs_diff"] <= 1e-4
    interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "m.tflite"))
    detail = interpreter.get_input_details()[0]
    assert detail["dtype"] == np.uint8 and list(detail["shape"][1:]) == [size, size, 3]
    interpreter.resize_tensor_input(detail["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], images)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    logits = model(IMAGENET_MEAN_STD.normalize_numpy(images)).numpy()
    expected = tf.nn.softmax(logits).numpy()  # a softmax is added to a logits model
    assert np.max(np.abs(got - expected)) <= 1e-5
    # A conversion whose outputs disagree is refused and writes nothing.
    monkeypatch.setattr("kerasnets.export._tflite._run_interpreter", lambda content, x: np.zeros((len(x), 3)))
    with pytest.raises(ValueError, match="differ from the Keras model"):
        ke.tflite(_tiny_model(card=RESNET20_CARD), tmp_path / "bad.tflite")
    assert os.listdir(tmp_path) == ["m.tflite"]


def test_fold_batch_norm_same_function():
    model, size = _small_model("resnet18")
    _randomize_batch_norm(model)
    folded = ke.fold_batch_norm(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    assert folded.get_layer("conv1_conv").use_bias
    x = np.random.default_rng(0).uniform(-2, 2, (2, size, size, 3)).astype("float32")
    expected = model(x).numpy()
    assert np.max(np.abs(folded(x).numpy() - expected)) <= _tolerance(expected)
    assert not model.get_layer("conv1_conv").use_bias  # the original is untouched
    np.testing.assert_array_equal(model(x).numpy(), expected)


def test_fold_batch_norm_only_where_valid():
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, activation="relu", name="act_conv")(inputs)
    a = keras.layers.BatchNormalization(name="after_relu")(a)  # conv has an activation
    b = keras.layers.Conv2D(4, 3, name="shared_conv")(inputs)
    b1 = keras.layers.BatchNormalization(name="shared_bn")(b)
    b2 = keras.layers.Activation("relu")(b)  # the conv output feeds two layers
    c = keras.layers.Conv2D(4, 3, use_bias=True, name="plain_conv")(inputs)
    c = keras.layers.BatchNormalization(center=False, name="plain_bn")(c)
    outputs = keras.layers.Concatenate()([a, b1, b2, c])
    model = keras.Model(inputs, outputs)
    _randomize_batch_norm(model)
    assert foldable_pairs(model) == {"plain_bn": "plain_conv"}
    folded = ke.fold_batch_norm(model)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(folded(x), model(x), atol=1e-5)
    assert {layer.name for layer in folded.layers} >= {"after_relu", "shared_bn"}


# ---------------------------------------------------------------------------
# The command line.
# ---------------------------------------------------------------------------


def test_cli_export_reads_run_json(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    _tiny_model("net").save(run / "model.keras")
    custom = dict(CUSTOM.to_dict(), crop_fraction=0.5)
    (run / "run.json").write_text(json.dumps({  # as kerasnets.training writes it
        "model": "resnet20", "builder_kwargs": {"classes": 3, "width_multiplier": 0.25},
        "image_size": 32, "class_names": ["cat", "dog", "fox"], "preprocessing": custom,
    }))
    out = tmp_path / "export"
    assert kerasnets.cli.main(["export", str(run), "--output", str(out), "--top-k", "2"]) == 0
    record = ke.read_metadata(out)
    assert record["class_names"] == ["cat", "dog", "fox"] and record["top_k"] == 2
    assert record["model_name"] == "resnet20" and record["preprocessing"]["crop_fraction"] == 0.5
    assert record["builder_kwargs"] == {"classes": 3, "width_multiplier": 0.25}
    assert record["source"] == str(run / "model.keras")
    served = tf.saved_model.load(str(out)).signatures["serving_default"]
    names = served(images=tf.zeros([2, 50, 40, 3], tf.uint8))["top_k_class_names"]
    assert names.shape == (2, 2)
    assert "top_k_class_names" in capsys.readouterr().out

    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    assert kerasnets.cli.main(["export", str(run), "--output", str(out), "--class-names", str(labels)]) == 2
    error = capsys.readouterr().err
    assert "kerasnets export: error:" in error and "already exists" in error
    assert kerasnets.cli.main(
        ["export", str(run), "--output", str(tmp_path / "x"), "--class-names", str(labels)]
    ) == 2
    assert "one name per class (3)" in capsys.readouterr().err
    assert kerasnets.cli.main(["export", str(tmp_path / "none.keras"), "--output", str(tmp_path / "y")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert kerasnets.cli.main(
        ["export", str(run), "--output", str(tmp_path / "m.keras"), "--format", "keras"]
    ) == 0
    assert len(keras.models.load_model(tmp_path / "m.keras").outputs) == 1
    assert sorted(os.listdir(tmp_path)) == ["export", "labels.txt", "m.keras", "run"]
