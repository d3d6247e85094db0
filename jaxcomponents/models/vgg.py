"""VGG16, the numerical twin of `keras.applications.VGG16`."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from jaxcomponents import activations
from jaxcomponents.layers.conv_core import ConvReLU
from jaxcomponents.layers.pooling import max_pool
from jaxcomponents.models.common import Backbone, global_pool

# (block, convolutions, filters)
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
VGG16_FEATURES = tuple(f"block{b}_conv{n}" for b, n, _ in VGG16_BLOCKS)


class VGG16(Backbone):
  """VGG16 with Keras's layer names (`block1_conv1` ... `fc1`, `fc2`, `predictions`).

  Takes the arguments of `Backbone` (Keras's, and `dtype`, `param_dtype`, `precision`); the top is
  Flatten -> fc1 -> fc2 -> predictions.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = VGG16(include_top=False, pooling="avg")
    >>> x = jnp.zeros((1, 32, 32, 3))
    >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
    >>> jax.eval_shape(model.apply, variables, x).shape
    (1, 512)
  """

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, return_features: bool = False) -> Any:
    self.check_input(x)
    options = self.precision_options
    features = {}
    for block, convs, filters in VGG16_BLOCKS:
      for i in range(1, convs + 1):
        name = f"block{block}_conv{i}"
        x = ConvReLU(filters, (3, 3), (1, 1), "SAME", name=name, **options)(x)
        if name in VGG16_FEATURES:
          features[name] = x
      x = max_pool(x, 2)
    if self.include_top:
      x = x.reshape((x.shape[0], -1))
      x = nn.relu(nn.Dense(4096, name="fc1", **options)(x))
      x = nn.relu(nn.Dense(4096, name="fc2", **options)(x))
      x = nn.Dense(self.classes, name="predictions", **options)(x)
      x = activations.get(self.classifier_activation, "classifier_activation")(x)
    else:
      x = global_pool(x, self.pooling)
    return self.outputs(x, features, return_features)
