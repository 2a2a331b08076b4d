"""Export for serving: a SavedModel with preprocessing in its signatures, ``.keras``, TFLite, ONNX.

`saved_model` writes a TensorFlow SavedModel that TF Serving, or
``tf.saved_model.load`` in a process that never imported kerasnets, uses as is:

* the inference model (auxiliary heads stripped);
* ``serving_default``: ``images``, a ``uint8`` batch ``(batch, height, width, 3)``
  of RGB images of any size; ``serving_bytes``: ``image_bytes``, a string vector
  of encoded JPEG/PNG files. Both resize, central-crop and normalise in the graph
  exactly as `kerasnets.data.preprocess_for_eval` does for evaluation;
* outputs ``probabilities`` (float32), ``top_k_indices``, ``top_k_scores`` and,
  when class names are given, ``top_k_class_names``; a variable batch dimension;
* ``kerasnets_export.json`` next to ``saved_model.pb``: the model name, builder
  arguments, weights (preset, source, file hash), input size, preprocessing, class
  names and library versions, from the model's `kerasnets.model_card`.

`keras_file` writes a ``.keras`` file of the inference model that loads with
``keras.models.load_model(path)`` (``safe_mode=True``, no ``custom_objects``)
once kerasnets is imported. `tflite` converts to TensorFlow Lite and checks the
converted outputs against the Keras model. `onnx` writes an ONNX model of
``serving_default`` (uint8 images in, probabilities and top-k out, preprocessing
inside) for ONNX Runtime and the runtimes that load ONNX. Every writer is atomic: an export
that fails or is interrupted leaves nothing at ``path``, and an existing
``path`` is only replaced with ``overwrite=True``.

Example:

>>> import kerasnets
>>> model = kerasnets.ResNet18(weights=None, classes=3, input_shape=(64, 64, 3))
>>> kerasnets.export.saved_model(model, "/tmp/resnet18", class_names=["cat", "dog", "fox"])
>>> # in any process, without kerasnets:
>>> serve = tf.saved_model.load("/tmp/resnet18").signatures["serving_default"]
>>> serve(images=tf.zeros([2, 480, 640, 3], tf.uint8))["top_k_class_names"]
"""

from __future__ import annotations

import json
import os
import zipfile

from kerasnets._validate import check_bool, check_choice, check_path, fail
from kerasnets._version import versions
from kerasnets.card import model_card
from kerasnets.export._atomic import METADATA_FILE, atomic_destination, check_destination, record_export
from kerasnets.export._dtype import policy_names, with_dtype_policy
from kerasnets.export._fold import fold_batch_norm
from kerasnets.export._spec import ExportSpec, exportable_model, find_lambda_layers, resolve_spec
from kerasnets.export._serving import SIGNATURES, eval_preprocess, serving_functions, signature_doc
from kerasnets.files import json_text, write_json

__all__ = [
    "FORMATS",
    "FILE_SUFFIXES",
    "METADATA_FILE",
    "SIGNATURES",
    "export",
    "saved_model",
    "keras_file",
    "tflite",
    "onnx",
    "require_onnx",
    "METADATA_KEY",
    "fold_batch_norm",
    "read_metadata",
    "ExportSpec",
    "exportable_model",
    "resolve_spec",
]

FORMATS = ("saved_model", "keras", "tflite", "onnx")
# The suffix the path of each file format must end with (a SavedModel is a folder).
FILE_SUFFIXES = {"keras": ".keras", "tflite": ".tflite", "onnx": ".onnx"}

