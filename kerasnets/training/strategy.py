"""The hardware choices of a run: distribution strategy, dtype policy, XLA.

`setup_hardware` makes the three choices together and says what it chose::

    hw = kerasnets.training.setup_hardware()          # all "auto"
    with hw.strategy.scope():
        model = kerasnets.ResNet50(weights=None)      # built under hw.precision
        kerasnets.training.compile_model(model, jit_compile=hw.jit_compile, ...)

What ``"auto"`` chooses:

* **strategy**: a `tf.distribute.TPUStrategy` when a TPU is reachable;
  `tf.distribute.MirroredStrategy` over every GPU when there is at least one;
  otherwise TensorFlow's default strategy (one device). ``"mirrored"`` on a
  machine without GPUs mirrors over the logical CPU devices (the tests do so).
* **precision**: ``mixed_bfloat16`` on TPUs; ``mixed_float16`` on GPUs of
  compute capability 7.0 or more (tensor cores), ``float32`` on older GPUs; on
  CPUs ``mixed_bfloat16`` when the CPU computes bfloat16 natively (AVX-512
  BF16 or AMX, where it is faster), ``float32`` otherwise. Every model's classifier computes in
  float32, so outputs and losses stay float32.
* **XLA** (``jit_compile``): off on CPUs (slower there, and Keras itself turns it off on
  CPU-only machines) and off under a `tf.distribute` strategy other than TPU
  (Keras disables it there: keras-team/keras#19005); Keras's own ``"auto"``
  (on where the model supports it) with the default strategy on a GPU. A TPU
  always compiles with XLA.

Under the JAX and PyTorch backends (`kerasnets.training.distribution`):

* **strategy**: JAX: `keras.distribution.DataParallel` over every device
  (``"auto"`` when there are several or the run spans processes,
  ``"mirrored"`` always, ``"tpu"`` on TPUs), one device for ``"default"``.
  PyTorch: one device; ``"mirrored"`` and ``"tpu"`` are errors.
* **precision**: ``mixed_bfloat16`` on TPUs, ``mixed_float16`` on GPUs with
  tensor cores, ``float32`` elsewhere (bfloat16 on CPUs was measured under
  TensorFlow only).
* **XLA**: JAX always jit-compiles by default (eager JAX is slower);
  PyTorch runs eagerly by default (``"on"`` is ``torch.compile``, not measured).

The measurements behind these defaults are in benchmarks/README.md ("Measurements behind
the code's defaults").
"""

from __future__ import annotations

import dataclasses
import functools
import os

import keras

from kerasnets._validate import check_choice, check_int
from kerasnets._version import backend_versions
from kerasnets.training.distribution import (
    BackendStrategy,
    backend_float16_ok,
    choose_backend_strategy,
    default_backend_strategy,
    hide_gpus_from_tensorflow,
    process_count,
    split_jax_cpu,
)

__all__ = [
    "Hardware",
    "choose_strategy",
    "choose_precision",
    "choose_jit_compile",
    "setup_hardware",
    "cpu_supports_bfloat16",
    "explain_precision",
    "split_cpu",
    "STRATEGIES",
    "PRECISIONS",
    "XLA_CHOICES",
]

STRATEGIES = ("auto", "tpu", "mirrored", "default")


def _backend():
    return keras.backend.backend()


def _is_tf_strategy(strategy):
    return not isinstance(strategy, BackendStrategy)
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
XLA_CHOICES = ("auto", "on", "off")


def _tf():
    import tensorflow as tf

    return tf


