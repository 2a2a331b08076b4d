"""The serving graph: preprocessing, the model, probabilities and top-k, as tf.functions.

Two signatures share one classifier function:

* ``serving_default``: ``images``, a ``uint8`` batch ``(batch, height, width, 3)``
  of RGB images of any height and width (one size per request);
* ``serving_bytes``: ``image_bytes``, a ``string`` vector of encoded JPEG, PNG,
  GIF or BMP files, each of its own size.

Both apply the evaluation preprocessing of the data pipeline: the central
square whose side is ``crop_fraction`` of the shorter side, resized to the
model's size, per-channel normalisation. Decoded images go through
`kerasnets.data.preprocess_for_eval`, encoded ones through the pipeline's own
transform of encoded files (`kerasnets.data.eval_transform`), so that
evaluation during training and serving agree.
"""

from __future__ import annotations

import tensorflow as tf

from kerasnets.layers import channels_last

__all__ = [
    "SIGNATURES", "serving_functions", "eval_preprocess", "eval_preprocess_encoded", "signature_doc",
]

SIGNATURES = ("serving_default", "serving_bytes")


def eval_preprocess(images, image_size, preprocessing):
    """uint8 ``(H, W, 3)`` or ``(N, H, W, 3)`` -> float32 ``image_size`` squares, normalised.

    Exactly `kerasnets.data.preprocess_for_eval`, the evaluation transform of the
    data pipeline.
    """
    from kerasnets.data import preprocess_for_eval  # kerasnets.data (tensorflow-datasets) only when used

    return preprocess_for_eval(images, image_size, preprocessing)


def eval_preprocess_encoded(data, image_size, preprocessing):
    """An encoded image (scalar string) -> float32 ``image_size`` square, normalised.

    Exactly what the data pipeline does to evaluation files
    (`kerasnets.data.eval_transform`): the central window is read from the header
    and JPEGs decode only that window. (Decoding a JPEG window differs from
    decoding the whole image then cropping by a fraction of a grey level at the
    window's edges, so serving matches evaluation by using this same function.)
    """
    # The very function `kerasnets.data.load` applies to evaluation files.
    from kerasnets.data import eval_transform

    return eval_transform(data, image_size, preprocessing, preprocessing.crop_fraction)


def signature_doc(spec) -> dict:
    """The signatures' inputs and outputs, in words (recorded in the export's metadata)."""
    h, w = spec.image_size
    if spec.output == "features":
        outputs = {"features": "float32 [batch, ...]: the model's features (include_top=False)"}
    else:
        k, c = spec.top_k, spec.num_classes
        outputs = {
            "probabilities": f"float32 [batch, {c}]"
            + (" (softmax of the model's logits)" if spec.output == "logits" else ""),
            "top_k_indices": f"int32 [batch, {k}]: class indices, most probable first",
            "top_k_scores": f"float32 [batch, {k}]: their probabilities",
        }
        if spec.class_names:
            outputs["top_k_class_names"] = f"string [batch, {k}]: their class names"
    return {
        "serving_default": {
            "inputs": {"images": "uint8 [batch, height, width, 3]: RGB, any height and width"},
            "outputs": outputs,
        },
        "serving_bytes": {
            "inputs": {"image_bytes": "string [batch]: encoded JPEG / PNG / GIF / BMP files"},
            "outputs": outputs,
        },
        "model_input": f"float32 [batch, {h}, {w}, 3] after preprocessing",
    }


def _output_specs(model, spec, input_shape):
    """``{output name: (shape with batch, tf dtype)}`` of the serving outputs."""
    if spec.output == "features":
        shape = tuple(model.compute_output_shape((None, *input_shape)))
        return {"features": (shape, tf.float32)}
    k, c = spec.top_k, spec.num_classes
    specs = {
        "probabilities": ((None, c), tf.float32),
        "top_k_indices": ((None, k), tf.int32),
        "top_k_scores": ((None, k), tf.float32),
    }
    if spec.class_names:
        specs["top_k_class_names"] = ((None, k), tf.string)
    return specs


def _traced_model(model, spec, channels_first):
    """The model and its outputs as the signatures name them (``probabilities`` and ``top_k_*``,
    or ``features``), traced once: every signature (and both branches of tracing) calls it."""
    h, w = spec.image_size
    class_names = list(spec.class_names) if spec.class_names else None

    def run_model(x):
        if channels_first:
            x = tf.transpose(x, [0, 3, 1, 2])
        y = tf.cast(model(x, training=False), tf.float32)
        if spec.output == "features":
            return {"features": y}
        probabilities = tf.nn.softmax(y, axis=-1) if spec.output == "logits" else y
        top = tf.math.top_k(probabilities, k=spec.top_k)
        result = {
            "probabilities": probabilities,
            "top_k_indices": tf.cast(top.indices, tf.int32),
            "top_k_scores": top.values,
        }
        if class_names:
            result["top_k_class_names"] = tf.gather(tf.constant(class_names), top.indices)
        return result

    return tf.function(run_model, autograph=False).get_concrete_function(
        tf.TensorSpec([None, h, w, 3], tf.float32)
    )


def serving_functions(model, spec):
    """Returns ``{signature name: (python function, input_signature)}`` for ``model``.

    ``model`` is the single-output inference model; ``spec`` an `ExportSpec`.
    """
    h, w = spec.image_size
    channels_first = not channels_last()

    # TensorFlow's CPU convolutions fail on an empty batch, so an empty request
    # skips the model and gets empty outputs of the right shapes and types.
    channels_shape = (3, h, w) if channels_first else (h, w, 3)
    empty_outputs = {
        key: (spec[1:], spec_dtype)
        for key, (spec, spec_dtype) in _output_specs(model, spec, channels_shape).items()
    }
    run_model = _traced_model(model, spec, channels_first)

    def classify(x):
        def empty():
            return {
                key: tf.zeros([0, *shape], dtype) for key, (shape, dtype) in empty_outputs.items()
            }

        return tf.cond(tf.shape(x)[0] > 0, lambda: run_model(x), empty)

    def serve_images(images):
        x = eval_preprocess(images, h, spec.preprocessing)
        return classify(tf.ensure_shape(x, [None, h, w, 3]))

    def serve_bytes(image_bytes):
        x = tf.map_fn(
            lambda data: eval_preprocess_encoded(data, h, spec.preprocessing),
            image_bytes,
            fn_output_signature=tf.TensorSpec([h, w, 3], tf.float32),
        )
        return classify(x)

    return {
        "serving_default": (
            serve_images,
            [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
        ),
        "serving_bytes": (
            serve_bytes,
            [tf.TensorSpec([None], tf.string, name="image_bytes")],
        ),
    }
