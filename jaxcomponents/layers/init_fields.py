"""The keyword-only initializer fields of the weighted components, with Keras's defaults.

`kernel_init`, `bias_init` (and a recurrent cell's `recurrent_kernel_init`)
are Flax's names for Keras's `kernel_initializer`, `bias_initializer` and
`recurrent_initializer`; each takes what `jaxcomponents.initializers.get`
takes: a Keras name ("he_normal"), a config dict, a Keras initializer object
or a Flax initializer (None: `glorot_uniform`, as Keras's `add_weight` given
none). The defaults are Keras's layers': Glorot uniform kernels, orthogonal
recurrent kernels, zero biases.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxcomponents.layers import Dense
  >>> layer = Dense(4, kernel_init="he_normal", bias_init={"class_name": "Constant", "config": {"value": 0.1}})
  >>> print(layer.init(jax.random.key(0), jnp.ones((2, 3)))["params"]["dense"]["bias"])
  [0.1 0.1 0.1 0.1]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.core
import flax.linen as nn
import jax.numpy as jnp

from jaxcomponents import initializers

InitializerLike = Any  # a Keras name, config dict or initializer object, or a Flax initializer


def freeze_configs(module: nn.Module, fields: tuple[str, ...]) -> None:
  """Holds each config dict among `module`'s `fields` as a `FrozenDict`, so the module stays hashable (jit caches
  and Flax's transforms key on it)."""
  for field in fields:
    value = getattr(module, field, None)
    if isinstance(value, Mapping) and not isinstance(value, flax.core.FrozenDict):
      object.__setattr__(module, field, flax.core.freeze(dict(value)))


class KernelInitFields(nn.Module):
  """Mixin: the keyword-only `kernel_init` and `bias_init` (Keras's `glorot_uniform` and `zeros`).

  Attributes:
    kernel_init: the kernels' initializer (every kernel of the layer: a separable convolution's depthwise and
      pointwise kernels both).
    bias_init: the bias's initializer.
  """

  kernel_init: InitializerLike = dataclasses.field(default="glorot_uniform", kw_only=True)
  bias_init: InitializerLike = dataclasses.field(default="zeros", kw_only=True)

  def __post_init__(self):
    freeze_configs(self, ("kernel_init", "bias_init"))
    super().__post_init__()

  def initializer(self, field: str) -> initializers.Initializer:
    """The Flax initializer a field names, else a `ValueError` naming the field (also for a shape it cannot
    fill)."""
    value = getattr(self, field)
    init = initializers.get(value, field)

    def named(key, shape, dtype=jnp.float32):
      try:
        return init(key, shape, dtype)
      except ValueError as e:
        raise ValueError(f"{field}={value!r} cannot initialize a weight of shape {tuple(shape)}: {e}") from None

    return named

  def init_param(self, name: str, field: str, shape: tuple[int, ...]) -> Any:
    """The parameter `name` of `shape`, drawn by the initializer `field` holds, in the layer's `param_dtype`."""
    return self.param(name, self.initializer(field), shape, self.param_dtype)

  @property
  def init_options(self) -> dict[str, Any]:
    """This mixin's fields, to pass on to a submodule that takes them."""
    return {f: getattr(self, f) for f in INIT_FIELDS if hasattr(self, f)}


class RecurrentInitFields(KernelInitFields):
  """Mixin: `kernel_init`, `bias_init` and the keyword-only `recurrent_kernel_init` (Keras's `orthogonal`).

  Attributes:
    recurrent_kernel_init: the recurrent kernel's initializer (Keras's `recurrent_initializer`).
  """

  recurrent_kernel_init: InitializerLike = dataclasses.field(default="orthogonal", kw_only=True)

  def __post_init__(self):
    freeze_configs(self, ("recurrent_kernel_init",))
    super().__post_init__()


INIT_FIELDS = ("kernel_init", "bias_init", "recurrent_kernel_init")
