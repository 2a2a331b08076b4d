"""The JAX and PyTorch side of a run: devices, data parallelism, several processes.

`kerasnets.training.setup_hardware` uses `tf.distribute` under the TensorFlow
backend. Under the other two it uses what the backend has:

* **JAX**: `keras.distribution.DataParallel` over the devices (``"auto"`` when
  there are several, ``"mirrored"`` always; ``"tpu"`` on TPU devices). The
  variables are replicated and the batch is split across the devices inside one
  jitted SPMD program, so there is one copy of every variable: BatchNorm's
  moving statistics are computed over the whole global batch and cannot drift
  apart (`SyncReplicaStatistics` has nothing to do).
* **PyTorch**: one device (a GPU when torch sees one, else the CPU). Keras's
  torch backend has no data parallelism that `model.fit` uses, so
  ``"mirrored"`` and ``"tpu"`` are errors rather than a banner that claims
  replicas the run does not use.

Several processes (hosts, or one process per GPU) train one model with JAX's
multi-controller runtime: call `initialize_processes` first in every process
(``kerasnets train ... --num-processes N --process-id I --coordinator HOST:PORT``
does), then build and train as usual. `jax.devices()` then lists every
process's devices, DataParallel spans them all, and Keras gives each process its
share of every global batch of a `tf.data` input. Every process must run the
same program on the same data in the same order, hence the same seed
(`shared_seed`), full batches only (`load_options`) and a repeated training
input with a fixed number of steps (`fit_input`). Only process 0 writes the run
folder; the others work in a private scratch folder that starts from a copy of
the run folder's resume state (`process_folder`), so a restart after a kill of
any process resumes everywhere from the same epoch.

Why not `tf.distribute.MultiWorkerMirroredStrategy`: `model.fit` fails under it
in Keras 3 (keras-team/keras#20585, ``Attempt to convert a value
(PerReplica...)``), reproduced with Keras 3.15.1.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile

import keras

from kerasnets._validate import check_host_port, check_int, fail
from kerasnets._version import backend_versions
from kerasnets.files import MANIFEST_FILE

__all__ = [
    "BackendStrategy",
    "backend",
    "backend_versions",
    "initialize_processes",
    "process_count",
    "process_index",
    "is_chief",
    "shared_seed",
    "process_folder",
    "load_options",
    "fit_input",
    "safe_export",
]


def backend() -> str:
    return keras.backend.backend()


class BackendStrategy:
    """The distribution of a JAX or PyTorch run, with the two members the run code uses.

    ``num_replicas_in_sync`` (the devices the batch is split across) and
    ``scope()``, as a `tf.distribute.Strategy` has. ``kind`` is
    ``"data_parallel"`` (JAX, `keras.distribution.DataParallel`, set as the global
    distribution so that ``fit``, ``evaluate`` and ``predict`` use it) or
    ``"default"`` (one device).
    """

    def __init__(self, kind, devices, distribution=None, device_type="CPU"):
        self.kind = kind
        self.devices = list(devices)
        self.distribution = distribution
        self.device_type = device_type

    @property
    def num_replicas_in_sync(self) -> int:
        return len(self.devices) if self.distribution is not None else 1

    def scope(self):
        if self.distribution is None:
            return contextlib.nullcontext()
        return self.distribution.scope()

    def __repr__(self):
        return f"BackendStrategy({self.kind!r}, {self.num_replicas_in_sync} x {self.device_type})"


_OURS = []  # the DataParallel instances this module set as Keras's global distribution


def _set_global(distribution):
    current = keras.distribution.distribution()
    if current is not None and not any(current is d for d in _OURS):
        raise ValueError(
            f"A keras.distribution is already set ({current!r}); kerasnets sets its own for "
            f"--strategy. Unset it, or pass strategy='default'. Received: distribution={current!r}"
        )
    if distribution is not None:
        _OURS.append(distribution)
    keras.distribution.set_distribution(distribution)


def _jax_device_type(devices) -> str:
    platform = devices[0].platform.lower() if devices else "cpu"
    return {"cpu": "CPU", "tpu": "TPU"}.get(platform, "GPU")


def _strategy_error(name, why):
    return ValueError(f"{why} Received: strategy={name!r} (KERAS_BACKEND={backend()})")


def default_backend_strategy() -> BackendStrategy:
    """One device of the backend, changing nothing."""
    if backend() == "jax":
        import jax

        return BackendStrategy("default", jax.devices()[:1], None, _jax_device_type(jax.devices()))
    return choose_backend_strategy("default")


def choose_backend_strategy(name: str) -> BackendStrategy:
    """The `BackendStrategy` for ``name`` under the JAX or PyTorch backend."""
    if backend() == "jax":
        import jax

        devices = jax.devices()  # every process's devices in a multi-process run
        device_type = _jax_device_type(devices)
        if name == "tpu" and device_type != "TPU":
            raise _strategy_error(name, "strategy='tpu' but JAX sees no TPU.")
        if name == "default" and process_count() > 1:
            raise _strategy_error(
                name, f"A run of {process_count()} processes is data-parallel: use --strategy auto "
                      "or mirrored.")
        if name == "mirrored" or (name in ("auto", "tpu") and (len(devices) > 1 or process_count() > 1)):
            distribution = keras.distribution.DataParallel(devices=devices)
            _set_global(distribution)
            return BackendStrategy("data_parallel", devices, distribution, device_type)
        _set_global(None)
        return BackendStrategy("default", devices[:1], None, device_type)
    if backend() == "torch":
        import torch

        if name in ("mirrored", "tpu"):
            raise _strategy_error(
                name, f"Under the torch backend kerasnets trains on one device: strategy '{name}' "
                      "needs the TensorFlow or the JAX backend (KERAS_BACKEND=tensorflow or jax).")
        device_type = "GPU" if torch.cuda.is_available() else "CPU"
        return BackendStrategy("default", [device_type], None, device_type)
    raise ValueError(f"Unsupported backend. Received: KERAS_BACKEND={backend()}")


def backend_float16_ok() -> bool:
    """Whether every GPU of this backend has tensor cores (compute capability >= 7.0)."""
    try:
        if backend() == "jax":
            import jax

            caps = [getattr(d, "compute_capability", None) for d in jax.devices()]
            return all(c is not None and tuple(int(p) for p in str(c).split(".")[:2]) >= (7, 0) for c in caps)
        import torch

        return all(torch.cuda.get_device_capability(i) >= (7, 0) for i in range(torch.cuda.device_count()))
    except Exception:  # an unknown device: no float16 by default  # noqa: BLE001
        return False


def hide_gpus_from_tensorflow():
    """Keeps tf.data (the input pipeline) off the GPUs that JAX or torch computes on.

    TensorFlow would otherwise reserve most of every GPU's memory at its first
    operation. Does nothing once TensorFlow has initialised its devices.
    """
    try:
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
    except (ImportError, RuntimeError, ValueError):
        pass


def split_jax_cpu(devices: int):
    """``devices`` logical CPU devices for JAX; before JAX's first computation."""
    import jax

    try:
        jax.config.update("jax_num_cpu_devices", devices)
    except RuntimeError:
        current = len(jax.devices("cpu"))
        if current != devices:
            raise ValueError(
                f"JAX has already initialised {current} CPU device(s); split the CPU at the start "
                f"of the process. Received: devices={devices}"
            ) from None


