"""Precision control, as `flax.linen.Conv` has it: `dtype`, `param_dtype` and `precision`.

Every weighted component and model takes these keyword-only fields and passes
them down to each weighted layer it builds:

* `dtype`: the computation dtype. None (default) infers it as Flax does: the
  promoted dtype of the inputs and the parameters (float32 inputs and
  parameters compute in float32). `jnp.bfloat16` with float32 parameters is
  mixed precision: the parameters stay float32 and are cast for the computation.
* `param_dtype`: the dtype the parameters are created in (default float32).
  Batch norm keeps its statistics in float32 and normalizes in float32 either
  way, as Flax does; `dtype` is the dtype of its output.
* `precision`: the `jax.lax.Precision` of matrix products and convolutions
  (or its name, e.g. "highest", or a pair, one per operand). None (default)
  is JAX's default, which on GPUs computes float32 products in TensorFloat-32
  and on TPUs in bfloat16 passes; "highest" gives full float32 there. On the
  CPU every precision computes full float32 products.

Bad values raise a `ValueError` naming the field, the value and what is allowed.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxcomponents.layers import Dense
  >>> layer = Dense(4, dtype=jnp.bfloat16, precision="highest")
  >>> variables = layer.init(jax.random.key(0), jnp.ones((2, 3)))
  >>> variables["params"]["dense"]["kernel"].dtype, layer.apply(variables, jnp.ones((2, 3))).dtype
  (dtype('float32'), dtype(bfloat16))
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.deprecation import move_renamed_fields
from jaxcomponents.errors import check_dtype, check_precision

Dtype = Any
PrecisionLike = Any  # None, a jax.lax.Precision, its name, or a pair of them


class DtypeFields(nn.Module):
  """Mixin: the keyword-only fields `dtype` and `param_dtype` of a layer with weights but no products.

  Construction also moves values given under a field's deprecated old name to the new one
  (`jaxcomponents.deprecation`).

  Attributes:
    dtype: computation dtype; None infers it from the inputs and parameters, as Flax does.
    param_dtype: dtype of the parameters (float32).
  """

  dtype: Dtype | None = dataclasses.field(default=None, kw_only=True)
  param_dtype: Dtype = dataclasses.field(default=jnp.float32, kw_only=True)

  def __post_init__(self):
    move_renamed_fields(self)
    check_dtype("dtype", self.dtype, allow_none=True)
    check_dtype("param_dtype", self.param_dtype)
    super().__post_init__()

  @property
  def dtype_options(self) -> dict[str, Any]:
    """`dtype` and `param_dtype`, for a sub-layer without products (batch norm, PReLU)."""
    return {"dtype": self.dtype, "param_dtype": self.param_dtype}


class PrecisionFields(DtypeFields):
  """Mixin: the keyword-only fields `dtype`, `param_dtype` and `precision` (see the module doc).

  Attributes:
    dtype: computation dtype; None infers it from the inputs and parameters, as Flax does.
    param_dtype: dtype of the parameters (float32).
    precision: `jax.lax.Precision` of the products and convolutions, its name, or None (JAX's default).
  """

  precision: PrecisionLike = dataclasses.field(default=None, kw_only=True)

  def __post_init__(self):
    check_precision("precision", self.precision)
    super().__post_init__()

  @property
  def precision_options(self) -> dict[str, Any]:
    """`dtype`, `param_dtype` and `precision`, for a weighted sub-layer that multiplies."""
    return {**self.dtype_options, "precision": self.precision}


def cast_floats(tree: Any, dtype: Any) -> Any:
  """The tree with its floating-point arrays cast to `dtype` (integer arrays and non-arrays unchanged).

  Example:
    >>> cast_floats({"w": jnp.ones(2), "ids": jnp.arange(2), "flag": True}, jnp.bfloat16)["w"].dtype
    dtype(bfloat16)
  """
  def cast(leaf):
    return leaf.astype(dtype) if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating) else leaf
  return jax.tree.map(cast, tree)
