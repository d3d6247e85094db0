"""Max and average pooling as Keras computes them, with the CPU formulation of max pooling.

Arguments are full-rank: `window` and `strides` give one value per axis of `x`
(1 for the batch and channel axes), `padding` is "SAME" or "VALID". Max
pooling pads with -inf; average pooling leaves the padding out of the mean
(Keras's `AveragePooling*D`).

On the CPU (`platform.on_cpu`) max pooling is the maximum of strided slices,
with a custom gradient that gives each window's first maximum (row-major
order, as XLA and TensorFlow choose) the window's gradient, where XLA:CPU's
`select_and_scatter` costs more than the whole forward pass
(benchmarks/fast_cpu.md).

Example:
  >>> import jax.numpy as jnp
  >>> x = jnp.arange(5.0).reshape(1, 5, 1)
  >>> avg_pool(x, (1, 2, 1), (1, 2, 1), "SAME")[0, :, 0].tolist()
  [0.5, 2.5, 4.0]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxcomponents.ops import barrier, platform, window_taps


def max_pool(x: jax.Array, window: Sequence[int], strides: Sequence[int], padding: str) -> jax.Array:
  """Keras's max pooling of `x` (XLA's `reduce_window` off the CPU)."""
  options = dict(window=tuple(window), strides=tuple(strides), padding=padding)
  return platform.on_cpu(functools.partial(_max_pool_taps, **options), functools.partial(max_pool_xla, **options), x)


def max_pool_xla(x, window, strides, padding):
  """The reference: `lax.reduce_window` with `max`, which JAX differentiates by `select_and_scatter`."""
  # Python-scalar identities let JAX recognise max/sum pooling, which it knows how to differentiate.
  return lax.reduce_window(x, -jnp.inf, lax.max, window, strides, padding)


def avg_pool(x: jax.Array, window: Sequence[int], strides: Sequence[int], padding: str) -> jax.Array:
  """Keras's average pooling of `x`: padded places are not counted."""
  window, strides = tuple(window), tuple(strides)
  sums = lax.reduce_window(x, 0.0, lax.add, window, strides, padding)
  if padding == "VALID":
    return sums / math.prod(window)
  # How many real inputs each window covers; axes that are not pooled need no count.
  ones = jnp.ones([n if w != 1 else 1 for n, w in zip(x.shape, window)], x.dtype)
  return sums / lax.reduce_window(ones, 0.0, lax.add, window, strides, padding)


def _lowest(dtype: Any) -> jax.Array:
  """The identity of `max` in `dtype`: -inf for floats, the smallest value for integers, False for booleans."""
  if jnp.issubdtype(dtype, jnp.inexact):
    return jnp.array(-jnp.inf, dtype)
  return jnp.array(False if dtype == jnp.bool_ else jnp.iinfo(dtype).min, dtype)


def _padded(x: jax.Array, window, strides, padding):
  """`x` padded with `max`'s identity (-inf for floats) as `padding` asks, and its padding pairs."""
  pads = lax.padtype_to_pads(x.shape, window, strides, padding)
  return lax.pad(x, _lowest(x.dtype), [(lo, hi, 0) for lo, hi in pads]), pads


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool_taps(x, window, strides, padding):
  """Max pooling as the maximum of strided slices, with the gradient XLA's `select_and_scatter` gives."""
  padded, _ = _padded(x, window, strides, padding)
  # Into memory in its own shape: fused into a consumer that flattens it (pool -> Dense), XLA:CPU would index the
  # windows element by element, 3x slower.
  return barrier.materialized(functools.reduce(lax.max, (tap for _, tap in window_taps.taps(padded, window, strides))))


def _max_pool_taps_fwd(x, window, strides, padding):
  y = _max_pool_taps(x, window, strides, padding)
  return y, (x, y)


def _max_pool_taps_bwd(window, strides, padding, residuals, g):
  """The first maximum of each window (row-major order, as XLA and TensorFlow choose) takes its gradient."""
  x, y = residuals
  padded, pads = _padded(x, window, strides, padding)
  if strides == window:
    grad = _first_max_blocks(padded, y, g, window)
  else:
    grad = _first_max_spread(padded, y, g, window, strides)
  return (lax.slice(grad, [lo for lo, _ in pads], [lo + n for (lo, _), n in zip(pads, x.shape)]),)


def _first_max_spread(padded, y, g, window, strides):
  """Overlapping windows: each window offset's share of `g`, spread back by interior padding."""
  taken = jnp.zeros(y.shape, bool)
  g = barrier.materialized(g)  # else XLA recomputes it for every window offset
  grad = jnp.zeros(padded.shape, g.dtype)
  zero = jnp.array(0, g.dtype)
  for offset, tap in window_taps.taps(padded, window, strides):
    first = (tap == y) & ~taken
    taken = taken | first
    spread = [(o, n - o - (m - 1) * s - 1, s - 1) for o, n, m, s in zip(offset, padded.shape, y.shape, strides)]
    grad = grad + lax.pad(jnp.where(first, g, zero), zero, spread)
  return grad


def _first_max_blocks(padded, y, g, window):
  """Windows that tile the input: each input compares its place in its window with the window's first maximum.

  Split into (windows, place in window) axes, every input reads one pooled
  value, so XLA:CPU makes one pass over the input, where the spread of
  `_first_max_spread` evaluates every window offset for every input.
  """
  first = jnp.full(y.shape, math.prod(window), jnp.int32)  # the row-major place of each window's first maximum
  for place, (_, tap) in reversed(list(enumerate(window_taps.taps(padded, window, window)))):
    first = jnp.where(tap == y, place, first)
  place = jnp.arange(math.prod(window), dtype=jnp.int32).reshape([d for w in window for d in (1, w)])
  split = [d for m in y.shape for d in (m, 1)]
  covered = [m * w for m, w in zip(y.shape, window)]
  zero = jnp.array(0, g.dtype)
  first, g = barrier.materialized(first), barrier.materialized(g)  # else XLA recomputes both for every input
  grad = jnp.where(place == first.reshape(split), g.reshape(split), zero).reshape(covered)
  return lax.pad(grad, zero, [(0, n - c, 0) for n, c in zip(padded.shape, covered)])


_max_pool_taps.defvjp(_max_pool_taps_fwd, _max_pool_taps_bwd)
