"""`apply_inference`: a model applied in inference mode, below both `training` (predict, `Model`) and `export`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn

__all__ = ["apply_inference"]


def apply_inference(apply_fn: Callable[..., Any], variables: Mapping[str, Any], *inputs: Any) -> Any:
  """`apply_fn(variables, *inputs, train=False)`: a model in inference mode, as `predict` and `export` call it.

  `apply_fn` is a module's `apply` (or a `TrainState`'s); `train=False` is left
  out for a Flax module whose `__call__` takes no `train` argument.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxcomponents.layers import Dense
    >>> model = Dense(2)
    >>> variables = model.init(jax.random.key(0), jnp.ones((1, 3)))
    >>> apply_inference(model.apply, variables, jnp.ones((4, 3))).shape
    (4, 2)
  """
  if _takes_train(apply_fn):
    return apply_fn(variables, *inputs, train=False)
  return apply_fn(variables, *inputs)


def _takes_train(apply_fn: Callable[..., Any]) -> bool:
  """Whether `apply_fn` passes `train` on: False only for the `apply` of a module whose `__call__` has no `train`."""
  module = getattr(apply_fn, "__self__", None)
  if not isinstance(module, nn.Module):
    return True
  parameters = inspect.signature(type(module).__call__).parameters.values()
  return any(p.name == "train" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
