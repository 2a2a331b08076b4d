"""The serving paths side by side in one process, against the CPU's matrix-multiply rate.

Every contender gets the same uint8 images (a batch of camera-sized RGB images,
``--source-size``) and does the same work: the evaluation preprocessing (central
crop, antialiased resize, normalisation: `kerasnets.data.preprocess_for_eval`) and
the model, ending in probabilities. Contenders (``--contenders``):

* ``predict``: ``model.predict(preprocess(images), batch_size=batch)``, the
  preprocessing in a ``tf.function`` (Keras' usual inference entry point);
* ``saved_model``: the ``serving_default`` signature of `kerasnets.export.saved_model`,
  loaded back with ``tf.saved_model.load`` (probabilities and top-k included);
* ``saved_model+fold``: the same with ``fold_batch_norm=True``;
* ``tflite``: `kerasnets.export.tflite` in ``tf.lite.Interpreter`` (XNNPACK, one
  thread per core); its model takes uint8 images at the model's size, so the crop
  and resize run in TensorFlow first and are rounded to uint8 (its ``rel. diff``
  is that rounding);
* ``onnxruntime``: `kerasnets.export.onnx` (preprocessing, BatchNorm folded and
  top-k in the graph) in ONNX Runtime with its default threads and all graph
  optimisations; ``onnxruntime-1thread``: one intra-op thread;
* optional: ``tf.function`` (the model call without ``predict``'s per-call work),
  ``saved_model+fold+bf16`` (``compute_dtype="mixed_bfloat16"``: fast only on CPUs
  with AVX512-BF16 or AMX), ``onnxruntime-static`` (``static_size`` = the source size).

For each batch size (``--batches``) every contender is warmed up, then ``--rounds``
rounds call each contender ``--repeats`` times in turn (the order reversed every
other round, so that a busy machine slows all of them alike). Reported per
contender and batch: images/s (all calls' images over all calls' time), the
median and 99th percentile of the call latency, and the roofline fraction: the
model's multiply-adds per image (`kerasnets.profile`) times images/s, over the
rate of a float32 NumPy matrix multiply of ``--matmul-size`` squares measured in
the same run (best of 5, before and after; the larger) on as many threads: one
core's rate for the ``-1thread`` rows, all cores' for the others. ``rel. diff`` is the
largest difference of the probabilities from ``predict``'s, relative to the
largest, ``top-1 same`` the share of images whose top class agrees.

Last, ONNX Runtime's profiler runs the faster ONNX Runtime contender at the
largest batch and lists the operators by time, with the multiply-adds of the
convolutions and matrix products and their rate as a fraction of the matmul rate.

Usage::

    python benchmarks/serving.py                  # ResNet-50, 224, batches 1 and 16 (about 10 min on 2 cores)
    python benchmarks/serving.py --markdown --json serving.json
    python benchmarks/serving.py --quick          # ResNet-20 at 32 px: the code path, in seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(1, HERE)  # throughput.machine_description

import numpy as np  # noqa: E402

CONTENDERS = ("predict", "saved_model", "saved_model+fold", "tflite", "onnxruntime", "onnxruntime-1thread")
OPTIONAL = ("tf.function", "saved_model+fold+bf16", "onnxruntime-static")
# The code path in seconds: a CIFAR ResNet (BatchNorm to fold, exports in a second or two).
QUICK = dict(model="resnet20", width_multiplier=0.5, image_size=32, batches="1,2", source_size="40x48", rounds=1,
             repeats=2, matmul_size=256, profile_calls=2)
# Operators whose multiply-adds the profile counts.
_CONV_OPS = ("Conv", "FusedConv", "NchwcConv")
_MATMUL_OPS = ("MatMul", "FusedMatMul", "Gemm")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--model", default="resnet50")
    add("--image-size", type=int, default=None, help="default: the model's")
    add("--width-multiplier", type=float, default=None)
    add("--batches", default="1,16", help="comma-separated batch sizes (default: 1,16)")
    add("--source-size", default="256x320", help="HxW of the uint8 input images")
    add("--rounds", type=int, default=5)
    add("--repeats", type=int, default=None, help="calls per contender and round (default: max(3, 24 // batch))")
    add("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS + OPTIONAL)
    add("--matmul-size", type=int, default=2048, help="side of the float32 matrices of the matmul rate")
    add("--profile-calls", type=int, default=5, help="calls profiled by ONNX Runtime's profiler (0: none)")
    add("--json", metavar="FILE", help="write the results as JSON")
    add("--markdown", action="store_true", help="print the table as Markdown")
    add("--quick", action="store_true",
        help="a check of the code path: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    args.batches = [int(b) for b in str(args.batches).split(",")]
    args.height, args.width = (int(s) for s in args.source_size.lower().split("x"))
    return args


# ---------------------------------------------------------------------------
# The machine's rate
# ---------------------------------------------------------------------------


def matmul_macs_per_second(size, repeats=5, one_thread=False):
    """The best rate of a float32 ``size x size @ size x size`` NumPy product, in MACs/s:
    with NumPy's threads (one per core), or on one thread (measured in a child process,
    since OpenBLAS reads its thread count at start-up)."""
    if one_thread:
        code = f"import serving; print(serving.matmul_macs_per_second({size}, {repeats}))"
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        done = subprocess.run([sys.executable, "-c", code], cwd=HERE, env=env, capture_output=True, text=True,
                              check=True)
        return float(done.stdout.strip().splitlines()[-1])
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    a @ b  # warm-up: threads started, pages touched
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return size ** 3 / best


# ---------------------------------------------------------------------------
# The contenders
# ---------------------------------------------------------------------------


def build_model(args):
    import keras

    import kerasnets

    info = kerasnets.get_model_info(args.model)
    size = args.image_size or info.default_size
    kwargs = {"input_shape": (size, size, 3)}
    if args.width_multiplier is not None:
        kwargs["width_multiplier"] = args.width_multiplier
    model = kerasnets.inference_model(kerasnets.get_model(args.model, **kwargs))
    rng = np.random.default_rng(0)  # non-trivial BatchNorm statistics, as a trained model has
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.1, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
    return model, size, info.preprocessing


def _onnx_session(path, threads=None, profile_prefix=None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _tflite_runner(path, size, preprocessing):
    """Crop and resize in TensorFlow (rounded to uint8, what the TFLite model takes), then
    the interpreter; one interpreter per batch size."""
    import warnings

    import tensorflow as tf

    from kerasnets.data import preprocess_for_eval
    from kerasnets.preprocessing import Preprocessing

    pixels = Preprocessing("pixels", crop_fraction=preprocessing.crop_fraction)  # no normalisation
    to_uint8 = tf.function(lambda x: tf.cast(tf.round(preprocess_for_eval(x, size, pixels)), tf.uint8))
    interpreters = {}

    def run(images):
        batch = len(images)
        if batch not in interpreters:
            with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": still the one TF ships
                warnings.simplefilter("ignore")
                interpreter = tf.lite.Interpreter(model_path=path, num_threads=os.cpu_count())
            detail = interpreter.get_input_details()[0]
            interpreter.resize_tensor_input(detail["index"], (batch, size, size, 3))
            interpreter.allocate_tensors()
            interpreters[batch] = (interpreter, detail["index"], interpreter.get_output_details()[0]["index"])
        interpreter, source, target = interpreters[batch]
        interpreter.set_tensor(source, to_uint8(images).numpy())
        interpreter.invoke()
        return interpreter.get_tensor(target)

    return run


def make_contenders(args, model, size, preprocessing, tmp):
    """``{name: function(uint8 images as a tf.Tensor and an array) -> probabilities}``."""
    import tensorflow as tf

    import kerasnets.export as export
    from kerasnets.data import preprocess_for_eval

    preprocess = tf.function(lambda x: preprocess_for_eval(x, size, preprocessing))
    call = tf.function(lambda x: model(preprocess_for_eval(x, size, preprocessing), training=False))
    contenders = {}
    for name in args.contenders:
        path = os.path.join(tmp, name.replace("+", "_"))
        if name == "predict":
            contenders[name] = lambda t, a: model.predict(preprocess(t), batch_size=len(a), verbose=0)
        elif name == "tf.function":
            contenders[name] = lambda t, a: call(t).numpy()
        elif name.startswith("saved_model"):
            options = {"fold_batch_norm": "+fold" in name}
            if name.endswith("+bf16"):
                options["compute_dtype"] = "mixed_bfloat16"
            export.saved_model(model, path, model_name=args.model, **options)
            server = tf.saved_model.load(path).signatures["serving_default"]
            contenders[name] = (lambda s: lambda t, a: s(images=t)["probabilities"].numpy())(server)
        elif name == "tflite":
            export.tflite(model, path + ".tflite", model_name=args.model, check=False)
            run = _tflite_runner(path + ".tflite", size, preprocessing)
            contenders[name] = lambda t, a, run=run: run(a)
        else:  # ONNX Runtime; the default export is written once
            static = (args.height, args.width) if name == "onnxruntime-static" else None
            path = os.path.join(tmp, "onnxruntime-static.onnx" if static else "onnxruntime.onnx")
            if not os.path.exists(path):
                export.onnx(model, path, model_name=args.model, static_size=static, check=False)
            session = _onnx_session(path, threads=1 if name.endswith("1thread") else None)
            contenders[name] = (lambda s: lambda t, a: s.run(["probabilities"], {"images": a})[0])(session)
    return contenders


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


def time_batch(contenders, images, rounds, repeats):
    """``{name: [seconds per call]}``, the contenders interleaved, and each one's outputs."""
    import tensorflow as tf

    tensor = tf.constant(images)
    outputs = {}
    for name, fn in contenders.items():
        outputs[name] = np.asarray(fn(tensor, images))  # warm-up (tracing, allocation)
        fn(tensor, images)
    latencies = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            for _ in range(repeats):
                start = time.perf_counter()
                np.asarray(contenders[name](tensor, images))
                latencies[name].append(time.perf_counter() - start)
    return latencies, outputs


