"""kerasnets.profile against the papers' tables and torchvision's published numbers.

Models are profiled by name: they are built without initialising weights and
never run, so even VGG-19 takes a fraction of a second.

Published numbers and where they come from:

* GoogLeNet, Szegedy et al. 2014, Table 1: "params" (apparently in units of
  1024: inception (3a) has 163,328 weights + 368 biases = 159.9 x 1024) and
  "ops" (whole millions of multiply-adds).
* ResNet, He et al. 2015, Table 1 last row: FLOPs (multiply-adds) 1.8, 3.6, 3.8,
  7.6, 11.3 x 10^9 for 18/34/50/101/152 layers.
* VGG, Simonyan & Zisserman 2014, Table 2: parameters in millions; VGG-16's
  15.5 billion multiply-adds.
* Inception v3, Szegedy et al. 2015: "5 billion multiply-adds ... less than 25
  million parameters"; torchvision: 5.71 GFLOPS, 27,161,264 parameters.
* torchvision's model pages: "GFLOPS" (which are multiply-adds) and num_params.
"""

import json

import keras
import pytest

import kerasnets
from kerasnets.profiling import conv_macs, inception_module_arithmetic, profile


# ---------------------------------------------------------------------------
# The arithmetic itself
# ---------------------------------------------------------------------------


def test_inception_motivating_arithmetic():
    # Section 4 of the GoogLeNet paper: 5x5 convolution, 28x28x192 input, 32 filters.
    assert conv_macs(28, 192, 32, 5) == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400  # "about 120M"
    numbers = inception_module_arithmetic()
    assert numbers["direct"] == 120_422_400
    # A 1x1 reduction to 16 channels first: 28*28*16*192 + 28*28*32*5*5*16.
    assert numbers["reduced"] == 2_408_448 + 10_035_200 == 12_443_648  # "about 12.4M"
    assert 9.6 < numbers["ratio"] < 9.7


def test_conv_macs_validates():
    assert conv_macs((7, 5), 64, 64, (3, 1), groups=2) == 7 * 5 * 64 * 32 * 3
    with pytest.raises(ValueError, match="divisible by groups"):
        conv_macs(28, 6, 8, 3, groups=4)
    with pytest.raises(ValueError, match="Received: filters=0"):
        conv_macs(28, 6, 0, 3)


def _toy_model():
    i = keras.Input((16, 16, 8), name="img")
    x = keras.layers.Conv2D(16, 3, padding="same", groups=2, name="grouped")(i)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, name="dw")(x)
    x = keras.layers.SeparableConv2D(8, 3, padding="valid", name="sep")(x)
    x = keras.layers.Conv2DTranspose(4, 2, strides=2, name="up")(x)
    t = keras.layers.Reshape((144, 4), name="tokens")(x)
    t = keras.layers.Dense(5, name="per_token")(t)
    y = keras.layers.GlobalAveragePooling1D(name="gap")(t)
    main = keras.layers.Dense(3, name="head")(y)
    side = keras.layers.Dense(2, name="side")(keras.layers.Flatten(name="side_flat")(x))
    return keras.Model(i, {"main": main, "side": side})


