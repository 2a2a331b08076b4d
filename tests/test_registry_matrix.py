"""One matrix over the registry: every registered model, every contract option.

A model added to the registry joins every test here automatically; the only
thing it must bring is its reference parameter count in `TRAINABLE_PARAMS`.

Every model is built at full size, counted and its layer names checked (unique, none
left to Keras's automatic naming). What depends only on the architecture (the forward
and backward pass reaching every weight, its minimum size, channels_first, pooling,
classes, saving) runs once per architecture: the deeper models of a family
(`DEPTH_VARIANTS`) stack more of the same blocks with the same names and options, and in
CI's time their builds and eager passes cost minutes while testing no code the
shallower one does not.
"""

import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasnets
from _matrix_utils import (
    accepts, hwc, images, info, nchw_convolution_runs, outputs_of, small_kwargs, small_size,
    symbolic_output_shapes,
)

MODELS = kerasnets.list_models()

# A deeper model -> the model of its family with the same blocks (only their count differs).
DEPTH_VARIANTS = {
    "resnet34": "resnet18", "resnet101": "resnet50", "resnet152": "resnet50",
    "resnet32": "resnet20", "resnet44": "resnet20", "resnet56": "resnet20", "resnet110": "resnet20",
    "vgg13": "vgg11", "vgg16": "vgg11", "vgg19": "vgg11",
    "vgg13_bn": "vgg11_bn", "vgg16_bn": "vgg11_bn", "vgg19_bn": "vgg11_bn",
}
ARCHITECTURES = [m for m in MODELS if m not in DEPTH_VARIANTS]

# Trainable parameters with the default arguments (classes=1000, or 10 for the
# CIFAR ResNets); auxiliary heads included where they are on by default.
# Sources: torchvision's published num_params (which excludes BatchNorm
# moving statistics, as trainable counts do), keras.applications, the papers.
TRAINABLE_PARAMS = {
    # torchvision resnet*.num_params
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    # He et al. Table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M (rounded; exact counts here)
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    # Krizhevsky et al.: two-GPU groups (also Caffe's reference AlexNet)
    "alexnet": 60_965_224,
    # torchvision vgg*.num_params (vgg16 = keras.applications.VGG16); Table 2 for C
    "vgg11": 132_863_336,
    "vgg11_lrn": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16_c": 133_638_952,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840,
    "vgg13_bn": 133_053_736,
    "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
    # GoogLeNet: Table 1 widths (6,998,552 without the heads; see test_googlenet.py)
    # plus the two auxiliary classifiers at 224x224
    "googlenet": 13_378_280,
    "googlenet_bn": 13_385_816,
    # keras.applications.InceptionV3 (trainable); v2: Table 1 with our documented widths
    "inception_v3": 23_817_352,
    "inception_v2": 25_474_184,
}

AUTOMATIC_NAME = re.compile(
    r"^(conv2d|dense|batch_normalization|activation|max_pooling2d|average_pooling2d|"
    r"dropout|concatenate|add|zero_padding2d|flatten|global_average_pooling2d|"
    r"local_response_normalization|lambda)(_\d+)?$"
)


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.fixture(params=MODELS)
def name(request):
    return request.param


@pytest.fixture(params=ARCHITECTURES)
def architecture(request):
    """One model per architecture (see the module's docstring)."""
    return request.param


def test_depth_variants_differ_only_in_depth():
    """A depth variant has the layer types and options of its base, more of them."""
    assert set(DEPTH_VARIANTS) <= set(MODELS) and set(DEPTH_VARIANTS.values()) <= set(ARCHITECTURES)
    for deeper, base in DEPTH_VARIANTS.items():
        deep_info, base_info = info(deeper), info(base)
        assert (deep_info.min_size, deep_info.default_size) == (base_info.min_size, base_info.default_size)
        assert set(kerasnets.registry.get_entry(deeper).builder.__signature__.parameters) == set(
            kerasnets.registry.get_entry(base).builder.__signature__.parameters), deeper


def test_every_model_has_a_reference_count():
    missing = sorted(set(MODELS) - set(TRAINABLE_PARAMS))
    assert not missing, f"add reference parameter counts for {missing}"


def test_forward_and_gradients(architecture):
    size = small_size(architecture)
    model = kerasnets.get_model(
        architecture, input_shape=hwc(size), classes=7, classifier_activation=None, **small_kwargs(architecture)
    )
    x = images(hwc(size))
    with tf.GradientTape() as tape:
        outs = outputs_of(model(x, training=True))
        # A random projection of every output: each weight influences it.
        loss = sum(
            tf.reduce_sum(out * tf.constant(np.random.default_rng(i).normal(size=out.shape), tf.float32))
            for i, out in enumerate(outs.values())
        )
    for key, out in outs.items():
        assert tuple(out.shape) == (2, 7), key
        assert np.all(np.isfinite(out)), key
    grads = tape.gradient(loss, model.trainable_weights)
    for weight, grad in zip(model.trainable_weights, grads):
        assert grad is not None, f"no gradient reaches {weight.path}"
        assert np.any(grad.numpy() != 0), f"zero gradient for {weight.path}"