@functools.lru_cache(maxsize=None)
def _tpu_resolver():
    """A TPU cluster resolver when a TPU is reachable (Colab, Cloud TPU VM), else None."""
    tf = _tf()
    if not (os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME")
            or os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio/0")):
        return None  # no sign of a TPU: skip the resolver's slow network probing
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return resolver
    except (ValueError, RuntimeError, tf.errors.OpError):
        return None


def split_cpu(devices: int):
    """Splits the CPU into ``devices`` logical devices, so that ``"mirrored"`` has replicas.

    For trying and testing `tf.distribute.MirroredStrategy` on a machine without
    GPUs. It must run before TensorFlow initialises its devices (before the first
    model, tensor or strategy is created), hence at the start of a process.

    Raises:
        ValueError: ``devices`` is not a positive integer, or TensorFlow already
            initialised its devices with another number.
    """
    check_int("devices", devices)
    if _backend() == "jax":
        return split_jax_cpu(devices)
    if _backend() != "tensorflow":
        raise ValueError(
            f"Logical CPU devices are for the TensorFlow and JAX backends; the {_backend()} backend "
            f"trains on one device. Received: devices={devices}"
        )
    tf = _tf()
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(devices)]
        )
    except RuntimeError:
        current = len(tf.config.list_logical_devices("CPU"))
        if current != devices:
            raise ValueError(
                f"TensorFlow has already initialised {current} CPU device(s); split the CPU "
                f"at the start of the process. Received: devices={devices}"
            ) from None


def _default_strategy():
    if _backend() == "tensorflow":
        return _tf().distribute.get_strategy()
    return default_backend_strategy()


def _gpus():
    return _tf().config.list_logical_devices("GPU")


def choose_strategy(name: str = "auto"):
    """A `tf.distribute.Strategy` for ``name`` (``auto``, ``tpu``, ``mirrored``, ``default``).

    Build and compile the model inside ``strategy.scope()``; ``fit`` then splits
    each global batch between ``strategy.num_replicas_in_sync`` replicas.

    Raises:
        ValueError: for an unknown name, or ``"tpu"`` without a TPU.
    """
    check_choice("strategy", name, STRATEGIES)
    if _backend() != "tensorflow":
        return choose_backend_strategy(name)
    tf = _tf()
    if name in ("auto", "tpu"):
        resolver = _tpu_resolver()
        if resolver is not None:
            return tf.distribute.TPUStrategy(resolver)
        if name == "tpu":
            raise ValueError("strategy='tpu' but no TPU was found. Received: strategy='tpu'")
    if name == "mirrored" or (name == "auto" and _gpus()):
        devices = [d.name for d in _gpus()] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def strategy_kind(strategy) -> str:
    """``"tpu"``, ``"mirrored"`` or ``"default"`` (``"data_parallel"`` under JAX)."""
    if not _is_tf_strategy(strategy):
        return strategy.kind
    tf = _tf()
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    return "default"


def _strategy_devices(strategy):
    tf = _tf()
    try:
        devices = strategy.extended.worker_devices
    except (AttributeError, RuntimeError):
        devices = None
    if devices:
        return [tf.DeviceSpec.from_string(d) for d in devices]
    return []


def _device_type(strategy) -> str:
    if not _is_tf_strategy(strategy):
        return strategy.device_type
    kind = strategy_kind(strategy)
    if kind == "tpu":
        return "TPU"
    if kind == "default":
        return "GPU" if _gpus() else "CPU"
    types = {d.device_type for d in _strategy_devices(strategy) if d.device_type}
    return "GPU" if "GPU" in types else "CPU"


@functools.lru_cache(maxsize=None)
def cpu_supports_bfloat16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX-512 BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def _gpus_support_float16() -> bool:
    if _backend() != "tensorflow":
        return backend_float16_ok()
    tf = _tf()
    physical = tf.config.list_physical_devices("GPU")
    if not physical:
        return False
    for gpu in physical:
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability")
        if capability is None or tuple(capability) < (7, 0):
            return False
    return True


def choose_precision(precision: str = "auto", strategy=None) -> str:
    """The Keras dtype policy name for ``precision`` on the strategy's devices.

    See the module docstring for what ``"auto"`` picks.
    """
    check_choice("precision", precision, PRECISIONS)
    if precision != "auto":
        return precision
    device = _device_type(strategy or _default_strategy())
    if device == "TPU":
        return "mixed_bfloat16"
    if device == "GPU":
        return "mixed_float16" if _gpus_support_float16() else "float32"
    if _backend() != "tensorflow":
        return "float32"
    return "mixed_bfloat16" if cpu_supports_bfloat16() else "float32"


