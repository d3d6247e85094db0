"""Keras's weight regularizers on the components: `kernel_regularizer`, `bias_regularizer`, `recurrent_regularizer`.

Keras adds `regularizer(weight)` of every regularized weight to the loss once
a step (`Layer.losses`), in training and evaluation alike. A component with
these keyword-only fields sows the same penalty into the `"losses"` collection
(`jaxcomponents.layers.activity.LOSSES`), once per component however often it
is called, which jaxcomponents' train and eval steps (and `Model.fit`) add to
the loss. Each field takes what `jaxcomponents.regularizers.get` takes (a Keras
name, config dict or regularizer object, or a callable `weight -> penalty`);
`kernel_regularizer` covers every kernel of a layer (a separable convolution's
depthwise and pointwise kernels, Keras's `depthwise_regularizer` and
`pointwise_regularizer`).

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxcomponents.layers import Dense
  >>> from jaxcomponents.layers.activity import LOSSES, total_loss
  >>> layer = Dense(2, kernel_regularizer={"class_name": "L2", "config": {"l2": 0.5}})
  >>> variables = {"params": {"dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}}}
  >>> _, sown = layer.apply(variables, jnp.ones((1, 3)), mutable=[LOSSES])
  >>> float(total_loss(sown[LOSSES]))  # 0.5 * 6
  3.0
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import flax.traverse_util
import jax
import jax.numpy as jnp

from jaxcomponents import regularizers
from jaxcomponents.layers.activity import LOSSES
from jaxcomponents.layers.init_fields import freeze_configs
from jaxcomponents.registry import keras_identifier

# Each regularizer field and the weights of a layer it regularizes.
REGULARIZED_WEIGHTS = {"kernel_regularizer": ("kernel", "depthwise_kernel", "pointwise_kernel"),
                       "bias_regularizer": ("bias",), "recurrent_regularizer": ("recurrent_kernel",)}


def get(regularizer: Any, param: str) -> regularizers.Regularizer:
  """The penalty function of a field's value: a Keras name, config or regularizer object or class, or a callable."""
  return regularizers.REGULARIZERS.get(keras_identifier(regularizer), param)


def sow_penalty(module: nn.Module, name: str, regularizer: regularizers.Regularizer,
                weights: Sequence[jax.Array]) -> None:
  """Sows `regularizer`'s penalty of `weights` (summed, as Keras sums its variables' losses, each in its dtype) into
  `module`'s `"losses"` as `name`, replacing what an earlier call of the module sowed there."""
  module.sow(LOSSES, name, sum(regularizer(w) for w in weights), init_fn=lambda: jnp.zeros((), jnp.float32),
             reduce_fn=_latest)


class KernelRegularizerFields(nn.Module):
  """Mixin: the keyword-only `kernel_regularizer` and `bias_regularizer` (None: no penalty).

  Attributes:
    kernel_regularizer: Keras's penalty of every kernel of the layer.
    bias_regularizer: Keras's penalty of the bias.
  """

  kernel_regularizer: Any = dataclasses.field(default=None, kw_only=True)
  bias_regularizer: Any = dataclasses.field(default=None, kw_only=True)

  def __post_init__(self):
    freeze_configs(self, REGULARIZER_FIELDS)
    super().__post_init__()

  def sow_weight_penalties(self, *layers: str) -> None:
    """Sows each regularizer's penalty of its weights in the submodules `layers` (at any depth), once (a second
    call replaces the first's), where the `"losses"` collection is mutable."""
    given = {f: get(getattr(self, f), f) for f in REGULARIZED_WEIGHTS if getattr(self, f, None) is not None}
    if not given or self.is_initializing() or not self.is_mutable_collection(LOSSES):
      return
    params = self.variables.get("params", {})
    for layer in layers:
      for field, regularizer in given.items():
        leaves = flax.traverse_util.flatten_dict(dict(params.get(layer, {})))  # a module of one's own may nest them
        weights = [w for path, w in leaves.items() if path[-1] in REGULARIZED_WEIGHTS[field]]
        if weights:
          sow_penalty(self, f"{layer}/{field}", regularizer, weights)


def _latest(_: jax.Array, new: jax.Array) -> jax.Array:
  return new


class RecurrentRegularizerFields(KernelRegularizerFields):
  """Mixin: `kernel_regularizer`, `bias_regularizer` and the keyword-only `recurrent_regularizer`.

  Attributes:
    recurrent_regularizer: Keras's penalty of the recurrent kernel.
  """

  recurrent_regularizer: Any = dataclasses.field(default=None, kw_only=True)


REGULARIZER_FIELDS = tuple(REGULARIZED_WEIGHTS)

__all__ = ["REGULARIZED_WEIGHTS", "REGULARIZER_FIELDS", "KernelRegularizerFields", "RecurrentRegularizerFields",
           "get", "sow_penalty"]
