"""What misuse gets (issues 16 and 26): nothing a user wrote is lost or overwritten, and one clear line.

One test per kind of misuse, in the order of the README's table "What misuse
gets". Everything runs in process on tiny models and folders of a few images,
except where a second process is the point (the run lock, TensorFlow's
start-up messages). The kill-and-resume checks (TensorBoard epochs, times in
run.json) are in ``test_train_cli.py``.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from _cli_runner import run_cli
from _data_fixtures import shapes_data_dir, write_image  # noqa: F401  (fixture)

import kerasnets
import kerasnets.data as kd
import kerasnets.export as ke
from kerasnets.cli import main
from kerasnets.files import LOCK_FILE, RunLock, remove_stale_partials
from kerasnets.training import _run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_API = dict(model_kwargs={"width_multiplier": 0.25}, image_size=16, epochs=1, batch_size=64,
                train_split="train[:64]", validation_split="validation[:64]", test_split="test[:64]")


def _tiny_model(name="resnet20", classes=3, size=16):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x), name=name)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    _tiny_model().save(path)
    return path


@pytest.fixture
def run_folder(tmp_path, model_file):
    """A finished run as `kerasnets train` leaves it (the files export reads, and more)."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(model_file, run / "model.keras")
    shutil.copy(model_file, run / "checkpoints" / "best.keras")
    (run / "run.json").write_text(json.dumps({
        "status": "complete", "model": "resnet20", "image_size": 16, "dataset": "shapes",
        "class_names": ["a", "b", "c"], "builder_kwargs": {"classes": 3},
    }))
    (run / "log.csv").write_text("epoch,loss\n1,0.5\n")
    return run