def test_every_counted_layer_type_by_hand():
    model = _toy_model()
    p = profile(model)
    macs = {row.name: row.macs for row in p.layers}
    assert macs["grouped"] == 16 * 16 * 16 * (8 // 2) * 9  # positions x filters x in/groups x kernel
    assert macs["dw"] == 8 * 8 * (16 * 2) * 9  # stride 2 output, depth multiplier 2
    assert macs["sep"] == 6 * 6 * 32 * 9 + 6 * 6 * 32 * 8  # depthwise + pointwise
    assert macs["up"] == 6 * 6 * 8 * 4 * 2 * 2  # transposed: input positions x in x out x kernel
    assert macs["per_token"] == 144 * 4 * 5  # Dense on every token
    assert macs["head"] == 5 * 3
    assert macs["bn"] == macs["gap"] == macs["tokens"] == 0
    # BatchNorm's moving statistics are in count_params() but not in params.
    bn = next(r for r in p.layers if r.name == "bn")
    assert (bn.params, bn.keras_params) == (2 * 16, 4 * 16)
    assert p.total_keras_params == model.count_params()
    assert p.total_keras_params - p.total_params == 2 * 16
    # The "side" output is an auxiliary head: kept out of the main totals.
    assert p.aux == {"side": {"params": 576 * 2 + 2, "keras_params": 576 * 2 + 2, "macs": 576 * 2}}
    assert [r.name for r in p.aux_rows] == ["side"]
    assert p.macs == sum(macs.values()) - macs["side"]
    assert p.depth == 6  # grouped, dw, sep, up, per_token, head


def test_macs_follow_the_input_size_and_width():
    base = profile("resnet18")
    big = profile("resnet18", input_size=448)
    fc = 512 * 1000
    # Every feature map doubles in each direction: convolutions cost 4x, the classifier the same.
    assert big.macs - fc == 4 * (base.macs - fc)
    half = profile("resnet18", width_multiplier=0.5)
    assert half.row("conv2_block1").macs == 2 * conv_macs(56, 32, 32, 3)
    assert half.row("conv1").macs == conv_macs(112, 3, 32, 7)
    rect = profile("resnet18", input_size=(224, 160), include_top=False)
    assert rect.row("conv1").output_shape == (112, 80, 64)


# ---------------------------------------------------------------------------
# ResNet (He et al. 2015, Table 1) and torchvision
# ---------------------------------------------------------------------------

# depth: (the paper's FLOPs x 10^9, ours exactly for the paper's layout)
RESNET_TABLE1 = {
    18: (1.8, 1_814_073_344),
    34: (3.6, 3_663_761_408),
    50: (3.8, 3_857_973_248),
    101: (7.6, 7_570_194_432),
    152: (11.3, 11_282_415_616),
}


@pytest.mark.parametrize("depth", sorted(RESNET_TABLE1))
def test_resnet_table1_flops(depth):
    paper, exact = RESNET_TABLE1[depth]
    p = profile(f"resnet{depth}")
    assert p.macs == exact
    assert p.depth == depth  # the name counts layers with weights on the main path
    # The paper prints one decimal and rounds inconsistently: 7.570 -> 7.6 and
    # 11.282 -> 11.3 are rounded, 3.664 -> 3.6 and 3.858 -> 3.8 truncated. Every
    # number is within one unit of its last printed digit.
    assert abs(p.macs / 1e9 - paper) < 0.1


def test_resnet34_plain_baseline_is_the_papers_3_6_billion():
    # Section 3.3: "Our 34-layer baseline has 3.6 billion FLOPs (multiply-adds)";
    # the plain net lacks the three 1x1 projection shortcuts (19.3M multiply-adds).
    plain = profile("resnet34", residual=False)
    assert round(plain.macs / 1e9, 1) == 3.6
    assert profile("resnet34").macs - plain.macs == 3 * conv_macs(28, 64, 128, 1)


# torchvision: (GFLOPS, num_params). Its bottlenecks stride the 3x3 ("v1.5").
TORCHVISION_RESNET = {
    18: (1.81, 11_689_512),
    34: (3.66, 21_797_672),
    50: (4.09, 25_557_032),
    101: (7.80, 44_549_160),
    152: (11.51, 60_192_808),
}
# BatchNorm channels, counted by hand from Table 1: conv1's 64; a basic block has two BNs of
# its width, a bottleneck three (w, w, 4w); each stage's first block adds a projection BN
# (ResNet-18: not in conv2, whose width does not change). ResNet-18: 64 + 4*64 + (4*128 + 128)
# + (4*256 + 256) + (4*512 + 512); ResNet-50 and -152 with (3, 4, 6, 3) and (3, 8, 36, 3) blocks
# of 6w each: 64 + 3*384 + 256 + 4*768 + 512 + 6*1536 + 1024 + 3*3072 + 2048, and so on.
RESNET_BN_CHANNELS = {18: 4_800, 50: 26_560, 152: 75_712}


@pytest.mark.parametrize("depth", [18, 50, 152])
def test_resnet_matches_torchvision(depth):
    gflops, params = TORCHVISION_RESNET[depth]
    kwargs = {"downsample_on": "3x3"} if depth >= 50 else {}
    p = profile(f"resnet{depth}", **kwargs)
    assert round(p.macs / 1e9, 2) == gflops
    assert p.params == params  # torchvision's count excludes BN running statistics, as ours
    # count_params() adds BatchNorm's moving mean and variance: 2 per BN channel.
    assert p.keras_params == params + 2 * RESNET_BN_CHANNELS[depth]


def test_resnet_rows_are_stages_and_blocks():
    p = profile("resnet50")
    top = [r.name for r in p.rows if r.level == 0]
    assert top == ["conv1", "pool1", "conv2", "conv3", "conv4", "conv5", "avg_pool", "predictions"]
    blocks = [r.name for r in p.rows if r.level == 1]
    assert blocks[:4] == ["conv2_block1", "conv2_block2", "conv2_block3", "conv3_block1"]
    assert len(blocks) == 3 + 4 + 6 + 3
    assert [p.row(f"conv{s}").depth for s in (2, 3, 4, 5)] == [9, 12, 18, 9]
    assert p.row("conv3").type == "stage (4 blocks)"
    block = p.row("conv3_block1")
    assert (block.type, block.patch, block.depth) == ("residual block", "1×1/2, 3×3/1, 1×1/1", 3)
    assert block.output_shape == (28, 28, 512)
    assert p.row("conv1").patch == "7×7/2" and p.row("pool1").type == "max pool"
    # Stage rows sum their blocks; top-level rows sum to the total.
    assert p.row("conv4").macs == sum(r.macs for r in p.rows if r.name.startswith("conv4_"))
    assert sum(r.macs for r in p.rows if r.level == 0) == p.macs
    assert sum(r.params for r in p.rows if r.level == 0) == p.params
    assert p.row("conv2_block1").macs == (
        conv_macs(56, 64, 64, 1) + conv_macs(56, 64, 64, 3) + 2 * conv_macs(56, 64, 256, 1)
    )


# ---------------------------------------------------------------------------
# GoogLeNet (Szegedy et al. 2014, Table 1)
# ---------------------------------------------------------------------------

# row: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj, params in K, ops in M)
GOOGLENET_TABLE1 = {
    "conv1": (None, None, None, None, None, None, 2.7, 34),
    "conv2": (None, 64, 192, None, None, None, 112, 360),
    "inception_3a": (64, 96, 128, 16, 32, 32, 159, 128),
    "inception_3b": (128, 128, 192, 32, 96, 64, 380, 304),
    "inception_4a": (192, 96, 208, 16, 48, 64, 364, 73),
    "inception_4b": (160, 112, 224, 24, 64, 64, 437, 88),
    "inception_4c": (128, 128, 256, 24, 64, 64, 463, 100),
    "inception_4d": (112, 144, 288, 32, 64, 64, 580, 119),
    "inception_4e": (256, 160, 320, 32, 128, 128, 840, 170),
    "inception_5a": (256, 160, 320, 32, 128, 128, 1072, 54),
    "inception_5b": (384, 192, 384, 48, 128, 128, 1388, 71),
    "predictions": (None, None, None, None, None, None, 1000, 1),
}
GOOGLENET_OUTPUTS = {
    "conv1": (112, 112, 64), "pool1": (56, 56, 64), "conv2": (56, 56, 192), "pool2": (28, 28, 192),
    "inception_3a": (28, 28, 256), "inception_3b": (28, 28, 480), "pool3": (14, 14, 480),
    "inception_4a": (14, 14, 512), "inception_4d": (14, 14, 528), "inception_4e": (14, 14, 832),
    "pool4": (7, 7, 832), "inception_5a": (7, 7, 832), "inception_5b": (7, 7, 1024),
}
COLUMNS = ("#1×1", "#3×3 reduce", "#3×3", "#5×5 reduce", "#5×5", "pool proj")

# Cells of the published table that disagree with the architecture it describes.
GOOGLENET_ERRATA = {
    # 7x7x3x64 = 9,408 weights (9.2K) and 9,408 x 112^2 = 118M ops. The paper's two
    # cells agree with each other (34M = 2.7K x 1024 x 112^2 / 10^6 x 1.0) but no 7x7
    # convolution from 3 to 64 channels has 2.7K weights.
    ("conv1", "params"), ("conv1", "ops"),
    # Widths 128/128/256/24/64/64 on 512 channels give 509,440 weights (497.5K). The
    # paper's own ops cell, 100M, is 509,440 x 14^2 = 99.8M: the params cell is the odd one.
    ("inception_4c", "params"),
    # The widths give 1,042,432 weights (1018K) and 51.1M ops. The paper's cells agree
    # with each other (1072K x 1024 x 7^2 = 53.8M) but are ~5% above the printed widths.
    ("inception_5a", "params"), ("inception_5a", "ops"),
}


@pytest.fixture(scope="module")
def googlenet():
    return profile("googlenet")


def test_googlenet_table1_module_by_module(googlenet):
    p = googlenet
    for name, (*widths, params_k, ops_m) in GOOGLENET_TABLE1.items():
        row = p.row(name)
        expected = {c: w for c, w in zip(COLUMNS, widths) if w is not None}
        assert row.widths == expected, name
        if (name, "ops") not in GOOGLENET_ERRATA:
            # "ops" are whole millions of multiply-adds (some truncated: 73.6M -> 73).
            assert abs(row.macs / 1e6 - ops_m) <= 1.0, (name, row.macs)
        if (name, "params") not in GOOGLENET_ERRATA:
            # "params" read as units of 1024 (with biases), within 2%.
            assert abs(row.params / 1024 / params_k - 1) < 0.02, (name, row.params)
    # The errata, pinned to what the architecture gives.
    assert p.row("conv1").params == 7 * 7 * 3 * 64 + 64
    assert p.row("conv1").macs == conv_macs(112, 3, 64, 7)
    assert p.row("inception_4c").macs == 509_440 * 14 * 14
    assert p.row("inception_5a").macs == 1_042_432 * 7 * 7


def test_googlenet_layout_as_in_table1(googlenet):
    p = googlenet
    for name, shape in GOOGLENET_OUTPUTS.items():
        assert p.row(name).output_shape == shape, name
    assert p.row("inception_3a").type == "inception"
    assert p.row("conv2").type == "convolution ×2" and p.row("conv2").patch == "1×1/1, 3×3/1"
    assert [p.row(n).depth for n in ("conv1", "pool1", "conv2", "inception_3a", "predictions")] == [1, 0, 2, 2, 1]
    assert p.row("pool3").patch == "3×3/2" and p.row("avg_pool").patch == "7×7/1"
    assert [r.type for r in p.rows if r.type.startswith("dropout")] == ["dropout (40%)"]
    # "The network is 22 layers deep when counting only layers with parameters";
    # "a computational budget of 1.5 billion multiply-adds at inference time".
    assert p.depth == 22
    assert 1.5e9 < p.macs < 1.6e9
    # The auxiliary classifiers are shown apart, out of the inference totals.
    assert [r.name for r in p.aux_rows] == ["aux1", "aux2"]
    assert all(r.type == "auxiliary classifier" and r.head == r.name for r in p.aux_rows)
    assert p.row("aux1").patch == "5×5/3, 1×1/1"
    assert p.params == 6_998_552  # the model without its auxiliary heads
    assert p.total_params == p.params + p.aux["aux1"]["params"] + p.aux["aux2"]["params"]
    assert "main" not in [r.name for r in p.rows]  # the output-naming Identity is no row


def test_googlenet_width_multiplier_scales_the_columns():
    p = profile("googlenet", width_multiplier=0.5, input_size=96)
    assert p.row("inception_3a").widths == {
        "#1×1": 32, "#3×3 reduce": 48, "#3×3": 64, "#5×5 reduce": 8, "#5×5": 16, "pool proj": 16,
    }
    assert p.row("inception_3a").output_shape == (12, 12, 128)


# ---------------------------------------------------------------------------
# VGG (Simonyan & Zisserman 2014, Table 2), AlexNet, Inception v3
# ---------------------------------------------------------------------------

VGG_TABLE2 = {"vgg11": 133, "vgg11_lrn": 133, "vgg13": 133, "vgg16_c": 134, "vgg16": 138, "vgg19": 144}
TORCHVISION_VGG = {"vgg11": (7.61, 132_863_336), "vgg16": (15.47, 138_357_544), "vgg19": (19.63, 143_667_240)}


def test_vgg_table2_and_torchvision():
    for name, millions in VGG_TABLE2.items():
        assert round(profile(name).params / 1e6) == millions, name
    for name, (gflops, params) in TORCHVISION_VGG.items():
        p = profile(name)
        assert (round(p.macs / 1e9, 2), p.params) == (gflops, params), name
    p = profile("vgg16")
    assert round(p.macs / 1e9, 1) == 15.5  # "15.5 billion multiply-adds"
    assert p.depth == 16
    assert [r.name for r in p.rows][:5] == ["block1", "block2", "block3", "block4", "block5"]
    assert p.row("block3").depth == 3 and p.row("block3").output_shape == (28, 28, 256)
    assert p.row("block1").macs == conv_macs(224, 3, 64, 3) + conv_macs(224, 64, 64, 3)
    assert p.row("fc1").macs == 7 * 7 * 512 * 4096


def test_alexnet_torchvision_variant():
    # torchvision's alexnet: 0.71 GFLOPS, 61,100,840 parameters.
    p = profile("alexnet", variant="torchvision")
    assert (round(p.macs / 1e9, 2), p.params) == (0.71, 61_100_840)
    paper = profile("alexnet")
    assert paper.depth == 8 and paper.row("conv1").patch == "11×11/4"
    # The paper's two-GPU layers are grouped: conv2 sees 48 of the 96 channels.
    assert paper.row("conv2").macs == conv_macs(27, 96, 256, 5, groups=2)


def test_inception_v3_five_billion_multiply_adds():
    p = profile("inception_v3", aux_classifiers=True)
    # torchvision: 5.71 GFLOPS; the paper: ~5 billion multiply-adds, < 25M parameters.
    assert round(p.macs / 1e9, 2) == 5.71
    assert p.params < 25_000_000
    assert p.depth == 48
    # torchvision's 27,161,264 counts the auxiliary head and BatchNorm's scale
    # (gamma); keras' (and our) Inception v3 BatchNorm has scale=False. Each BN
    # channel has 2 moving statistics and would have one gamma.
    bn_channels = (p.total_keras_params - p.total_params) // 2
    assert p.total_params + bn_channels == 27_161_264
    assert p.row("mixed5b").widths == {
        "#1×1": 64, "double #3×3 reduce": 64, "double #3×3": 96, "#5×5 reduce": 48,
        "#5×5": 64, "pool proj": 32,
    }
    assert p.row("mixed6b").widths == {}  # factorised 7x1 branches have no paper columns
    assert [r.name for r in p.aux_rows] == ["aux"]


# ---------------------------------------------------------------------------
# Rendering, errors, other models
# ---------------------------------------------------------------------------


def test_renderings(googlenet):
    text = googlenet.to_text()
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("name"))
    for column in ("type", "patch size/stride", "output size", "depth", *COLUMNS, "params", "MACs"):
        assert column in header
    row = next(line for line in lines if line.startswith("inception_3a"))
    assert row.split() == ["inception_3a", "inception", "28×28×256", "2", "64", "96", "128", "16", "32", "32",
                           "163.7K", "128.0M"]
    assert "1 MAC = 2 FLOPs" in text and "auxiliary" not in row
    assert "x" in googlenet.to_text(unicode=False) and "×" not in googlenet.to_text(unicode=False)
    exact = googlenet.to_text(exact=True)
    assert "163,696" in exact and "128,049,152" in exact

    md = googlenet.to_markdown()
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert table[0].startswith("| name | type |") and set(table[1]) <= set("|-: ")
    assert len({line.count("|") for line in table}) == 1  # every row has every column
    assert any(line.startswith("| inception_3a | inception |") for line in table)

    rows = googlenet.to_dicts()
    assert {"name", "type", "patch", "output_shape", "depth", "params", "keras_params", "macs",
            "widths", "head"} <= set(rows[0])
    assert [r["head"] for r in rows][-2:] == ["aux1", "aux2"]
    layers = googlenet.to_dicts(per_layer=True)
    assert {r["block"] for r in layers if r["name"].startswith("inception_4a_")} == {"inception_4a"}
    assert sum(r["macs"] for r in layers) == googlenet.total_macs
    json.dumps(googlenet.to_dict())  # plain data
    per_layer = googlenet.to_text(per_layer=True)
    assert "inception_3a_b5_reduce" in per_layer