def test_features_without_pooling(architecture):
    """include_top=False, pooling=None: the 4D feature map; here with one input channel."""
    size = small_size(architecture)
    model = kerasnets.get_model(
        architecture, include_top=False, input_shape=hwc(size, 1), **small_kwargs(architecture)
    )
    out = model(images(hwc(size, 1), batch=1))
    assert not isinstance(out, dict), "feature extractors have a single output"
    assert len(out.shape) == 4 and out.shape[1] >= 1 and out.shape[2] >= 1
    assert np.all(np.isfinite(out))


def test_avg_pooling_on_an_input_tensor(architecture):
    """pooling="avg" on a user's keras.Input; the model composes in the user's graph."""
    size = small_size(architecture)
    inputs = keras.Input(shape=hwc(size), name="my_images")
    model = kerasnets.get_model(
        architecture, include_top=False, pooling="avg", input_tensor=inputs, **small_kwargs(architecture)
    )
    assert model.inputs[0] is inputs
    assert len(model.output.shape) == 2
    head = keras.layers.Dense(3, name="my_head")(model.output)
    user_model = keras.Model(inputs, head)
    assert tuple(user_model(images(hwc(size), batch=1)).shape) == (1, 3)


def test_max_pooling_any_size_four_channels(architecture):
    """pooling="max" with input_shape=(None, None, 4): one model, several input sizes."""
    model = kerasnets.get_model(
        architecture, include_top=False, pooling="max", input_shape=(None, None, 4), **small_kwargs(architecture)
    )
    size = small_size(architecture)
    a = model(images(hwc(size, 4), batch=1))
    b = model(images(hwc(size + 16, 4), batch=1))
    assert len(a.shape) == 2 and a.shape == b.shape
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))


def test_classes_and_softmax(architecture):
    size = small_size(architecture)
    model = kerasnets.get_model(architecture, input_shape=hwc(size), classes=3, **small_kwargs(architecture))
    for key, out in outputs_of(model(images(hwc(size)))).items():
        assert tuple(out.shape) == (2, 3), key
        np.testing.assert_allclose(np.sum(out, axis=-1), 1.0, rtol=1e-5, err_msg=key)
        assert out.dtype == "float32"


def test_channels_first(architecture, channels_first):
    """Every channel-wise layer works on axis 1 and the output shapes are right.

    The shapes are checked on the functional graph everywhere; the forward pass
    runs only where the backend runs NCHW convolutions on this device (TensorFlow
    on a CPU without oneDNN's NCHW path refuses them; see `nchw_convolution_runs`).
    """
    size = small_size(architecture)
    model = kerasnets.get_model(architecture, input_shape=hwc(size), classes=3, **small_kwargs(architecture))
    assert hwc(size)[0] == 3 and model.input_shape == (None, *hwc(size))
    for key, shape in symbolic_output_shapes(model).items():
        assert shape == (None, 3), key
    if nchw_convolution_runs():
        for key, out in outputs_of(model(images(hwc(size)))).items():
            assert tuple(out.shape) == (2, 3), key
            assert np.all(np.isfinite(out)), key
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            assert layer.axis in (1, [1]), layer.name
        elif isinstance(layer, keras.layers.Concatenate):
            assert layer.axis in (1, -3), layer.name
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
            assert layer.data_format == "channels_first", layer.name


def test_minimum_size_is_the_architectures(architecture):
    """``info.min_size`` builds and runs; one pixel less is refused before building."""
    minimum = info(architecture).min_size
    model = kerasnets.get_model(
        architecture, include_top=False, input_shape=hwc(minimum), **small_kwargs(architecture)
    )
    out = model(images(hwc(minimum), batch=1))
    assert out.shape[1] >= 1 and out.shape[2] >= 1
    if minimum > 1:
        with pytest.raises(ValueError, match=rf"at least {minimum}x{minimum}.*Received: input_shape"):
            kerasnets.get_model(architecture, input_shape=hwc(minimum - 1))


def test_keras_file_round_trip(architecture, tmp_path):
    size = small_size(architecture)
    model = kerasnets.get_model(architecture, input_shape=hwc(size), classes=4, **small_kwargs(architecture))
    path = os.fspath(tmp_path / f"{architecture}.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    x = images(hwc(size))
    expected = outputs_of(model(x, training=False))
    got = outputs_of(loaded(x, training=False))
    assert sorted(expected) == sorted(got)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


def test_parameter_count_and_layer_names(name, no_random_init):
    model = kerasnets.get_model(name)
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names)), "layer names must be unique"
    automatic = [n for n in names if AUTOMATIC_NAME.match(n)]
    assert not automatic, f"automatic layer names: {automatic}"
    if name not in TRAINABLE_PARAMS:
        pytest.skip("reported by test_every_model_has_a_reference_count")
    assert trainable_count(model) == TRAINABLE_PARAMS[name]


def test_registered_builder_is_public(name):
    entry = kerasnets.registry.get_entry(name)
    assert getattr(kerasnets, entry.builder.__name__) is entry.builder
    assert entry.builder.info.paper and entry.builder.info.default_size >= 1
    assert accepts(name, "weights") and accepts(name, "classifier_activation")
