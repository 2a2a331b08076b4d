"""What input each model family expects: value range, normalisation, crop.

Plain data, no TensorFlow: the data pipeline (`kerasnets.data`) and the export
signature (`kerasnets.export`) apply it; a model never bakes it in silently
(docs/architecture.md, Preprocessing). Pixel values enter as float in ``[0, 255]``, RGB order;
the model sees ``(pixels - mean) / std`` per channel.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Preprocessing", "IMAGENET_MEAN_STD", "MEAN_SUBTRACTION", "INCEPTION", "BVLC_GOOGLENET", "BVLC_ALEXNET"]


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """Per-channel normalisation of ``[0, 255]`` RGB pixels, and the evaluation crop.

    Attributes:
        name: a short identifier, recorded in exports.
        mean: per-channel value subtracted (RGB, in the ``[0, 255]`` scale).
        std: per-channel divisor (RGB, in the ``[0, 255]`` scale).
        crop_fraction: evaluation images are resized so that the crop of
            ``image_size`` is this fraction of the shorter side (0.875: resize 256,
            crop 224).
    """

    name: str
    mean: tuple = (0.0, 0.0, 0.0)
    std: tuple = (1.0, 1.0, 1.0)
    crop_fraction: float = 0.875

    def normalize_numpy(self, images):
        """Reference implementation on a NumPy array ``(..., 3)`` of ``[0, 255]`` pixels."""
        images = np.asarray(images, dtype=np.float32)
        channels = images.shape[-1]
        mean = np.resize(np.asarray(self.mean, np.float32), channels)
        std = np.resize(np.asarray(self.std, np.float32), channels)
        return (images - mean) / std

    def to_dict(self):
        return dataclasses.asdict(self)


# torchvision / most modern recipes: ImageNet mean and standard deviation.
IMAGENET_MEAN_STD = Preprocessing(
    "imagenet_mean_std", mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)
)
# AlexNet, VGG, GoogLeNet papers: "subtracting the mean RGB value" only.
MEAN_SUBTRACTION = Preprocessing("mean_subtraction", mean=(123.68, 116.779, 103.939))
# Inception v2/v3 as released (and keras.applications' "tf" mode): scale to [-1, 1].
INCEPTION = Preprocessing(
    "inception", mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5)
)
# The BVLC Caffe models (the "bvlc" weights of GoogLeNet and AlexNet) were trained on BGR
# pixels minus a mean; their presets reverse the first convolution's input channels, so
# the models take RGB pixels minus the same means (docs/caffe.md).
# GoogLeNet: train_val.prototxt's mean_value 104, 117, 123 (B, G, R); crops of 224 from 256.
BVLC_GOOGLENET = Preprocessing("bvlc_googlenet", mean=(123.0, 117.0, 104.0))
# AlexNet subtracted the ImageNet mean *image* (ilsvrc_2012_mean.binaryproto, 256x256);
# its per-channel averages, R 122.679, G 116.669, B 104.007, approximate it. Crops of 227 from 256.
BVLC_ALEXNET = Preprocessing("bvlc_alexnet", mean=(122.679, 116.669, 104.007), crop_fraction=227 / 256)
