"""Plain-Flax twins, written as a Flax user would, for the families where that is natural.

Each builder takes a `benchmarks.families.Size` and returns a Linen module
called as `module(x, train=...)` with softmax outputs, like the Keras twin.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from benchmarks.families import Size
  >>> model = dense_stack(Size(2, (4,), 3, {"units": 8}))
  >>> variables = model.init(jax.random.key(0), jnp.ones((2, 4)))
  >>> model.apply(variables, jnp.ones((2, 4))).shape
  (2, 3)
"""

from __future__ import annotations

import flax.linen as nn
import jax


class DenseStack(nn.Module):
  """Dense -> relu -> dropout, twice, then a softmax classifier."""

  units: int
  classes: int
  rate: float = 0.2

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    for _ in range(2):
      x = nn.Dropout(self.rate, deterministic=not train)(nn.relu(nn.Dense(self.units)(x)))
    return nn.softmax(nn.Dense(self.classes)(x))


class SeedCNN(nn.Module):
  """The seed notes' MNIST CNN: two valid 3x3 convolutions, max pool, dropout, two dense layers."""

  classes: int

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    x = nn.relu(nn.Conv(32, (3, 3), padding="VALID")(x))
    x = nn.relu(nn.Conv(32, (3, 3), padding="VALID")(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.Dropout(0.25, deterministic=not train)(x)
    x = x.reshape((x.shape[0], -1))
    x = nn.Dropout(0.5, deterministic=not train)(nn.relu(nn.Dense(128)(x)))
    return nn.softmax(nn.Dense(self.classes)(x))


class RNNClassifier(nn.Module):
  """A recurrent layer over the sequence, its last output into a softmax classifier."""

  cell: str
  units: int
  classes: int

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    cell = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell, "simple_rnn": nn.SimpleCell}[self.cell]
    h = nn.RNN(cell(self.units))(x)
    return nn.softmax(nn.Dense(self.classes)(h[:, -1]))


def dense_stack(size):
  return DenseStack(size.options["units"], size.classes)


def mnist_cnn(size):
  return SeedCNN(size.classes)


def lstm(size):
  return RNNClassifier("lstm", size.options["units"], size.classes)


def gru(size):
  return RNNClassifier("gru", size.options["units"], size.classes)


def simple_rnn(size):
  return RNNClassifier("simple_rnn", size.options["units"], size.classes)