def test_errors():
    with pytest.raises(ValueError, match="Did you mean: .*resnet50"):
        profile("resnet5O")
    with pytest.raises(ValueError, match="input_size must be a positive integer"):
        profile("resnet18", input_size=0)
    with pytest.raises(ValueError, match="not both"):
        profile("resnet18", input_size=64, input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="width_multiplier"):
        profile("resnet18", width_multiplier=-1)
    with pytest.raises(ValueError, match="input_size=N"):
        profile("resnet18", include_top=False, input_shape=(None, None, 3))
    model = kerasnets.get_model("resnet20", width_multiplier=0.25)
    with pytest.raises(ValueError, match="built model has its own"):
        profile(model, input_size=64)
    with pytest.raises(ValueError, match="registered model name or a keras.Model"):
        profile(42)


def test_profiles_any_functional_or_sequential_model():
    seq = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="conv"),
                            keras.layers.Flatten(name="flatten"), keras.layers.Dense(2, name="fc")])
    p = profile(seq)
    assert p.macs == 6 * 6 * 4 * 27 + 144 * 2 and p.total_keras_params == seq.count_params()
    assert [r.name for r in p.rows] == ["conv", "flatten", "fc"]


def test_profiling_by_name_leaves_no_pending_variables():
    from keras.src.backend.common import global_state

    before = len(global_state.get_global_attribute("uninitialized_variables", []) or [])
    profile("resnet20")
    after = len(global_state.get_global_attribute("uninitialized_variables", []) or [])
    assert after == before
    # and a model built normally afterwards has its weights initialised
    model = kerasnets.get_model("resnet20", width_multiplier=0.25)
    assert float(keras.ops.sum(keras.ops.abs(model.get_layer("conv1_conv").kernel))) > 0


def test_channels_first_counts_the_same(channels_first):
    p = profile("resnet20", width_multiplier=0.5)
    assert p.input_shape == (3, 32, 32) and p.row("conv1").output_shape == (8, 32, 32)
    assert "32×32×8" in p.to_text()  # shown as height × width × channels, as the papers do
    keras.config.set_image_data_format("channels_last")
    assert profile("resnet20", width_multiplier=0.5).macs == p.macs
