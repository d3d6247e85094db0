"""InceptionV3, the numerical twin of `keras.applications.InceptionV3`."""

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
from jaxcomponents.models.common import Backbone, BackboneRecord, batch_norm_mode, classifier_top, top_and_no_top
from jaxcomponents.models.graph import LayerGraph

INCEPTION_V3_FEATURES = ("activation", "activation_1", "activation_2", "activation_3", "activation_4",
                         *(f"mixed{i}" for i in range(11)))


def _numbered(base: str, index: int) -> str:
  """Keras's automatic layer names in a fresh session: conv2d, conv2d_1, conv2d_2, ..."""
  return base if index == 0 else f"{base}_{index}"


class _Builder:
  """Writes InceptionV3 into a `LayerGraph`, numbering layers in Keras's creation order."""

  def __init__(self, norm, conv=Conv):
    """`norm` and `conv` make the batch-norm and convolution layers (with the model's precision fields)."""
    self.graph, self.norm, self.conv, self.count, self.named = LayerGraph(), norm, conv, 0, {}

  def conv_bn(self, x, filters, rows, cols, padding="SAME", strides=(1, 1)):
    """Keras's `conv2d_bn`: Conv2D without bias -> BatchNormalization(scale=False) -> ReLU."""
    k, self.count = self.count, self.count + 1
    conv = self.conv(filters, (rows, cols), strides=strides, padding=padding, use_bias=False,
                     name=_numbered("conv2d", k))
    norm = self.norm(use_scale=False, name=_numbered("batch_normalization", k))
    y = self.graph.add(conv, x)
    y = self.graph.add(norm, y)
    y = self.graph.add(nn.relu, y)
    self.named[_numbered("activation", k)] = y
    return y

  def avg_pool(self, x):
    return self.graph.add(lambda v: nn.avg_pool(v, (3, 3), (1, 1), padding="SAME", count_include_pad=False), x)

  def max_pool(self, x):
    return self.graph.add(lambda v: max_pool(v, 3, 2), x)

  def concat(self, name, *branches):
    node = self.graph.add(lambda *vs: jnp.concatenate(vs, axis=-1), *branches)
    if name:
      self.named[name] = node
    return node


