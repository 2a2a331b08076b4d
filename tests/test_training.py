"""kerasnets.training in process: recipes, compile, weight decay, schedules, callbacks, plots.

The subprocess tests (CLI, resume after SIGKILL, MirroredStrategy) are in
test_train_cli.py and test_distributed.py.
"""

import csv
import math
import os

import keras
import numpy as np
import pytest

import kerasnets
import kerasnets.data
from kerasnets import training
from kerasnets.training import _compile
from kerasnets.training import callbacks as kn_callbacks
from kerasnets.training import strategy as kn_strategy
from kerasnets.training.plotting import curve_groups, plot_history

from _data_fixtures import shapes_data_dir  # noqa: F401  (fixture)


# ---------------------------------------------------------------------------
# Recipes: the papers' numbers, as data.
# ---------------------------------------------------------------------------


def test_every_registered_model_has_a_recipe():
    for name in kerasnets.list_models():
        assert training.recipe_for(name).name in training.RECIPES


@pytest.mark.parametrize(
    "model, expected",
    [
        ("alexnet", dict(name="alexnet", optimizer="sgd", momentum=0.9, learning_rate=0.01,
                         weight_decay=5e-4, schedule="plateau", decay_factor=0.1)),
        ("vgg16", dict(name="vgg", optimizer="sgd", momentum=0.9, learning_rate=0.01,
                       weight_decay=5e-4, schedule="plateau", decay_factor=0.1)),
        ("googlenet", dict(name="googlenet", optimizer="sgd", momentum=0.9, schedule="exponential",
                           decay_every=8, decay_factor=0.96, aux_loss_weight=0.3)),
        ("inception_v3", dict(name="inception_v3", optimizer="rmsprop", rho=0.9, epsilon=1.0,
                              learning_rate=0.045, schedule="exponential", decay_every=2,
                              decay_factor=0.94, gradient_clip_norm=2.0, label_smoothing=0.1)),
        ("inception_v2", dict(name="inception_v3")),
        ("resnet50", dict(name="resnet", optimizer="sgd", momentum=0.9, learning_rate=0.1,
                          weight_decay=1e-4, schedule="step", decay_factor=0.1, batch_size=256)),
        ("resnet56", dict(name="resnet_cifar", learning_rate=0.1, weight_decay=1e-4, batch_size=128,
                          decay_epochs=(91, 136), epochs=182, warmup_epochs=0.0)),
        ("resnet110", dict(name="resnet_cifar", warmup_epochs=1.0, warmup_learning_rate=0.01)),
    ],
)
def test_recipes_are_the_papers(model, expected):
    recipe = training.recipe_for(model)
    for field, value in expected.items():
        assert getattr(recipe, field) == value, field


def test_recipe_overrides_and_validation():
    recipe = training.get_recipe("resnet", learning_rate=0.2, decay_epochs=[10, 20])
    assert recipe.learning_rate == 0.2 and recipe.decay_epochs == (10, 20)
    with pytest.raises(ValueError, match="Did you mean: weight_decay"):
        training.get_recipe("resnet", weight_decy=0.0)
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        training.get_recipe("resnet", learning_rate=-1.0)
    with pytest.raises(ValueError, match="Unknown recipe 'resnt'. Did you mean: resnet"):
        training.get_recipe("resnt")
    with pytest.raises(ValueError, match="optimizer must be 'sgd' or 'rmsprop'"):
        training.get_recipe("vgg", optimizer="adam")
    # Round trip through run.json.
    assert training.Recipe.from_dict(recipe.to_dict()) == recipe


def test_linear_batch_scaling_and_epoch_rescaling():
    recipe = training.recipe_for("resnet110")  # warm-up 0.01 for 1 epoch, paper batch 128
    at_512 = recipe.with_batch_size(512)
    assert at_512.learning_rate == pytest.approx(0.4)
    assert at_512.warmup_learning_rate == pytest.approx(0.04)
    assert at_512.batch_size == 512
    assert recipe.replace(lr_scaling="none").with_batch_size(512).learning_rate == 0.1
    short = recipe.with_epochs(18)  # a tenth of 182 epochs
    assert short.epochs == 18
    assert short.decay_epochs == pytest.approx((91 * 18 / 182, 136 * 18 / 182), abs=1e-3)
    assert short.warmup_epochs == pytest.approx(18 / 182, abs=1e-3)
    assert recipe.replace(rescale_schedule=False).with_epochs(150).decay_epochs == (91, 136)
    # Without rescaling, 18 epochs would end before the first decay: refused, not silently kept.
    with pytest.raises(ValueError, match="decay_epochs must be before the recipe's last epoch"):
        recipe.replace(rescale_schedule=False).with_epochs(18)