def summarize(name, batch, latencies, output, reference, macs, peaks):
    """One row of the table; the roofline fraction is against the matmul on as many threads
    (one for the ``-1thread`` contenders, NumPy's default otherwise)."""
    images_per_second = batch * len(latencies) / sum(latencies)
    threads = "one" if name.endswith("1thread") else "all"
    return {
        "contender": name,
        "batch": batch,
        "matmul_threads": threads,
        "images_per_second": images_per_second,
        "p50_ms": 1e3 * float(np.percentile(latencies, 50)),
        "p99_ms": 1e3 * float(np.percentile(latencies, 99)),
        "calls": len(latencies),
        "gmacs_per_second": macs * images_per_second / 1e9,
        "roofline_fraction": macs * images_per_second / peaks[threads],
        "max_rel_diff": float(np.max(np.abs(output - reference)) / np.max(np.abs(reference))),
        "top1_agreement": float(np.mean(output.argmax(-1) == reference.argmax(-1))),
    }


# ---------------------------------------------------------------------------
# ONNX Runtime's profile
# ---------------------------------------------------------------------------


def _shapes(entries):
    return [next(iter(entry.values())) for entry in entries or []]


def _node_macs(op, inputs, outputs):
    """Multiply-adds of a convolution or matrix product from its profiled shapes, else 0."""
    if not outputs or len(inputs) < 2:
        return 0
    if op in _CONV_OPS and len(inputs[1]) == 4:  # weights [out, in / groups, kh, kw]
        return int(np.prod(outputs[0], dtype=np.int64) * np.prod(inputs[1][1:], dtype=np.int64))
    if op in _MATMUL_OPS:
        return int(np.prod(outputs[0], dtype=np.int64) * inputs[0][-1])
    return 0


