"""Throughput of the exported SavedModel next to ``model.predict``, in one process.

Every contender gets the same uint8 images (one batch of ``--batch`` camera-sized
RGB images, ``--source-size``) and does the same work: the evaluation
preprocessing (central crop, resize, normalise: `kerasnets.data.preprocess_for_eval`)
and the model. Contenders:

* ``predict``: ``model.predict(preprocess(images), batch_size=batch)`` with the
  preprocessing in a ``tf.function`` (Keras' usual inference entry point);
* ``tf.function``: ``tf.function(lambda x: model(preprocess(x), training=False))``,
  the model call without ``predict``'s per-call overhead;
* ``serving``: the ``serving_default`` signature of `kerasnets.export.saved_model`,
  loaded back with ``tf.saved_model.load`` (probabilities and top-k included);
* ``serving+fold``: the same with ``fold_batch_norm=True``;
* ``serving+fold+bf16``: and ``compute_dtype="mixed_bfloat16"`` (fast on CPUs
  with AVX512-BF16 / AMX, at bfloat16 accuracy: its ``max |diff|`` shows it).

Each is warmed up; then ``--rounds`` rounds time every contender in turn
``--repeats`` times (interleaved, so that a busy machine slows all of them alike).
Reported: images/second (median over rounds) and the median over rounds of the
ratio to ``predict`` in the same round, by wall-clock time and by the CPU time
of the process (steadier when other processes share the machine); ``rel. diff``
is the largest difference of the probabilities from ``predict``'s, relative to
the largest probability, and ``top-1 same`` the share of images whose top class
agrees with ``predict``'s.

Usage::

    python benchmarks/serving.py                       # resnet50, 224, batch 16
    python benchmarks/serving.py --model resnet18 --batch 32 --repeats 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def _seconds_per_call(fn, repeats):
    """(wall seconds, CPU seconds of this process) per call."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--image-size", type=int, default=None, help="default: the model's")
    parser.add_argument("--width-multiplier", type=float, default=None)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--source-size", default="256x320", help="HxW of the uint8 input images")
    parser.add_argument("--repeats", type=int, default=3, help="calls per contender and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    import kerasnets
    import kerasnets.export
    from kerasnets.export import eval_preprocess

    info = kerasnets.get_model_info(args.model)
    size = args.image_size or info.default_size
    kwargs = {"input_shape": (size, size, 3)}
    if args.width_multiplier is not None:
        kwargs["width_multiplier"] = args.width_multiplier
    model = kerasnets.inference_model(kerasnets.get_model(args.model, **kwargs))
    # Non-trivial BatchNorm statistics, as a trained model has.
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.1, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype("float32"))

    height, width = (int(s) for s in args.source_size.lower().split("x"))
    images = tf.constant(rng.integers(0, 256, (args.batch, height, width, 3), dtype=np.uint8))
    preprocessing = info.preprocessing
    preprocess = tf.function(lambda x: eval_preprocess(x, size, preprocessing))

    def predict():
        return model.predict(preprocess(images), batch_size=args.batch, verbose=0)

    call = tf.function(lambda x: model(eval_preprocess(x, size, preprocessing), training=False))

    with tempfile.TemporaryDirectory() as tmp:
        servers = {}
        variants = {
            "serving": {},
            "serving+fold": {"fold_batch_norm": True},
            "serving+fold+bf16": {"fold_batch_norm": True, "compute_dtype": "mixed_bfloat16"},
        }
        for label, options in variants.items():
            path = os.path.join(tmp, label)
            kerasnets.export.saved_model(model, path, model_name=args.model, **options)
            servers[label] = tf.saved_model.load(path).signatures["serving_default"]
        contenders = {
            "predict": predict,
            "tf.function": lambda: call(images),
            **{
                label: (lambda server: lambda: server(images=images)["probabilities"])(server)
                for label, server in servers.items()
            },
        }
        reference = np.asarray(predict())
        diffs, agree = {}, {}
        for label, fn in contenders.items():
            out = np.asarray(fn())
            diffs[label] = float(np.max(np.abs(out - reference)) / np.max(np.abs(reference)))
            agree[label] = float(np.mean(out.argmax(-1) == reference.argmax(-1)))
            fn()  # warm-up
        rounds = []  # {label: (images per wall second, images per CPU second)}
        for _ in range(args.rounds):
            timings = {label: _seconds_per_call(fn, args.repeats) for label, fn in contenders.items()}
            rounds.append({label: (args.batch / w, args.batch / c) for label, (w, c) in timings.items()})

    print(
        f"{args.model} at {size}x{size}, batch {args.batch} of {height}x{width} uint8 images, "
        f"{args.rounds} rounds x {args.repeats} calls; TF {tf.__version__}, Keras {keras.__version__}, "
        f"{os.cpu_count()} CPUs, devices {[d.device_type for d in tf.config.list_logical_devices()]}"
    )
    print(f"{'contender':<18}{'images/s':>10}{'vs predict':>12}{'img/CPU-s':>11}{'vs predict':>12}{'rel. diff':>11}{'top-1 same':>12}")
    results = {}
    for label in contenders:
        row = {"max_rel_diff": diffs[label], "top1_agreement": agree[label]}
        for i, key in enumerate(("wall", "cpu")):
            row[f"images_per_{key}_s"] = statistics.median(r[label][i] for r in rounds)
            row[f"vs_predict_{key}"] = statistics.median(r[label][i] / r["predict"][i] for r in rounds)
        results[label] = row
        print(
            f"{label:<18}{row['images_per_wall_s']:>10.1f}{row['vs_predict_wall']:>11.2f}x"
            f"{row['images_per_cpu_s']:>11.1f}{row['vs_predict_cpu']:>11.2f}x{diffs[label]:>11.2g}{agree[label]:>12.0%}"
        )
    return results


if __name__ == "__main__":
    main()
