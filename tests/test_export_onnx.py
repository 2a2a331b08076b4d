"""ONNX export (`kerasnets.export.onnx`, ``kerasnets export --format onnx``): ONNX Runtime serves
the SavedModel's outputs on the same uint8 images, with and without a static size; the exact
resize; the metadata; the refusals; the command line, converting in a TensorFlow child; the
benchmark's quick mode."""

import json
import os
import sys

import keras
import numpy as np
import onnx
import onnxruntime
import pytest
import tensorflow as tf

import kerasnets
import kerasnets.cli
import kerasnets.export as ke
from kerasnets.export._onnx import resize_weights
from kerasnets.preprocessing import MEAN_SUBTRACTION

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = 7
RTOL = 1e-4  # on the probabilities, relative to the largest
MODELS = ("resnet50", "googlenet", "vgg11")
VARIANTS = ("dynamic", "static")


def _model(name):
    """``name`` at width 0.25 and its smallest size (at least 32), logits out, with
    trained-looking BatchNorm statistics (fresh ones are the identity)."""
    size = max(kerasnets.get_model_info(name).min_size, 32)
    model = kerasnets.get_model(name, width_multiplier=0.25, classes=CLASSES, classifier_activation=None,
                                input_shape=(size, size, 3))
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            for weight, value in ((layer.moving_mean, rng.normal(0, 0.3, n)), (layer.moving_variance, rng.uniform(0.5, 2, n)),
                                  (layer.gamma, rng.uniform(0.5, 1.5, n)), (layer.beta, rng.normal(0, 0.2, n))):
                if weight is not None:
                    weight.assign(value.astype("float32"))
    return model, size


def _session(path):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(session, images):
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"images": images})))


