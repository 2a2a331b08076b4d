"""Time to the first training step: `compile_model` against Keras's own `model.compile`.

Under TensorFlow, a model compiled outside a distribution strategy's scope gets its
optimizer built inside the first traced train step, which Keras then traces twice.
`kerasnets.training.compile_model` builds the optimizer when it compiles. This
measures what that saves: for each model, a fresh build compiled by `compile_model`
with and without that early build (everything else the same), then one
``train_on_batch`` (tracing included), side by side in one process, the two ways
alternating round by round; medians and their ratio.

    python benchmarks/first_step.py                          # resnet20, googlenet, inception_v3
    python benchmarks/first_step.py --models resnet50 --image-size 64 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

import keras
import numpy as np

import kerasnets
from kerasnets import training
from kerasnets.training import _compile

DEFAULT_MODELS = ["resnet20", "googlenet", "inception_v3"]


def first_step_seconds(name, image_size, batch_size, width, prebuilt):
    """Seconds from `compile_model` to the end of the model's first ``train_on_batch``."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    size = max(image_size, kerasnets.get_model_info(name).min_size)
    model = kerasnets.get_model(name, input_shape=(size, size, 3), classes=10, width_multiplier=width)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch_size, size, size, 3)).astype("float32")
    y = rng.integers(0, 10, (batch_size,)).astype("int32")
    start = time.perf_counter()
    if prebuilt:
        training.compile_model(model, steps_per_epoch=100, global_batch_size=batch_size)
    else:  # the same compile without the early build: Keras builds it in the first traced step
        with mock.patch.object(_compile, "_build_optimizer", lambda model: None):
            training.compile_model(model, steps_per_epoch=100, global_batch_size=batch_size)
        assert not model.optimizer.built
    model.train_on_batch(x, y)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=kerasnets.list_models(),
                        metavar="MODEL", help=f"registered model names (default: {' '.join(DEFAULT_MODELS)})")
    parser.add_argument("--image-size", type=int, default=32, help="raised to each model's minimum (default 32)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--width", type=float, default=0.25, help="width multiplier (default 0.25)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.batch_size < 1 or args.width <= 0:
        parser.error("--rounds and --batch-size must be positive integers, --width a positive number")
    if keras.backend.backend() != "tensorflow":
        parser.error("the two ways differ under the TensorFlow backend only (JAX and torch build the "
                     f"optimizer before the first step themselves); this is {keras.backend.backend()}")

    print(f"compile_model + first train_on_batch (trace + step), width {args.width}, batch "
          f"{args.batch_size}, median of {args.rounds} rounds")
    results = {}
    print(f"{'model':<14}{'built in step':>15}{'built early':>15}{'ratio':>8}")
    for name in args.models:
        times = {True: [], False: []}
        for _ in range(args.rounds):
            for prebuilt in (False, True):
                times[prebuilt].append(first_step_seconds(name, args.image_size, args.batch_size, args.width,
                                                          prebuilt))
        keras_s, ours_s = statistics.median(times[False]), statistics.median(times[True])
        print(f"{name:<14}{keras_s:>14.2f}s{ours_s:>14.2f}s{ours_s / keras_s:>8.2f}", flush=True)
        results[name] = {"built_in_step": keras_s, "built_early": ours_s}
    return results


if __name__ == "__main__":
    main()
