"""GoogLeNet: Table 1 module by module, the auxiliary heads and their training plumbing.

The registry matrix (tests/test_registry_matrix.py) covers the contract options,
gradients and save/load of ``googlenet`` and ``googlenet_bn``; this file covers
what it cannot: the paper's numbers, three-head training, `inference_model`.
"""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets.models import googlenet as gnet
from kerasnets.models._multi_output import AuxiliaryClassifierModel, with_named_outputs
from kerasnets.preprocessing import MEAN_SUBTRACTION
from _matrix_utils import nchw_convolution_runs, symbolic_output_shapes

# Table 1 of Szegedy et al. (2014), as printed: #1x1, #3x3 reduce, #3x3, #5x5
# reduce, #5x5, pool proj, params (K).
PAPER_TABLE1 = {
    "3a": (64, 96, 128, 16, 32, 32, 159),
    "3b": (128, 128, 192, 32, 96, 64, 380),
    "4a": (192, 96, 208, 16, 48, 64, 364),
    "4b": (160, 112, 224, 24, 64, 64, 437),
    "4c": (128, 128, 256, 24, 64, 64, 463),
    "4d": (112, 144, 288, 32, 64, 64, 580),
    "4e": (256, 160, 320, 32, 128, 128, 840),
    "5a": (256, 160, 320, 32, 128, 128, 1072),
    "5b": (384, 192, 384, 48, 128, 128, 1388),
}
# The other rows of Table 1's params column (K): conv1, conv2 and the linear layer; the
# column's sum, 6797.7K.
PAPER_OTHER_PARAMS_K = {"conv1": 2.7, "conv2": 112, "linear": 1000}
PAPER_PARAMS_K_TOTAL = 6797.7
# Entries of the paper's params column that its own widths do not give.
PAPER_TYPOS = {"4c": 497.5, "5a": 1018.0}


def _kernel_weights(model, prefix):
    """Weights of the kernels (no biases) of the layers whose name starts with prefix."""
    return sum(
        int(np.prod(layer.kernel.shape))
        for layer in model.layers
        if layer.name.startswith(prefix) and hasattr(layer, "kernel")
    )


@pytest.fixture(scope="module")
def googlenet_224():
    """The paper's network at 224x224 without auxiliary heads (built, never run)."""
    return kerasnets.GoogLeNet(weights=None, aux_classifiers=False)


def test_width_table_is_the_papers():
    for module, row in PAPER_TABLE1.items():
        assert tuple(gnet.TABLE1[module]) == row[:6], module
        assert gnet.TABLE1_PARAMS_K[module] == row[6]
    for layer, paper_k in PAPER_OTHER_PARAMS_K.items():
        assert gnet.TABLE1_PARAMS_K[layer] == paper_k, layer
    assert sum(gnet.TABLE1_PARAMS_K.values()) == pytest.approx(PAPER_PARAMS_K_TOTAL)
    assert gnet.TABLE1["4a"]._fields == ("b1", "b3_reduce", "b3", "b5_reduce", "b5", "pool_proj")


def test_params_module_by_module_match_table1(googlenet_224):
    model = googlenet_224
    in_channels = 192
    for module, (b1, r3, b3, r5, b5, proj, paper_k) in PAPER_TABLE1.items():
        expected = in_channels * (b1 + r3 + r5 + proj) + 9 * r3 * b3 + 25 * r5 * b5
        ours = _kernel_weights(model, f"inception_{module}_")
        assert ours == expected, module
        # The paper's "K" is 1024 weights; two entries disagree with its own widths.
        if module in PAPER_TYPOS:
            assert ours / 1024 == PAPER_TYPOS[module]
        else:
            assert ours / 1024 == pytest.approx(paper_k, rel=0.02), module
        in_channels = b1 + b3 + b5 + proj
    assert in_channels == 1024
    conv2 = _kernel_weights(model, "conv2")
    assert conv2 / 1024 == PAPER_OTHER_PARAMS_K["conv2"]  # 1x1x64x64 + 3x3x64x192 = 112 x 1024
    assert _kernel_weights(model, "predictions") / 1024 == PAPER_OTHER_PARAMS_K["linear"]  # 1024x1000
    # conv1: 7x7x3x64 weights; the paper prints 2.7K.
    assert _kernel_weights(model, "conv1") == 7 * 7 * 3 * 64
    all_weights = _kernel_weights(model, "")
    assert all_weights == 6_990_272
    assert all_weights / 1024 == pytest.approx(PAPER_PARAMS_K_TOTAL, rel=0.005)
    biases = sum(int(np.prod(w.shape)) for w in model.weights if w.path.endswith("bias"))
    assert model.count_params() == all_weights + biases == 6_998_552


