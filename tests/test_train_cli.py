"""``kerasnets train`` run as a user runs it, in a subprocess, and ``kerasnets evaluate`` on its folder.

The runs that train go through ``python -m kerasnets`` (a fresh process: MirroredStrategy
over logical CPU devices, a SIGKILL); evaluating, rerunning a finished run and the bad
arguments that need no fresh process call `kerasnets.cli.main` in this one.

A tiny configuration (ResNet-20 at width 0.25 on 16x16 crops of a few hundred
``shapes`` images) keeps each run to seconds; the learning checks at the end run
the README's default command on the whole dataset, its first three epochs and all
ten, with ``pytest --main-job`` (out of CI's time).
"""

import csv
import dataclasses
import json
import os
import subprocess
import sys
import time

import pytest

from _cli_runner import run_cli
from _data_fixtures import shapes_data_dir  # noqa: F401  (fixture)

from kerasnets.cli import build_parser
from kerasnets.cli.train import training_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--width-multiplier", "0.25", "--image-size", "16", "--epochs", "3", "--batch-size", "64",
        "--train-split", "train[:256]", "--val-split", "validation[:128]", "--test-split", "test[:128]"]
TINY_API = dict(model_kwargs={"width_multiplier": 0.25}, image_size=16, epochs=3, batch_size=64,
                train_split="train[:256]", validation_split="validation[:128]", test_split="test[:128]")


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def kerasnets_cli(*args, cwd=None, timeout=600, **env):
    return subprocess.run(
        [sys.executable, "-m", "kerasnets", *args], capture_output=True, text=True,
        env=dict(_env(), **env), cwd=cwd, timeout=timeout,
    )


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# The main run uses MirroredStrategy over two logical CPU devices: the multi-replica
# path end to end (the resume test below uses the default strategy and --precision
# auto). float32, so that `kerasnets evaluate` on one device (another batch split)
# reproduces the run's own test numbers to 1e-4.
MIRRORED = ["--strategy", "mirrored", "--cpu-devices", "2"]


