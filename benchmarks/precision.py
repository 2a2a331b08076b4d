"""Training throughput on this machine: float32 vs mixed_bfloat16, XLA off vs on.

Side by side in one process, interleaved, reported as ratios to float32 without
XLA (the Keras default on CPU). It decides what ``--precision auto`` and
``--xla auto`` of ``kerasnets train`` choose on a CPU.

    python benchmarks/precision.py                     # resnet20, 32x32, batch 128
    python benchmarks/precision.py --model resnet50 --image-size 64 --batch-size 32

Each configuration builds the model under its dtype policy, compiles it with the
ResNet recipe, warms up (tracing, XLA compilation), then times ``--steps``
training steps; the rounds alternate configurations so that a busy machine
affects them alike. The median step time of the rounds is reported.
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

import kerasnets
from kerasnets import training

CONFIGS = [
    ("float32", False),
    ("float32", True),
    ("mixed_bfloat16", False),
    ("mixed_bfloat16", True),
]


def make_step(name, precision, xla, image_size, batch_size, classes, width):
    keras.mixed_precision.set_global_policy(precision)
    kwargs = dict(input_shape=(image_size, image_size, 3), classes=classes)
    if width != 1.0:
        kwargs["width_multiplier"] = width
    model = kerasnets.get_model(name, **kwargs)
    training.compile_model(model, training.recipe_for(name), steps_per_epoch=100, jit_compile=xla)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch_size, image_size, image_size, 3)).astype("float32")
    y = rng.integers(0, classes, (batch_size,)).astype("int32")
    data = tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(2)
    iterator = iter(data)
    model.make_train_function()
    step = model.train_function
    keras.mixed_precision.set_global_policy("float32")
    return model, step, iterator


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    runs = {}
    for precision, xla in CONFIGS:
        model, step, iterator = make_step(
            args.model, precision, xla, args.image_size, args.batch_size, args.classes, args.width
        )
        for _ in range(3):  # warm-up: tracing and XLA compilation
            logs = step(iterator)
        float(logs["loss"])
        runs[(precision, xla)] = (model, step, iterator, [])

    for _ in range(args.rounds):
        for key, (model, step, iterator, times) in runs.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                logs = step(iterator)
            float(logs["loss"])  # wait for the last step
            times.append((time.perf_counter() - start) / args.steps)

    base = statistics.median(runs[("float32", False)][3])
    print(f"{args.model} training, {args.image_size}x{args.image_size}, batch {args.batch_size}, "
          f"median of {args.rounds} rounds x {args.steps} steps")
    print(f"{'precision':<16}{'XLA':<6}{'ms/step':>9}{'img/s':>9}{'speed vs float32':>18}")
    for (precision, xla), (_, _, _, times) in runs.items():
        t = statistics.median(times)
        print(f"{precision:<16}{'on' if xla else 'off':<6}{t * 1e3:9.1f}"
              f"{args.batch_size / t:9.0f}{base / t:17.2f}x")


if __name__ == "__main__":
    main()
