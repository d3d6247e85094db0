"""Keras's `Embedding`: a lookup table of `(input_dim, output_dim)` vectors.

The table is the parameter `embeddings`, Keras's weight name and layout.
Indices of any dtype are cast to int32, as Keras does.

Example:
  >>> import jax, jax.numpy as jnp
  >>> layer = Embedding(10, 4)
  >>> variables = layer.init(jax.random.key(0), jnp.zeros((2, 5)))
  >>> layer.apply(variables, jnp.array([[1, 2]])).shape
  (1, 2, 4)
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.errors import check_positive_int
from jaxcomponents.layers.precision import DtypeFields


class Embedding(DtypeFields):
  """Maps integer indices in `[0, input_dim)` to vectors of size `output_dim`.

  Attributes:
    input_dim: the number of rows (vocabulary size).
    output_dim: the vector size.
  """

  input_dim: int
  output_dim: int

  @nn.compact
  def __call__(self, ids: jax.Array) -> jax.Array:
    check_positive_int("input_dim", self.input_dim)
    check_positive_int("output_dim", self.output_dim)
    # Keras's default initializer: uniform in [-0.05, 0.05]
    init = lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, -0.05, 0.05)  # noqa: E731
    table = self.param("embeddings", init, (self.input_dim, self.output_dim), self.param_dtype)
    if self.dtype is not None:
      table = table.astype(self.dtype)
    return jnp.take(table, jnp.asarray(ids).astype(jnp.int32), axis=0)
