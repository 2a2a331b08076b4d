"""ResNet (He et al., 2015) and the plain networks it was compared with.

ImageNet networks of Table 1 (18/34 basic blocks, 50/101/152 bottlenecks) with
projection shortcuts where dimensions change (option B); the CIFAR-10 networks
of section 4.2 (6n+2 layers, 16/32/64 filters, identity shortcuts with zero
padding: option A). ``residual=False`` builds the paper's plain counterpart.

Layer names follow keras.applications: ``conv1_conv``, ``conv2_block1_1_conv``,
``conv2_block1_0_conv`` (projection), ``conv2_block1_add``, ``conv2_block1_out``;
stage ``s`` ends at ``conv{s}_block{n}_out``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal, Sequence

import keras

from kerasnets._validate import check_bool, check_choice, check_widths, fail
from kerasnets.layers import ChannelZeroPad, channel_axis, conv_bn_act
from kerasnets.models._application import (
    ModelInfo,
    build_application,
    make_builder,
    min_input_size,
    scale_width,
    validate_width_multiplier,
)
from kerasnets.preprocessing import IMAGENET_MEAN_STD
from kerasnets.registry import ModelSpec, WidthSpace, spec_table

PAPER = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016 (arXiv:1512.03385)"

# Table 1: block type and blocks per stage (conv2_x .. conv5_x).
IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
IMAGENET_WIDTHS = (64, 128, 256, 512)
# Section 4.2: depth 6n + 2, n blocks per stage on 32x32, 16x16 and 8x8 maps.
CIFAR_DEPTHS = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18}
CIFAR_WIDTHS = (16, 32, 64)

# Convolutions carry no bias before BatchNormalization; epsilon and momentum as
# torchvision's (whose parameter counts these models reproduce exactly).
_conv = functools.partial(conv_bn_act, bn_epsilon=1e-5, bn_momentum=0.9)


def _strided_3x3(stride):
    """Explicit symmetric padding for a strided 3x3 (docs/architecture.md, Padding)."""
    return dict(strides=stride, padding=1 if stride > 1 else "same")


def basic_block(x, filters, stride, *, shortcut, name, zero_init=False):
    """Two 3x3 convolutions (Figure 5, left); the first is strided (there is no 1x1 to stride)."""
    y = _conv(x, filters, 3, name=f"{name}_1", **_strided_3x3(stride))
    y = _conv(y, filters, 3, name=f"{name}_2", activation=None, **_last_bn(zero_init))
    return _merge(x, y, shortcut, filters, stride, name)


def bottleneck_block(x, filters, stride, *, shortcut, name, downsample_on="1x1", zero_init=False):
    """1x1 reduce, 3x3, 1x1 expand x4 (Figure 5, right).

    The paper strides the first 1x1 convolution; ``downsample_on="3x3"`` strides
    the 3x3 instead ("ResNet v1.5", torchvision's and most modern recipes' layout,
    about 0.5% more accurate on ImageNet for slightly more compute).
    """
    s1, s3 = (stride, 1) if downsample_on == "1x1" else (1, stride)
    y = _conv(x, filters, 1, strides=s1, padding="valid", name=f"{name}_1")
    y = _conv(y, filters, 3, name=f"{name}_2", **_strided_3x3(s3))
    y = _conv(y, filters * 4, 1, name=f"{name}_3", activation=None, **_last_bn(zero_init))
    return _merge(x, y, shortcut, filters * 4, stride, name)


def _last_bn(zero_init):
    """The last BatchNorm of a residual branch: gamma 0 with ``zero_init_residual``.

    Goyal et al. (2017, section 5.1) start each residual block as the identity,
    so the network begins as a shallow one and its initial logits stay small.
    """
    return {"bn_gamma_initializer": "zeros"} if zero_init else {}


RESIDUAL_BLOCKS = {
    "basic": basic_block,
    # Where a bottleneck block downsamples is a choice; a basic block has only 3x3s.
    "bottleneck_1x1": functools.partial(bottleneck_block, downsample_on="1x1"),
    "bottleneck_3x3": functools.partial(bottleneck_block, downsample_on="3x3"),
}
_CIFAR_GEOMETRY = [(3, 2, 1), (3, 2, 1)]  # the strided 3x3 of conv3_block1 and conv4_block1


def _merge(x, y, shortcut, channels, stride, name):
    """Adds the shortcut (if any) and applies the block's final ReLU."""
    if shortcut is not None:
        x = SHORTCUTS[shortcut](x, channels, stride, name)
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def _projection_shortcut(x, channels, stride, name):
    """Option B: a 1x1 projection where the shape changes, identity elsewhere."""
    in_channels = x.shape[channel_axis()]
    if stride == 1 and in_channels == channels:
        return x
    return _conv(x, channels, 1, strides=stride, padding="valid", name=f"{name}_0", activation=None)


