"""`kerasnets._validate`: the argument checks every public function uses."""

import math

import numpy as np
import pytest

from kerasnets import _validate as v


def _error(check, *args, **kwargs):
    with pytest.raises(ValueError) as info:
        check(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("value", [1, 7, np.int64(3)])
def test_positive_ints_pass(value):
    assert v.check_int("epochs", value) == value and type(v.check_int("epochs", value)) is int


@pytest.mark.parametrize("value", [0, -1, True, False, 1.0, "2", None, math.nan])
def test_not_positive_ints(value):
    assert _error(v.check_int, "epochs", value) == f"epochs must be a positive integer. Received: epochs={value!r}"


def test_int_bounds_none_and_context():
    assert v.check_int("seed", 0, minimum=0) == 0
    assert _error(v.check_int, "k", -1, minimum=0) == "k must be a non-negative integer. Received: k=-1"
    assert _error(v.check_int, "n", 1, minimum=2) == "n must be an integer >= 2. Received: n=1"
    assert v.check_int("groups", None, allow_none=True) is None
    assert _error(v.check_int, "groups", True, allow_none=True, context="AlexNet") == (
        "groups must be a positive integer or None for AlexNet. Received: groups=True"
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0, -0.5, True, "1", None])
def test_not_positive_numbers(value):
    assert _error(v.check_number, "lr", value) == f"lr must be a positive number. Received: lr={value!r}"


def test_numbers():
    assert v.check_number("lr", 3) == 3.0 and isinstance(v.check_number("lr", 3), float)
    assert v.check_number("w", 0, allow_zero=True) == 0.0
    assert _error(v.check_number, "w", math.nan, allow_zero=True, context="GoogLeNet") == (
        "w must be a non-negative number for GoogLeNet. Received: w=nan"
    )
    assert v.check_number("momentum", 0.9, allow_zero=True, below=1) == 0.9
    assert _error(v.check_number, "momentum", 1, allow_zero=True, below=1) == (
        "momentum must be a non-negative number below 1. Received: momentum=1"
    )
    assert v.check_number("clip", None, allow_none=True) is None


@pytest.mark.parametrize("value", [0, 1, "yes", None, np.bool_(True)])
def test_booleans_are_bool_only(value):
    assert _error(v.check_bool, "batch_norm", value) == (
        f"batch_norm must be True or False. Received: batch_norm={value!r}"
    )
    assert v.check_bool("batch_norm", False) is False


@pytest.mark.parametrize("value", [0.0, 0.5, 0.999])
def test_probability_in_range(value):
    assert v.check_probability("dropout", value) == value


@pytest.mark.parametrize("value", [1, 1.0, -0.1, math.nan, True, "0.5"])
def test_probability_out_of_range(value):
    assert _error(v.check_probability, "dropout", value) == (
        f"dropout must be a number in [0, 1). Received: dropout={value!r}"
    )


def test_fraction():
    assert v.check_fraction("crop_fraction", 1) == 1.0
    assert _error(v.check_fraction, "crop_fraction", 0) == "crop_fraction must be a number in (0, 1]. Received: crop_fraction=0"


def test_widths():
    assert v.check_widths("stage_widths", [64, 128], length=2) == (64, 128)
    assert v.check_widths("w", (np.int64(3),)) == (3,)
    for bad in ([64, True], [64], [64, 0], [64, 2.0], "ab", 64, None):
        message = _error(v.check_widths, "stage_widths", bad, length=2, context="ResNet18")
        assert message == f"stage_widths must be 2 positive integers for ResNet18. Received: stage_widths={bad!r}"
    assert _error(v.check_widths, "w", [True]) == "w must be a sequence of positive integers. Received: w=[True]"


def test_choices():
    assert v.check_choice("pooling", None, (None, "avg", "max")) is None
    assert _error(v.check_choice, "pooling", "mean", (None, "avg", "max")) == (
        "pooling must be one of None, 'avg' or 'max'. Received: pooling='mean'"
    )
    assert _error(v.check_choice, "downsample_on", "2x2", ("1x1", "3x3")) == (
        "downsample_on must be '1x1' or '3x3'. Received: downsample_on='2x2'"
    )
    assert _error(v.check_choice, "augment", "scal", ("inception", "scale", "pad_crop")) == (
        "augment must be one of 'inception', 'scale' or 'pad_crop' (did you mean 'scale'?). "
        "Received: augment='scal'"
    )
    # 1 == True in Python: a bool is not taken for the choice 1, nor 1 for True.
    assert "Received: x=True" in _error(v.check_choice, "x", True, (1, 2))


def test_strings_and_paths(tmp_path):
    assert v.check_string("split", "train") == "train"
    for bad in ("", None, 3, b"train"):
        assert _error(v.check_string, "split", bad) == f"split must be a non-empty string. Received: split={bad!r}"
    assert v.check_path("path", tmp_path / "m.keras", suffix=".keras") == str(tmp_path / "m.keras")
    assert v.check_path("backup_dir", "runs/a") == "runs/a"
    assert _error(v.check_path, "path", "m.h5", suffix=".keras") == "path must be a path ending in .keras. Received: path='m.h5'"
    assert _error(v.check_path, "backup_dir", "", expected="a folder path") == (
        "backup_dir must be a folder path. Received: backup_dir=''"
    )
    for bad in (None, 3, True):
        assert _error(v.check_path, "source", bad).startswith("source must be a file or folder path. Received:")


def test_instances():
    assert v.check_instance("history", {}, dict, "a dict") == {}
    assert _error(v.check_instance, "history", [1], (dict,), "a History or a dict", context="plot_history") == (
        "history must be a History or a dict for plot_history. Received: history=[1]"
    )


@pytest.mark.parametrize("value", ["10.0.0.1:1234", "localhost:65535", "[::1]:80"])
def test_host_port(value):
    assert v.check_host_port("coordinator", value) == value


@pytest.mark.parametrize("value", ["localhost:0", "127.0.0.1:99999"])
def test_host_port_out_of_range(value):  # JAX aborts the process on them (issue 26)
    assert _error(v.check_host_port, "coordinator", value) == (
        f"coordinator must be HOST:PORT with a port from 1 to 65535. Received: coordinator={value!r}"
    )


@pytest.mark.parametrize("value", ["10.0.0.1", ":1234", "host:", "host:12a", None, 1234])
def test_not_host_port(value):
    assert _error(v.check_host_port, "coordinator", value) == (
        f"coordinator must be HOST:PORT. Received: coordinator={value!r}"
    )


def test_keys():
    assert v.check_keys("loss", {"main": 1}, ["main", "aux1"]) == {"main": 1}
    assert _error(v.check_keys, "loss", {"aux3": 1, "main": 1}, ["main", "aux1"], what="outputs", context="GoogLeNet") == (
        "loss must be keyed by the outputs ['main', 'aux1'] (unknown outputs: ['aux3']) for GoogLeNet. "
        "Received: loss={'aux3': 1, 'main': 1}"
    )


def test_free_of():
    assert v.check_free_of("model_kwargs", {"depth": 20}, {"classes"}, "set from the data") == {"depth": 20}
    assert _error(v.check_free_of, "model_kwargs", {"classes": 3, "name": "a"}, {"name", "classes"}, "set from the data") == (
        "model_kwargs must be free of ['classes', 'name'] (set from the data). "
        "Received: model_kwargs={'classes': 3, 'name': 'a'}"
    )
