"""Preprocessing and the papers' training augmentation, as TensorFlow ops.

Every training transform is "choose a window of the original image, decode and crop it,
resize the crop to ``image_size``, (flip), normalise". Choosing the window needs
only the image's height and width, which a JPEG header gives without decoding
(`tf.image.extract_jpeg_shape`), so JPEG crops are decoded by
`tf.image.decode_and_crop_jpeg`: only the pixels of the window are decoded.

Windows:

* evaluation (`central_window`): the central region whose side is
  ``crop_fraction`` of the shorter side (0.875: the 224 crop of an image resized
  to 256), then resized to ``image_size``. This is the same geometry as "resize
  the shorter side to image_size / crop_fraction, crop the centre", done in the
  cheaper order. Evaluation decodes the whole image (no fused crop) so that its
  batches equal `preprocess_for_eval`, the export's serving function, exactly.
* ``"inception"`` (`inception_window`): Szegedy et al. 2015, "Going deeper with
  convolutions", section 6: patches of 8% to 100% of the image area with aspect
  ratio in [3/4, 4/3], resized to ``image_size``.
* ``"scale"`` (`scale_window`): Simonyan & Zisserman 2015 section 3.1 and He et
  al. 2016 section 3.4: the shorter side is rescaled to S, uniform in [256, 512]
  for 224 crops (scaled with ``image_size``), and an ``image_size`` crop is taken
  at a random position; here the crop window is found in the original image and
  only it is resized.
* ``"pad_crop"``: He et al. 2016 section 4.2 (CIFAR): 4 pixels of zero padding on
  each side (``image_size / 8`` for other sizes) and a random ``image_size`` crop.
  It is cheap per image, so it runs vectorised on whole batches
  (`pad_crop_batch`) after the images are decoded and resized.

All training transforms end with a random horizontal flip. Randomness is
stateless: each example (each batch for ``"pad_crop"``) receives a seed of shape
``[2]``, so a pipeline with a seed is deterministic while parallel.
"""

from __future__ import annotations

import tensorflow as tf

from kerasnets._validate import check_choice
from kerasnets.preprocessing import IMAGENET_MEAN_STD, Preprocessing

__all__ = [
    "AUGMENTATIONS",
    "preprocess_for_eval",
    "normalize",
    "central_window",
    "inception_window",
    "scale_window",
]

AUGMENTATIONS = ("inception", "scale", "pad_crop")


# ---------------------------------------------------------------------------
# Shared pieces: shape, decode, resize, normalise.
# ---------------------------------------------------------------------------


def normalize(image, preprocessing: Preprocessing):
    """``(image - mean) / std`` per channel, float32; ``image`` holds [0, 255] values."""
    image = tf.cast(image, tf.float32)
    mean = tf.constant(preprocessing.mean, tf.float32)
    std = tf.constant(preprocessing.std, tf.float32)
    return (image - mean) / std


def _resize(image, image_size):
    """Bilinear resize with antialiasing (as PIL does when shrinking), float32 out.

    An image that already has the size is only cast (the resize would be an
    exact but costly no-op).
    """
    shape = tf.shape(image)
    same = tf.logical_and(tf.equal(shape[-3], image_size), tf.equal(shape[-2], image_size))
    resized = tf.cond(
        same,
        lambda: tf.cast(image, tf.float32),
        lambda: tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=True),
    )
    resized.set_shape(image.shape[:-3].concatenate([image_size, image_size, image.shape[-1]]))
    return resized


def _to_rgb(image):
    if image.shape[-1] == 1:
        return tf.image.grayscale_to_rgb(image)
    return image


def encoded_shape(encoded):
    """``[height, width]`` of an encoded image; JPEG headers are read without decoding."""
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.image.extract_jpeg_shape(encoded)[:2],
        lambda: tf.shape(_decode(encoded))[:2],
    )


