"""kerasnets.tuning and `kerasnets tune`: width searches with Keras Tuner.

The searches are tiny (ResNet-20 at width 1/4 or 1/2 on 16x16 ``shapes``, two
batches per epoch, one epoch, two trials); one runs through the library (random
search), one through the command line (Hyperband), one under MirroredStrategy
on two logical CPU devices in a subprocess (Bayesian optimisation): the three
tuners of the issue.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from _data_fixtures import shapes_data_dir  # noqa: F401  (a session fixture)

import kerasnets.tuning as kt
from kerasnets.cli import main
from kerasnets.profiling import profile

SIZE = 16
STAGES = ("conv2_width", "conv3_width", "conv4_width")


def _shapes(data_dir, split, batch_size, steps):
    from kerasnets import data

    loaded = data.load("shapes", split, image_size=SIZE, batch_size=batch_size, data_dir=data_dir, seed=0)
    return loaded.dataset.take(steps), loaded.num_classes


def _checkpoint(tuner, trial_id):
    return os.path.join(tuner.project_dir, f"trial_{trial_id}", "checkpoint.weights.h5")


# ---------------------------------------------------------------------------
# One random search through the library, shared by the tests below.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def search(shapes_data_dir, tmp_path_factory):  # noqa: F811
    keras.utils.set_random_seed(0)
    train, classes = _shapes(shapes_data_dir, "train", 16, 2)
    val, _ = _shapes(shapes_data_dir, "validation", 32, 1)
    hypermodel = kt.WidthHyperModel(
        "resnet20", input_shape=(SIZE, SIZE, 3), classes=classes, batch_size=16,
        steps_per_epoch=2, epochs=1, overrides={"width_multiplier": [0.25, 0.5]},
    )
    ended = []
    tuner = kt.make_tuner(
        "random", hypermodel, max_trials=2, seed=3, overwrite=True,
        directory=str(tmp_path_factory.mktemp("search")), trial_callback=ended.append,
    )
    tuner.search(train, validation_data=val, epochs=1, verbose=0)
    output = str(tmp_path_factory.mktemp("report"))
    report = kt.write_report(tuner, output)
    return tuner, report, output, ended


def test_random_search_completes_every_trial(search):
    tuner, _, _, ended = search
    trials = tuner.oracle.trials
    assert len(trials) == 2
    assert {t.status for t in trials.values()} == {"COMPLETED"}
    assert [t.trial_id for t in ended] == sorted(trials)  # the callback saw each trial end
    assert all(np.isfinite(t.score) for t in trials.values())


def test_trial_models_have_the_searched_widths(search):
    tuner, _, _, _ = search
    for trial in tuner.oracle.trials.values():
        values = trial.hyperparameters.values
        args = tuner.hypermodel.builder_args(trial.hyperparameters)
        assert args["stage_widths"] == [values[s] for s in STAGES]
        assert args["width_multiplier"] == values["width_multiplier"]
        # The builder arguments rebuild the trained model: its weights load.
        model = kt.build_from_args(args)
        model.load_weights(_checkpoint(tuner, trial.trial_id))
        expected = kt.effective_widths("resnet20", values)  # its numbers: test_model_stats_by_hand
        assert expected == [round(values[s] * values["width_multiplier"]) for s in STAGES]
        assert model.get_layer("conv1_conv").filters == expected[0]
        for stage, width in zip((2, 3, 4), expected):
            for block in (1, 3):
                assert model.get_layer(f"conv{stage}_block{block}_2_conv").filters == width


def test_model_stats_by_hand():
    """ResNet-20 at widths 16/32/64 times 1.5 on 32x32 images, 10 classes, counted by hand."""
    hypermodel = kt.WidthHyperModel("resnet20", input_shape=(32, 32, 3), classes=10)
    values = {"conv2_width": 16, "conv3_width": 32, "conv4_width": 64, "width_multiplier": 1.5}
    widths, params, macs = hypermodel.model_stats(values)
    assert widths == [24, 48, 96]
    # Bias-free 3x3 convs with BatchNorm (gamma, beta; the moving statistics not counted),
    # zero-padding shortcuts (no parameters), a 96x10 classifier with biases:
    # conv1 27*24 + 48; conv2_x 6 * (9*24*24 + 48); conv3_x 9*24*48 + 96 + 5 * (9*48*48 + 96);
    # conv4_x 9*48*96 + 192 + 5 * (9*96*96 + 192); fc 960 + 10.
    assert params == 605_026
    # Multiply-adds per output position: 32x32 for conv1 and conv2_x, 16x16, 8x8, then the fc:
    # 1024*27*24 + 1024*6*9*24*24 + 256*(9*24*48 + 5*9*48*48) + 64*(9*48*96 + 5*9*96*96) + 960.
    assert macs == 90_907_584


def test_report_table_plot_and_best_model(search):
    tuner, report, output, _ = search
    results = report["results"]
    assert sorted(os.listdir(output)) == ["best_args.json", "best_model.keras", "pareto.png", "results.csv"]
    with open(os.path.join(output, "pareto.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(output, "results.csv"), encoding="utf-8") as f:
        rows = f.read().splitlines()
    assert rows[0].startswith("trial,status,epochs,widths,params,macs,val_accuracy,pareto,width_multiplier,conv2_width")
    assert len(rows) == 3
    for r in results:
        p = profile(kt.build_from_args(r.builder_args))
        assert (r.params, r.macs) == (p.params, p.macs)
        assert r.objective == tuner.oracle.trials[r.trial_id].score
    # The Pareto front: the cheapest trial is on it, and no trial on it is beaten.
    assert any(r.pareto for r in results)
    assert min(results, key=lambda r: r.macs).pareto
    table = kt.format_table(results, "val_accuracy")
    assert "MACs" in table and results[0].trial_id in table

    best_trial = tuner.oracle.get_best_trials(1)[0]
    with open(os.path.join(output, "best_args.json"), encoding="utf-8") as f:
        best = json.load(f)
    assert best["trial_id"] == best_trial.trial_id == report["best"].trial_id
    assert best["objective"] == {"name": "val_accuracy", "value": best_trial.score, "direction": "max"}
    saved = keras.saving.load_model(os.path.join(output, "best_model.keras"))
    rebuilt = kt.build_from_args(best["builder_args"])
    assert rebuilt.count_params() == saved.count_params()
    assert best["params"] == profile(rebuilt).params
    assert best["widths"] == [saved.get_layer(f"conv{s}_block1_1_conv").filters for s in (2, 3, 4)]
    # The saved model is the trained one: it predicts as the best checkpoint does.
    rebuilt.load_weights(_checkpoint(tuner, best_trial.trial_id))
    x = np.random.default_rng(0).random((2, SIZE, SIZE, 3), dtype=np.float32)
    np.testing.assert_allclose(saved.predict(x, verbose=0), rebuilt.predict(x, verbose=0), atol=1e-6)


# ---------------------------------------------------------------------------
# Failed trials are surfaced.
# ---------------------------------------------------------------------------


def _grey_images():
    """One-channel images for an RGB model: every trial fails in fit."""
    rng = np.random.default_rng(0)
    x = rng.random((8, SIZE, SIZE, 1), dtype=np.float32)
    return tf.data.Dataset.from_tensor_slices((x, rng.integers(0, 3, 8))).batch(8)


def test_failed_trials_raise_with_each_error(tmp_path, capsys):
    hypermodel = kt.WidthHyperModel(
        "resnet20", input_shape=(SIZE, SIZE, 3), classes=3, per_block=False,
        overrides={"width_multiplier": [0.25, 0.5, 0.75]}, steps_per_epoch=1,
    )
    tuner = kt.make_tuner(
        "random", hypermodel, max_trials=3, directory=str(tmp_path), seed=0,
        max_consecutive_failed_trials=2,
    )
    data = _grey_images()
    with pytest.raises(kt.TrialsFailedError) as info:
        tuner.search(data, validation_data=data, epochs=1, verbose=0)
    error = info.value
    # keras-tuner stops after two consecutive failures; both are reported, with their errors.
    assert [f.trial_id for f in error.failures] == sorted(tuner.oracle.trials)
    assert len(error.failures) == 2 and error.stopped
    assert {t.status for t in tuner.oracle.trials.values()} == {"FAILED"}
    for failure in error.failures:
        assert "width_multiplier" in failure.hyperparameters
        assert "Traceback" in failure.message and failure.error in failure.message
        assert failure.error in str(error)
    assert "2 of 2 trials failed" in str(error)
    err = capsys.readouterr().err
    assert all(f"Trial {f.trial_id} FAILED: {f.error}" in err for f in error.failures)
    assert kt.failed_trials(tuner) == error.failures
    with pytest.raises(kt.TrialsFailedError):
        kt.raise_for_failed_trials(tuner)


def test_failed_trials_warn_when_asked(tmp_path):
    hypermodel = kt.WidthHyperModel(
        "resnet20", input_shape=(SIZE, SIZE, 3), classes=3, per_block=False,
        overrides={"width_multiplier": 0.25}, steps_per_epoch=1,
    )
    tuner = kt.make_tuner("random", hypermodel, max_trials=1, directory=str(tmp_path), on_failure="warn")
    data = _grey_images()
    with pytest.warns(RuntimeWarning, match="1 of 1 trials failed"):
        tuner.search(data, validation_data=data, epochs=1, verbose=0)


# ---------------------------------------------------------------------------
# The search space: per-family tables, overrides, validation (nothing trains).
# ---------------------------------------------------------------------------


def test_search_space_per_family():
    names = lambda *a, **k: [hp.name for hp in kt.search_space(*a, **k)]  # noqa: E731
    assert names("resnet20") == ["width_multiplier", *STAGES]
    assert names("resnet50", depth=True, learning_rate=0.1) == [
        "width_multiplier", "depth", "conv2_width", "conv3_width", "conv4_width", "conv5_width",
        "learning_rate",
    ]
    assert names("resnet18", per_block=False) == ["width_multiplier"]
    assert names("alexnet") == ["width_multiplier"]
    assert names("googlenet")[1:4] == ["inception_3a_scale", "inception_3b_scale", "inception_4a_scale"]
    assert len(names("googlenet")) == 1 + 9
    assert names("inception_v3")[1] == "mixed5b_scale"

    space = {hp.name: hp for hp in kt.search_space("resnet50", depth=True)}
    assert space["depth"].values == (50, 101, 152)
    assert (space["conv3_width"].min_value, space["conv3_width"].max_value, space["conv3_width"].step) == (32, 128, 32)
    # CIFAR ResNets' zero-padding shortcuts need non-decreasing widths: the ranges chain.
    cifar = {hp.name: hp for hp in kt.search_space("resnet20")}
    assert [(cifar[s].min_value, cifar[s].max_value) for s in STAGES] == [(4, 16), (16, 32), (32, 64)]
    assert kt.depth_choices("resnet20") == {20: "resnet20", 32: "resnet32", 44: "resnet44", 56: "resnet56", 110: "resnet110"}


def test_builder_arguments_from_values():
    name, kwargs = kt.builder_kwargs(
        "resnet18", {"width_multiplier": 0.5, "depth": 34, "conv2_width": 32, "conv3_width": 64,
                     "conv4_width": 128, "conv5_width": 256},
    )
    assert name == "resnet34"
    assert kwargs == {"width_multiplier": 0.5, "stage_widths": [32, 64, 128, 256]}
    name, kwargs = kt.builder_kwargs("googlenet", {"width_multiplier": 1.0, "inception_4a_scale": 0.5})
    assert kwargs["stage_widths"] == {"4a": {"b1": 96, "b3_reduce": 48, "b3": 104, "b5_reduce": 8, "b5": 24, "pool_proj": 32}}


def test_vgg_and_googlenet_build_the_searched_widths(no_random_init):
    """The other families' builders take what their search spaces produce (built, not trained)."""
    vgg = kt.WidthHyperModel("vgg11_bn", input_shape=(32, 32, 3), classes=5, depth=True)
    values = {"width_multiplier": 0.25, "depth": 13, "block1_width": 16, "block2_width": 64,
              "block3_width": 64, "block4_width": 128, "block5_width": 256}
    args = vgg.builder_args(values)
    assert args["name"] == "vgg13_bn" and args["stage_widths"] == [16, 64, 64, 128, 256]
    model = kt.build_from_args(args)
    assert [model.get_layer(f"block{b}_conv2").filters for b in range(1, 6)] == [4, 16, 16, 32, 64]
    assert kt.effective_widths("vgg11_bn", values) == [4, 16, 16, 32, 64]

    googlenet = kt.WidthHyperModel("googlenet", input_shape=(79, 79, 3), classes=5)
    values = {hp.name: 1.0 for hp in googlenet.space}
    values.update(width_multiplier=0.5, inception_4a_scale=0.5)
    model = kt.build_from_args(googlenet.builder_args(values))
    assert model.get_layer("inception_4a_b1_conv").filters == 48  # 192 * 0.5 * 0.5
    assert model.get_layer("inception_4b_b1_conv").filters == 80  # 160 * 0.5
    widths = kt.effective_widths("googlenet", values, model=model)
    assert widths[2] == 48 + 52 + 12 + 16  # 4a's branches 192/208/48/64, times 0.25
    assert widths[:2] == [128, 240]  # 3a, 3b at half width
    # The auxiliary heads of GoogLeNet: "val_accuracy" means the main head's.
    from kerasnets.tuning._tuners import resolve_objective

    assert resolve_objective(googlenet, "val_accuracy").name == "val_main_accuracy"
    assert resolve_objective(googlenet, "val_loss") == "val_loss"


