"""ONNX export: the SavedModel's ``serving_default`` as one ONNX graph.

The graph takes ``images``, ``uint8 (batch, height, width, 3)`` RGB images of
any size (or of one size fixed at export, ``static_size``), and returns what
``serving_default`` returns: ``probabilities``, ``top_k_indices``,
``top_k_scores`` (and ``top_k_class_names`` when class names are given). The
evaluation preprocessing is inside (central crop, antialiased bilinear resize,
normalisation), the model has its auxiliary heads stripped and its BatchNorm
folded into the convolutions, and it computes in float32. A TensorFlow function
of all that is converted with tf2onnx; under JAX or PyTorch the conversion runs
in a TensorFlow child process (`kerasnets.export._backend`), as for SavedModel.

The resize. ``tf.image.resize(..., antialias=True)`` is TensorFlow's
``ScaleAndTranslate`` op, which tf2onnx does not convert. The graph computes the
same resize as two matrix products, ``Wy @ image @ Wx^T`` per channel, with
`resize_weights`, TensorFlow's triangle-kernel weights, built from the crop's
size in the graph (constants with ``static_size``): the same function up to
float32 rounding, in ONNX's most widely supported operators (MatMul, Range,
Abs). ONNX's own ``Resize`` has antialiasing only from opset 18, which many
runtimes do not implement.

The export metadata, the record `ExportSpec.metadata` writes to a SavedModel's
``kerasnets_export.json``, is stored as JSON in the ONNX model's
``metadata_props`` under ``kerasnets_export`` (ONNX Runtime:
``session.get_modelmeta().custom_metadata_map``).
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np

from kerasnets._validate import check_bool, check_int, check_number, check_path, check_size, fail
from kerasnets._version import versions
from kerasnets.export._atomic import atomic_destination, check_destination
from kerasnets.export._dtype import with_dtype_policy
from kerasnets.export._fold import fold_batch_norm
from kerasnets.export._serving import _traced_model, serving_functions, signature_doc
from kerasnets.export._spec import exportable_model, resolve_spec
from kerasnets.layers import channels_last

__all__ = [
    "onnx", "require_onnx", "resize_weights", "is_kerasnets_onnx", "read_onnx_metadata",
    "DEFAULT_OPSET", "METADATA_KEY",
]

# Opset 17: the newest that TensorRT (8.6), OpenVINO (2022.3) and ONNX Runtime (1.13) all
# load; the graph needs nothing newer (its newest operator semantics are opset 13's).
# tf2onnx 1.17 converts to opsets up to 18.
DEFAULT_OPSET = 17
OPSETS = (13, 18)
METADATA_KEY = "kerasnets_export"
PACKAGES = ("onnx", "onnxruntime", "tf2onnx")


def _installed(name) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None  # None: imports of it fail
    return importlib.util.find_spec(name) is not None


def require_onnx():
    """Raises an ImportError naming the ``[onnx]`` extra unless onnx, onnxruntime and tf2onnx
    are installed (checked without importing them)."""
    missing = [name for name in PACKAGES if not _installed(name)]
    if missing:
        raise ImportError(
            "The ONNX export needs the optional packages onnx, onnxruntime and tf2onnx: "
            "pip install 'kerasnets[onnx]'. Missing: " + ", ".join(missing)
        )


def resize_weights(in_size, out_size):
    """The ``(out_size, in_size)`` float32 matrix of TensorFlow's antialiased bilinear resize.

    ``tf.image.resize(x, ..., method="bilinear", antialias=True)`` along one axis is
    ``resize_weights(in, out) @ x``: TensorFlow's ``ScaleAndTranslate`` kernel
    samples output pixel ``i`` at ``(i + 0.5) / scale`` (``scale = out / in``) with
    the triangle kernel ``max(0, 1 - |d|)``, widened by ``1 / scale`` when shrinking
    (the antialiasing), and normalises each row's weights to sum to 1. An equal size
    gives the identity.

    Args:
        in_size: the input length, a Python int or a scalar int32 tensor.
        out_size: the output length (a Python int).
    """
    import tensorflow as tf

    scale = tf.cast(out_size, tf.float32) / tf.cast(in_size, tf.float32)
    inv_scale = 1.0 / scale
    kernel_scale = tf.maximum(inv_scale, 1.0)
    sample = (tf.range(out_size, dtype=tf.float32) + 0.5) * inv_scale
    distance = (tf.range(in_size, dtype=tf.float32) + 0.5)[None, :] - sample[:, None]
    weights = tf.nn.relu(1.0 - tf.abs(distance * (1.0 / kernel_scale)))
    return weights / tf.reduce_sum(weights, axis=1, keepdims=True)


def _crop_resize(images, image_size, crop_fraction, static_size):
    """uint8 NHWC -> float32 ``(n, 3, image_size, image_size)``: `preprocess_for_eval`'s
    central crop and resize (before the normalisation), as ONNX-friendly operators."""
    import tensorflow as tf

    from kerasnets.data import central_window  # kerasnets.data (tensorflow-datasets) only when used

    x = tf.cast(images, tf.float32)
    if static_size is None:
        window = central_window(tf.shape(images)[1:3], image_size, crop_fraction)
        wy, wx = resize_weights(window[2], image_size), resize_weights(window[3], image_size)
    else:  # the same numbers, computed now: constants in the graph
        with tf.init_scope():
            window = central_window(tf.constant(static_size), image_size, crop_fraction)
            wy, wx = (resize_weights(int(window[i]), image_size).numpy() for i in (2, 3))
            window = [int(v) for v in window]
    x = x[:, window[0]:window[0] + window[2], window[1]:window[1] + window[3], :]
    if static_size is not None and window[2:] == [image_size, image_size]:
        return tf.transpose(x, [0, 3, 1, 2])  # no resize: the crop has the size
    # Columns then rows, on channel planes: two matrix products per image and channel.
    x = tf.matmul(tf.transpose(x, [0, 3, 1, 2]), wx, transpose_b=True)  # (n, 3, side, size)
    return tf.matmul(tf.reshape(wy, [1, 1, image_size, -1]), x)  # (n, 3, size, size)


def _serving_function(model, spec, static_size):
    """The function converted: uint8 images -> the outputs of ``serving_default``."""
    import tensorflow as tf

    from kerasnets.data import normalize

    size = spec.image_size[0]
    channels_first = not channels_last()
    classify = _traced_model(model, spec, channels_first)
    height, width = static_size if static_size is not None else (None, None)

    def serve(images):
        x = _crop_resize(images, size, spec.preprocessing.crop_fraction, static_size)
        x = normalize(tf.transpose(x, [0, 2, 3, 1]), spec.preprocessing)
        return classify(x)

    return serve, [tf.TensorSpec([None, height, width, 3], tf.uint8, name="images")]


def _convert(serve, signature, opset):
    import tensorflow as tf
    import tf2onnx

    try:
        proto, _ = tf2onnx.convert.from_function(
            tf.function(serve, autograph=False), input_signature=signature, opset=opset
        )
    except Exception as error:  # noqa: BLE001  (the converter raises anything; the first line says what)
        first = str(error).strip().splitlines()[:3]
        raise ValueError(
            f"tf2onnx could not convert the serving graph (opset {opset}); nothing was written. "
            f"Received: {' | '.join(first)[:600]}"
        ) from None
    return proto


def _name_dimensions(proto, static_size):
    """Readable names for the dynamic dimensions (tf2onnx writes ``unk__123``)."""
    graph = proto.graph
    names = ["batch"] + (["height", "width"] if static_size is None else [])
    for dim, name in zip(graph.input[0].type.tensor_type.shape.dim, names):
        dim.dim_param = name
    for output in graph.output:
        dims = output.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = "batch"


def _session(content, threads=None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(content, options, providers=["CPUExecutionProvider"])


def _run_onnx(content, images) -> dict:
    """``{output name: array}`` of the ONNX model ``content`` (bytes or a path) on ``images``."""
    session = _session(content)
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, {"images": images})))


def _check_images(check_images, static_size, size):
    """The images the converted graph is checked on (default: 3 random ones, fixed seed)."""
    if check_images is None:
        h, w = static_size if static_size is not None else (size + 13, size + 40)
        return np.random.default_rng(0).integers(0, 256, (3, h, w, 3), dtype=np.uint8)
    check_images = np.asarray(check_images)
    shape = check_images.shape
    expected = "height, width" if static_size is None else f"{static_size[0]}, {static_size[1]}"
    if (check_images.dtype != np.uint8 or check_images.ndim != 4 or shape[-1] != 3
            or (static_size is not None and shape[1:3] != tuple(static_size))):
        fail("check_images", f"a uint8 array (n, {expected}, 3)", check_images,
             received=f"check_images of dtype {check_images.dtype} and shape {shape}")
    return check_images


def _compare(content, model, spec, check_images, rtol) -> float:
    """The largest difference between the ONNX graph's probabilities (or features) and
    ``serving_default``'s, relative to the largest; raises above ``rtol``."""
    import tensorflow as tf

    serve_images = serving_functions(model, spec)["serving_default"][0]
    key = "features" if spec.output == "features" else "probabilities"
    expected = tf.function(serve_images)(tf.constant(check_images))[key].numpy()
    got = _run_onnx(content, check_images)[key]
    diff = float(np.max(np.abs(got - expected)) / max(float(np.max(np.abs(expected))), 1e-30))
    if not diff <= rtol:
        raise ValueError(
            "The ONNX model's outputs differ from the SavedModel signature's by more than rtol "
            f"(relative to the largest output); nothing was written. Received: max_rel_diff={diff:.3g}, rtol={rtol}"
        )
    return diff


