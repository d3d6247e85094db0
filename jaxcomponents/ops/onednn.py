"""A channels-last float32 convolution computed by oneDNN on the CPU, with its gradients.

`convolve(x, kernel, bias, ...)` calls the handlers `jaxcomponents.ops.native`
registers (forward with the bias added and an optional fused ReLU, input
gradient, kernel and bias gradients) and differentiates like
`lax.conv_general_dilated` followed by `+ bias` (and `relu`). It lowers on the
CPU only; `jaxcomponents.ops.conv` selects it there through
`platform.on_cpu` when `native.load()` succeeded.

Example (where the native library is built):
  >>> import jax.numpy as jnp
  >>> from jaxcomponents.ops import native
  >>> native.load().available
  True
  >>> y = convolve(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 5)), jnp.zeros(5), (1, 1), ((0, 0), (0, 0)), (1, 1))
  >>> y.shape, float(y[0, 0, 0, 0])
  ((1, 2, 2, 5), 18.0)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

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


def _attributes(strides, pads, dilation) -> dict[str, np.ndarray]:
  return {"strides": np.asarray(strides, np.int64), "dilations": np.asarray(dilation, np.int64),
          "padding_low": np.asarray([lo for lo, _ in pads], np.int64),
          "padding_high": np.asarray([hi for _, hi in pads], np.int64)}


def _forward(x, kernel, bias, strides, pads, dilation, relu):
  y = jax.ShapeDtypeStruct(output_shape(x.shape, kernel.shape, strides, pads, dilation), jnp.float32)
  return jax.ffi.ffi_call("jc_onednn_conv_forward", y)(x, kernel, bias, relu=relu,
                                                        **_attributes(strides, pads, dilation))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def convolve(x: jax.Array, kernel: jax.Array, bias: jax.Array, strides: tuple[int, ...], pads: tuple[tuple[int, int], ...],
             dilation: tuple[int, ...], relu: bool = False) -> jax.Array:
  """`relu?(conv(x, kernel) + bias)` for float32 `(batch, *spatial, in)` and `(*window, in, out)`.

  `pads` are explicit (low, high) pairs per spatial axis; `dilation` is the
  kernel dilation (1 = none).
  """
  return _forward(x, kernel, bias, strides, pads, dilation, relu)


def _convolve_forward(x, kernel, bias, strides, pads, dilation, relu):
  y = _forward(x, kernel, bias, strides, pads, dilation, relu)
  return y, (x, kernel, y if relu else None)


def _convolve_backward(strides, pads, dilation, relu, residuals, dy):
  x, kernel, y = residuals
  if relu:
    dy = jnp.where(y > 0, dy, 0)
  attributes = _attributes(strides, pads, dilation)
  dx = jax.ffi.ffi_call("jc_onednn_conv_backward_data", jax.ShapeDtypeStruct(x.shape, x.dtype))(dy, kernel,
                                                                                                 **attributes)
  shapes = (jax.ShapeDtypeStruct(kernel.shape, kernel.dtype), jax.ShapeDtypeStruct(kernel.shape[-1:], kernel.dtype))
  dkernel, dbias = jax.ffi.ffi_call("jc_onednn_conv_backward_weights", shapes)(x, dy, **attributes)
  return dx, dkernel, dbias


convolve.defvjp(_convolve_forward, _convolve_backward)
