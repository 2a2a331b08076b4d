"""Shared test set-up: quiet TensorFlow logs, fixed seeds, data-format isolation."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolate_keras_state():
    """Every test starts with channels_last, float32 and a fixed seed."""
    keras.config.set_image_data_format("channels_last")
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_image_data_format("channels_last")
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def channels_first():
    keras.config.set_image_data_format("channels_first")
    yield
    keras.config.set_image_data_format("channels_last")


@pytest.fixture
def no_random_init(monkeypatch):
    """Counting parameters needs the variables, not random values: 143M of them take
    seconds to draw on 2 cores. Every default kernel initializer (glorot_uniform,
    he_normal, ...) is a VarianceScaling; make it return zeros for the test."""
    monkeypatch.setattr(
        keras.initializers.VarianceScaling,
        "__call__",
        lambda self, shape, dtype=None: keras.ops.zeros(shape, dtype=dtype),
    )


def pytest_collection_modifyitems(config, items):
    """The long tests (marked ``slow``) start first.

    With ``pytest -n 2`` the workers take tests in collection order; a
    several-minute test collected near the end would run alone after every other
    test is done and lengthen the run by its whole duration. The sort is stable,
    so every worker still sees the same order.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