def _static_size(static_size, spec):
    if static_size is None or static_size is False:
        return None
    if static_size is True:
        return tuple(spec.image_size)
    return check_size("static_size", static_size)


def _graph_doc(spec, static_size) -> dict:
    """The graph's input and outputs in words (the ``signatures`` of the metadata)."""
    doc = signature_doc(spec)
    size = "height, width" if static_size is None else f"{static_size[0]}, {static_size[1]}"
    any_size = ", any height and width" if static_size is None else ""
    return {
        "onnx": {
            "inputs": {"images": f"uint8 [batch, {size}, 3]: RGB{any_size}"},
            "outputs": doc["serving_default"]["outputs"],
        },
        "model_input": doc["model_input"],
    }


def onnx(
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
    static_size=None,
    opset=DEFAULT_OPSET,
    overwrite=False,
    source=None,
    check=True,
    rtol=1e-4,
    check_images=None,
):
    """Writes an ONNX model that serves what the SavedModel's ``serving_default`` serves.

    The graph takes ``images``, ``uint8 (batch, height, width, 3)`` RGB images of
    any size, applies the evaluation preprocessing (central crop, antialiased
    bilinear resize, normalisation) and the inference model (auxiliary heads
    stripped, BatchNorm folded, float32), and returns ``probabilities``,
    ``top_k_indices`` (int32), ``top_k_scores`` and, with ``class_names``,
    ``top_k_class_names``. The export metadata (`saved_model`'s
    ``kerasnets_export.json``) is in the model's ``metadata_props`` under
    ``kerasnets_export``. Needs the ``[onnx]`` extra (onnx, onnxruntime, tf2onnx).

    Before the file is moved into place, ONNX Runtime runs it on ``check_images``
    (default: 3 random images, fixed seed) and its outputs are compared with the
    SavedModel signature's, computed by TensorFlow on the same images.

    Args:
        model: a `keras.Model` of any backend (auxiliary heads are stripped).
        path: the file to create; must end in ``.onnx``.
        model_name, image_size, preprocessing, class_names, top_k, output,
            builder_kwargs, overwrite, source: as in `saved_model`.
        static_size: ``None`` (default): any image height and width. ``True``: only
            images of the model's input size; an int or ``(height, width)``: only
            images of that size. A fixed size makes every shape but the batch
            static (for runtimes that need static shapes); the batch stays dynamic.
        opset: the ONNX opset, 13 to 18 (default 17).
        check: run the comparison (raises if it fails, writing nothing).
        rtol: the largest difference accepted, relative to the largest output.
        check_images: optional uint8 array ``(n, height, width, 3)``.

    Returns:
        The metadata dict stored in the model.

    Raises:
        ImportError: onnx, onnxruntime or tf2onnx is not installed.
        ValueError: for bad arguments, or if ``path`` exists and not ``overwrite``,
            before anything is written.

    Example:

    >>> kerasnets.export.onnx(model, "resnet50.onnx")
    >>> session = onnxruntime.InferenceSession("resnet50.onnx")
    >>> probabilities, indices, scores = session.run(None, {"images": images})
    """
    check_path("path", path, suffix=".onnx", expected="an ONNX file path ending in .onnx")
    require_onnx()
    check_int("opset", opset, minimum=OPSETS[0])
    if opset > OPSETS[1]:
        fail("opset", f"an ONNX opset from {OPSETS[0]} to {OPSETS[1]} (what tf2onnx converts to)", opset)
    check_bool("check", check)
    check_number("rtol", rtol, allow_zero=True)
    from kerasnets.export._backend import export_in_tensorflow, needs_tensorflow  # inside: see _backend's docstring

    spec_args = dict(model_name=model_name, image_size=image_size, preprocessing=preprocessing,
                     class_names=class_names, top_k=top_k, output=output, builder_kwargs=builder_kwargs,
                     source=source)
    if needs_tensorflow():  # tf2onnx converts TensorFlow graphs: a TensorFlow-backend process
        return export_in_tensorflow("onnx", model, path, dict(
            spec_args, static_size=static_size, opset=opset, overwrite=overwrite, check=check, rtol=rtol,
            check_images=check_images))
    path = check_destination(path, overwrite=overwrite, kind="file", source=source)
    model = exportable_model(model)
    spec = resolve_spec(model, **spec_args)
    static = _static_size(static_size, spec)
    check_images = _check_images(check_images, static, spec.image_size[0]) if check else None
    model = with_dtype_policy(model, "float32")  # what every ONNX runtime computes in
    serve, signature = _serving_function(fold_batch_norm(model), spec, static)
    proto = _convert(serve, signature, opset)
    _name_dimensions(proto, static)
    content = proto.SerializeToString()
    diff = _compare(content, model, spec, check_images, rtol) if check else None

    record = spec.metadata(
        format="onnx", fold_batch_norm=True, signatures=_graph_doc(spec, static),
        extra={"compute_dtype": ["float32"], "opset": opset,
               "static_size": list(static) if static is not None else None,
               "check": {"images": list(check_images.shape), "max_rel_diff": diff} if check else None},
    )
    record["versions"] = versions("tf2onnx", "onnx", "onnxruntime")
    proto.doc_string = (
        f"kerasnets {record['model_name'] or model.name}: uint8 RGB images in, probabilities and "
        f"top-k out; the export metadata is the JSON of metadata_props['{METADATA_KEY}']."
    )
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(record)
    with atomic_destination(path, overwrite=overwrite) as staging:
        with open(staging, "wb") as f:
            f.write(proto.SerializeToString())
    return record


def read_onnx_metadata(path) -> dict | None:
    """The export metadata of an ONNX file written by `onnx`, or None if it has none."""
    import onnx as onnx_package

    proto = onnx_package.load(path, load_external_data=False)
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    return None


def is_kerasnets_onnx(path) -> bool:
    """Whether ``path`` is an ONNX model written by `onnx` (which ``overwrite`` may replace)."""
    try:
        return read_onnx_metadata(path) is not None
    except Exception:  # noqa: BLE001  (not an ONNX file, or onnx is missing: not ours)
        return False
