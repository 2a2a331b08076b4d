"""The keras.applications contract, written once.

keras.applications repeats about 80 lines (weights check, classes check,
input_tensor, top, pooling) in every model file. Here it lives in one place:
a model file describes its architecture (a ``backbone`` function, its
`ModelInfo`, its minimum input size) and calls `build_application`.

Every builder takes the keras.applications arguments with the same meaning::

    include_top=True, weights=None, input_tensor=None, input_shape=None,
    pooling=None, classes=1000, classifier_activation="softmax", name=None

and validates all of them before a single layer is built.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import types
from typing import Callable, Sequence

import keras

from kerasnets._validate import check_bool, check_choice, check_int, check_keras_name, check_number, fail, is_int
from kerasnets.card import CARD_LAYER, ModelCard, ModelCardLayer, set_model_card
from kerasnets.layers import channels_of, image_shape, spatial_shape
from kerasnets.registry import ModelInfo, ModelSpec, register_spec  # ModelInfo: kerasnets.models re-exports it
from kerasnets.weights import load_file, resolve_weights

__all__ = [
    "ModelInfo",
    "Head",
    "build_application",
    "conv_output_size",
    "trace_sizes",
    "min_input_size",
    "CONTRACT_ARGS_DOC",
    "module_groups",
    "make_builder",
    "CONTRACT_DEFAULTS",
    "CONTRACT_ANNOTATIONS",
]

CONTRACT_ARGS_DOC = """
        include_top: whether to include the classifier on top of the network.
        weights: ``None`` (random initialisation), ``"imagenet"`` (the model's
            default ImageNet preset), a preset name (``"keras_applications"``,
            ``"torchvision_v1"``, ``"torchvision_v2"``: see
            `kerasnets.weights.list_presets`), or the path of a weights file: a
            ``.weights.h5`` saved from the same architecture, a keras.applications
            legacy ``.h5``, or a torchvision state dict (``.safetensors``, ``.pth``).
            Models without an exact public source raise for ``"imagenet"``.
        input_tensor: optional Keras tensor (the output of ``keras.Input()``) to use
            as the model's input.
        input_shape: optional shape tuple without the batch axis, in the layout of
            ``keras.config.image_data_format()``; any number of channels. Spatial
            sizes may be ``None`` unless the classifier needs a fixed size.
        pooling: with ``include_top=False``: ``None`` (the 4D feature map),
            ``"avg"`` or ``"max"`` (global pooling to a 2D tensor).
        classes: number of classes of the classifier (``include_top=True``).
        classifier_activation: activation of the classifier: a name such as
            ``"softmax"``, a callable, or ``None`` for logits.
        name: the model's name (default: the registered name).
