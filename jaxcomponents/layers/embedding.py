"""Keras's `Embedding`: a lookup table of `(num_embeddings, features)` vectors.

The table is the parameter `embeddings`, Keras's weight name and layout.
Indices of any dtype are cast to int32, as Keras does.

Example:
  >>> import jax, jax.numpy as jnp
  >>> layer = Embedding(10, 4)
  >>> variables = layer.init(jax.random.key(0), jnp.zeros((2, 5)))
  >>> layer.apply(variables, jnp.array([[1, 2]])).shape
  (1, 2, 4)
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents import initializers
from jaxcomponents.deprecation import renamed_to
from jaxcomponents.errors import check_positive_int
from jaxcomponents.layers.init_fields import freeze_configs
from jaxcomponents.layers.precision import DtypeFields


class Embedding(DtypeFields):
  """Maps integer indices in `[0, num_embeddings)` to vectors of size `features`.

  Attributes:
    num_embeddings: the number of rows, the vocabulary size (Keras's `input_dim`; Flax's name).
    features: the vector size (Keras's `output_dim`).
    embedding_init: keyword-only, Keras's `embeddings_initializer`: a Keras name, config or initializer object, or
      a Flax initializer (Keras's default: uniform in [-0.05, 0.05]).
    mask_zero: keyword-only, Keras's: index 0 is padding, and `compute_mask(ids)` gives the mask Keras attaches
      to the output (pass it on as `Recurrent(...)(x, mask=...)` or attention's `query_mask`/`value_mask`; a
      Flax module's outputs carry no mask).
    input_dim, output_dim: deprecated aliases of `num_embeddings` and `features` (removed in the next release).

  Example:
    >>> import jax.numpy as jnp
    >>> Embedding(10, 4, mask_zero=True).compute_mask(jnp.array([[3, 1, 0, 0]])).tolist()
    [[True, True, False, False]]
  """

  num_embeddings: int | None = None
  features: int | None = None
  input_dim: int | None = renamed_to("num_embeddings")
  output_dim: int | None = renamed_to("features")
  embedding_init: Any = dataclasses.field(default="random_uniform", kw_only=True)
  mask_zero: bool = dataclasses.field(default=False, kw_only=True)

  def __post_init__(self):
    freeze_configs(self, ("embedding_init",))
    super().__post_init__()

  def compute_mask(self, ids: jax.Array) -> jax.Array | None:
    """Keras's `compute_mask`: True where an index is not 0 with `mask_zero`, else None (no mask)."""
    if not isinstance(self.mask_zero, bool):
      raise ValueError(f"mask_zero={self.mask_zero!r} is not allowed; expected True or False.")
    return jnp.not_equal(jnp.asarray(ids), 0) if self.mask_zero else None

  @nn.compact
  def __call__(self, ids: jax.Array) -> jax.Array:
    check_positive_int("num_embeddings", self.num_embeddings)
    check_positive_int("features", self.features)
    table = self.param("embeddings", initializers.get(self.embedding_init, "embedding_init"),
                       (self.num_embeddings, self.features), self.param_dtype)
    if self.dtype is not None:
      table = table.astype(self.dtype)
    return jnp.take(table, jnp.asarray(ids).astype(jnp.int32), axis=0)