def _zero_pad_shortcut(x, channels, stride, name):
    """Option A: subsample by ``stride`` and zero-pad the new channels; no parameters."""
    if stride > 1:
        x = keras.layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_subsample")(x)
    return ChannelZeroPad(channels, name=f"{name}_0_pad")(x)


SHORTCUTS = {"projection": _projection_shortcut, "zero_pad": _zero_pad_shortcut}


def _stages(x, block, blocks, widths, *, shortcut, downsample_on="1x1", zero_init=False):
    """Stages conv2_x, conv3_x, ...; the first block of each stage after the first halves the map.

    ``downsample_on`` applies to bottleneck blocks only.
    """
    kind = f"bottleneck_{downsample_on}" if block == "bottleneck" else block
    for stage, (n, filters) in enumerate(zip(blocks, widths), start=2):
        for i in range(n):
            stride = 2 if (i == 0 and stage > 2) else 1
            x = RESIDUAL_BLOCKS[kind](
                x, filters, stride, shortcut=shortcut, name=f"conv{stage}_block{i + 1}",
                zero_init=zero_init,
            )
    return x


def _check_zero_init(zero_init_residual, residual, model_name):
    check_bool("zero_init_residual", zero_init_residual, context=model_name)
    if zero_init_residual and not residual:
        fail("zero_init_residual", f"False for the plain {model_name} (zero_init_residual needs the "
             "shortcuts: without them a zero gamma blocks the signal)", zero_init_residual,
             received="residual=False, zero_init_residual=True")


def _check_widths(stage_widths, default, model_name):
    if stage_widths is None:
        return default
    return check_widths("stage_widths", stage_widths, length=len(default), context=model_name)


def _imagenet_geometry(blocks, block, downsample_on):
    ops = [(7, 2, 3), (3, 2, 1)]  # conv1, pool1
    for _ in blocks[1:]:  # the first block of conv3_x .. conv5_x halves the map
        ops.append((1, 2, 0) if block == "bottleneck" and downsample_on == "1x1" else (3, 2, 1))
    return ops


def resnet_imagenet(
    *, model_name, depth, residual: bool = True, width_multiplier: float = 1.0,
    stage_widths: Sequence[int] | None = None, downsample_on: Literal["1x1", "3x3"] = "1x1",
    zero_init_residual: bool = False, **contract,
):
    block, blocks = IMAGENET_DEPTHS[depth]
    _check_zero_init(zero_init_residual, residual, model_name)
    check_choice("downsample_on", downsample_on, ("1x1", "3x3"))
    base = _check_widths(stage_widths, IMAGENET_WIDTHS, model_name)
    validate_width_multiplier(width_multiplier, model_name, min(64, *base))  # conv1: 64
    widths = [scale_width(w, width_multiplier) for w in base]

    def backbone(inputs, head):
        x = _conv(inputs, scale_width(64, width_multiplier), 7, strides=2, padding=3, name="conv1")
        x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
        return _stages(
            x, block, blocks, widths, shortcut="projection" if residual else None,
            downsample_on=downsample_on, zero_init=zero_init_residual,
        )

    return build_application(
        backbone=backbone, info=IMAGENET_INFO,
        model_name=model_name if residual else f"Plain{depth}",
        min_size=min_input_size(_imagenet_geometry(blocks, block, downsample_on)),
        **contract,
    )


def resnet_cifar(
    *, model_name, depth, residual: bool = True, width_multiplier: float = 1.0,
    stage_widths: Sequence[int] | None = None, zero_init_residual: bool = False, **contract,
):
    n = CIFAR_DEPTHS[depth]
    _check_zero_init(zero_init_residual, residual, model_name)
    base = _check_widths(stage_widths, CIFAR_WIDTHS, model_name)
    validate_width_multiplier(width_multiplier, model_name, min(base))
    widths = [scale_width(w, width_multiplier) for w in base]
    if residual and any(b < a for a, b in zip(widths, widths[1:])):
        fail("stage_widths", f"non-decreasing: the zero-padding shortcuts of {model_name} (option A) "
             "can only add channels, so the widths must not decrease", stage_widths)

    def backbone(inputs, head):
        x = _conv(inputs, widths[0], 3, name="conv1")
        return _stages(
            x, "basic", (n, n, n), widths, shortcut="zero_pad" if residual else None,
            zero_init=zero_init_residual,
        )

    return build_application(
        backbone=backbone, info=CIFAR_INFO,
        model_name=model_name if residual else f"Plain{depth}",
        min_size=min_input_size(_CIFAR_GEOMETRY),
        **contract,
    )


