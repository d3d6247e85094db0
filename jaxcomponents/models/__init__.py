"""Backbones with Keras's architectures and layer names, and keras-unet-collection's models in 2-D and 3-D.

`backbones` is the registry: `backbones.get("ResNet50")` is the backbone's record (its module, ImageNet size,
preprocessing, weight files and U-Net taps). Models never import weights (`jaxcomponents.weights.init_unet` and
`load_imagenet` load them) nor Keras interop at import (`KerasGraph` is resolved on first use).
"""

from typing import Any

from jaxcomponents.deprecation import warn
from jaxcomponents.models import backbones
from jaxcomponents.models.classifier import BackboneClassifier
from jaxcomponents.models.common import Backbone, BackboneRecord
from jaxcomponents.models.densenet import DenseNet121, DenseNet169, DenseNet201
from jaxcomponents.models.efficientnet import (EfficientNetB0, EfficientNetB1, EfficientNetB2, EfficientNetB3,
                                               EfficientNetB4, EfficientNetB5, EfficientNetB6, EfficientNetB7)
from jaxcomponents.models.inception_v3 import INCEPTION_V3_FEATURES, InceptionV3
from jaxcomponents.models.mobilenet import MobileNet
from jaxcomponents.models.mobilenet_v2 import MOBILENET_V2_FEATURES, MobileNetV2
from jaxcomponents.models.resnet import (RESNET50_FEATURES, ResNet50, ResNet50V2, ResNet101, ResNet101V2, ResNet152,
                                         ResNet152V2)
from jaxcomponents.models.r2_unet import R2UNet, r2_unet_2d
from jaxcomponents.models.resunet_a import ResUNetA, resunet_a_2d, resunet_a_3d
from jaxcomponents.models.swin_unet import SwinUNet, swin_constant_patterns, swin_unet_2d
from jaxcomponents.models.transunet import TransUNet, transunet_2d
from jaxcomponents.models.u2net import U2Net, u2net_2d
from jaxcomponents.models.unet import UNet, att_unet_2d, att_unet_3d, unet_2d, unet_3d
from jaxcomponents.models.unet_3plus import UNet3Plus, unet_3plus_2d
from jaxcomponents.models.unet_plus import UNetPlus, unet_plus_2d, unet_plus_3d
from jaxcomponents.models.vnet import VNet, vnet_2d, vnet_3d
from jaxcomponents.models.vgg import VGG16, VGG16_FEATURES, VGG19

__all__ = [
    "Backbone", "BackboneClassifier", "BackboneRecord", "DenseNet121", "DenseNet169", "DenseNet201", "EfficientNetB0",
    "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4", "EfficientNetB5", "EfficientNetB6",
    "EfficientNetB7", "INCEPTION_V3_FEATURES", "InceptionV3", "KerasGraph", "MOBILENET_V2_FEATURES", "MobileNet",
    "MobileNetV2", "R2UNet", "RESNET50_FEATURES", "ResNet101", "ResNet101V2", "ResNet152", "ResNet152V2", "ResNet50",
    "ResNet50V2", "ResUNetA", "SwinUNet", "TransUNet", "U2Net", "UNet", "UNet3Plus", "UNetPlus", "VGG16",
    "VGG16_FEATURES", "VGG19", "VNet", "att_unet_2d", "att_unet_3d", "backbones", "r2_unet_2d", "resunet_a_2d",
    "resunet_a_3d", "swin_constant_patterns", "swin_unet_2d", "transunet_2d", "u2net_2d", "unet_2d", "unet_3d",
    "unet_3plus_2d", "unet_plus_2d", "unet_plus_3d", "vnet_2d", "vnet_3d",
]


def __getattr__(name: str) -> Any:
  """Names resolved on first use from the layer above that holds them (models import neither at import)."""
  if name == "KerasGraph":  # public here, as before; it lives with the Keras interop, a layer above the models
    from jaxcomponents.keras.graph import KerasGraph  # pylint: disable=import-outside-toplevel
    return KerasGraph
  if name == "init_unet":  # loads weight files: it moved beside them
    from jaxcomponents.weights.imagenet import init_unet  # pylint: disable=import-outside-toplevel
    warn("jaxcomponents.models.init_unet is a deprecated alias of jaxcomponents.weights.init_unet; the old name "
         "goes in the next release.")
    return init_unet
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
