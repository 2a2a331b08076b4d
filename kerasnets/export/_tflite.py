"""TensorFlow Lite conversion, checked against the Keras model before it is written."""

from __future__ import annotations

import tempfile

import numpy as np

from kerasnets._validate import check_number, check_path, fail
from kerasnets.export._atomic import atomic_destination, check_destination
from kerasnets.export._dtype import with_dtype_policy
from kerasnets.export._spec import exportable_model, resolve_spec
from kerasnets.layers import channels_last

__all__ = ["tflite"]


def _normalize(images, preprocessing):
    """uint8 -> float32 ``(pixels - mean) / std``, as the evaluation preprocessing ends."""
    import tensorflow as tf

    # the last step of preprocess_for_eval; kerasnets.data (tensorflow-datasets) only when used
    from kerasnets.data import normalize

    return normalize(tf.cast(images, tf.float32), preprocessing)


def _converter_input(model, spec):
    """The float32 function converted: uint8 images at the model's size -> probabilities."""
    import tensorflow as tf

    h, w = spec.image_size
    channels_first = not channels_last()

    def serve(images):
        x = _normalize(images, spec.preprocessing)
        if channels_first:
            x = tf.transpose(x, [0, 3, 1, 2])
        y = tf.cast(model(x, training=False), tf.float32)
        if spec.output == "logits":
            y = tf.nn.softmax(y, axis=-1)
        return {"probabilities" if spec.output != "features" else "features": y}

    return serve, [tf.TensorSpec([None, h, w, 3], tf.uint8, name="images")]


def _run_interpreter(content, images):
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": still the one TF ships
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_content=content)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _check_images(check_images, h, w):
    """The images the converted model is checked on (default: 4 random ones, fixed seed)."""
    if check_images is None:
        return np.random.default_rng(0).integers(0, 256, (4, h, w, 3), dtype=np.uint8)
    check_images = np.asarray(check_images)
    if check_images.dtype != np.uint8 or check_images.ndim != 4 or check_images.shape[1:] != (h, w, 3):
        fail("check_images", f"a uint8 array (n, {h}, {w}, 3)", check_images,
             received=f"check_images of dtype {check_images.dtype} and shape {check_images.shape}")
    return check_images


def _convert(serve, signature) -> bytes:
    """The ``.tflite`` content of ``serve``, with TFLite builtin ops only."""
    import keras
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as saved:
        archive = keras.export.ExportArchive()
        archive.add_endpoint("serving_default", serve, input_signature=signature)
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            return converter.convert()
        except Exception as error:  # the converter's message holds the whole MLIR module
            first = str(error).strip().splitlines()[:3]
            raise ValueError(
                "TFLite conversion with builtin ops failed; nothing was written. "
                f"Received: {' | '.join(first)[:600]}"
            ) from None


def _compare(content, serve, check_images, atol) -> float:
    """The largest absolute difference between the TFLite and the Keras outputs, within ``atol``."""
    import tensorflow as tf

    expected = tf.function(serve)(tf.constant(check_images))
    expected = next(iter(expected.values())).numpy()
    got = _run_interpreter(content, check_images)
    max_diff = float(np.max(np.abs(got - expected)))
    if not max_diff <= atol:
        raise ValueError(
            "The TFLite model's outputs differ from the Keras model's by more than atol; "
            f"nothing was written. Received: max_abs_diff={max_diff:.3g}, atol={atol}"
        )
    return max_diff


def tflite(
    model,
    path,
    *,
    model_name=None,
    image_size=None,
    preprocessing=None,
    output="auto",
    overwrite=False,
    check=True,
    atol=1e-4,
    check_images=None,
):
    """Converts the inference model to a ``.tflite`` file and checks its outputs.

    The TFLite model takes ``images``, ``uint8 (batch, height, width, 3)`` RGB
    images already resized and cropped to the model's input size (mobile apps
    resize camera frames themselves); the per-channel normalisation is inside,
    and it returns ``probabilities`` (float32; a softmax is added for a model
    that outputs logits). Only TFLite builtin ops are used, so the plain
    interpreter runs it; it computes in float32 whatever policy the model was
    trained under.

    Before the file is moved into place the converted model runs on
    ``check_images`` (default: 4 random images, fixed seed) and its outputs are
    compared with the Keras model's on the same normalised images.

    Args:
        model: a `keras.Model` (auxiliary heads are stripped).
        path: the file to create; must end in ``.tflite``.
        model_name, image_size, preprocessing, output: as in `saved_model`.
        overwrite: replace an existing file.
        check: run the comparison (raises if it fails, writing nothing).
        atol: the largest absolute difference accepted.
        check_images: optional uint8 array ``(n, height, width, 3)``.

    Returns:
        A dict: ``path``, ``max_abs_diff`` (None without ``check``), ``input_size``.

    Example:

    >>> report = kerasnets.export.tflite(model, "resnet20.tflite")
    >>> report["max_abs_diff"] < 1e-4
    True
    """
    check_path("path", path, suffix=".tflite", expected="a TFLite file path ending in .tflite")
    check_number("atol", atol, allow_zero=True)
    from kerasnets.export._backend import export_in_tensorflow, needs_tensorflow  # inside: see _backend's docstring

    if needs_tensorflow():  # the converter takes TensorFlow graphs: a TensorFlow-backend process
        return export_in_tensorflow("tflite", model, path, dict(
            model_name=model_name, image_size=image_size, preprocessing=preprocessing, output=output,
            overwrite=overwrite, check=check, atol=atol, check_images=check_images))
    path = check_destination(path, overwrite=overwrite, kind="file")
    model = exportable_model(model)
    spec = resolve_spec(
        model, model_name=model_name, image_size=image_size, preprocessing=preprocessing,
        output=output,
    )
    h, w = spec.image_size
    model = with_dtype_policy(model, "float32")  # TFLite builtins have no bfloat16 kernels
    check_images = _check_images(check_images, h, w)
    serve, signature = _converter_input(model, spec)
    content = _convert(serve, signature)
    max_diff = _compare(content, serve, check_images, atol) if check else None
    with atomic_destination(path, overwrite=overwrite) as staging:
        with open(staging, "wb") as f:
            f.write(content)
    return {"path": path, "max_abs_diff": max_diff, "input_size": [h, w]}