_SPEC_ARGS_DOC = """
        model_name: the registered name (``"resnet50"``), used to find the
            preprocessing and default input size. Default: the one in the model's
            `kerasnets.model_card` (every model a kerasnets builder made has one,
            whatever its ``name``); needed, or ``preprocessing``, for a model without.
        image_size: the size the model sees, an int or ``(height, width)``.
            Default: the model's input size, or the family's default size for a
            model built with ``input_shape=(None, None, 3)``.
        preprocessing: a `kerasnets.preprocessing.Preprocessing`. Default: the model
            card's (its weight preset's, or what ``kerasnets train`` fed it), else the
            registered model's.
        class_names: one string per class, served as ``top_k_class_names``.
        top_k: how many classes ``top_k_indices`` / ``top_k_scores`` hold (at most
            the number of classes).
        output: ``"auto"`` (detected from the last layer), ``"probabilities"``,
            ``"logits"`` (a softmax is added) or ``"features"`` (no top-k).
        builder_kwargs: the builder's arguments, recorded in the metadata. Default:
            the model card's (those that differ from their defaults).
        overwrite: replace a previous kerasnets export at ``path`` (never anything
            else: see `check_destination`).
"""


def _spec(model, kwargs):
    model = exportable_model(model)
    return model, resolve_spec(model, **kwargs)


def saved_model(
    model,
    path,
    *,
    model_name=None,
    image_size=None,
    preprocessing=None,
    class_names=None,
    top_k=5,
    output="auto",
    builder_kwargs=None,
    fold_batch_norm=False,
    compute_dtype="float32",
    overwrite=False,
    source=None,
):
    """Writes a TensorFlow SavedModel for serving, preprocessing included.

    Args:
        model: a `keras.Model` (auxiliary heads are stripped).
        path: the SavedModel directory to create.{spec_args}
        fold_batch_norm: fold every Conv2D -> BatchNormalization pair into the
            convolution in the exported graph (same outputs up to float32
            rounding; faster on CPU, see ``benchmarks/serving.py``).
        compute_dtype: the dtype policy the exported graph computes in. Default
            ``"float32"``: a model trained under ``mixed_bfloat16`` or
            ``mixed_float16`` is served in float32, which every device runs.
            ``"mixed_bfloat16"`` serves faster on CPUs with native bfloat16
            (AVX512-BF16, AMX) at bfloat16 accuracy; ``None`` keeps the model's.
        source: where the model came from (a checkpoint path), recorded.

    Returns:
        The metadata dict written to ``path/kerasnets_export.json``.

    Raises:
        ValueError: for bad arguments, or if ``path`` exists and not ``overwrite``,
            before anything is written.
    """
    from kerasnets.export._backend import export_in_tensorflow, needs_tensorflow  # inside: see _backend's docstring

    if needs_tensorflow():  # a TensorFlow graph: converted in a TensorFlow-backend process
        return export_in_tensorflow("saved_model", model, path, dict(
            model_name=model_name, image_size=image_size, preprocessing=preprocessing,
            class_names=class_names, top_k=top_k, output=output, builder_kwargs=builder_kwargs,
            fold_batch_norm=fold_batch_norm, compute_dtype=compute_dtype, overwrite=overwrite,
            source=source))
    import keras

    check_bool("fold_batch_norm", fold_batch_norm)
    path = check_destination(path, overwrite=overwrite, kind="dir", source=source)
    model, spec = _spec(model, dict(
        model_name=model_name, image_size=image_size, preprocessing=preprocessing,
        class_names=class_names, top_k=top_k, output=output, builder_kwargs=builder_kwargs,
        source=source,
    ))
    serving_model = with_dtype_policy(model, compute_dtype)
    serving_model = _fold(serving_model) if fold_batch_norm else serving_model

    # Variables used by the signatures are saved with them; `archive.track(model)`
    # (needed only for lookup tables) would walk every layer and double the time.
    archive = keras.export.ExportArchive()
    for name, (fn, signature) in serving_functions(serving_model, spec).items():
        archive.add_endpoint(name, fn, input_signature=signature)
    record = spec.metadata(
        format="saved_model", fold_batch_norm=fold_batch_norm, signatures=signature_doc(spec),
        extra={"compute_dtype": sorted(policy_names(serving_model))},
    )
    with atomic_destination(path, overwrite=overwrite) as staging:
        archive.write_out(staging, verbose=False)
        write_json(os.path.join(staging, METADATA_FILE), record)
        record_export(staging)  # the manifest: what a later overwrite=True may replace
    return record