def _listing(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def _cli(args, capsys):
    run = run_cli(args, capsys)
    return run.returncode, run.stderr


@pytest.fixture
def unwritable(tmp_path):
    """A folder nothing can be created in (a read-only folder; as root, /sys)."""
    if os.name == "nt":
        pytest.skip("POSIX permissions")
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        yield str(folder)
        folder.chmod(0o755)
        return
    try:
        probe = os.path.join("/sys", f".kerasnets-{os.getpid()}")
        open(probe, "w").close()
        os.remove(probe)
    except OSError:
        yield "/sys"
    else:
        pytest.skip("no unwritable folder for root here")


# 1. export --overwrite replaces only a previous kerasnets export.
def test_export_overwrite_never_replaces_the_run_a_folder_or_the_cwd(run_folder, tmp_path, capsys,
                                                                     monkeypatch):
    before = _listing(run_folder)
    mine = tmp_path / "work"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.csv").write_text("1,2\n")
    shutil.copy(run_folder / "model.keras", tmp_path / "mine.keras")
    (tmp_path / "mine.tflite").write_bytes(b"not a flatbuffer")
    cases = [
        ([run_folder, "--output", run_folder], "holds the model being exported"),
        ([run_folder / "model.keras", "--output", run_folder / "checkpoints"], "is not a kerasnets export"),
        ([run_folder, "--output", tmp_path], "holds the model being exported"),
        ([run_folder, "--output", tmp_path / "other"], "is not a kerasnets export (no kerasnets_export.json)"),
        ([run_folder, "--output", run_folder / "model.keras", "--format", "keras"], "is the model being exported"),
        ([run_folder, "--output", run_folder / "checkpoints" / "best.keras", "--format", "keras"],
         "is not a .keras file exported by kerasnets"),
        ([run_folder, "--output", tmp_path / "mine.keras", "--format", "keras"], "is not a .keras file exported"),
        ([run_folder, "--output", tmp_path / "mine.tflite", "--format", "tflite"], "is not a TFLite model"),
    ]
    for args, message in cases:
        code, err = _cli(["export", *args, "--overwrite"], capsys)
        assert code == 2 and message in err and "only replaces a previous kerasnets export" in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err
    with pytest.raises(ValueError, match="holds the model being exported"):  # the API says the same
        ke.saved_model(_tiny_model(), tmp_path, overwrite=True, source=run_folder / "model.keras")
    monkeypatch.chdir(mine)
    code, err = _cli(["export", run_folder, "--output", ".", "--overwrite"], capsys)
    assert code == 2 and "is the current directory" in err, err
    monkeypatch.chdir(tmp_path / "other")
    code, err = _cli(["export", run_folder, "--output", "..", "--overwrite"], capsys)
    assert code == 2 and "holds the current directory" in err, err
    assert _listing(run_folder) == before
    assert (mine / "notes.txt").read_text() == "mine" and (tmp_path / "other" / "data.csv").exists()
    monkeypatch.chdir(tmp_path)

    # A previous export is replaced, as --overwrite promises.
    for fmt, name in (("saved_model", "export"), ("keras", "export.keras")):
        for _ in range(2):
            code, err = _cli(["export", run_folder, "--output", tmp_path / name, "--format", fmt,
                              "--overwrite"], capsys)
            assert code == 0, err
    assert ke.read_metadata(tmp_path / "export")["model_name"] == "resnet20"
    assert len(keras.models.load_model(tmp_path / "export.keras").outputs) == 1  # the marker is harmless


# 2. One process at a time in a run folder.
def test_a_run_folder_is_held_by_one_process(shapes_data_dir, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    out.mkdir()
    # Another process holds the folder's lock, as a live `kerasnets train` does.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
         "os.write(fd, str(os.getpid()).encode())\n"
         "print('held', flush=True)\n"
         "time.sleep(300)\n",
         str(out / LOCK_FILE)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        kwargs = dict(TINY_API, data_dir=shapes_data_dir, output=str(out), export=False)
        with pytest.raises(ValueError, match=rf"run folder {out} is in use by another kerasnets process "
                                             rf"\(pid {holder.pid}\)"):
            _run.prepare("resnet20", "shapes", **kwargs)
        with pytest.raises(ValueError, match="in use"):  # --overwrite deletes nothing of a live run
            _run.prepare("resnet20", "shapes", overwrite=True, **kwargs)
    finally:
        holder.kill()
        holder.wait()
    # The OS released the killed holder's lock: the folder is free at once.
    run = _run.prepare("resnet20", "shapes", **kwargs)
    with pytest.raises(ValueError, match=rf"\(pid {os.getpid()}\)"):  # held until the run ends
        RunLock(out).acquire()
    run.close()
    RunLock(out).acquire().release()


def _jpeg_folder(root, per_class, size):
    """``root/{a,b}/<n>.jpg`` of random pixels; ``b/3.jpg`` is corrupt behind a JPEG's header."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        for n in range(per_class):
            write_image(str(root / name / f"{n}.jpg"), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    data = bytearray((root / "b" / "3.jpg").read_bytes())
    middle = slice(len(data) // 3, len(data) - 10)
    data[middle] = rng.integers(0, 256, len(data[middle]), np.uint8).tobytes()
    (root / "b" / "3.jpg").write_bytes(bytes(data))  # its header is a JPEG's
    return root


# 3. A corrupt image with a valid header never stops an epoch; the file is named.
def test_corrupt_jpeg_is_found_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERASNETS_CACHE_DIR", str(tmp_path / "cache"))
    root = _jpeg_folder(tmp_path / "images", 4, 20)
    assert kd.load(str(root), "all", verify="header").num_examples == 8

    with pytest.raises(kd.DataError, match=r"b/3\.jpg cannot be decoded"):  # train's default
        _run.prepare("resnet20", str(root), **dict(TINY_API, train_split="train", validation_split="validation",
                                                    test_split="validation"), output=str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")
    assert "Verifying 6 images" in capsys.readouterr().err  # the progress bar (train: 6 of 8)

    # What decoded is remembered: a rerun decodes only the new or changed files.
    (root / "b" / "3.jpg").unlink()
    decoded = []
    check = kd._folder._check_decode
    monkeypatch.setattr(kd._folder, "_check_decode", lambda path: decoded.append(path) or check(path))
    assert kd.load(str(root), "all", verify="full").num_examples == 7
    assert len(decoded) == 2  # the validation images, which train's check never reached
    decoded.clear()
    assert kd.load(str(root), "all", verify="full").num_examples == 7
    assert decoded == []
    write_image(str(root / "a" / "new.png"), np.zeros((8, 8, 3), np.uint8))
    assert kd.load(str(root), "all", verify="full").num_examples == 8
    assert [os.path.basename(p) for p in decoded] == ["new.png"]

    # The command line has the API's choice.
    for command in ("train resnet20", "evaluate run"):
        for choice in ("full", "header", "none"):
            args = kerasnets.cli.build_parser().parse_args([*command.split(), "--verify", choice])
            assert args.verify == choice


# 4. What a killed write left behind goes with the next run or export.
def test_leftovers_of_crashed_writes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    run = tmp_path / "run"
    (run / f".saved_model.partial-{dead}-x1" / "saved_model" / "variables").mkdir(parents=True)
    (run / ".saved_model.partial-oldstyle").mkdir()
    (run / f".tmp-{dead}-run.json").write_text("{")
    (run / "run.json").write_text("{}")
    from kerasnets.training import _io

    _io.remove_temporaries(run)  # what a run does first, in its locked folder
    assert os.listdir(run) == ["run.json"]

    exports = tmp_path / "exports"
    # An export killed between its two renames: the previous version is aside, none in place.
    aside = exports / f".model.partial-{dead}-x2" / ".previous"
    aside.mkdir(parents=True)
    (aside / ke.METADATA_FILE).write_text("{}")
    live = exports / f".other.partial-{os.getpid()}-x3"  # a live process's: left alone
    live.mkdir()
    assert remove_stale_partials(exports) == [f".model.partial-{dead}-x2"]
    assert sorted(os.listdir(exports)) == [f".other.partial-{os.getpid()}-x3", "model"]
    (exports / f".new.partial-{dead}-x4").mkdir()
    ke.keras_file(_tiny_model(), exports / "new.keras")  # an export cleans its folder first
    assert sorted(os.listdir(exports)) == [f".other.partial-{os.getpid()}-x3", "model", "new.keras"]


def test_tensorboard_drops_the_events_of_uncommitted_epochs(tmp_path):
    from kerasnets.training.callbacks import drop_events_after

    logs = tmp_path / "tensorboard" / "train"
    writer = tf.summary.create_file_writer(str(logs))
    with writer.as_default():
        tf.summary.scalar("epoch_loss", 1.0, step=0)
        writer.flush()
        time.sleep(0.05)
        committed = time.time()
        time.sleep(0.05)
        tf.summary.scalar("epoch_loss", 0.5, step=1)  # the killed process's uncommitted epoch
    writer.close()
    assert drop_events_after(str(tmp_path / "tensorboard"), committed) == 1
    (file,) = os.listdir(logs)
    steps = [e.step for e in tf.compat.v1.train.summary_iterator(str(logs / file)) if e.summary.value]
    assert steps == [0]


def _no_data(*args, **kwargs):
    raise AssertionError("the data was loaded before the arguments were checked")


# 6. An unwritable destination: one line, before any work.
def test_unwritable_destination_is_one_line_before_any_work(run_folder, unwritable, capsys, monkeypatch):
    for fmt, name in (("saved_model", "out"), ("keras", "out.keras"), ("tflite", "out.tflite")):
        code, err = _cli(["export", run_folder, "--output", os.path.join(unwritable, "x", name),
                          "--format", fmt], capsys)
        assert code == 2 and f"Cannot write to {unwritable}" in err and "Loading" not in err, err
    with pytest.raises(ValueError, match="Cannot write to"):
        ke.tflite(_tiny_model(), os.path.join(unwritable, "m.tflite"))

    monkeypatch.setattr(_run, "_load_split", _no_data)
    code, err = _cli(["train", "resnet20", "--output", os.path.join(unwritable, "run")], capsys)
    assert code == 2 and f"Cannot write to {unwritable}" in err and "Received: output=" in err, err


# 7. A damaged .keras file is described, not "File not found".
def test_truncated_or_foreign_keras_file_is_named(model_file, tmp_path, capsys):
    content = model_file.read_bytes()
    files = {
        "cut.keras": (content[: len(content) // 2], "is truncated: a zip archive without its end"),
        "text.keras": (b"hello, world", "is not a .keras file: a .keras file is a zip archive"),
        "empty.keras": (b"", "is empty"),
    }
    for name, (data, message) in files.items():
        (tmp_path / name).write_bytes(data)
        for args in (["export", tmp_path / name, "--output", tmp_path / "out"],
                     ["evaluate", tmp_path / name, "--dataset", "shapes"]):
            code, err = _cli(args, capsys)
            assert code == 2 and message in err and "File not found" not in err, (args, err)
    assert sorted(os.listdir(tmp_path)) == sorted(files)


# 9. -O and --set values are checked against their type.
@pytest.mark.parametrize("args, message", [
    (["summary", "resnet20", "-O", "residual=maybe"], "residual must be True or False. Received: -O residual='maybe'"),
    (["summary", "resnet50", "-O", "downsample_on=3"], "downsample_on must be a string"),
    (["summary", "googlenet", "-O", "batch_norm=yes"], "batch_norm must be True or False"),
    (["train", "resnet20", "--set", "nesterov=maybe"], "nesterov must be True or False"),
    (["train", "resnet20", "--set", "plateau_patience=2.5"], "plateau_patience must be an integer"),
])
def test_option_values_are_checked_by_type(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_run, "_load_split", _no_data)
    code, err = _cli(args, capsys)
    assert code == 2 and message in err, err


@pytest.mark.parametrize("args, message", [
    (["--num-processes", "2", "--process-id", "0"], "--num-processes, --process-id, --coordinator must be given "
                                                    "together (all three). Received: --num-processes 2, --process-id 0"),
    (["--num-processes", "2", "--process-id", "0", "--coordinator", "10.0.0.1:1234"],
     "Training on several processes needs the JAX backend (KERAS_BACKEND=jax)"),
    (["--num-processes", "2", "--process-id", "0", "--coordinator", "10.0.0.1", "--heartbeat-timeout", "0"],
     "--heartbeat-timeout"),
])
def test_several_process_flags_are_checked_before_any_work(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_run, "_load_split", _no_data)
    code, err = _cli(["train", "resnet20", *args], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) <= 2, err
    assert os.listdir(tmp_path) == []


def test_option_values_of_the_right_type_pass():
    from kerasnets.cli import build_parser, model_kwargs
    from kerasnets.cli.train import check_overrides

    args = build_parser().parse_args(["summary", "resnet50", "-O", "residual=false", "-O", "downsample_on=3x3"])
    assert model_kwargs(args) == {"residual": False, "downsample_on": "3x3"}
    overrides = {"lr_scaling": None, "decay_epochs": (3, 6), "gradient_clip_norm": None, "weight_decay": 0}
    check_overrides(overrides)  # --set lr_scaling=none is the word, not None
    assert overrides == {"lr_scaling": "none", "decay_epochs": (3, 6), "gradient_clip_norm": None,
                         "weight_decay": 0}


# 10. evaluate falls back to validation as train does.
def test_evaluate_on_a_folder_without_split_folders(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KERASNETS_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "images"
    for name in ("a", "b"):
        for n in range(5):
            write_image(str(root / name / f"{n}.png"), np.full((16, 16, 3), 40 * n, np.uint8))
    _tiny_model("net", classes=2).save(tmp_path / "m.keras")
    assert main(["evaluate", str(tmp_path / "m.keras"), "--dataset", str(root), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "validation" and result["examples"] == 2


# 11. Errors are one line; TensorFlow's start-up noise stays out.
def test_argparse_errors_are_one_line_with_a_hint(capsys):
    code, err = _cli(["train", "resnet20", "--precision", "float64"], capsys)
    assert code == 2 and err.count("\n") == 1 and "usage:" not in err, err
    assert "invalid choice: 'float64'" in err and "See 'kerasnets train --help'." in err


def test_command_output_has_no_tensorflow_startup_noise():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, "-m", "kerasnets", "summary", "resnet20", "-O", "residual=maybe"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "kerasnets summary: error: residual must be True or False. Received: -O residual='maybe'"
    ]


# ---------------------------------------------------------------------------------------
# Nothing lost, round two (issue 26): the data-loss cases, the last tracebacks, what was
# accepted without a word. In the order of the README's table.
# ---------------------------------------------------------------------------------------

TINY_CLI = ["--width-multiplier", "0.25", "--image-size", "16", "--epochs", "1", "--batch-size", "32",
            "--train-split", "train[:32]", "--val-split", "validation[:32]", "--test-split", "test[:32]"]


class _GotPast(Exception):
    """Raised where a command would start loading data: every check before it passed."""


def _stop_at_data(*args, **kwargs):
    raise _GotPast


def _plant(folder, files):
    """Writes ``{relative path: bytes}`` under ``folder``; returns the same mapping."""
    for name, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    return files


def _intact(folder, files):
    for name, data in files.items():
        with open(os.path.join(folder, name), "rb") as f:
            assert f.read() == data, name


def _one_line(err):
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def _genuine_run(folder):
    """A run folder marked as `kerasnets train` marks it, without training."""
    from kerasnets.files import Manifest

    Manifest(folder, "run").record("run.json", "log.csv", "checkpoints/best.keras")
    return folder


# Data loss 1: a folder with a run.json of another tool is no kerasnets run.
def test_a_run_json_of_another_tool_is_never_overwritten(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_run, "_load_split", _no_data)
    planted = _plant(tmp_path / "out", {
        "run.json": b'{"experiment": "my own tool"}', "log.csv": b"step,loss\n1,0.3\n",
        "model.keras": b"PK\x03\x04 not really", "tensorboard/events.mine": b"\x00\x01",
        "checkpoints/ckpt-1": b"weights"})
    for extra in ([], ["--overwrite"]):
        code, err = _cli(["train", "resnet20", "--output", tmp_path / "out", *extra], capsys)
        assert code == 2 and "holds a run.json that kerasnets did not write" in err, err
        assert "--overwrite deletes only what kerasnets wrote" in err
        _one_line(err)
    _intact(tmp_path / "out", planted)
    assert _listing(tmp_path / "out") == sorted(planted)


# Data loss 3: export --overwrite replaces only what an export's manifest lists.
def test_export_overwrite_replaces_only_what_the_export_wrote(run_folder, tmp_path, capsys):
    export = tmp_path / "export"
    ke.saved_model(_tiny_model(), export, model_name="resnet20")
    copied = _plant(tmp_path / "thesis", {ke.METADATA_FILE: (export / ke.METADATA_FILE).read_bytes(),
                                          "thesis.tex": b"\\documentclass{article}"})
    mine = _plant(export, {"notes.txt": b"mine", "variables/mine.bak": b"old"})
    for folder, shown in ((tmp_path / "thesis", "thesis.tex"), (export, "notes.txt, variables/mine.bak")):
        code, err = _cli(["export", run_folder, "--output", folder, "--overwrite"], capsys)
        assert code == 2 and f"holds files a kerasnets export did not write ({shown})" in err, err
        assert "Loading" not in err
        _one_line(err)
    _intact(tmp_path / "thesis", copied)
    _intact(export, mine)
    for name in mine:
        os.remove(export / name)
    os.remove(export / ".kerasnets-manifest.json")  # as an export of a kerasnets before the manifest
    ke.saved_model(_tiny_model(), export, overwrite=True, model_name="resnet20")  # SavedModel files only: replaced
    assert (export / ".kerasnets-manifest.json").exists()


# Data loss 4 and 5: extending a run removes its stale export; --overwrite keeps a user's files.
def test_extend_and_overwrite_keep_every_user_file(shapes_data_dir, tmp_path, capsys, monkeypatch):  # noqa: F811
    from kerasnets.files import Manifest

    out = tmp_path / "run"

    def train(*extra, epochs=1):
        return main(["train", "resnet20", "--data-dir", shapes_data_dir, "--output", str(out), *TINY_CLI,
                     "--epochs", str(epochs), "--no-export", *extra])  # the last --epochs wins

    assert train() == 0
    # Its export, as the run writes it (the export's own manifest is tested above).
    export = _plant(out / "saved_model", {"saved_model.pb": b"graph", "variables/variables.index": b"i"})
    Manifest(out / "saved_model", "export", [*export, "variables/"]).write()
    Manifest.read(out).record("saved_model/")
    planted = _plant(out, {"checkpoints/mine.ckpt": b"mine", "saved_model/notes.txt": b"notes",
                           "tensorboard/my_run/events.out.tfevents.1.me": b"\x00", "README.md": b"# my run"})
    capsys.readouterr()
    assert train(epochs=2) == 0  # the finished run, extended
    err = capsys.readouterr().err
    assert "it exported the model before this training (kept what kerasnets did not write there: " \
           "notes.txt)" in err, err
    assert sorted(os.listdir(out / "saved_model")) == ["notes.txt"]
    with open(out / "run.json") as f:
        record = json.load(f)
    assert record["status"] == "complete" and record["epochs"] == 2 and record["exported"] is None
    before = set(_listing(out))

    # --overwrite, interrupted as soon as it has removed the previous run (Ctrl-C).
    monkeypatch.setattr(_run.TrainingRun, "banner", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    assert train("--overwrite") == 130
    err = capsys.readouterr().err
    assert "--overwrite: removed the previous run" in err and "README.md, checkpoints/mine.ckpt" in err, err
    _intact(out, planted)
    assert set(_listing(out)) == {*planted, ".kerasnets-manifest.json", ".lock"}
    assert "backup/epoch-0002.weights.h5" in before and "model.keras" in before


# Tracebacks: each is one line before any work.
def test_api_misuse_is_one_clear_line():
    with pytest.raises(ValueError, match=r"pattern must be a shell-style pattern .* Received: pattern=123"):
        kerasnets.list_models(123)
    with pytest.raises(ValueError, match=r"images must be RGB images.* Received: images.shape=\(1, 8, 8, 4\)"):
        kerasnets.preprocess_input(np.zeros((1, 8, 8, 4)), model="resnet50")
    builders = [  # builder arguments a user mistypes
        (dict(input_shape="224"), "input_shape must be a tuple of positive integers"),
        (dict(input_shape=(32.0, 32.0, 3)), "input_shape must be a tuple of positive integers"),
        (dict(input_shape=(2, 2, 3)), "input_shape must be at least 3x3 for ResNet20"),  # on padding only
        (dict(input_shape=(32, 32, 3), classes=1), "classes must be at least 2 with classifier_activation"),
    ]
    for kwargs, message in builders:
        with pytest.raises(ValueError, match=re.escape(message)):
            kerasnets.ResNet20(**kwargs)
    assert kerasnets.ResNet20(input_shape=(32, 32, 3), classes=1, classifier_activation="sigmoid").output.shape[-1] == 1


def test_coordinator_port_is_checked_before_jax(capsys, tmp_path, monkeypatch):
    import socket

    from kerasnets.training import distribution

    monkeypatch.chdir(tmp_path)
    code, err = _cli(["train", "resnet20", "--num-processes", "2", "--process-id", "0",
                      "--coordinator", "127.0.0.1:99999"], capsys)
    assert code == 2 and "coordinator must be HOST:PORT with a port from 1 to 65535" in err, err
    _one_line(err)
    with socket.create_server(("127.0.0.1", 0)) as taken:  # JAX segfaults on a port in use
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=f"Process 0 cannot listen on port {port} of 127.0.0.1"):
            distribution._check_coordinator(f"127.0.0.1:{port}", 0, f"127.0.0.1:{port}")
    with pytest.raises(ValueError, match="cannot be resolved"):
        distribution._check_coordinator("no-such-host.invalid:1234", 1, None)


def test_weights_offline_print_the_message_alone(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KERASNETS_OFFLINE", "1")
    monkeypatch.setenv("KERASNETS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(_run, "_load_split", _no_data)  # the weight file is fetched before any work
    code, err = _cli(["train", "resnet18", "--weights", "imagenet", "--output", tmp_path / "run"], capsys)
    assert code == 1 and "is not in the weight cache and KERASNETS_OFFLINE is set" in err, err
    _one_line(err)
    assert not (tmp_path / "run").exists()


def test_damaged_run_json_is_named_and_overwrite_gets_past_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_run, "_load_split", _stop_at_data)
    out = _genuine_run(tmp_path / "run")
    for text, problem in (("[1, 2, 3]", "holds an array, not a JSON object"),
                          ('{"format": 1, "sta', "is not valid JSON")):
        (out / "run.json").write_text(text)
        code, err = _cli(["train", "resnet20", "--output", out], capsys)
        assert code == 2 and f"{out / 'run.json'} {problem}" in err and "pass --overwrite to start over" in err
        _one_line(err)
        with pytest.raises(_GotPast):  # every check passed; nothing is deleted before the data loads
            main(["train", "resnet20", "--output", str(out), "--overwrite"])
        assert (out / "run.json").read_text() == text
    (out / ".kerasnets-manifest.json").write_text('{"kerasnets_manifest": 1, "kind": "run", "files": ["../x"]}')
    code, err = _cli(["train", "resnet20", "--output", out, "--overwrite"], capsys)  # a crafted manifest
    assert code == 2 and "lists '../x', which is not a path inside its folder" in err, err


def test_export_and_evaluate_check_their_arguments_before_loading(run_folder, tmp_path, capsys):
    cases = [(["export", run_folder, "--format", "tflite", "--output", f"{tmp_path}/out/"],
              "--output must be a file path ending in .tflite for --format tflite"),
             (["export", run_folder, "--format", "keras", "--output", tmp_path / "x.h5"],
              "--output must be a file path ending in .keras for --format keras"),
             (["export", run_folder, "--output", tmp_path / "m.keras"],
              "--output must be a folder path for --format saved_model (for a .keras file, pass --format keras)")]
    for args, message in cases:
        code, err = _cli(args, capsys)
        assert code == 2 and message in err and "Loading" not in err, err
        _one_line(err)
    code, err = _cli(["evaluate", run_folder, "--image-size", "64", "--dataset", "shapes"], capsys)
    assert code == 2 and "--image-size must be 16, the input size of resnet20" in err, err
    _one_line(err)
    assert os.listdir(tmp_path) == ["run"]


def test_data_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "data").write_text("")
    code, err = _cli(["train", "resnet20", "--data-dir", tmp_path / "data", "--output", tmp_path / "run"], capsys)
    assert code == 2 and "data_dir must be a folder path (where tensorflow-datasets keeps its datasets), " \
                         "not a file" in err, err
    _one_line(err)
    assert sorted(os.listdir(tmp_path)) == ["data"]


def test_corrupt_image_unchecked_is_named_and_leaves_no_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KERASNETS_CACHE_DIR", str(tmp_path / "cache"))
    root = _jpeg_folder(tmp_path / "images", 8, 16)
    code, err = _cli(["train", "resnet20", "--dataset", root, "--verify", "none", "--output", tmp_path / "run",
                      "--width-multiplier", "0.25", "--image-size", "16", "--batch-size", "14", "--epochs", "1",
                      "--test-split", "validation"], capsys)
    assert code == 2 and "b/3.jpg cannot be decoded" in err and "The input pipeline stopped on them" in err, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("kerasnets train: error: 1 of ")
    assert err.strip().splitlines()[0].startswith("Verifying 14 images")  # finding it, with a progress line
    assert not (tmp_path / "run").exists()  # nothing that looks like a run


# Accepted without a word: now refused, stopped or documented.
def test_a_diverging_run_stops_and_is_marked_failed(shapes_data_dir, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    code, err = _cli(["train", "resnet20", "--data-dir", shapes_data_dir, "--output", out, "--lr", "1e10",
                      "--set", "warmup_epochs=0", "--no-export", *TINY_CLI, "--train-split", "train[:64]",
                      "--batch-size", "16"], capsys)
    assert code == 1 and "Training diverged: the loss is nan at epoch 1, step" in err, err
    _one_line(err)
    record = json.loads((out / "run.json").read_text(),
                        parse_constant=lambda name: pytest.fail(f"bare {name} in run.json"))
    assert record["status"] == "failed" and record["completed_epochs"] == 0 and "diverged" in record["failure"]
    assert not (out / "model.keras").exists() and not (out / "checkpoints" / "best.keras").exists()
    from kerasnets.training import _io

    _io.write_json(tmp_path / "x.json", {"loss": float("nan"), "best": np.float32("inf")})
    assert json.loads((tmp_path / "x.json").read_text()) == {"loss": None, "best": None}


@pytest.mark.parametrize("args, message", [
    (["--epochs", "1", "--set", "epochs=5"], "overrides must be free of ['epochs'] (give them as epochs="),
    (["--set", "batch_size=64"], "overrides must be free of ['batch_size']"),
    (["--lr", "0.5", "--set", "learning_rate=0.1"], "learning_rate must be given once: as learning_rate= (--lr"),
    (["--batch-size", "64", "--train-split", "train[:32]"],
     "batch_size must be at most the 32 examples of the training split 'train[:32]'"),
    (["--set", "decay_epochs=[1000]"], "decay_epochs must be before the recipe's last epoch (182;"),
    (["--set", "min_learning_rate=1"], "min_learning_rate must be below learning_rate (0.1)"),
])
def test_contradicting_or_impossible_training_flags(args, message, shapes_data_dir, tmp_path, capsys,  # noqa: F811
                                                    monkeypatch):
    code, err = _cli(["train", "resnet20", "--data-dir", shapes_data_dir, "--output", tmp_path / "run", *args],
                     capsys)
    assert code == 2 and message in err, err
    _one_line(err)
    assert os.listdir(tmp_path) == []


def test_empty_class_folders_and_symlink_loops(tmp_path):
    root = tmp_path / "images"
    for name in ("a", "b"):
        for n in range(10):
            write_image(str(root / name / f"{n}.png"), np.full((8, 8, 3), n, np.uint8))
    (root / "c").mkdir()
    with pytest.raises(kd.DataError, match=r"The class folder c of .* holds no images"):
        kd.load(str(root), "train")
    (root / "c").rmdir()
    os.symlink(root / "a", root / "a" / "loop")  # a/loop/loop/... would repeat a's images
    split = kd.load(str(root), "all", verify=None)
    assert split.num_examples == 20
    train = {str(p) for p in kd._folder.list_images(str(root / "a"))}
    assert len(train) == 10 and not any("loop" in p for p in train)


def test_no_export_while_a_train_extends_the_run(run_folder, capsys):
    lock = RunLock(run_folder).acquire()  # as `kerasnets train` holds it
    try:
        code, err = _cli(["export", run_folder, "--output", run_folder.parent / "out"], capsys)
    finally:
        lock.release()
    assert code == 2 and f"no kerasnets process is training (pid {os.getpid()} holds {run_folder}" in err, err
    _one_line(err)


def test_overwrite_deletes_nothing_before_every_check_passed(tmp_path, capsys):
    out = _genuine_run(tmp_path / "run")
    planted = _plant(out, {"run.json": b'{"status": "complete", "request": {}}', "log.csv": b"1"})
    code, err = _cli(["train", "resnet20", "--dataset", tmp_path / "no-such-folder", "--output", out,
                      "--overwrite"], capsys)
    assert code == 2 and "does not exist" in err, err
    _intact(out, planted)


def _pth(offset, size, stride, floats=(1.0, 2.0, 3.0, 4.0)):
    """A torch zip checkpoint written by hand: one tensor ``(offset, size, stride)`` of a
    storage of ``floats``, in the pickle opcodes ``torch.save`` writes."""
    import io
    import struct
    import zipfile

    def text(s):
        return b"X" + struct.pack("<I", len(s)) + s.encode()

    def tup(*items):
        return b"(" + b"".join(items) + b"t"

    def num(n):
        return b"J" + struct.pack("<i", n)

    storage = tup(text("storage"), b"ctorch\nFloatStorage\n", text("0"), text("cpu"), num(len(floats))) + b"Q"
    tensor = b"ctorch._utils\n_rebuild_tensor_v2\n" + tup(
        storage, num(offset), tup(*map(num, size)), tup(*map(num, stride)), b"\x89",
        b"ccollections\nOrderedDict\n)R") + b"R"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("m/data.pkl", b"\x80\x02}" + text("weight") + tensor + b"s.")
        archive.writestr("m/data/0", struct.pack(f"<{len(floats)}f", *floats))
    buffer.seek(0)
    return buffer


def test_pth_reader_refuses_views_outside_their_storage():
    from kerasnets.weights import _readers

    np.testing.assert_array_equal(_readers.read_torch_zip(_pth(0, (2, 2), (1, 2)))["weight"], [[1, 3], [2, 4]])
    np.testing.assert_array_equal(_readers.read_torch_zip(_pth(3, (), ()))["weight"], 4.0)
    for offset, size, stride in ((0, (2, 2), (1000, 1)), (4, (1,), (1,)), (0, (1 << 20,), (1,)), (-1, (1,), (1,))):
        with pytest.raises(_readers.WeightFileError, match="is not a readable PyTorch checkpoint"):
            _readers.read_torch_zip(_pth(offset, size, stride))
