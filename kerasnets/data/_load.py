"""`load`: one split of a tfds dataset, a folder of images or ``shapes``, ready for ``fit``."""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Callable, Optional, Union

import tensorflow as tf

from kerasnets import preprocessing as _preprocessing
from kerasnets._validate import (
    check_choice, check_fraction, check_int, check_path, check_probability, check_string, fail, is_int,
)
from kerasnets.card import model_card
from kerasnets.data import _augment, _folder, _tfds
from kerasnets.layers import spatial_shape
from kerasnets.preprocessing import IMAGENET_MEAN_STD, Preprocessing
from kerasnets.registry import get_entry
from kerasnets.weights import preprocessing_for

__all__ = ["DataSplit", "load", "check_decodable", "get_preprocessing", "SMALL_IMAGE_SIZE"]

# Sources whose images are at most this side are "CIFAR-style": pad-and-crop
# augmentation and whole-image evaluation (He et al. 2016, section 4.2).
SMALL_IMAGE_SIZE = 64
DEFAULT_SHUFFLE_BUFFER = 10_000
_AUGMENT_CHOICES = ("auto", "inception", "scale", "pad_crop", None)


@dataclasses.dataclass(frozen=True)
class DataSplit:
    """One split, batched and ready for ``model.fit`` / ``model.evaluate``.

    Attributes:
        dataset: a batched, prefetched ``tf.data.Dataset`` of ``(images, labels)``:
            float32 ``(batch, image_size, image_size, 3)`` normalised images and int32
            ``(batch,)`` labels.
        class_names: label names; ``class_names[label]``.
        num_examples: examples in the split (before batching).
        image_size: the side of the square images.
        batch_size: the batch size.
        split: the split name as requested.
        source: the source as given (a tfds name or a folder path).
        training: whether batches are shuffled and augmented.
        augment: the augmentation applied (``"inception"``, ``"scale"``,
            ``"pad_crop"``) or ``None``.
        preprocessing: the normalisation applied; its ``crop_fraction`` is the
            evaluation crop used, so ``preprocess_for_eval(image, image_size,
            split.preprocessing)`` reproduces an evaluation batch from decoded
            images (the export's serving signature does this).
        drop_remainder: whether the last partial batch is dropped.
        check_decodable: for a folder of images, a function that decodes every
            file (those remembered as decoding are skipped) and raises `DataError`
            naming the ones that do not; None for other sources. Training calls
            it when the pipeline fails, to name the file that stopped it
            (`kerasnets.data.check_decodable`).
    """

    dataset: tf.data.Dataset
    class_names: list
    num_examples: int
    image_size: int
    batch_size: int
    split: str
    source: str
    training: bool
    augment: Optional[str]
    preprocessing: Preprocessing
    drop_remainder: bool = False
    check_decodable: Optional[Callable[[], None]] = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def steps_per_epoch(self) -> int:
        """Batches per pass over the split."""
        if self.drop_remainder:
            return self.num_examples // self.batch_size
        return math.ceil(self.num_examples / self.batch_size)


def get_preprocessing(name_or_preprocessing) -> Preprocessing:
    """A `Preprocessing` from itself or its name (``"imagenet_mean_std"``, ``"inception"``,
    ``"mean_subtraction"``, any constant of `kerasnets.preprocessing`)."""
    if isinstance(name_or_preprocessing, Preprocessing):
        return name_or_preprocessing
    known = {
        value.name: value
        for value in vars(_preprocessing).values()
        if isinstance(value, Preprocessing)
    }
    if name_or_preprocessing not in known:
        fail("preprocessing", f"a kerasnets.preprocessing.Preprocessing or one of {sorted(known)}",
             name_or_preprocessing)
    return known[name_or_preprocessing]