@pytest.fixture(scope="module", autouse=True)
def _optimizer_errors_raise():
    """tf2onnx copies the whole graph before each of its optimisers, to restore it if one
    fails (a third of a conversion's time); here a failing optimiser fails the test instead."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TF2ONNX_CATCH_ERRORS", "FALSE")
        yield


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """For each model: a SavedModel and two ONNX exports (any size; the model's size only),
    and the outputs of both on the same uint8 images."""
    tmp = tmp_path_factory.mktemp("onnx")
    rng = np.random.default_rng(0)
    results = {}
    for name in MODELS:
        model, s = _model(name)
        # output="probabilities" on a logits model serves the raw logits: the most sensitive comparison.
        ke.saved_model(model, tmp / name, output="probabilities")
        serve = tf.saved_model.load(str(tmp / name)).signatures["serving_default"]
        shapes = {"dynamic": [(1, s + 13, s + 29), (3, 2 * s, s + 5), (2, s // 2, s - 3)], "static": [(3, s, s)]}
        results[name] = {"model": model}
        for variant in VARIANTS:
            path = tmp / f"{name}_{variant}.onnx"
            # check=False: the test compares with the SavedModel itself (the default check is
            # exercised by test_refusals_and_the_default_check).
            record = ke.onnx(model, path, output="probabilities", static_size=variant == "static", check=False)
            session = _session(path)
            runs = []
            for n, h, w in shapes[variant]:
                images = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
                expected = {k: v.numpy() for k, v in serve(images=tf.constant(images)).items()}
                runs.append((images.shape, expected, _run(session, images)))
            results[name][variant] = {"path": path, "record": record, "session": session, "runs": runs}
        results[name]["saved_model"] = tmp / name
    return results


@pytest.mark.slow(minutes=2)  # the module's tests share a worker (its exports): started early
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", MODELS)
def test_onnx_runtime_gives_the_saved_model_outputs(exports, name, variant):
    export = exports[name][variant]
    for shape, expected, got in export["runs"]:
        assert sorted(got) == sorted(expected) == ["probabilities", "top_k_indices", "top_k_scores"]
        p, q = got["probabilities"], expected["probabilities"]
        assert p.dtype == np.float32 and p.shape == q.shape == (shape[0], CLASSES)
        error = np.max(np.abs(p - q)) / np.max(np.abs(q))
        assert error <= RTOL, (shape, error)
        assert got["top_k_indices"].dtype == np.int32
        np.testing.assert_array_equal(got["top_k_indices"], expected["top_k_indices"])
        assert np.max(np.abs(got["top_k_scores"] - expected["top_k_scores"])) <= RTOL * np.max(np.abs(q))
    everything = np.concatenate([expected["probabilities"] for _, expected, _ in export["runs"]])
    assert np.ptp(everything, axis=0).max() > 1e-3  # the outputs depend on the image
    size = exports[name]["model"].inputs[0].shape[1]
    dims = [d.dim_param or d.dim_value for d in onnx.load(export["path"]).graph.input[0].type.tensor_type.shape.dim]
    assert dims == (["batch", "height", "width", 3] if variant == "dynamic" else ["batch", size, size, 3])
    graph = onnx.load(export["path"]).graph
    ops = {node.op_type for node in graph.node}
    assert "BatchNormalization" not in ops and {"Conv", "TopK"} <= ops  # folded; top-k in the graph
    assert {node.domain for node in graph.node} <= {"", "ai.onnx"}  # standard operators only
    assert export["record"]["opset"] == ke._onnx.DEFAULT_OPSET
    assert export["record"]["static_size"] == (None if variant == "dynamic" else [size, size])


def test_dynamic_batch_includes_an_empty_one(exports):
    session = exports["resnet50"]["static"]["session"]
    size = exports["resnet50"]["model"].inputs[0].shape[1]
    outputs = _run(session, np.zeros((0, size, size, 3), np.uint8))
    assert outputs["probabilities"].shape == (0, CLASSES) and outputs["top_k_indices"].shape == (0, 5)


def test_resize_weights_equal_tensorflows_antialiased_resize():
    rng = np.random.default_rng(0)
    for size_in, size_out in [(37, 32), (32, 32), (20, 32), (300, 64), (1, 8), (224, 224)]:
        image = rng.uniform(0, 255, (size_in, 5)).astype(np.float32)
        expected = tf.image.resize(image[:, :, None], (size_out, 5), antialias=True)[:, :, 0].numpy()
        weights = resize_weights(size_in, size_out).numpy()
        assert weights.shape == (size_out, size_in)
        np.testing.assert_allclose(weights @ image, expected, atol=1e-4)
    np.testing.assert_array_equal(resize_weights(6, 6).numpy(), np.eye(6))


def test_metadata_is_the_saved_models_record(exports):
    export = exports["resnet50"]["dynamic"]
    record = ke.read_metadata(export["path"])
    saved = ke.read_metadata(exports["resnet50"]["saved_model"])
    assert record == json.loads(json.dumps(export["record"]))
    stored = export["session"].get_modelmeta().custom_metadata_map[ke.METADATA_KEY]  # as a user reads it
    assert json.loads(stored) == record
    assert record["format"] == "onnx" and record["fold_batch_norm"] is True
    assert record["model_name"] == "resnet50" and record["family"] == "resnet"
    assert record["preprocessing"] == saved["preprocessing"] and record["preprocessing"]["name"] == "imagenet_mean_std"
    assert record["output"] == "probabilities" and record["top_k"] == 5 and record["input_size"] == [32, 32]
    for key in set(saved) - {"format", "fold_batch_norm", "signatures", "created", "compute_dtype", "versions"}:
        assert record[key] == saved[key], key
    assert record["versions"]["tf2onnx"] == __import__("tf2onnx").__version__
    assert record["signatures"]["onnx"]["inputs"]["images"].startswith("uint8 [batch, height, width, 3]")


def _tiny(name="resnet20"):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Activation("relu")(x))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="fc")(x), name=name)


def test_refusals_and_the_default_check(tmp_path, monkeypatch):
    tiny = _tiny()
    tiny.kerasnets_preprocessing = MEAN_SUBTRACTION  # as a weights preset sets it
    path = tmp_path / "m.onnx"
    record = ke.onnx(tiny, path, top_k=2)  # checked against the SavedModel signature
    assert record["check"]["max_rel_diff"] <= RTOL and record["check"]["images"] == [3, 45, 72, 3]
    assert record["preprocessing"]["name"] == "mean_subtraction" and record["model_name"] == "resnet20"
    written = path.read_bytes()
    with pytest.raises(ValueError, match="already exists. Pass overwrite=True"):
        ke.onnx(tiny, path)
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(b"someone's model")
    with pytest.raises(ValueError, match="is not an ONNX model exported by kerasnets"):
        ke.onnx(tiny, foreign, overwrite=True)
    for kwargs, message in [(dict(path=tmp_path / "m.pb"), "path must be an ONNX file path ending in .onnx"),
                            (dict(opset=19), "opset must be an ONNX opset from 13 to 18"),
                            (dict(static_size=0), "static_size must be a positive integer"),
                            (dict(check_images=np.zeros((2, 8, 8, 3))), "check_images must be a uint8 array")]:
        with pytest.raises(ValueError, match=message):
            ke.onnx(tiny, **{"path": tmp_path / "new.onnx", **kwargs})
    # Outputs that disagree with the SavedModel signature's: refused, nothing written.
    monkeypatch.setattr("kerasnets.export._onnx._run_onnx", lambda content, x: {"probabilities": np.zeros((len(x), 3))})
    with pytest.raises(ValueError, match="differ from the SavedModel signature's"):
        ke.onnx(tiny, path, overwrite=True)
    monkeypatch.undo()
    # The optional packages missing: one error naming the extra, before anything is written.
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'kerasnets\[onnx\]'. Missing: tf2onnx"):
        ke.onnx(tiny, tmp_path / "new.onnx")
    monkeypatch.undo()
    assert path.read_bytes() == written and foreign.read_bytes() == b"someone's model"
    ke.onnx(tiny, path, top_k=1, overwrite=True, check=False)  # a previous export: replaced
    assert ke.read_metadata(path)["top_k"] == 1
    assert sorted(os.listdir(tmp_path)) == ["foreign.onnx", "m.onnx"]


def test_cli_export_onnx_converted_in_a_tensorflow_child(tmp_path, capfd, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    tiny = _tiny("net")
    tiny.save(run / "model.keras")
    (run / "run.json").write_text(json.dumps({"model": "resnet20", "image_size": 32, "class_names": ["a", "b", "c"]}))
    out = tmp_path / "m.onnx"
    argv = ["export", str(run), "--output", str(out), "--format", "onnx", "--static-size", "40x50"]
    # Under JAX or torch the model is saved and converted by a TensorFlow-backend child; the
    # parent's backend does not matter to that path, so it is taken here from TensorFlow.
    monkeypatch.setattr("kerasnets.export._backend.needs_tensorflow", lambda: True)
    assert kerasnets.cli.main(argv) == 0
    printed = capfd.readouterr()
    assert "Converting to onnx under the TensorFlow backend" in printed.err
    assert "(ONNX opset 17)" in printed.out and "images: uint8 [batch, 40, 50, 3]" in printed.out
    images = np.random.default_rng(0).integers(0, 256, (2, 40, 50, 3), dtype=np.uint8)
    outputs = _run(_session(out), images)
    assert outputs["top_k_class_names"].shape == (2, 3) and set(outputs["top_k_class_names"][0]) == {"a", "b", "c"}
    x = kerasnets.data.preprocess_for_eval(images, 32, kerasnets.get_model_info("resnet20").preprocessing)
    np.testing.assert_allclose(outputs["probabilities"], tiny(x).numpy(), atol=1e-5)
    record = ke.read_metadata(out)
    assert record["static_size"] == [40, 50] and record["check"]["max_rel_diff"] <= RTOL
    assert record["source"] == str(run / "model.keras") and record["class_names"] == ["a", "b", "c"]
    monkeypatch.undo()

    assert kerasnets.cli.main(argv) == 2
    assert "already exists" in capfd.readouterr().err
    bad = [(["--format", "tflite", "--static-size"], "--format must be onnx for --static-size"),
           (["--static-size", "40by50"], "--static-size must be HxW or N"),
           (["--output", str(tmp_path / "m.tflite")], "--output must be a file path ending in .onnx")]
    for extra, message in bad:
        assert kerasnets.cli.main(["export", str(run), "--output", str(tmp_path / "x.onnx"), "--format", "onnx", *extra]) == 2
        assert message in capfd.readouterr().err
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert kerasnets.cli.main(["export", str(run), "--output", str(tmp_path / "x.onnx"), "--format", "onnx"]) == 2
    error = capfd.readouterr().err.strip()
    assert error.startswith("kerasnets export: error: The ONNX export needs") and "kerasnets[onnx]" in error
    assert len(error.splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "run"]


def test_serving_benchmark_quick(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("serving_benchmark", os.path.join(ROOT, "benchmarks", "serving.py"))
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    out = tmp_path / "serving.json"
    contenders = [c for c in benchmark.CONTENDERS if c != "saved_model"]  # saved_model+fold: the same path
    report = benchmark.main(["--quick", "--json", str(out), "--contenders", *contenders])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    peaks = {"all": report["matmul_macs_per_second"], "one": report["matmul_macs_per_second_one_thread"]}
    assert min(peaks.values()) > 0 and report["macs_per_image"] > 0
    rows = report["results"]
    assert {(r["contender"], r["batch"]) for r in rows} == {
        (c, b) for c in contenders for b in (1, 2)}
    for row in rows:
        assert row["images_per_second"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["matmul_threads"] == ("one" if row["contender"].endswith("1thread") else "all")
        assert row["roofline_fraction"] == pytest.approx(
            row["images_per_second"] * report["macs_per_image"] / peaks[row["matmul_threads"]])
        assert row["top1_agreement"] == 1.0 or row["contender"] == "tflite", row
        if row["contender"] != "tflite":  # TFLite takes uint8 images at the model's size: rounded
            assert row["max_rel_diff"] <= RTOL, row
    assert report["profiled"] in ("onnxruntime", "onnxruntime-1thread")
    assert report["onnx_profile"] and report["onnx_profile"][0]["share"] > 0
    assert sum(row["share"] for row in report["onnx_profile"]) == pytest.approx(1.0)
