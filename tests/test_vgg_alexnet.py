"""VGG and AlexNet: what the registry matrix cannot check.

Exact parameter counts (built at full size without random initialisation),
the paper's Table 2, the layer layout of Table 1, compatibility with
keras.applications' VGG16/VGG19, AlexNet's options and geometry, and the
validation of the family options.
"""

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets.card import CARD_LAYER
from kerasnets.layers import LocalResponseNormalization
from kerasnets.models import alexnet as alexnet_module

# name: (trainable parameters, non-trainable parameters, Table 2 of the paper in millions).
# Trainable counts equal torchvision's vgg*.num_params; vgg16 also equals keras.applications.VGG16.
VGG_PARAMS = {
    "vgg11": (132_863_336, 0, 133),
    "vgg11_lrn": (132_863_336, 0, 133),
    "vgg13": (133_047_848, 0, 133),
    "vgg16_c": (133_638_952, 0, 134),
    "vgg16": (138_357_544, 0, 138),
    "vgg19": (143_667_240, 0, 144),
    # BatchNorm moving mean and variance: 2 x the channels of every convolution.
    "vgg11_bn": (132_868_840, 5_504, None),
    "vgg13_bn": (133_053_736, 5_888, None),
    "vgg16_bn": (138_365_992, 8_448, None),
    "vgg19_bn": (143_678_248, 11_008, None),
}
CONVS = {"vgg11": 8, "vgg11_lrn": 8, "vgg13": 10, "vgg16_c": 13, "vgg16": 13, "vgg19": 16}


def _count(weights):
    return int(sum(np.prod(w.shape) for w in weights))


def _small(builder, size=32, **kwargs):
    return builder(input_shape=(size, size, 3), **kwargs)


# --------------------------------------------------------------------------- VGG


def test_every_vgg_is_registered_with_a_public_builder():
    assert set(kerasnets.list_models("vgg*")) == set(VGG_PARAMS)
    for name in VGG_PARAMS:
        builder = kerasnets.registry.get_entry(name).builder
        assert getattr(kerasnets, builder.__name__) is builder
        assert builder.info.family == "vgg" and builder.info.min_size == 32
        assert builder.info.preprocessing.name == "mean_subtraction"
    assert kerasnets.registry.get_entry("vgg16_bn").builder is kerasnets.VGG16BN
    assert "batch_norm" not in kerasnets.VGG16BN.__signature__.parameters
    assert "batch_norm" in kerasnets.VGG16.__signature__.parameters


@pytest.mark.parametrize("name", sorted(VGG_PARAMS))
def test_vgg_parameter_counts(name, no_random_init):
    trainable, non_trainable, table2 = VGG_PARAMS[name]
    model = kerasnets.get_model(name)  # 224x224, 1000 classes
    assert model.name == name
    assert _count(model.trainable_weights) == trainable
    assert _count(model.non_trainable_weights) == non_trainable
    if table2 is not None:
        assert round(model.count_params() / 1e6) == table2


def test_vgg16_count_equals_keras_applications(no_random_init):
    reference = keras.applications.VGG16(weights=None)
    assert reference.count_params() == kerasnets.VGG16().count_params() == 138_357_544


@pytest.mark.parametrize("name", sorted(CONVS))
def test_table1_layout(name):
    model = kerasnets.get_model(name, input_shape=(32, 32, 3), width_multiplier=0.125)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert len(convs) == CONVS[name] and len(dense) == 3  # "VGG-n": n weight layers
    assert [layer.name for layer in dense] == ["fc1", "fc2", "predictions"]
    one_by_one = [c.name for c in convs if c.kernel_size == (1, 1)]
    assert one_by_one == (["block3_conv3", "block4_conv3", "block5_conv3"] if name == "vgg16_c" else [])
    for conv in convs:
        assert conv.strides == (1, 1) and conv.padding == "same" and conv.use_bias
        assert conv.activation is keras.activations.relu
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert [p.name for p in pools] == [f"block{b}_pool" for b in range(1, 6)]
    assert all(p.pool_size == (2, 2) and p.strides == (2, 2) for p in pools)
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert [d.rate for d in dropouts] == [0.5, 0.5]
    lrn = [layer for layer in model.layers if isinstance(layer, LocalResponseNormalization)]
    if name == "vgg11_lrn":
        (layer,) = lrn
        names = [layer.name for layer in model.layers]
        assert names.index("block1_lrn") == names.index("block1_conv1") + 1
        assert (layer.size, layer.k, layer.alpha, layer.beta) == (5, 2.0, 1e-4, 0.75)
    else:
        assert not lrn


