"""Convolution layers with Keras's weight names, layouts, initialisers and padding arithmetic.

These are the weighted leaves of `Convolution` and of the backbones:
`ConvTranspose` (kernel `k + (filters, in)`), `DepthwiseConv`
(`depthwise_kernel` `k + (in, depth_multiplier)`) and `SeparableConv`
(`depthwise_kernel`, `pointwise_kernel`, `bias`). Plain convolutions are
`Conv`, a `flax.linen.Conv` (whose `kernel` and `bias` already have Keras's
layout) computed by `jaxcomponents.ops.conv.conv_general_dilated`. These
modules hold the parameters; the numerics, with their CPU formulations, are
`jaxcomponents.ops.conv`. Inputs are channels-last with 1 to 3 spatial axes.

Their fields have `flax.linen.Conv`'s names (`features`, `kernel_size`,
`strides`, `padding`, `kernel_dilation`; `dilation` is a deprecated alias of
`kernel_dilation` for one release), and each takes `flax.linen.Conv`'s
precision fields (`Conv` is one): `dtype`, the computation dtype (None:
inferred from the inputs and parameters, as Flax does), `param_dtype`
(float32) and `precision` of the convolutions (None: JAX's default); see
`jaxcomponents.layers.precision`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents import initializers
from jaxcomponents.deprecation import renamed_to
from jaxcomponents.errors import as_tuple, check_positive_int, is_int
from jaxcomponents.layers.init_fields import KernelInitFields
from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.ops import conv

glorot_uniform = initializers.glorot_uniform()


def _padding_pairs(padding: Any, rank: int) -> bool:
  """Whether `padding` is `rank` explicit `(low, high)` pairs of non-negative integers."""
  return (isinstance(padding, Sequence) and not isinstance(padding, str) and len(padding) == rank
          and all(isinstance(p, Sequence) and len(p) == 2 and all(is_int(v) and v >= 0 for v in p) for p in padding))


class Geometry(NamedTuple):
  """A leaf's window arguments, checked against its input: one int per spatial axis, padding in upper case."""
  kernel_size: tuple[int, ...]
  strides: tuple[int, ...]
  padding: str
  dilation: tuple[int, ...]


def geometry(module: nn.Module, x: jax.Array, *, causal: bool = False) -> Geometry:
  """`module`'s `kernel_size`, `strides`, `padding` and `kernel_dilation` for the input `x`, as Keras takes them:
  an int stands for every spatial axis, padding is `'same'` or `'valid'` in any case (`'causal'` too where
  `causal` and `x` has one spatial axis; there, as in `flax.linen.Conv`, also explicit `(low, high)` pairs, one
  per axis); anything else raises a `ValueError` naming the field."""
  rank = x.ndim - 2
  if rank not in (1, 2, 3):
    raise ValueError(f"x has shape {x.shape}; {type(module).__name__} takes (batch, *spatial, channels) with 1 to 3 "
                     "spatial axes.")
  kernel_size = as_tuple("kernel_size", module.kernel_size, rank)
  strides = as_tuple("strides", module.strides, rank)
  dilation = as_tuple("kernel_dilation", module.kernel_dilation or 1, rank)
  allowed = ("SAME", "VALID", "CAUSAL") if causal and rank == 1 else ("SAME", "VALID")
  padding = module.padding.upper() if isinstance(module.padding, str) else module.padding
  if causal and _padding_pairs(padding, rank):
    return Geometry(kernel_size, strides, tuple(tuple(int(v) for v in pair) for pair in padding), dilation)
  if padding not in allowed:
    raise ValueError(f"padding={module.padding!r} is not allowed for {type(module).__name__} on {rank} spatial "
                     f"axes; expected one of {', '.join(map(repr, allowed))} (any case).")
  return Geometry(kernel_size, strides, padding, dilation)


class ConvTranspose(PrecisionFields, KernelInitFields):
  """Keras's `Conv{1,2,3}DTranspose`: `kernel` of shape `k + (filters, in)`, `bias` `(filters,)`.

  `relu=True` applies ReLU after the bias (inside oneDNN's call where it computes the convolution).
  """

  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int]
  padding: str = "VALID"
  kernel_dilation: Sequence[int] | None = None
  output_padding: Sequence[int] | None = None
  use_bias: bool = True
  relu: bool = False
  dilation: Sequence[int] | None = renamed_to("kernel_dilation")

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = check_positive_int("features", self.features)
    kernel_size, strides, padding, dilation = geometry(self, x)
    if max(strides) > 1 and max(dilation) > 1:
      raise ValueError(f"strides={self.strides!r} with kernel_dilation={self.kernel_dilation!r} is not allowed; "
                       "like Keras, a transposed convolution takes strides > 1 or dilation > 1, not both.")
    out_pad = (None,) * len(strides)
    if self.output_padding is not None:
      out_pad = as_tuple("output_padding", self.output_padding, len(strides), allow_zero=True)
      if any(p >= s for p, s in zip(out_pad, strides)):
        raise ValueError(f"output_padding={self.output_padding!r} is not allowed with strides={self.strides!r}; "
                         "each value must be smaller than its stride, as Keras requires.")
    kernel = self.init_param("kernel", "kernel_init", (*kernel_size, features, x.shape[-1]))
    pads = tuple(conv.conv_transpose_padding(k, s, d, padding, p)
                 for k, s, d, p in zip(kernel_size, strides, dilation, out_pad))
    bias = self.init_param("bias", "bias_init", (features,)) if self.use_bias else None
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    return conv.conv_transpose(x, kernel, strides, pads, dilation, bias, self.relu, precision=self.precision)


