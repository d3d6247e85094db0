"""Sliding windows as strided slices: one slice of the input per window offset.

Max pooling, depthwise convolutions and small-input convolutions on the CPU
are written with these slices instead of XLA's windowed operations, whose
XLA:CPU kernels are slow for them (see `jaxcomponents.ops.conv` and `jaxcomponents.ops.pooling`).

Example:
  >>> import jax.numpy as jnp
  >>> x = jnp.arange(5.0)
  >>> [(offset, tap.tolist()) for offset, tap in taps(x, (2,), (2,))]
  [((0,), [0.0, 2.0]), ((1,), [1.0, 3.0])]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import jax
from jax import lax


def output_shape(shape: Sequence[int], window: Sequence[int], strides: Sequence[int],
                 dilation: Sequence[int] | None = None) -> tuple[int, ...]:
  """The number of whole windows along each axis of an (already padded) input (0 where none fits)."""
  dilation = dilation or (1,) * len(shape)
  return tuple(max((n - (w - 1) * d - 1) // s + 1, 0) for n, w, s, d in zip(shape, window, strides, dilation))


def taps(x: jax.Array, window: Sequence[int], strides: Sequence[int],
         dilation: Sequence[int] | None = None) -> Iterator[tuple[tuple[int, ...], jax.Array]]:
  """Each window offset in row-major order, with the strided slice of `x` that it sees.

  `window`, `strides` and `dilation` give one value per axis of `x` (1 for
  axes that do not slide); the slices have the output's shape.
  """
  dilation = tuple(dilation or (1,) * x.ndim)
  out = output_shape(x.shape, window, strides, dilation)
  for offset in itertools.product(*map(range, window)):
    start = [o * d if n else 0 for o, d, n in zip(offset, dilation, out)]
    limit = [b + (n - 1) * s + 1 if n else 0 for b, n, s in zip(start, out, strides)]
    yield offset, lax.slice(x, start, limit, tuple(strides))
