"""LocalResponseNormalization: numerics against TensorFlow and PyTorch's convention,
both data formats, mixed precision, serialisation, other backends, bad arguments."""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasnets.layers import LocalResponseNormalization, conv_bn_act

# (size, k, alpha, beta): AlexNet's, and settings where the sum of squares dominates k.
SETTINGS = [(5, 2.0, 1e-4, 0.75), (3, 1.0, 0.1, 0.5), (1, 0.5, 1.0, 1.0), (7, 1.0, 0.05, 0.75)]


def _inputs(shape=(2, 6, 5, 11), scale=100.0, seed=0):
    # Large values, so that alpha * sum of squares is comparable to k even for AlexNet's alpha.
    return (np.random.RandomState(seed).randn(*shape) * scale).astype("float32")


def _tf_lrn(x, size, k, alpha, beta):
    return tf.nn.local_response_normalization(
        x, depth_radius=(size - 1) // 2, bias=k, alpha=alpha, beta=beta
    ).numpy()


def _torch_lrn_numpy(x, size, alpha, beta, k):
    """PyTorch's nn.LocalResponseNorm on NHWC, written from its documentation:
    b_c = a_c * (k + alpha / n * sum_{c' = max(0, c - n/2)}^{min(N-1, c + n/2)} a_c'^2) ** -beta."""
    channels = x.shape[-1]
    out = np.empty_like(x, dtype=np.float64)
    for c in range(channels):
        lo, hi = max(0, c - size // 2), min(channels - 1, c + (size - 1) // 2)
        total = np.sum(x[..., lo : hi + 1].astype(np.float64) ** 2, axis=-1)
        out[..., c] = x[..., c] * (k + alpha / size * total) ** -beta
    return out


@pytest.mark.parametrize("size,k,alpha,beta", SETTINGS)
def test_matches_tensorflow_channels_last(size, k, alpha, beta):
    x = _inputs()
    expected = _tf_lrn(x, size, k, alpha, beta)
    # The normalisation must do something, or the comparison proves nothing.
    assert not np.allclose(expected, x / k**beta, rtol=1e-3)
    layer = LocalResponseNormalization(size, k=k, alpha=alpha, beta=beta, data_format="channels_last")
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("size,k,alpha,beta", SETTINGS)
def test_matches_tensorflow_channels_first(size, k, alpha, beta):
    x = _inputs()
    expected = _tf_lrn(x, size, k, alpha, beta)
    previous = keras.config.image_data_format()
    try:
        keras.config.set_image_data_format("channels_first")
        layer = LocalResponseNormalization(size, k=k, alpha=alpha, beta=beta)  # picks up the format
        assert layer.data_format == "channels_first"
        out = np.asarray(layer(np.transpose(x, (0, 3, 1, 2))))
    finally:
        keras.config.set_image_data_format(previous)
    np.testing.assert_allclose(np.transpose(out, (0, 2, 3, 1)), expected, rtol=2e-6, atol=1e-6)


def test_window_larger_than_channels_and_other_ranks():
    x = _inputs((3, 4, 3), scale=3.0)  # rank 3, 3 channels, a window of 7
    expected = _tf_lrn(x[:, None], 7, 1.0, 0.5, 0.75)[:, 0]
    out = LocalResponseNormalization(7, k=1.0, alpha=0.5, data_format="channels_last")(x)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("size", [3, 5])
def test_alpha_is_averaged_is_pytorch_and_caffe_convention(size):
    x = _inputs(scale=10.0)
    torch_alpha = 0.3
    expected = _torch_lrn_numpy(x, size, alpha=torch_alpha, beta=0.75, k=1.0)
    layer = LocalResponseNormalization(size, k=1.0, alpha=torch_alpha, beta=0.75, alpha_is_averaged=True)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=2e-6, atol=1e-6)
    same = LocalResponseNormalization(size, k=1.0, alpha=torch_alpha / size, beta=0.75)
    np.testing.assert_allclose(np.asarray(same(x)), expected, rtol=2e-6, atol=1e-6)


