"""Helpers for the registry test matrix: small, fast builds of any registered model."""

import functools
import inspect

import keras
import numpy as np

import kerasnets
from kerasnets.registry import get_entry


def info(name):
    return kerasnets.get_model_info(name)


def small_size(name):
    """The smallest size the matrix builds a model at: its minimum, at least 32."""
    return max(info(name).min_size, 32)


def accepts(name, argument):
    return argument in inspect.signature(get_entry(name).builder).parameters


def small_kwargs(name):
    """Narrower models where the builder allows it (widths don't change the contract)."""
    return {"width_multiplier": 0.25} if accepts(name, "width_multiplier") else {}


def outputs_of(result):
    """Every output of a model call, as a dict (single outputs under "main")."""
    return result if isinstance(result, dict) else {"main": result}


def images(shape, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, *shape)).astype("float32")


def hwc(size, channels=3):
    if keras.config.image_data_format() == "channels_last":
        return (size, size, channels)
    return (channels, size, size)


@functools.lru_cache(maxsize=None)
def nchw_convolution_runs():
    """Whether this process's backend runs a channels_first convolution on its device.

    TensorFlow's CPU Conv2D runs NCHW only where its oneDNN kernels take it: it
    did on a CPU with AVX-512 and refused on an AMD EPYC without
    ("UnimplementedError: The Conv2D op currently only supports the NHWC tensor
    format on the CPU"). GPUs, and the JAX and PyTorch backends on any CPU, run
    it. Which CPU runs the suite is not ours to choose, so the tests that call a
    channels_first model ask this probe first, in the same process.
    """
    layer = keras.layers.Conv2D(1, 3, data_format="channels_first")
    x = np.ones((1, 1, 5, 5), "float32")
    if keras.backend.backend() != "tensorflow":
        return True
    import tensorflow as tf

    try:
        keras.ops.convert_to_numpy(layer(x))
    except (tf.errors.UnimplementedError, tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
        return False
    return True


def symbolic_output_shapes(model):
    """Each output's static shape, as the functional graph computed it (no kernel runs)."""
    return {key: tuple(t.shape) for key, t in outputs_of(model.output).items()}