def _decode(encoded):
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def decode_window(encoded, window):
    """Decodes only ``window`` = ``[y, x, height, width]`` of an encoded image (uint8 RGB).

    JPEG: fused `tf.image.decode_and_crop_jpeg`; other formats: decode, then slice.
    """

    def fused():
        return tf.image.decode_and_crop_jpeg(encoded, window, channels=3)

    def sliced():
        return _decode(encoded)[window[0]:window[0] + window[2], window[1]:window[1] + window[3]]

    image = tf.cond(tf.io.is_jpeg(encoded), fused, sliced)
    image.set_shape([None, None, 3])
    return image


# ---------------------------------------------------------------------------
# Windows: [y, x, height, width] int32 from the image shape (and a seed).
# ---------------------------------------------------------------------------


def central_window(shape, image_size, crop_fraction):
    """The central window whose side is ``crop_fraction`` of the shorter side."""
    height, width = tf.unstack(tf.cast(shape, tf.float32))
    side = crop_fraction * tf.minimum(height, width)
    side = tf.maximum(tf.cast(tf.round(side), tf.int32), 1)
    shape = tf.cast(shape, tf.int32)
    y = (shape[0] - side) // 2
    x = (shape[1] - side) // 2
    return tf.stack([y, x, side, side])


def inception_window(shape, seed, area_range=(0.08, 1.0), aspect_range=(3 / 4, 4 / 3)):
    """A random window of ``area_range`` of the image area and ``aspect_range`` aspect.

    After 10 unsuccessful draws the whole image is used (as the Inception code does).
    """
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.concat([tf.cast(shape, tf.int32), [3]], axis=0),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=aspect_range,
        area_range=area_range,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.stack([begin[0], begin[1], size[0], size[1]])


def scale_window(shape, seed, image_size, scale_range=(256, 512)):
    """The window of the original image that an ``image_size`` crop covers after the
    shorter side has been rescaled to S ~ U[scale_range] (scaled by image_size / 224)."""
    lo, hi = (s * image_size / 224.0 for s in scale_range)
    seed_s, seed_y, seed_x = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    target = tf.random.stateless_uniform([], seed_s, lo, hi)
    shape_f = tf.cast(shape, tf.float32)
    # Side of the window in original pixels: image_size * (shorter side / S).
    side = image_size * tf.reduce_min(shape_f) / target
    side = tf.clip_by_value(tf.cast(tf.round(side), tf.int32), 1, tf.cast(tf.reduce_min(shape), tf.int32))
    shape = tf.cast(shape, tf.int32)
    y = tf.random.stateless_uniform([], seed_y, 0, shape[0] - side + 1, dtype=tf.int32)
    x = tf.random.stateless_uniform([], seed_x, 0, shape[1] - side + 1, dtype=tf.int32)
    return tf.stack([y, x, side, side])


# ---------------------------------------------------------------------------
# Whole transforms of one encoded image.
# ---------------------------------------------------------------------------


def preprocess_for_eval(image, image_size, preprocessing=None, *, crop_fraction=None):
    """The evaluation transform of decoded images: central crop, resize, normalise.

    The crop is the central square whose side is ``crop_fraction`` of the shorter
    side, resized to ``image_size`` (the same result as resizing the shorter side to
    ``image_size / crop_fraction`` and cropping the centre). A pure TensorFlow
    function with no Python state: `kerasnets.data.load` uses it for evaluation
    batches and the SavedModel export puts it in the serving signature.

    Args:
        image: ``uint8`` (or float in [0, 255]) RGB, ``(height, width, 3)`` or a
            batch ``(n, height, width, 3)``; height and width may be dynamic. A
            single grey channel is repeated to RGB.
        image_size: the side of the square output.
        preprocessing: a `kerasnets.preprocessing.Preprocessing`
            (default: `kerasnets.preprocessing.IMAGENET_MEAN_STD`).
        crop_fraction: overrides ``preprocessing.crop_fraction``; ``1.0`` resizes the
            whole (centre-squared) image.

    Returns:
        float32 ``(image_size, image_size, 3)`` (or the batch of them), normalised.

    Example:

    >>> x = tf.zeros((480, 640, 3), tf.uint8)
    >>> preprocess_for_eval(x, 224, kerasnets.preprocessing.INCEPTION).shape
    TensorShape([224, 224, 3])
    """
    preprocessing = preprocessing or IMAGENET_MEAN_STD
    fraction = preprocessing.crop_fraction if crop_fraction is None else crop_fraction
    image = _to_rgb(tf.convert_to_tensor(image))
    shape = tf.shape(image)
    window = central_window(shape[-3:-1], image_size, fraction)
    image = image[..., window[0]:window[0] + window[2], window[1]:window[1] + window[3], :]
    return normalize(_resize(image, image_size), preprocessing)


