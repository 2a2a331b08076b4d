"""kerasnets next to keras.applications: training and inference images/s, build time.

For every architecture that keras.applications also has (VGG16, VGG19, ResNet50,
ResNet101, ResNet152, InceptionV3) both models are built in this process with the
same batch size, dtype policy, input size, classes and XLA setting, and measured
side by side:

* **build**: seconds to construct the model (``weights=None``), timed in
  alternating order, ``--build-rounds`` times each;
* **train**: images/s of Keras' own training step (``model.train_function``, what
  ``fit`` runs) with SGD + momentum and sparse categorical cross-entropy;
* **infer**: images/s of ``model(x, training=False)`` in a ``tf.function``.

After ``--warmup`` untimed steps (tracing, XLA compilation) the ``--rounds``
rounds alternate the two implementations (kerasnets first in even rounds,
keras.applications first in odd ones), so a busy machine affects both alike. The
table shows the median of the rounds for each and the ratio
kerasnets / keras.applications of the medians (> 1: kerasnets is faster; for the
build column, < 1 is faster), with the range of the per-round ratios.

It also reports how close each model runs to the machine's limit: the
multiply-adds per image come from `kerasnets.profile` (both implementations are
profiled, and must agree), the achieved rate is ``MACs x images/s`` (training
counts 3x the forward MACs: the forward pass, and the backward pass for inputs
and for weights), and the limit is the measured rate of a large matrix multiply
in the same compute dtype (``tf.matmul`` in a ``tf.function``).

Usage::

    python benchmarks/throughput.py --quick     # CPU, a few minutes: VGG16, ResNet50, InceptionV3,
                                                # batch 8, 64x64 (75 for InceptionV3)
    python benchmarks/throughput.py --quick --models all   # the six on a CPU (2 cores: ~15 minutes)
    python benchmarks/throughput.py             # GPU: all six, batch 64, 224x224 (299 for InceptionV3)
    python benchmarks/throughput.py --models resnet50 inception_v3 --precision mixed_float16
    python benchmarks/throughput.py --quick --markdown --json results.json
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

# name: (kerasnets builder, keras.applications builder, default input size)
ARCHITECTURES = {
    "vgg16": ("VGG16", "VGG16", 224),
    "vgg19": ("VGG19", "VGG19", 224),
    "resnet50": ("ResNet50", "ResNet50", 224),
    "resnet101": ("ResNet101", "ResNet101", 224),
    "resnet152": ("ResNet152", "ResNet152", 224),
    "inception_v3": ("InceptionV3", "InceptionV3", 299),
}
IMPLEMENTATIONS = ("kerasnets", "keras.applications")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# --quick compares one architecture per family: on 2 CPU cores tracing and optimising the
# training graphs of ResNet-101/152 alone takes several minutes (`--quick --models all`).
QUICK = dict(models=["vgg16", "resnet50", "inception_v3"], batch_size=8, image_size=64, rounds=5,
             build_rounds=2, steps=2, warmup=2, matmul_size=2048)
FULL = dict(models=list(ARCHITECTURES), batch_size=64, image_size=None, rounds=5, build_rounds=5, steps=20,
            warmup=5, matmul_size=8192)


@dataclasses.dataclass
class Result:
    """The measurements of one architecture; times are per round, in seconds."""

    model: str
    image_size: int
    macs: dict  # implementation -> multiply-adds per image
    params: dict  # implementation -> model.count_params()
    build: dict = dataclasses.field(default_factory=lambda: {i: [] for i in IMPLEMENTATIONS})
    train: dict = dataclasses.field(default_factory=lambda: {i: [] for i in IMPLEMENTATIONS})
    infer: dict = dataclasses.field(default_factory=lambda: {i: [] for i in IMPLEMENTATIONS})

    def median(self, kind, impl):
        return statistics.median(getattr(self, kind)[impl])

    def ratio(self, kind):
        """kerasnets / keras.applications of the medians, and the range of per-round ratios."""
        times = getattr(self, kind)
        kn, ka = times["kerasnets"], times["keras.applications"]
        if kind == "build":  # seconds: the ratio of times
            per_round = [a / b for a, b in zip(kn, ka)]
            return statistics.median(kn) / statistics.median(ka), (min(per_round), max(per_round))
        per_round = [b / a for a, b in zip(kn, ka)]  # images/s: the inverse ratio of times
        return statistics.median(ka) / statistics.median(kn), (min(per_round), max(per_round))

    def images_per_second(self, kind, impl, batch_size):
        return batch_size / self.median(kind, impl)

    def to_dict(self, batch_size):
        out = dataclasses.asdict(self)
        for kind in ("build", "train", "infer"):
            out[f"{kind}_ratio"], out[f"{kind}_ratio_range"] = self.ratio(kind)
        for kind in ("train", "infer"):
            out[f"{kind}_images_per_second"] = {
                i: self.images_per_second(kind, i, batch_size) for i in IMPLEMENTATIONS
            }
        return out


def _check_args(args, parser):
    unknown = [m for m in args.models if m not in ARCHITECTURES]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {sorted(ARCHITECTURES)}. Received: --models {' '.join(args.models)}")
    for name in ("batch_size", "rounds", "build_rounds", "steps", "matmul_size"):
        value = getattr(args, name)
        if value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer. Received: {value}")
    if args.warmup < 1:
        parser.error(f"--warmup must be at least 1 (the first step traces). Received: {args.warmup}")
    if args.image_size is not None and args.image_size < 32:
        parser.error(f"--image-size must be at least 32 (VGG's and keras.applications' minimum). Received: {args.image_size}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Defaults: full mode " + ", ".join(f"{k}={v}" for k, v in FULL.items() if k != "models")
        + "; --quick " + ", ".join(f"{k}={v}" for k, v in QUICK.items() if k != "models") + ".",
    )
    parser.add_argument("--quick", action="store_true", help="small inputs and few steps: a few minutes on a 2-core CPU")
    parser.add_argument("--models", nargs="+", metavar="MODEL",
                        help=f"architectures to compare, or 'all' ({', '.join(ARCHITECTURES)}); "
                             f"default: all, or {' '.join(QUICK['models'])} with --quick")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--image-size", type=int,
                        help="square input side (default: the model's own; raised to 75 for InceptionV3)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32", help="the Keras dtype policy of both models")
    parser.add_argument("--xla", choices=("auto", "on", "off"), default="auto",
                        help="jit_compile of both models (auto: Keras' default, which is off on CPU)")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--build-rounds", type=int, help="timed builds of each implementation")
    parser.add_argument("--steps", type=int, help="timed steps per round and implementation")
    parser.add_argument("--warmup", type=int, help="untimed steps before the rounds (tracing, XLA)")
    parser.add_argument("--matmul-size", type=int, help="side of the square matrices of the matmul measurement")
    parser.add_argument("--markdown", action="store_true", help="also print the tables as Markdown (for the README)")
    parser.add_argument("--json", metavar="PATH", help="write every measurement to this JSON file")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.models == ["all"]:
        args.models = list(ARCHITECTURES)
    _check_args(args, parser)
    return args


# ---------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------


def machine_description():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus]
        return f"{len(gpus)} x {names[0]}"
    name = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def matmul_macs_per_second(size, dtype, repeats=5):
    """The best rate of ``size x size @ size x size`` in a ``tf.function``, in MACs/s."""
    import tensorflow as tf

    a = tf.random.uniform((size, size), dtype=tf.float32)
    b = tf.random.uniform((size, size), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)

    @tf.function
    def matmul(a, b):
        return tf.reduce_sum(tf.cast(tf.matmul(a, b)[:1, :1], tf.float32))

    matmul(a, b).numpy()  # trace
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return size ** 3 / best


# ---------------------------------------------------------------------------
# The models
# ---------------------------------------------------------------------------


def builders(name):
    import keras

    import kerasnets

    kn, ka, _ = ARCHITECTURES[name]
    return {"kerasnets": getattr(kerasnets, kn), "keras.applications": getattr(keras.applications, ka)}


def image_size_for(name, requested):
    size = requested or ARCHITECTURES[name][2]
    return max(size, 75) if name == "inception_v3" else size


def build(builder, image_size, classes):
    return builder(weights=None, input_shape=(image_size, image_size, 3), classes=classes)


def prepare(model, batch_size, image_size, classes, xla):
    """Compiles ``model`` and returns (train step, iterator, inference step, batch)."""
    import keras
    import tensorflow as tf

    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        jit_compile={"auto": "auto", "on": True, "off": False}[xla],
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch_size, image_size, image_size, 3)).astype("float32")
    y = rng.integers(0, classes, (batch_size,)).astype("int32")
    iterator = iter(tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(2))
    model.make_train_function()
    train_step = model.train_function
    images = tf.constant(x)
    infer = tf.function(lambda t: model(t, training=False), jit_compile=bool(model.jit_compile))
    return train_step, iterator, infer, images


def timed(fn, steps):
    start = time.perf_counter()
    for _ in range(steps):
        out = fn()
    np.asarray(out)  # wait for the device
    return (time.perf_counter() - start) / steps


def benchmark(name, args, log):
    import keras

    from kerasnets.profiling import profile

    image_size = image_size_for(name, args.image_size)
    impls = builders(name)
    started = time.perf_counter()
    elapsed = lambda: f"{time.perf_counter() - started:.0f}s"  # noqa: E731
    models, macs, params, steps = {}, {}, {}, {}
    for impl, builder in impls.items():  # the first (untimed) build also warms up the builders
        models[impl] = build(builder, image_size, args.classes)
        p = profile(models[impl])
        macs[impl], params[impl] = p.macs, models[impl].count_params()
    result = Result(name, image_size, macs, params)

    order = lambda r: IMPLEMENTATIONS if r % 2 == 0 else IMPLEMENTATIONS[::-1]  # noqa: E731
    for r in range(args.build_rounds):
        for impl in order(r):
            start = time.perf_counter()
            model = build(impls[impl], image_size, args.classes)
            result.build[impl].append(time.perf_counter() - start)
            del model
            gc.collect()
    log(f"  [{elapsed()}] build: " + ", ".join(f"{i} {result.median('build', i):.2f}s" for i in IMPLEMENTATIONS))

    for impl in IMPLEMENTATIONS:
        train_step, iterator, infer, images = prepare(
            models[impl], args.batch_size, image_size, args.classes, args.xla
        )
        steps[impl] = (lambda s=train_step, it=iterator: s(it)["loss"], lambda f=infer, x=images: f(x))
        for fn in steps[impl]:
            timed(fn, args.warmup)
    log(f"  [{elapsed()}] warmed up (jit_compile={models['kerasnets'].jit_compile})")

    for r in range(args.rounds):
        for kind, index in (("train", 0), ("infer", 1)):
            for impl in order(r):
                getattr(result, kind)[impl].append(timed(steps[impl][index], args.steps))
        log(f"  [{elapsed()}] round {r + 1}/{args.rounds}: " + ", ".join(
            f"{kind} {impl} {args.batch_size / getattr(result, kind)[impl][-1]:.1f} img/s"
            for kind in ("train", "infer") for impl in IMPLEMENTATIONS
        ))
    del models, steps
    keras.utils.clear_session()
    gc.collect()
    return result


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------


def _ratio_text(result, kind):
    ratio, (low, high) = result.ratio(kind)
    return f"{ratio:.2f} ({low:.2f}-{high:.2f})"


def comparison_rows(results, batch_size):
    header = ["model", "input", "train img/s kn", "train img/s ka", "train ratio",
              "infer img/s kn", "infer img/s ka", "infer ratio", "build s kn", "build s ka", "build ratio"]
    rows = []
    for r in results:
        rows.append([
            r.model, f"{r.image_size}",
            f"{r.images_per_second('train', 'kerasnets', batch_size):.1f}",
            f"{r.images_per_second('train', 'keras.applications', batch_size):.1f}",
            _ratio_text(r, "train"),
            f"{r.images_per_second('infer', 'kerasnets', batch_size):.1f}",
            f"{r.images_per_second('infer', 'keras.applications', batch_size):.1f}",
            _ratio_text(r, "infer"),
            f"{r.median('build', 'kerasnets'):.2f}", f"{r.median('build', 'keras.applications'):.2f}",
            _ratio_text(r, "build"),
        ])
    if results:
        rows.append(["median", "", "", "", f"{statistics.median(r.ratio('train')[0] for r in results):.2f}",
                     "", "", f"{statistics.median(r.ratio('infer')[0] for r in results):.2f}",
                     "", "", f"{statistics.median(r.ratio('build')[0] for r in results):.2f}"])
    return header, rows


def hardware_rows(results, batch_size, peak):
    header = ["model", "GMACs/img kn", "GMACs/img ka", "train GMAC/s kn", "% of matmul",
              "infer GMAC/s kn", "% of matmul", "params kn", "params ka"]
    rows = []
    for r in results:
        macs = r.macs["kerasnets"]
        train = 3 * macs * r.images_per_second("train", "kerasnets", batch_size)
        infer = macs * r.images_per_second("infer", "kerasnets", batch_size)
        rows.append([
            r.model, f"{macs / 1e9:.3f}", f"{r.macs['keras.applications'] / 1e9:.3f}",
            f"{train / 1e9:.1f}", f"{100 * train / peak:.0f}%",
            f"{infer / 1e9:.1f}", f"{100 * infer / peak:.0f}%",
            f"{r.params['kerasnets']:,}", f"{r.params['keras.applications']:,}",
        ])
    return header, rows


def format_table(header, rows, markdown=False):
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    fmt = lambda row: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths)))  # noqa: E731
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(row) for row in rows])


def main(argv=None):
    args = parse_args(argv)
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(args.precision)
    compute_dtype = keras.mixed_precision.global_policy().compute_dtype
    machine = machine_description()
    log(f"{machine}; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    peak = matmul_macs_per_second(args.matmul_size, compute_dtype)
    log(f"matmul {args.matmul_size}x{args.matmul_size} {compute_dtype}: {peak / 1e9:.1f} GMAC/s")

    results = []
    for name in args.models:
        log(f"{name} ({image_size_for(name, args.image_size)}x{image_size_for(name, args.image_size)}, "
            f"batch {args.batch_size}, {args.precision})")
        results.append(benchmark(name, args, log))
    # The matmul again at the end: the machine's rate may drift (other load, clocks).
    peak = max(peak, matmul_macs_per_second(args.matmul_size, compute_dtype))

    command = "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"\nkerasnets / keras.applications on {machine}")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}; batch {args.batch_size}, {args.precision}, "
          f"XLA {args.xla}; median of {args.rounds} rounds x {args.steps} steps after {args.warmup} warm-up steps")
    print(f"command: {command.strip()}\n")
    print("Ratio = kerasnets / keras.applications of the medians (images/s: > 1 is kerasnets faster; "
          "build seconds: < 1 is kerasnets faster); in brackets the range of the per-round ratios.")
    header, rows = comparison_rows(results, args.batch_size)
    print(format_table(header, rows))
    print(f"\nAgainst the hardware: matrix multiply {args.matmul_size}x{args.matmul_size} {compute_dtype} "
          f"= {peak / 1e9:.1f} GMAC/s. Training counts 3x the forward MACs.")
    hw_header, hw_rows = hardware_rows(results, args.batch_size, peak)
    print(format_table(hw_header, hw_rows))
    if args.markdown:
        print("\n" + format_table(header, rows, markdown=True))
        print("\n" + format_table(hw_header, hw_rows, markdown=True))
    if args.json:
        record = {
            "machine": machine, "tensorflow": tf.__version__, "keras": keras.__version__,
            "command": command.strip(), "matmul_macs_per_second": peak,
            "args": {k: v for k, v in vars(args).items() if k not in ("json", "markdown")},
            "results": [r.to_dict(args.batch_size) for r in results],
        }
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return results


if __name__ == "__main__":
    main()
