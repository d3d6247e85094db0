"""Backbones with Keras's architectures and layer names, and the U-Net."""

from jaxcomponents.models.classifier import BackboneClassifier
from jaxcomponents.models.inception_v3 import INCEPTION_V3_FEATURES, InceptionV3
from jaxcomponents.models.keras_graph import KerasGraph
from jaxcomponents.models.mobilenet_v2 import MOBILENET_V2_FEATURES, MobileNetV2
from jaxcomponents.models.resnet import RESNET50_FEATURES, ResNet50
from jaxcomponents.models.unet import UNet, att_unet_2d, init_unet, unet_2d
from jaxcomponents.models.vgg import VGG16, VGG16_FEATURES

__all__ = [
    "BackboneClassifier", "INCEPTION_V3_FEATURES", "InceptionV3", "KerasGraph", "MOBILENET_V2_FEATURES", "MobileNetV2",
    "RESNET50_FEATURES", "ResNet50",
    "UNet", "VGG16", "VGG16_FEATURES", "att_unet_2d", "init_unet", "unet_2d",
]