def eval_transform(encoded, image_size, preprocessing, crop_fraction):
    """`preprocess_for_eval` of an encoded image.

    Not fused with the decode on purpose: libjpeg's fused crop can differ from
    decode-then-crop at the window's edge, and evaluation batches must be exactly
    what the exported serving function computes (the central crop keeps 77% of
    the pixels at 0.875, so fusing would save little).
    """
    image = _decode(encoded)
    return preprocess_for_eval(image, image_size, preprocessing, crop_fraction=crop_fraction)


def decode_resized(encoded, image_size):
    """The whole image as uint8, resized to ``image_size`` if needed: the
    per-example half of ``"pad_crop"``, whose random half runs on whole batches
    (uint8 keeps a cache or shuffle buffer of decoded images small)."""
    image = _decode(encoded)
    shape = tf.shape(image)
    same = tf.logical_and(tf.equal(shape[0], image_size), tf.equal(shape[1], image_size))
    image = tf.cond(
        same,
        lambda: image,
        lambda: tf.cast(tf.clip_by_value(tf.round(_resize(image, image_size)), 0, 255), tf.uint8),
    )
    image.set_shape([image_size, image_size, 3])
    return image


def pad_crop_batch(images, seed, preprocessing, flip=True):
    """``"pad_crop"`` on a batch ``(n, size, size, 3)`` of [0, 255] images, vectorised.

    Zero-pads ``size / 8`` pixels (4 at 32) on each side, takes a random ``size``
    crop of each image and flips half of them, then normalises. One seed of shape
    ``[2]`` per batch; each image gets its own offsets and flip.
    """
    size = images.shape[1]
    pad = max(1, round(size / 8))
    n = tf.shape(images)[0]
    seed_y, seed_x, seed_flip = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    offset_y = tf.random.stateless_uniform([n], seed_y, 0, 2 * pad + 1, dtype=tf.int32)
    offset_x = tf.random.stateless_uniform([n], seed_x, 0, 2 * pad + 1, dtype=tf.int32)
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    span = tf.range(size)
    rows = offset_y[:, None] + span[None, :]
    cols = offset_x[:, None] + span[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    out = tf.gather(out, cols, axis=2, batch_dims=1)
    if flip:
        flipped = tf.random.stateless_uniform([n], seed_flip) < 0.5
        out = tf.where(flipped[:, None, None, None], tf.reverse(out, axis=[2]), out)
    return normalize(out, preprocessing)


def train_transform(encoded, seed, image_size, preprocessing, augment, flip=True):
    """A random training view of an encoded image: window, decode, resize, flip, normalise.

    For ``"inception"`` and ``"scale"`` (``"pad_crop"`` runs on batches: `pad_crop_batch`).
    """
    seed_window, seed_flip = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = encoded_shape(encoded)
    check_choice("augment", augment, ("inception", "scale"), context="a per-example augmentation")
    if augment == "inception":
        window = inception_window(shape, seed_window)
    else:
        window = scale_window(shape, seed_window, image_size)
    image = _resize(decode_window(encoded, window), image_size)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed_flip)
    return normalize(image, preprocessing)
