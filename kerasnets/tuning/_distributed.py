"""Searches on several processes, with Keras Tuner's own distributed engine.

Keras Tuner (``keras_tuner.src.distribute``) splits a search in two: one chief
process holds the oracle (which picks every trial's hyperparameters and keeps
the results) and serves it over gRPC; any number of workers, processes or
machines sharing the tuner's folder, ask it for trials, train them, write their
checkpoints to the shared folder and report back. Nothing here schedules
trials: the oracle does, as in a one-process search.

What Keras Tuner 1.4 does, read from its source:

* A worker is a tuner whose environment has ``KERASTUNER_TUNER_ID`` (any name
  without ``"chief"``), ``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT``:
  its ``tuner.oracle`` becomes an ``OracleClient`` and each call waits up to an
  hour for the chief (``wait_for_ready``), so an absent chief looks like a hang.
* The oracle hands trials out in ``create_trial(tuner_id)`` and remembers the
  trial each worker runs (``oracle.ongoing_trials[tuner_id]``). A worker that
  dies mid-trial is never noticed: its trial stays ``RUNNING``, is neither
  failed nor given to another worker, and only a worker asking again *under
  the same id* gets it back. A chief that restarts (``overwrite=False``,
  ``oracle.reload()`` of ``oracle.json`` and the ``trial.json`` files) puts
  every ``RUNNING`` trial in its retry queue, which the next workers to ask
  take first; finished trials are kept and never run again.
* The chief's own loop (``oracle_chief.start_server``) binds with gRPC's
  default ``SO_REUSEPORT``, so a second chief on a busy port binds it too and
  steals some of the workers; it polls every 20 seconds, and it waits for
  every worker that ever asked for a trial, so one dead worker keeps it
  waiting forever. With ``max_consecutive_failed_trials`` reached, the
  oracle's ``end_trial`` raises inside the gRPC call: the worker dies with an
  RPC error and the chief waits for its trial forever.

`OracleServer` serves the oracle with Keras Tuner's own ``OracleServicer``
and keeps the engine, but binds exactly the address it is given (no
``SO_REUSEPORT``: a busy port is an error), checks for the end twice a second,
records which worker ran each trial (``workers.json`` in the tuner's folder),
applies the consecutive-failure limit itself (the search stops handing out
trials instead of failing an RPC), and `OracleServer.release` does for a
worker known to be dead what ``oracle.reload()`` does for every worker: its
trial goes to the retry queue, for the next worker to ask. `fetch_space`
reaches a chief with a deadline, and `worker_environment` sets the variables
of a worker with a bounded wait for the chief at each call.

The oracle's gRPC port has no authentication and no encryption: anything that
reaches it can read the search and submit results. Bind it to an address of a
trusted network (``127.0.0.1`` on one machine), never to every interface.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import queue
import socket
import threading
import time

import keras_tuner

from kerasnets._validate import check_host_port, fail
from kerasnets.files import write_json

__all__ = [
    "WORKERS_FILE",
    "parse_address",
    "OracleServer",
    "fetch_space",
    "space_differences",
    "worker_environment",
    "chief_environment",
    "read_workers",
    "split_devices",
]

# In the tuner's project folder: {trial_id: [the workers it was handed to, in order]}.
WORKERS_FILE = "workers.json"

_RUNNING = keras_tuner.engine.trial.TrialStatus.RUNNING
_FAILED = keras_tuner.engine.trial.TrialStatus.FAILED
_STOPPED = keras_tuner.engine.trial.TrialStatus.STOPPED


def _engine():
    """Keras Tuner's distributed modules (not part of its public API; imported late, as
    keras-tuner itself does, because they load gRPC and protobuf)."""
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief, oracle_client

    return protos, oracle_chief, oracle_client


def parse_address(name: str, value, *, allow_any_port: bool = False) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``; ``[::1]:PORT`` for IPv6.

    ``allow_any_port`` accepts port 0 (the system picks a free one).
    """
    check_host_port(name, value)
    host, _, port = value.rpartition(":")
    port = int(port)
    low = 0 if allow_any_port else 1
    if not low <= port <= 65535:
        fail(name, f"HOST:PORT with a port from {low} to 65535", value)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def _grpc_address(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_bindable(host, port, received):
    """Raises ValueError unless a listening socket can bind ``host:port`` (without SO_REUSEPORT)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ValueError(f"Cannot resolve the host {host!r} ({error.strerror}). Received: {received}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC; a listener still blocks it
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                reason = (f"port {port} of {host} is in use (another search's oracle or another "
                          "program): choose another port")
            elif error.errno == errno.EADDRNOTAVAIL:
                reason = (f"{host} is not an address of this machine: the chief listens on one of its "
                          "own addresses, the one workers reach it at")
            else:
                reason = f"cannot listen on {host}:{port} ({error.strerror})"
            raise ValueError(f"The oracle cannot start: {reason}. Received: {received}") from None


def _record_workers(path, workers):
    write_json(path, workers, indent=1, sort_keys=True)


def read_workers(project_dir) -> dict:
    """``{trial_id: [worker, ...]}`` of a distributed search (``{}`` for a one-process one)."""
    try:
        with open(os.path.join(os.fspath(project_dir), WORKERS_FILE), encoding="utf-8") as f:
            workers = json.load(f)
    except (OSError, ValueError):
        return {}
    return workers if isinstance(workers, dict) else {}


@keras_tuner.synchronized
def _release(oracle, tuner_id):
    """What ``Oracle.reload`` does to every running trial, for one worker: its trial goes to the
    retry queue (handed out first), and the oracle stops waiting for that worker."""
    trial = oracle.ongoing_trials.pop(tuner_id, None)
    oracle.tuner_ids.discard(tuner_id)
    if trial is None:
        return None
    oracle._retry_queue.append(trial.trial_id)
    oracle.save()
    return trial.trial_id


@keras_tuner.synchronized
def _state(oracle):
    """``(ongoing {tuner_id: trial_id}, tuner ids, retry queue)``, read under the oracle's lock."""
    ongoing = {tuner_id: trial.trial_id for tuner_id, trial in oracle.ongoing_trials.items()}
    return ongoing, set(oracle.tuner_ids), list(oracle._retry_queue)


def _consecutive_failures(oracle):
    count = 0
    for trial_id in oracle.end_order:
        count = count + 1 if oracle.trials[trial_id].status == _FAILED else 0
    return count


class OracleServer:
    """Serves a tuner's oracle over gRPC at ``host:port``, for workers to run its trials.

    The address is bound at once (before any data is loaded), exactly as given:
    a port in use or an address of another machine raises ValueError. Port 0
    picks a free port (`port` holds it).

    Example:

    >>> server = OracleServer("127.0.0.1", 0)
    >>> server.start(tuner)            # tuner: a chief's tuner (no KERASTUNER_ORACLE_IP set)
    >>> server.serve()                 # until every trial is done and every worker has left
    >>> server.stop()
    """

    def __init__(self, host: str, port: int, *, received: str | None = None):
        received = received or f"oracle={_grpc_address(host, port)!r}"
        if port:
            _check_bindable(host, port, received)
        import grpc
        from concurrent import futures

        protos, oracle_chief, _ = _engine()
        self.host = host
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=1),  # as Keras Tuner: one call at a time
            options=[("grpc.so_reuseport", 0)],
        )
        self._servicer = _servicer(self, oracle_chief.OracleServicer)
        protos.get_service_grpc().add_OracleServicer_to_server(self._servicer, self._server)
        try:
            self.port = self._server.add_insecure_port(_grpc_address(host, port))
        except RuntimeError:
            raise ValueError(f"The oracle cannot start: gRPC cannot bind {_grpc_address(host, port)} "
                             f"(in use, or not an address of this machine). Received: {received}") from None
        self.address = _grpc_address(host, self.port)
        self.tuner = None
        self.workers = {}
        self.stopped = None
        self.ended = queue.Queue()  # (trial, worker) of each trial that ends, for the caller to print
        self._failure_limit = None
        self._lock = threading.Lock()

    @property
    def oracle(self):
        return self.tuner.oracle

    def start(self, tuner):
        """Starts serving ``tuner``'s oracle (saved first, as Keras Tuner's chief does)."""
        self.tuner = tuner
        oracle = tuner.oracle
        # The limit is applied after each trial (`_trial_ended`), not inside the oracle's
        # end_trial, whose exception would fail the worker's RPC and strand its trial.
        self._failure_limit = oracle.max_consecutive_failed_trials
        oracle.max_consecutive_failed_trials = None
        oracle.verbose = 0  # the caller prints one line per trial, not keras-tuner's display
        self.workers = read_workers(tuner.project_dir)
        tuner.save()
        self._servicer.oracle = oracle
        self._server.start()
        return self

    def stop(self, grace: float = 1.0):
        self._server.stop(grace).wait()

    # -- called from the gRPC thread ----------------------------------------------------

    def _handed_out(self, tuner_id, trial_id):
        with self._lock:
            history = self.workers.setdefault(trial_id, [])
            if not history or history[-1] != tuner_id:
                history.append(tuner_id)
                _record_workers(os.path.join(self.tuner.project_dir, WORKERS_FILE), self.workers)

    def _trial_ended(self, trial_id, tuner_id):
        oracle = self.oracle
        trial = oracle.trials[trial_id]
        limit = self._failure_limit
        if limit and self.stopped is None and _consecutive_failures(oracle) >= limit:
            # Keras Tuner's own stop: no trial beyond those that exist.
            self.stopped = f"Number of consecutive failures exceeded the limit of {limit}."
            oracle.max_trials = len(oracle.trials)
        self.ended.put((trial, tuner_id))

    # -- the state of the search -----------------------------------------------------------

    def state(self):
        """``(ongoing {worker: trial_id}, workers the oracle waits for, retry queue)``."""
        return _state(self.oracle)

    def all_handed_out(self) -> bool:
        """True once a worker was told that there are no more trials."""
        return self._servicer.stop_triggered

    def has_work(self) -> bool:
        """Whether trials remain to be run: to hand out, waiting for a retry, or running."""
        ongoing, _, retry = self.state()
        remaining = self.oracle.remaining_trials()
        return bool(ongoing or retry or remaining is None or remaining > 0)

    def finished(self) -> bool:
        """Every trial is done and every worker that asked for one has been told to stop."""
        ongoing, waiting, retry = self.state()
        return self._servicer.stop_triggered and not ongoing and not waiting and not retry

    def release(self, tuner_id):
        """A worker known to be dead: its trial goes back to the oracle's retry queue, to be
        handed to the next worker that asks (as when the chief restarts), and the oracle
        stops waiting for that worker. Returns the trial id, or None."""
        return _release(self.oracle, tuner_id)

    def serve(self, *, poll: float = 0.5, check=None):
        """Blocks until `finished`; calls ``check()`` (may raise to stop) at every poll."""
        while not self.finished():
            if check is not None:
                check()
            time.sleep(poll)