def test_mixed_precision_does_not_overflow():
    # 300**2 = 90,000 overflows float16 (max 65,504): the layer squares in float32.
    x = _inputs(scale=300.0)
    expected = _tf_lrn(x, 5, 2.0, 1e-4, 0.75)
    layer = LocalResponseNormalization(dtype="mixed_float16")
    out = layer(x.astype("float16"))
    assert out.dtype == "float16"
    out = np.asarray(out).astype("float32")
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, expected, rtol=2e-3, atol=2e-3)


def test_serialises_without_custom_objects(tmp_path):
    layer = LocalResponseNormalization(3, k=1.5, alpha=0.01, beta=0.6, alpha_is_averaged=True, name="lrn")
    config = json.loads(json.dumps(layer.get_config()))
    clone = LocalResponseNormalization.from_config(config)
    for key in ("size", "k", "alpha", "beta", "alpha_is_averaged", "data_format"):
        assert getattr(clone, key) == getattr(layer, key)

    inputs = keras.Input((4, 4, 6))
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "lrn.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)  # no custom_objects
    assert isinstance(loaded.get_layer("lrn"), LocalResponseNormalization)
    x = _inputs((2, 4, 4, 6), scale=5.0)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(size=4), "size must be a positive odd integer"),
        (dict(size=0), "size must be a positive odd integer"),
        (dict(size=2.5), "size must be a positive odd integer"),
        (dict(alpha="1e-4"), "alpha must be a finite number"),
        (dict(beta=float("nan")), "beta must be a finite number"),
        (dict(data_format="NHWC"), "data_format must be"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        LocalResponseNormalization(**kwargs)
    assert "Received:" in str(info.value)


_BACKEND_SCRIPT = """
import numpy as np
from kerasnets.layers import LocalResponseNormalization, conv_bn_act
x = np.load({path!r})
last = LocalResponseNormalization(5, k=2.0, alpha=1e-4, beta=0.75, data_format="channels_last")(x)
first = LocalResponseNormalization(5, k=2.0, alpha=1e-4, beta=0.75, data_format="channels_first")(
    np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))
np.save({out!r}, np.stack([np.asarray(last), np.transpose(np.asarray(first), (0, 2, 3, 1))]))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_backends(backend, tmp_path):
    """Written with keras.ops only: the same numbers under JAX and PyTorch (where installed)."""
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    x = _inputs()
    np.save(tmp_path / "x.npy", x)
    script = _BACKEND_SCRIPT.format(path=str(tmp_path / "x.npy"), out=str(tmp_path / "out.npy"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pythonpath = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=pythonpath)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = np.load(tmp_path / "out.npy")
    expected = _tf_lrn(x, 5, 2.0, 1e-4, 0.75)
    np.testing.assert_allclose(out[0], expected, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(out[1], expected, rtol=2e-6, atol=1e-6)


def test_conv_bn_act_initialises_with_hes_untruncated_gaussian():
    # He et al. (2015): zero-mean Gaussian, std sqrt(2 / fan_in), not truncated (a
    # truncated normal never exceeds ~2.3 std; it is also slower to sample on CPU).
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 64))
    model = keras.Model(inputs, conv_bn_act(inputs, 64, 3, name="d"))
    kernel = keras.ops.convert_to_numpy(model.get_layer("d_conv").kernel).ravel()
    std = (2.0 / (3 * 3 * 64)) ** 0.5
    assert abs(kernel.mean()) < 0.02 * std and abs(kernel.std() / std - 1) < 0.02
    assert (np.abs(kernel) > 3 * std).sum() > 30  # ~100 expected of 36,864 for a Gaussian
    custom = conv_bn_act(inputs, 4, 1, name="e", kernel_initializer="zeros")
    assert not np.any(keras.ops.convert_to_numpy(keras.Model(inputs, custom).get_layer("e_conv").kernel))
