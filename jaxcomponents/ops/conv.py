"""Convolutions as Keras computes them, each with its plain XLA reference and its CPU formulations.

Inputs are channels-last, `(batch, *spatial, channels)`, with 1 to 3 spatial
axes; kernels are `(*window, in, out)`. Each function computes XLA's own
operation on every platform but the CPU; where a computation is lowered for
the CPU (`platform.on_cpu`) it may take a faster formulation of the same sums:

* `conv_general_dilated`: float32 and bfloat16 convolutions with enough
  output positions go to oneDNN (`jaxcomponents.ops.onednn`) where the native
  library is built; windows larger than their input (VGG16's and ResNet50's
  last blocks at small sizes, which XLA:CPU runs with generic loops) are one
  matrix product over the window slices (im2col).
* `conv_bias_relu`: the bias and ReLU inside oneDNN's call, where oneDNN takes it.
* `conv_transpose`: oneDNN's input gradient of the convolution it transposes;
  else the zeros between inputs written out, then a plain stride-1
  convolution (XLA:CPU has no fast kernel for input-dilated convolutions).
* `depthwise`: oneDNN's grouped convolution over 2 or 3 axes; else a sum over
  kernel taps of strided input slices times per-channel weights (XLA:CPU runs
  grouped convolutions with generic loops).

benchmarks/fast_cpu.md has the measurements behind each choice.

Each function takes `precision` (a `jax.lax.Precision`, its name or None) and
passes it to XLA's operation. The CPU formulations compute full float32
products (oneDNN, and XLA:CPU's own products, for every precision), which is
what "highest" asks for, so they are taken whatever the precision.

Example:
  >>> import jax.numpy as jnp
  >>> conv_general_dilated(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 5)), (1, 1), "VALID",
  ...                      dimension_numbers=channels_last(2)).shape
  (1, 2, 2, 5)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxcomponents.ops import native, onednn, platform, window_taps

Pairs = Sequence[tuple[int, int]]
# Output positions (batch x spatial) from which oneDNN takes a convolution, for windows of more than one tap
# and for 1x1 (pointwise) windows. Measured on a 2-core CPU in whole training steps (benchmarks/fast_cpu.md):
# below them oneDNN's per-call costs (a kernel reorder each call) outweigh its faster kernels.
ONEDNN_MIN_POSITIONS = 1024
ONEDNN_MIN_POSITIONS_POINTWISE = 32768
ONEDNN_DTYPES = (jnp.float32, jnp.bfloat16)


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


def channels_last(rank: int) -> lax.ConvDimensionNumbers:
  """Channels-last inputs and outputs, `(*window, in, out)` kernels, for `rank` spatial axes."""
  spatial = "DHW"[-rank:]
  return lax.conv_dimension_numbers((1,) * (rank + 2), (1,) * (rank + 2),
                                    (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"))


def dilated_window(kernel_size: Sequence[int], dilation: Sequence[int]) -> list[int]:
  """The extent of each dilated kernel axis: `(k - 1) * d + 1`."""
  return [(k - 1) * d + 1 for k, d in zip(kernel_size, dilation)]


def conv_transpose(x: jax.Array, kernel: jax.Array, strides: Sequence[int], pads: Pairs, dilation: Sequence[int],
                   bias: jax.Array | None = None, relu: bool = False, precision=None) -> jax.Array:
  """Keras's transposed convolution of `x` by a `(*window, out, in)` kernel, with explicit `pads`, plus `bias`, ReLU.

  `pads` pad the stride-dilated input, as `lax.conv_transpose` takes them. On
  the CPU, oneDNN computes it, with the bias and ReLU inside its call, where
  it takes it; otherwise the zeros between inputs are written out.
  """
  options = dict(strides=tuple(strides), pads=tuple(map(tuple, pads)), dilation=tuple(dilation))

  def finish(transposed):
    def apply(x, kernel, *bias):
      y = transposed(x, kernel)
      y = y + bias[0] if bias else y
      return jax.nn.relu(y) if relu else y
    return apply

  args = (x, kernel) if bias is None else (x, kernel, bias)
  plain = finish(functools.partial(conv_transpose_xla, **options, precision=precision))
  window = dilated_window(kernel.shape[:-2], options["dilation"])
  # The convolution this one transposes maps the output back onto x: its padding and the output's size.
  forward_pads = tuple((w - 1 - lo, w - 1 - hi) for w, (lo, hi) in zip(window, options["pads"]))
  if min(p for pair in forward_pads for p in pair) >= 0 and platform.static_shape(x.shape):
    out_spatial = tuple((n - 1) * s + lo + hi - w + 2
                        for n, s, (lo, hi), w in zip(x.shape[1:-1], options["strides"], options["pads"], window))
    geometry = _onednn_geometry(x, kernel, options["strides"], forward_pads, options["dilation"],
                                positions=math.prod(x.shape[:-1]))
    if geometry is not None and (bias is None or bias.dtype == x.dtype):
      def fused(x, kernel, *bias):
        bias = bias[0] if bias else jnp.zeros(kernel.shape[-2:-1], x.dtype)
        return onednn.convolve_transpose(x, kernel, bias, geometry, out_spatial, relu)
      return platform.on_cpu(fused, plain, *args)
  return platform.on_cpu(finish(functools.partial(_conv_transpose_upsampled, **options, precision=precision)), plain,
                         *args)


def conv_transpose_xla(x, kernel, strides, pads, dilation, precision=None):
  """The reference: `lax.conv_transpose` with the kernel transposed, as Keras computes it."""
  return lax.conv_transpose(x, kernel, strides, pads, rhs_dilation=dilation,
                            dimension_numbers=channels_last(len(strides)), transpose_kernel=True, precision=precision)


def _conv_transpose_upsampled(x, kernel, strides, pads, dilation, precision=None):
  """The transposed convolution as XLA defines it, with the zeros between inputs written out.

  After `lax.pad` inserts the zeros it is a plain stride-1 convolution with the
  flipped, transposed kernel: the same sums, a forward pass as fast and a
  backward pass 6x faster on XLA:CPU.
  """
  rank = len(strides)
  upsampled = lax.pad(x, jnp.array(0, x.dtype), [(0, 0, 0), *[(lo, hi, s - 1) for (lo, hi), s in zip(pads, strides)],
                                                  (0, 0, 0)])
  flipped = jnp.swapaxes(kernel[(slice(None, None, -1),) * rank], -1, -2)
  return conv_general_dilated(upsampled, flipped, (1,) * rank, "VALID", rhs_dilation=dilation,
                              dimension_numbers=channels_last(rank), precision=precision)


def depthwise(x: jax.Array, depthwise_kernel: jax.Array, strides: Sequence[int], padding: str,
              dilation: Sequence[int], precision=None) -> jax.Array:
  """Each input channel convolved with its own `depth_multiplier` filters (channel-major outputs).

  `depthwise_kernel` has Keras's layout, `(*window, in, depth_multiplier)`. On
  the CPU, oneDNN's grouped convolution where it takes it (2-D and 3-D), else
  kernel-tap sums.
  """
  channels, multiplier = depthwise_kernel.shape[-2:]
  kernel = depthwise_kernel.reshape((*depthwise_kernel.shape[:-2], 1, channels * multiplier)).astype(x.dtype)
  options = dict(strides=tuple(strides), pads=padding_pairs(padding, kernel.shape[:-2], dilation),
                 dilation=tuple(dilation))
  # Over one axis the tap sums are faster than oneDNN's depthwise kernels (benchmarks/fast_cpu.md).
  geometry = _onednn_geometry(x, kernel, groups=channels, **options) if x.ndim > 3 else None
  if geometry is not None:
    fast = functools.partial(_conv_onednn, geometry=geometry)
  else:
    fast = functools.partial(_depthwise_taps, **options)
  return platform.on_cpu(fast, functools.partial(depthwise_xla, **options, precision=precision), x, kernel)


def depthwise_xla(x, kernel, strides, pads, dilation, precision=None):
  """The reference: a grouped convolution with one group per input channel."""
  return lax.conv_general_dilated(x, kernel, strides, pads, rhs_dilation=dilation,
                                  dimension_numbers=channels_last(len(strides)), feature_group_count=x.shape[-1],
                                  precision=precision)


def _depthwise_taps(x, kernel, strides, pads, dilation):
  """The depthwise convolution as a sum over kernel taps of strided input slices times per-channel weights.

  This elementwise form fuses into a few passes over the input (MobileNetV2
  trains 6x faster on XLA:CPU).
  """
  multiplier = kernel.shape[-1] // x.shape[-1]
  x = jnp.repeat(x, multiplier, axis=-1) if multiplier > 1 else x
  total = None
  for offset, tap in _kernel_taps(x, kernel.shape[:-2], strides, pads, dilation):
    tap = tap * kernel[offset][0]
    total = tap if total is None else total + tap
  return total


def _kernel_taps(x, kernel_size, strides, pads, dilation):
  """`window_taps.taps` of `x` zero-padded by `pads` ("SAME", "VALID" or pairs), over its spatial axes."""
  if isinstance(pads, str):
    pads = lax.padtype_to_pads(x.shape[1:-1], dilated_window(kernel_size, dilation), strides, pads)
  padded = lax.pad(x, jnp.array(0, x.dtype), [(0, 0, 0), *[(lo, hi, 0) for lo, hi in pads], (0, 0, 0)])
  for offset, tap in window_taps.taps(padded, (1, *kernel_size, 1), (1, *strides, 1), (1, *dilation, 1)):
    yield offset[1:-1], tap


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None):
  """`lax.conv_general_dilated`, with the CPU formulations for channels-last convolutions.

  On the CPU, float32 and bfloat16 convolutions (grouped or not) with at least
  `ONEDNN_MIN_POSITIONS` output positions (batch x spatial;
  `ONEDNN_MIN_POSITIONS_POINTWISE` for 1x1 windows) go to oneDNN where the
  native library is built; otherwise ungrouped ones whose window is larger
  than their input are one matrix product over the window slices. Other
  platforms and every other case keep XLA's convolution. `precision` goes to
  XLA's convolution and to the matrix product; oneDNN computes full float32.
  """
  plain = functools.partial(lax.conv_general_dilated, window_strides=window_strides, padding=padding,
                            lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                            dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
                            batch_group_count=batch_group_count, precision=precision,
                            preferred_element_type=preferred_element_type)
  rank = lhs.ndim - 2
  strides = tuple(window_strides)
  dilation = tuple(rhs_dilation or (1,) * rank)
  supported = (rank <= 3
               and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) == channels_last(rank)
               and batch_group_count == 1 and preferred_element_type is None
               and all(d == 1 for d in lhs_dilation or ()))
  if not supported:
    return plain(lhs, rhs)
  geometry = _onednn_geometry(lhs, rhs, strides, padding, dilation, groups=feature_group_count)
  if geometry is not None:
    return platform.on_cpu(functools.partial(_conv_onednn, geometry=geometry), plain, lhs, rhs)
  window = dilated_window(rhs.shape[:rank], dilation)
  if (feature_group_count == 1 and platform.static_shape(lhs.shape[1:-1])
      and any(n < w for n, w in zip(lhs.shape[1:-1], window))):
    patches = functools.partial(_conv_patches, strides=strides, pads=padding, dilation=dilation, precision=precision)
    return platform.on_cpu(patches, plain, lhs, rhs)
  return plain(lhs, rhs)


def conv_bias_relu(x: jax.Array, kernel: jax.Array, bias: jax.Array, strides: Sequence[int], padding: str | Pairs,
                   dilation: Sequence[int], precision=None) -> jax.Array:
  """`relu(conv(x, kernel) + bias)` for channels-last `x` and `(*window, in, out)` kernels.

  Where oneDNN takes the convolution, the bias and ReLU happen inside it (two
  passes over the output fewer); elsewhere it is `conv_general_dilated`, `+`, `relu`.
  """
  rank = x.ndim - 2
  strides, dilation = tuple(strides), tuple(dilation)

  def plain(x, kernel, bias):
    y = conv_general_dilated(x, kernel, strides, padding, rhs_dilation=dilation,
                             dimension_numbers=channels_last(rank), precision=precision)
    return jax.nn.relu(y + bias)

  geometry = _onednn_geometry(x, kernel, strides, padding, dilation) if bias.dtype == x.dtype else None
  if geometry is None:
    return plain(x, kernel, bias)
  fused = functools.partial(onednn.convolve, geometry=geometry, relu=True)
  return platform.on_cpu(fused, plain, x, kernel, bias)


def _onednn_geometry(x, kernel, strides, pads, dilation, groups=1, positions=None) -> onednn.Geometry | None:
  """The geometry when oneDNN takes this channels-last convolution on the CPU, else None.

  `pads` are "SAME", "VALID" or (low, high) pairs; `positions` (batch x
  spatial) defaults to the convolution's output positions.
  """
  if not (x.dtype == kernel.dtype and x.dtype in ONEDNN_DTYPES and platform.native_calls_allowed(x, kernel)):
    return None
  window = dilated_window(kernel.shape[:-2], dilation)
  if any(d > 1 and 2 * (w - 1) >= n for w, d, n in zip(window, dilation, x.shape[1:-1])):
    return None  # a dilated window reaching across half the input or more stays with XLA (oneDNN would use im2col)
  pads = lax.padtype_to_pads(x.shape[1:-1], window, strides, pads) if isinstance(pads, str) else pads
  geometry = onednn.Geometry(tuple(strides), tuple(map(tuple, pads)), tuple(dilation), groups)
  if positions is None:
    positions = math.prod(onednn.output_shape(x.shape, kernel.shape, strides, geometry.pads, dilation)[:-1])
  minimum = ONEDNN_MIN_POSITIONS_POINTWISE if math.prod(kernel.shape[:-2]) == 1 else ONEDNN_MIN_POSITIONS
  if positions < minimum or not native.available():
    return None
  return geometry


def _conv_onednn(x, kernel, geometry):
  return onednn.convolve(x, kernel, jnp.zeros(kernel.shape[-1:], kernel.dtype), geometry)


def _conv_patches(x, kernel, strides, pads, dilation, precision):
  """A channels-last convolution as one matrix product of the window slices (im2col) with the kernel."""
  slices = [tap for _, tap in _kernel_taps(x, kernel.shape[:-2], strides, pads, dilation)]
  patches = jnp.concatenate(slices, axis=-1)
  return jnp.dot(patches, kernel.reshape(-1, kernel.shape[-1]).astype(patches.dtype), precision=precision)