def _servicer(server, base):
    """Keras Tuner's ``OracleServicer`` (``base``), telling ``server`` which worker got and ended
    each trial. Made here, not at import, because Keras Tuner's module loads gRPC."""

    class Servicer(base):
        def __init__(self):
            super().__init__(None)

        def CreateTrial(self, request, context):
            response = super().CreateTrial(request, context)
            trial = self.oracle.ongoing_trials.get(request.tuner_id)
            if trial is not None:
                server._handed_out(request.tuner_id, trial.trial_id)
            return response

        def EndTrial(self, request, context):
            trial_id = request.trial.trial_id
            ongoing = _state(self.oracle)[0]
            worker = next((t for t, running in ongoing.items() if running == trial_id), "")
            response = super().EndTrial(request, context)
            server._trial_ended(trial_id, worker)
            return response

    return Servicer()


def fetch_space(host: str, port: int, *, timeout: float, received: str):
    """The search space the chief at ``host:port`` serves (a `keras_tuner.HyperParameters`).

    Waits at most ``timeout`` seconds for the chief to answer; then raises
    ValueError, instead of Keras Tuner's hour-long wait.
    """
    import grpc

    protos, _, _ = _engine()
    channel = grpc.insecure_channel(_grpc_address(host, port))
    try:
        stub = protos.get_service_grpc().OracleStub(channel)
        response = stub.GetSpace(protos.get_service().GetSpaceRequest(), wait_for_ready=True, timeout=timeout)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise ValueError(
                f"No oracle answered at {_grpc_address(host, port)} within {timeout:g} s: start the chief "
                "first (kerasnets tune ... --role chief --oracle HOST:PORT), and check the address and "
                f"that the port is reachable from here. Received: {received}"
            ) from None
        raise ValueError(f"The oracle at {_grpc_address(host, port)} failed: {error.details()}. "
                         f"Received: {received}") from None
    finally:
        channel.close()
    return keras_tuner.HyperParameters.from_proto(response.hyperparameters)


