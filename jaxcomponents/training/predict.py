"""`predict`: a model's outputs for many inputs, in fixed-size jitted batches (Keras's `model.predict`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from jaxcomponents.errors import check_positive_int
from jaxcomponents.inference import apply_inference
from jaxcomponents.layers.precision import cast_floats
from jaxcomponents.ops import compiler
from jaxcomponents.training.state import TrainState


def predict(model: TrainState | nn.Module, x, *, variables: Mapping[str, Any] | None = None,
            batch_size: int = 32, compute_dtype=None) -> Any:
  """Outputs of `model` (inference mode, `train=False`) for every example of `x`, as NumPy arrays.

  `x` is an array (or a pytree of arrays) with examples along the first axis.
  Every batch has `batch_size` examples (the last one padded, its padding
  dropped from the result), so the model compiles once.

  Args:
    model: a `TrainState` (its parameters and batch statistics are used), or a Flax module with `variables`.
    x: the inputs.
    variables: the module's variables (`{"params": ..., "batch_stats": ...}`), when `model` is a module.
    batch_size: examples per compiled call.
    compute_dtype: cast floating inputs and parameters (e.g. `jnp.bfloat16`), as the training step's option.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from jaxcomponents.layers import Dense
    >>> state = TrainState.create(Dense(2), optax.sgd(0.1), jnp.ones((1, 3)))
    >>> predict(state, np.ones((5, 3)), batch_size=4).shape
    (5, 2)
  """
  check_positive_int("batch_size", batch_size)
  if isinstance(model, TrainState):
    if variables is not None:
      raise ValueError("variables=... is not allowed with a TrainState, which holds its own variables.")
    apply_fn, variables = model.apply_fn, model.variables
  elif isinstance(model, nn.Module):
    if variables is None:
      raise ValueError(f"predict({type(model).__name__}(...), x) needs variables=...: the module's parameters "
                       "(and batch statistics).")
    apply_fn = model.apply
  else:
    raise TypeError(f"model={type(model).__name__} is not allowed; expected a TrainState or a flax.linen.Module.")
  leaves = jax.tree.leaves(x)
  if not leaves:
    raise ValueError("x holds no arrays to predict on.")
  count = len(leaves[0])
  if any(len(leaf) != count for leaf in leaves):
    raise ValueError(f"x's arrays have different numbers of examples {[len(leaf) for leaf in leaves]}; they must "
                     "agree.")
  forward = _compiled_forward(apply_fn, compute_dtype)
  outputs = []
  for start in range(0, count, batch_size):
    batch = jax.tree.map(lambda a: padded(np.asarray(a[start:start + batch_size]), batch_size), x)
    outputs.append(jax.device_get(forward(variables, batch)))
  return jax.tree.map(lambda *parts: np.concatenate(parts)[:count], *outputs)


def padded(batch: np.ndarray, size: int) -> np.ndarray:
  """`batch` with its last example repeated up to `size` examples (so a jitted call sees one shape)."""
  if len(batch) == size:
    return batch
  return np.concatenate([batch, np.repeat(batch[-1:], size - len(batch), axis=0)])


def _compiled_forward(apply_fn, compute_dtype):
  def forward(variables, x):
    if compute_dtype is not None:  # as the training step: parameters and inputs cast, batch statistics not
      variables = {**variables, "params": cast_floats(variables["params"], compute_dtype)}
      x = cast_floats(x, compute_dtype)
    return apply_inference(apply_fn, variables, x)

  return compiler.jit(forward)