def test_train_writes_everything_then_evaluate_and_rerun(shapes_data_dir, tmp_path, capsys):  # noqa: F811
    out = str(tmp_path / "run")
    args = ["train", "resnet20", "--dataset", "shapes", "--data-dir", shapes_data_dir, "--output", out,
            *TINY]
    result = kerasnets_cli(*args, *MIRRORED, "--precision", "float32")
    assert result.returncode == 0, result.stderr[-3000:]
    banner = result.stdout
    for text in ("kerasnets train resnet20", "parameters", "multiply-adds", "shapes: 10 classes",
                 "mirrored strategy, 2 replica(s) on CPU", "precision float32", "XLA off",
                 "64 global = 32 per replica x 2", "resnet_cifar", "Epoch 3/3", "top-5 accuracy"):
        assert text in banner, text
    for name in ("run.json", "log.csv", "curves.png", "model.keras", "checkpoints/best.keras",
                 "checkpoints/best.json", "evaluation.json", "backup/state.json",
                 "saved_model/saved_model.pb"):
        assert os.path.exists(os.path.join(out, name)), name
    assert os.listdir(os.path.join(out, "tensorboard"))
    with open(os.path.join(out, "curves.png"), "rb") as f:
        assert f.read(4) == b"\x89PNG"
    rows = _rows(os.path.join(out, "log.csv"))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert {"loss", "accuracy", "top5_accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(rows[0])
    with open(os.path.join(out, "run.json")) as f:
        run = json.load(f)
    assert run["status"] == "complete" and run["model"] == "resnet20" and run["dataset"] == "shapes"
    assert run["image_size"] == 16 and run["global_batch_size"] == 64 and len(run["class_names"]) == 10
    assert run["builder_kwargs"] == {"width_multiplier": 0.25, "classes": 10, "input_shape": [16, 16, 3]}
    assert run["recipe"]["name"] == "resnet_cifar" and run["recipe"]["learning_rate"] == pytest.approx(0.05)
    assert run["preprocessing"]["name"] == "imagenet_mean_std"
    # The request is the command's TrainingConfig, the recipe resolved (the batch was given).
    config = training_config(build_parser().parse_args([*args, *MIRRORED, "--precision", "float32"]))
    assert run["request"] == dataclasses.replace(config, recipe="resnet_cifar").to_json()
    with open(os.path.join(out, "saved_model", "kerasnets_export.json")) as f:
        exported = json.load(f)  # what the model card says: the architecture, what it was fed
    assert exported["model_name"] == "resnet20"
    assert exported["builder_kwargs"] == {"width_multiplier": 0.25, "input_shape": [16, 16, 3]}  # not defaults
    assert {k: exported["preprocessing"][k] for k in run["preprocessing"]} == run["preprocessing"]
    assert run["hardware"]["strategy"] == "mirrored" and run["hardware"]["replicas"] == 2
    assert run["hardware"]["jit_compile"] is False
    assert run["created"] < run["updated"]  # created: when the run started, not when it ended
    assert set(run["test"]) >= {"loss", "accuracy", "top5_accuracy"}
    assert {"keras", "tensorflow", "kerasnets"} <= set(run["versions"])
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]

    # evaluate reads the run folder: the final model on the same test split, here in this
    # process (one device, another batch split than the run's two replicas).
    from kerasnets.cli import main

    capsys.readouterr()
    assert main(["evaluate", out, "--data-dir", shapes_data_dir, "--json"]) == 0
    printed = capsys.readouterr().out
    got = json.loads(printed[printed.index("{"):])
    for key in ("loss", "accuracy", "top5_accuracy"):
        assert got[key] == pytest.approx(run["test"][key], abs=1e-4), key
    assert got["split"] == "test[:128]" and got["examples"] == 128

    # The same command again: the run is complete.
    assert main(args) == 0
    assert "is complete (3 epochs): nothing to do" in capsys.readouterr().out
    assert _rows(os.path.join(out, "log.csv")) == rows
    # Another configuration in the same folder is refused.
    assert main([*args[:-2], "--epochs", "3", "--batch-size", "32"]) == 2
    assert "holds another run (batch_size: 64 -> 32)" in capsys.readouterr().err


def test_resume_after_sigkill(shapes_data_dir, tmp_path):  # noqa: F811
    out = str(tmp_path / "run")
    kwargs = dict(TINY_API, model="resnet20", dataset="shapes", data_dir=shapes_data_dir,
                  output=out, export=False)
    killed = subprocess.run(
        [sys.executable, os.path.join(REPO, "tests", "_train_and_die.py"), json.dumps(kwargs), "2"],
        capture_output=True, text=True, env=_env(), timeout=600,
    )
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-3000:])
    before = _rows(os.path.join(out, "log.csv"))
    assert [r["epoch"] for r in before] == ["1", "2"]  # epoch 2 logged, not committed
    with open(os.path.join(out, "backup", "state.json")) as f:
        state = json.load(f)
    assert state["epoch"] == 1 and state["train_seconds"] > 0
    with open(os.path.join(out, "run.json")) as f:
        created = json.load(f)["created"]
    killed_steps = _tensorboard_steps(os.path.join(out, "tensorboard", "train"), "epoch_loss")
    # As a kill during the final export leaves it: the rerun removes it.
    os.makedirs(os.path.join(out, ".saved_model.partial-999999-x", "saved_model"))

    # The user runs the same command again.
    resumed = kerasnets_cli("train", "resnet20", "--dataset", "shapes", "--data-dir", shapes_data_dir,
                            "--output", out, "--no-export", *TINY)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "(resuming after epoch 1)" in resumed.stdout
    assert "Epoch 1/3" not in resumed.stdout and "Epoch 2/3" in resumed.stdout
    after = _rows(os.path.join(out, "log.csv"))
    assert [r["epoch"] for r in after] == ["1", "2", "3"]
    assert after[0] == before[0]  # the completed epoch's row is intact
    with open(os.path.join(out, "run.json")) as f:
        run = json.load(f)
    assert run["status"] == "complete" and run["completed_epochs"] == 3
    assert sorted(os.listdir(os.path.join(out, "backup"))) == ["epoch-0003.weights.h5", "state.json"]
    # Times add up over both processes; created is the first process's start.
    assert run["created"] == created and run["train_seconds"] > state["train_seconds"]
    assert not [n for n in os.listdir(out) if ".partial-" in n or n.startswith(".tmp-")]
    # TensorBoard shows each epoch once, though the killed process logged epoch 2 too.
    assert _tensorboard_steps(os.path.join(out, "tensorboard", "train"), "epoch_loss") == [0, 1, 2], killed_steps
    # The final model and the best checkpoint, after the resume, carry the model card: the
    # architecture, and the preprocessing the data was fed with (run.json's).
    import keras

    import kerasnets

    for name in ("model.keras", "checkpoints/best.keras"):
        card = kerasnets.model_card(keras.models.load_model(os.path.join(out, name), compile=False))
        assert card.model == "resnet20" and card.weights is None, name
        assert dict(card.builder_kwargs) == {"width_multiplier": 0.25, "input_shape": [16, 16, 3]}, name
        assert json.loads(json.dumps(card.preprocessing.to_dict())) == run["preprocessing"], name


