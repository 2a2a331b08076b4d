"""Training and inference step times of ResNet-20 and ResNet-50 under each Keras backend.

Keras takes one backend per process, so this driver starts one worker process
per backend (TensorFlow, JAX with jit, JAX eager, PyTorch: those installed), has
each build and warm up its models once, then asks them for timed rounds in
turn, alternating, so that a busy machine slows them alike. It reports each
configuration's median step time and its ratio to TensorFlow's, in wall time
and in CPU time (the worker's user+system time, all its threads).

    python benchmarks/backends.py                           # CPU: both models, every backend
    python benchmarks/backends.py --models resnet20 --rounds 5 --steps 10
    python benchmarks/backends.py --gpu                     # an accelerator: JAX only, see below
    python benchmarks/backends.py --gpu --models resnet20 --image-size 32

``--gpu`` runs in this process under the JAX backend, without TensorFlow
(``pip install jax[cuda12] keras`` and this checkout are enough): ResNet-50 (or the
first of ``--models``) at 224x224 with 1000 classes, mixed precision (``mixed_bfloat16`` on TPUs, ``mixed_float16`` on GPUs,
``--precision`` to choose), jit, synthetic data already on the device, and
prints images per second for training and inference.

Defaults on CPU: ResNet-20 (width 1) at 32x32, batch 64; ResNet-50 at width 0.25
on 64x64, batch 16 (a full ResNet-50 step takes seconds on two cores).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# label -> (KERAS_BACKEND, jit_compile)
CONFIGS = {
    "tensorflow": ("tensorflow", False),   # kerasnets' choice on CPUs (XLA off)
    "jax (jit)": ("jax", True),            # kerasnets' choice under JAX
    "jax (eager)": ("jax", False),
    "torch": ("torch", False),             # kerasnets' choice under torch
}
MODELS = {
    "resnet20": dict(size=32, batch=64, width=1.0),
    "resnet50": dict(size=64, batch=16, width=0.25),
}


# -- the worker: one backend, models built once, timed on request ----------------------

def _build(name, size, batch, width, jit, classes=10):
    import keras
    import numpy as np

    import kerasnets

    kwargs = dict(input_shape=(size, size, 3), classes=classes)
    if width != 1.0:
        kwargs["width_multiplier"] = width
    model = kerasnets.get_model(name, weights=None, **kwargs)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy",
                  jit_compile=jit)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, classes, (batch,)).astype("int32")
    return model, x, y


def _timed(fn, steps):
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def worker(jit):
    import keras

    cache = {}
    for line in sys.stdin:
        request = json.loads(line)
        key = request["model"]
        if key not in cache:
            spec = MODELS[key] if "spec" not in request else request["spec"]
            model, x, y = _build(key, spec["size"], spec["batch"], spec["width"], jit)
            train = lambda: model.train_on_batch(x, y)  # noqa: E731
            infer = lambda: keras.ops.convert_to_numpy(model.predict_on_batch(x))  # noqa: E731
            for _ in range(2):  # tracing, compilation
                train()
                infer()
            cache[key] = (train, infer)
        train, infer = cache[key]
        t_wall, t_cpu = _timed(train, request["steps"])
        i_wall, i_cpu = _timed(infer, request["steps"])
        print(json.dumps({"train": [t_wall, t_cpu], "infer": [i_wall, i_cpu]}), flush=True)


# -- the driver ------------------------------------------------------------------------------

def _available(backend):
    import importlib.util

    return importlib.util.find_spec(backend) is not None


def _start(label):
    backend, jit = CONFIGS[label]
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", "--jit", str(int(jit))],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def _ask(proc, model, steps, spec):
    proc.stdin.write(json.dumps({"model": model, "steps": steps, "spec": spec}) + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("a worker exited; run it alone to see why")
    return json.loads(line)


def run_cpu(args):
    labels = [label for label, (backend, _) in CONFIGS.items()
              if label in args.configs and _available(backend)]
    workers = {label: _start(label) for label in labels}
    results = {m: {label: {"train": [], "infer": []} for label in labels} for m in args.models}
    try:
        for model in args.models:
            spec = dict(MODELS[model])
            for label in labels:  # warm-up round, untimed
                _ask(workers[label], model, 1, spec)
            for r in range(args.rounds):
                order = labels if r % 2 == 0 else labels[::-1]
                for label in order:
                    reply = _ask(workers[label], model, args.steps, spec)
                    for kind in ("train", "infer"):
                        results[model][label][kind].append(reply[kind])
    finally:
        for proc in workers.values():
            proc.stdin.close()
            proc.wait(timeout=120)
    base = "tensorflow" if "tensorflow" in labels else labels[0]
    report = {}
    for model, per_label in results.items():
        spec = MODELS[model]
        print(f"\n{model} (width {spec['width']}, {spec['size']}x{spec['size']}, batch {spec['batch']}): "
              f"median of {args.rounds} rounds of {args.steps} steps; ratio = time / {base}'s")
        print(f"{'':14s} {'train ms':>9s} {'ratio':>6s} {'cpu ratio':>9s}   {'infer ms':>9s} {'ratio':>6s} {'cpu ratio':>9s}")
        med = {label: {kind: [statistics.median(v[i] for v in rows) for i in (0, 1)]
                       for kind, rows in kinds.items()} for label, kinds in per_label.items()}
        report[model] = med
        for label in labels:
            cells = []
            for kind in ("train", "infer"):
                wall, cpu = med[label][kind]
                cells.append(f"{wall * 1e3:9.1f} {wall / med[base][kind][0]:6.2f} {cpu / med[base][kind][1]:9.2f}")
            print(f"{label:14s} " + "   ".join(cells))
    if args.json:
        print(json.dumps(report))


def run_gpu(args):
    """ResNet-50 (or ``--models``' first) at 224 under JAX, mixed precision, jit: images per second.
    No TensorFlow needed."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    sys.path.insert(0, REPO)
    import jax
    import keras
    import numpy as np

    import kerasnets

    if keras.backend.backend() != "jax":
        raise SystemExit(f"--gpu runs under JAX. Received: KERAS_BACKEND={keras.backend.backend()}")
    devices = jax.devices()
    platform = devices[0].platform
    precision = args.precision or ("mixed_bfloat16" if platform == "tpu" else
                                   "mixed_float16" if platform == "gpu" else "float32")
    keras.mixed_precision.set_global_policy(precision)
    if len(devices) > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    batch = args.batch_size * len(devices)
    size = args.image_size
    name = args.models[0] if args.models else "resnet50"
    model = kerasnets.get_model(name, weights=None, input_shape=(size, size, 3), classes=1000)
    title = {"resnet20": "ResNet-20", "resnet50": "ResNet-50"}[name]
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
                  jit_compile=True)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, 1000, (batch,)).astype("int32")
    print(f"{title} {size}x{size}, {len(devices)} x {devices[0].device_kind} ({platform}), {precision}, "
          f"global batch {batch}, jit")
    for kind, step in (("train", lambda: model.train_on_batch(x, y)),
                       ("infer", lambda: np.asarray(model.predict_on_batch(x)))):
        for _ in range(3):
            step()
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(args.steps):
                out = step()
            if kind == "train":
                np.asarray(out)  # wait for the device
            times.append((time.perf_counter() - start) / args.steps)
        t = statistics.median(times)
        print(f"  {kind}: {t * 1e3:.1f} ms/step, {batch / t:,.0f} images/s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS),
                        help="default: every model on CPU, resnet50 with --gpu")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="also print the medians as JSON")
    parser.add_argument("--gpu", action="store_true", help="accelerator mode (JAX only, no TensorFlow)")
    parser.add_argument("--batch-size", type=int, default=128, help="--gpu: per device")
    parser.add_argument("--image-size", type=int, default=224, help="--gpu: the input size (default 224)")
    parser.add_argument("--precision", help="--gpu: the dtype policy (default: by platform)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--jit", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(bool(args.jit))
    if args.gpu:
        return run_gpu(args)
    args.models = args.models or list(MODELS)
    return run_cpu(args)


if __name__ == "__main__":
    main()
