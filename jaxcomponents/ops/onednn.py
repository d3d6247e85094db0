"""Channels-last float32 and bfloat16 convolutions computed by oneDNN on the CPU, with their gradients.

`convolve(x, kernel, bias, geometry)` calls the handlers `jaxcomponents.ops.native`
registers (forward with the bias added and an optional fused ReLU, input
gradient, kernel and bias gradients) and differentiates like
`lax.conv_general_dilated` (grouped as its `feature_group_count`) followed by
`+ bias` (and `relu`); `convolve_transpose` is the transposed convolution, the
same handlers in other roles. They lower on the CPU only;
`jaxcomponents.ops.conv` selects them there through `platform.on_cpu` when
`native.load()` succeeded.

Example (where the native library is built):
  >>> import jax.numpy as jnp
  >>> from jaxcomponents.ops import native
  >>> native.load().available
  True
  >>> geometry = Geometry(strides=(1, 1), pads=((0, 0), (0, 0)), dilation=(1, 1))
  >>> y = convolve(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 5)), jnp.zeros(5), geometry)
  >>> y.shape, float(y[0, 0, 0, 0])
  ((1, 2, 2, 5), 18.0)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Pairs = Sequence[tuple[int, int]]


def output_shape(x_shape: Sequence[int], kernel_shape: Sequence[int], strides: Sequence[int], pads: Pairs,
                 dilation: Sequence[int]) -> tuple[int, ...]:
  """`(batch, *spatial, filters)` of the convolution."""
  spatial = [(n + lo + hi - (k - 1) * d - 1) // s + 1
             for n, k, s, (lo, hi), d in zip(x_shape[1:-1], kernel_shape[:-2], strides, pads, dilation)]
  return (x_shape[0], *spatial, kernel_shape[-1])


class Geometry(NamedTuple):
  """A convolution's strides, explicit (low, high) padding pairs, kernel dilation (1 = none) and feature groups."""

  strides: tuple[int, ...]
  pads: tuple[tuple[int, int], ...]
  dilation: tuple[int, ...]
  groups: int = 1

  def attributes(self) -> dict[str, np.ndarray | int]:
    return {"strides": np.asarray(self.strides, np.int64), "dilations": np.asarray(self.dilation, np.int64),
            "padding_low": np.asarray([lo for lo, _ in self.pads], np.int64),
            "padding_high": np.asarray([hi for _, hi in self.pads], np.int64), "groups": np.int64(self.groups)}


def _forward(x, kernel, bias, geometry: Geometry, relu: bool):
  """The convolution of `x` by `kernel`, plus `bias`, optionally through ReLU."""
  y = jax.ShapeDtypeStruct(output_shape(x.shape, kernel.shape, geometry.strides, geometry.pads, geometry.dilation),
                           x.dtype)
  return jax.ffi.ffi_call("jc_onednn_conv_forward", y)(x, kernel, bias, relu=relu, **geometry.attributes())


def _backward_data(dy, kernel, x_shape, geometry: Geometry):
  """The gradient of the convolution with respect to its input of shape `x_shape`."""
  return jax.ffi.ffi_call("jc_onednn_conv_backward_data", jax.ShapeDtypeStruct(x_shape, dy.dtype))(
      dy, kernel, **geometry.attributes())


def _backward_weights(x, dy, kernel_shape, geometry: Geometry):
  """The gradients of the convolution with respect to its kernel of shape `kernel_shape` and its bias."""
  shapes = (jax.ShapeDtypeStruct(kernel_shape, x.dtype), jax.ShapeDtypeStruct(kernel_shape[-1:], x.dtype))
  return jax.ffi.ffi_call("jc_onednn_conv_backward_weights", shapes)(x, dy, **geometry.attributes())


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def convolve(x: jax.Array, kernel: jax.Array, bias: jax.Array, geometry: Geometry, relu: bool = False) -> jax.Array:
  """`relu?(conv(x, kernel) + bias)` for float32 or bfloat16 `(batch, *spatial, in)` and `(*window, in / groups, out)`.

  Grouped like XLA's `feature_group_count`: output channel `o` reads the input
  channels of group `o // (out / groups)`; a depthwise convolution has one
  group per input channel.
  """
  return _forward(x, kernel, bias, geometry, relu)


def _convolve_forward(x, kernel, bias, geometry, relu):
  y = _forward(x, kernel, bias, geometry, relu)
  return y, (x, kernel, y if relu else None)


def _through_relu(dy, y):
  """The output gradient before a fused ReLU whose output was `y` (None: no ReLU)."""
  return dy if y is None else jnp.where(y > 0, dy, jnp.zeros((), dy.dtype))


def _convolve_backward(geometry, relu, residuals, dy):
  x, kernel, y = residuals
  dy = _through_relu(dy, y)
  dkernel, dbias = _backward_weights(x, dy, kernel.shape, geometry)
  return _backward_data(dy, kernel, x.shape, geometry), dkernel, dbias


convolve.defvjp(_convolve_forward, _convolve_backward)


def _transposed(x, kernel, bias, geometry: Geometry, out_spatial, relu: bool):
  y = jax.ShapeDtypeStruct((x.shape[0], *out_spatial, kernel.shape[-2]), x.dtype)
  return jax.ffi.ffi_call("jc_onednn_conv_transpose", y)(x, kernel, bias, relu=relu, **geometry.attributes())


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def convolve_transpose(x: jax.Array, kernel: jax.Array, bias: jax.Array, geometry: Geometry,
                       out_spatial: tuple[int, ...], relu: bool = False) -> jax.Array:
  """`relu?(conv_transpose(x, kernel) + bias)`: the transpose of the convolution `geometry` from `out_spatial` to x.

  `kernel` is that convolution's, `(*window, out channels, x's channels)`,
  which is Keras's `Conv*DTranspose` kernel as it is stored. oneDNN computes
  it directly (its deconvolution), without the multiplications by the zeros a
  stride inserts; the gradients are the convolution itself and its kernel gradient.
  """
  return _transposed(x, kernel, bias, geometry, out_spatial, relu)


def _convolve_transpose_forward(x, kernel, bias, geometry, out_spatial, relu):
  y = _transposed(x, kernel, bias, geometry, out_spatial, relu)
  return y, (x, kernel, y if relu else None)


def _convolve_transpose_backward(geometry, out_spatial, relu, residuals, dy):
  x, kernel, y = residuals
  dy = _through_relu(dy, y)
  dx = _forward(dy, kernel, jnp.zeros(kernel.shape[-1:], dy.dtype), geometry, relu=False)
  dkernel = _backward_weights(dy, x, kernel.shape, geometry)[0]
  dbias = jnp.sum(dy, axis=tuple(range(dy.ndim - 1)), dtype=jnp.float32).astype(dy.dtype)
  return dx, dkernel, dbias


convolve_transpose.defvjp(_convolve_transpose_forward, _convolve_transpose_backward)
