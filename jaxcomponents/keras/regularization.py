"""Keras's weight regularizers (`kernel_regularizer=`, ...) in a converted graph, and its constraints refused.

Keras adds `regularizer(weight)` of every trainable weight with a regularizer
to the loss, once a step (`Layer.losses`). A `KerasGraph` sows the same
penalty into the `"losses"` collection, which the train and evaluation steps
add to the loss. Constraints (`kernel_constraint=`) project weights after each
optimizer step, which the library's steps do not do: they are refused.

Example:
  >>> regularized_weights({"kernel_regularizer": "l2"}, ({"kernel": ("params", "kernel")},))
  [('params', 'kernel', L1L2(l1=0.0, l2=0.01))]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jaxcomponents import regularizers
from jaxcomponents.keras.record import WeightTable
from jaxcomponents.layers.activity import regularizer_factors

# Keras's regularizer arguments and the weight each one regularizes.
REGULARIZED = {"kernel_regularizer": "kernel", "bias_regularizer": "bias", "recurrent_regularizer": "recurrent_kernel",
               "depthwise_regularizer": "depthwise_kernel", "pointwise_regularizer": "pointwise_kernel",
               "embeddings_regularizer": "embeddings", "alpha_regularizer": "alpha", "gamma_regularizer": "gamma",
               "beta_regularizer": "beta"}


def _target(keras_name: str, tables: tuple[WeightTable, ...]):
  for table in tables:
    if keras_name in table:
      return table[keras_name]
  return None


def regularized_weights(config: Mapping[str, Any], tables: tuple[WeightTable, ...]
                        ) -> list[tuple[str, str, regularizers.L1L2]]:
  """(collection, variable name, Keras's penalty) of each weight the layer's config regularizes (none when not
  trainable)."""
  if config.get("trainable", True) is False:
    return []
  found = []
  for key, keras_name in REGULARIZED.items():
    if config.get(key) is not None:
      target = _target(keras_name, tables) or ("params", keras_name)
      found.append((*target, regularizers.L1L2(*regularizer_factors(config[key], key))))
  return found


def problems(config: Mapping[str, Any], tables: tuple[WeightTable, ...]) -> list[str]:
  """What of a config's regularizers and constraints cannot be honoured (empty when all can)."""
  found = [f"{key}={value!r} (constraints are applied by Keras's optimizer step, not by jaxcomponents'; set it to "
           f"None to convert the model)" for key, value in config.items()
           if key.endswith("_constraint") and value is not None]
  for key in REGULARIZED:
    if config.get(key) is not None:
      try:
        regularizer_factors(config[key], key)
      except ValueError as e:
        found.append(str(e))
  other = [key for key, value in config.items() if key.endswith("_regularizer") and value is not None
           and key not in REGULARIZED and key != "activity_regularizer"]
  found += [f"{key}={config[key]!r} (known weight regularizers: {sorted(REGULARIZED)})" for key in other]
  return found


__all__ = ["REGULARIZED", "problems", "regularized_weights"]
