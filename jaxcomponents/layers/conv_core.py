"""Convolution layers with Keras's weight names, layouts, initialisers and padding arithmetic.

These are the weighted leaves of `Convolution` and of the backbones:
`ConvTranspose` (kernel `k + (filters, in)`), `DepthwiseConv`
(`depthwise_kernel` `k + (in, depth_multiplier)`) and `SeparableConv`
(`depthwise_kernel`, `pointwise_kernel`, `bias`). Plain convolutions are
`Conv`, a `flax.linen.Conv` (whose `kernel` and `bias` already have Keras's
layout) with the CPU fast path of `conv_general_dilated`. On the CPU each
layer may compute with a faster formulation (`jaxcomponents.fast_cpu`).
Inputs are channels-last with any number (1-3) of spatial axes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxcomponents import fast_cpu, native
from jaxcomponents.layers import onednn_conv, window_taps

Pairs = Sequence[tuple[int, int]]
# Measured on a 2-core CPU: oneDNN wins on the seed CNN's convolutions (128 x 24 x 24 outputs) and loses,
# through per-call overheads, on the small feature maps of ResNet50 or MobileNetV2 at 32 x 32 (batch 8).
ONEDNN_MIN_POSITIONS = 32768

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
    pads = tuple(conv_transpose_padding(k, s, d, self.padding, p)
                 for k, s, d, p in zip(self.kernel_size, self.strides, dilation, out_pad))
    options = dict(strides=tuple(self.strides), pads=pads, dilation=dilation)
    y = fast_cpu.on_cpu(functools.partial(_conv_transpose_upsampled, **options),
                        functools.partial(_conv_transpose_xla, **options), x, kernel.astype(x.dtype))
    if self.use_bias:
      y = y + self.param("bias", zeros, (self.features,)).astype(y.dtype)
    return y


def _conv_transpose_xla(x, kernel, strides, pads, dilation):
  return lax.conv_transpose(x, kernel, strides, pads, rhs_dilation=dilation,
                            dimension_numbers=_dimension_numbers(len(strides)), transpose_kernel=True)


def _conv_transpose_upsampled(x, kernel, strides, pads, dilation):
  """The transposed convolution as XLA defines it, with the zeros between inputs written out.

  XLA:CPU has no fast kernel for input-dilated convolutions (their gradients
  above all); after `lax.pad` inserts the zeros it is a plain stride-1
  convolution with the flipped, transposed kernel: the same sums, a forward
  pass as fast and a backward pass 6x faster on CPU (benchmarks/fast_cpu.md).
  """
  rank = len(strides)
  upsampled = lax.pad(x, jnp.array(0, x.dtype), [(0, 0, 0), *[(lo, hi, s - 1) for (lo, hi), s in zip(pads, strides)],
                                                  (0, 0, 0)])
  flipped = jnp.swapaxes(kernel[(slice(None, None, -1),) * rank], -1, -2)
  return conv_general_dilated(upsampled, flipped, (1,) * rank, "VALID", rhs_dilation=dilation,
                              dimension_numbers=_dimension_numbers(rank))


def _depthwise(x, depthwise_kernel, strides, padding, dilation):
  """Each input channel convolved with its own `depth_multiplier` filters (channel-major outputs)."""
  channels, multiplier = depthwise_kernel.shape[-2:]
  kernel = depthwise_kernel.reshape((*depthwise_kernel.shape[:-2], 1, channels * multiplier)).astype(x.dtype)
  options = dict(strides=tuple(strides), pads=padding_pairs(padding, kernel.shape[:-2], dilation),
                 dilation=tuple(dilation))
  return fast_cpu.on_cpu(functools.partial(_depthwise_taps, **options), functools.partial(_depthwise_xla, **options),
                         x, kernel)


def _depthwise_xla(x, kernel, strides, pads, dilation):
  return lax.conv_general_dilated(x, kernel, strides, pads, rhs_dilation=dilation,
                                  dimension_numbers=_dimension_numbers(len(strides)), feature_group_count=x.shape[-1])


def _depthwise_taps(x, kernel, strides, pads, dilation):
  """The depthwise convolution as a sum over kernel taps of strided input slices times per-channel weights.

  XLA:CPU runs grouped convolutions with generic loops; this elementwise form
  fuses into a few passes over the input (MobileNetV2 trains 6x faster on CPU,
  benchmarks/fast_cpu.md).
  """
  multiplier = kernel.shape[-1] // x.shape[-1]
  x = jnp.repeat(x, multiplier, axis=-1) if multiplier > 1 else x
  total = None
  for offset, tap in _kernel_taps(x, kernel.shape[:-2], strides, pads, dilation):
    tap = tap * kernel[offset][0]
    total = tap if total is None else total + tap
  return total


def _dilated_window(kernel_size, dilation) -> list[int]:
  """The extent of each dilated kernel axis: `(k - 1) * d + 1`."""
  return [(k - 1) * d + 1 for k, d in zip(kernel_size, dilation)]


def _kernel_taps(x, kernel_size, strides, pads, dilation):
  """`window_taps.taps` of `x` zero-padded by `pads` ("SAME", "VALID" or pairs), over its spatial axes."""
  if isinstance(pads, str):
    window = _dilated_window(kernel_size, dilation)
    pads = lax.padtype_to_pads(x.shape[1:-1], window, strides, pads)
  padded = lax.pad(x, jnp.array(0, x.dtype), [(0, 0, 0), *[(lo, hi, 0) for lo, hi in pads], (0, 0, 0)])
  for offset, tap in window_taps.taps(padded, (1, *kernel_size, 1), (1, *strides, 1), (1, *dilation, 1)):
    yield offset[1:-1], tap


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None):
  """`lax.conv_general_dilated`, with CPU fast paths for channels-last, ungrouped convolutions.

  On the CPU, float32 convolutions with at least `ONEDNN_MIN_POSITIONS` output
  positions (batch x spatial) go to oneDNN when `jaxcomponents.native` could
  build its handlers; otherwise those whose window is larger than their
  input (VGG16's and ResNet50's last blocks at small sizes, which XLA:CPU runs
  with generic loops) are one matrix product over the window slices. Other
  platforms and every other case keep XLA's convolution.
  """
  plain = functools.partial(lax.conv_general_dilated, window_strides=window_strides, padding=padding,
                            lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                            dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
                            batch_group_count=batch_group_count, precision=precision,
                            preferred_element_type=preferred_element_type)
  rank = lhs.ndim - 2
  strides = tuple(window_strides)
  dilation = tuple(rhs_dilation or (1,) * rank)
  supported = (lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) == _dimension_numbers(rank)
               and feature_group_count == 1 and batch_group_count == 1 and preferred_element_type is None
               and all(d == 1 for d in lhs_dilation or ()))
  if not supported:
    return plain(lhs, rhs)
  pads = _onednn_pads(lhs, rhs, strides, padding, dilation)
  if pads is not None:
    onednn = functools.partial(_conv_onednn, strides=strides, pads=pads, dilation=dilation)
    return fast_cpu.on_cpu(onednn, plain, lhs, rhs)
  window = _dilated_window(rhs.shape[:rank], dilation)
  if any(n < w for n, w in zip(lhs.shape[1:-1], window)):
    patches = functools.partial(_conv_patches, strides=strides, pads=padding, dilation=dilation, precision=precision)
    return fast_cpu.on_cpu(patches, plain, lhs, rhs)
  return plain(lhs, rhs)


def conv_bias_relu(x: jax.Array, kernel: jax.Array, bias: jax.Array, strides: Sequence[int], padding: str | Pairs,
                   dilation: Sequence[int]) -> jax.Array:
  """`relu(conv(x, kernel) + bias)` for channels-last `x` and `(*window, in, out)` kernels.

  Where oneDNN takes the convolution, the bias and ReLU happen inside it (two
  passes over the output fewer); elsewhere it is `conv_general_dilated`, `+`, `relu`.
  """
  rank = x.ndim - 2
  strides, dilation = tuple(strides), tuple(dilation)

  def plain(x, kernel, bias):
    y = conv_general_dilated(x, kernel, strides, padding, rhs_dilation=dilation,
                             dimension_numbers=_dimension_numbers(rank))
    return jax.nn.relu(y + bias)

  pads = _onednn_pads(x, kernel, strides, padding, dilation) if bias.dtype == jnp.float32 else None
  if pads is None:
    return plain(x, kernel, bias)
  fused = functools.partial(onednn_conv.convolve, strides=strides, pads=pads, dilation=dilation, relu=True)
  return fast_cpu.on_cpu(fused, plain, x, kernel, bias)


def _onednn_pads(x, kernel, strides, padding, dilation) -> tuple[tuple[int, int], ...] | None:
  """Explicit padding when oneDNN takes this channels-last, ungrouped convolution on the CPU, else None."""
  if not x.dtype == kernel.dtype == jnp.float32:
    return None
  window = _dilated_window(kernel.shape[:-2], dilation)
  pads = lax.padtype_to_pads(x.shape[1:-1], window, strides, padding) if isinstance(padding, str) else padding
  pads = tuple(map(tuple, pads))
  positions = math.prod(onednn_conv.output_shape(x.shape, kernel.shape, strides, pads, dilation)[:-1])
  if positions < ONEDNN_MIN_POSITIONS or not native.load().available:
    return None
  return pads


def _conv_onednn(x, kernel, strides, pads, dilation):
  return onednn_conv.convolve(x, kernel, jnp.zeros(kernel.shape[-1:], kernel.dtype), strides, pads, dilation)


def _conv_patches(x, kernel, strides, pads, dilation, precision):
  """A channels-last convolution as one matrix product of the window slices (im2col) with the kernel."""
  slices = [tap for _, tap in _kernel_taps(x, kernel.shape[:-2], strides, pads, dilation)]
  patches = jnp.concatenate(slices, axis=-1)
  return jnp.dot(patches, kernel.reshape(-1, kernel.shape[-1]).astype(patches.dtype), precision=precision)


class Conv(nn.Conv):
  """`flax.linen.Conv` computed by `conv_general_dilated` (same parameters, names and numbers).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> conv = Conv(8, (3, 3), padding="SAME")
    >>> x = jnp.ones((1, 2, 2, 4))
    >>> conv.apply(conv.init(jax.random.key(0), x), x).shape
    (1, 2, 2, 8)
  """

  conv_general_dilated: Any = conv_general_dilated


class ConvReLU(nn.Module):
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
    dilation = tuple(self.kernel_dilation or (1,) * len(self.kernel_size))
    kernel = self.param("kernel", glorot_uniform, (*self.kernel_size, x.shape[-1], self.features))
    bias = self.param("bias", zeros, (self.features,)) if self.use_bias else jnp.zeros((self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)
    return conv_bias_relu(x, kernel, bias, self.strides, padding_pairs(self.padding, self.kernel_size, dilation),
                          dilation)


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
    y = conv_general_dilated(y, pointwise.astype(y.dtype), (1,) * rank, "VALID",
                             dimension_numbers=_dimension_numbers(rank))
    if self.use_bias:
      y = y + self.param("bias", zeros, (self.features,)).astype(y.dtype)
    return y
