"""The adaptive warm-up (Recipe.warmup_until_accuracy) and the demo run's use of it."""

import json

import keras
import numpy as np
import pytest

from kerasnets import training
from kerasnets.training import _run
from kerasnets.training import callbacks as kn_callbacks
from kerasnets.training.recipes import EpochSchedule


def _rate(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_adaptive_warmup_schedule_ends_at_the_step_it_is_told_and_serialises():
    schedule = EpochSchedule(0.1, steps_per_epoch=100, decay_epochs=(5,), warmup_epochs=3,
                             warmup_learning_rate=0.01, adaptive_warmup=True)
    assert schedule.warmup_ended_at is None
    assert [_rate(schedule, s) for s in (0, 120, 299)] == pytest.approx([0.01] * 3)
    assert _rate(schedule, 300) == pytest.approx(0.1), "warmup_epochs is the longest warm-up"
    schedule.end_warmup(120)
    assert _rate(schedule, 119) == pytest.approx(0.01)
    assert [_rate(schedule, s) for s in (120, 299, 499)] == pytest.approx([0.1] * 3)
    assert _rate(schedule, 500) == pytest.approx(0.01), "then the schedule's own decay"
    config = schedule.get_config()
    assert config["adaptive_warmup"] is True and config["warmup_end_step"] == 120
    restored = EpochSchedule.from_config(json.loads(json.dumps(config)))
    assert restored.warmup_ended_at == 120 and _rate(restored, 119) == pytest.approx(0.01)
    fixed = EpochSchedule(0.1, steps_per_epoch=100, warmup_epochs=3, warmup_learning_rate=0.01)
    assert fixed.warmup_end_step is None and fixed.get_config()["warmup_end_step"] is None
    with pytest.raises(ValueError, match="adaptive_warmup=True"):
        fixed.end_warmup(10)


def _learnable(n=256, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = np.eye(classes, dtype="float32")[y] * 3 + rng.normal(0, 0.3, (n, classes)).astype("float32")
    return x, y


def _model(schedule, classes=4):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((classes,)), keras.layers.Dense(classes, activation="softmax")])
    model.compile(keras.optimizers.SGD(schedule, momentum=0.9), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_warmup_until_accuracy_ends_the_warmup_during_fit_and_is_backed_up(tmp_path):
    x, y = _learnable()
    schedule = EpochSchedule(0.05, steps_per_epoch=16, warmup_epochs=20, warmup_learning_rate=0.005,
                             adaptive_warmup=True)
    model = _model(schedule)
    warmup = kn_callbacks.WarmupUntilAccuracy(0.9, window=8)
    backup = kn_callbacks.BackupAndRestore(str(tmp_path / "backup"), tracked=[warmup])
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False, callbacks=[warmup, backup])
    step = warmup.ended_at_step
    assert step is not None and 8 <= step < 48, "a 4-class easy task passes 90% within 3 epochs"
    assert schedule.warmup_ended_at == step
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.05)
    with open(tmp_path / "backup" / kn_callbacks.STATE_FILE) as f:
        assert json.load(f)["callbacks"] == [{"ended_at_step": step}]

    # A resumed run gets the end of its warm-up back (BackupAndRestore is last).
    fresh = EpochSchedule(0.05, steps_per_epoch=16, warmup_epochs=20, warmup_learning_rate=0.005,
                          adaptive_warmup=True)
    again = kn_callbacks.WarmupUntilAccuracy(0.9, window=8)
    resumed = _model(fresh)
    resumed.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False,
                callbacks=[again, kn_callbacks.BackupAndRestore(str(tmp_path / "backup"), tracked=[again])])
    assert again.ended_at_step == step and fresh.warmup_ended_at == step


def test_warmup_until_accuracy_needs_an_adaptive_schedule():
    model = _model(0.01)
    warmup = kn_callbacks.WarmupUntilAccuracy(0.2)
    warmup.set_model(model)
    with pytest.raises(ValueError, match="adaptive_warmup=True"):
        warmup.on_train_begin()


def test_recipe_field_validation_and_callbacks():
    recipe = training.get_recipe("resnet_cifar", warmup_epochs=91.0, warmup_learning_rate=0.01,
                                 warmup_until_accuracy=0.2)
    (callback,) = recipe.callbacks()
    assert isinstance(callback, kn_callbacks.WarmupUntilAccuracy) and callback.threshold == 0.2
    schedule = recipe.learning_rate_schedule(steps_per_epoch=10)
    assert schedule.adaptive_warmup and schedule.warmup_ended_at is None
    assert "until the training accuracy reaches 0.2" in recipe.describe_schedule()
    assert training.Recipe.from_dict(recipe.to_dict()) == recipe
    with pytest.raises(ValueError, match="unless warmup_epochs > 0"):
        training.get_recipe("resnet_cifar", warmup_until_accuracy=0.2)
    with pytest.raises(ValueError, match="Received: warmup_until_accuracy=1.5"):
        recipe.replace(warmup_until_accuracy=1.5)
    assert training.get_recipe("resnet_cifar").warmup_until_accuracy is None, "the paper's recipe"


