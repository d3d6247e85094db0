"""Records of the `keras.ops` operations Keras 3 records in a functional graph (masks are such operations).

See `jaxcomponents.keras.record` for what a record holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

from jaxcomponents.keras.record import KerasClass

def _op(fn: Callable[..., Any], *keys: str) -> KerasClass:
  """A `keras.ops` operation recorded in a functional graph; `keys` are config entries passed as keywords."""
  def build(config, name, options):
    fixed = {k: config[k] for k in keys if k in config}
    return lambda *args, train: fn(*args, **fixed)
  return KerasClass(build)


OPS: dict[str, KerasClass] = {
    "NotEqual": _op(jnp.not_equal), "Equal": _op(jnp.equal), "Greater": _op(jnp.greater),
    "Less": _op(jnp.less), "LogicalAnd": _op(jnp.logical_and), "LogicalOr": _op(jnp.logical_or),
    "LogicalNot": _op(jnp.logical_not), "Any": _op(jnp.any, "axis", "keepdims"),
    "All": _op(jnp.all, "axis", "keepdims"), "ExpandDims": _op(jnp.expand_dims, "axis"),
    "Squeeze": _op(jnp.squeeze, "axis"), "Cast": _op(lambda x, dtype: x.astype(dtype), "dtype"),
    "ConvertToTensor": _op(lambda x, dtype=None: jnp.asarray(x, dtype), "dtype"),
    "Add": _op(jnp.add), "Subtract": _op(jnp.subtract), "Multiply": _op(jnp.multiply),
    "Divide": _op(jnp.divide), "Matmul": _op(jnp.matmul), "Transpose": _op(jnp.transpose, "axes"),
    "Reshape": _op(jnp.reshape, "newshape"), "Tanh": _op(jnp.tanh), "Exp": _op(jnp.exp),
    "ZerosLike": _op(jnp.zeros_like, "dtype"), "OnesLike": _op(jnp.ones_like, "dtype"),
    "Concatenate": _op(lambda xs, axis=0: jnp.concatenate(list(xs), axis), "axis"),
    "Stack": _op(lambda xs, axis=0: jnp.stack(list(xs), axis), "axis"), "Where": _op(jnp.where),
}

