"""One layer of a `Model`, as Keras's `model.layers` and `model.get_layer` hand it out.

A `ModelLayer` is a view: its weights are the model's variables under the layer's name (in Keras's order for a
`from_keras` model), read and written through the model, and its `trainable` is the Keras config's flag, which
`compile` reads (freezing the layer, and running a `BatchNormalization` on its moving statistics).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
  from jaxcomponents.training.model import Model


class ModelLayer:
  """A layer of a `Model`: its `name`, its weights, and Keras's `trainable`.

  Example:
    >>> import flax.linen as nn
    >>> import jax.numpy as jnp
    >>> from jaxcomponents import Model
    >>> class Net(nn.Module):
    ...   @nn.compact
    ...   def __call__(self, x, train=False):
    ...     return nn.Dense(2, name="head")(nn.Dense(3, name="body")(x))
    >>> model = Model(Net())
    >>> model.build(jnp.ones((1, 4)))
    >>> [layer.name for layer in model.layers]
    ['body', 'head']
    >>> [w.shape for w in model.get_layer("head").get_weights()]
    [(2,), (3, 2)]
  """

  def __init__(self, model: "Model", name: str):
    self._model, self.name = model, name

  def __repr__(self) -> str:
    return f"<ModelLayer {self.name!r} of {self._model.name!r}>"

  def _indices(self) -> list[int]:
    return [i for i, key in enumerate(self._model.weight_keys()) if key[1] == self.name]

  @property
  def trainable(self) -> bool:
    """Whether `fit` trains this layer's weights (Keras's flag); set it, then compile again, as in Keras."""
    return self._model.layer_trainable(self.name)

  @trainable.setter
  def trainable(self, value: bool) -> None:
    self._model.set_layer_trainable(self.name, value)

  def get_weights(self) -> list[np.ndarray]:
    """This layer's weights, as NumPy arrays, in Keras's order."""
    weights = self._model.get_weights()
    return [weights[i] for i in self._indices()]

  def set_weights(self, weights: Sequence[Any]) -> None:
    """Sets this layer's weights from a list like `get_weights()`'s (same order and shapes)."""
    indices = self._indices()
    if len(weights) != len(indices):
      raise ValueError(f"set_weights got {len(weights)} arrays; layer {self.name!r} has {len(indices)} weights.")
    every = self._model.get_weights()
    for i, new in zip(indices, weights):
      if np.shape(new) != every[i].shape:
        raise ValueError(f"set_weights: layer {self.name!r}'s weight {indices.index(i)} has shape "
                         f"{every[i].shape}; got {np.shape(new)}.")
      every[i] = np.asarray(new, every[i].dtype)
    self._model.set_weights(every)

  @property
  def weights(self) -> list[np.ndarray]:
    return self.get_weights()

  @property
  def trainable_weights(self) -> list[np.ndarray]:
    """The weights `fit` trains: the parameters, while the layer is trainable (never batch statistics)."""
    keys = self._model.weight_keys()
    return [w for i, w in zip(self._indices(), self.get_weights()) if self.trainable and keys[i][0] == "params"]

  @property
  def non_trainable_weights(self) -> list[np.ndarray]:
    keys = self._model.weight_keys()
    return [w for i, w in zip(self._indices(), self.get_weights())
            if not (self.trainable and keys[i][0] == "params")]

  def count_params(self) -> int:
    return int(sum(w.size for w in self.get_weights()))