class Conv(nn.Conv):
  """`flax.linen.Conv` computed by `conv_general_dilated` (same parameters, names and numbers), its kernel
  initialised as Keras's `Conv2D` initialises it (`glorot_uniform`; Flax's default is `lecun_normal`).
  `kernel_init` and `bias_init` take what the other convolutions take: a Keras name, config or initializer
  object, or a Flax initializer.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = Conv(8, (3, 3), padding="SAME")
    >>> x = jnp.ones((1, 2, 2, 4))
    >>> layer.apply(layer.init(jax.random.key(0), x), x).shape
    (1, 2, 2, 8)
  """

  kernel_init: Any = glorot_uniform
  conv_general_dilated: Any = conv.conv_general_dilated

  def __call__(self, inputs: jax.Array) -> jax.Array:
    check_positive_int("features", self.features)
    kernel_size = (self.kernel_size,) if isinstance(self.kernel_size, int) else self.kernel_size
    as_tuple("kernel_size", kernel_size, len(kernel_size))
    if self.strides is not None:
      as_tuple("strides", self.strides, len(kernel_size))
    return super().__call__(inputs)

  def param(self, name: str, init_fn: Any, *args: Any, **kwargs: Any) -> Any:
    if name in ("kernel", "bias"):  # Flax's Conv hands its fields over as they are; they may be Keras names here
      init_fn = initializers.get(init_fn, f"{name}_init")
    return super().param(name, init_fn, *args, **kwargs)


class ConvReLU(PrecisionFields, KernelInitFields):
  """`relu(Conv(x))` with `Conv`'s parameters (`kernel`, `bias`), computed by `conv_bias_relu`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = ConvReLU(8, (3, 3), (1, 1), "VALID")
    >>> x = jnp.ones((1, 5, 5, 4))
    >>> y = layer.apply(layer.init(jax.random.key(0), x), x)
    >>> y.shape, bool(y.min() >= 0)
    ((1, 3, 3, 8), True)
  """

  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int]
  padding: str = "VALID"
  kernel_dilation: Sequence[int] | None = None
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = check_positive_int("features", self.features)
    kernel_size, strides, padding, dilation = geometry(self, x, causal=True)
    kernel = self.init_param("kernel", "kernel_init", (*kernel_size, x.shape[-1], features))
    bias = (self.init_param("bias", "bias_init", (features,)) if self.use_bias
            else jnp.zeros((features,), self.param_dtype))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    return conv.conv_bias_relu(x, kernel, bias, strides, conv.padding_pairs(padding, kernel_size, dilation), dilation,
                               precision=self.precision)


class DepthwiseConv(PrecisionFields, KernelInitFields):
  """Keras's `DepthwiseConv{1,2}D` (and a 3-D extension): `depthwise_kernel` `k + (in, depth_multiplier)`."""

  kernel_size: Sequence[int]
  strides: Sequence[int]
  padding: str = "VALID"
  kernel_dilation: Sequence[int] | None = None
  depth_multiplier: int = 1
  use_bias: bool = True
  dilation: Sequence[int] | None = renamed_to("kernel_dilation")

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel_size, strides, padding, dilation = geometry(self, x, causal=True)
    multiplier = check_positive_int("depth_multiplier", self.depth_multiplier)
    channels = x.shape[-1]
    kernel = self.init_param("depthwise_kernel", "kernel_init", (*kernel_size, channels, multiplier))
    bias = self.init_param("bias", "bias_init", (channels * multiplier,)) if self.use_bias else None
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = conv.depthwise(x, kernel, strides, padding, dilation, precision=self.precision)
    return y if bias is None else y + bias


class SeparableConv(PrecisionFields, KernelInitFields):
  """Keras's `SeparableConv{1,2}D` (and a 3-D extension): depthwise, then a 1x1 pointwise convolution."""

  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int]
  padding: str = "VALID"
  kernel_dilation: Sequence[int] | None = None
  depth_multiplier: int = 1
  use_bias: bool = True
  dilation: Sequence[int] | None = renamed_to("kernel_dilation")

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = check_positive_int("features", self.features)
    kernel_size, strides, padding, dilation = geometry(self, x, causal=True)
    multiplier = check_positive_int("depth_multiplier", self.depth_multiplier)
    rank = len(kernel_size)
    channels = x.shape[-1]
    depthwise = self.init_param("depthwise_kernel", "kernel_init", (*kernel_size, channels, multiplier))
    pointwise = self.init_param("pointwise_kernel", "kernel_init", (1,) * rank + (channels * multiplier, features))
    bias = self.init_param("bias", "bias_init", (features,)) if self.use_bias else None
    x, depthwise, pointwise, bias = nn.dtypes.promote_dtype(x, depthwise, pointwise, bias, dtype=self.dtype)
    y = conv.depthwise(x, depthwise, strides, padding, dilation, precision=self.precision)
    y = conv.conv_general_dilated(y, pointwise, (1,) * rank, "VALID", dimension_numbers=conv.channels_last(rank),
                                  precision=self.precision)
    return y if bias is None else y + bias
