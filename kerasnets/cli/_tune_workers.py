"""The worker processes of ``kerasnets tune --workers N``: started, given their devices, watched.

Each worker is ``kerasnets tune`` with the chief's arguments and ``--role worker
--oracle <the chief's address> --worker-id tuner<k>``, run in a child process
whose output goes to ``<output>/logs/tuner<k>.log``. It gets its share of the
machine: GPUs through ``CUDA_VISIBLE_DEVICES`` (several workers on one GPU let
it grow its memory as needed, ``TF_FORCE_GPU_ALLOW_GROWTH``), else CPU cores
(the process's affinity, and as many TensorFlow threads). A worker dies with
the chief (``PR_SET_PDEATHSIG`` on Linux), so killing the search kills it all.

The oracle schedules; this module only keeps processes. A worker that exits
with an error or is killed is released (`kerasnets.tuning.OracleServer.release`):
its trial goes back to the oracle's queue and the other workers go on. Only
when no worker is left while trials remain is a new one started in its place
(at most N times, and only for workers that had got a trial: a worker that fails
as it starts would fail again).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys

from kerasnets.cli import UsageError, key_value, quiet_tensorflow_startup

_ENTRY = "import sys; from kerasnets.cli._tune_workers import worker_main; sys.exit(worker_main())"


def encode_arguments(args, **changes) -> str:
    """The chief's parsed arguments, with ``changes``, as JSON for a worker process.

    ``-O`` values are already Python values (`kerasnets.cli.key_value`): they travel as
    ``KEY=repr(value)`` and are read back by the same rule, since JSON would turn a tuple
    into a list (and the worker would then find its builder arguments different from the
    chief's)."""
    namespace = {k: v for k, v in vars(args).items() if k != "func"}
    namespace.update(changes)
    namespace["option"] = [f"{key}={value!r}" for key, value in namespace.get("option") or []]
    return json.dumps(namespace)


def decode_arguments(text) -> dict:
    """`encode_arguments`' JSON back as the namespace's dictionary."""
    namespace = json.loads(text)
    namespace["option"] = [key_value(item) for item in namespace.get("option") or []]
    return namespace


class WorkersGone(Exception):
    """Every worker stopped while trials remained."""


def _usable_cores():
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _ranges(numbers):
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    parts, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ",".join(parts)


def _last_line(path):
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


class LocalWorkers:
    """N worker processes of the chief's search on this machine (see the module's docstring)."""

    def __init__(self, args, server, output, gpus, record=None):
        """``record(*names)`` lists a file in the search's manifest before it is written."""
        from kerasnets.tuning import split_devices  # keras_tuner: off the `kerasnets --help` path

        self.args = args
        self.server = server
        self.output = output
        self.count = args.workers
        self.logs = os.path.join(output, "logs")
        self.kind = "gpu" if gpus else "cpu"
        pool = list(gpus) if gpus else _usable_cores()
        self.shared = self.count > len(pool)
        self.groups = split_devices(self.count, pool)
        self.running = {}  # worker id -> (process, device group)
        self.names = set()
        self.stopped = []  # (worker id, device group, how), in the order they stopped
        self.replacements = 0
        self.record = record or (lambda *names: None)

    # -- starting -------------------------------------------------------------------

    def start(self):
        os.makedirs(self.logs, exist_ok=True)
        if self.shared:
            what = "GPU" if self.kind == "gpu" else "CPU core"
            print(f"[tune] {self.count} workers on {len(set(map(str, sum(self.groups, []))))} {what}(s): "
                  f"some share a {what}", flush=True)
        for k, group in enumerate(self.groups):
            self._spawn(f"tuner{k}", group)

    def _describe(self, group):
        if self.kind == "gpu":
            return f"GPU {','.join(map(str, group))}"
        return f"CPU core{'s' if len(group) > 1 else ''} {_ranges(group)}"

    def _environment(self, group):
        env = dict(os.environ)
        if self.kind == "gpu":
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, group))
            if self.shared:
                env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        else:
            threads = len(group)
            if self.shared:  # a core shared by several workers: one thread each
                threads = 1
            given = env.get("TF_NUM_INTRAOP_THREADS")
            if given and given.isdigit() and 0 < int(given) < threads:
                threads = int(given)
            env["TF_NUM_INTRAOP_THREADS"] = str(threads)
            env["OMP_NUM_THREADS"] = str(threads)
        return env

    def _spawn(self, worker_id, group):
        arguments = encode_arguments(
            self.args, role="worker", oracle=self.server.address, worker_id=worker_id, workers=None,
            overwrite=False, output=self.output, verbose=2 if self.args.verbose is None else self.args.verbose,
            cores=group if self.kind == "cpu" else None)
        log_path = os.path.join(self.logs, f"{worker_id}.log")
        self.record(f"logs/{worker_id}.log")
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", _ENTRY, str(os.getpid()), arguments],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self._environment(group),
            )
        self.running[worker_id] = (process, group)
        self.names.add(worker_id)
        print(f"[tune] worker {worker_id}: pid {process.pid}, {self._describe(group)}, log {log_path}",
              flush=True)

    # -- watching ---------------------------------------------------------------------

    def check(self):
        """Releases the workers that died; starts one anew when none is left and trials remain."""
        for worker_id, (process, group) in list(self.running.items()):
            code = process.poll()
            if code is None:
                continue
            del self.running[worker_id]
            if code == 0:
                continue
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
            log_path = os.path.join(self.logs, f"{worker_id}.log")
            if code > 0 and _last_line(log_path):
                how += f": {_last_line(log_path)}"
            trial = self.server.release(worker_id)
            given = (f"its trial {trial} goes back to the oracle's queue for the next worker that asks"
                     if trial is not None else "it held no trial")
            print(f"[tune] worker {worker_id} stopped ({how}); {given}; log {log_path}", flush=True)
            self.stopped.append((worker_id, group, how))
        if self.running or not self.stopped or not self.server.has_work():
            return
        if self.server.state()[1] - self.names:  # workers of other machines are still at it
            return
        worker_id, group, how = self.stopped[-1]
        had_trials = {w for history in self.server.workers.values() for w in history}
        if self.replacements < self.count and any(w in had_trials for w, _, _ in self.stopped):
            self.replacements += 1
            new_id = f"tuner{self.count + self.replacements - 1}"
            print(f"[tune] no worker left while trials remain: starting {new_id} in {worker_id}'s place",
                  flush=True)
            self._spawn(new_id, group)
            return
        raise WorkersGone(
            f"every worker stopped before the search ended; the last, {worker_id} ({how}); see "
            f"{os.path.join(self.logs, worker_id + '.log')}. Run the same command again to resume.")

    def stop(self, timeout: float = 60.0):
        """Waits for the workers that are still there (they exit once the oracle stops them);
        terminates those that do not within ``timeout`` seconds."""
        for worker_id, (process, _) in list(self.running.items()):
            try:
                process.wait(timeout=timeout if self.server.finished() else 0.1)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.running = {}


def _die_with(parent: int):
    """This process gets SIGKILL when ``parent`` (the chief) dies, however it dies (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the chief died before that
        os._exit(1)


def worker_main() -> int:
    """The entry of a worker process: ``python -c ... <chief pid> <the arguments as JSON>``."""
    parent, namespace = int(sys.argv[1]), decode_arguments(sys.argv[2])
    _die_with(parent)
    cores = namespace.pop("cores", None)
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
    from kerasnets.cli.tune import run_tune  # a cycle: kerasnets.cli.tune imports this module

    quiet_tensorflow_startup()
    try:
        return int(run_tune(argparse.Namespace(**namespace)) or 0)
    except UsageError as error:
        print(f"kerasnets tune: error: {error}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130
