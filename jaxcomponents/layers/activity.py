"""Keras's activity regularization: a loss on a layer's outputs, added to the training loss.

Keras adds, for each output tensor of a layer with an activity regularizer,
`regularizer(output) / batch_size` to `model.losses`
(`keras/src/layers/layer.py`), and the trainer sums those into the loss it
differentiates (`Trainer.compute_loss`). Here the layer `sow`s that value into
the `"losses"` collection (`LOSSES`); `jaxcomponents.training`'s steps make the
collection mutable and add every sown value to the loss. Nothing is sown while
a module is initialized or when the collection is not mutable (plain `apply`).

Example:
  >>> import jax.numpy as jnp
  >>> layer = ActivityRegularization(l1=0.5)
  >>> y, sown = layer.apply({}, jnp.array([[1.0, -3.0]]), mutable=[LOSSES])
  >>> float(total_loss(sown))
  2.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents import regularizers

LOSSES = "losses"
"""The Flax collection the auxiliary losses are sown into."""


def activity_loss(outputs: Any, l1: float = 0.0, l2: float = 0.0) -> jax.Array:
  """Keras's activity-regularization loss of a layer's outputs.

  For each array: `(l1 * sum(|y|) + l2 * sum(y**2)) / batch_size` (0 for an empty batch), computed in the array's
  dtype; summed over the arrays.

  Example:
    >>> import jax.numpy as jnp
    >>> float(activity_loss(jnp.array([[1.0, 2.0], [3.0, 4.0]]), l2=0.1))
    1.5
  """
  factors = regularizers.L1L2(l1, l2)  # checks them
  l1, l2 = factors.l1, factors.l2
  total = jnp.zeros((), jnp.float32)
  for y in jax.tree.leaves(outputs):
    y = jnp.asarray(y)
    loss = jnp.zeros((), y.dtype)
    if l1:
      loss = loss + jnp.asarray(l1, y.dtype) * jnp.sum(jnp.abs(y))
    if l2:
      loss = loss + jnp.asarray(l2, y.dtype) * jnp.sum(jnp.square(y))
    if y.ndim > 0:
      loss = loss / y.shape[0] if y.shape[0] else jnp.zeros_like(loss)
    total = total + loss.astype(jnp.float32)
  return total


def total_loss(collection: Mapping[str, Any]) -> jax.Array:
  """The sum of every value sown in a `"losses"` collection (0.0 for an empty one).

  Example:
    >>> float(total_loss({}))
    0.0
  """
  return sum((jnp.sum(jnp.asarray(v, jnp.float32)) for v in jax.tree.leaves(collection)), jnp.zeros((), jnp.float32))


class ActivityRegularization(nn.Module):
  """Keras's `ActivityRegularization(l1, l2)`: returns its input and sows `activity_loss(x, l1, l2)`.

  Keras computes the loss in training and inference alike; it counts where the
  `"losses"` collection is mutable (the train and eval steps).

  Example:
    >>> import jax.numpy as jnp
    >>> ActivityRegularization(l2=0.01).apply({}, jnp.ones((1, 2))).tolist()
    [[1.0, 1.0]]
  """

  l1: float = 0.0
  l2: float = 0.0

  @nn.compact
  def __call__(self, x):
    loss = activity_loss(x, self.l1, self.l2)  # checks l1 and l2 even where nothing is sown
    if (self.l1 or self.l2) and not self.is_initializing():
      self.sow(LOSSES, "activity_loss", loss)
    return x


# Keras 3's names of its L1, L2 and L1L2 regularizers (its `get` refuses Keras 2's "l1_l2").
_KERAS_NAMES = ("l1", "l2", "l1l2", "L1", "L2", "L1L2")


def regularizer_factors(regularizer: Any, parameter: str = "activity_regularizer") -> tuple[float, float]:
  """`(l1, l2)` of a Keras regularizer config (`"l2"`, or `{"class_name": "L2", "config": {"l2": 0.01}}`), read by
  `jaxcomponents.regularizers.get` with Keras's default factors.

  Raises:
    ValueError: naming a regularizer that is not an L1, L2 or L1L2 one, or a factor that is not a float >= 0.

  Example:
    >>> regularizer_factors({"class_name": "L1L2", "config": {"l1": 0.1, "l2": 0.2}})
    (0.1, 0.2)
  """
  name = regularizer.get("class_name") if isinstance(regularizer, Mapping) else regularizer
  if not isinstance(name, str) or name not in _KERAS_NAMES:
    raise ValueError(f"{parameter}={regularizer!r} is not allowed; expected one of Keras's L1, L2 or L1L2 "
                     f"regularizers ('l1', 'l2', 'l1l2' or their serialized configs).")
  found = regularizers.get(regularizer)
  return found.l1, found.l2


def with_activity_regularizer(call: Callable[..., Any], regularizer: Any, name: str) -> Callable[..., Any]:
  """`call` (a Keras layer's computation in a `KerasGraph`) with the layer's `activity_regularizer` applied.

  Called where the graph builds its layers (inside its `nn.compact` method): it creates an
  `ActivityRegularization` module named `f"{name}_activity_regularizer"` beside the layer's own, which sows
  Keras's loss of every output the call returns.

  Args:
    call: `fn(*args, train, **kwargs)`, the layer's computation.
    regularizer: the Keras config's `activity_regularizer` entry (None: `call` itself is returned).
    name: the Keras layer's name.

  Raises:
    ValueError: for a regularizer other than L1, L2 and L1L2.
  """
  if regularizer is None:
    return call
  l1, l2 = regularizer_factors(regularizer)
  regularize = ActivityRegularization(l1, l2, name=f"{name}_activity_regularizer")

  def regularized(*args, train, **kwargs):
    return regularize(call(*args, train=train, **kwargs))
  return regularized


def activity_regularizer_problems(config: Mapping[str, Any]) -> list[str]:
  """A record check: the problem with a config's `activity_regularizer` (empty when there is none or it is known)."""
  try:
    if config.get("activity_regularizer") is not None:
      regularizer_factors(config["activity_regularizer"])
  except ValueError as e:
    return [str(e)]
  return []


__all__ = ["LOSSES", "ActivityRegularization", "activity_loss", "activity_regularizer_problems",
           "regularizer_factors", "total_loss", "with_activity_regularizer"]
