"""The training state: everything a step reads and writes, as one pytree."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxcomponents import optimizers


@flax.struct.dataclass
class TrainState:
  """Parameters, batch statistics, optimizer state, step, rng and streaming metrics.

  `rng` is raw key data (uint32), so checkpoints store it like any array; the
  step derives its dropout key as `fold_in(rng, step)`.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from jaxcomponents.layers import Dense
    >>> state = TrainState.create(Dense(2), optax.sgd(0.1), jnp.ones((1, 3)))
    >>> int(state.step)
    0
  """

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array
  metrics: Any
  apply_fn: Callable[..., Any] = flax.struct.field(pytree_node=False)
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

  @classmethod
  def create(cls, model, tx: optax.GradientTransformation, sample_input=None, *, seed: int = 0,
             variables: Mapping[str, Any] | None = None) -> "TrainState":
    """Initialises the model (or takes `variables`, e.g. from `load_keras`) and the optimizer.

    Args:
      model: a Flax module called as `model(x, train=...)`.
      tx: the optimizer, e.g. `jaxcomponents.optimizers.get("adam")`.
      sample_input: an input batch to initialise the model with (unless `variables` is given).
      seed: seeds parameter initialisation and dropout.
      variables: ready variables (`{"params": ..., "batch_stats": ...}`).
    """
    init_key, dropout_key = jax.random.split(jax.random.key(seed))
    if variables is None:
      if sample_input is None:
        raise ValueError("sample_input=None is not allowed without variables; pass an input batch or variables.")
      variables = model.init(init_key, sample_input)
    params = variables["params"]
    return cls(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
        rng=jax.random.key_data(dropout_key),
        metrics={},
        apply_fn=model.apply,
        tx=tx,
    )

  @property
  def iterations(self) -> int:
    """Keras's `optimizer.iterations`: the updates applied, fewer than `step` (the batches) under gradient
    accumulation."""
    return optimizers.update_count(self.opt_state, int(jax.device_get(self.step)))

  @property
  def variables(self) -> dict[str, Any]:
    """The model's variables, ready for `model.apply`."""
    variables = {"params": self.params}
    if self.batch_stats:
      variables["batch_stats"] = self.batch_stats
    return variables