def test_the_papers_warmup_on_the_demo_run_by_overrides():
    # The setting measured on the main job (benchmarks/README.md): overrides are at the
    # recipe's own epochs (182) and batch (128), so 91 epochs and 0.01 become 5 and 0.0025.
    overrides = dict(warmup="constant", warmup_epochs=91, warmup_learning_rate=0.01,
                     warmup_until_accuracy=0.2)
    recipe, epochs, batch = _run.resolve_recipe("resnet20", "shapes", overrides=overrides)
    assert (epochs, batch, recipe.learning_rate) == (10, 32, pytest.approx(0.025))
    assert recipe.warmup_epochs == pytest.approx(5) and recipe.warmup_learning_rate == pytest.approx(0.0025)
    assert recipe.warmup_until_accuracy == 0.2
    assert [type(c).__name__ for c in recipe.callbacks()] == ["WarmupUntilAccuracy"]
    assert recipe.warmup == "constant"


def test_linear_warmup_rises_step_by_step_to_the_schedules_rate():
    # Goyal et al.'s gradual warm-up: from 0.01 to 0.1 over 4 epochs of 100 steps, then the
    # step schedule (x0.1 at epoch 6). Hand-computed: 0.01 + 0.09 * step / 400.
    schedule = EpochSchedule(0.1, steps_per_epoch=100, decay_epochs=(6,), warmup_epochs=4,
                             warmup_learning_rate=0.01, linear_warmup=True)
    expected = {0: 0.01, 100: 0.0325, 200: 0.055, 399: 0.099775, 400: 0.1, 599: 0.1, 600: 0.01}
    assert {s: _rate(schedule, s) for s in expected} == pytest.approx(expected)
    restored = EpochSchedule.from_config(json.loads(json.dumps(schedule.get_config())))
    assert _rate(restored, 200) == pytest.approx(0.055)
    with pytest.raises(ValueError, match="linear_warmup=True, adaptive_warmup=True"):
        EpochSchedule(0.1, steps_per_epoch=10, warmup_epochs=1, warmup_learning_rate=0.01,
                      linear_warmup=True, adaptive_warmup=True)


def test_linear_warmup_recipe_field():
    recipe = training.get_recipe("resnet_cifar", warmup="linear", warmup_epochs=91.0,
                                 warmup_learning_rate=0.01)
    schedule = recipe.learning_rate_schedule(steps_per_epoch=10)
    assert schedule.linear_warmup and not schedule.adaptive_warmup
    assert "linear warm-up from 0.01 over the first 91 epochs" in recipe.describe_schedule()
    assert training.Recipe.from_dict(recipe.to_dict()) == recipe
    assert recipe.callbacks() == [] or all(
        not isinstance(c, kn_callbacks.WarmupUntilAccuracy) for c in recipe.callbacks())
    with pytest.raises(ValueError, match="Received: warmup='cosine'"):
        recipe.replace(warmup="cosine")
    with pytest.raises(ValueError, match="with warmup='linear'"):
        recipe.replace(warmup_until_accuracy=0.2)
    assert training.get_recipe("resnet_cifar").warmup == "constant", "the paper's recipe"


def test_the_demo_run_warms_up_linearly_over_three_epochs_and_the_paper_is_one_override_away():
    recipe, epochs, batch = _run.resolve_recipe("resnet20", "shapes")
    assert (epochs, batch) == (10, 32)
    assert recipe.warmup == "linear" and recipe.warmup_epochs == pytest.approx(3)
    assert recipe.warmup_learning_rate == pytest.approx(0.0025) and recipe.learning_rate == pytest.approx(0.025)
    assert recipe.decay_epochs == pytest.approx((5, 7.4725)), "two epochs at the full rate, then the drops"
    schedule = recipe.learning_rate_schedule(steps_per_epoch=313)
    # Hand-computed: 0.0025 + 0.0225 * step / 939 up to step 939 (epoch 3), 0.025 until
    # step 1565 (epoch 5), then x0.1, and x0.1 again after step 2338 (epoch 7.4725).
    expected = {0: 0.0025, 313: 0.01, 626: 0.0175, 939: 0.025, 1252: 0.025, 1564: 0.025, 1565: 0.0025,
                2338: 0.0025, 2400: 0.00025}
    for step, rate in expected.items():
        assert _rate(schedule, step) == pytest.approx(rate, rel=1e-4), step
    # Only the demo dataset: CIFAR-10 and folders get the paper's recipe.
    assert _run.resolve_recipe("resnet20", "cifar10")[0].warmup_epochs == 0
    # The caller's overrides win: the paper's recipe on shapes.
    paper = _run.resolve_recipe("resnet20", "shapes", overrides={"warmup_epochs": 0})[0]
    assert paper.warmup_epochs == 0 and paper.describe_schedule() == "lr 0.025, x0.1 at epochs 5, 7.47"