def profile_onnx(path, images, calls, peak, tmp, threads=None):
    """ONNX Runtime's profile of ``calls`` runs (after one left out): one row per operator
    type, slowest first."""
    session = _onnx_session(path, threads=threads, profile_prefix=os.path.join(tmp, "onnx_profile"))
    for _ in range(calls + 1):
        session.run(None, {"images": images})
    with open(session.end_profiling()) as f:
        events = json.load(f)
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    first_end = runs[0]["ts"] + runs[0]["dur"]  # the first run's first-call work is left out
    rows = {}
    for event in events:
        if event["ts"] < first_end or event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        args = event.get("args", {})
        op = args.get("op_name", "?")
        inputs, outputs = _shapes(args.get("input_type_shape")), _shapes(args.get("output_type_shape"))
        label = op
        if op in _CONV_OPS and len(inputs) > 1 and len(inputs[1]) == 4:  # by kernel size: 1x1, 3x3, 7x7
            label = f"{op} {inputs[1][2]}x{inputs[1][3]}"
        row = rows.setdefault(label, {"op": label, "nodes": set(), "seconds": 0.0, "macs": 0})
        row["nodes"].add(event["name"])
        row["seconds"] += event["dur"] * 1e-6 / calls
        row["macs"] += _node_macs(op, inputs, outputs) / calls
    total = sum(row["seconds"] for row in rows.values())
    result = []
    for row in sorted(rows.values(), key=lambda r: -r["seconds"]):
        rate = row["macs"] / row["seconds"] if row["macs"] and row["seconds"] else None
        result.append({"op": row["op"], "nodes": len(row["nodes"]), "ms_per_call": 1e3 * row["seconds"],
                       "share": row["seconds"] / total, "gmacs": row["macs"] / 1e9,
                       "roofline_fraction": rate / peak if rate else None})
    return result


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def _table(rows, markdown):
    header = ["contender", "batch", "images/s", "p50 ms", "p99 ms", "GMAC/s", "of matmul", "rel. diff", "top-1 same"]
    body = [[r["contender"], str(r["batch"]), f"{r['images_per_second']:.1f}", f"{r['p50_ms']:.1f}",
             f"{r['p99_ms']:.1f}", f"{r['gmacs_per_second']:.1f}", f"{r['roofline_fraction']:.0%}",
             f"{r['max_rel_diff']:.1g}", f"{r['top1_agreement']:.0%}"] for r in rows]
    return _render(header, body, markdown)


