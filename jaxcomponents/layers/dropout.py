"""Keras's `Dropout`, with the mask `flax.linen.Dropout` draws, computed without the CPU's looped Threefry."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxcomponents.deprecation import keyword_only
from jaxcomponents.errors import check_rate
from jaxcomponents.ops import random


class Dropout(nn.Module):
  """Zeroes inputs with probability `rate` and scales the rest by `1 / (1 - rate)`, only with `train=True`.

  The mask is `flax.linen.Dropout`'s for the same key (rng stream `'dropout'`),
  bit for bit; its random bits are computed by `jaxcomponents.ops.random`,
  which XLA:CPU fuses where JAX's own lowering is a loop.

  Attributes:
    rate: the dropout rate, in [0, 1).
    broadcast_dims: axes that share one mask value (Keras's `noise_shape` with 1 there).
    rng_collection: the rng stream the mask is drawn from.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = Dropout(0.5)
    >>> y = layer.apply({}, jnp.ones((2, 4)), train=True, rngs={"dropout": jax.random.key(0)})
    >>> sorted(set(y.ravel().tolist())) == [0.0, 2.0]
    True
  """

  rate: float
  broadcast_dims: Sequence[int] = ()
  rng_collection: str = "dropout"

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    rate = check_rate("rate", self.rate)
    random.shared_axes(self.broadcast_dims, x.ndim)  # checked in inference too
    if not train or rate == 0.0:
      return x
    return random.dropout(x, rate, self.make_rng(self.rng_collection), self.broadcast_dims)