IMAGENET_INFO = ModelInfo(
    "resnet", PAPER, 224, IMAGENET_MEAN_STD,
    min_size=min_input_size(_imagenet_geometry((3, 4, 6, 3), "bottleneck", "1x1")),
)
# 32x32 images are evaluated whole (He et al. test on the original 32x32 image).
CIFAR_INFO = ModelInfo(
    "resnet_cifar", PAPER, 32, dataclasses.replace(IMAGENET_MEAN_STD, crop_fraction=1.0),
    default_classes=10,
    min_size=min_input_size(_CIFAR_GEOMETRY),
)

_ZERO_INIT_DOC = """        zero_init_residual: start the last BatchNorm gamma of every residual
            block at 0 instead of 1 (Goyal et al., 2017), so that each block
            begins as the identity (most modern recipes do). Not in the paper:
            default ``False``.
"""
_IMAGENET_DOC = """
        residual: ``False`` builds the plain network of the same depth (Figure 3,
            middle; the baselines of Figure 4): the same layers, no shortcuts.
        width_multiplier: scales every convolution's filter count (rounded, at
            least 1).
        stage_widths: the base filters of conv2_x .. conv5_x (default
            ``(64, 128, 256, 512)``), before ``width_multiplier``.
        downsample_on: ``"1x1"`` (the paper: the first 1x1 convolution of a
            bottleneck has stride 2) or ``"3x3"`` ("v1.5", as torchvision).
""" + _ZERO_INIT_DOC
_CIFAR_DOC = """
        residual: ``False`` builds the plain network (the baselines of Figure 6).
        width_multiplier: scales every convolution's filter count.
        stage_widths: the filters of the three stages (default ``(16, 32, 64)``).
""" + _ZERO_INIT_DOC



def _stages_of(blocks):
    """Stage ``conv{s}`` ends at its last block's output (strides 4..32 on ImageNet)."""
    return {f"conv{s}": f"conv{s}_block{n}_out" for s, n in enumerate(blocks, start=2)}


# Width searches (kerasnets.tuning): one base width per stage; the depth moves among the
# models of the same block type.
def _width_space(widths, depth_group, monotonic=False):
    return WidthSpace(
        "stage", {f"conv{s}_width": w for s, w in enumerate(widths, start=2)},
        depth_group=depth_group, monotonic=monotonic,
    )


# The weight presets of each model (kerasnets.weights holds their files), default first.
PRESETS = {
    18: ("torchvision_v1",),
    34: ("torchvision_v1",),
    50: ("keras_applications", "torchvision_v1", "torchvision_v2"),
    101: ("keras_applications", "torchvision_v1", "torchvision_v2"),
    152: ("keras_applications", "torchvision_v1", "torchvision_v2"),
}

SPECS = spec_table(
    *(ModelSpec(
        f"resnet{d}", f"ResNet{d}", resnet_imagenet, IMAGENET_INFO,
        summary=f"ResNet-{d} of Table 1 of He et al. (2015), ImageNet layout (224x224).",
        arguments={"depth": d}, options_doc=_IMAGENET_DOC, depth=d, presets=PRESETS[d],
        widths=_width_space(IMAGENET_WIDTHS, f"resnet_{block}"),
        feature_stages=_stages_of(blocks),
    ) for d, (block, blocks) in IMAGENET_DEPTHS.items()),
    *(ModelSpec(
        f"resnet{d}", f"ResNet{d}", resnet_cifar, CIFAR_INFO,
        summary=f"ResNet-{d} for CIFAR-10 (He et al. 2015, section 4.2): 32x32 inputs, 10 classes.",
        arguments={"depth": d}, options_doc=_CIFAR_DOC, depth=d,
        widths=_width_space(CIFAR_WIDTHS, "resnet_cifar", monotonic=True),  # option A only adds channels
        feature_stages=_stages_of((n, n, n)),
    ) for d, n in CIFAR_DEPTHS.items()),
)
ResNet18 = make_builder(SPECS["resnet18"])
ResNet34 = make_builder(SPECS["resnet34"])
ResNet50 = make_builder(SPECS["resnet50"])
ResNet101 = make_builder(SPECS["resnet101"])
ResNet152 = make_builder(SPECS["resnet152"])
ResNet20 = make_builder(SPECS["resnet20"])
ResNet32 = make_builder(SPECS["resnet32"])
ResNet44 = make_builder(SPECS["resnet44"])
ResNet56 = make_builder(SPECS["resnet56"])
ResNet110 = make_builder(SPECS["resnet110"])