def _space_configs(hyperparameters):
    configs = {}
    for hp in hyperparameters.space:
        config = hp.get_config()
        configs[config["name"]] = json.loads(json.dumps(config, sort_keys=True, default=str))
    return configs


def space_differences(local, remote) -> list[str]:
    """The hyperparameters that differ between two spaces, as ``"name: local -> remote"``."""
    mine, theirs = _space_configs(local), _space_configs(remote)
    differences = []
    for name in list(mine) + [n for n in theirs if n not in mine]:
        if mine.get(name) != theirs.get(name):
            def text(config):
                if config is None:
                    return "absent"
                return ", ".join(f"{k}={v}" for k, v in config.items() if k != "name" and v is not None)

            differences.append(f"{name}: {text(mine.get(name))} here, {text(theirs.get(name))} on the chief")
    return differences


@contextlib.contextmanager
def _environment(values):
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def chief_environment():
    """The tuner built inside the block is a chief's (``KERASTUNER_TUNER_ID=chief``): it keeps
    its state in ``chief.json``, not in the ``tuner0.json`` of the worker of that name."""
    return _environment({"KERASTUNER_TUNER_ID": "chief"})


@contextlib.contextmanager
def worker_environment(host: str, port: int, worker_id: str, *, timeout: float):
    """Makes the tuners built inside the block Keras Tuner workers of the chief at ``host:port``.

    Sets ``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT``
    (Keras Tuner reads them while the search runs), and bounds each call to the chief
    to ``timeout`` seconds (Keras Tuner waits an hour): a chief that restarts within
    that time is found again; one gone longer stops the worker with an RPC error.
    Everything is restored on exit.
    """
    _, _, oracle_client = _engine()
    timeout_before = oracle_client.TIMEOUT
    oracle_client.TIMEOUT = timeout
    try:
        with _environment({"KERASTUNER_TUNER_ID": worker_id,
                           "KERASTUNER_ORACLE_IP": host if ":" not in host else f"[{host}]",
                           "KERASTUNER_ORACLE_PORT": str(port)}):
            yield
    finally:
        oracle_client.TIMEOUT = timeout_before


def split_devices(workers: int, devices) -> list[list]:
    """``devices`` split among ``workers``: contiguous groups, as even as can be.

    With fewer devices than workers every worker gets one, in turn (several
    workers then share a device).

    >>> split_devices(2, [0, 1, 2, 3])
    [[0, 1], [2, 3]]
    >>> split_devices(3, ["0"])
    [['0'], ['0'], ['0']]
    """
    devices = list(devices)
    if not devices:
        return [[] for _ in range(workers)]
    if workers >= len(devices):
        return [[devices[k % len(devices)]] for k in range(workers)]
    size, extra = divmod(len(devices), workers)
    groups, start = [], 0
    for k in range(workers):
        end = start + size + (1 if k < extra else 0)
        groups.append(devices[start:end])
        start = end
    return groups
