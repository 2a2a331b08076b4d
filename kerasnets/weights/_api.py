"""``weights=``: what it accepts, how it is checked before a layer is built, how it loads."""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings

import numpy as np

from kerasnets._validate import check_instance, fail, is_int
from kerasnets.card import WeightsOrigin, model_card, set_model_card
from kerasnets.layers import channels_last, spatial_shape
from kerasnets.registry import entries, get_entry
from kerasnets.weights import _caffe, _convert, _files, _readers
from kerasnets.weights._presets import Preset

# Family options that do not change a weight's shape or value: free with a preset.
_FREE_OPTIONS = {"dropout", "aux_loss_weight"}
_TORCH_SUFFIXES = (".safetensors", ".pth", ".pt")
_TORCH_CONVERTERS = {"resnet": "torchvision_resnet", "vgg": "torchvision_vgg", "alexnet": "torchvision_alexnet"}
_CAFFE_SUFFIX = ".caffemodel"
# A .caffemodel by path: BVLC's layer names, the channels as stored (BGR).
_CAFFE_CONVERTERS = {"googlenet": "caffe_googlenet_bgr", "alexnet": "caffe_alexnet_bgr"}


def presets_of(model: str) -> tuple[Preset, ...]:
    """The presets of a registered model, default first (``()`` when none): those its
    `kerasnets.registry.ModelSpec` declares, with their files, hashes, preprocessing and
    published accuracy."""
    return get_entry(model).presets


def models_with_weights() -> list[str]:
    """The registered models whose spec names at least one preset."""
    return [e.name for e in entries() if e.presets]


def _with_weights_text():
    parts = []
    for model in models_with_weights():
        variants = {p.builder_kwargs.get("variant") for p in presets_of(model)}
        only = variants.pop() if len(variants) == 1 else None  # every preset needs this variant
        parts.append(model + (f" (variant={only!r})" if only else ""))
    return ", ".join(parts)


def get_preset(model: str, name: str = "imagenet", **builder_kwargs) -> Preset:
    """The preset ``name`` of registered ``model``; ``"imagenet"`` is the first that fits
    ``builder_kwargs`` (``downsample_on="3x3"`` picks torchvision's ResNet-50)."""
    presets = presets_of(model)
    if not presets:
        raise ValueError(
            f"There are no ImageNet weights for {model}: no public source matches its "
            f"architecture exactly, and kerasnets does not load approximately matching weights. "
            f"Models with weights: {_with_weights_text()}. Received: weights={name!r}"
        )
    if name != "imagenet":
        for preset in presets:
            if preset.name == name:
                return preset
        raise ValueError(
            f"{model} has no preset {name!r}. Its presets: "
            f"{', '.join(p.name for p in presets)} (or 'imagenet': {presets[0].name}). "
            f"Received: weights={name!r}"
        )
    builder_kwargs = _non_default(model, builder_kwargs)
    for preset in presets:
        if all(builder_kwargs.get(k, v) == v for k, v in preset.builder_kwargs.items()) and all(
            k in preset.builder_kwargs or k in _FREE_OPTIONS or k in preset.free_options for k in builder_kwargs
        ):
            return preset
    options = "; ".join(p.describe() for p in presets)
    given = ", ".join(f"{k}={v!r}" for k, v in builder_kwargs.items())
    raise ValueError(
        f"No ImageNet preset of {model} fits {given}: each preset holds the weights of one "
        f"architecture. Its presets: {options}. Pass weights=None to train this architecture "
        f"from scratch. Received: weights='imagenet', {given}"
    )


def _non_default(model, builder_kwargs):
    """The builder arguments that differ from the builder's defaults."""
    import inspect

    parameters = inspect.signature(get_entry(model).builder).parameters
    return {
        k: v for k, v in builder_kwargs.items()
        if k not in parameters or parameters[k].default is inspect.Parameter.empty
        or v != parameters[k].default
    }