def test_epoch_schedule_values_and_serialization():
    step = training.EpochSchedule(0.1, steps_per_epoch=10, decay_epochs=(2, 3),
                                  warmup_epochs=0.5, warmup_learning_rate=0.01)
    expected = {0: 0.01, 4: 0.01, 5: 0.1, 19: 0.1, 20: 0.01, 29: 0.01, 30: 0.001, 100: 0.001}
    for iteration, lr in expected.items():
        assert float(step(iteration)) == pytest.approx(lr, rel=1e-5), iteration
    exponential = training.EpochSchedule(0.045, steps_per_epoch=10, decay_every=2, decay_factor=0.94)
    assert float(exponential(19)) == pytest.approx(0.045)
    assert float(exponential(20)) == pytest.approx(0.045 * 0.94)
    assert float(exponential(65)) == pytest.approx(0.045 * 0.94 ** 3)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(step))
    assert float(restored(25)) == pytest.approx(0.01)
    # A schedule at fixed epochs needs the epoch length.
    with pytest.raises(ValueError, match="needs steps_per_epoch"):
        training.get_recipe("resnet").learning_rate_schedule()


# ---------------------------------------------------------------------------
# compile: optimizer, weight decay, loss, metrics.
# ---------------------------------------------------------------------------


def _dense_model(classes=3, features=4):
    inputs = keras.Input((features,))
    hidden = keras.layers.Dense(5, name="hidden")(inputs)
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(hidden)
    return keras.Model(inputs, outputs, name="tiny")


def test_compile_model_builds_the_optimizer_and_trains_as_keras_would(monkeypatch):
    """The optimizer's slots exist after `compile_model` (so the first step is traced once,
    not twice), and training is what Keras's own deferred build gives, step for step."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.integers(0, 3, 16).astype("int32")
    models = []
    for prebuilt in (True, False):
        keras.utils.set_random_seed(0)
        model = _dense_model()
        with monkeypatch.context() as patch:
            if not prebuilt:  # Keras's path: the optimizer is built in the first traced step
                patch.setattr(_compile, "_build_optimizer", lambda model: None)
            training.compile_model(model, "resnet", steps_per_epoch=2, weight_decay=0.0)
        if prebuilt:
            assert model.optimizer.built is (keras.backend.backend() == "tensorflow")
            slots = {v.path for v in model.optimizer.variables}
            assert any("hidden_kernel" in p or "hidden/kernel" in p for p in slots), sorted(slots)
        else:
            assert not model.optimizer.built
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        models.append(model)
    assert int(models[0].optimizer.iterations) == int(models[1].optimizer.iterations) == 4
    for got, want in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_weight_decay_is_caffes_l2_before_momentum():
    """Two SGD steps equal Caffe's update v = m v - lr (g + wd w); w += v on kernels only."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype("float32")
    y = rng.integers(0, 3, 8).astype("int32")
    lr, momentum, wd = 0.1, 0.9, 0.05
    model = _dense_model()
    reference = _dense_model()
    reference.set_weights(model.get_weights())
    training.compile_model(model, "vgg", learning_rate=lr, weight_decay=wd)
    assert model.optimizer.momentum == momentum
    decayed = {v.path for v in model.trainable_variables if v.regularizer is not None}
    assert decayed == {"hidden/kernel", "predictions/kernel"}  # not the biases

    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    velocity = [np.zeros_like(w) for w in reference.get_weights()]
    import tensorflow as tf

    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, reference(x))
        grads = tape.gradient(loss, reference.trainable_variables)
        for i, (variable, grad) in enumerate(zip(reference.trainable_variables, grads)):
            w = variable.numpy()
            g = grad.numpy() + (wd * w if variable.name == "kernel" else 0.0)
            velocity[i] = momentum * velocity[i] - lr * g
            variable.assign(w + velocity[i])
        model.train_on_batch(x, y)
    for got, want in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_weight_decay_keeps_a_users_regularizer():
    model = _dense_model()
    users = keras.regularizers.L1(0.1)
    model.get_layer("hidden").kernel.regularizer = users
    assert training.apply_weight_decay(model, 1e-4) == 1
    assert model.get_layer("hidden").kernel.regularizer is users
    training.apply_weight_decay(model, 0.0)
    assert model.get_layer("predictions").kernel.regularizer is None


