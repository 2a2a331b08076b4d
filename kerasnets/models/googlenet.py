"""GoogLeNet, or Inception v1 (Szegedy et al., 2014), with its auxiliary classifiers.

The network of Table 1 of the paper: conv 7x7/2 (64), max pool 3x3/2, LRN,
conv 1x1 (64), conv 3x3 (192), LRN, max pool, inception 3a, 3b, max pool,
4a..4e, max pool, 5a, 5b, average pool, dropout 40%, linear, softmax. Each
inception module is the dimension-reduced one of Figure 2(b): 1x1; 1x1 reduce
then 3x3; 1x1 reduce then **5x5** (torchvision keeps a 3x3 there by mistake,
pytorch/vision#906); 3x3 max pool then a 1x1 projection; concatenated.

Two auxiliary classifiers sit on the outputs of 4a and 4d (section 5): average
pool 5x5/3, 1x1 conv 128 + ReLU, FC 1024 + ReLU, dropout 70%, linear + softmax.
With ``aux_classifiers=True`` (the default when ``include_top=True``) the model's
outputs are ``{"main", "aux1", "aux2"}`` and it trains all three heads from one
label per image, the auxiliary losses weighted 0.3 (see
`kerasnets.models._multi_output`); `kerasnets.inference_model` gives the
single-output model. ``batch_norm=True`` builds the variant most libraries train
today: conv + BatchNorm + ReLU everywhere (the auxiliary 1x1 conv included), no LRN.

The 3x3 stride-2 max pools are Caffe's, as the reference model (BVLC GoogLeNet,
whose weights the ``"bvlc"`` preset loads) and torchvision's ``googlenet`` pool: in
ceil mode without padding, the windows start at pixel 0 and the last one is clipped
at the border (112 -> 56 -> 28 -> 14 -> 7 at 224x224). Written out, that is one
pixel of explicit padding at the bottom and right only, then a ``"valid"`` pool
(`_ceil_mode_max_pool`): ``ceil((n - 3) / 2) + 1 = floor((n + 1 - 3) / 2) + 1``, and
the padded pixel enters only the clipped last window. Zero padding acts as Caffe's
clipping because every pool's input is >= 0 (pool1 follows a ReLU, pool2 an LRN of
ReLU outputs or a BatchNorm + ReLU, pool3 and pool4 concatenations of ReLU outputs).
``batch_norm=True`` (``googlenet_bn``) pools the same way: torchvision's ``googlenet``,
the BatchNorm network it stands for, pools in ceil mode without padding too, and
no weights or reference pools with the windows shifted by one pixel. LRN is the
reference Caffe model's (n=5, alpha=1e-4 averaged over n, beta=0.75, k=1).

Layer names follow the paper's modules: ``conv1_conv``, ``norm1``,
``inception_4a_b3_reduce_conv``, ``inception_4a_b5_conv``,
``inception_4a_pool_proj_conv``, ``inception_4a_output`` (a module's output),
``aux1_fc``, ``aux1_predictions``, ``predictions``.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, NamedTuple

import keras

from kerasnets._validate import check_bool
from kerasnets.layers import LocalResponseNormalization, channel_axis, conv_bn_act
from kerasnets.models._application import (
    ModelInfo,
    build_application,
    make_builder,
    module_groups,
    min_input_size,
    validate_width_multiplier,
)
from kerasnets.models._inception_common import (
    aux_model_class,
    check_aux_args,
    dropout_top,
    resolve_widths,
)
from kerasnets.preprocessing import MEAN_SUBTRACTION
from kerasnets.registry import ModelSpec, WidthSpace, spec_table

PAPER = "Szegedy et al., Going Deeper with Convolutions, CVPR 2015 (arXiv:1409.4842)"


class InceptionWidths(NamedTuple):
    """One row of Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj."""

    b1: int
    b3_reduce: int
    b3: int
    b5_reduce: int
    b5: int
    pool_proj: int


class StemWidths(NamedTuple):
    """The convolutions before inception 3a: conv1 7x7/2, conv2 1x1 reduce and 3x3."""

    conv1: int
    conv2_reduce: int
    conv2: int


class AuxWidths(NamedTuple):
    """An auxiliary classifier: the 1x1 conv and the fully-connected layer."""

    proj: int
    fc: int


TABLE1 = {
    "stem": StemWidths(conv1=64, conv2_reduce=64, conv2=192),
    "3a": InceptionWidths(64, 96, 128, 16, 32, 32),
    "3b": InceptionWidths(128, 128, 192, 32, 96, 64),
    "4a": InceptionWidths(192, 96, 208, 16, 48, 64),
    "4b": InceptionWidths(160, 112, 224, 24, 64, 64),
    "4c": InceptionWidths(128, 128, 256, 24, 64, 64),
    "4d": InceptionWidths(112, 144, 288, 32, 64, 64),
    "4e": InceptionWidths(256, 160, 320, 32, 128, 128),
    "5a": InceptionWidths(256, 160, 320, 32, 128, 128),
    "5b": InceptionWidths(384, 192, 384, 48, 128, 128),
    "aux": AuxWidths(proj=128, fc=1024),
}
# Table 1's "params" column, in thousands of weights (biases not counted). The
# numbers fit K = 1024 weights: conv2 is 112K = (64*64 + 3*3*64*192) / 1024 and
# the linear layer 1000K = 1024*1000/1024. Three entries disagree with the
# table's own widths: conv1 (2.7K; 7*7*3*64 = 9408 weights = 9.2K), 4c (463K;
# its widths give 497.5K) and 5a (1072K; 1018K). Sum: 6797.7K, "about 6.8M".
TABLE1_PARAMS_K = {
    "conv1": 2.7, "conv2": 112, "3a": 159, "3b": 380, "4a": 364, "4b": 437, "4c": 463,
    "4d": 580, "4e": 840, "5a": 1072, "5b": 1388, "linear": 1000,
}
# The layout: stages of modules, a 3x3/2 max pool between stages.
STAGES = (("3a", "3b"), ("4a", "4b", "4c", "4d", "4e"), ("5a", "5b"))
AUX_AFTER = {"4a": "aux1", "4d": "aux2"}
AUX_LOSS_WEIGHT = 0.3  # section 5: "the losses of the auxiliary classifiers were weighted by 0.3"

_LRN = dict(size=5, k=1.0, alpha=1e-4, beta=0.75, alpha_is_averaged=True)
_POOL = (3, 2, 0, True)  # every 3x3/2 max pool: kernel, stride, padding, Caffe's ceil mode
_CONV1 = (7, 2, 3)


def _conv_fn(batch_norm):
    """conv + ReLU (the paper), or conv + BatchNorm + ReLU (torchvision's epsilon and momentum).

    Without BatchNorm nothing rescales the activations, so the initializer
    decides whether training starts: the reference Caffe model's "xavier"
    filler (variance 1 / fan_in, Keras's ``lecun_uniform``) keeps the logits of
    mean-subtracted [0, 255] inputs small, while He's initialisation (variance
    2 / fan_in) carries the input's scale to the classifier and the paper's
    lr 0.01 diverges. With BatchNorm, `conv_bn_act`'s He initialisation is kept.
    """
    return functools.partial(
        conv_bn_act, batch_norm=batch_norm, bn_epsilon=1e-3, bn_momentum=0.9,
        kernel_initializer=None if batch_norm else "lecun_uniform",
    )


def _ceil_mode_max_pool(x, name):
    """Caffe's 3x3/2 max pool (ceil mode, no padding) on an input >= 0: one pixel of zeros
    at the bottom and right, then a valid pool (docs/architecture.md, Padding)."""
    x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name=name)(x)


def inception_module(x, w: InceptionWidths, *, conv, name):
    """Figure 2(b): four branches concatenated along the channels."""
    b1 = conv(x, w.b1, 1, name=f"{name}_b1")
    b3 = conv(x, w.b3_reduce, 1, name=f"{name}_b3_reduce")
    b3 = conv(b3, w.b3, 3, name=f"{name}_b3")
    b5 = conv(x, w.b5_reduce, 1, name=f"{name}_b5_reduce")
    b5 = conv(b5, w.b5, 5, name=f"{name}_b5")
    pool = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    pool = conv(pool, w.pool_proj, 1, name=f"{name}_pool_proj")
    return keras.layers.Concatenate(axis=channel_axis(), name=f"{name}_output")(
        [b1, b3, b5, pool]
    )


def aux_classifier(x, w: AuxWidths, head, *, conv, name):
    """Section 5: avg pool 5x5/3, 1x1 conv, FC + ReLU, dropout 70%, the classifier."""
    x = keras.layers.AveragePooling2D(5, strides=3, name=f"{name}_pool")(x)
    x = conv(x, w.proj, 1, name=f"{name}_proj")
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    x = keras.layers.Dense(w.fc, activation="relu", name=f"{name}_fc")(x)
    x = keras.layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return head.classifier(x, name=f"{name}_predictions")


def _geometry(aux_classifiers):
    """(kernel, stride, padding) of each size-changing layer, for `min_input_size`."""
    to_4a = [_CONV1, _POOL, _POOL, _POOL]  # conv1, pool1, pool2, pool3
    if aux_classifiers:  # 4a's output must fit the 5x5/3 average pool of aux1
        return to_4a + [(5, 3, 0)]
    return to_4a + [_POOL]


def googlenet(
    *, model_name, batch_norm: bool = False, aux_classifiers: bool | None = None,
    aux_loss_weight: float = AUX_LOSS_WEIGHT, width_multiplier: float = 1.0,
    stage_widths: Mapping[str, Any] | None = None, **contract,
):
    include_top = contract.get("include_top", True)
    if aux_classifiers is None:
        aux_classifiers = include_top is True
    aux_classifiers = check_aux_args(aux_classifiers, aux_loss_weight, include_top, model_name)
    validate_width_multiplier(width_multiplier, model_name)
    check_bool("batch_norm", batch_norm, context=model_name)
    widths = resolve_widths(TABLE1, stage_widths, width_multiplier, model_name)
    conv = _conv_fn(batch_norm)
    contract["name"] = contract.get("name") or ("googlenet_bn" if batch_norm else "googlenet")

    def backbone(inputs, head):
        stem = widths["stem"]
        x = conv(inputs, stem.conv1, 7, strides=2, padding=3, name="conv1")
        x = _ceil_mode_max_pool(x, "pool1")
        if not batch_norm:
            x = LocalResponseNormalization(**_LRN, name="norm1")(x)
        x = conv(x, stem.conv2_reduce, 1, name="conv2_reduce")
        x = conv(x, stem.conv2, 3, name="conv2")
        if not batch_norm:
            x = LocalResponseNormalization(**_LRN, name="norm2")(x)
        x = _ceil_mode_max_pool(x, "pool2")
        outputs = {}
        for stage, modules in enumerate(STAGES, start=3):
            if stage > 3:
                x = _ceil_mode_max_pool(x, f"pool{stage - 1}")
            for module in modules:
                x = inception_module(x, widths[module], conv=conv, name=f"inception_{module}")
                if aux_classifiers and module in AUX_AFTER:
                    aux = AUX_AFTER[module]
                    outputs[aux] = aux_classifier(x, widths["aux"], head, conv=conv, name=aux)
        return {"main": x, **outputs} if outputs else x

    return build_application(
        backbone=backbone, info=INFO, model_name=model_name,
        min_size=min_input_size(_geometry(aux_classifiers)),
        top=dropout_top(0.4), fixed_size_top=aux_classifiers,
        model_class=aux_model_class(aux_loss_weight), **contract,
    )


INFO = ModelInfo("googlenet", PAPER, 224, MEAN_SUBTRACTION, min_size=min_input_size(_geometry(True)))

_COMMON_DOC = """
        aux_classifiers: add the two auxiliary classifiers (on 4a and 4d); the
            outputs are then a dict ``{"main", "aux1", "aux2"}`` and ``fit`` trains
            the three heads from one label per image. Default: ``include_top``.
            They flatten a 4x4 map (at 224x224), so they need a fixed input size
            of at least 79x79 (31x31 without them). `kerasnets.inference_model`
            drops them.
        aux_loss_weight: weight of each auxiliary loss in the total loss when the
            model is compiled with one loss (default 0.3, the paper's).
        width_multiplier: scales every convolution and fully-connected width
            (rounded, at least 1).
        stage_widths: overrides rows of ``TABLE1`` before ``width_multiplier``:
            ``{"4a": InceptionWidths(...)}`` or ``{"4a": {"b5": 64}}``; keys are the
            module names ``"3a"`` .. ``"5b"``, ``"stem"`` and ``"aux"``.
"""

_EXAMPLE = (
    "model = kerasnets.{b}(weights=None, classes=10)  # outputs main, aux1, aux2\n"
    "    >>> model.compile('sgd', loss='sparse_categorical_crossentropy', metrics=['accuracy'])\n"
    "    >>> # model.fit(images, labels): one label per image trains the three heads\n"
    "    >>> serving = kerasnets.inference_model(model)  # the main classifier only"
)

# Width searches (kerasnets.tuning): one scale per Inception module.
WIDTHS = WidthSpace("module", module_groups(TABLE1, "inception_"), module_layer="inception_{}_output")
# The last module at each resolution: 28x28, 14x14, 7x7 at 224x224 (strides 8, 16, 32).
FEATURE_STAGES = {f"inception_{m[-1]}": f"inception_{m[-1]}_output" for m in STAGES}
_FACTS = dict(widths=WIDTHS, feature_stages=FEATURE_STAGES, aliases={"module_widths": "stage_widths"})

SPECS = spec_table(
    ModelSpec(
        "googlenet", "GoogLeNet", googlenet, INFO, example=_EXAMPLE.format(b="GoogLeNet"),
        summary="GoogLeNet (Inception v1) of Table 1 of Szegedy et al. (2014), with its auxiliary classifiers.",
        options_doc="""
        batch_norm: conv + BatchNorm + ReLU instead of conv + ReLU, and no LRN
            (the variant registered as ``googlenet_bn``).""" + _COMMON_DOC,
        presets=("bvlc",),  # BVLC's Caffe model: this architecture, its auxiliary heads included
        **_FACTS,
    ),
    ModelSpec(
        "googlenet_bn", "GoogLeNetBN", googlenet, INFO, arguments={"batch_norm": True},
        example=_EXAMPLE.format(b="GoogLeNetBN"),
        summary="GoogLeNet with BatchNorm after every convolution and no LRN (as most libraries train it).",
        options_doc=_COMMON_DOC, **_FACTS,
    ),
)
GoogLeNet = make_builder(SPECS["googlenet"])
GoogLeNetBN = make_builder(SPECS["googlenet_bn"])
InceptionV1 = GoogLeNet