# -- several processes (JAX) ---------------------------------------------------------

def initialize_processes(num_processes: int, process_id: int, coordinator: str, *,
                         bind_address: str | None = None, cpu_devices: int | None = None,
                         heartbeat_timeout: int | None = None):
    """Joins this process to a multi-process JAX run; call it first, in every process.

    Args:
        num_processes: how many processes train together (one per host, or one
            per GPU).
        process_id: this process's index, 0 to ``num_processes - 1``; process 0
            hosts the coordinator and writes the run folder.
        coordinator: ``HOST:PORT`` of process 0, reachable from every process.
        bind_address: the address the coordinator listens on (process 0). JAX
            listens on every interface unless told; default: the
            ``JAX_COORDINATOR_BIND_ADDRESS`` environment variable, else JAX's
            default. Use ``127.0.0.1`` for processes on one machine.
        cpu_devices: logical CPU devices per process (for CPU-only runs and tests).
        heartbeat_timeout: seconds without a heartbeat after which JAX's coordination
            service declares a process dead and stops the others (they abort with
            ``Task N heartbeat timeout``); default: JAX's (100). A survivor waits this
            long before it stops, then the run resumes when restarted everywhere.

    On CPUs the collectives use gloo; on GPUs NCCL. JAX must not have computed
    anything yet in this process.

    Example (two hosts)::

        # host A (10.0.0.1)                     # host B
        initialize_processes(2, 0, "10.0.0.1:1234")   initialize_processes(2, 1, "10.0.0.1:1234")
        kerasnets.training.train("resnet50", "imagenette/320px", seed=0)   # the same on both
    """
    for label, value, low in (("num_processes", num_processes, 1), ("process_id", process_id, 0)):
        check_int(label, value, minimum=low)
    if process_id >= num_processes:
        fail("process_id", f"below num_processes ({num_processes})", process_id)
    port = check_host_port("coordinator", coordinator).rpartition(":")[2]
    if heartbeat_timeout is not None:
        check_int("heartbeat_timeout", heartbeat_timeout, minimum=1)
    if backend() != "jax":
        raise ValueError(
            "Training on several processes needs the JAX backend (KERAS_BACKEND=jax). "
            f"Received: KERAS_BACKEND={backend()}"
        )
    import jax

    if cpu_devices is not None:
        split_jax_cpu(cpu_devices)
    with contextlib.suppress(AttributeError, ValueError):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    bind = bind_address or os.environ.get("JAX_COORDINATOR_BIND_ADDRESS") or None
    if bind and ":" not in bind:
        bind = f"{bind}:{port}"
    timeouts = {} if heartbeat_timeout is None else {"heartbeat_timeout_seconds": int(heartbeat_timeout)}
    # JAX aborts the process (a C++ fatal error, no Python exception) when process 0
    # cannot listen or another process cannot reach it: checked first, with a message.
    _check_coordinator(coordinator, process_id, bind)
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id,
        coordinator_bind_address=bind, **timeouts,
    )


