"""The model families. Importing this package registers every model's `ModelSpec`."""

from kerasnets.models._application import ModelInfo, scale_width
from kerasnets.models.resnet import (
    ResNet18,
    ResNet20,
    ResNet32,
    ResNet34,
    ResNet44,
    ResNet50,
    ResNet56,
    ResNet101,
    ResNet110,
    ResNet152,
)
from kerasnets.models.alexnet import AlexNet
from kerasnets.models.vgg import (
    VGG11,
    VGG11BN,
    VGG11LRN,
    VGG13,
    VGG13BN,
    VGG16,
    VGG16BN,
    VGG16C,
    VGG19,
    VGG19BN,
)
from kerasnets.models._multi_output import AuxiliaryClassifierModel, inference_model, outputs_logits
from kerasnets.models.googlenet import GoogLeNet, GoogLeNetBN, InceptionV1
from kerasnets.models.inception import InceptionV2, InceptionV3
from kerasnets.models._features import feature_extractor, feature_stages

# What `from kerasnets.models import *` (the top-level package) re-exports; `scale_width`
# (the width rule of ``width_multiplier``) is public here, for the tuning package.
__all__ = [
    "ModelInfo", "AuxiliaryClassifierModel", "inference_model", "feature_extractor", "feature_stages",
    "AlexNet", "GoogLeNet", "GoogLeNetBN", "InceptionV1", "InceptionV2", "InceptionV3",
    "ResNet18", "ResNet20", "ResNet32", "ResNet34", "ResNet44", "ResNet50", "ResNet56",
    "ResNet101", "ResNet110", "ResNet152",
    "VGG11", "VGG11BN", "VGG11LRN", "VGG13", "VGG13BN", "VGG16", "VGG16BN", "VGG16C", "VGG19", "VGG19BN",
    "alexnet", "googlenet", "inception", "resnet", "vgg",
]