"""


# The keras.applications arguments and their defaults, written once: `build_application`
# fills what a family function does not pass, `make_builder` puts them in every public
# builder's signature (``classes`` defaults to the model's `ModelInfo.default_classes`).
CONTRACT_DEFAULTS = types.MappingProxyType(dict(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
))
# Their types, as the public builders' signatures show them (`inspect.signature`, `help`)
# and scripts/make_stubs.py writes them for type checkers and IDEs. Strings, like every
# annotation of the family functions (``from __future__ import annotations``); the names
# they use are those the stub imports (os, Any, Callable, Literal, Mapping, Sequence, keras).
CONTRACT_ANNOTATIONS = types.MappingProxyType(dict(
    include_top="bool",
    weights="str | os.PathLike | None",
    input_tensor="Any",
    input_shape="Sequence[int | None] | None",
    pooling='Literal["avg", "max"] | None',
    classes="int",
    classifier_activation="str | Callable[..., Any] | None",
    name="str | None",
))


def _contract(given, model_name):
    """``given`` completed with `CONTRACT_DEFAULTS`, in their order; other names raise."""
    unknown = sorted(set(given) - set(CONTRACT_DEFAULTS))
    if unknown:
        raise TypeError(f"{model_name} got unexpected keyword arguments {unknown}. Received: {unknown}")
    return {k: given.get(k, v) for k, v in CONTRACT_DEFAULTS.items()}


def module_groups(table, prefix):
    """``{"<prefix><module>_scale": (module, row)}`` of an Inception width table (not the stem or aux)."""
    return {f"{prefix}{key}_scale": (key, row) for key, row in table.items() if key not in ("stem", "aux")}


@dataclasses.dataclass(frozen=True)
class Head:
    """The classifier settings a backbone needs to build auxiliary heads."""

    include_top: bool
    classes: int
    classifier_activation: object

    def classifier(self, x, name="predictions"):
        """The final Dense layer, computed in float32 (safe under mixed precision)."""
        return keras.layers.Dense(
            self.classes, activation=self.classifier_activation, dtype="float32", name=name
        )(x)


# ---------------------------------------------------------------------------
# Spatial arithmetic: how each family computes its minimum input size.
# ---------------------------------------------------------------------------


def conv_output_size(size, kernel, stride=1, padding=0, ceil_mode=False):
    """Output length of a convolution or pooling window along one axis.

    ``padding`` is an int (symmetric zero padding on each side), ``"valid"`` or
    ``"same"``. ``ceil_mode`` rounds up as Caffe's pooling does: the last window may
    start inside the input and be clipped at its border (not inside the padding).
    """
    if size is None:
        return None
    if padding == "same":
        return -(-size // stride)
    pad = 0 if padding == "valid" else int(padding)
    span = size + 2 * pad - kernel
    if not ceil_mode:
        return 0 if span < 0 else span // stride + 1
    out = -(-span // stride) + 1
    if pad and (out - 1) * stride >= size + pad:  # Caffe: no window starts in the padding
        out -= 1
    return max(out, 0)


def trace_sizes(size, ops: Sequence[tuple]):
    """Applies ``ops`` of ``(kernel, stride, padding[, ceil_mode])`` in turn; returns every size."""
    sizes = []
    for op in ops:
        size = conv_output_size(size, *op)
        sizes.append(size)
    return sizes


def min_input_size(ops: Sequence[tuple], final_size: int = 1, limit: int = 4096) -> int:
    """The smallest input length for which every op's output is at least 1 and every
    strided op has at least ``stride`` pixels to downsample.

    Without the second condition a padded stride-2 convolution maps 1 pixel to 1
    pixel, and a ResNet would accept 1x1 images: every layer after the first
    would compute on padding. ``final_size`` is what the last op must produce
    (e.g. 5 for a 5x5 valid average pool that follows).
    """
    for size in range(1, limit + 1):
        sizes = trace_sizes(size, ops)
        inputs = [size, *sizes[:-1]]
        downsampled = all(n >= op[1] for n, op in zip(inputs, ops))
        if downsampled and all(s >= 1 for s in sizes) and (not sizes or sizes[-1] >= final_size):
            return size
    raise ValueError(f"No input size up to {limit} satisfies the architecture.")


# ---------------------------------------------------------------------------
# Validation, in one place.
# ---------------------------------------------------------------------------


def _validate_weights(weights, model_name):
    """The family functions take ``None`` or a file path; presets are resolved by the
    public builders (`make_builder`), which know the registered name."""
    if weights is None or isinstance(weights, os.PathLike):
        return
    if not isinstance(weights, str) or not os.path.isfile(weights):
        fail("weights", "None (random initialization), 'imagenet', a preset name, or the path "
             "to an existing weights file", weights)


def _validate_activation(activation):
    if activation is None or callable(activation):
        return
    check_keras_name("classifier_activation", activation, keras.activations.get,
                     "None, a callable or the name of a Keras activation such as 'softmax'")


def _is_softmax(activation):
    if activation is None:
        return False
    try:
        return keras.activations.get(activation) is keras.activations.softmax
    except (ValueError, TypeError):
        return False


def _resolve_input_shape(input_shape, input_tensor, info, model_name):
    tensor_shape = None
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            fail("input_tensor", "a Keras tensor, such as the output of keras.Input()", input_tensor)
        tensor_shape = tuple(input_tensor.shape[1:])
    if input_shape is not None:
        try:  # a string is no shape ("224" is not three sizes); 224.0 is no size
            ok = not isinstance(input_shape, (str, bytes)) and all(d is None or is_int(d) and d > 0
                                                                   for d in input_shape)
        except TypeError:
            ok = False
        if not ok:
            fail("input_shape", "a tuple of positive integers (None for a variable height or width), "
                 "such as (224, 224, 3)", input_shape)
        input_shape = tuple(None if d is None else int(d) for d in input_shape)
        if len(input_shape) != 3:
            fail("input_shape", "a tuple of 3 entries (height, width, channels in the layout of "
                 "keras.config.image_data_format())", input_shape)
        if tensor_shape is not None and any(
            a is not None and b is not None and a != b for a, b in zip(input_shape, tensor_shape)
        ):
            fail("input_shape", "None or the shape of input_tensor", input_shape, context=model_name,
                 received=f"input_shape={input_shape}, input_tensor.shape={input_tensor.shape}")
    shape = input_shape or tensor_shape
    if shape is None:
        size = info.default_size
        shape = image_shape(size)
    if len(shape) != 3:
        fail("input_tensor", "a 4D image batch", input_tensor, context=model_name,
             received=f"input_tensor.shape={input_tensor.shape}")
    channels = channels_of(shape)
    if channels is None or channels < 1:
        fail("input_shape", "a shape with a known, positive number of channels", shape)
    return shape


def build_application(
    *,
    backbone: Callable,
    info: ModelInfo,
    model_name: str,
    min_size: int,
    top: Callable | None = None,
    fixed_size_top: bool = False,
    model_class=None,
    **contract,
):
    """Validates the contract's arguments, then builds ``backbone`` with its head.

    Args:
        backbone: ``backbone(inputs, head) -> features``; returns the last feature
            map, or a dict ``{"main": features, "aux1": output, ...}`` when it built
            auxiliary heads itself (it does so only when ``head.include_top``).
        info: the family's `ModelInfo`.
        model_name: the display name used in errors and as the default ``name``.
        min_size: the smallest spatial size the architecture accepts (computed
            with `min_input_size` from the family's own table).
        top: ``top(features, head) -> output``: the classifier of the family. The
            default is global average pooling then the classifier.
        fixed_size_top: the top flattens a feature map and so needs a fixed size.
        model_class: the `keras.Model` subclass to build (default `keras.Model`).
        **contract: the keras.applications arguments (`CONTRACT_DEFAULTS`); those
            not given take their defaults.
    """
    (include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation,
     name) = _contract(contract, model_name).values()
    # --- validate everything before building a layer ---
    _validate_weights(weights, model_name)
    check_bool("include_top", include_top)
    check_choice("pooling", pooling, (None, "avg", "max"))
    check_int("classes", classes)
    _validate_activation(classifier_activation)
    if include_top and classes == 1 and _is_softmax(classifier_activation):
        fail("classes", "at least 2 with classifier_activation='softmax' (a softmax over one class is "
             "always 1.0; for one yes/no output pass classifier_activation='sigmoid')", classes,
             context=model_name, received=f"classes=1, classifier_activation={classifier_activation!r}")
    shape = _resolve_input_shape(input_shape, input_tensor, info, model_name)
    spatial = spatial_shape(shape)
    if include_top and fixed_size_top and any(d is None for d in spatial):
        fail("input_shape", f"of a fixed height and width when {model_name} has include_top=True "
             "(it flattens its last feature map into fully-connected layers, so the input needs a "
             "fixed height and width; pass include_top=False for variable sizes)", shape)
    if any(d is not None and d < min_size for d in spatial):
        fail("input_shape", f"at least {min_size}x{min_size}", shape, context=model_name)

    # --- build ---
    if input_tensor is not None:
        inputs = input_tensor
    else:
        inputs = keras.Input(shape=shape, name="input_layer")
    head = Head(include_top, classes, classifier_activation)
    # The model's record (kerasnets.card): an identity the public builder fills in.
    features = backbone(ModelCardLayer(name=CARD_LAYER)(inputs), head)
    aux = {}
    if isinstance(features, dict):
        aux = {k: v for k, v in features.items() if k != "main"}
        features = features["main"]
    if include_top:
        x = (top or global_pool_top)(features, head)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(features)
    else:
        x = features
    outputs = {"main": x, **aux} if aux else x

    if input_tensor is not None:
        model_inputs = keras.utils.get_source_inputs(input_tensor)
    else:
        model_inputs = inputs
    model_class = model_class or keras.Model
    model = model_class(model_inputs, outputs, name=name or model_name.lower())
    if weights is not None:
        load_file(model, weights, family=info.family)
    return model


def global_pool_top(features, head: Head):
    """Global average pooling then the classifier (ResNet, Inception)."""
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
    return head.classifier(x)


def scale_width(filters: int, width_multiplier: float) -> int:
    """A filter count times ``width_multiplier``, rounded, at least 1."""
    return max(1, int(round(filters * width_multiplier)))


def validate_width_multiplier(width_multiplier, model_name, narrowest=None):
    """A positive number that leaves every layer at least one channel: `scale_width` of
    ``narrowest`` (the family's fewest filters) must not round to 0, which would be
    clamped to 1 without a word (a 285-parameter "ResNet-20")."""
    check_number("width_multiplier", width_multiplier, context=model_name)
    if narrowest is not None and round(narrowest * width_multiplier) < 1:
        fail("width_multiplier", f"above {0.5 / narrowest:g}, so that every layer keeps at least one "
             f"channel (the narrowest has {narrowest} filters)", width_multiplier, context=model_name)


# ---------------------------------------------------------------------------
# Public builders: one per registered `ModelSpec`, from its family function.
# ---------------------------------------------------------------------------


def _signature(spec: ModelSpec):
    """The contract arguments (also positional, as keras.applications), then the family's
    keyword-only options that ``spec.arguments`` does not pin, then the aliases."""
    contract_defaults = dict(CONTRACT_DEFAULTS, classes=spec.info.default_classes)
    params = [
        inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=v,
                          annotation=CONTRACT_ANNOTATIONS[k])
        for k, v in contract_defaults.items()
    ]
    options = {
        p.name: p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in inspect.signature(spec.family).parameters.values()
        if p.kind == inspect.Parameter.KEYWORD_ONLY
        and p.name not in contract_defaults
        and p.name not in spec.arguments
        and p.name != "model_name"
    }
    params += options.values()
    params += [
        inspect.Parameter(alias, inspect.Parameter.KEYWORD_ONLY, default=None,
                          annotation=options[argument].annotation)
        for alias, argument in spec.aliases.items()
    ]
    return inspect.Signature(params, return_annotation="keras.Model")


def _apply_aliases(spec, passed, arguments):
    """Moves an alias's value (``block_widths=``) to its argument (``stage_widths=``)."""
    for alias, argument in spec.aliases.items():
        value = arguments.pop(alias)
        if alias not in passed:
            continue
        if argument in passed:
            fail(alias, f"left out when {argument} is given ({alias} is another name of {argument}; "
                 "pass one of them)", value, received=f"{alias}={value!r}, {argument}={passed[argument]!r}")
        arguments[argument] = value
        passed[argument] = passed.pop(alias)


def _docstring(spec):
    example = spec.example or f"model = kerasnets.{spec.builder_name}(weights=None)"
    aliases = "".join(
        f"        {alias}: another name of ``{argument}`` (the same argument).\n"
        for alias, argument in spec.aliases.items()
    )
    return (
        f"{spec.summary}\n\n    Reference: {spec.info.paper}\n\n    Args:{CONTRACT_ARGS_DOC}"
        f"{spec.options_doc}{aliases}\n    Returns:\n        A `keras.Model`.\n\n"
        f"    Example:\n\n    >>> import kerasnets\n    >>> {example}\n"
    )


def _recorded_arguments(arguments, parameters):
    """The builder arguments that differ from their defaults, for the model card: not
    ``weights`` (the card's own field) nor ``name``; ``input_tensor`` as its ``input_shape``."""
    recorded = {}
    for key, value in arguments.items():
        if key == "input_shape" and arguments.get("input_tensor") is not None:
            value = tuple(arguments["input_tensor"].shape[1:])
        if key in ("weights", "name", "input_tensor"):
            continue
        if key not in parameters or value is not parameters[key].default and value != parameters[key].default:
            recorded[key] = value
    return recorded


def make_builder(spec: ModelSpec):
    """Makes the public builder ``spec.builder_name`` of ``spec`` and registers both.

    The builder calls ``spec.family(model_name=spec.builder_name, **spec.arguments,
    **arguments)``, loads the weights and fills the model's `kerasnets.card.ModelCard`
    (its registered name, the arguments that differ from their defaults, the weights'
    origin and preprocessing). Its signature and docstring are set so that
    ``help(kerasnets.ResNet50)`` reads like keras.applications; everything else
    the package knows of the model is read from the spec (`kerasnets.registry.get_entry`).
    """
    signature = _signature(spec)
    parameters = signature.parameters

    def builder(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        passed = dict(bound.arguments)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        _apply_aliases(spec, passed, arguments)
        # Checked before a layer is built; a preset may set builder arguments.
        request = resolve_weights(
            spec.builder_name, spec.name, spec.info.family, passed, arguments, parameters
        )
        arguments["weights"] = None  # loaded below, into the built model
        model = spec.family(model_name=spec.builder_name, **spec.arguments, **arguments)
        origin = None if request is None else request.load(model, include_top=arguments["include_top"])
        preprocessing = None if request is None else request.preprocessing
        set_model_card(model, ModelCard(
            spec.name, _recorded_arguments(arguments, parameters), preprocessing or spec.info.preprocessing,
            weights=origin,
        ))
        return model

    builder.__name__ = builder.__qualname__ = spec.builder_name
    builder.__module__ = spec.family.__module__
    builder.__signature__ = signature
    builder.__doc__ = _docstring(spec)
    builder.info = spec.info
    return register_spec(spec, builder)
