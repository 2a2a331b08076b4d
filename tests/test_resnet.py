"""ResNet specifics the registry matrix cannot see."""

import keras
import numpy as np
import pytest

import kerasnets


def _conv_kernels(model):
    return [tuple(layer.kernel.shape) for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


@pytest.mark.parametrize("builder", [kerasnets.ResNet18, kerasnets.ResNet20])
def test_plain_network_has_the_same_layers_without_shortcuts(builder):
    residual = builder(include_top=False, input_shape=(32, 32, 3))
    plain = builder(include_top=False, input_shape=(32, 32, 3), residual=False)
    assert plain.name.startswith("plain")
    assert not any(isinstance(layer, keras.layers.Add) for layer in plain.layers)
    # The plain net's convolutions are the residual net's minus the projections.
    projections = [layer for layer in residual.layers if layer.name.endswith("_0_conv")]
    assert len(_conv_kernels(plain)) == len(_conv_kernels(residual)) - len(projections)
    assert residual.output.shape == plain.output.shape


def test_cifar_networks_have_6n_plus_2_layers_and_option_a_shortcuts():
    for depth, n in kerasnets.models.resnet.CIFAR_DEPTHS.items():
        model = kerasnets.get_model(f"resnet{depth}")
        weighted = [l for l in model.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]
        assert len(weighted) == 6 * n + 2 == depth
        assert not any(l.name.endswith("_0_conv") for l in model.layers), "option A has no projections"
    model = kerasnets.ResNet20(include_top=False)
    assert model.get_layer("conv2_block3_out").output.shape[1:] == (32, 32, 16)
    assert model.get_layer("conv3_block3_out").output.shape[1:] == (16, 16, 32)
    assert model.get_layer("conv4_block3_out").output.shape[1:] == (8, 8, 64)


def test_imagenet_stage_outputs_by_name():
    model = kerasnets.ResNet50(include_top=False)
    expected = {"conv1_relu": (112, 112, 64), "conv2_block3_out": (56, 56, 256),
                "conv3_block4_out": (28, 28, 512), "conv4_block6_out": (14, 14, 1024),
                "conv5_block3_out": (7, 7, 2048)}
    for name, shape in expected.items():
        assert model.get_layer(name).output.shape[1:] == shape
    assert not any(l.use_bias for l in model.layers if isinstance(l, keras.layers.Conv2D)), (
        "convolutions before BatchNormalization carry no bias"
    )


def test_downsampling_position():
    paper = kerasnets.ResNet50(include_top=False, input_shape=(64, 64, 3))
    v15 = kerasnets.ResNet50(include_top=False, input_shape=(64, 64, 3), downsample_on="3x3")
    assert paper.get_layer("conv3_block1_1_conv").strides == (2, 2)
    assert paper.get_layer("conv3_block1_2_conv").strides == (1, 1)
    assert v15.get_layer("conv3_block1_1_conv").strides == (1, 1)
    assert v15.get_layer("conv3_block1_2_conv").strides == (2, 2)
    # Strided 3x3 convolutions are padded explicitly and symmetrically.
    assert v15.get_layer("conv3_block1_2_pad").padding == ((1, 1), (1, 1))
    assert paper.count_params() == v15.count_params()
    assert paper.output.shape == v15.output.shape


def test_width_multiplier_and_stage_widths():
    model = kerasnets.ResNet18(include_top=False, width_multiplier=0.5)
    assert model.get_layer("conv1_conv").filters == 32
    assert model.get_layer("conv5_block2_2_conv").filters == 256
    model = kerasnets.ResNet50(include_top=False, stage_widths=(8, 16, 32, 64), width_multiplier=0.5)
    assert model.get_layer("conv2_block1_1_conv").filters == 4
    assert model.get_layer("conv5_block3_3_conv").filters == 128
    tiny = kerasnets.ResNet20(width_multiplier=0.04)  # 16 filters -> round(0.64) = 1
    assert min(l.filters for l in tiny.layers if isinstance(l, keras.layers.Conv2D)) == 1
    with pytest.raises(ValueError, match=r"width_multiplier must be above 0.03125, so that every layer keeps "
                                         r"at least one channel \(the narrowest has 16 filters\) for ResNet20"):
        kerasnets.ResNet20(width_multiplier=1e-6)  # not a 285-parameter "ResNet-20"


def test_drop_in_for_keras_applications(tmp_path):
    """fit, predict, save, load: the way a user treats keras.applications.ResNet50."""
    model = kerasnets.ResNet18(weights=None, input_shape=(32, 32, 3), classes=4, width_multiplier=0.25)
    reference = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=4)
    assert type(model) is type(reference)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (16, 32, 32, 3)).astype("float32"), rng.integers(0, 4, 16)
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    predictions = model.predict(x, verbose=0)
    assert predictions.shape == (16, 4)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), predictions, rtol=1e-5, atol=1e-6)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)  # compiled state comes back too


def test_cifar_zero_padding_shortcuts_refuse_decreasing_widths():
    with pytest.raises(ValueError, match=r"must not decrease. Received: stage_widths=\(32, 16, 64\)"):
        kerasnets.ResNet20(stage_widths=(32, 16, 64))
    # The plain network has no shortcuts, so any widths build.
    kerasnets.ResNet20(stage_widths=(32, 16, 64), residual=False, include_top=False)


@pytest.mark.parametrize("builder, last", [(kerasnets.ResNet20, "_2_bn"), (kerasnets.ResNet50, "_3_bn")])
def test_zero_init_residual_zeroes_each_blocks_last_gamma_and_defaults_to_the_paper(builder, last):
    size = (32, 32, 3) if builder is kerasnets.ResNet20 else (64, 64, 3)

    def gammas(model):
        return {l.name: keras.ops.convert_to_numpy(l.gamma) for l in model.layers
                if isinstance(l, keras.layers.BatchNormalization)}

    paper = gammas(builder(weights=None, input_shape=size))
    zeroed = gammas(builder(weights=None, input_shape=size, zero_init_residual=True))
    assert paper.keys() == zeroed.keys()
    blocks = [name for name in zeroed if "_block" in name and name.endswith(last)]
    assert len(blocks) == (9 if builder is kerasnets.ResNet20 else 16)
    for name, gamma in zeroed.items():
        expected = 0.0 if name in blocks else 1.0
        assert np.all(gamma == expected), name
    assert all(np.all(gamma == 1.0) for gamma in paper.values()), "the paper initialises gamma to 1"


def test_zero_init_residual_is_validated():
    with pytest.raises(ValueError, match="needs the shortcuts"):
        kerasnets.ResNet20(weights=None, residual=False, zero_init_residual=True)
    with pytest.raises(ValueError, match="Received: zero_init_residual='yes'"):
        kerasnets.ResNet20(weights=None, zero_init_residual="yes")
