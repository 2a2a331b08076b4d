"""Input pipelines: tensorflow-datasets, folders of images and the built-in ``shapes``.

>>> import kerasnets.data
>>> train = kerasnets.data.load("shapes", "train", batch_size=32, seed=0)
>>> val = kerasnets.data.load("shapes", "validation", batch_size=64)
>>> train.num_classes, train.image_size, train.augment
(10, 32, 'pad_crop')
>>> model.fit(train.dataset, validation_data=val.dataset, epochs=5)

`load` returns a `DataSplit`: a batched, prefetched ``tf.data.Dataset`` of
``(float32 images, int32 labels)`` plus the class names and counts. Sources:

* a tensorflow-datasets name (``"cifar10"``, ``"imagenette/320px"``,
  ``"imagenet2012"``), read from ``data_dir``; ``download=True`` lets tfds fetch it;
* a folder, ``root/<class>/<image>`` or ``root/<split>/<class>/<image>``;
* ``"shapes"``, generated locally on first use (`kerasnets.data.shapes`); registered
  with tfds on ``import kerasnets.data``, so ``tfds.load("shapes")`` works too.

Preprocessing per model family (``kerasnets.get_model_info(name)``;
``load(..., model=name)`` applies it). Pixels enter in ``[0, 255]`` RGB and the
model sees ``(pixels - mean) / std`` per channel:

=================  ==========  ===========================================
family             input size  normalisation (`kerasnets.preprocessing`)
=================  ==========  ===========================================
AlexNet            227         ``MEAN_SUBTRACTION`` (the paper's 224 does not
                               fit its own 11x11/4 geometry; 227 does)
VGG, GoogLeNet     224         ``MEAN_SUBTRACTION``: "subtracting the mean RGB"
Inception v2, v3   299         ``INCEPTION``: scaled to [-1, 1]
ResNet (ImageNet)  224         ``IMAGENET_MEAN_STD``
ResNet (CIFAR)     32          ``IMAGENET_MEAN_STD``
=================  ==========  ===========================================

The registry is the source of truth (``get_model_info``); the table is what it
holds today. ``image_size=`` and ``preprocessing=`` override the model's.

Training augmentation (``augment=``): the Inception random-resized crop (8% to
100% of the area, aspect 3/4 to 4/3) and flip for ImageNet-scale images; the
VGG/ResNet scale augmentation (``"scale"``); pad-4 random crop and flip for
32x32, CIFAR-style images (chosen automatically for sources of images up to 64
pixels). Evaluation: the central crop of ``crop_fraction`` (0.875) of the shorter
side, resized (`preprocess_for_eval`; the whole image for small sources). JPEG
crops are decoded with ``tf.image.decode_and_crop_jpeg``; maps run in parallel
with ``AUTOTUNE``; ``seed=`` makes the batches reproducible.

Models with auxiliary heads (GoogLeNet, Inception v3 with auxiliary logits) take
the same ``(images, labels)`` batches: the model sends the one label tensor to
every head.
"""

from kerasnets.data import shapes  # noqa: F401  (registers the tfds builder)
from kerasnets.data._augment import AUGMENTATIONS, central_window, eval_transform, normalize, preprocess_for_eval
from kerasnets.data._common import DataError
from kerasnets.data._folder import IMAGE_EXTENSIONS
from kerasnets.data._load import DataSplit, check_decodable, get_preprocessing, load
from kerasnets.data.shapes import CLASS_NAMES as SHAPES_CLASS_NAMES
from kerasnets.data.shapes import Shapes, ShapesConfig

__all__ = [
    "load",
    "check_decodable",
    "DataSplit",
    "DataError",
    "preprocess_for_eval",
    "eval_transform",
    "normalize",
    "central_window",
    "get_preprocessing",
    "AUGMENTATIONS",
    "IMAGE_EXTENSIONS",
    "Shapes",
    "ShapesConfig",
    "SHAPES_CLASS_NAMES",
]