def _tensorboard_steps(folder, tag):
    import tensorflow as tf

    steps = []
    for name in sorted(os.listdir(folder)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return sorted(steps)


def test_bad_arguments_exit_2_with_a_clear_message(tmp_path):
    # The console command as a user runs it (exit status, stderr); the other bad arguments
    # run in process below. MirroredStrategy over 2 logical CPUs needs a fresh process.
    args = ["train", "resnet20", *MIRRORED, "--batch-size", "1", "--output", str(tmp_path / "b")]
    result = kerasnets_cli(*args)
    assert result.returncode == 2, (args, result.stderr[-2000:])
    assert "must be at least 2. Received: batch_size=1" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not os.listdir(str(tmp_path)), "nothing is written for bad input"


@pytest.mark.parametrize("args, message", [
    (["train", "resnet21"], "Unknown model 'resnet21'. Did you mean"),
    (["train", "resnet20", "--dataset", "no_such_dataset_xyz"], "no_such_dataset_xyz"),
    (["train", "resnet20", "--set", "weight_decy=0"], "Did you mean: weight_decay"),
    (["train", "resnet20", "--set", "learning_rate=-1"], "learning_rate must be a positive number"),
    (["train", "resnet20", "--recipe", "resnt"], "Unknown recipe 'resnt'"),
    (["train", "alexnet", "--image-size", "32"], "image_size must be at least 67 for alexnet"),
    (["train", "resnet20", "-O", "no_such_option=1"], "resnet20 does not take no_such_option"),
    (["train", "resnet20", "--precision", "float64"], "invalid choice: 'float64'"),
    (["train", "resnet20", "--batch-size", "0"], "must be a positive integer"),
    (["evaluate", "missing.keras"], "No such checkpoint"),
])
def test_more_bad_arguments_in_process(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = run_cli(args, capsys)
    assert run.returncode == 2
    assert message in run.stderr
    assert not os.listdir(str(tmp_path)), "nothing is written for bad input"


def test_shapes_defaults_short_run_small_batch(capsys):
    # The demo defaults on shapes (10 epochs at batch 32, the rate scaled to it) and the
    # paper's elsewhere; the caller's values always win.
    from kerasnets.cli import main
    from kerasnets.training import _run

    assert _run.resolve_recipe("resnet20", "shapes")[1:] == (10, 32)
    assert _run.resolve_recipe("resnet20", "shapes/64", epochs=3, batch_size=8)[1:] == (3, 8)
    assert _run.resolve_recipe("resnet20", "cifar10")[1:] == (182, 128)
    assert main(["train", "resnet20", "--show-recipe"]) == 0
    shown = capsys.readouterr().out
    assert "lr 0.025, x0.1 at epochs 5, 7.47" in shown and "batch size     32" in shown
    assert main(["train", "resnet20", "--dataset", "cifar10", "--show-recipe"]) == 0
    assert "lr 0.1, x0.1 at epochs 91, 136" in capsys.readouterr().out


# What `kerasnets train resnet20` (its default run on shapes) reaches, as the README
# states: the level every measured default run reached, less a margin. With the demo run's
# three-epoch linear warm-up, seeds 11 to 15 ended at 93.70% to 97.50% test top-1 (seed 11:
# 95.75%; float32, one thread, 2-core AMD EPYC; benchmarks/README.md). Seed 11, run here, was
# chosen before any was measured. Seeded runs repeat on one machine; other CPUs (bfloat16)
# and thread counts change the numbers a little, hence the margin.
PROMISED_TEST_ACCURACY = 0.90


# The whole default run: about 5 minutes with bfloat16, about 22-24 CPU-minutes in float32 on a
# 2-core AMD EPYC, hence the hour's timeout. One TensorFlow thread, as benchmarks/main_job_seeds.py
# measured it. Too long for CI's 30 minutes beside the rest of the suite: it runs with
# `pytest --main-job` (and benchmarks/main_job_seeds.py runs it over five seeds), as does the
# check of its first three epochs (the test after this one).
@pytest.mark.main_job
@pytest.mark.slow(minutes=24)
def test_default_run_learns_shapes(shapes_data_dir, tmp_path):  # noqa: F811
    result = kerasnets_cli("train", "resnet20", "--data-dir", shapes_data_dir, "--no-export",
                           "--seed", "11", cwd=str(tmp_path), timeout=3600,
                           TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(str(tmp_path), "runs", "resnet20-shapes", "run.json")) as f:
        run = json.load(f)
    assert run["epochs"] == 10 and run["global_batch_size"] == 32
    assert run["num_examples"]["train"] == 10000
    assert run["test"]["accuracy"] >= PROMISED_TEST_ACCURACY, run["test"]


# The default run's first three epochs, its linear warm-up from 0.0025 to 0.025: where runs
# of the paper's recipe without it stalled at chance (training accuracy .10-.14 for epochs),
# and where every measured seed of the demo run left chance (epoch 3, seeds 11-15 in float32
# and in bfloat16: training accuracy .271-.433, validation .299-.506; seed 11, run here:
# .420 / .299 in float32, .422 / .506 in bfloat16; benchmarks/README.md).
# The README's command, stopped (SIGKILL) once epoch 3's row is in log.csv. About 8 CPU-minutes
# in float32, a third of CI's time budget on a 2-core CPU without bfloat16: it runs with
# `pytest --main-job` beside the whole run above (benchmarks/main_job_seeds.py measures every
# epoch of five seeds); CI checks that each family's recipe lowers its loss (test_training.py).
WARMUP_EPOCHS = 3
WARMUP_TRAIN_ACCURACY = 0.25
WARMUP_VAL_ACCURACY = 0.2


@pytest.mark.main_job
@pytest.mark.slow(minutes=8)
def test_default_run_leaves_chance_during_its_warm_up(shapes_data_dir, tmp_path):  # noqa: F811
    log = os.path.join(str(tmp_path), "runs", "resnet20-shapes", "log.csv")
    env = dict(_env(), TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kerasnets", "train", "resnet20", "--data-dir", shapes_data_dir,
         "--no-export", "--seed", "11"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path))
    rows = []
    try:
        deadline = time.monotonic() + 1800
        while proc.poll() is None and time.monotonic() < deadline:
            rows = _rows(log) if os.path.exists(log) else []  # log.csv is replaced atomically
            if len(rows) >= WARMUP_EPOCHS:
                break
            time.sleep(2)
    finally:
        proc.kill()
        _, stderr = proc.communicate()
    assert len(rows) >= WARMUP_EPOCHS, stderr[-3000:]
    rates = [float(r["learning_rate"]) for r in rows[:WARMUP_EPOCHS]]
    assert rates[0] == pytest.approx(0.0025) and rates == sorted(rates) and rates[-1] < 0.025  # the warm-up
    third = rows[WARMUP_EPOCHS - 1]
    assert float(third["accuracy"]) >= WARMUP_TRAIN_ACCURACY, rows
    assert float(third["val_accuracy"]) >= WARMUP_VAL_ACCURACY, rows
