"""Keras's adaptive pooling: `adaptive_pool`, `AdaptiveAveragePooling1D/2D/3D`, `AdaptiveMaxPooling1D/2D/3D`.

Output cell `i` of a spatial axis of length `n` pooled to `m` cells covers the
inputs `floor(i * n / m)` up to (not including) `ceil((i + 1) * n / m)`, as
Keras's `ops.adaptive_average_pool` / `ops.adaptive_max_pool` (and PyTorch's
adaptive pooling) take them; windows overlap where `m` does not divide `n`, and
repeat inputs where `m > n`. The axes are pooled one after the other, as Keras
does, each with a sliding window per window length the axis has and a gather
of the cells' starts.

Example:
  >>> import jax.numpy as jnp
  >>> x = jnp.arange(5.0).reshape(1, 5, 1)
  >>> adaptive_pool(x, "avg", (3,))[0, :, 0].tolist()
  [0.5, 2.0, 3.5]
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcomponents.errors import check_choice, is_int

KINDS = ("avg", "max")
DATA_FORMATS = ("channels_last", "channels_first")


def bins(size: int, output_size: int) -> tuple[np.ndarray, np.ndarray]:
  """Each output cell's first input and window length along one axis (exact integer arithmetic).

  Example:
    >>> [b.tolist() for b in bins(5, 3)]
    [[0, 1, 3], [2, 3, 2]]
  """
  cells = np.arange(output_size)
  starts = cells * size // output_size
  ends = -(-(cells + 1) * size // output_size)
  return starts, ends - starts


def _pool_axis(x: jax.Array, axis: int, output_size: int, kind: str) -> jax.Array:
  starts, lengths = bins(x.shape[axis], output_size)
  pooled, offset, index = [], 0, np.zeros(output_size, np.int64)
  for length in sorted(set(lengths.tolist())):
    window = [1] * x.ndim
    window[axis] = length
    if kind == "max":
      init = -jnp.inf if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo(x.dtype).min
      out = jax.lax.reduce_window(x, jnp.asarray(init, x.dtype), jax.lax.max, window, (1,) * x.ndim, "VALID")
    else:
      out = jax.lax.reduce_window(x, jnp.asarray(0, x.dtype), jax.lax.add, window, (1,) * x.ndim, "VALID") / length
    index[lengths == length] = starts[lengths == length] + offset
    offset += out.shape[axis]
    pooled.append(out)
  combined = pooled[0] if len(pooled) == 1 else jnp.concatenate(pooled, axis=axis)
  return jnp.take(combined, jnp.asarray(index, jnp.int32), axis=axis)


def adaptive_pool(x: jax.Array, kind: str, output_size: Sequence[int],
                  data_format: str = "channels_last") -> jax.Array:
  """Pools every spatial axis of `x` to `output_size` cells, Keras's adaptive average or max pooling.

  Args:
    x: `(batch, *spatial, channels)` (or `(batch, channels, *spatial)` for channels_first).
    kind: "avg" or "max".
    output_size: one size per spatial axis.
    data_format: "channels_last" or "channels_first".
  """
  check_choice("kind", kind, KINDS)
  check_choice("data_format", data_format, DATA_FORMATS)
  output_size = tuple(output_size)
  if len(output_size) != x.ndim - 2 or any(not is_int(s) or s < 1
                                           for s in output_size):
    raise ValueError(f"output_size={output_size!r} is not allowed for inputs of shape {x.shape}; expected "
                     f"{x.ndim - 2} positive int(s), one per spatial axis.")
  first = 1 if data_format == "channels_last" else 2
  for i, size in enumerate(output_size):
    x = _pool_axis(x, first + i, int(size), kind)
  return x


class _AdaptivePooling(nn.Module):
  """Keras's adaptive pooling layers (see `adaptive_pool`)."""

  output_size: int | Sequence[int]
  data_format: str = "channels_last"
  kind = "avg"
  dims = 2

  def __call__(self, x):
    size = self.output_size
    given = tuple(size) if isinstance(size, (list, tuple)) else (size,) * self.dims
    if len(given) != self.dims:
      raise ValueError(f"output_size={size!r} is not allowed; expected an int or {self.dims} ints.")
    if x.ndim != self.dims + 2:
      raise ValueError(f"{type(self).__name__} takes inputs of rank {self.dims + 2}; got shape {x.shape}.")
    return adaptive_pool(x, self.kind, given, self.data_format)


def _layer(kind: str, dims: int, name: str) -> type:
  doc = (f"Keras's `{name}(output_size, data_format)`: {'average' if kind == 'avg' else 'max'} pooling of "
         f"{dims} spatial axes to `output_size` cells (an int, or one per axis).\n\n"
         f"  Example:\n    >>> import jax.numpy as jnp\n"
         f"    >>> {name}(2).apply({{}}, jnp.ones((1, {', '.join(['5'] * dims)}, 3))).shape\n"
         f"    ({', '.join(['1'] + ['2'] * dims + ['3'])})\n  ")
  return type(name, (_AdaptivePooling,), {"kind": kind, "dims": dims, "__doc__": doc, "__module__": __name__})


AdaptiveAveragePooling1D = _layer("avg", 1, "AdaptiveAveragePooling1D")
AdaptiveAveragePooling2D = _layer("avg", 2, "AdaptiveAveragePooling2D")
AdaptiveAveragePooling3D = _layer("avg", 3, "AdaptiveAveragePooling3D")
AdaptiveMaxPooling1D = _layer("max", 1, "AdaptiveMaxPooling1D")
AdaptiveMaxPooling2D = _layer("max", 2, "AdaptiveMaxPooling2D")
AdaptiveMaxPooling3D = _layer("max", 3, "AdaptiveMaxPooling3D")

__all__ = ["AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D", "AdaptiveMaxPooling1D",
           "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D", "adaptive_pool", "bins"]
