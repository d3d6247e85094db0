"""One layer of a `Model`, as Keras's `model.layers` and `model.get_layer` hand it out.

A `ModelLayer` is a view: its weights are the model's variables under the layer's name (in Keras's order for a
`from_keras` model), read and written through the model, and its `trainable` is the Keras config's flag, which
`compile` reads (freezing the layer, and running a `BatchNormalization` on its moving statistics).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from jaxcomponents.variable_trees import flatten_variables

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

  def _keys(self) -> list[tuple[str, ...]]:
    return [key for key in self._model.weight_keys() if key[1] == self.name]

  @property
  def trainable(self) -> bool:
    """Whether `fit` trains this layer's weights (Keras's flag); set it, then compile again, as in Keras."""
    return self._model.layer_trainable(self.name)

  @trainable.setter
  def trainable(self, value: bool) -> None:
    self._model.set_layer_trainable(self.name, value)

  def get_weights(self) -> list[np.ndarray]:
    """This layer's weights, as NumPy arrays, in Keras's order (only these are read from the device)."""
    flat = flatten_variables(self._model.variables)
    return [np.asarray(jax.device_get(flat[key])) for key in self._keys()]

  def set_weights(self, weights: Sequence[Any]) -> None:
    """Sets this layer's weights from a list like `get_weights()`'s (same order and shapes)."""
    self._model.set_weights_at(self._keys(), weights, f"layer {self.name!r} has", "weights")

  @property
  def weights(self) -> list[np.ndarray]:
    return self.get_weights()

  def _trained(self) -> list[bool]:
    """Per weight, whether `fit` trains it: a parameter, while the layer is trainable (never batch statistics)."""
    trainable = self.trainable
    return [trainable and key[0] == "params" for key in self._keys()]

  @property
  def trainable_weights(self) -> list[np.ndarray]:
    """The weights `fit` trains: the parameters, while the layer is trainable (never batch statistics)."""
    return [w for trained, w in zip(self._trained(), self.get_weights()) if trained]

  @property
  def non_trainable_weights(self) -> list[np.ndarray]:
    return [w for trained, w in zip(self._trained(), self.get_weights()) if not trained]

  def count_params(self) -> int:
    return int(sum(w.size for w in self.get_weights()))
