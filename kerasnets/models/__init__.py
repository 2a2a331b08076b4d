"""The model families. Importing this package registers every builder."""

from kerasnets.models._application import ModelInfo
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