@dataclasses.dataclass(frozen=True)
class WeightsRequest:
    """A checked ``weights=`` value: a preset, or a file path, and how to load it."""

    preset: Preset | None = None
    path: str | None = None
    family: str = ""

    @property
    def preprocessing(self):
        """What the weights expect: the preset's; ``None`` for a file (the model's own)."""
        return None if self.preset is None else self.preset.preprocessing

    def load(self, model, *, include_top=True) -> WeightsOrigin:
        """Loads the weights into ``model``; returns where they came from (for its model card)."""
        if self.preset is not None:
            file = preset_file(self.preset, include_top)
            load_preset(model, self.preset, include_top=include_top)
            return WeightsOrigin(self.preset.name, self.preset.source, file.name, file.file_hash)
        load_file(model, self.path, family=self.family)
        return WeightsOrigin(None, "file", self.path, _files.file_hash(self.path, "sha256"))


def resolve_weights(model_name, registry_name, family, passed, arguments, parameters):
    """Checks ``weights=`` before anything is built.

    ``passed``: the arguments the caller gave; ``arguments``: all of them with the
    defaults (changed in place: a preset's builder arguments are set);
    ``parameters``: the builder's ``inspect.Parameter`` by name. Returns ``None``
    or a `WeightsRequest`.
    """
    weights = arguments.get("weights")
    if weights is None:
        return None
    if isinstance(weights, os.PathLike) or (isinstance(weights, str) and _looks_like_path(weights)):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            fail("weights", "None (random initialisation), 'imagenet', a preset name or the path of an "
                 f"existing weights file (the file {path} does not exist)", weights)
        if not path.endswith((".h5", ".hdf5", _CAFFE_SUFFIX) + _TORCH_SUFFIXES):
            fail("weights", "a Keras `.weights.h5` file (model.save_weights), a keras.applications "
                 "legacy `.h5`, a torchvision state dict (`.safetensors`, `.pth`) or a Caffe "
                 "`.caffemodel`", weights)
        if path.endswith(_TORCH_SUFFIXES) and family not in _TORCH_CONVERTERS:
            fail("weights", f"a Keras weights file for {model_name} (torchvision state dicts load into "
                 "ResNet, VGG and AlexNet models only)", weights)
        if path.endswith(_CAFFE_SUFFIX) and family not in _CAFFE_CONVERTERS:
            fail("weights", f"a Keras weights file for {model_name} (Caffe models load into GoogLeNet "
                 "and AlexNet models only: BVLC's layer names)", weights)
        return WeightsRequest(path=path, family=family)
    check_instance("weights", weights, str, "None (random initialization), 'imagenet', a preset name "
                   "or the path to a weights file")
    options = {
        k: v for k, v in passed.items()
        if k in parameters and parameters[k].kind == parameters[k].KEYWORD_ONLY
    }
    preset = get_preset(registry_name, weights, **options)
    for key, value in options.items():
        if key in _FREE_OPTIONS or key in preset.free_options or preset.builder_kwargs.get(key) == value:
            continue
        if value != parameters[key].default or key in preset.builder_kwargs:
            architecture = f" with {preset.builder_kwargs}" if preset.builder_kwargs else ""
            fail(key, f"left as it is for the {preset.name} weights of {model_name}: they are for its default "
                 f"architecture{architecture}, and {key}={value!r} changes it (pass weights=None to train it "
                 "from scratch)", value, received=f"weights={weights!r}, {key}={value!r}")
    arguments.update(preset.builder_kwargs)
    if arguments.get("include_top", True):
        if arguments.get("classes") != 1000:
            fail("classes", "1000 with include_top=True and an ImageNet preset as `weights` (pass "
                 "include_top=False for a new classifier)", arguments.get("classes"))
        shape = arguments.get("input_shape")
        if preset.fixed_size_top and shape is not None:
            spatial = spatial_shape(shape)
            if spatial != (preset.input_size, preset.input_size):
                size = f"{preset.input_size}x{preset.input_size}"
                fail("input_shape", f"{size} for {model_name} with include_top=True and ImageNet weights (it "
                     f"flattens a {size} input into its classifier; pass include_top=False for other sizes)",
                     shape)
    return WeightsRequest(preset=preset, family=family)


