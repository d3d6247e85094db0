"""Dropout masks with JAX's own bits, lowered without a loop on every platform.

JAX lowers its Threefry-2x32 hash for the CPU as a loop over five groups of
rounds, which XLA:CPU runs as a few small kernels per group (the seed CNN's
dropout bits: 2.5 ms of a 26 ms training step); on other platforms it lowers
the rounds unrolled, which fuse into one pass. `bernoulli` computes the same
hash, written out in `jax.numpy` here, for jaxcomponents' own dropout: the
same bits as `jax.random.bernoulli` for the same key (both settings of
`jax_threefry_partitionable`), without changing how JAX lowers anything else.

Keys of another implementation (`rbg`, `unsafe_rbg`), probabilities of a dtype
other than float32 (`jax_enable_x64`), and arrays of 2**32 elements or more
are left to `jax.random.bernoulli`.

Example:
  >>> import jax
  >>> key = jax.random.key(0)
  >>> bool((bernoulli(key, 0.75, (4, 5)) == jax.random.bernoulli(key, 0.75, (4, 5))).all())
  True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcomponents.ops import platform

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x: jax.Array, bits: int) -> jax.Array:
  return lax.shift_left(x, np.uint32(bits)) | lax.shift_right_logical(x, np.uint32(32 - bits))


def threefry2x32(key: tuple[jax.Array, jax.Array], x0: jax.Array, x1: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The Threefry-2x32 hash (20 rounds) of the counter pairs `(x0, x1)` under the key pair `key`."""
  ks = (key[0], key[1], key[0] ^ key[1] ^ _PARITY)
  x = [x0 + ks[0], x1 + ks[1]]
  for group in range(5):
    for rotation in _ROTATIONS[group % 2]:
      x[0] = x[0] + x[1]
      x[1] = x[0] ^ _rotate_left(x[1], rotation)
    x = [x[0] + ks[(group + 1) % 3], x[1] + ks[(group + 2) % 3] + np.uint32(group + 1)]
  return x[0], x[1]


def random_bits(key_data: jax.Array, shape: Sequence[int]) -> jax.Array:
  """The 32-bit words `jax.random.bits` draws for a Threefry key's raw data `key_data` (uint32[2])."""
  key = (key_data[0], key_data[1])
  size = math.prod(shape)
  if jax.config.jax_threefry_partitionable:
    counts = lax.iota(np.uint32, size).reshape(shape)  # the row-major index; its high word is 0 below 2**32
    high, low = threefry2x32(key, jnp.zeros_like(counts), counts)
    return high ^ low
  counts = lax.iota(np.uint32, size)
  if size % 2:  # JAX pads an odd count with a zero
    counts = jnp.concatenate([counts, jnp.zeros(1, np.uint32)])
  half = counts.shape[0] // 2
  bits = jnp.concatenate(threefry2x32(key, counts[:half], counts[half:]))
  return bits[:size].reshape(shape)


def _threefry_data(key: jax.Array) -> jax.Array | None:
  """The raw data of a Threefry-2x32 key (typed or raw), or None for keys of other implementations."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    if str(jax.random.key_impl(key)) != "threefry2x32":
      return None
    return jax.random.key_data(key)
  if jax.config.jax_default_prng_impl != "threefry2x32" or key.shape != (2,):
    return None
  return key.astype(np.uint32)


def bernoulli(key: jax.Array, p: float, shape: Sequence[int]) -> jax.Array:
  """`jax.random.bernoulli(key, p, shape)`, bit for bit, with the hash written out.

  Example:
    >>> import jax
    >>> bernoulli(jax.random.key(1), 0.5, (3,)).dtype
    dtype('bool')
  """
  shape = tuple(shape)
  data = _threefry_data(key)
  probability = jnp.asarray(p)
  if (data is None or probability.dtype != jnp.float32 or not platform.static_shape(shape)
      or math.prod(shape) >= 2**32):
    return jax.random.bernoulli(key, p, shape)
  bits = random_bits(data, shape)
  # jax.random.uniform's float32 in [0, 1): 23 random mantissa bits under exponent 0, minus one.
  floats = lax.bitcast_convert_type(lax.shift_right_logical(bits, np.uint32(9)) | np.uint32(0x3F800000),
                                    jnp.float32) - 1.0
  return floats < probability


def shared_axes(broadcast_dims: Sequence[int], ndim: int) -> set[int]:
  """`broadcast_dims` as non-negative axes of a rank-`ndim` input (negative ones count from the end, as Flax's).

  Raises:
    ValueError: an axis outside the input's rank.
  """
  if any(not -ndim <= axis < ndim for axis in broadcast_dims):
    raise ValueError(f"broadcast_dims={tuple(broadcast_dims)!r} is not allowed for an input of rank {ndim}; "
                     f"expected axes in [{-ndim}, {ndim - 1}].")
  return {axis % ndim for axis in broadcast_dims}


def dropout(x: jax.Array, rate: float, key: jax.Array, broadcast_dims: Sequence[int] = ()) -> jax.Array:
  """`flax.linen.Dropout`'s output for `rate`, `key` and `broadcast_dims` (same mask, same numbers).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> y = dropout(jnp.ones((2, 8)), 0.5, jax.random.key(0))
    >>> sorted(set(y.ravel().tolist())) == [0.0, 2.0]
    True
  """
  shared = shared_axes(broadcast_dims, x.ndim)
  if rate == 0.0:
    return x
  if rate == 1.0:
    return jnp.zeros_like(x)
  keep_prob = 1.0 - rate
  shape = [1 if axis in shared else n for axis, n in enumerate(x.shape)]
  mask = jnp.broadcast_to(bernoulli(key, keep_prob, shape), x.shape)
  return lax.select(mask, x / keep_prob, jnp.zeros_like(x))
