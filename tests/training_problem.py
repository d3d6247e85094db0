"""A small classification problem the training tests share: three Gaussian blobs and a two-layer MLP."""

import flax.linen as nn
import jax
import numpy as np
import optax

from jaxcomponents.layers import Dense
from jaxcomponents.training import TrainState


def xent(y, logits):
  return optax.softmax_cross_entropy_with_integer_labels(logits, y)


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x, *, train=False):
    x = Dense(16, activation="relu", batch_norm=True, dropout=0.2)(x, train=train)
    return Dense(3)(x, train=train)


def blobs(n=96, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 3, n)
  x = rng.normal(size=(n, 5)).astype(np.float32) + 3.0 * np.eye(3, 5, dtype=np.float32)[y]
  return x, y


def new_state(lr=0.05, tx=None, seed=0):
  x, _ = blobs()
  return TrainState.create(MLP(), tx or optax.adam(lr), x[:2], seed=seed)


def leaves_equal(a, b):
  return all(np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