def _looks_like_path(text):
    return os.sep in text or "/" in text or text.endswith((".h5", ".hdf5", _CAFFE_SUFFIX) + _TORCH_SUFFIXES)


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------

def _read(converter, path):
    if converter.startswith("keras"):
        return _readers.read_legacy_h5(path)
    if converter.startswith("caffe"):
        return _caffe.read_state_dict(path)
    return _readers.read_state_dict(path)


def preset_file(preset: Preset, include_top=True) -> _files.WeightFile:
    """The file of ``preset`` that a model with or without its classifier loads."""
    return preset.file if include_top or preset.notop_file is None else preset.notop_file


def load_preset(model, preset: Preset, *, include_top=True):
    """Fetches ``preset``'s file (cache or download), converts and assigns it.

    The model is left unchanged when anything fails."""
    file = preset_file(preset, include_top)
    path = _files.fetch(file)
    source = f"{path} (the {preset.name} weights of {preset.model})"
    converted = _convert.convert(preset.converter, model, _read(preset.converter, path), source=source)
    _convert.assign(model, converted, source=source)


def load_file(model, path, *, family=""):
    """Loads a weight file into ``model``: `.weights.h5`, a legacy `.h5`, a torchvision
    state dict (``.safetensors``/``.pth``) or a Caffe ``.caffemodel`` (BVLC's layer names;
    its channels as stored, BGR). Nothing is changed when it does not fit."""
    path = os.fspath(path)
    if path.endswith(".weights.h5"):
        return _load_keras_weights(model, path)
    if path.endswith(_CAFFE_SUFFIX):
        converter = _CAFFE_CONVERTERS[family]
        converted = _convert.convert(converter, model, _read(converter, path), source=path)
        return _convert.assign(model, converted, source=path)
    if path.endswith((".h5", ".hdf5")):
        layers = _readers.read_legacy_h5(path)
        names = {layer.name for layer in _convert.weight_layers(model)}
        stored = dict(layers)
        if family == "resnet" and any(
            n.endswith("_conv") and len(a) == 2 for n, a in layers
        ) and names <= set(stored) | {"predictions"}:
            # keras.applications' ResNet: conv biases folded; the channels as stored (BGR).
            converted = _convert.keras_resnet(model, layers)
            converted["conv1_conv"] = [converted["conv1_conv"][0][:, :, ::-1, :].copy()]
        elif names <= set(stored):
            converted = _convert.keras_by_name(model, layers)
        else:
            converted = _convert.keras_by_order(model, layers)
        return _convert.assign(model, converted, source=path)
    converter = _TORCH_CONVERTERS[family]
    converted = _convert.convert(converter, model, _readers.read_state_dict(path), source=path)
    return _convert.assign(model, converted, source=path)


