"""ResNet v1 (50, 101, 152) and v2 (50V2, 101V2, 152V2), the numerical twins of `keras.applications`' ResNets.

Keras's v1 is the original ResNet (stride on the first 1x1 convolution of a
stage, not Flax's v1.5); v2 is the pre-activation ResNet (batch norm and ReLU
before each convolution, the stride on the last block of a stage).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.deprecation import keyword_only
from jaxcomponents.layers.conv_core import Conv
from jaxcomponents.layers.normalization import BatchNorm
from jaxcomponents.layers.pooling import max_pool
from jaxcomponents.models.common import Backbone, BackboneRecord, Taps, batch_norm_mode, classifier_top, top_and_no_top

RESNET_BN_EPSILON = 1.001e-5
# (stage, filters, blocks) of conv2 ... conv5
RESNET50_STAGES = (("conv2", 64, 3), ("conv3", 128, 4), ("conv4", 256, 6), ("conv5", 512, 3))
RESNET101_STAGES = (("conv2", 64, 3), ("conv3", 128, 4), ("conv4", 256, 23), ("conv5", 512, 3))
RESNET152_STAGES = (("conv2", 64, 3), ("conv3", 128, 8), ("conv4", 256, 36), ("conv5", 512, 3))


def _v1_features(stages) -> tuple[str, ...]:
  return ("conv1_relu", *(f"{stage}_block{blocks}_out" for stage, _, blocks in stages))


def _v2_features(stages) -> tuple[str, ...]:
  return ("conv1_conv", *(f"{stage}_block{blocks}_1_relu" for stage, _, blocks in stages[:-1]), "post_relu")


class ResNet(Backbone):
  """Keras's ResNet: 7x7/2 stem convolution with bias, 3x3/2 max pool, four stages of bottleneck blocks.

  Use `ResNet50`, `ResNet101`, `ResNet152` (v1) or `ResNet50V2`, `ResNet101V2`,
  `ResNet152V2`; a subclass sets `stages` and `preact`. Layer names are
  Keras's (`conv1_conv`, `conv2_block1_1_conv`, `..._bn`, `..._0_conv` for
  shortcuts, `post_bn` in v2, `predictions`). Takes the arguments of
  `Backbone` (Keras's, and `dtype`, `param_dtype`, `precision`), called as
  `model(x, train=..., return_features=...)`. Tap points: `conv1_relu` (v1) or
  `conv1_conv` (v2), `pool1_pool`, every block's `_out`, v2's `_preact_relu`,
  `_1_relu`, `_2_relu` and `post_relu`.
  """

  stages: ClassVar[tuple[tuple[str, int, int], ...]] = RESNET50_STAGES
  preact: ClassVar[bool] = False

  @nn.compact
  @keyword_only("train", "return_features")
  def __call__(self, x: jax.Array, *, train: bool = False, return_features: bool = False) -> Any:
    self.check_input(x)
    taps = self.start_taps()
    norm = functools.partial(BatchNorm, use_running_average=batch_norm_mode(self, train), epsilon=RESNET_BN_EPSILON,
                             **self.dtype_options)
    conv = functools.partial(Conv, **self.precision_options)
    x = jnp.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)))
    x = conv(64, (7, 7), strides=(2, 2), padding="VALID", name="conv1_conv")(x)
    if self.preact:
      x = taps("conv1_conv", x)
    else:
      x = taps("conv1_relu", nn.relu(norm(name="conv1_bn")(x)))
    if taps.done:
      return self.tapped(taps)
    x = taps("pool1_pool", max_pool(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), 3, 2))
    block = self._block_v2 if self.preact else self._block_v1
    for index, (stage, filters, blocks) in enumerate(self.stages):
      for b in range(1, blocks + 1):
        x = block(x, filters, index, b, blocks, f"{stage}_block{b}", norm, conv, taps)
        if taps.done:
          return self.tapped(taps)
    if self.preact:
      x = taps("post_relu", nn.relu(norm(name="post_bn")(x)))
      if taps.done:
        return self.tapped(taps)
    x = classifier_top(self, x)
    return self.outputs(x, taps, return_features)

  @staticmethod
  def _block_v1(x, filters, stage_index, block, blocks, name, norm, conv, taps: Taps):
    """Keras's `residual_block_v1`; layers are made in Keras's topological order (shortcut conv after `_2`)."""
    del blocks
    first = block == 1
    stride = 2 if first and stage_index > 0 else 1
    shortcut = x
    y = conv(filters, (1, 1), strides=(stride, stride), padding="VALID", name=f"{name}_1_conv")(x)
    y = nn.relu(norm(name=f"{name}_1_bn")(y))
    y = conv(filters, (3, 3), padding="SAME", name=f"{name}_2_conv")(y)
    y = nn.relu(norm(name=f"{name}_2_bn")(y))
    if first:
      shortcut = conv(4 * filters, (1, 1), strides=(stride, stride), padding="VALID", name=f"{name}_0_conv")(x)
    y = conv(4 * filters, (1, 1), padding="VALID", name=f"{name}_3_conv")(y)
    if first:
      shortcut = norm(name=f"{name}_0_bn")(shortcut)
    y = norm(name=f"{name}_3_bn")(y)
    return taps(f"{name}_out", nn.relu(shortcut + y))

  @staticmethod
  def _block_v2(x, filters, stage_index, block, blocks, name, norm, conv, taps: Taps):
    """Keras's `residual_block_v2`: the stride is on the last block of a stage (but conv5's)."""
    stride = 2 if block == blocks and stage_index < 3 else 1
    preact = taps(f"{name}_preact_relu", nn.relu(norm(name=f"{name}_preact_bn")(x)))
    if taps.done:
      return preact
    y = conv(filters, (1, 1), use_bias=False, name=f"{name}_1_conv")(preact)
    y = taps(f"{name}_1_relu", nn.relu(norm(name=f"{name}_1_bn")(y)))
    if taps.done:
      return y
    y = jnp.pad(y, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = conv(filters, (3, 3), strides=(stride, stride), padding="VALID", use_bias=False, name=f"{name}_2_conv")(y)
    y = taps(f"{name}_2_relu", nn.relu(norm(name=f"{name}_2_bn")(y)))
    if taps.done:
      return y
    if block == 1:
      shortcut = conv(4 * filters, (1, 1), strides=(stride, stride), padding="VALID", name=f"{name}_0_conv")(preact)
    else:
      shortcut = x[:, ::stride, ::stride] if stride > 1 else x  # Keras's MaxPooling2D(1, strides=stride)
    y = conv(4 * filters, (1, 1), padding="VALID", name=f"{name}_3_conv")(y)
    return taps(f"{name}_out", shortcut + y)


class ResNet50(ResNet):
  """ResNet50 v1, the numerical twin of `keras.applications.ResNet50`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = ResNet50(include_top=False, pooling="avg")
    >>> x = jnp.zeros((1, 64, 64, 3))
    >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
    >>> jax.eval_shape(model.apply, variables, x).shape
    (1, 2048)
  """

  stages: ClassVar[tuple[tuple[str, int, int], ...]] = RESNET50_STAGES
  preact: ClassVar[bool] = False
  features: ClassVar[tuple[str, ...]] = _v1_features(RESNET50_STAGES)


class ResNet101(ResNet):
  """ResNet101 v1: ResNet50 with 23 blocks in conv4."""

  stages: ClassVar[tuple[tuple[str, int, int], ...]] = RESNET101_STAGES
  preact: ClassVar[bool] = False
  features: ClassVar[tuple[str, ...]] = _v1_features(RESNET101_STAGES)


class ResNet152(ResNet):
  """ResNet152 v1: 8 blocks in conv3, 36 in conv4."""

  stages: ClassVar[tuple[tuple[str, int, int], ...]] = RESNET152_STAGES
  preact: ClassVar[bool] = False
  features: ClassVar[tuple[str, ...]] = _v1_features(RESNET152_STAGES)


class ResNet50V2(ResNet):
  """ResNet50V2, the numerical twin of `keras.applications.ResNet50V2` (pre-activation)."""

  stages: ClassVar[tuple[tuple[str, int, int], ...]] = RESNET50_STAGES
  preact: ClassVar[bool] = True
  features: ClassVar[tuple[str, ...]] = _v2_features(RESNET50_STAGES)


class ResNet101V2(ResNet):
  """ResNet101V2: ResNet50V2 with 23 blocks in conv4."""

  stages: ClassVar[tuple[tuple[str, int, int], ...]] = RESNET101_STAGES
  preact: ClassVar[bool] = True
  features: ClassVar[tuple[str, ...]] = _v2_features(RESNET101_STAGES)


class ResNet152V2(ResNet):
  """ResNet152V2: 8 blocks in conv3, 36 in conv4."""

  stages: ClassVar[tuple[tuple[str, int, int], ...]] = RESNET152_STAGES
  preact: ClassVar[bool] = True
  features: ClassVar[tuple[str, ...]] = _v2_features(RESNET152_STAGES)


RESNET50_FEATURES = ResNet50.features


def _record(module, stem, top_md5, no_top_md5, top1):
  files = top_and_no_top("resnet", f"{stem}_weights_tf_dim_ordering_tf_kernels", top_md5, no_top_md5)
  return BackboneRecord(module, 224, "tf" if module.preact else "caffe", files, unet_taps=module.features, top1=top1)


RECORDS = (
    _record(ResNet50, "resnet50", "2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626", 0.749),
    _record(ResNet101, "resnet101", "f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21", 0.764),
    _record(ResNet152, "resnet152", "100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c", 0.766),
    _record(ResNet50V2, "resnet50v2", "3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917", 0.76),
    _record(ResNet101V2, "resnet101v2", "6343647c601c52e1368623803854d971", "c0ed64b8031c3730f411d2eb4eea35b5", 0.772),
    _record(ResNet152V2, "resnet152v2", "a49b44d1979771252814e80f8ec446f9", "ed17cf2e0169df9d443503ef94b23b33", 0.78),
)
