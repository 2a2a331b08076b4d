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