def test_label_smoothing_loss():
    probs = np.array([[0.1, 0.7, 0.2]], "float32")
    s = 0.1
    target = np.full(3, s / 3) + np.eye(3)[1] * (1 - s)
    expected = -np.sum(target * np.log(probs[0]))
    loss = training.SparseCrossentropy(label_smoothing=s)
    assert float(loss(np.array([1]), probs)) == pytest.approx(expected, rel=1e-5)
    assert float(loss(np.array([[1]]), probs)) == pytest.approx(expected, rel=1e-5)
    plain = training.SparseCrossentropy()
    assert float(plain(np.array([1]), probs)) == pytest.approx(-math.log(0.7), rel=1e-5)


def test_compile_is_an_alias_of_compile_model():
    # The former name stays the same object, public; compile_model does not shadow the builtin.
    assert training.compile is training.compile_model
    assert {"compile", "compile_model"} <= set(training.__all__)


def test_compile_optimizer_and_clipping_from_the_recipe():
    model = _dense_model()
    recipe = training.compile_model(model, "inception_v3", steps_per_epoch=10, global_batch_size=64)
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.RMSprop)
    assert optimizer.rho == 0.9 and optimizer.epsilon == 1.0 and optimizer.global_clipnorm == 2.0
    assert recipe.learning_rate == pytest.approx(0.045 * 2)  # linear rule: 64 / 32
    assert isinstance(model.loss, training.SparseCrossentropy) and model.loss.label_smoothing == 0.1
    with pytest.raises(ValueError, match="needs steps_per_epoch"):
        training.compile_model(_dense_model(), "resnet")
    with pytest.raises(ValueError, match="Cannot tell which recipe"):
        training.compile_model(_dense_model())


# A recipe compiles and trains each family on shapes at a small size; the loss goes down.
# The plain GoogLeNet trains at the paper's rate because it starts from Caffe's "xavier"
# initialisation (with he_normal its first steps went to NaN; tests/test_googlenet.py).
FAMILIES = [
    ("alexnet", dict(width_multiplier=0.125)),
    ("vgg11", dict(width_multiplier=0.125)),
    ("googlenet", dict(width_multiplier=0.25)),
    ("googlenet_bn", dict(width_multiplier=0.25)),
    ("inception_v3", dict(width_multiplier=0.125)),
    ("resnet18", dict(width_multiplier=0.25)),
    ("resnet20", dict(width_multiplier=0.5)),
]


@pytest.fixture(scope="module")
def shapes_batches(shapes_data_dir):  # noqa: F811
    """A fixed batch of 32 shapes images per needed size, preprocessed for each family."""
    cache = {}

    def get(model):
        size = max(kerasnets.get_model_info(model).min_size, 32)
        family = kerasnets.get_model_info(model).family
        if (size, family) not in cache:
            split = kerasnets.data.load("shapes", "train[:32]", image_size=size, batch_size=32,
                                        training=False, model=model, data_dir=shapes_data_dir)
            cache[size, family] = next(iter(split.dataset))
        return size, cache[size, family]

    return get


@pytest.mark.parametrize("model_name, kwargs", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_each_family_trains_with_its_recipe(model_name, kwargs, shapes_batches):
    size, (x, y) = shapes_batches(model_name)
    model = kerasnets.get_model(model_name, classes=10, input_shape=(size, size, 3), **kwargs)
    recipe = training.compile_model(model, steps_per_epoch=100, global_batch_size=32)
    assert recipe.name == training.recipe_for(model_name).name
    model.run_eagerly = True  # for 12 steps, tracing the big graphs costs more than it saves
    # 12 steps: InceptionV3's RMSprop at 0.045 (with dropout and its auxiliary head) is noisy
    # step to step; on one thread its loss was above its start again at steps 7-8 of 8, and
    # steps 10-12 were well below it.
    losses = [float(model.train_on_batch(x, y, return_dict=True)["loss"]) for _ in range(12)]
    assert all(math.isfinite(v) for v in losses), losses
    assert np.mean(losses[-3:]) < np.mean(losses[:3]), losses


def test_googlenet_total_loss_is_main_plus_weighted_aux(shapes_batches):
    size, (x, y) = shapes_batches("googlenet")
    model = kerasnets.GoogLeNet(classes=10, input_shape=(size, size, 3), width_multiplier=0.25)
    training.compile_model(model, steps_per_epoch=10)  # the googlenet recipe: aux 0.3, weight decay 2e-4
    penalty = float(sum(keras.ops.convert_to_numpy(l) for l in model.losses))
    assert penalty > 0
    logs = model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False).history
    total = logs["loss"][0]
    main, aux1, aux2 = logs["main_loss"][0], logs["aux1_loss"][0], logs["aux2_loss"][0]
    assert total == pytest.approx(main + 0.3 * aux1 + 0.3 * aux2 + penalty, rel=1e-5)
    assert {"main_accuracy", "main_top5_accuracy", "aux1_accuracy", "aux2_accuracy"} <= set(logs)
    # Without weight decay the total is exactly the weighted sum of the heads.
    training.compile_model(model, steps_per_epoch=10, weight_decay=0.0, aux_loss_weight=0.5)
    logs = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(
        logs["main_loss"] + 0.5 * logs["aux1_loss"] + 0.5 * logs["aux2_loss"], rel=1e-5
    )