def _check_arguments(source, split, image_size, batch_size, augment, cache, seed,
                     crop_fraction, shuffle_buffer, validation_fraction, verify, data_dir):
    check_path("source", source, expected="a tensorflow-datasets name, a folder path or 'shapes'")
    if data_dir is not None:
        expected = "a folder path (where tensorflow-datasets keeps its datasets)"
        folder = os.path.expanduser(check_path("data_dir", data_dir, expected=expected))
        if os.path.exists(folder) and not os.path.isdir(folder):
            fail("data_dir", f"{expected}, not a file", data_dir)
    check_string("split", split)
    for name, value in (("image_size", image_size), ("batch_size", batch_size),
                        ("shuffle_buffer", shuffle_buffer)):
        check_int(name, value, allow_none=name != "batch_size")
    if augment is False or augment == "none":
        augment = None
    check_choice("augment", augment, _AUGMENT_CHOICES)
    if not isinstance(cache, bool):
        check_path("cache", cache, expected="True (in memory), False or a file path prefix")
    if seed is not None and not is_int(seed):
        fail("seed", "an integer or None", seed)
    if crop_fraction is not None:
        check_fraction("crop_fraction", crop_fraction)
    check_probability("validation_fraction", validation_fraction)
    if verify is not False:
        check_choice("verify", verify, ("header", "full", None))
    return augment


