"""`kerasnets tune` on several workers (Keras Tuner's distributed mode), and tune's folder rules.

Every process binds 127.0.0.1. The search is tiny (VGG-11 at width 1/4 on 32x32
``shapes``, one batch per epoch, one epoch, five trials), but each trial still traces
a training graph (about 8 CPU-seconds) and each worker process imports TensorFlow
(about 12): so one search, killed twice, proves the distributed behaviour (a worker
lost, the whole search lost and resumed, the checks against a running search), and
the rest runs without processes.
"""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import keras
import keras_tuner
import pytest

from _data_fixtures import shapes_data_dir  # noqa: F401  (a session fixture)

import kerasnets.tuning as kt
from kerasnets.cli import main
from kerasnets.files import Manifest, RunLock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _argv(data_dir, output, *extra, model="vgg11", trials=3):
    return ["tune", model, "--dataset", "shapes", "--data-dir", data_dir, "--max-trials", str(trials),
            "--epochs", "1", "--batch-size", "16", "--image-size", "32", "--steps-per-epoch", "1",
            "--validation-steps", "1", "--hp", "width_multiplier=0.25", "--precision", "float32",
            "--seed", "1", "--verbose", "0", "--output", output, *extra]


def _rows(output):
    with open(os.path.join(output, "results.csv"), encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _workers(output):
    return kt.read_workers(os.path.join(output, "tuner"))


def _trial_status(output, trial_id):
    try:
        with open(os.path.join(output, "tuner", f"trial_{trial_id}", "trial.json"), encoding="utf-8") as f:
            return json.load(f)["status"]
    except (OSError, ValueError, KeyError):
        return None


def _ended(out):
    """``{trial_id: (status, worker)}`` of the chief's progress lines; each id once."""
    ended = {}
    for line in out.splitlines():
        if line.startswith("[tune] trial "):
            words = line.split()
            assert words[2] not in ended, f"trial {words[2]} ended twice:\n{out}"
            ended[words[2]] = (words[4], words[6] if words[5] == "on" else "")
    return ended


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))


# ---------------------------------------------------------------------------
# A running search refuses what would clash with it; SIGKILLed, it resumes.
# ---------------------------------------------------------------------------