# ---------------------------------------------------------------------------
# Hardware choices.
# ---------------------------------------------------------------------------


def test_hardware_auto_on_this_cpu():
    hw = training.setup_hardware(set_policy=False)
    assert hw.strategy_name == "default" and hw.replicas == 1 and hw.device_type == "CPU"
    expected = "mixed_bfloat16" if kn_strategy.cpu_supports_bfloat16() else "float32"
    assert hw.precision == expected
    assert hw.jit_compile is False  # XLA is slower on CPU (benchmarks/precision.py)
    assert training.choose_jit_compile("on") is True
    assert training.choose_precision("float32") == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"  # set_policy=False
    for call, arg in ((training.choose_strategy, "gpu"), (training.choose_precision, "fp16"),
                      (training.choose_jit_compile, "yes")):
        with pytest.raises(ValueError, match="must be one of"):
            call(arg)
    with pytest.raises(ValueError, match="no TPU was found"):
        training.choose_strategy("tpu")


def test_mixed_bfloat16_keeps_float32_outputs_and_weights():
    # (The training step under mixed_bfloat16 runs in the CLI tests, where --precision
    # auto picks it on CPUs with native bfloat16.)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = kerasnets.ResNet20(classes=10, input_shape=(16, 16, 3), width_multiplier=0.25)
    keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("conv1_conv").compute_dtype == "bfloat16"
    assert {v.dtype for v in model.trainable_variables} == {"float32"}
    x = np.random.default_rng(0).uniform(size=(4, 16, 16, 3)).astype("float32")
    assert model(x).dtype == "float32"


# ---------------------------------------------------------------------------
# Callbacks: resume in process, atomic files, CSV rows, best checkpoint.
# ---------------------------------------------------------------------------


