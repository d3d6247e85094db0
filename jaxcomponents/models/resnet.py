"""ResNet50 v1, the numerical twin of `keras.applications.ResNet50` (not Flax's v1.5)."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.layers.conv_core import Conv
from jaxcomponents.layers.normalization import BatchNorm
from jaxcomponents.layers.pooling import max_pool
from jaxcomponents.models.common import Backbone, batch_norm_mode, classifier_top

RESNET50_STAGES = (("conv2", 64, 3, 1), ("conv3", 128, 4, 2), ("conv4", 256, 6, 2), ("conv5", 512, 3, 2))
RESNET50_FEATURES = ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out")
RESNET_BN_EPSILON = 1.001e-5


class ResNet50(Backbone):
  """ResNet50 v1 as Keras builds it: 7x7/2 stem conv with bias, stride on the first 1x1 of each stage.

  Layer names are Keras's (`conv1_conv`, `conv2_block1_1_conv`, `..._bn`,
  `..._0_conv` for shortcuts, `predictions`); layers are created in Keras's
  topological order, so Keras weight files load and export in order too.

  Takes the arguments of `Backbone` (Keras's, and `dtype`, `param_dtype`, `precision`), called as
  `model(x, train, return_features)`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = ResNet50(include_top=False, pooling="avg")
    >>> x = jnp.zeros((1, 64, 64, 3))
    >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
    >>> jax.eval_shape(model.apply, variables, x).shape
    (1, 2048)
  """

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, return_features: bool = False) -> Any:
    self.check_input(x)
    norm = functools.partial(BatchNorm, use_running_average=batch_norm_mode(self, train), epsilon=RESNET_BN_EPSILON,
                             **self.dtype_options)
    conv = functools.partial(Conv, **self.precision_options)
    features = {}
    x = jnp.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)))
    x = conv(64, (7, 7), strides=(2, 2), padding="VALID", name="conv1_conv")(x)
    x = nn.relu(norm(name="conv1_bn")(x))
    features["conv1_relu"] = x
    x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    x = max_pool(x, 3, 2)
    for stage, filters, blocks, stride in RESNET50_STAGES:
      for block in range(1, blocks + 1):
        name = f"{stage}_block{block}"
        x = self._block(x, filters, stride if block == 1 else 1, block == 1, name, norm, conv)
        if f"{name}_out" in RESNET50_FEATURES:
          features[f"{name}_out"] = x
    x = classifier_top(self, x)
    return self.outputs(x, features, return_features)

  @staticmethod
  def _block(x, filters, stride, conv_shortcut, name, norm, conv=Conv):
    """Keras's `residual_block_v1`; calls follow Keras's topological order (shortcut conv after `_2`).

    `norm` and `conv` make the batch-norm and convolution layers (with the model's precision fields).
    """
    shortcut = x
    y = conv(filters, (1, 1), strides=(stride, stride), padding="VALID", name=f"{name}_1_conv")(x)
    y = nn.relu(norm(name=f"{name}_1_bn")(y))
    y = conv(filters, (3, 3), padding="SAME", name=f"{name}_2_conv")(y)
    y = nn.relu(norm(name=f"{name}_2_bn")(y))
    if conv_shortcut:
      shortcut = conv(4 * filters, (1, 1), strides=(stride, stride), padding="VALID", name=f"{name}_0_conv")(x)
    y = conv(4 * filters, (1, 1), padding="VALID", name=f"{name}_3_conv")(y)
    if conv_shortcut:
      shortcut = norm(name=f"{name}_0_bn")(shortcut)
    y = norm(name=f"{name}_3_bn")(y)
    return nn.relu(shortcut + y)
