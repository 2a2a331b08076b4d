"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012), and torchvision's variant.

The paper's network (section 3.5, Figure 2): five convolutions of 96, 256, 384,
384 and 256 filters, a ReLU after each, local response normalisation after the
first two (n=5, k=2, alpha=1e-4, beta=0.75), overlapping 3x3 stride-2
max-pooling after the two normalisations and the fifth convolution, then
FC-4096, FC-4096 (each followed by dropout 0.5) and FC-classes.

The network was split over two GPUs, and conv2, conv4 and conv5 only see the
kernel maps on their own GPU: by default they are grouped convolutions with two
groups (``groups=2``), which gives the paper's parameter count, **60,965,224**
("60 million parameters", section 4; the count of Caffe's reference AlexNet too).
``groups=1`` connects every convolution to all of its inputs, the single-tower
network most reimplementations build: **62,378,344** parameters.

``variant="torchvision"`` builds the network of torchvision's ``alexnet`` (from
Krizhevsky's "One weird trick" paper, 2014): 64, 192, 384, 256 and 256 filters,
no normalisation, conv1 padded by 2, dropout *before* fc6 and fc7:
**61,100,840** parameters, torchvision's count.

Input size: the paper says 224x224, but an unpadded 11x11 stride-4 conv1 gives
the 55x55 maps of Figure 2 only from 227x227 inputs ((227 - 11) / 4 + 1 = 55;
from 224 it would be 54.25). The paper's network therefore defaults to
227x227, as Caffe's reference model does; torchvision's variant pads conv1 by 2
and defaults to 224x224 ((224 + 4 - 11) // 4 + 1 = 55). Both end on 6x6x256
maps, which ``fc6`` flattens.

``lrn="caffe"`` uses Caffe's constants for the normalisation instead of the paper's:
k=1 and alpha=1e-4 divided by n (Caffe's ``LRN`` scales the *mean* of the squares over
the window), as the BVLC reference AlexNet was trained; its ``"bvlc"`` weights set it.

Layer names are Caffe's: ``conv1`` .. ``conv5``, ``norm1``, ``norm2``,
``pool1``, ``pool2``, ``pool5``, ``fc6``, ``fc7``, ``drop6``, ``drop7``, plus
``conv1_pad`` and ``pool5_flatten``; the classifier is ``predictions`` (Caffe's
``fc8``).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import keras

from kerasnets._validate import check_choice, check_int, check_probability, fail
from kerasnets.layers import LocalResponseNormalization
from kerasnets.models._application import (
    ModelInfo,
    build_application,
    make_builder,
    min_input_size,
    scale_width,
    validate_width_multiplier,
)
from kerasnets.preprocessing import IMAGENET_MEAN_STD, MEAN_SUBTRACTION
from kerasnets.registry import ModelSpec, WidthSpace, spec_table

PAPER = (
    "Krizhevsky, Sutskever & Hinton, ImageNet Classification with Deep Convolutional "
    "Neural Networks, NeurIPS 2012"
)


class Conv(NamedTuple):
    """One row of the convolutional part: the layer, its normalisation and pooling."""

    filters: int
    kernel: int
    stride: int = 1
    padding: int = 0  # explicit symmetric zero padding where stride > 1; else "same"
    grouped: bool = False  # split over the two GPUs of the paper (``groups``)
    norm: bool = False  # local response normalisation after the ReLU
    pool: bool = False  # 3x3 stride-2 max-pool after that


LAYERS = {
    "paper": {
        "conv1": Conv(96, 11, stride=4, norm=True, pool=True),
        "conv2": Conv(256, 5, grouped=True, norm=True, pool=True),
        "conv3": Conv(384, 3),
        "conv4": Conv(384, 3, grouped=True),
        "conv5": Conv(256, 3, grouped=True, pool=True),
    },
    "torchvision": {
        "conv1": Conv(64, 11, stride=4, padding=2, pool=True),
        "conv2": Conv(192, 5, grouped=True, pool=True),
        "conv3": Conv(384, 3),
        "conv4": Conv(256, 3, grouped=True),
        "conv5": Conv(256, 3, grouped=True, pool=True),
    },
}
DEFAULT_GROUPS = {"paper": 2, "torchvision": 1}
# The normalisation's constants: the paper's (section 3.3), or Caffe's, with which the
# BVLC reference model was trained (its alpha scales the mean of the squares over the
# window, and k is Caffe's default, 1).
LRN = {
    "paper": dict(size=5, k=2.0, alpha=1e-4, beta=0.75),
    "caffe": dict(size=5, k=1.0, alpha=1e-4, beta=0.75, alpha_is_averaged=True),
}
FC_UNITS = 4096


def _geometry(variant):
    """conv1 and the three 3x3 stride-2 pools; the stride-1 convolutions keep the size."""
    conv1 = LAYERS[variant]["conv1"]
    return [(conv1.kernel, conv1.stride, conv1.padding)] + [(3, 2, 0)] * 3


def _width(filters, width_multiplier, groups):
    """Scaled filters, rounded to a multiple of ``groups`` so every grouped conv divides."""
    return groups * max(1, round(filters * width_multiplier / groups))


def _validate(variant, groups, width_multiplier, dropout, lrn, model_name):
    check_choice("variant", variant, sorted(LAYERS), context=model_name)
    check_choice("lrn", lrn, sorted(LRN), context=model_name)
    if lrn != "paper" and not any(conv.norm for conv in LAYERS[variant].values()):
        fail("lrn", f"'paper' for variant={variant!r} (it has no normalisation layers)", lrn,
             received=f"lrn={lrn!r}, variant={variant!r}")
    check_int("groups", groups, allow_none=True)
    validate_width_multiplier(width_multiplier, model_name, min(conv.filters for conv in LAYERS[variant].values()))
    check_probability("dropout", dropout, context=model_name)


def alexnet(
    *, model_name, variant: Literal["paper", "torchvision"] = "paper", groups: Literal[1, 2] | None = None,
    width_multiplier: float = 1.0, dropout: float = 0.5, lrn: Literal["paper", "caffe"] = "paper", **contract,
):
    _validate(variant, groups, width_multiplier, dropout, lrn, model_name)
    groups = DEFAULT_GROUPS[variant] if groups is None else groups
    torchvision = variant == "torchvision"

    def backbone(inputs, head):
        x = inputs
        for i, (layer, conv) in enumerate(LAYERS[variant].items(), start=1):
            padding = "same"
            if conv.stride > 1:  # explicit symmetric padding (docs/architecture.md, Padding)
                padding = "valid"
                if conv.padding:
                    x = keras.layers.ZeroPadding2D(conv.padding, name=f"{layer}_pad")(x)
            x = keras.layers.Conv2D(
                _width(conv.filters, width_multiplier, groups), conv.kernel, strides=conv.stride,
                padding=padding, groups=groups if conv.grouped else 1, activation="relu", name=layer,
            )(x)
            if conv.norm:
                x = LocalResponseNormalization(**LRN[lrn], name=f"norm{i}")(x)
            if conv.pool:
                x = keras.layers.MaxPooling2D(3, strides=2, name=f"pool{i}")(x)
        return x

    def top(features, head):
        x = keras.layers.Flatten(name="pool5_flatten")(features)
        for i in (6, 7):
            dropout_layer = keras.layers.Dropout(dropout, name=f"drop{i}")
            if torchvision:  # torchvision drops the inputs of fc6 and fc7
                x = dropout_layer(x)
            x = keras.layers.Dense(scale_width(FC_UNITS, width_multiplier), activation="relu", name=f"fc{i}")(x)
            if not torchvision:  # the paper drops the outputs of fc6 and fc7
                x = dropout_layer(x)
        return head.classifier(x)

    if contract.get("name") is None:
        contract["name"] = "alexnet" if not torchvision else "alexnet_torchvision"
    return build_application(
        backbone=backbone, top=top, fixed_size_top=True,
        info=TORCHVISION_INFO if torchvision else INFO, model_name=model_name,
        min_size=min_input_size(_geometry(variant)), **contract,
    )


INFO = ModelInfo("alexnet", PAPER, 227, MEAN_SUBTRACTION, min_size=min_input_size(_geometry("paper")))
# torchvision's weights expect its ImageNet mean/std normalisation.
TORCHVISION_INFO = ModelInfo(
    "alexnet", PAPER, 224, IMAGENET_MEAN_STD, min_size=min_input_size(_geometry("torchvision"))
)

_DOC = """
        variant: ``"paper"`` (default) or ``"torchvision"`` (64-192-384-256-256
            filters, no normalisation, 224x224 inputs; torchvision's ``alexnet``).
        groups: the groups of conv2, conv4 and conv5: 2 (the paper's two-GPU
            split; the default of ``variant="paper"``) or 1 (every convolution
            sees all its inputs; the default of ``variant="torchvision"``).
        width_multiplier: scales the filters of every convolution (rounded to a
            multiple of ``groups``) and the width of fc6 and fc7.
        dropout: the dropout rate of fc6 and fc7 (the paper's 0.5).
        lrn: the normalisation's constants: ``"paper"`` (default: k=2, alpha=1e-4
            on the sum of the squares) or ``"caffe"`` (k=1, alpha=1e-4 on their mean
            over the 5 channels: the BVLC reference model's; the ``"bvlc"`` weights
            set it).
"""

SPECS = spec_table(ModelSpec(
    "alexnet", "AlexNet", alexnet, INFO, options_doc=_DOC,
    feature_stages={"conv1": "pool1", "conv2": "pool2", "conv5": "pool5"},  # after each max-pool
    widths=WidthSpace("global"),  # width searches: width_multiplier only
    # BVLC's Caffe model (the paper's network, lrn="caffe"); torchvision's one-GPU network.
    presets=("bvlc", "torchvision_v1"),
    summary=(
        "AlexNet of Krizhevsky et al. (2012): 60,965,224 parameters with the paper's\n"
        "    two-GPU grouping (groups=2), 62,378,344 with groups=1, 61,100,840 for\n"
        "    variant='torchvision'.\n\n"
        "    Inputs: 227x227 RGB (at least 67x67) with the mean RGB value subtracted; the\n"
        "    paper's \"224x224\" does not give its 55x55 conv1 maps without padding.\n"
        "    variant='torchvision' takes 224x224 (at least 63x63) normalised by the\n"
        "    ImageNet mean and standard deviation."
    ),
    example='model = kerasnets.AlexNet(weights=None, classes=10, input_shape=(227, 227, 3))',
))
AlexNet = make_builder(SPECS["alexnet"])