# How long a process other than 0 waits for process 0's coordinator to listen (JAX's
# own initialization timeout).
COORDINATOR_WAIT_SECONDS = 300


def _check_coordinator(coordinator, process_id, bind):
    """Raises ValueError when the coordinator cannot work: process 0 cannot listen on its
    port (in use, or an address not of this machine); another process cannot resolve the
    host or reach it within `COORDINATOR_WAIT_SECONDS`."""
    import socket
    import time

    host, _, port = coordinator.rpartition(":")
    host, port = host.strip("[]"), int(port)
    received = f"Received: coordinator={coordinator!r}"
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise ValueError(f"The coordinator's host {host} cannot be resolved ({error.strerror or error}). "
                         f"{received}") from None
    if process_id == 0:
        listen = (bind.rpartition(":")[0].strip("[]") if bind else "", port)
        try:
            dual = not listen[0] and socket.has_dualstack_ipv6()
            probe = socket.create_server(listen, family=socket.AF_INET6 if dual else socket.AF_INET,
                                         dualstack_ipv6=dual)
        except OSError as error:
            raise ValueError(
                f"Process 0 cannot listen on port {port}{' of ' + listen[0] if listen[0] else ''} for the "
                f"coordinator ({error.strerror or error}): choose a free port. {received}") from None
        probe.close()
        return
    deadline = time.monotonic() + COORDINATOR_WAIT_SECONDS
    while True:
        try:
            socket.create_connection((host, port), timeout=2).close()
            return
        except OSError as error:
            if time.monotonic() > deadline:
                raise ValueError(
                    f"Cannot reach the coordinator at {coordinator} ({error.strerror or error}) after "
                    f"{COORDINATOR_WAIT_SECONDS} s: start process 0 with the same --coordinator, and check "
                    f"that {host} is process 0's address, reachable from here. {received}") from None
            time.sleep(1)