def test_overrides_and_hyperparameter_names():
    space = {hp.name: hp for hp in kt.search_space("resnet20", overrides={
        "width_multiplier": [0.5, 1.0], "conv2_width": 8, "conv4_width": {"min_value": 32, "max_value": 48, "step": 16},
    })}
    assert space["width_multiplier"].values == (0.5, 1.0)
    assert space["conv2_width"].describe() == "fixed at 8"
    assert space["conv4_width"].describe() == "32..48 step 16"
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    for entry in space.values():
        entry.declare(hp)
    assert hp.values == {"width_multiplier": 1.0, "conv2_width": 8, "conv3_width": 32, "conv4_width": 32}

    # keras-tuner's own way: a name predefined in the tuner's hyperparameters wins.
    hypermodel = kt.WidthHyperModel("resnet20", input_shape=(32, 32, 3), classes=10)
    predefined = keras_tuner.HyperParameters()
    predefined.Fixed("conv3_width", 24)
    assert hypermodel.builder_args(predefined)["stage_widths"] == [16, 24, 64]
    assert "conv3_width" in hypermodel.describe() and "16..32 step 8" in hypermodel.describe()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(overrides={"conv9_width": 8}), "unknown hyperparameters"),
        (dict(overrides={"depth": [20, 32]}), "needs depth=True"),
        (dict(overrides={"conv2_width": 0}), "conv2_width must be a positive integer. Received: conv2_width=0"),
        (dict(overrides={"width_multiplier": [0.5, -1]}), "width_multiplier must be a positive number. Received: width_multiplier=-1"),
        (dict(depth=True, overrides={"depth": [20, 50]}), "depths of the same family"),
        (dict(overrides={"conv3_width": [8, 16]}), "must not decrease"),
        (dict(overrides={"conv2_width": {"min_value": 8}}), "min_value and max_value"),
        (dict(input_shape=(32, 32)), "input_shape must be 3 integers"),
        (dict(model_kwargs={"stage_widths": [8, 8, 8]}), r"model_kwargs must be free of \[.*stage_widths.*\] \(the hypermodel sets them"),
        (dict(classes=0), "classes must be a positive integer"),
    ],
)
def test_bad_arguments_raise_before_any_work(kwargs, match):
    args = dict(input_shape=(32, 32, 3), classes=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        kt.WidthHyperModel("resnet20", **args)


def test_resnet_depth_has_no_alternative_raises():
    with pytest.raises(ValueError, match="no other depths"):
        kt.search_space("alexnet", depth=True)
    with pytest.raises(ValueError, match="Unknown model"):
        kt.search_space("resnet21")


def test_pareto_front():
    def result(i, macs, objective):
        return kt.TrialResult(str(i), "COMPLETED", {}, {}, [], 0, macs, objective)

    results = [result(0, 100, 0.5), result(1, 50, 0.5), result(2, 200, 0.9), result(3, 150, 0.6),
               result(4, 300, 0.8), result(5, 10, None)]
    assert kt.pareto_front(results, "max") == [1, 3, 2]
    assert kt.pareto_front(results, "min") == [1]


# ---------------------------------------------------------------------------
# The command line, as a user runs it.
# ---------------------------------------------------------------------------


def test_cli_tune(shapes_data_dir, tmp_path, capsys):  # noqa: F811
    output = str(tmp_path / "tune")
    argv = [
        "tune", "resnet20", "--dataset", "shapes", "--data-dir", shapes_data_dir,
        "--max-trials", "2", "--tuner", "hyperband", "--epochs", "1", "--batch-size", "16",
        "--image-size", str(SIZE), "--steps-per-epoch", "2", "--validation-steps", "1",
        "--hp", "width_multiplier=0.25", "--hp", "conv4_width=32..64:32", "--output", output,
        "--precision", "float32", "--seed", "1", "--verbose", "0",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("[tune] trial ") == 2 and "COMPLETED" in out
    assert "conv4_width       32..64 step 32" in out  # the space is printed first
    assert "params" in out and "MACs" in out and "val_accuracy" in out  # the results table
    assert {"results.csv", "pareto.png", "best_model.keras", "best_args.json", "tuner", "search.json"} <= set(os.listdir(output))
    with open(os.path.join(output, "best_args.json"), encoding="utf-8") as f:
        best = json.load(f)
    args = best["builder_args"]
    assert args["name"] == "resnet20" and args["input_shape"] == [SIZE, SIZE, 3]
    assert args["width_multiplier"] == 0.25 and args["stage_widths"][2] in (32, 64)
    saved = keras.saving.load_model(os.path.join(output, "best_model.keras"))
    assert kt.build_from_args(args).count_params() == saved.count_params()
    with open(os.path.join(output, "results.csv"), encoding="utf-8") as f:
        assert f.readline().startswith("trial,status,epochs,")
    from kerasnets.files import Manifest

    manifest = Manifest.read(output)  # lists every file the search wrote, keras-tuner's too
    assert manifest.kind == "search" and manifest.unlisted() == [] and "tuner/oracle.json" in manifest.entries

    # Running it again with other settings refuses to mix two searches in one folder.
    assert main(argv[:-4] + ["--tuner", "random", "--verbose", "0"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_cli_show_space_and_usage_errors(capsys):
    from kerasnets.cli.tune import TUNER_KINDS

    assert TUNER_KINDS == tuple(kt.TUNERS)
    assert main(["tune", "resnet50", "--show-space", "--search-depth", "--hp", "conv5_width=256,512"]) == 0
    out = capsys.readouterr().out
    assert "depth" in out and "one of 50, 101, 152" in out and "conv5_width       one of 256, 512" in out
    for argv, message in [
        (["tune", "resnet20", "--show-space", "--hp", "conv9_width=8"], "unknown hyperparameters"),
        (["tune", "resnet20", "--show-space", "--hp", "conv2_width"], "NAME=VALUES"),
        (["tune", "resnet20", "--show-space", "--hp", "conv2_width=abc"], "numbers"),
        (["tune", "resnet21", "--show-space"], "Unknown model"),
        (["tune", "alexnet", "--show-space", "--search-depth"], "no other depths"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "kerasnets tune: error:" in err and message in err and "Traceback" not in err


# ---------------------------------------------------------------------------
# MirroredStrategy over two logical CPU devices (in a fresh interpreter).
# ---------------------------------------------------------------------------


def test_search_under_mirrored_strategy(tmp_path):
    script = os.path.join(os.path.dirname(__file__), "_tuning_mirrored.py")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, script, str(tmp_path)], capture_output=True, text=True, timeout=600, env=env,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert len(result["devices"]) == 2
    assert list(result["statuses"].values()) == ["COMPLETED", "COMPLETED"]
    assert result["seen"] == [
        {"strategy": "MirroredStrategy", "replicas": 2, "distributed_variable": True}
    ] * 2