def _records(source, split, data_dir, download, validation_fraction, verify):
    text = os.fspath(source)
    path = os.path.expanduser(text)
    if isinstance(source, os.PathLike) or text.startswith(("/", ".", "~")) or (
        not _tfds.is_registered(text) and os.path.isdir(path)
    ):
        return _folder.folder_records(
            path, split, validation_fraction=validation_fraction, verify=verify
        )
    return _tfds.tfds_records(text, split, data_dir=data_dir, download=download)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What `load` resolved from its arguments, the model and the source."""

    image_size: int
    preprocessing: Preprocessing  # with the evaluation crop fraction to use
    training: bool
    shuffle: bool
    augment: Optional[str]  # None for evaluation


def _model_defaults(model, weights, preprocessing):
    """The default image size (``None``: the source's) and the preprocessing: given, else
    `kerasnets.weights.preprocessing_for` of ``(model, weights)`` (a built model's card), else
    ``IMAGENET_MEAN_STD``. Checked before the source is read."""
    if model is None:
        if weights is not None:
            fail("weights", "None when no model is given (the preprocessing of a model's weights needs "
                 "the model)", weights)
        return None, get_preprocessing(preprocessing) if preprocessing is not None else IMAGENET_MEAN_STD
    import keras

    if isinstance(model, keras.Model):
        card = model_card(model)
        size = spatial_shape(model.inputs[0].shape[1:])[0]
        default_size = size if size is not None else (get_entry(card.model).info.default_size if card else None)
        if preprocessing is not None and card is None:
            return default_size, get_preprocessing(preprocessing)
    else:
        default_size = get_entry(model).info.default_size
    default = preprocessing_for(model, weights)  # checks the model (and its card) and the weights
    return default_size, get_preprocessing(preprocessing) if preprocessing is not None else default


def _plan(records, default_size, split, image_size, preprocessing, training, shuffle, augment, crop_fraction):
    """The defaults: the model's size, the source's size, the split's role, the augmentation."""
    if training is None:  # "train", and slices of it such as "train[:90%]"
        training = split.split("[")[0].strip() == "train"
    training = bool(training)
    if image_size is None:
        image_size = default_size or records.native_size or 224
    small = (records.native_size if records.native_size is not None else image_size) <= SMALL_IMAGE_SIZE
    if crop_fraction is None:
        crop_fraction = 1.0 if small else preprocessing.crop_fraction
    if not training:
        augment = None
    elif augment == "auto":
        augment = "pad_crop" if small else "inception"
    return _Plan(
        image_size=image_size,
        preprocessing=dataclasses.replace(preprocessing, crop_fraction=crop_fraction),
        training=training,
        shuffle=training if shuffle is None else bool(shuffle),
        augment=augment,
    )


def _ordered(records, plan, cache, shuffle_buffer, seed):
    """The records (decoded first for ``pad_crop``), cached, then shuffled."""
    shuffle = plan.shuffle
    ds = records.make_dataset(shuffle and not cache, seed)
    if plan.augment == "pad_crop":
        # Small images: decoded (uint8, as small as the files) before the cache and
        # the shuffle buffer, so a cached epoch skips decoding.
        ds = ds.map(lambda encoded, label: (_augment.decode_resized(encoded, plan.image_size), label),
                    num_parallel_calls=tf.data.AUTOTUNE)
    # The cache comes before the shuffle, so that each epoch is reshuffled.
    if cache:
        ds = ds.cache("" if cache is True else os.fspath(cache))
    if shuffle and (cache or not records.shuffles_fully):
        buffer = shuffle_buffer or min(records.num_examples, DEFAULT_SHUFFLE_BUFFER)
        ds = ds.shuffle(max(buffer, 1), seed=seed, reshuffle_each_iteration=True)
    return ds


def _seeds(seed):
    """One random int64 per element (its [2]-shaped stateless seed is [r, 0]); a new
    sequence each epoch, the same sequences for the same seed."""
    random = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return random.map(lambda r: tf.stack([r, tf.constant(0, tf.int64)]))


def _batched(ds, plan, batch_size, drop_remainder, seed, flip):
    """Augmented (training) or centrally cropped (evaluation), normalised, batched."""
    image_size, preprocessing, augment = plan.image_size, plan.preprocessing, plan.augment

    def batched(dataset):
        return dataset.batch(batch_size, drop_remainder=drop_remainder,
                             num_parallel_calls=tf.data.AUTOTUNE)

    if augment == "pad_crop":  # augment whole batches of decoded images
        return tf.data.Dataset.zip((batched(ds), _seeds(seed))).map(
            lambda batch, batch_seed: (
                _augment.pad_crop_batch(batch[0], batch_seed, preprocessing, flip=flip),
                batch[1],
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    if augment is not None:

        def train_map(record, element_seed):
            image = _augment.train_transform(
                record[0], element_seed, image_size, preprocessing, augment, flip=flip
            )
            return image, record[1]

        return batched(tf.data.Dataset.zip((ds, _seeds(seed))).map(
            train_map, num_parallel_calls=tf.data.AUTOTUNE))

    def eval_map(encoded, label):
        image = _augment.eval_transform(encoded, image_size, preprocessing, preprocessing.crop_fraction)
        return image, label

    return batched(ds.map(eval_map, num_parallel_calls=tf.data.AUTOTUNE))


def load(
    source,
    split: str = "train",
    *,
    image_size: Optional[int] = None,
    batch_size: int = 32,
    training: Optional[bool] = None,
    model=None,
    weights: Optional[str] = None,
    preprocessing: Union[Preprocessing, str, None] = None,
    augment: Optional[str] = "auto",
    data_dir: Optional[str] = None,
    download: bool = False,
    cache: Union[bool, str] = False,
    shuffle: Optional[bool] = None,
    seed: Optional[int] = None,
    drop_remainder: bool = False,
    crop_fraction: Optional[float] = None,
    flip: bool = True,
    shuffle_buffer: Optional[int] = None,
    validation_fraction: float = 0.1,
    verify: Optional[str] = "header",
) -> DataSplit:
    """One split of an image classification dataset as batches for ``model.fit``.

    Args:
        source: a tensorflow-datasets name (``"cifar10"``, ``"imagenette/320px"``,
            ``"imagenet2012"``), the built-in ``"shapes"`` (``"shapes/64"``,
            ``"shapes/128"``; generated locally on first use), or a folder of images
            laid out as ``root/<class>/<image>`` or ``root/<split>/<class>/<image>``
            (JPEG, PNG, GIF, BMP). A bare name is a dataset; write ``./name`` for a
            folder in the working directory with the same name as a dataset.
        split: ``"train"``, ``"validation"``, ``"test"`` or any tfds split
            expression (``"train[:90%]"``). A folder without split subfolders has
            ``"train"``, ``"validation"`` (``validation_fraction`` of each class,
            chosen by a stable hash of the file names) and ``"all"``.
        image_size: side of the square output images. Default: the model's
            ``default_size``, else the source's own size if fixed (32 for shapes and
            CIFAR), else 224.
        batch_size: examples per batch.
        training: shuffle and augment. Default: true for ``"train"`` and its
            slices (``"train[:90%]"``), false for every other split.
        model: a registered model name (``"resnet50"``) or a model built by
            kerasnets: its input size (a name's ``default_size``) and the
            preprocessing it expects (`kerasnets.weights.preprocessing_for`: a built
            model's `kerasnets.model_card`, a name's preset with ``weights``, else the
            name's own) become the defaults.
        weights: with a model name: ``None`` (the model's own preprocessing, as
            everywhere in kerasnets), ``"imagenet"`` or a preset name: the data is
            normalised as that preset's weights expect (`kerasnets.preprocess_input`
            gives the same numbers for the same model and weights).
        preprocessing: a `kerasnets.preprocessing.Preprocessing` or its name;
            default: the model's (above), else ``IMAGENET_MEAN_STD``.
        augment: training augmentation: ``"auto"`` (``"pad_crop"`` for sources of
            images up to 64 pixels, CIFAR-style; ``"inception"`` otherwise),
            ``"inception"`` (random-resized crop, 8%-100% of the area, aspect 3/4-4/3),
            ``"scale"`` (VGG/ResNet scale augmentation, shorter side in [256, 512]
            for 224 crops), ``"pad_crop"`` (pad 4, random 32 crop), or ``None``.
            Each adds a random horizontal flip (unless ``flip=False``). Evaluation
            batches are never augmented.
        data_dir: where tfds datasets are stored (default: ``$TFDS_DATA_DIR`` or
            ``~/tensorflow_datasets``).
        download: allow tfds to download and prepare a missing dataset.
        cache: ``True`` caches in memory, a string in files with that prefix:
            the decoded uint8 images for ``"pad_crop"`` training (small images,
            where decoding is the main cost), the encoded files otherwise; always
            before augmentation and shuffling.
        shuffle: default ``training``.
        seed: makes order and augmentation reproducible (two loads with the same
            seed give the same batches; each epoch still differs).
        drop_remainder: drop the last partial batch.
        crop_fraction: evaluation crop, overrides ``preprocessing.crop_fraction``;
            default 1.0 (the whole image) for sources of images up to 64 pixels.
        flip: random horizontal flips when augmenting.
        shuffle_buffer: examples in the shuffle buffer (default
            ``min(num_examples, 10000)``).
        validation_fraction: for folders without split subfolders.
        verify: for folders: ``"header"`` reads each file's first bytes and
            rejects non-images up front; ``"full"`` decodes every image with
            TensorFlow's decoder, as the pipeline will (a progress bar on
            stderr; images that decoded are remembered by size and time, in
            `kerasnets.data._folder.verified_cache_path`, so a rerun decodes
            only new or changed files), so that a corrupt image never stops an
            epoch; ``None`` checks nothing. Bad files are named in the error.

    Returns:
        A `DataSplit`: ``.dataset``, ``.class_names``, ``.num_classes``,
        ``.num_examples``, ``.steps_per_epoch``, ``.image_size``, ...

    Raises:
        kerasnets.data.DataError: (a ``ValueError``) for a dataset that is not
            prepared and cannot be downloaded, an empty folder, a folder with one
            class, unreadable images, or a split that does not exist.

    Models with auxiliary heads (GoogLeNet, Inception v3 with ``aux_classifiers=True``)
    take these plain ``(images, labels)`` batches: the model passes the one label
    tensor to every head, so no per-head label plumbing is needed.

    Example:

    >>> train = kerasnets.data.load("shapes", "train", batch_size=64, seed=0)
    >>> model = kerasnets.get_model("resnet20", classes=train.num_classes)
    >>> model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> model.fit(train.dataset, epochs=1)
    """
    augment = _check_arguments(source, split, image_size, batch_size, augment, cache, seed,
                               crop_fraction, shuffle_buffer, validation_fraction, verify, data_dir)
    default_size, preprocessing = _model_defaults(model, weights, preprocessing)
    records = _records(source, split, data_dir, download, validation_fraction, verify)
    plan = _plan(records, default_size, split, image_size, preprocessing, training, shuffle, augment,
                 crop_fraction)
    ds = _ordered(records, plan, cache, shuffle_buffer, seed)
    ds = _batched(ds, plan, batch_size, drop_remainder, seed, flip)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Without a seed, training batches may come in completion order (faster).
    options.deterministic = seed is not None or not plan.training
    ds = ds.with_options(options)
    return DataSplit(
        dataset=ds,
        class_names=list(records.class_names),
        num_examples=records.num_examples,
        image_size=plan.image_size,
        batch_size=batch_size,
        split=split,
        source=os.fspath(source),
        training=plan.training,
        augment=plan.augment,
        preprocessing=plan.preprocessing,
        drop_remainder=drop_remainder,
        check_decodable=records.check_decodable,
    )


def check_decodable(*splits) -> None:
    """Raises `DataError` naming the image files of ``splits`` that do not decode.

    For a pipeline that failed while training or evaluating (a corrupt image in
    a folder loaded with ``verify="header"`` or ``None``): TensorFlow's error
    names no file. Splits of other sources are skipped; files remembered as
    decoding are not decoded again.
    """
    seen = set()
    for split in splits:
        check = getattr(split, "check_decodable", None)
        if check is not None and (split.source, split.split) not in seen:
            seen.add((split.source, split.split))
            check()

