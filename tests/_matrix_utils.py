"""Helpers for the registry test matrix: small, fast builds of any registered model."""

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
