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


def _minutes(item):
    marker = item.get_closest_marker("slow")
    return marker.kwargs.get("minutes", 1) if marker else 0


def pytest_collection_modifyitems(config, items):
    """The long tests (marked ``slow``, longest first) start first, each beside short ones.

    With ``pytest -n 2`` the workers take tests in collection order, so a
    several-minute test collected near the end would run alone after every other
    test and lengthen the run by its whole duration. The longest goes first with a
    short one after it, so that the next slow tests go to the other worker rather
    than wait behind it (see `pytest_configure`). The order is deterministic, so
    every worker collects the same list.
    """
    slow = sorted((i for i in items if _minutes(i)), key=_minutes, reverse=True)
    rest = [i for i in items if not _minutes(i)]
    items[:] = slow[:1] + rest[:1] + slow[1:] + rest[1:]


def pytest_configure(config):
    """Under pytest-xdist, hand tests to the workers one at a time.

    xdist's ``load`` scheduler otherwise gives each worker a first chunk of a
    quarter of its share (about 80 tests here): every slow test collected first
    would land on one worker and run one after the other.
    """
    if getattr(config.option, "maxschedchunk", "absent") is None:
        config.option.maxschedchunk = 1
