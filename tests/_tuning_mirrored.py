"""A width search under MirroredStrategy over two logical CPU devices (run as a subprocess).

Logical devices must be configured before TensorFlow initialises, so
tests/test_tuning.py runs this file in a fresh interpreter. It searches
ResNet-20's widths with BayesianOptimization for two trials on random 16x16
images and prints one JSON line: the trials' statuses and, recorded from inside
each trial's ``fit``, the model's strategy, its number of replicas and the kind
of its variables.

Usage: python tests/_tuning_mirrored.py OUTPUT_DIR
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerasnets.tuning as kt  # noqa: E402

SEEN = []


class Probe(keras.callbacks.Callback):
    """Records, in each trial, what the model was built under."""

    def on_train_begin(self, logs=None):
        strategy = self.model.distribute_strategy
        variable = self.model.trainable_weights[0].value
        SEEN.append(
            {
                "strategy": type(strategy).__name__,
                "replicas": strategy.num_replicas_in_sync,
                "distributed_variable": isinstance(variable, tf.distribute.DistributedValues),
            }
        )


def main(output):
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    rng = np.random.default_rng(0)
    x = rng.random((64, 16, 16, 3), dtype=np.float32)
    y = rng.integers(0, 4, 64).astype("int32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    hypermodel = kt.WidthHyperModel(
        "resnet20", input_shape=(16, 16, 3), classes=4, batch_size=16, steps_per_epoch=4,
        epochs=1, overrides={"width_multiplier": 0.25},
    )
    tuner = kt.make_tuner(
        "bayesian", hypermodel, max_trials=2, directory=output, overwrite=True, seed=1,
        distribution_strategy=strategy,
    )
    tuner.search(data, validation_data=data.take(1), epochs=1, verbose=0, callbacks=[Probe()])
    trials = tuner.oracle.trials
    print(
        "RESULT "
        + json.dumps(
            {
                "devices": devices,
                "statuses": {t: trials[t].status for t in sorted(trials)},
                "seen": SEEN,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