def explain_precision(precision: str = "auto", strategy=None) -> str:
    """Why ``choose_precision(precision, strategy)`` chose what it chose, in a few words.

    >>> explain_precision("float32")
    'asked for'
    """
    if precision not in PRECISIONS:
        choose_precision(precision)  # raises the standard error
    if precision != "auto":
        return "asked for"
    device = _device_type(strategy or _default_strategy())
    if device == "TPU":
        return "auto: TPUs compute in bfloat16"
    if device == "GPU":
        if _gpus_support_float16():
            return "auto: GPUs of compute capability 7.0 or more have tensor cores"
        return "auto: GPUs below compute capability 7.0 have no fast float16"
    if _backend() != "tensorflow":
        return f"auto: bfloat16 on CPUs is measured under TensorFlow only, not {_backend()}"
    if cpu_supports_bfloat16():
        return "auto: this CPU computes bfloat16 natively, with AVX-512 BF16 or AMX"
    return "auto: this CPU has neither AVX-512 BF16 nor AMX, so bfloat16 would be emulated and slower"


def choose_jit_compile(xla: str | bool = "auto", strategy=None):
    """The ``jit_compile`` argument of ``compile`` for ``xla`` (``auto``, ``on``, ``off``)."""
    if isinstance(xla, bool):
        return xla
    check_choice("xla", xla, XLA_CHOICES)
    if xla != "auto":
        return xla == "on"
    if _backend() == "jax":
        return True  # eager JAX is several times slower (see the module docstring)
    if _backend() == "torch":
        return False  # torch.compile compiles for minutes and was not measured faster here
    strategy = strategy or _default_strategy()
    kind = strategy_kind(strategy)
    if kind == "tpu":
        return True
    if _device_type(strategy) == "CPU" or kind == "mirrored":
        return False
    return "auto"


@dataclasses.dataclass
class Hardware:
    """The hardware choices of a run (see `setup_hardware`)."""

    strategy: object
    precision: str
    jit_compile: object
    device_type: str
    precision_reason: str = ""

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    @property
    def strategy_name(self) -> str:
        return strategy_kind(self.strategy)

    def describe(self) -> str:
        xla = {True: "on", False: "off", "auto": "auto (Keras: where the model supports it)"}[self.jit_compile]
        reason = f" ({self.precision_reason})" if self.precision_reason else ""
        return (
            f"{self.strategy_name} strategy, {self.replicas} x {self.device_type}, "
            f"precision {self.precision}{reason}, XLA {xla}"
        )

    def to_dict(self) -> dict:
        return {
            "backend": keras.backend.backend(),
            "backend_version": next(iter(backend_versions().values()), None),
            "processes": process_count(),
            "strategy": self.strategy_name,
            "replicas": self.replicas,
            "device_type": self.device_type,
            "precision": self.precision,
            "jit_compile": self.jit_compile,
        }


def setup_hardware(strategy="auto", precision="auto", xla="auto", *, set_policy=True) -> Hardware:
    """Chooses the strategy, the dtype policy and XLA; sets the global dtype policy.

    Args:
        strategy: ``"auto"``, ``"tpu"``, ``"mirrored"``, ``"default"``, or a
            `tf.distribute.Strategy`.
        precision: ``"auto"``, ``"float32"``, ``"mixed_float16"`` or ``"mixed_bfloat16"``.
        xla: ``"auto"``, ``"on"`` or ``"off"``.
        set_policy: set `keras.mixed_precision.set_global_policy` (models built
            afterwards use it).

    Example:

    >>> hw = setup_hardware(precision="float32")
    >>> hw.describe()  # doctest: +SKIP
    'default strategy, 1 x CPU, precision float32, XLA off'
    """
    check_choice("precision", precision, PRECISIONS)
    if not isinstance(xla, bool):
        check_choice("xla", xla, XLA_CHOICES)
    if isinstance(strategy, str):
        strategy = choose_strategy(strategy)
    if _backend() != "tensorflow":
        hide_gpus_from_tensorflow()  # tf.data only: the GPUs are the backend's
    policy = choose_precision(precision, strategy)
    if set_policy:
        keras.mixed_precision.set_global_policy(policy)
    return Hardware(
        strategy, policy, choose_jit_compile(xla, strategy), _device_type(strategy),
        explain_precision(precision, strategy),
    )
