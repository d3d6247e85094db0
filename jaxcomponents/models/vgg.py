"""VGG16 and VGG19, the numerical twins of `keras.applications.VGG16` and `VGG19`."""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax

from jaxcomponents.deprecation import keyword_only
from jaxcomponents.layers.conv_core import ConvReLU, glorot_uniform
from jaxcomponents.layers.pooling import max_pool
from jaxcomponents.models.common import Backbone, BackboneRecord, global_pool, predictions, top_and_no_top

# (block, convolutions, filters)
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
VGG19_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))


def _last_convs(blocks) -> tuple[str, ...]:
  return tuple(f"block{b}_conv{n}" for b, n, _ in blocks)


class VGG(Backbone):
  """VGG as Keras builds it: blocks of 3x3 'same' convolutions with ReLU, each followed by a 2x2 max pool.

  Layer names are Keras's (`block1_conv1` ... `fc1`, `fc2`, `predictions`). Use
  `VGG16` or `VGG19`; a subclass sets `blocks`, `(block, convolutions, filters)`.
  Takes the arguments of `Backbone` (Keras's, and `dtype`, `param_dtype`,
  `precision`); the top is Flatten -> fc1 -> fc2 -> predictions. Tap points:
  every `block{b}_conv{i}` and `block{b}_pool`.
  """

  blocks: ClassVar[tuple[tuple[int, int, int], ...]] = VGG16_BLOCKS

  @nn.compact
  @keyword_only("train", "return_features")
  def __call__(self, x: jax.Array, *, train: bool = False, return_features: bool = False) -> Any:
    self.check_input(x)
    taps = self.start_taps()
    options = self.precision_options
    for block, convs, filters in self.blocks:
      for i in range(1, convs + 1):
        name = f"block{block}_conv{i}"
        x = taps(name, ConvReLU(filters, (3, 3), (1, 1), "SAME", name=name, **options)(x))
        if taps.done:
          return self.tapped(taps)
      x = taps(f"block{block}_pool", max_pool(x, 2))
      if taps.done:
        return self.tapped(taps)
    if self.include_top:
      x = x.reshape((x.shape[0], -1))
      x = nn.relu(nn.Dense(4096, kernel_init=glorot_uniform, name="fc1", **options)(x))
      x = nn.relu(nn.Dense(4096, kernel_init=glorot_uniform, name="fc2", **options)(x))
      x = predictions(self, x)
    else:
      x = global_pool(x, self.pooling)
    return self.outputs(x, taps, return_features)


class VGG16(VGG):
  """VGG16 with Keras's layer names (`block1_conv1` ... `fc1`, `fc2`, `predictions`).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = VGG16(include_top=False, pooling="avg")
    >>> x = jnp.zeros((1, 32, 32, 3))
    >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
    >>> jax.eval_shape(model.apply, variables, x).shape
    (1, 512)
  """

  blocks: ClassVar[tuple[tuple[int, int, int], ...]] = VGG16_BLOCKS
  features: ClassVar[tuple[str, ...]] = _last_convs(VGG16_BLOCKS)


class VGG19(VGG):
  """VGG19 with Keras's layer names: VGG16 with four convolutions in blocks 3, 4 and 5.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = VGG19(include_top=False, taps=("block1_conv2", "block2_conv2"))
    >>> x = jnp.zeros((1, 32, 32, 3))
    >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
    >>> [t.shape for t in jax.eval_shape(model.apply, variables, x)]
    [(1, 32, 32, 64), (1, 16, 16, 128)]
  """

  blocks: ClassVar[tuple[tuple[int, int, int], ...]] = VGG19_BLOCKS
  features: ClassVar[tuple[str, ...]] = _last_convs(VGG19_BLOCKS)


VGG16_FEATURES = VGG16.features
RECORDS = (
    BackboneRecord(VGG16, 224, "caffe", top_and_no_top(
        "vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels", "64373286793e3c8b2b4e3219cbf3544b",
        "6d6bbae143d832006294945121d1f1fc"), unet_taps=VGG16.features, top1=0.713, full_resolution_first_tap=True),
    BackboneRecord(VGG19, 224, "caffe", top_and_no_top(
        "vgg19", "vgg19_weights_tf_dim_ordering_tf_kernels", "cbe5617147190e668d6c5d5026f83318",
        "253f8cb515780f3b799900260a226db6"), unet_taps=VGG19.features, top1=0.713, full_resolution_first_tap=True),
)