def _profile_table(rows, markdown, top=12):
    header = ["operator", "nodes", "ms/call", "share", "GMAC/call", "of matmul"]
    body = [[r["op"], str(r["nodes"]), f"{r['ms_per_call']:.1f}", f"{r['share']:.1%}",
             f"{r['gmacs']:.2f}" if r["gmacs"] else "",
             f"{r['roofline_fraction']:.0%}" if r["roofline_fraction"] else ""] for r in rows[:top]]
    return _render(header, body, markdown)


def _render(header, body, markdown):
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
                     for row in [header, *body])


def main(argv=None):
    args = parse_args(argv)
    import keras
    import onnxruntime
    import tensorflow as tf

    from kerasnets.profiling import profile
    from throughput import machine_description

    load_before = os.getloadavg()
    peaks = {"all": matmul_macs_per_second(args.matmul_size),
             "one": matmul_macs_per_second(args.matmul_size, one_thread=True)}
    model, size, preprocessing = build_model(args)
    macs = profile(model).macs
    rng = np.random.default_rng(0)
    results, profile_rows, profiled = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        contenders = make_contenders(args, model, size, preprocessing, tmp)
        for batch in args.batches:
            images = rng.integers(0, 256, (batch, args.height, args.width, 3), dtype=np.uint8)
            repeats = args.repeats or max(3, 24 // batch)
            latencies, outputs = time_batch(contenders, images, args.rounds, repeats)
            reference = outputs.get("predict", next(iter(outputs.values())))
            results += [summarize(name, batch, latencies[name], outputs[name], reference, macs, peaks)
                        for name in contenders]
        onnx_rows = [r for r in results if r["batch"] == max(args.batches)
                     and r["contender"] in ("onnxruntime", "onnxruntime-1thread")]
        if args.profile_calls and onnx_rows:  # the faster of the two thread settings
            profiled = max(onnx_rows, key=lambda r: r["images_per_second"])
            images = rng.integers(0, 256, (max(args.batches), args.height, args.width, 3), dtype=np.uint8)
            threads = 1 if profiled["matmul_threads"] == "one" else None
            profile_rows = profile_onnx(os.path.join(tmp, "onnxruntime.onnx"), images, args.profile_calls,
                                        peaks[profiled["matmul_threads"]], tmp, threads=threads)
    # The rates again at the end (other load, clocks): the larger of the two.
    peaks = {"all": max(peaks["all"], matmul_macs_per_second(args.matmul_size)),
             "one": max(peaks["one"], matmul_macs_per_second(args.matmul_size, one_thread=True))}
    for row in results:
        row["roofline_fraction"] = row["gmacs_per_second"] * 1e9 / peaks[row["matmul_threads"]]
    for row in profile_rows:
        if row["roofline_fraction"]:
            rate = row["gmacs"] * 1e9 / (row["ms_per_call"] * 1e-3)
            row["roofline_fraction"] = rate / peaks[profiled["matmul_threads"]]

    report = {
        "args": {k: v for k, v in vars(args).items()},
        "machine": machine_description(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "onnxruntime": onnxruntime.__version__, "numpy": np.__version__},
        "image_size": size,
        "macs_per_image": macs,
        "matmul_macs_per_second": peaks["all"],
        "matmul_macs_per_second_one_thread": peaks["one"],
        "profiled": profiled and profiled["contender"],
        "results": results,
        "onnx_profile": profile_rows,
    }
    print(f"{args.model} at {size}x{size} ({macs / 1e9:.2f} GMAC/image), {args.height}x{args.width} uint8 images, "
          f"{args.rounds} rounds; {report['machine']}; load average {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}; "
          f"TF {tf.__version__}, Keras {keras.__version__}, ONNX Runtime {onnxruntime.__version__}")
    print(f"float32 matmul {args.matmul_size}x{args.matmul_size} (NumPy): {peaks['all'] / 1e9:.1f} GMAC/s, "
          f"one thread {peaks['one'] / 1e9:.1f} GMAC/s (the reference of the -1thread rows)\n")
    print(_table(results, args.markdown))
    if profile_rows:
        print(f"\nONNX Runtime profile of {profiled['contender']}, batch {max(args.batches)} "
              f"({args.profile_calls} calls):\n")
        print(_profile_table(profile_rows, args.markdown))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