def _load_keras_weights(model, path):
    """``model.load_weights`` after checking that the file was saved from this architecture."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            saved_name = f["vars"].attrs.get("name", "?") if "vars" in f else "?"
            stored = {}
            for group in f["layers"].values() if "layers" in f else []:
                _collect(group, stored)
    except (OSError, KeyError) as error:
        raise ValueError(f"{path} is not a readable Keras .weights.h5 file ({error}).") from None
    if isinstance(saved_name, bytes):
        saved_name = saved_name.decode()
    expected = {
        layer.name: [tuple(w.shape) for w in layer.weights] for layer in _convert.weight_layers(model)
    }
    missing = [n for n in expected if n not in stored]
    wrong = [n for n in expected if n in stored and stored[n] != expected[n]]
    extra = [n for n in stored if n not in expected]
    if missing or wrong or extra:
        details = []
        if wrong:
            details.append(f"{len(wrong)} layers have other shapes (first: {wrong[0]}: file "
                           f"{stored[wrong[0]]}, model {expected[wrong[0]]})")
        if missing:
            details.append(f"{len(missing)} of the model's layers are not in the file (first: {missing[0]})")
        if extra:
            details.append(f"{len(extra)} of the file's layers are not in the model (first: {extra[0]})")
        raise ValueError(
            f"{path} was saved from the model '{saved_name}' ({len(stored)} layers with weights) and "
            f"does not fit '{model.name}' ({len(expected)} layers with weights): "
            + "; ".join(details) + ". Nothing was loaded. Load it into the architecture it was saved "
            f"from. Received: weights={path!r}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.load_weights(path)


def _collect(group, stored):
    import h5py

    if "vars" in group and isinstance(group["vars"], h5py.Group):
        variables = group["vars"]
        if len(variables):
            name = variables.attrs.get("name")
            name = name.decode() if isinstance(name, bytes) else name
            keys = sorted(variables, key=int)
            stored[name] = [tuple(variables[k].shape) for k in keys]
    for key, child in group.items():
        if key != "vars" and isinstance(child, h5py.Group):
            _collect(child, stored)


# ---------------------------------------------------------------------------
# Preprocessing and class names
# ---------------------------------------------------------------------------

def preprocessing_for(model, weights=None, **builder_kwargs):
    """The `Preprocessing` that ``model`` with ``weights`` expects.

    One answer per ``(model, weights)``, which `preprocess_input`, `kerasnets.data.load`,
    ``kerasnets train`` and the export's serving signature all take from here:

    * a model built by kerasnets: its `kerasnets.model_card`'s (the preset's, or what
      ``kerasnets train`` fed it);
    * a registered name with a preset (``"imagenet"``, ``"torchvision_v2"``): the preset's;
    * a registered name with ``weights=None`` (or a file): the model's own,
      ``kerasnets.get_model_info(model).preprocessing``: what kerasnets trains it with
      from scratch.

    Args:
        model: a registered name (``"resnet50"``) or a `keras.Model` built by kerasnets.
        weights: with a name: ``None``, ``"imagenet"``, a preset name or a file path.
        **builder_kwargs: with a name: the builder arguments the preset is chosen by.
    """
    import keras

    if isinstance(model, keras.Model):
        card = model_card(model)
        if card is None:
            fail("model", "a registered model name or a model built by kerasnets (this one carries no "
                 "kerasnets model card, so its preprocessing is unknown)", model,
                 received=f"model={model.name!r} without a model card")
        if weights is not None or builder_kwargs:
            fail("weights", "None, with no builder arguments, for a built model (its model card records its "
                 "weights and architecture)", weights,
                 received=f"weights={weights!r}, builder_kwargs={sorted(builder_kwargs)}")
        return card.preprocessing
    if weights is not None and not (isinstance(weights, str) and not _looks_like_path(weights)):
        weights = None  # a file: the model's own preprocessing
    if weights is None:
        return get_entry(model).info.preprocessing
    return get_preset(model, weights, **builder_kwargs).preprocessing


def preprocess_input(images, model, weights=None, **builder_kwargs):
    """Normalises ``[0, 255]`` RGB images as ``model`` with ``weights`` expects.

    Args:
        images: a NumPy array or tensor ``(..., H, W, 3)`` (``(..., 3, H, W)`` under
            channels_first), RGB, values in ``[0, 255]``.
        model: a model built by kerasnets (its `kerasnets.model_card` says what it
            expects), or a registered model name (``"resnet50"``).
        weights: with a name: a preset name, ``"imagenet"`` (the default preset) or
            ``None`` (the default: the model's own preprocessing, as for
            ``weights=None`` everywhere in kerasnets; see `preprocessing_for`).
        **builder_kwargs: with a name: the builder arguments the preset is chosen by
            (``downsample_on="3x3"`` selects torchvision's ResNet-50 weights).

    Returns:
        float32 ``(images - mean) / std`` per channel; a NumPy array for NumPy input.

    Example:

    >>> model = kerasnets.ResNet50(weights="imagenet")  # doctest: +SKIP
    >>> x = kerasnets.preprocess_input(np.full((1, 224, 224, 3), 128.0), model)  # doctest: +SKIP
    >>> x = kerasnets.preprocess_input(np.full((1, 224, 224, 3), 128.0), "resnet50", weights="imagenet")
    """
    import keras

    pre = preprocessing_for(model, weights, **builder_kwargs)
    axis = -1 if channels_last() else -3
    if isinstance(images, (list, tuple)):
        images = np.asarray(images)
    shape = tuple(getattr(images, "shape", ()))
    if len(shape) < 3 or shape[axis] != 3:
        where = "last" if axis == -1 else "third-from-last (channels_first)"
        fail("images", f"RGB images: an array (..., height, width, 3) with 3 channels on the {where} axis "
             "(drop an alpha channel with images[..., :3]; repeat a grey one)", images,
             received=f"images.shape={shape}")
    shape = [1, 1, 1]
    shape[axis] = 3
    mean = np.asarray(pre.mean, np.float32).reshape(shape if axis == -3 else (3,))
    std = np.asarray(pre.std, np.float32).reshape(shape if axis == -3 else (3,))
    if isinstance(images, (np.ndarray, list, tuple)):
        return (np.asarray(images, np.float32) - mean) / std
    images = keras.ops.cast(images, "float32")
    return (images - mean) / std


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """The 1,000 ImageNet classes as ``(wnid, names)`` in output order (shipped in the package)."""
    import importlib.resources

    text = importlib.resources.files("kerasnets.weights").joinpath("imagenet_classes.txt").read_text("utf8")
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    return tuple((w, n) for w, n in rows)


def decode_predictions(preds, top=5):
    """The ``top`` ImageNet classes of each prediction, as keras.applications returns them.

    Args:
        preds: ``(batch, 1000)`` probabilities or logits.
        top: how many classes per image.

    Returns:
        One list per image of ``(wnid, name, score)`` tuples, best first; ``name`` is
        the first of the class's WordNet names (``"tench"``).
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        fail("preds", "a batch of 1000 ImageNet scores (batch, 1000)", preds, context="decode_predictions",
             received=f"preds.shape={preds.shape}")
    if not is_int(top) or not 1 <= top <= 1000:
        fail("top", "an integer from 1 to 1000", top)
    classes = imagenet_classes()
    results = []
    for row in preds:
        best = np.argsort(-row, kind="stable")[:top]
        results.append([(classes[i][0], classes[i][1].split(",")[0], float(row[i])) for i in best])
    return results


# ---------------------------------------------------------------------------
# Fine-tuning: a preset's backbone under a new head
# ---------------------------------------------------------------------------

def fine_tuning_model(model: str, weights="imagenet", **builder_kwargs):
    """``model`` for ``builder_kwargs["classes"]`` classes, its backbone from a preset.

    The backbone (every layer of ``include_top=False``) comes from the preset's
    no-top weights at the requested input size; the head (the classifier, and VGG's
    and AlexNet's fully-connected layers) is new. Returns ``(model, builder_kwargs)``,
    the latter with the preset's builder arguments (``downsample_on="3x3"``), so that
    ``get_model(model, **builder_kwargs)`` rebuilds the same architecture. The model's
    `kerasnets.model_card` names the preset (``new_head=True``) and its preprocessing.
    """
    entry = get_entry(model)
    options = {k: v for k, v in builder_kwargs.items()
               if k not in ("classes", "input_shape", "include_top", "pooling", "classifier_activation")}
    preset = get_preset(entry.name, weights, **options)
    kwargs = {**builder_kwargs, **preset.builder_kwargs}
    backbone_kwargs = {k: v for k, v in kwargs.items() if k not in ("classes", "classifier_activation", "pooling")}
    backbone = entry.build(weights=preset.name, **{**backbone_kwargs, "include_top": False})
    built = entry.build(weights=None, **kwargs)
    for layer in backbone.layers:
        if layer.weights:
            built.get_layer(layer.name).set_weights(layer.get_weights())
    origin = dataclasses.replace(model_card(backbone).weights, new_head=True)
    set_model_card(built, model_card(built).replace(weights=origin, preprocessing=preset.preprocessing))
    return built, kwargs