def process_count() -> int:
    if backend() != "jax":
        return 1
    import jax

    return jax.process_count()


def process_index() -> int:
    if backend() != "jax":
        return 0
    import jax

    return jax.process_index()


def is_chief() -> bool:
    """Whether this process writes the run folder (process 0, or the only process)."""
    return process_index() == 0


def _all_gather_int(value: int):
    import numpy as np
    from jax.experimental import multihost_utils

    return [int(v) for v in np.asarray(multihost_utils.process_allgather(np.int32(value))).ravel()]


def shared_seed(seed):
    """``seed``, the same in every process: without one, process 0's random seed.

    Every process must initialise the same weights and read the data in the same
    order; JAX refuses different initial values (``... passed to device_put is
    not the same on each process``).
    """
    if process_count() == 1:
        return seed
    import numpy as np

    local = int(np.random.SeedSequence().generate_state(1)[0] % (2**31 - 1)) if seed is None else int(seed)
    seeds = _all_gather_int(local)
    if seed is not None and len(set(seeds)) > 1:
        raise ValueError(f"Every process must be given the same seed. Received: seeds {seeds}")
    return seeds[0]


def process_folder(output, overwrite, export, *, backup="backup", run_file="run.json",
                   checkpoints="checkpoints"):
    """``(folder, overwrite, export)`` for this process: the run folder on process 0.

    Any other process gets a private scratch folder (removed at exit) holding a
    copy of the run folder's ``run.json``, resume state and best checkpoint, so
    that it resumes from the epoch process 0 resumes from, takes the same
    decisions (saving a model gathers the weights: a collective every process
    must join) and never writes the run folder; it does not export. Every process must see the run folder to resume (a shared
    file system, or a copy): a process whose resume epoch differs from process
    0's stops with an error rather than train from other weights.
    """
    if process_count() == 1 or is_chief():
        return output, overwrite, export
    scratch = tempfile.mkdtemp(prefix=f"kerasnets-process{process_index()}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    if not overwrite and os.path.isfile(os.path.join(output, run_file)):
        for name in (run_file, MANIFEST_FILE):  # the manifest makes the copy a run
            if os.path.isfile(os.path.join(output, name)):
                shutil.copy2(os.path.join(output, name), os.path.join(scratch, name))
        for folder in (backup, checkpoints):
            if os.path.isdir(os.path.join(output, folder)):
                shutil.copytree(os.path.join(output, folder), os.path.join(scratch, folder),
                                ignore=shutil.ignore_patterns(".tmp-*", ".*.partial-*"))
    return scratch, False, False


def check_resume_epoch(epoch: int):
    """Raises unless every process resumes from the same epoch (see `process_folder`)."""
    if process_count() == 1:
        return
    epochs = _all_gather_int(epoch)
    if len(set(epochs)) > 1:
        raise ValueError(
            "The processes would resume from different epochs: every process must see the run "
            "folder's backup/ (put --output on a shared file system, or copy it to every host). "
            f"Received: resume epochs per process {epochs}"
        )


def load_options() -> dict:
    """Extra `kerasnets.data.load` arguments: full batches only when there are several processes.

    Keras splits every global batch between the processes; a last, partial batch
    would give the processes different numbers of steps.
    """
    return {"drop_remainder": True} if process_count() > 1 else {}


def fit_input(split):
    """``(dataset, fit kwargs)`` for the training split: repeated, with steps, on several processes."""
    if process_count() == 1:
        return split.dataset, {}
    return split.dataset.repeat(), {"steps_per_epoch": split.steps_per_epoch}


def safe_export(export, where):
    """Runs ``export()``; on failure prints one line and returns None: training succeeded."""
    try:
        return export()
    except Exception as error:  # noqa: BLE001  (the run itself is complete)
        import sys

        message = str(error).strip().splitlines()
        print(
            f"Export failed after training ({type(error).__name__}: {message[-1] if message else ''}); "
            f"the trained model is in {where}: run `kerasnets export {where} --output DIR`.",
            file=sys.stderr, flush=True,
        )
        return None
