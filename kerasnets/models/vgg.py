"""VGG (Simonyan & Zisserman, 2014): the configurations A to E of Table 1.

Every configuration is a row of `CONFIGS`, read straight from Table 1: five
blocks of convolutions, each block followed by a 2x2 max-pool of stride 2; an
``int`` is a 3x3 convolution (stride 1, "same" padding) with that many filters,
``(filters, 1)`` is configuration C's 1x1 convolution, ``"LRN"`` is the local
response normalisation of A-LRN. Every convolution is followed by a ReLU. The
top is Table 1's: FC-4096, dropout 0.5, FC-4096, dropout 0.5, FC-classes.

Layer names follow keras.applications' ``vgg16.py`` / ``vgg19.py``
(``block1_conv1`` .. ``block5_pool``, ``fc1``, ``fc2``, ``predictions``), so
their weights load into `VGG16` and `VGG19` by name or by order. (Only the
weightless ``Flatten`` differs: ``block5_flatten``, where keras.applications
keeps Keras's automatic ``flatten``.) The dropout layers are ``fc1_dropout``
and ``fc2_dropout``. Without batch normalisation the ReLU is fused into the convolution, as in
keras.applications (the output of ``block4_conv2`` is post-ReLU). With
``batch_norm=True`` a convolution ``block{b}_conv{i}`` is followed by
``block{b}_conv{i}_bn`` and ``block{b}_conv{i}_relu``.

Parameter counts (``model.count_params()`` at 224x224, 1000 classes) equal
torchvision's and round to Table 2 of the paper:

=========  ==========  ==========  ==================================
config     registered  parameters  with ``batch_norm=True``
=========  ==========  ==========  ==================================
A          vgg11       132,863,336 132,868,840 trainable (``vgg11_bn``)
A-LRN      vgg11_lrn   132,863,336
B          vgg13       133,047,848 133,053,736 trainable (``vgg13_bn``)
C          vgg16_c     133,638,952
D          vgg16       138,357,544 138,365,992 trainable (``vgg16_bn``)
E          vgg19       143,667,240 143,678,248 trainable (``vgg19_bn``)
=========  ==========  ==========  ==================================

The ``_bn`` variants also hold each BatchNormalization's moving mean and
variance (non-trainable, 2 x the channels), which torchvision counts as buffers.
"""

from __future__ import annotations

import functools
from typing import Sequence

import keras

from kerasnets._validate import check_bool, check_probability, check_widths
from kerasnets.layers import LocalResponseNormalization, channel_axis
from kerasnets.models._application import (
    ModelInfo,
    build_application,
    make_builder,
    min_input_size,
    scale_width,
    validate_width_multiplier,
)
from kerasnets.preprocessing import MEAN_SUBTRACTION
from kerasnets.registry import ModelSpec, WidthSpace, spec_table

PAPER = (
    "Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image "
    "Recognition, ICLR 2015 (arXiv:1409.1556)"
)