def test_batch_norm_variant_layout():
    model = kerasnets.VGG11BN(input_shape=(32, 32, 3), width_multiplier=0.125, classes=3)
    names = [layer.name for layer in model.layers]
    i = names.index("block1_conv1")
    assert names[i : i + 3] == ["block1_conv1", "block1_conv1_bn", "block1_conv1_relu"]
    conv, bn = model.get_layer("block1_conv1"), model.get_layer("block1_conv1_bn")
    assert conv.use_bias and conv.activation is keras.activations.linear  # torchvision keeps the bias
    assert (bn.epsilon, bn.momentum) == (1e-5, 0.9)
    assert len([n for n in names if n.endswith("_bn")]) == 8
    same = kerasnets.VGG11(batch_norm=True, input_shape=(32, 32, 3), width_multiplier=0.125, classes=3)
    assert [layer.name for layer in same.layers] == names and same.name == "vgg11_bn"


@pytest.mark.parametrize("ours,reference", [("VGG16", "VGG16"), ("VGG19", "VGG19")])
def test_keras_applications_weights_load(ours, reference, tmp_path):
    """Same weight layers, names and shapes as keras.applications; its weights files
    load by `weights=path` and give identical predictions."""
    ref = getattr(keras.applications, reference)(weights=None, input_shape=(32, 32, 3), classes=5)
    path = str(tmp_path / "reference.weights.h5")
    ref.save_weights(path)
    model = getattr(kerasnets, ours)(weights=path, input_shape=(32, 32, 3), classes=5)

    def layout(m):
        return [(layer.name, [tuple(w.shape) for w in layer.weights]) for layer in m.layers if layer.weights]

    assert layout(model) == layout(ref)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model(x, training=False), ref(x, training=False), rtol=1e-5, atol=1e-7)


def test_vgg_width_multiplier():
    model = kerasnets.VGG11(input_shape=(32, 32, 3), width_multiplier=0.5, classes=4)
    assert model.get_layer("block1_conv1").filters == 32
    assert model.get_layer("block5_conv2").filters == 256
    assert model.get_layer("fc1").units == model.get_layer("fc2").units == 2048
    assert model.get_layer("predictions").units == 4
    x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype("float32")
    assert tuple(model(x).shape) == (1, 4)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(width_multiplier=0), "width_multiplier must be a positive number"),
        (dict(width_multiplier="2"), "width_multiplier must be a positive number"),
        (dict(dropout=1.0), r"dropout must be a number in \[0, 1\)"),
        (dict(dropout=-0.1), r"dropout must be a number in \[0, 1\)"),
        (dict(batch_norm="yes"), "batch_norm must be True or False"),
        (dict(input_shape=(None, None, 3)), "needs a fixed height and width"),
        (dict(input_shape=(31, 31, 3)), "at least 32x32"),
    ],
)
def test_vgg_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        kerasnets.VGG11(**kwargs)
    assert "Received:" in str(info.value)


# ----------------------------------------------------------------------- AlexNet


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        (dict(), 60_965_224),  # the paper's two-GPU network (Caffe's bvlc_alexnet count too)
        (dict(groups=1), 62_378_344),  # a single tower
        (dict(variant="torchvision"), 61_100_840),  # torchvision's alexnet.num_params
    ],
)
def test_alexnet_parameter_counts(kwargs, expected, no_random_init):
    model = kerasnets.AlexNet(**kwargs)
    assert model.count_params() == _count(model.trainable_weights) == expected


