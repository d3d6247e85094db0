"""DenseNet121, 169 and 201, the numerical twins of `keras.applications.DenseNet121`, `169` and `201`."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.deprecation import keyword_only
from jaxcomponents.layers.conv_core import Conv
from jaxcomponents.layers.normalization import BatchNorm
from jaxcomponents.layers.pooling import avg_pool, max_pool
from jaxcomponents.models.common import Backbone, BackboneRecord, batch_norm_mode, classifier_top, top_and_no_top

DENSENET_BN_EPSILON = 1.001e-5
GROWTH_RATE = 32
# The U-Net taps, strides 2 to 32. keras-unet-collection names the first `conv1/relu`, as Keras 2 did.
DENSENET_FEATURES = ("conv1_relu", "pool2_conv", "pool3_conv", "pool4_conv", "relu")


class DenseNet(Backbone):
  """Keras's DenseNet: a 7x7/2 stem, four dense blocks joined by transition blocks (1x1 conv, 2x2 average pool).

  Use `DenseNet121`, `DenseNet169` or `DenseNet201`; a subclass sets `blocks`,
  the conv blocks per dense block. Each conv block is BN-ReLU-1x1 conv (128
  filters)-BN-ReLU-3x3 conv (32 filters), concatenated to its input. Layer
  names are Keras 3's (`conv1_conv`, `conv2_block1_0_bn`, `pool2_conv`, `bn`,
  `predictions`); Keras 2's `conv1/conv` and `conv1/bn` in older files pair
  with them. Tap points: `conv1_relu`, `pool1`, every conv block's `_concat`,
  each transition's `_relu`, `_conv` and `_pool`, and `relu`.
  """

  blocks: ClassVar[tuple[int, int, int, int]] = (6, 12, 24, 16)
  features: ClassVar[tuple[str, ...]] = DENSENET_FEATURES

  @nn.compact
  @keyword_only("train", "return_features")
  def __call__(self, x: jax.Array, *, train: bool = False, return_features: bool = False) -> Any:
    self.check_input(x)
    taps = self.start_taps()
    norm = functools.partial(BatchNorm, use_running_average=batch_norm_mode(self, train), epsilon=DENSENET_BN_EPSILON,
                             **self.dtype_options)
    conv = functools.partial(Conv, use_bias=False, **self.precision_options)
    x = jnp.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)))
    x = conv(64, (7, 7), strides=(2, 2), padding="VALID", name="conv1_conv")(x)
    x = taps("conv1_relu", nn.relu(norm(name="conv1_bn")(x)))
    if taps.done:
      return self.tapped(taps)
    x = taps("pool1", max_pool(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), 3, 2))
    for stage, blocks in enumerate(self.blocks, start=2):
      for block in range(1, blocks + 1):
        name = f"conv{stage}_block{block}"
        y = nn.relu(norm(name=f"{name}_0_bn")(x))
        y = conv(4 * GROWTH_RATE, (1, 1), name=f"{name}_1_conv")(y)
        y = nn.relu(norm(name=f"{name}_1_bn")(y))
        y = conv(GROWTH_RATE, (3, 3), padding="SAME", name=f"{name}_2_conv")(y)
        x = taps(f"{name}_concat", jnp.concatenate([x, y], axis=-1))
        if taps.done:
          return self.tapped(taps)
      if stage == 5:
        break
      name = f"pool{stage}"
      x = taps(f"{name}_relu", nn.relu(norm(name=f"{name}_bn")(x)))
      x = taps(f"{name}_conv", conv(x.shape[-1] // 2, (1, 1), name=f"{name}_conv")(x))
      if taps.done:
        return self.tapped(taps)
      x = taps(f"{name}_pool", avg_pool(x, 2))
    x = taps("relu", nn.relu(norm(name="bn")(x)))
    if taps.done:
      return self.tapped(taps)
    x = classifier_top(self, x)
    return self.outputs(x, taps, return_features)


class DenseNet121(DenseNet):
  """DenseNet121: dense blocks of 6, 12, 24 and 16 conv blocks.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = DenseNet121(include_top=False, pooling="avg")
    >>> x = jnp.zeros((1, 32, 32, 3))
    >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
    >>> jax.eval_shape(model.apply, variables, x).shape
    (1, 1024)
  """

  blocks: ClassVar[tuple[int, int, int, int]] = (6, 12, 24, 16)


class DenseNet169(DenseNet):
  """DenseNet169: dense blocks of 6, 12, 32 and 32 conv blocks."""

  blocks: ClassVar[tuple[int, int, int, int]] = (6, 12, 32, 32)


class DenseNet201(DenseNet):
  """DenseNet201: dense blocks of 6, 12, 48 and 32 conv blocks."""

  blocks: ClassVar[tuple[int, int, int, int]] = (6, 12, 48, 32)


def _record(module, top_hash, no_top_hash, top1):
  stem = f"{module.__name__.lower()}_weights_tf_dim_ordering_tf_kernels"
  return BackboneRecord(module, 224, "torch", top_and_no_top("densenet", stem, top_hash, no_top_hash),
                        unet_taps=DENSENET_FEATURES, top1=top1)


RECORDS = (
    _record(DenseNet121, "9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738", 0.750),
    _record(DenseNet169, "d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b", 0.762),
    _record(DenseNet201, "1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1", 0.773),
)