class _Interrupt(keras.callbacks.Callback):
    """Raises inside epoch ``epoch`` (0-based) after ``batch`` batches: a crash mid-epoch."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            raise RuntimeError("interrupted")


def _resumable_fit(folder, epochs, extra=()):
    keras.utils.set_random_seed(1)
    model = _dense_model()
    # The plateau recipe (a float rate that ReduceLROnPlateau lowers): 0.1 at batch 8.
    training.compile_model(model, "vgg", learning_rate=3.2, epochs=epochs, global_batch_size=8)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = rng.integers(0, 3, 32).astype("int32")
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5)
    checkpoint = kn_callbacks.BestCheckpoint(os.path.join(folder, "best.keras"), monitor="loss")
    callbacks = [kn_callbacks.LearningRateLogger(), plateau, kn_callbacks.CSVLog(os.path.join(folder, "log.csv")),
                 checkpoint, *extra, kn_callbacks.BackupAndRestore(os.path.join(folder, "backup"), tracked=[plateau])]
    history = model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)
    return model, history, checkpoint


def test_resume_after_a_crash_gives_the_uninterrupted_result(tmp_path):
    straight, _, _ = _resumable_fit(str(tmp_path / "straight"), epochs=4)
    folder = str(tmp_path / "crashed")
    with pytest.raises(RuntimeError, match="interrupted"):
        _resumable_fit(folder, epochs=4, extra=[_Interrupt(epoch=2, batch=1)])
    rows_before = kn_callbacks.CSVLog.read(os.path.join(folder, "log.csv"))
    assert [r["epoch"] for r in rows_before] == [1, 2]
    # A kill during a write leaves a temporary file and an uncommitted weights file.
    open(os.path.join(folder, "backup", ".tmp-999-epoch-0003.weights.h5"), "w").write("partial")
    open(os.path.join(folder, "backup", "epoch-0003.weights.h5"), "w").write("not committed")

    resumed, history, checkpoint = _resumable_fit(folder, epochs=4)
    assert len(history.history["loss"]) == 2  # epochs 3 and 4 only
    for got, want in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert int(resumed.optimizer.iterations) == 16
    rows = kn_callbacks.CSVLog.read(os.path.join(folder, "log.csv"))
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[:2] == rows_before
    assert sorted(os.listdir(os.path.join(folder, "backup"))) == ["epoch-0004.weights.h5", "state.json"]
    assert checkpoint.best == pytest.approx(min(r["loss"] for r in rows))
    assert resumed._initial_epoch is None  # a later fit() starts at epoch 0 again


def test_csv_log_drops_rows_of_an_epoch_that_did_not_commit(tmp_path):
    folder = str(tmp_path)
    log = kn_callbacks.CSVLog(os.path.join(folder, "log.csv"))
    model = _dense_model()
    log.set_model(model)
    log.on_train_begin()
    for epoch in range(3):
        log.on_epoch_begin(epoch)
        log.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "val_loss": 2.0})
    # A new process resumes at epoch index 2 (the state committed 2 epochs).
    log = kn_callbacks.CSVLog(os.path.join(folder, "log.csv"))
    log.on_train_begin()
    log.on_epoch_begin(2)
    log.on_epoch_end(2, {"loss": 0.25, "val_loss": 2.0, "accuracy": 0.5})
    with open(os.path.join(folder, "log.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert rows[2]["loss"] == "0.25" and rows[0]["accuracy"] == ""


def test_plot_history_groups_heads(tmp_path):
    history = {
        "loss": [2.0, 1.5], "main_loss": [1.5, 1.0], "aux1_loss": [1.6, 1.2],
        "main_accuracy": [0.3, 0.5], "aux1_accuracy": [0.2, 0.4], "main_top5_accuracy": [0.7, 0.9],
        "val_loss": [2.1, 1.7], "val_main_accuracy": [0.25, 0.45], "learning_rate": [0.1, 0.1],
    }
    groups = curve_groups(history)
    assert groups["loss"] == ["loss", "main_loss", "aux1_loss"]
    assert groups["accuracy"] == ["main_accuracy", "aux1_accuracy"]
    assert groups["top-5 accuracy"] == ["main_top5_accuracy"]
    path = plot_history(history, str(tmp_path / "curves.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"history must be a history with a loss or an accuracy to plot. Received: history with the keys"):
        plot_history({"learning_rate": [0.1]}, str(tmp_path / "x.png"))


def test_auto_precision_follows_the_cpu_probe(monkeypatch):
    """float32 on a CPU without native bfloat16, mixed_bfloat16 with it, and the reason is said."""
    strategy = training.choose_strategy("default")
    monkeypatch.setattr(kn_strategy, "cpu_supports_bfloat16", lambda: False)
    hw = training.setup_hardware(strategy, set_policy=False)
    assert hw.precision == "float32"
    assert "neither AVX-512 BF16 nor AMX" in hw.describe()
    monkeypatch.setattr(kn_strategy, "cpu_supports_bfloat16", lambda: True)
    hw = training.setup_hardware(strategy, set_policy=False)
    assert hw.precision == "mixed_bfloat16" and "natively" in hw.precision_reason
    assert training.setup_hardware(strategy, "float32", set_policy=False).precision_reason == "asked for"


def test_cpu_probe_reads_the_cpu_flags(monkeypatch, tmp_path):
    """The probe answers from /proc/cpuinfo's flags, never from an assumption about the machine."""
    import builtins

    real_open = builtins.open
    for flags, expected in (("fpu sse avx2 fma", False), ("avx512f avx512_bf16", True), ("amx_bf16 amx_tile", True)):
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(builtins, "open", lambda path, *a, **k: real_open(cpuinfo if path == "/proc/cpuinfo" else path, *a, **k))
        kn_strategy.cpu_supports_bfloat16.cache_clear()
        try:
            assert kn_strategy.cpu_supports_bfloat16() is expected, flags
        finally:
            monkeypatch.setattr(builtins, "open", real_open)
            kn_strategy.cpu_supports_bfloat16.cache_clear()
