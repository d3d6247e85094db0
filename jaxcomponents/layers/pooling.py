"""Max and average pooling over 1 to 3 spatial axes, as Keras's pooling layers.

Inputs are channels-last, `(batch, *spatial, channels)`. `"SAME"` padding pads
with -inf for max pooling and leaves the padding out of the average (Keras's
`AveragePooling*D` divides by the number of real inputs in each window).
Padding names are accepted in any case, as Keras does. The numerics, with the
CPU formulation of max pooling, are `jaxcomponents.ops.pooling`.

Example:
  >>> import jax.numpy as jnp
  >>> x = jnp.arange(5.0).reshape(1, 5, 1)
  >>> avg_pool(x, 2, padding="same")[0, :, 0].tolist()
  [0.5, 2.5, 4.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from jaxcomponents.errors import as_tuple, check_choice
from jaxcomponents.ops import pooling

PADDINGS = ("SAME", "VALID")
PoolSize = int | Sequence[int]


def pool_padding(padding: str, param: str = "padding") -> str:
  """Returns `"SAME"` or `"VALID"` for a padding name in any case, else raises `ValueError`."""
  if isinstance(padding, str) and padding.upper() in PADDINGS:
    return padding.upper()
  return check_choice(param, padding, PADDINGS)


def _window(x: jax.Array, pool_size: PoolSize, strides: PoolSize | None, padding: str):
  """Checked full-rank (window, strides, padding) for pooling `x`'s spatial axes."""
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
  return pooling.max_pool(x, *_window(x, pool_size, strides, padding))


def avg_pool(x: jax.Array, pool_size: PoolSize, strides: PoolSize | None = None,
             padding: str = "VALID") -> jax.Array:
  """Keras's `AveragePooling1D/2D/3D`: padding is not counted; `strides` defaults to `pool_size`.

  Example:
    >>> import jax.numpy as jnp
    >>> avg_pool(jnp.ones((1, 5, 5, 3)), 2, 2, "SAME").shape
    (1, 3, 3, 3)
  """
  return pooling.avg_pool(x, *_window(x, pool_size, strides, padding))


def _spatial_axes(x: jax.Array) -> tuple[int, ...]:
  if x.ndim < 3:
    raise ValueError(f"x has shape {x.shape} (rank {x.ndim}); expected rank >= 3: (batch, *spatial, channels).")
  return tuple(range(1, x.ndim - 1))


def global_avg_pool(x: jax.Array, keepdims: bool = False, mask: jax.Array | None = None) -> jax.Array:
  """Keras's `GlobalAveragePooling1D/2D/3D`: the mean over the spatial axes; with a `(batch, steps)` `mask` (1-D
  inputs), over the steps it keeps, as Keras averages a masked sequence.

  Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.arange(6.0).reshape(1, 3, 2)
    >>> global_avg_pool(x).tolist(), global_avg_pool(x, mask=jnp.array([[True, True, False]])).tolist()
    ([[2.0, 3.0]], [[1.0, 2.0]])
  """
  axes = _spatial_axes(x)
  if mask is None:
    return jnp.mean(x, axis=axes, keepdims=keepdims)
  if x.ndim != 3 or jnp.shape(mask) != x.shape[:2]:
    raise ValueError(f"mask of shape {jnp.shape(mask)} is not allowed with x of shape {x.shape}; expected a mask "
                     "(batch, steps) of a sequence (batch, steps, features).")
  keep = jnp.asarray(mask, bool)[..., None]
  return (jnp.sum(jnp.where(keep, x, 0), axis=1, keepdims=keepdims)
          / jnp.sum(keep.astype(x.dtype), axis=1, keepdims=keepdims))


def global_max_pool(x: jax.Array, keepdims: bool = False) -> jax.Array:
  """Keras's `GlobalMaxPooling1D/2D/3D`: the maximum over the spatial axes.

  Example:
    >>> import jax.numpy as jnp
    >>> global_max_pool(jnp.ones((2, 4, 4, 3)), keepdims=True).shape
    (2, 1, 1, 3)
  """
  return jnp.max(x, axis=_spatial_axes(x), keepdims=keepdims)


POOLS: dict[str, Callable[..., jax.Array]] = {"max": max_pool, "avg": avg_pool}


def pool(x: jax.Array, kind: str, pool_size: PoolSize, strides: PoolSize | None = None,
         padding: str = "VALID", param: str = "pool") -> jax.Array:
  """Pools with `POOLS[kind]` ("max" or "avg"); an unknown `kind` is a `ValueError`."""
  return POOLS[check_choice(param, kind, POOLS)](x, pool_size, strides, padding)