# Table 1, one list per block; every block ends with a 2x2 max-pool of stride 2.
CONFIGS = {
    "A": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "A-LRN": [[64, "LRN"], [128], [256, 256], [512, 512], [512, 512]],
    "B": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "C": [
        [64, 64], [128, 128], [256, 256, (256, 1)], [512, 512, (512, 1)], [512, 512, (512, 1)],
    ],
    "D": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "E": [[64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4],
}
# The model's default name for each configuration ("_bn" is appended with batch_norm).
NAMES = {"A": "vgg11", "A-LRN": "vgg11_lrn", "B": "vgg13", "C": "vgg16_c", "D": "vgg16", "E": "vgg19"}
FC_UNITS = 4096
# Every convolution of a block has the block's width (Table 1); ``stage_widths`` replaces them.
BLOCK_WIDTHS = (64, 128, 256, 512, 512)

# Five 2x2 stride-2 max-pools; the stride-1 "same" convolutions keep the size.
_GEOMETRY = [(2, 2, 0)] * 5

# The batch-normalised variants are torchvision's: BatchNorm after every
# convolution, which keeps its bias (so that the counts, and torchvision's
# weights, match), epsilon 1e-5 and momentum 0.9 (torchvision's 0.1).
_batch_norm = functools.partial(keras.layers.BatchNormalization, epsilon=1e-5, momentum=0.9)


def conv_block(x, filters, kernel_size, *, batch_norm, name):
    """A stride-1 "same" convolution and its ReLU (with BatchNorm in between if asked)."""
    if not batch_norm:
        return keras.layers.Conv2D(
            filters, kernel_size, padding="same", activation="relu", name=name
        )(x)
    x = keras.layers.Conv2D(filters, kernel_size, padding="same", name=name)(x)
    x = _batch_norm(axis=channel_axis(), name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def _layer(spec):
    """``64`` -> ``(64, 3)``; ``(256, 1)`` stays; ``"LRN"`` stays."""
    return (spec, 3) if isinstance(spec, int) else spec


def _check_block_widths(stage_widths, model_name):
    if stage_widths is None:
        return BLOCK_WIDTHS
    return check_widths("stage_widths", stage_widths, length=len(BLOCK_WIDTHS), context=model_name)


def vgg(
    *, model_name, config, batch_norm: bool = False, width_multiplier: float = 1.0,
    stage_widths: Sequence[int] | None = None, dropout: float = 0.5, **contract,
):
    widths = _check_block_widths(stage_widths, model_name)
    validate_width_multiplier(width_multiplier, model_name, min(  # the convolutions, as the blocks use them
        widths[b] if stage_widths is not None else _layer(spec)[0]
        for b, block in enumerate(CONFIGS[config]) for spec in block if spec != "LRN"))
    check_probability("dropout", dropout, context=model_name)
    check_bool("batch_norm", batch_norm, context=model_name)

    def backbone(inputs, head):
        x = inputs
        for b, block in enumerate(CONFIGS[config], start=1):
            convs = 0
            for spec in block:
                if spec == "LRN":  # "the parameters ... are those of (Krizhevsky et al., 2012)"
                    x = LocalResponseNormalization(size=5, k=2.0, alpha=1e-4, beta=0.75, name=f"block{b}_lrn")(x)
                    continue
                filters, kernel_size = _layer(spec)
                if stage_widths is not None:
                    filters = widths[b - 1]
                convs += 1
                x = conv_block(
                    x, scale_width(filters, width_multiplier), kernel_size,
                    batch_norm=batch_norm, name=f"block{b}_conv{convs}",
                )
            x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{b}_pool")(x)
        return x

    def top(features, head):
        x = keras.layers.Flatten(name="block5_flatten")(features)
        for i in (1, 2):
            x = keras.layers.Dense(scale_width(FC_UNITS, width_multiplier), activation="relu", name=f"fc{i}")(x)
            x = keras.layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
        return head.classifier(x)

    if contract.get("name") is None:
        contract["name"] = NAMES[config] + ("_bn" if batch_norm else "")
    return build_application(
        backbone=backbone, top=top, fixed_size_top=True, info=INFO,
        model_name=model_name, min_size=min_input_size(_GEOMETRY), **contract,
    )


INFO = ModelInfo("vgg", PAPER, 224, MEAN_SUBTRACTION, min_size=min_input_size(_GEOMETRY))

_DOC = """
        width_multiplier: scales the filter count of every convolution and the
            width of the two hidden fully-connected layers (rounded, at least 1).
        stage_widths: the filters of every convolution of blocks 1 to 5 (default
            ``(64, 128, 256, 512, 512)``), before ``width_multiplier``.
        dropout: the dropout rate after ``fc1`` and ``fc2`` (the paper's 0.5).
"""
_BN_DOC = """
        batch_norm: adds BatchNormalization between every convolution and its
            ReLU (torchvision's ``vgg*_bn``; the paper has none).
"""
# Width searches (kerasnets.tuning): one width per block; the depth moves among the
# configurations A, B, D, E (with or without BatchNorm).
_DEPTH_CONFIGS = ("A", "B", "D", "E")
_GROUPS = {f"block{b}_width": w for b, w in enumerate(BLOCK_WIDTHS, start=1)}
# Each block ends at its max-pool (strides 2, 4, 8, 16, 32).
FEATURE_STAGES = {f"block{b}": f"block{b}_pool" for b in range(1, 6)}
_INPUTS = "\n\n    Inputs: 224x224 RGB (at least 32x32) with the mean RGB value subtracted."
# The weight presets of each model (kerasnets.weights holds their files), default first.
PRESETS = {
    "vgg11": ("torchvision_v1",), "vgg11_bn": ("torchvision_v1",),
    "vgg13": ("torchvision_v1",), "vgg13_bn": ("torchvision_v1",),
    "vgg16": ("keras_applications", "torchvision_v1"), "vgg16_bn": ("torchvision_v1",),
    "vgg19": ("keras_applications", "torchvision_v1"), "vgg19_bn": ("torchvision_v1",),
}


def _spec(builder, config, depth, summary, batch_norm=False):
    name = NAMES[config] + ("_bn" if batch_norm else "")
    group = f"vgg{'_bn' if batch_norm else ''}" if config in _DEPTH_CONFIGS else None
    return ModelSpec(
        name, builder, vgg, INFO, summary=summary + _INPUTS,
        arguments={"config": config, **({"batch_norm": True} if batch_norm else {})},
        options_doc=_DOC if batch_norm else _BN_DOC + _DOC, depth=depth,
        presets=PRESETS.get(name, ()), widths=WidthSpace("stage", _GROUPS, depth_group=group),
        feature_stages=FEATURE_STAGES, aliases={"block_widths": "stage_widths"},
    )


_BN = " with BatchNormalization after every convolution (torchvision's ``{}``)."
SPECS = spec_table(
    _spec("VGG11", "A", 11, "VGG-11: configuration A of Table 1 (8 conv + 3 FC layers)."),
    _spec("VGG11LRN", "A-LRN", 11,
          "VGG-11 with local response normalisation after the first convolution (A-LRN)."),
    _spec("VGG13", "B", 13, "VGG-13: configuration B of Table 1."),
    _spec("VGG16C", "C", 16,
          "VGG-16 with 1x1 convolutions as the last layer of blocks 3 to 5 (configuration C)."),
    _spec("VGG16", "D", 16, "VGG-16: configuration D of Table 1."),
    _spec("VGG19", "E", 19, "VGG-19: configuration E of Table 1."),
    *(_spec(f"VGG{d}BN", c, d, f"VGG-{d}" + _BN.format(f"vgg{d}_bn"), batch_norm=True)
      for c, d in zip(_DEPTH_CONFIGS, (11, 13, 16, 19))),
)
VGG11 = make_builder(SPECS["vgg11"])
VGG11LRN = make_builder(SPECS["vgg11_lrn"])
VGG13 = make_builder(SPECS["vgg13"])
VGG16C = make_builder(SPECS["vgg16_c"])
VGG16 = make_builder(SPECS["vgg16"])
VGG19 = make_builder(SPECS["vgg19"])
VGG11BN = make_builder(SPECS["vgg11_bn"])
VGG13BN = make_builder(SPECS["vgg13_bn"])
VGG16BN = make_builder(SPECS["vgg16_bn"])
VGG19BN = make_builder(SPECS["vgg19_bn"])
