"""Helper of test_distributed.py: MirroredStrategy on 2 CPU devices vs one device.

Splits the CPU into two logical devices before TensorFlow initialises, trains the
same model from the same initial weights on the same batches (global batch 32)
for a few steps with a paper recipe, once under ``MirroredStrategy`` (16 images
per replica) and once under the default strategy, and prints a JSON line with
the largest weight difference and what each run saw.

VGG has no BatchNorm: BatchNorm normalises each replica's own half batch (as
the papers' multi-GPU training did), which makes a BN model's mirrored step
differ from a single-device step by design. Dropout is off so both runs draw
nothing at random.
"""

import json
import sys

from kerasnets.training.strategy import split_cpu

split_cpu(2)  # before anything initialises TensorFlow

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kerasnets  # noqa: E402
from kerasnets import training  # noqa: E402

STEPS, BATCH = 3, 32


def build(strategy, initial=None):
    with strategy.scope():
        model = kerasnets.VGG11(classes=10, input_shape=(32, 32, 3), width_multiplier=0.125, dropout=0.0)
        if initial is not None:
            model.set_weights(initial)
        # The VGG recipe: SGD momentum 0.9, L2 weight decay 5e-4; lr 0.01 x 32/256,
        # raised here so that three steps move the weights well beyond rounding.
        training.compile_model(model, "vgg", global_batch_size=BATCH, learning_rate=0.4)
    return model


def bn_replica_spread(strategy, x, y, sync):
    """How far the replicas' BatchNorm moving statistics drift apart in a short fit."""
    from kerasnets.training.callbacks import SyncReplicaStatistics

    with strategy.scope():
        model = kerasnets.ResNet20(classes=10, input_shape=(32, 32, 3), width_multiplier=0.25)
        training.compile_model(model, global_batch_size=BATCH, steps_per_epoch=STEPS)
    # Different images on each replica: the first half of each batch is darker.
    x = x.copy()
    x[: len(x) // 2] -= 1.0
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    callbacks = [SyncReplicaStatistics()] if sync else []
    model.fit(data, epochs=1, shuffle=False, verbose=0, callbacks=callbacks)
    spread = 0.0
    for variable in model.non_trainable_variables:
        copies = [c.numpy() for c in variable.value.values]
        spread = max(spread, float(np.max(np.abs(copies[0] - copies[1]))))
    return spread


def main():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS * BATCH, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, STEPS * BATCH).astype("int32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    single = tf.distribute.get_strategy()
    keras.utils.set_random_seed(0)
    reference = build(single)
    initial = reference.get_weights()
    distributed = build(mirrored, initial)

    reference.fit(data, epochs=1, shuffle=False, verbose=0)
    distributed.fit(data, epochs=1, shuffle=False, verbose=0)
    diffs = [float(np.max(np.abs(a - b))) for a, b in zip(reference.get_weights(), distributed.get_weights())]
    spread = {sync: bn_replica_spread(mirrored, x, y, sync) for sync in (False, True)}
    moved = [float(np.max(np.abs(a - b))) for a, b in zip(reference.get_weights(), initial)]
    print(json.dumps({
        "replicas": mirrored.num_replicas_in_sync,
        "variable_devices": sorted(
            {c.device for c in getattr(distributed.trainable_variables[0].value, "values", ())}
        ),
        "max_diff": max(diffs),
        "max_moved": max(moved),
        "bn_spread_without_sync": spread[False],
        "bn_spread_with_sync": spread[True],
        "iterations": [int(keras.ops.convert_to_numpy(m.optimizer.iterations)) for m in (reference, distributed)],
    }))


if __name__ == "__main__":
    sys.exit(main())