def test_alexnet_paper_layout_and_geometry():
    """Figure 2 from 227x227 inputs: 55x55x96, 27x27x256, 13x13x384, 13x13x384, 6x6x256."""
    assert kerasnets.AlexNet.info.default_size == 227 and kerasnets.AlexNet.info.min_size == 67
    model = kerasnets.AlexNet(include_top=False)
    assert model.input_shape == (None, 227, 227, 3)
    shapes = {layer.name: layer.output.shape[1:] for layer in model.layers}
    assert shapes["conv1"] == (55, 55, 96) and shapes["pool1"] == (27, 27, 96)
    assert shapes["conv2"] == (27, 27, 256) and shapes["pool2"] == (13, 13, 256)
    assert shapes["conv3"] == shapes["conv4"] == (13, 13, 384)
    assert shapes["pool5"] == (6, 6, 256)
    groups = {name: model.get_layer(name).groups for name in ("conv1", "conv2", "conv3", "conv4", "conv5")}
    assert groups == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    names = [layer.name for layer in model.layers if layer.name != CARD_LAYER]  # the model card rides along
    assert names[1:8] == ["conv1", "norm1", "pool1", "conv2", "norm2", "pool2", "conv3"]
    for norm in ("norm1", "norm2"):
        layer = model.get_layer(norm)
        assert isinstance(layer, LocalResponseNormalization)
        assert (layer.size, layer.k, layer.alpha, layer.beta) == (5, 2.0, 1e-4, 0.75)
    for pool in ("pool1", "pool2", "pool5"):  # overlapping pooling: z=3, s=2
        assert model.get_layer(pool).pool_size == (3, 3) and model.get_layer(pool).strides == (2, 2)
    single = kerasnets.AlexNet(include_top=False, groups=1, width_multiplier=0.25)
    assert all(layer.groups == 1 for layer in single.layers if isinstance(layer, keras.layers.Conv2D))


def test_alexnet_top_drops_after_fc6_and_fc7():
    names = [layer.name for layer in kerasnets.AlexNet(input_shape=(67, 67, 3), width_multiplier=0.125).layers]
    assert names[-6:] == ["pool5_flatten", "fc6", "drop6", "fc7", "drop7", "predictions"]


def test_alexnet_torchvision_variant():
    info = alexnet_module.TORCHVISION_INFO
    assert info.default_size == 224 and info.min_size == 63
    model = kerasnets.AlexNet(variant="torchvision", include_top=False)
    assert model.input_shape == (None, 224, 224, 3) and model.name == "alexnet_torchvision"
    filters = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert filters == [64, 192, 384, 256, 256]
    assert model.get_layer("conv1_pad").padding == ((2, 2), (2, 2))  # symmetric, as PyTorch's padding=2
    assert model.output.shape[1:] == (6, 6, 256)
    assert not any(isinstance(layer, LocalResponseNormalization) for layer in model.layers)
    assert all(layer.groups == 1 for layer in model.layers if isinstance(layer, keras.layers.Conv2D))

    small = kerasnets.AlexNet(variant="torchvision", input_shape=(63, 63, 3), width_multiplier=0.125, classes=3)
    names = [layer.name for layer in small.layers]
    assert names[-6:] == ["pool5_flatten", "drop6", "fc6", "drop7", "fc7", "predictions"]
    x = np.random.default_rng(0).uniform(-1, 1, (2, 63, 63, 3)).astype("float32")
    out = small(x)
    assert tuple(out.shape) == (2, 3) and np.all(np.isfinite(out))
    with pytest.raises(ValueError, match="at least 63x63"):
        kerasnets.AlexNet(variant="torchvision", input_shape=(62, 62, 3))


def test_alexnet_width_multiplier_keeps_groups_divisible():
    model = kerasnets.AlexNet(input_shape=(67, 67, 3), width_multiplier=0.3, classes=2)
    filters = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert filters == [28, 76, 116, 116, 76]  # 0.3 x (96, 256, 384, 384, 256), rounded to even
    assert model.get_layer("fc6").units == 1229
    x = np.random.default_rng(0).uniform(-1, 1, (1, 67, 67, 3)).astype("float32")
    assert tuple(model(x).shape) == (1, 2)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(variant="caffe"), "variant must be 'paper' or 'torchvision' for AlexNet"),
        (dict(groups=0), "groups must be a positive integer"),
        (dict(groups=True), "groups must be a positive integer"),
        (dict(dropout=1), r"dropout must be a number in \[0, 1\)"),
        (dict(width_multiplier=-1.0), "width_multiplier must be a positive number"),
        (dict(input_shape=(66, 66, 3)), "at least 67x67"),
    ],
)
def test_alexnet_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        kerasnets.AlexNet(**kwargs)
    assert "Received:" in str(info.value)
