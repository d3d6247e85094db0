"""The U-Net encoders: Keras's VGG16, ResNet50, MobileNetV2 and InceptionV3, cut after their last skip tap.

keras-unet-collection builds its encoder as a nested Keras model named
`{backbone}_backbone` whose outputs are the skip taps; Keras keeps only the
layers those taps need. `BackboneEncoder` does the same with the layers (and
Keras layer names) of `jaxcomponents.models`' backbones, so a
keras-unet-collection `.h5` file, or Keras's ImageNet no-top file, maps onto
it by name.

Skip taps (strides 1 or 2, 4, 8, 16, 32):

| backbone | taps | source |
| --- | --- | --- |
| VGG16 | block1_conv2, block2_conv2, block3_conv3, block4_conv3, block5_conv3 | keras-unet-collection |
| ResNet50 | conv1_relu, conv2_block3_out, conv3_block4_out, conv4_block6_out, conv5_block3_out | keras-unet-collection |
| MobileNetV2 | block_1_expand_relu, block_3_expand_relu, block_6_expand_relu, block_13_expand_relu, out_relu | this project |
| InceptionV3 | activation_2, activation_4, mixed2, mixed7, mixed10 | this project |

VGG16's first tap is at full resolution, so a U-Net of depth `d` takes `d`
taps; the others start at stride 2 and take `d - 1`, and the decoder's last
level has no skip (keras-unet-collection's rule for every non-VGG backbone).
MobileNetV2's taps are the ReLU6 outputs before each stride-2 depthwise
convolution and the last ReLU6 (the layers segmentation decoders commonly use);
InceptionV3's are the last activation before each stride-2 reduction of the
stem (`activation_2`, 64 channels; `activation_4`, 192), and the inception
blocks before the grid reductions (`mixed2`, `mixed7`) and the last one.
InceptionV3 keeps Keras's 'valid' convolutions, so its taps are not exactly
halved sizes (224 gives 109, 52, 25, 12, 5): the U-Net resizes each decoded
map to its skip's size (bilinear) and the last one to the input size.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.activations import relu6
from jaxcomponents.errors import check_choice, check_positive_int
from jaxcomponents.layers.conv_core import Conv
from jaxcomponents.layers.normalization import BatchNorm
from jaxcomponents.layers.pooling import max_pool
from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.models.inception_v3 import _Builder, _inception_v3
from jaxcomponents.models.mobilenet_v2 import MOBILENET_V2_BLOCKS, MOBILENET_V2_FEATURES, MobileNetV2, make_divisible
from jaxcomponents.models.resnet import RESNET50_FEATURES, RESNET50_STAGES, RESNET_BN_EPSILON, ResNet50
from jaxcomponents.models.vgg import VGG16_BLOCKS, VGG16_FEATURES

BACKBONE_TAPS: dict[str, tuple[str, ...]] = {
    "VGG16": VGG16_FEATURES,
    "ResNet50": RESNET50_FEATURES,
    "MobileNetV2": MOBILENET_V2_FEATURES,
    "InceptionV3": ("activation_2", "activation_4", "mixed2", "mixed7", "mixed10"),
}
BACKBONES = tuple(BACKBONE_TAPS)
MIN_SIZES = {"VGG16": 32, "ResNet50": 32, "MobileNetV2": 32, "InceptionV3": 75}
IMAGENET_FILES = {"VGG16": "vgg16", "ResNet50": "resnet50", "MobileNetV2": "mobilenet_v2",
                  "InceptionV3": "inception_v3"}


def tap_count(backbone: str, depth: int) -> int:
  """How many taps a U-Net of `depth` levels takes (keras-unet-collection: `depth` for VGG, else `depth - 1`)."""
  wanted = depth if backbone == "VGG16" else depth - 1
  return min(wanted, len(BACKBONE_TAPS[backbone]))


class BackboneEncoder(PrecisionFields):
  """A Keras ImageNet backbone up to its `taps`-th skip tap; returns the tap tensors, shallow to deep.

  Attributes:
    backbone: "VGG16", "ResNet50", "MobileNetV2" (alpha 1) or "InceptionV3".
    taps: how many of `BACKBONE_TAPS[backbone]` to compute (1 to 5).
    freeze_batch_norm: batch norm in inference mode even when training
      (what Keras's `BatchNormalization(trainable=False)` does).
    dtype, param_dtype, precision: keyword-only, passed to every layer, as the backbones take them.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> encoder = BackboneEncoder("VGG16", taps=2)
    >>> x = jnp.zeros((1, 32, 32, 3))
    >>> variables = jax.eval_shape(encoder.init, jax.random.key(0), x)
    >>> [t.shape for t in jax.eval_shape(encoder.apply, variables, x)]
    [(1, 32, 32, 64), (1, 16, 16, 128)]
  """

  backbone: str
  taps: int
  freeze_batch_norm: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> list[jax.Array]:
    check_choice("backbone", self.backbone, BACKBONES)
    check_positive_int("taps", self.taps)
    names = BACKBONE_TAPS[self.backbone][:self.taps]
    if len(names) < self.taps:
      raise ValueError(f"taps={self.taps} is not allowed for {self.backbone}; it has {len(names)} taps.")
    inference = not train or self.freeze_batch_norm
    build = {"VGG16": self._vgg16, "ResNet50": self._resnet50, "MobileNetV2": self._mobilenet_v2,
             "InceptionV3": self._inception_v3}[self.backbone]
    norm = functools.partial(BatchNorm, use_running_average=inference, **self.dtype_options)
    features = build(x, names, norm, self.precision_options)
    return [features[name] for name in names]

  @staticmethod
  def _vgg16(x, names, norm, options):
    features = {}
    for block, convs, filters in VGG16_BLOCKS:
      if block > 1:
        x = max_pool(x, 2)
      for i in range(1, convs + 1):
        x = nn.relu(Conv(filters, (3, 3), padding="SAME", name=f"block{block}_conv{i}", **options)(x))
        features[f"block{block}_conv{i}"] = x
        if f"block{block}_conv{i}" == names[-1]:
          return features
    return features

  @staticmethod
  def _resnet50(x, names, norm, options):
    norm = functools.partial(norm, epsilon=RESNET_BN_EPSILON)
    conv = functools.partial(Conv, **options)
    x = jnp.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)))
    x = conv(64, (7, 7), strides=(2, 2), padding="VALID", name="conv1_conv")(x)
    x = nn.relu(norm(name="conv1_bn")(x))
    features = {"conv1_relu": x}
    if names[-1] == "conv1_relu":
      return features
    x = max_pool(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), 3, 2)
    for stage, filters, blocks, stride in RESNET50_STAGES:
      for block in range(1, blocks + 1):
        name = f"{stage}_block{block}"
        x = ResNet50._block(x, filters, stride if block == 1 else 1, block == 1, name, norm, conv)
        features[f"{name}_out"] = x
        if f"{name}_out" == names[-1]:
          return features
    return features

  @staticmethod
  def _mobilenet_v2(x, names, norm, options):
    norm = functools.partial(norm, momentum=0.999)
    conv = functools.partial(Conv, **options)
    features = {}
    x = conv(make_divisible(32), (3, 3), (2, 2), padding="SAME", use_bias=False, name="Conv1")(x)
    x = relu6(norm(name="bn_Conv1")(x))
    for block_id, (filters, stride, expansion) in enumerate(MOBILENET_V2_BLOCKS):
      if names[-1] == f"block_{block_id}_expand_relu":  # the last tap is inside this block: stop there
        x = conv(expansion * x.shape[-1], (1, 1), use_bias=False, name=f"block_{block_id}_expand")(x)
        features[names[-1]] = relu6(norm(name=f"block_{block_id}_expand_BN")(x))
        return features
      x = MobileNetV2._inverted_residual(x, block_id, make_divisible(filters), stride, expansion, norm, features,
                                         options)
    x = conv(1280, (1, 1), use_bias=False, name="Conv_1")(x)
    features["out_relu"] = relu6(norm(name="Conv_1_bn")(x))
    return features

  @staticmethod
  def _inception_v3(x, names, norm, options):
    builder = _Builder(norm, functools.partial(Conv, **options))
    _inception_v3(builder)
    values = builder.graph.run(x, builder.named[names[-1]])
    return {name: values[builder.named[name]] for name in names}


def _is_batch_norm(leaf: Mapping[str, Any]) -> bool:
  """A layer's parameters are batch norm's when none of them is a kernel."""
  return not any(name.endswith("kernel") for name in leaf)


def freeze_params(params: Mapping[str, Any], *, convolutions: bool, batch_norm: bool) -> dict[str, Any]:
  """Stops the gradient of the convolution and/or batch-norm layers in a `{layer: {weight: array}}` tree."""
  out = {}
  for name, leaf in params.items():
    frozen = batch_norm if _is_batch_norm(leaf) else convolutions
    out[name] = jax.tree.map(jax.lax.stop_gradient, dict(leaf)) if frozen else leaf
  return out


def frozen_encoder(freeze_backbone: bool, freeze_batch_norm: bool, initializing: bool):
  """`BackboneEncoder` whose layers get no gradient: convolutions if `freeze_backbone`, batch norm if `freeze_batch_norm`.

  `initializing`: the parent's `is_initializing()`.
  """
  if not (freeze_backbone or freeze_batch_norm):
    return BackboneEncoder

  def trans_in(variables):
    return {**variables, "params": freeze_params(variables.get("params", {}), convolutions=freeze_backbone,
                                                 batch_norm=freeze_batch_norm)}

  return nn.map_variables(BackboneEncoder, "params", trans_in_fn=trans_in, init=initializing)