def _inception_v3(b: _Builder) -> int:
  """The InceptionV3 graph, block by block as Keras writes it; returns the output node."""
  x = b.conv_bn(b.graph.input, 32, 3, 3, strides=(2, 2), padding="VALID")
  x = b.conv_bn(x, 32, 3, 3, padding="VALID")
  x = b.conv_bn(x, 64, 3, 3)
  x = b.max_pool(x)
  x = b.conv_bn(x, 80, 1, 1, padding="VALID")
  x = b.conv_bn(x, 192, 3, 3, padding="VALID")
  x = b.max_pool(x)
  for i, pool_filters in enumerate((32, 64, 64)):  # mixed0-2: 35 x 35
    branch1x1 = b.conv_bn(x, 64, 1, 1)
    branch5x5 = b.conv_bn(b.conv_bn(x, 48, 1, 1), 64, 5, 5)
    branch3x3dbl = b.conv_bn(b.conv_bn(b.conv_bn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3)
    branch_pool = b.conv_bn(b.avg_pool(x), pool_filters, 1, 1)
    x = b.concat(f"mixed{i}", branch1x1, branch5x5, branch3x3dbl, branch_pool)
  branch3x3 = b.conv_bn(x, 384, 3, 3, strides=(2, 2), padding="VALID")  # mixed3: 17 x 17
  branch3x3dbl = b.conv_bn(b.conv_bn(x, 64, 1, 1), 96, 3, 3)
  branch3x3dbl = b.conv_bn(branch3x3dbl, 96, 3, 3, strides=(2, 2), padding="VALID")
  x = b.concat("mixed3", branch3x3, branch3x3dbl, b.max_pool(x))
  for i, width in enumerate((128, 160, 160, 192)):  # mixed4-7
    branch1x1 = b.conv_bn(x, 192, 1, 1)
    branch7x7 = b.conv_bn(b.conv_bn(b.conv_bn(x, width, 1, 1), width, 1, 7), 192, 7, 1)
    branch7x7dbl = b.conv_bn(x, width, 1, 1)
    for filters, rows, cols in ((width, 7, 1), (width, 1, 7), (width, 7, 1), (192, 1, 7)):
      branch7x7dbl = b.conv_bn(branch7x7dbl, filters, rows, cols)
    branch_pool = b.conv_bn(b.avg_pool(x), 192, 1, 1)
    x = b.concat(f"mixed{4 + i}", branch1x1, branch7x7, branch7x7dbl, branch_pool)
  branch3x3 = b.conv_bn(b.conv_bn(x, 192, 1, 1), 320, 3, 3, strides=(2, 2), padding="VALID")  # mixed8: 8 x 8
  branch7x7x3 = b.conv_bn(b.conv_bn(b.conv_bn(x, 192, 1, 1), 192, 1, 7), 192, 7, 1)
  branch7x7x3 = b.conv_bn(branch7x7x3, 192, 3, 3, strides=(2, 2), padding="VALID")
  x = b.concat("mixed8", branch3x3, branch7x7x3, b.max_pool(x))
  for i in range(2):  # mixed9-10
    branch1x1 = b.conv_bn(x, 320, 1, 1)
    branch3x3 = b.conv_bn(x, 384, 1, 1)
    branch3x3 = b.concat(f"mixed9_{i}", b.conv_bn(branch3x3, 384, 1, 3), b.conv_bn(branch3x3, 384, 3, 1))
    branch3x3dbl = b.conv_bn(b.conv_bn(x, 448, 1, 1), 384, 3, 3)
    branch3x3dbl = b.concat(None, b.conv_bn(branch3x3dbl, 384, 1, 3), b.conv_bn(branch3x3dbl, 384, 3, 1))
    branch_pool = b.conv_bn(b.avg_pool(x), 192, 1, 1)
    x = b.concat(f"mixed{9 + i}", branch1x1, branch3x3, branch3x3dbl, branch_pool)
  return x


class InceptionV3(Backbone):
  """InceptionV3 as Keras builds it: conv without bias, batch norm without scale, ReLU.

  Keras names these layers automatically; the Flax layers carry the names a
  fresh Keras session gives (`conv2d`, `conv2d_1`, ..., `batch_normalization_93`,
  `predictions`) and are created in Keras's topological order, so weights
  pair by name, by number (any session, Keras 2 files) or by order.

  Takes the arguments of `Backbone` (Keras's, and `dtype`, `param_dtype`, `precision`), called as
  `model(x, train=..., return_features=...)`. Tap points: every `activation_{k}` (a fresh
  session's numbering), `mixed0` ... `mixed10`, `mixed9_0` and `mixed9_1`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = InceptionV3(include_top=False, pooling="avg")
    >>> x = jnp.zeros((1, 75, 75, 3))
    >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
    >>> jax.eval_shape(model.apply, variables, x).shape
    (1, 2048)
  """

  min_size: ClassVar[int] = 75
  features: ClassVar[tuple[str, ...]] = INCEPTION_V3_FEATURES

  @nn.compact
  @keyword_only("train", "return_features")
  def __call__(self, x: jax.Array, *, train: bool = False, return_features: bool = False) -> Any:
    self.check_input(x)
    taps = self.start_taps()
    builder = _Builder(functools.partial(BatchNorm, use_running_average=batch_norm_mode(self, train),
                                         **self.dtype_options),
                       functools.partial(Conv, **self.precision_options))
    output = _inception_v3(builder)
    if taps.cut:  # only the layers the taps need, as Keras keeps them in a model cut at these outputs
      taps.check_complete(builder.named)
      output = builder.graph.add(lambda *values: values, *(builder.named[name] for name in taps.wanted))
    values = builder.graph.run(x, output)
    for name in taps.wanted:
      taps(name, values[builder.named[name]])
    if taps.cut:
      return self.tapped(taps)
    return self.outputs(classifier_top(self, values[output]), taps, return_features)


RECORDS = (BackboneRecord(InceptionV3, 299, "tf", top_and_no_top(
    "inception_v3", "inception_v3_weights_tf_dim_ordering_tf_kernels", "9a0d58056eeedaa3f26cb7ebd46da564",
    "bcbd6486424b2319ff4ef7d526e38f63"), unet_taps=("activation_2", "activation_4", "mixed2", "mixed7", "mixed10"),
                           unet_taps_source="jaxcomponents", top1=0.779, halving_taps=False),)