def _fold(model):
    return fold_batch_norm(model)


def keras_file(model, path, *, overwrite=False, verify=True):
    """Writes the inference model as a ``.keras`` file that loads in safe mode.

    The file holds the single-output inference model (auxiliary heads stripped),
    without optimizer state or compile settings. It loads with ``keras.models.load_model(path)``
    (``safe_mode=True``, no ``custom_objects``) in any process that imported
    kerasnets, because every kerasnets layer is registered and none is a
    ``Lambda``.

    Args:
        model: a `keras.Model`.
        path: the file to create; must end in ``.keras``.
        overwrite: replace a previous ``.keras`` export of kerasnets.
        verify: load the written file in safe mode before moving it into place.

    The model's `kerasnets.model_card` is part of the model and travels with it. The
    file also holds ``kerasnets_export.json`` (the model card and library versions)
    next to Keras's own entries: it marks the file as an export that a later
    ``overwrite=True`` may replace. Keras ignores it.

    Raises:
        ValueError: for a path without ``.keras``, an existing path, or a model
            with ``Lambda`` layers (which safe mode refuses to load).
    """
    import keras

    check_path("path", path, suffix=".keras", expected="a Keras model file path ending in .keras")
    path = check_destination(path, overwrite=overwrite, kind="file")
    model = exportable_model(model)
    lambdas = find_lambda_layers(model)
    if lambdas:
        fail("model", "a model without Lambda layers (keras.models.load_model refuses them in safe mode; "
             "replace them with registered layers)", model, received=f"model with the Lambda layers {lambdas}")
    if getattr(model, "optimizer", None) is not None:  # an inference file: no optimizer state, no compile config
        model = keras.Model(model.input, model.output, name=model.name)  # the same layers: the card too
    card = model_card(model)
    with atomic_destination(path, overwrite=overwrite) as staging:
        model.save(staging)
        with zipfile.ZipFile(staging, "a") as archive:
            archive.writestr(METADATA_FILE, json_text({
                "format": "keras", "model_name": None if card is None else card.model,
                "model_card": None if card is None else card.to_dict(), "versions": versions(),
            }))
        if verify:
            keras.models.load_model(staging, safe_mode=True, compile=False)
    return path


def read_metadata(path) -> dict:
    """The metadata recorded by `saved_model` (``path/kerasnets_export.json``) or by `onnx`
    (in the ``.onnx`` file's ``metadata_props``)."""
    if os.fspath(path).endswith(".onnx") and os.path.isfile(path):
        record = read_onnx_metadata(path)
        if record is None:
            raise ValueError(f"No {METADATA_KEY} in the metadata of {path}: not a kerasnets export. "
                             f"Received: path={path!r}")
        return record
    file = os.path.join(os.fspath(path), METADATA_FILE)
    if not os.path.isfile(file):
        raise ValueError(f"No {METADATA_FILE} in {path}: not a kerasnets export. Received: path={path!r}")
    with open(file, encoding="utf-8") as f:
        return json.load(f)


from kerasnets.export._onnx import METADATA_KEY, onnx, read_onnx_metadata, require_onnx  # noqa: E402
from kerasnets.export._tflite import tflite  # noqa: E402


def export(model, path, format="saved_model", **kwargs):
    """Exports ``model`` to ``path`` in ``format``: ``"saved_model"``, ``"keras"``, ``"tflite"``
    or ``"onnx"``.

    ``kwargs`` are those of `saved_model`, `keras_file`, `tflite` or `onnx`.

    Example:

    >>> kerasnets.export.export(model, "model.tflite", format="tflite")
    """
    writers = {"saved_model": saved_model, "keras": keras_file, "tflite": tflite, "onnx": onnx}
    check_choice("format", format, FORMATS)
    return writers[format](model, path, **kwargs)


saved_model.__doc__ = saved_model.__doc__.replace("{spec_args}", _SPEC_ARGS_DOC.rstrip())
