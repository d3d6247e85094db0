"""One record per Keras class: everything jaxcomponents knows about it, in one place.

A `KerasClass` says how to compute a Keras layer class from its
`get_config()` (`build`), what of its configuration is not supported
(`check`), which Keras weights go to which variables of the module it builds
(`weights`, also read backwards to write weights back to Keras), and which of
its Keras weights are constants folded into the config (`fold`). The records
live in `jaxcomponents.keras.records`, one module per family of layers.

Example:
  >>> import jax.numpy as jnp
  >>> record = KerasClass(lambda config, name, options: lambda x, train: x * config["factor"])
  >>> record.build({"factor": 2.0}, "double", {})(jnp.ones(2), train=False)
  Array([2., 2.], dtype=float32)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

Config = Mapping[str, Any]
Call = Callable[..., Any]
Target = tuple[str, str]  # (Flax collection, variable name)
WeightTable = Mapping[str, Target]  # Keras weight name -> Target, in Keras's weight order


def no_problems(config: Config) -> list[str]:
  del config
  return []


@dataclasses.dataclass(frozen=True)
class KerasClass:
  """Everything about one Keras class.

  Attributes:
    build: `(config, name, options) -> fn(*args, train, **kwargs)`, called while the graph module is set up; a
      layer with weights creates jaxcomponents' module named `name` (set `creates_module`). `options` are the
      `dtype`, `param_dtype` and `precision` keywords for weighted modules.
    kwargs: the call keywords with tensors (`mask`, `initial_state`, ...) `fn` takes.
    check: `config -> [problem, ...]`: what of this configuration is not supported (empty when all is).
    creates_module: `build` creates a module named after the layer (else the call is wrapped in one).
    weights: the renaming tables of the modules `build` creates with weights, one per kind of weighted module:
      Keras's short weight name -> (collection, variable), in Keras's weight order. A sub-layer of the Keras layer
      (`query` of `MultiHeadAttention`) pairs with the module of the same name below the layer's module.
    fold: `(live_keras_layer, config) -> None`: puts weights Keras keeps but the graph treats as constants
      (`Normalization`'s adapted statistics) into `config`; such a layer's weights are not converted.
    shape_checked: the module's output per example must have the Keras layer's output shape (a one-tensor
      layer computed by one module), so `load_keras` names a configuration mismatch.
  """

  build: Callable[[Config, str, dict[str, Any]], Call]
  kwargs: tuple[str, ...] = ()
  check: Callable[[Config], list[str]] = no_problems
  creates_module: bool = False
  weights: tuple[WeightTable, ...] = ()
  fold: Callable[[Any, dict[str, Any]], None] | None = None
  shape_checked: bool = False


__all__ = ["Call", "Config", "KerasClass", "Target", "WeightTable", "no_problems"]
