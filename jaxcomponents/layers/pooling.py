"""Max and average pooling over 1 to 3 spatial axes, as Keras's pooling layers.

Inputs are channels-last, `(batch, *spatial, channels)`. `"SAME"` padding pads
with -inf for max pooling and leaves the padding out of the average (Keras's
`AveragePooling*D` divides by the number of real inputs in each window).
Padding names are accepted in any case, as Keras does.

Example:
  >>> import jax.numpy as jnp
  >>> x = jnp.arange(5.0).reshape(1, 5, 1)
  >>> avg_pool(x, 2, padding="same")[0, :, 0].tolist()
  [0.5, 2.5, 4.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxcomponents import fast_cpu
from jaxcomponents.errors import as_tuple, check_choice
from jaxcomponents.layers import window_taps

PADDINGS = ("SAME", "VALID")
PoolSize = int | Sequence[int]


def pool_padding(padding: str, param: str = "padding") -> str:
  """Returns `"SAME"` or `"VALID"` for a padding name in any case, else raises `ValueError`."""
  if isinstance(padding, str) and padding.upper() in PADDINGS:
    return padding.upper()
  return check_choice(param, padding, PADDINGS)


def _window(x: jax.Array, pool_size: PoolSize, strides: PoolSize | None, padding: str):
  """Checked (window, strides, padding) for `lax.reduce_window` over `x`'s spatial axes."""
  if x.ndim < 3:
    raise ValueError(
        f"x has shape {x.shape} (rank {x.ndim}); expected rank >= 3: (batch, *spatial, channels)."
    )
  rank = x.ndim - 2
  size = as_tuple("pool_size", pool_size, rank)
  step = size if strides is None else as_tuple("strides", strides, rank)
  return (1, *size, 1), (1, *step, 1), pool_padding(padding)


def max_pool(x: jax.Array, pool_size: PoolSize, strides: PoolSize | None = None,
             padding: str = "VALID") -> jax.Array:
  """Keras's `MaxPooling1D/2D/3D`; `strides` defaults to `pool_size`.

  Example:
    >>> import jax.numpy as jnp
    >>> max_pool(jnp.ones((1, 4, 4, 3)), 2).shape
    (1, 2, 2, 3)
  """
  window, step, padding = _window(x, pool_size, strides, padding)
  return fast_cpu.on_cpu(functools.partial(_max_pool_taps, window=window, strides=step, padding=padding),
                         functools.partial(_max_pool_xla, window=window, strides=step, padding=padding), x)


def _max_pool_xla(x, window, strides, padding):
  # Python-scalar identities let JAX recognise max/sum pooling, which it knows how to differentiate.
  return lax.reduce_window(x, -jnp.inf, lax.max, window, strides, padding)


def _padded(x: jax.Array, window, strides, padding):
  """`x` padded with -inf as `padding` asks, and its padding pairs."""
  pads = lax.padtype_to_pads(x.shape, window, strides, padding)
  return lax.pad(x, jnp.array(-jnp.inf, x.dtype), [(lo, hi, 0) for lo, hi in pads]), pads


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool_taps(x, window, strides, padding):
  """Max pooling as the maximum of strided slices, with the gradient XLA's `select_and_scatter` gives."""
  padded, _ = _padded(x, window, strides, padding)
  # Into memory in its own shape: fused into a consumer that flattens it (pool -> Dense), XLA:CPU would index the
  # windows element by element, 3x slower.
  return fast_cpu.materialized(functools.reduce(lax.max, (tap for _, tap in window_taps.taps(padded, window, strides))))


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
  g = fast_cpu.materialized(g)  # else XLA recomputes it for every window offset
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
  first, g = fast_cpu.materialized(first), fast_cpu.materialized(g)  # else XLA recomputes both for every input
  grad = jnp.where(place == first.reshape(split), g.reshape(split), zero).reshape(covered)
  return lax.pad(grad, zero, [(0, n - c, 0) for n, c in zip(padded.shape, covered)])


_max_pool_taps.defvjp(_max_pool_taps_fwd, _max_pool_taps_bwd)


def avg_pool(x: jax.Array, pool_size: PoolSize, strides: PoolSize | None = None,
             padding: str = "VALID") -> jax.Array:
  """Keras's `AveragePooling1D/2D/3D`: padding is not counted; `strides` defaults to `pool_size`.

  Example:
    >>> import jax.numpy as jnp
    >>> avg_pool(jnp.ones((1, 5, 5, 3)), 2, 2, "SAME").shape
    (1, 3, 3, 3)
  """
  window, step, padding = _window(x, pool_size, strides, padding)
  sums = lax.reduce_window(x, 0.0, lax.add, window, step, padding)
  if padding == "VALID":
    return sums / math.prod(window)
  # How many real inputs each window covers; axes that are not pooled need no count.
  ones = jnp.ones([n if w != 1 else 1 for n, w in zip(x.shape, window)], x.dtype)
  return sums / lax.reduce_window(ones, 0.0, lax.add, window, step, padding)


POOLS: dict[str, Callable[..., jax.Array]] = {"max": max_pool, "avg": avg_pool}


def pool(x: jax.Array, kind: str, pool_size: PoolSize, strides: PoolSize | None = None,
         padding: str = "VALID", param: str = "pool") -> jax.Array:
  """Pools with `POOLS[kind]` ("max" or "avg"); an unknown `kind` is a `ValueError`."""
  return POOLS[check_choice(param, kind, POOLS)](x, pool_size, strides, padding)