def test_layout_at_224(googlenet_224):
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in googlenet_224.layers}
    assert shapes["conv1_relu"] == (112, 112, 64)
    assert shapes["pool1"] == shapes["norm1"] == (56, 56, 64)
    assert shapes["norm2"] == (56, 56, 192)
    assert shapes["pool2"] == (28, 28, 192)
    assert shapes["inception_3b_output"] == (28, 28, 480)
    assert shapes["pool3"] == (14, 14, 480)
    assert shapes["inception_4e_output"] == (14, 14, 832)
    assert shapes["inception_5b_output"] == (7, 7, 1024)
    # The 5x5 branch is a 5x5 (not torchvision's 3x3, pytorch/vision#906).
    assert tuple(googlenet_224.get_layer("inception_3a_b5_conv").kernel.shape) == (5, 5, 16, 32)
    assert googlenet_224.get_layer("top_dropout").rate == 0.4
    norm = googlenet_224.get_layer("norm1")
    assert (norm.size, norm.k, norm.alpha, norm.beta, norm.alpha_is_averaged) == (5, 1.0, 1e-4, 0.75, True)


def _caffe_max_pool(x, kernel=3, stride=2):
    """Caffe's max pooling without padding (NHWC): ceil mode, windows from pixel 0, the
    last one clipped at the border."""
    n = x.shape[1]
    out = -(-(n - kernel) // stride) + 1
    size = (out - 1) * stride + kernel
    padded = np.full((x.shape[0], size, size, x.shape[3]), -np.inf, x.dtype)
    padded[:, :n, :n] = x
    return np.max([padded[:, i:i + stride * out:stride, j:j + stride * out:stride]
                   for i in range(kernel) for j in range(kernel)], axis=0)


@pytest.mark.parametrize("size", [224, 225])
def test_max_pools_are_caffes_windows(size):
    """The 3x3/2 max pools pool as Caffe's (the BVLC reference model, torchvision's
    googlenet): at an odd size the windows that symmetric padding would shift by a
    pixel give another size (225: 113 -> 56, not 57), at an even one other values."""
    model = kerasnets.GoogLeNet(weights=None, include_top=False, width_multiplier=0.125,
                                input_shape=(size, size, 3))
    pools = ["conv1_relu", "pool1", "norm2", "pool2", "inception_3b_output", "pool3",
             "inception_4e_output", "pool4"]
    probe = keras.Model(model.input, [model.get_layer(n).output for n in pools])
    x = np.random.default_rng(0).uniform(-100, 100, (1, size, size, 3)).astype("float32")
    outputs = [keras.ops.convert_to_numpy(o) for o in probe(x)]
    assert [o.shape[1] for o in outputs[1::2]] == [56, 28, 14, 7]
    for before, after in zip(outputs[::2], outputs[1::2]):
        assert before.min() >= 0  # zero padding is Caffe's clipping only on inputs >= 0
        np.testing.assert_allclose(after, _caffe_max_pool(before), rtol=1e-6)


def test_auxiliary_heads_at_224(no_random_init):
    model = kerasnets.GoogLeNet(weights=None)
    assert isinstance(model, AuxiliaryClassifierModel)
    assert model.output_names == ["aux1", "aux2", "main"]
    assert model.aux_loss_weight == 0.3
    assert all(tuple(t.shape) == (None, 1000) for t in model.outputs)
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["aux1_pool"] == (4, 4, 512)  # on 4a
    assert shapes["aux2_pool"] == (4, 4, 528)  # on 4d
    assert shapes["aux1_proj_relu"] == (4, 4, 128)
    assert shapes["aux1_fc"] == (1024,)
    assert model.get_layer("aux1_dropout").rate == 0.7
    aux = model.count_params() - 6_998_552
    per_head = lambda c: c * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000  # noqa: E731
    assert aux == per_head(512) + per_head(528)


def test_batch_norm_variant():
    model = kerasnets.GoogLeNetBN(weights=None, input_shape=(79, 79, 3), width_multiplier=0.25)
    assert model.name == "googlenet_bn"
    names = {layer.name for layer in model.layers}
    assert not any(name.startswith("norm") for name in names)
    assert {"conv1_bn", "inception_4a_b5_bn", "aux1_proj_bn"} <= names
    assert model.get_layer("conv1_conv").bias is None
    aux_weights = sum(int(np.prod(w.shape)) for w in model.weights if w.path.startswith("aux"))
    plain = kerasnets.GoogLeNet(
        weights=None, batch_norm=True, aux_classifiers=False, input_shape=(79, 79, 3), width_multiplier=0.25
    )
    assert plain.count_params() == model.count_params() - aux_weights
    assert kerasnets.InceptionV1 is kerasnets.GoogLeNet


def test_plain_network_starts_with_small_logits_on_mean_subtracted_pixels():
    # Without BatchNorm the initializer decides whether the paper's lr 0.01 trains:
    # Caffe's "xavier" (variance 1 / fan_in) keeps the initial logits of
    # mean-subtracted [0, 255] pixels small; he_normal gave logits in the hundreds
    # and the first SGD steps went to NaN.
    keras.utils.set_random_seed(0)
    model = kerasnets.GoogLeNet(weights=None, aux_classifiers=False, classifier_activation=None)
    assert model.get_layer("conv1_conv").kernel_initializer.__class__.__name__ == "LecunUniform"
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    logits = keras.ops.convert_to_numpy(model(MEAN_SUBTRACTION.normalize_numpy(pixels)))
    assert np.isfinite(logits).all() and np.abs(logits).max() < 10, np.abs(logits).max()
    bn = kerasnets.GoogLeNetBN(weights=None, input_shape=(79, 79, 3), width_multiplier=0.25)
    init = bn.get_layer("conv1_conv").kernel_initializer
    assert (init.scale, init.mode, init.distribution) == (2.0, "fan_in", "untruncated_normal")


def test_min_size_and_errors():
    # The auxiliary heads' 5x5/3 average pool needs 5x5 maps at 4a: 79x79 inputs with
    # Caffe's ceil-mode max pools (40 -> 20 -> 10 -> 5); without them 31x31 is enough.
    assert kerasnets.get_model_info("googlenet").min_size == 79
    kwargs = dict(weights=None, width_multiplier=0.125)
    with pytest.raises(ValueError, match="at least 79x79"):
        kerasnets.GoogLeNet(input_shape=(78, 78, 3), **kwargs)
    kerasnets.GoogLeNet(input_shape=(78, 78, 3), aux_classifiers=False, **kwargs)
    with pytest.raises(ValueError, match="at least 31x31"):
        kerasnets.GoogLeNet(input_shape=(30, 30, 3), aux_classifiers=False, **kwargs)
    assert kerasnets.GoogLeNet(input_shape=(31, 31, 3), include_top=False, **kwargs).output_shape == (
        None, 1, 1, 128)
    with pytest.raises(ValueError, match="fixed height and width"):
        kerasnets.GoogLeNet(input_shape=(None, None, 3), **kwargs)
    with pytest.raises(ValueError, match="need include_top=True"):
        kerasnets.GoogLeNet(include_top=False, aux_classifiers=True, **kwargs)
    with pytest.raises(ValueError, match="Received: aux_loss_weight=-1"):
        kerasnets.GoogLeNet(aux_loss_weight=-1, **kwargs)
    with pytest.raises(ValueError, match="unknown modules"):
        kerasnets.GoogLeNet(module_widths={"6a": {"b1": 3}}, **kwargs)
    with pytest.raises(ValueError, match="unknown fields"):
        kerasnets.GoogLeNet(module_widths={"4a": {"b7": 3}}, **kwargs)
    with pytest.raises(ValueError, match=r"stage_widths\['4a'\]\.b5 must be a positive integer for GoogLeNet"):
        kerasnets.GoogLeNet(module_widths={"4a": {"b5": 0}}, **kwargs)
    with pytest.raises(ValueError, match="Received: batch_norm='yes'"):
        kerasnets.GoogLeNet(batch_norm="yes", **kwargs)


def test_module_widths_and_width_multiplier():
    model = kerasnets.GoogLeNet(
        weights=None, include_top=False, width_multiplier=0.5,
        module_widths={"3a": {"b5": 64}, "5b": gnet.InceptionWidths(10, 10, 10, 10, 10, 10)},
    )
    assert model.get_layer("inception_3a_b5_conv").kernel.shape[-1] == 32
    assert model.output_shape == (None, 7, 7, 20)
    assert model.get_layer("conv2_conv").kernel.shape[-1] == 96


def test_channels_first_with_aux_heads(channels_first):
    """The heads work on channels_first inputs; the call runs only where NCHW convolutions
    run in this process (see `_matrix_utils.nchw_convolution_runs`)."""
    model = kerasnets.GoogLeNet(weights=None, classes=3, input_shape=(3, 79, 79), width_multiplier=0.125)
    assert symbolic_output_shapes(model) == dict.fromkeys(("main", "aux1", "aux2"), (None, 3))
    for head in ("aux1", "aux2"):
        pool = model.get_layer(f"{head}_pool")
        assert pool.data_format == "channels_first" and pool.output.shape[1] == model.get_layer(
            "inception_4a_output" if head == "aux1" else "inception_4d_output").output.shape[1]
    if not nchw_convolution_runs():
        return
    out = model(np.random.rand(2, 3, 79, 79).astype("float32"))
    assert set(out) == {"main", "aux1", "aux2"}
    for value in out.values():
        assert value.shape == (2, 3)
        np.testing.assert_allclose(np.sum(value, axis=-1), 1.0, rtol=1e-5)


def test_every_head_outputs_float32_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_bfloat16")  # the conftest fixture restores float32
    model = kerasnets.GoogLeNet(weights=None, classes=3, input_shape=(79, 79, 3), width_multiplier=0.125)
    out = model(np.random.rand(2, 79, 79, 3).astype("float32"))
    dtypes = {key: keras.backend.standardize_dtype(v.dtype) for key, v in out.items()}
    assert dtypes == dict.fromkeys(out, "float32")
    assert model.get_layer("inception_4a_output").compute_dtype == "bfloat16"
    assert kerasnets.inference_model(model).output.dtype == "float32"


def _brightness_data(n=16, size=79, classes=4, seed=0):
    """Images whose class is their brightness: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(0, 0.5, size=(n, size, size, 3)) + (y[:, None, None, None] - 1.5)
    return x.astype("float32"), y


def test_fit_trains_all_three_heads_from_one_label():
    keras.utils.set_random_seed(0)
    x, y = _brightness_data()
    model = kerasnets.GoogLeNet(weights=None, classes=4, input_shape=x.shape[1:], width_multiplier=0.25)
    model.compile(keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    history = model.fit(x, y, batch_size=8, epochs=8, verbose=0, shuffle=False)
    after = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    assert set(history.history) == {
        "loss", "main_loss", "aux1_loss", "aux2_loss",
        "main_accuracy", "aux1_accuracy", "aux2_accuracy",
    }
    for head in ("main", "aux1", "aux2"):
        assert after[f"{head}_loss"] < before[f"{head}_loss"], head
        losses = history.history[f"{head}_loss"]
        assert np.mean(losses[-2:]) < np.mean(losses[:2]), head
    for result in (before, after):  # total = main + 0.3 aux1 + 0.3 aux2
        weighted = result["main_loss"] + 0.3 * (result["aux1_loss"] + result["aux2_loss"])
        assert result["loss"] == pytest.approx(weighted, rel=1e-5)


def test_inference_model_shares_the_trained_weights():
    kwargs = dict(weights=None, classes=3, input_shape=(79, 79, 3), width_multiplier=0.125)
    model = kerasnets.GoogLeNet(**kwargs)
    serving = kerasnets.inference_model(model)
    assert len(serving.outputs) == 1 and serving.output_shape == (None, 3)
    assert serving.get_layer("predictions") is model.get_layer("predictions")
    assert not any(layer.name.startswith("aux") for layer in serving.layers)
    plain = kerasnets.GoogLeNet(aux_classifiers=False, **kwargs)
    assert kerasnets.inference_model(plain) is plain
    assert [w.path for w in serving.weights] == [w.path for w in plain.weights]

    x = np.random.default_rng(1).normal(size=(2, 79, 79, 3)).astype("float32")
    np.testing.assert_allclose(serving(x), model(x)["main"], rtol=1e-6)
    # Changing the training model changes the inference model, and back.
    before = np.asarray(serving(x))
    model.get_layer("predictions").bias.assign([5.0, 0.0, 0.0])
    after = np.asarray(serving(x))
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, model(x)["main"], rtol=1e-6)
    serving.get_layer("inception_5b_b1_conv").kernel.assign(
        np.zeros(serving.get_layer("inception_5b_b1_conv").kernel.shape)
    )
    assert not np.any(model.get_layer("inception_5b_b1_conv").kernel.numpy())
    # Its weights load into the aux-free architecture.
    plain.set_weights(serving.get_weights())
    np.testing.assert_allclose(plain(x), serving(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="Received: model="):
        kerasnets.inference_model("googlenet")


# ---------------------------------------------------------------------------
# The label plumbing of AuxiliaryClassifierModel, on a small model.
# ---------------------------------------------------------------------------


def _toy_model(aux_loss_weight=0.3):
    inputs = keras.Input((6,), name="input_layer")
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    dense = lambda name: keras.layers.Dense(3, activation="softmax", name=name)  # noqa: E731
    outputs = {
        "main": dense("predictions")(hidden),
        "aux1": dense("aux1_predictions")(hidden),
        "aux2": dense("aux2_predictions")(inputs),
    }
    return with_named_outputs(inputs, outputs, name="toy", aux_loss_weight=aux_loss_weight)


def _toy_data(n=32):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, 3, n)


def test_loss_weights_defaults_and_overrides():
    x, y = _toy_data()
    model = _toy_model(aux_loss_weight=0.5)
    assert model.default_loss_weights == {"main": 1.0, "aux1": 0.5, "aux2": 0.5}
    model.compile("sgd", loss="sparse_categorical_crossentropy")
    r = model.evaluate(x, y, verbose=0, return_dict=True)
    assert r["loss"] == pytest.approx(r["main_loss"] + 0.5 * r["aux1_loss"] + 0.5 * r["aux2_loss"], rel=1e-5)
    model.compile("sgd", loss="sparse_categorical_crossentropy", loss_weights={"aux1": 0.0})
    r = model.evaluate(x, y, verbose=0, return_dict=True)
    assert r["loss"] == pytest.approx(r["main_loss"] + 0.5 * r["aux2_loss"], rel=1e-5)
    # A loss dict and labels given per head are used as given.
    model.compile("sgd", loss={"main": "sparse_categorical_crossentropy"})
    r = model.evaluate(x, {"main": y, "aux1": y, "aux2": y}, verbose=0, return_dict=True)
    main = model.predict(x, verbose=0)["main"]
    expected = keras.losses.SparseCategoricalCrossentropy()(y, main)
    assert r["loss"] == pytest.approx(float(expected), rel=1e-5)


def test_metrics_per_head_with_separate_state():
    x, y = _toy_data()
    model = _toy_model()
    accuracy = keras.metrics.SparseCategoricalAccuracy(name="acc")
    model.compile("sgd", loss="sparse_categorical_crossentropy", metrics=[accuracy])
    r = model.evaluate(x, y, verbose=0, return_dict=True)
    assert {"main_acc", "aux1_acc", "aux2_acc"} <= set(r)
    assert float(accuracy.result()) == pytest.approx(r["main_acc"])
    predictions = model.predict(x, verbose=0)
    for head in ("main", "aux1", "aux2"):
        expected = np.mean(np.argmax(predictions[head], axis=-1) == y)
        assert r[f"{head}_acc"] == pytest.approx(expected)
    # class_weight and sample_weight apply to every head.
    history = model.fit(x, y, epochs=1, verbose=0, class_weight={0: 1.0, 1: 2.0, 2: 1.0})
    assert np.isfinite(history.history["loss"][0])


def test_compile_errors():
    model = _toy_model()
    with pytest.raises(ValueError, match="not a positional list"):
        model.compile("sgd", loss=["mse", "mse", "mse"])
    with pytest.raises(ValueError, match="Received: loss_weights=0.3"):
        model.compile("sgd", loss="mse", loss_weights=0.3)
    with pytest.raises(ValueError, match=r"loss_weights must be keyed by the outputs .*unknown outputs: \['aux3'\]"):
        model.compile("sgd", loss="mse", loss_weights={"aux3": 1.0})
    with pytest.raises(ValueError, match=r"loss must be keyed by the outputs .*unknown outputs: \['aux3'\]"):
        model.compile("sgd", loss={"aux3": "mse"})
    with pytest.raises(ValueError, match="positional nested list"):
        model.compile("sgd", loss="mse", metrics=[["accuracy"], ["accuracy"], ["accuracy"]])
    with pytest.raises(ValueError, match="aux_loss_weight"):
        _toy_model(aux_loss_weight=-0.1)


def test_save_and_load_keeps_the_compiled_plumbing(tmp_path):
    import tensorflow as tf

    x, y = _toy_data()
    model = _toy_model(aux_loss_weight=0.25)
    model.compile("adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model.fit(dataset, epochs=1, verbose=0)
    path = str(tmp_path / "toy.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded) is AuxiliaryClassifierModel and loaded.aux_loss_weight == 0.25
    assert int(loaded.optimizer.iterations) == 4
    expected = model.evaluate(x, y, verbose=0, return_dict=True)
    got = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert got == pytest.approx(expected, rel=1e-5)
    weighted = got["main_loss"] + 0.25 * (got["aux1_loss"] + got["aux2_loss"])
    assert got["loss"] == pytest.approx(weighted, rel=1e-5)
    history = loaded.fit(dataset, epochs=1, verbose=0)
    assert "aux2_accuracy" in history.history


_MIRRORED = textwrap.dedent(
    """
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from kerasnets.models._multi_output import with_named_outputs
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        inputs = keras.Input((6,))
        outputs = {k: keras.layers.Dense(3, activation="softmax", name=f"{k}_predictions")(inputs)
                   for k in ("main", "aux1", "aux2")}
        model = with_named_outputs(inputs, outputs, name="toy", aux_loss_weight=0.3)
        model.compile("sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype("float32"), rng.integers(0, 3, 32)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    history = model.fit(dataset, epochs=1, verbose=0)
    assert sorted(history.history) == ['aux1_accuracy', 'aux1_loss', 'aux2_accuracy',
        'aux2_loss', 'loss', 'main_accuracy', 'main_loss'], history.history
    r = model.evaluate(dataset, verbose=0, return_dict=True)
    assert abs(r["loss"] - (r["main_loss"] + 0.3 * (r["aux1_loss"] + r["aux2_loss"]))) < 1e-5, r
    print("OK", strategy.num_replicas_in_sync)
    """
)


def test_mirrored_strategy_trains_every_head():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    result = subprocess.run([sys.executable, "-c", _MIRRORED], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK 2" in result.stdout
