"""MirroredStrategy on two logical CPU devices, in subprocesses.

Logical devices must be configured before TensorFlow initialises, which the
test process has long done: each check runs in a fresh interpreter.
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_mirrored_two_devices_equals_one_device():
    result = _run([os.path.join(REPO, "tests", "_mirrored_equivalence.py")])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert len(report["variable_devices"]) == 2  # a copy of each variable on each device
    assert report["iterations"] == [3, 3]
    assert report["max_moved"] > 1e-3  # the steps changed the weights...
    assert report["max_diff"] < 1e-5  # ...identically, up to float32 rounding
    # Keras lets the replicas' BatchNorm statistics drift apart; the callback that
    # `kerasnets train` adds under MirroredStrategy averages them.
    assert report["bn_spread_without_sync"] > 1e-3
    assert report["bn_spread_with_sync"] < 1e-6


def test_split_cpu_after_initialisation_is_a_clear_error():
    import tensorflow as tf

    from kerasnets.training.strategy import split_cpu

    tf.constant(1.0)  # TensorFlow is initialised in this process
    with pytest.raises(ValueError, match="already initialised 1 CPU device"):
        split_cpu(2)
    split_cpu(1)  # what it already is: fine
    with pytest.raises(ValueError, match="positive integer"):
        split_cpu(0)


# The `kerasnets train --strategy mirrored --cpu-devices 2` run end to end is in
# test_train_cli.py.