def _one_line_error(capsys, *pieces):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("kerasnets tune: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for piece in pieces:
        assert piece in lines[0], lines[0]
    return lines[0]


def _refused_while_running(data_dir, tmp_path, output, address, chief_pid, capsys):
    port = address.rsplit(":", 1)[1]
    # A second chief on the port (Keras Tuner's own server would share it silently).
    assert main(_argv(data_dir, str(tmp_path / "other"), "--role", "chief", "--oracle", address)) == 2
    _one_line_error(capsys, f"port {port} of 127.0.0.1 is in use")
    assert not os.path.exists(tmp_path / "other")
    # A second search on the folder, as `train` refuses it.
    assert main(_argv(data_dir, output)) == 2
    _one_line_error(capsys, "is in use by another kerasnets process", f"pid {chief_pid}")
    # Workers started with another space, or another model, than the chief's.
    worker = ["--role", "worker", "--oracle", address, "--worker-id", "w1"]
    assert main(_argv(data_dir, output, *worker, "--hp", "block2_width=64")) == 2
    _one_line_error(capsys, "searches another space than this worker", "block2_width")
    assert main(_argv(data_dir, output, *worker, model="vgg13")) == 2
    _one_line_error(capsys, "differs from this worker's", "model: 'vgg11' on the chief, 'vgg13' here")


def _read_lines(stream, lines):
    for line in stream:
        lines.append(line)


@pytest.mark.slow(minutes=3)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers die with the chief on Linux")
def test_two_workers_survive_a_killed_worker_and_a_killed_search(shapes_data_dir, tmp_path, capsys):  # noqa: F811
    """One search of five trials: a chief process and two workers on 127.0.0.1. While the
    workers start, what would clash with it is refused. A worker SIGKILLed in its second
    trial gives that trial back and the other worker runs it; then the whole search is
    SIGKILLed while a later trial runs, and the same command again (on one worker) resumes:
    no finished trial is trained again and the report holds all five, from both workers."""
    output = str(tmp_path / "search")
    argv = _argv(shapes_data_dir, output, trials=5)
    chief = subprocess.Popen([sys.executable, "-m", "kerasnets", *argv, "--workers", "2"], env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, pids, killed = [], {}, {}
    reader = threading.Thread(target=_read_lines, args=(chief.stdout, lines), daemon=True)
    reader.start()
    try:
        deadline = time.time() + 600
        while time.time() < deadline and chief.poll() is None:
            if len(pids) < 2:
                for line in list(lines):
                    if line.startswith("[tune] worker tuner") and ": pid " in line:
                        pids[line.split()[2].rstrip(":")] = int(line.split("pid ")[1].split(",")[0])
                    if "the oracle listens on" in line:
                        address = line.split("listens on ")[1].split()[0]
                if len(pids) == 2:  # checked while the workers start
                    _refused_while_running(shapes_data_dir, tmp_path, output, address, chief.pid, capsys)
            histories = _workers(output)
            if not killed:  # a worker that finished a trial and runs another: SIGKILL it
                for worker in sorted(pids):
                    mine = sorted(t for t, history in histories.items() if history[-1] == worker)
                    if (len(mine) == 2 and _trial_status(output, mine[0]) == "COMPLETED"
                            and _trial_status(output, mine[1]) == "RUNNING"):
                        os.kill(pids[worker], signal.SIGKILL)
                        killed.update(worker=worker, trial=mine[1])
                        break
            elif (any(line.startswith(f"[tune] trial {killed['trial']} ") for line in lines)
                  and any(_trial_status(output, t) == "RUNNING" for t in histories)):
                break  # the other worker ran the given-back trial and runs a later one
            time.sleep(0.2)
    finally:
        chief.kill()  # SIGKILL, as `kill -9`: the workers go with it
        chief.wait()
        reader.join(10)
    out = "".join(lines)
    assert killed and len(pids) == 2, out
    other = ({"tuner0", "tuner1"} - {killed["worker"]}).pop()
    assert f"worker {killed['worker']} stopped (killed by SIGKILL); its trial {killed['trial']} goes back" in out
    first = _ended(out)
    assert first[killed["trial"]] == ("COMPLETED", other), out
    assert {status for status, _ in first.values()} == {"COMPLETED"} and len(first) < 5
    assert _workers(output)[killed["trial"]] == [killed["worker"], other]
    deadline = time.time() + 20
    while any(_alive(pid) for pid in pids.values()) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids.values())
    stamps = {t: os.stat(os.path.join(output, "tuner", f"trial_{t}", "checkpoint.weights.h5")).st_mtime_ns
              for t in first}

    # The same command again (on one worker this time): it resumes.
    assert main(argv + ["--workers", "1"]) == 0
    out = capsys.readouterr().out
    second = _ended(out)
    assert not set(first) & set(second)  # finished trials are not trained again
    assert set(first) | set(second) == {"0", "1", "2", "3", "4"}
    assert {t: os.stat(os.path.join(output, "tuner", f"trial_{t}", "checkpoint.weights.h5")).st_mtime_ns
            for t in first} == stamps
    # The report holds every trial, with the worker that ran it: both ran trials.
    rows = _rows(output)
    assert [r["trial"] for r in rows] == ["0", "1", "2", "3", "4"] and {r["status"] for r in rows} == {"COMPLETED"}
    assert {r["worker"] for r in rows} == {"tuner0", "tuner1"}
    assert all(r["macs"] and r["val_accuracy"] for r in rows)  # a point of the plot each
    table = out.split("trial  status")[1].split("Best:")[0]
    assert "worker" in table and "tuner0" in table and "tuner1" in table
    with open(os.path.join(output, "pareto.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(output, "best_args.json"), encoding="utf-8") as f:
        best = json.load(f)
    saved = keras.saving.load_model(os.path.join(output, "best_model.keras"))
    assert kt.build_from_args(best["builder_args"]).count_params() == saved.count_params()
    # The folder's manifest lists everything the chiefs and workers wrote (--overwrite removes it).
    manifest = Manifest.read(output)
    assert manifest.kind == "search" and manifest.unlisted() == []
    assert {"logs/tuner0.log", "logs/tuner1.log", "tuner/oracle.json", "best_model.keras"} <= manifest.entries


# ---------------------------------------------------------------------------
# Errors without a chief, each one line.
# ---------------------------------------------------------------------------


def test_distribution_usage_errors(tmp_path, capsys):
    base = ["tune", "resnet20", "--output", str(tmp_path / "x")]
    closed = _free_port()
    started = time.time()
    assert main(base + ["--role", "worker", "--oracle", f"127.0.0.1:{closed}", "--oracle-timeout", "1"]) == 2
    _one_line_error(capsys, f"No oracle answered at 127.0.0.1:{closed} within 1 s")
    assert time.time() - started < 30
    with pytest.raises(SystemExit) as exited:
        main(base + ["--workers", "0"])
    assert exited.value.code == 2
    _one_line_error(capsys, "argument --workers: must be a positive integer. Received: '0'")
    for argv, pieces in [
        (["--oracle", "127.0.0.1:5000"], ("--oracle must be given with --role chief or --role worker",)),
        (["--role", "worker"], ("--oracle must be given with --role worker",)),
        (["--role", "worker", "--oracle", "127.0.0.1:99999"], ("--oracle must be HOST:PORT with a port from 1",)),
        (["--role", "worker", "--oracle", "localhost"], ("--oracle must be HOST:PORT",)),
        (["--role", "worker", "--oracle", "127.0.0.1:5000", "--worker-id", "chief2"], ("without 'chief'",)),
        (["--role", "worker", "--oracle", "127.0.0.1:5000", "--workers", "2"], ("--workers must be given without",)),
        (["--role", "worker", "--oracle", "127.0.0.1:5000", "--overwrite"], ("--overwrite must be left to the chief",)),
        (["--role", "chief", "--oracle", "192.0.2.1:5000"], ("192.0.2.1 is not an address of this machine",)),
    ]:
        assert main(base + argv) == 2, argv
        _one_line_error(capsys, *pieces)
    assert not os.path.exists(tmp_path / "x")


# ---------------------------------------------------------------------------
# tune's folder rules: those of train (nothing run, so nothing trains).
# ---------------------------------------------------------------------------


def _plant(folder, files):
    os.makedirs(folder, exist_ok=True)
    for name, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


def _contents(folder):
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found


USER_FILES = {"results.csv": b"my,own\n1,2\n", "best_model.keras": b"PK\x03\x04 not kerasnets",
              "pareto.png": b"\x89PNG my plot"}


@pytest.mark.parametrize("extra", [[], ["--overwrite"], ["--workers", "2"]])
def test_tune_refuses_a_folder_with_a_users_files(tmp_path, capsys, extra):
    folder = str(tmp_path / "mine")
    _plant(folder, USER_FILES)
    assert main(["tune", "resnet20", "--output", folder, *extra]) == 2
    _one_line_error(capsys, "not empty and holds no kerasnets search", "choose another --output")
    assert _contents(folder) == USER_FILES  # byte for byte, and nothing added


def test_tune_refuses_a_run_folder_and_a_held_folder(tmp_path, capsys):
    run = str(tmp_path / "run")
    planted = {"run.json": b'{"format": 1, "status": "complete", "model": "resnet20"}', "log.csv": b"epoch\n0\n"}
    _plant(run, planted)
    Manifest(run, "run", ["run.json", "log.csv"]).write()
    planted = _contents(run)
    for extra in ([], ["--overwrite"]):
        assert main(["tune", "resnet20", "--output", run, *extra]) == 2
        _one_line_error(capsys, "is a kerasnets run folder, not a search")
        assert _contents(run) == planted
    # A folder a `train` holds (its lock taken, nothing written yet).
    held = str(tmp_path / "held")
    with RunLock(held):
        assert main(["tune", "resnet20", "--output", held]) == 2
        _one_line_error(capsys, "is in use by another kerasnets process", f"pid {os.getpid()}")
        assert os.listdir(held) == [".lock"]


def test_overwrite_removes_only_what_a_search_wrote(tmp_path):
    from kerasnets.cli.tune import _Claim

    folder = str(tmp_path / "search")
    _plant(folder, {"search.json": b'{"model": "resnet20"}', "results.csv": b"x", "pareto.png": b"x",
                    "notes.txt": b"mine", "tuner/trial_0/trial.json": b"{}", "tuner/mine.txt": b"mine"})
    Manifest(folder, "search", ["search.json", "results.csv", "pareto.png", "tuner/", "tuner/trial_0/",
                                "tuner/trial_0/trial.json"]).write()
    claim = _Claim(folder)
    try:
        assert claim.previous == {"model": "resnet20"}
        claim.clear()
    finally:
        claim.release()
    assert _contents(folder) == {".lock": f"{os.getpid()}\n".encode(), "notes.txt": b"mine",
                                 "tuner/mine.txt": b"mine"}


# ---------------------------------------------------------------------------
# The pieces, without processes.
# ---------------------------------------------------------------------------


def test_consecutive_failures_stop_the_search_instead_of_stranding_it(tmp_path):
    """Keras Tuner's oracle raises the limit inside the worker's end_trial call (the worker dies,
    the chief waits for its trial forever); the chief's server stops handing out trials."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    grey = rng.random((8, 16, 16, 1), dtype=np.float32)  # one channel for an RGB model: every trial fails
    data = tf.data.Dataset.from_tensor_slices((grey, rng.integers(0, 3, 8))).batch(8)
    hypermodel = kt.WidthHyperModel("resnet20", input_shape=(16, 16, 3), classes=3, per_block=False,
                                    overrides={"width_multiplier": [0.25, 0.5, 0.75]}, steps_per_epoch=1)
    with kt.chief_environment():
        chief = kt.make_tuner("random", hypermodel, max_trials=3, directory=str(tmp_path), seed=0,
                              max_consecutive_failed_trials=2)
    server = kt.OracleServer("127.0.0.1", 0).start(chief)
    finished = []

    def worker():  # a worker in a thread of this process: Keras Tuner's client, over gRPC
        with kt.worker_environment("127.0.0.1", server.port, "w0", timeout=60):
            tuner = kt.make_tuner("random", hypermodel, max_trials=3, directory=str(tmp_path), seed=0)
            tuner.search(data, validation_data=data, epochs=1, verbose=0)
        finished.append(True)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        server.serve(poll=0.1)
    finally:
        server.stop()
    thread.join(60)
    assert finished  # the worker was told to stop, not failed by an RPC error
    assert server.stopped == "Number of consecutive failures exceeded the limit of 2."
    assert {t.status for t in chief.oracle.trials.values()} == {"FAILED"} and len(chief.oracle.trials) == 2
    assert [f.trial_id for f in kt.failed_trials(chief)] == ["0", "1"]
    assert kt.read_workers(chief.project_dir) == {"0": ["w0"], "1": ["w0"]}
    assert "KERASTUNER_ORACLE_IP" not in os.environ


def test_worker_processes_get_the_chiefs_arguments_unchanged():
    """A worker compares its builder arguments with the chief's: -O values (Python values once
    parsed) must reach it as they are, a tuple as a tuple (JSON alone would make it a list)."""
    from kerasnets.cli import build_parser
    from kerasnets.cli._tune_workers import decode_arguments, encode_arguments

    args = build_parser().parse_args(["tune", "resnet20", "-O", "stage_widths=(8, 16, 32)", "-O", "residual=false",
                                      "-O", "pool=avg", "-O", "head={'drop': 0.5}", "--hp", "conv2_width=8"])
    namespace = decode_arguments(encode_arguments(args, role="worker", cores=[1]))
    assert namespace["option"] == [("stage_widths", (8, 16, 32)), ("residual", False), ("pool", "avg"),
                                   ("head", {"drop": 0.5})]
    assert namespace["role"] == "worker" and namespace["cores"] == [1] and namespace["hp"] == ["conv2_width=8"]
    assert "func" not in namespace


def test_devices_split_among_workers():
    assert kt.split_devices(2, [0, 1]) == [[0], [1]]
    assert kt.split_devices(1, [0, 1]) == [[0, 1]]
    assert kt.split_devices(2, ["0", "1", "2"]) == [["0", "1"], ["2"]]
    assert kt.split_devices(3, ["0"]) == [["0"], ["0"], ["0"]]
    assert kt.split_devices(4, [0, 1]) == [[0], [1], [0], [1]]


def test_space_differences_name_each_hyperparameter():
    hypermodel = kt.WidthHyperModel("resnet20", input_shape=(16, 16, 3), classes=10)
    other = kt.WidthHyperModel("resnet20", input_shape=(16, 16, 3), classes=10, overrides={"conv2_width": 8})
    spaces = []
    for model in (hypermodel, other):
        hp = keras_tuner.HyperParameters()
        model.declare_hyperparameters(hp)
        spaces.append(hp)
    assert kt.space_differences(spaces[0], spaces[0]) == []
    # The chief sends its space over gRPC: the round trip changes nothing.
    assert kt.space_differences(spaces[0], keras_tuner.HyperParameters.from_proto(spaces[0].to_proto())) == []
    (difference,) = kt.space_differences(spaces[0], spaces[1])
    assert difference.startswith("conv2_width:") and "value=8" in difference


def test_keras_tuner_internals_still_there():
    """What `kerasnets.tuning` reads of Keras Tuner's distributed engine, by name."""
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief, oracle_client

    assert hasattr(oracle_chief.OracleServicer, "CreateTrial") and hasattr(oracle_client, "TIMEOUT")
    assert hasattr(protos.get_service_grpc(), "add_OracleServicer_to_server")
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="loss", max_trials=1)
    for name in ("ongoing_trials", "tuner_ids", "_retry_queue", "end_order", "max_consecutive_failed_trials"):
        assert hasattr(oracle, name), f"keras-tuner {keras_tuner.__version__}: Oracle.{name} is gone"
