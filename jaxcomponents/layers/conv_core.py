"""Convolution layers with Keras's weight names, layouts, initialisers and padding arithmetic.

These are the weighted leaves of `Convolution` and of the backbones:
`ConvTranspose` (kernel `k + (filters, in)`), `DepthwiseConv`
(`depthwise_kernel` `k + (in, depth_multiplier)`) and `SeparableConv`
(`depthwise_kernel`, `pointwise_kernel`, `bias`). Plain convolutions are
`flax.linen.Conv`, whose `kernel` and `bias` already have Keras's layout.
Inputs are channels-last with any number (1-3) of spatial axes.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Pairs = Sequence[tuple[int, int]]

glorot_uniform = nn.initializers.glorot_uniform()
zeros = nn.initializers.zeros


def padding_pairs(padding: str, kernel_size: Sequence[int], dilation: Sequence[int]) -> str | list[tuple[int, int]]:
  """'SAME'/'VALID' pass through (XLA's SAME is TensorFlow's); 'CAUSAL' pads (k - 1) * d on the left."""
  if padding == "CAUSAL":
    return [((k - 1) * d, 0) for k, d in zip(kernel_size, dilation)]
  return padding


def conv_transpose_padding(kernel_size: int, stride: int, dilation: int, padding: str,
                           output_padding: int | None) -> tuple[int, int]:
  """Padding of the stride-dilated input that gives Keras's transposed-convolution output.

  Keras's output length: SAME `n * s` and VALID `(n - 1) * s + max(k, s)` without
  `output_padding`; with it, `(n - 1) * s + k - 2 * pad + output_padding`
  (pad = k // 2 for SAME, 0 for VALID), k the dilated kernel size.
  """
  k = (kernel_size - 1) * dilation + 1
  if padding == "VALID":
    extra = max(k, stride) - k if output_padding is None else output_padding
    return k - 1, k - 1 + extra
  total = stride + k - 2 if output_padding is None else k + k % 2 - 2 + output_padding
  left = min(total - total // 2, k - 1)
  return left, total - left


def _dimension_numbers(rank: int):
  spatial = "DHW"[-rank:] if rank <= 3 else None
  return lax.conv_dimension_numbers((1,) * (rank + 2), (1,) * (rank + 2),
                                    (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"))


class ConvTranspose(nn.Module):
  """Keras's `Conv{1,2,3}DTranspose`: `kernel` of shape `k + (filters, in)`, `bias` `(filters,)`."""

  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int]
  padding: str = "VALID"
  dilation: Sequence[int] | None = None
  output_padding: Sequence[int] | None = None
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    rank = len(self.kernel_size)
    dilation = tuple(self.dilation or (1,) * rank)
    out_pad = self.output_padding or (None,) * rank
    kernel = self.param("kernel", glorot_uniform, (*self.kernel_size, self.features, x.shape[-1]))
    pads = [conv_transpose_padding(k, s, d, self.padding, p)
            for k, s, d, p in zip(self.kernel_size, self.strides, dilation, out_pad)]
    y = lax.conv_transpose(x, kernel.astype(x.dtype), tuple(self.strides), pads, rhs_dilation=dilation,
                           dimension_numbers=_dimension_numbers(rank), transpose_kernel=True)
    if self.use_bias:
      y = y + self.param("bias", zeros, (self.features,)).astype(y.dtype)
    return y


def _depthwise(x, depthwise_kernel, strides, padding, dilation):
  """Each input channel convolved with its own `depth_multiplier` filters (channel-major outputs)."""
  rank = depthwise_kernel.ndim - 2
  channels, multiplier = depthwise_kernel.shape[-2:]
  kernel = depthwise_kernel.reshape((*depthwise_kernel.shape[:-2], 1, channels * multiplier))
  return lax.conv_general_dilated(x, kernel.astype(x.dtype), tuple(strides), padding_pairs(padding, kernel.shape[:-2],
                                  dilation), rhs_dilation=tuple(dilation), dimension_numbers=_dimension_numbers(rank),
                                  feature_group_count=channels)


class DepthwiseConv(nn.Module):
  """Keras's `DepthwiseConv{1,2}D` (and a 3-D extension): `depthwise_kernel` `k + (in, depth_multiplier)`."""

  kernel_size: Sequence[int]
  strides: Sequence[int]
  padding: str = "VALID"
  dilation: Sequence[int] | None = None
  depth_multiplier: int = 1
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    dilation = tuple(self.dilation or (1,) * len(self.kernel_size))
    channels = x.shape[-1]
    kernel = self.param("depthwise_kernel", glorot_uniform, (*self.kernel_size, channels, self.depth_multiplier))
    y = _depthwise(x, kernel, self.strides, self.padding, dilation)
    if self.use_bias:
      y = y + self.param("bias", zeros, (channels * self.depth_multiplier,)).astype(y.dtype)
    return y


class SeparableConv(nn.Module):
  """Keras's `SeparableConv{1,2}D` (and a 3-D extension): depthwise, then a 1x1 pointwise convolution."""

  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int]
  padding: str = "VALID"
  dilation: Sequence[int] | None = None
  depth_multiplier: int = 1
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    rank = len(self.kernel_size)
    dilation = tuple(self.dilation or (1,) * rank)
    channels = x.shape[-1]
    depthwise = self.param("depthwise_kernel", glorot_uniform, (*self.kernel_size, channels, self.depth_multiplier))
    pointwise = self.param("pointwise_kernel", glorot_uniform,
                           ((1,) * rank + (channels * self.depth_multiplier, self.features)))
    y = _depthwise(x, depthwise, self.strides, self.padding, dilation)
    y = lax.conv_general_dilated(y, pointwise.astype(y.dtype), (1,) * rank, "VALID",
                                 dimension_numbers=_dimension_numbers(rank))
    if self.use_bias:
      y = y + self.param("bias", zeros, (self.features,)).astype(y.dtype)
    return y
