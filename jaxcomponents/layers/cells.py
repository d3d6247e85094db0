"""Recurrent cells with Keras's math, weight names, layouts and initializers.

One call computes one time step, `cell(carry, x) -> (new_carry, output)`, with
`carry` a tuple of `(batch, features)` arrays (LSTM: `(h, c)`; GRU and
SimpleRNN: `(h,)`) and `x` of shape `(batch, in_features)`. Each cell owns
Keras's three weights, `kernel (in_features, g * features)`,
`recurrent_kernel (features, g * features)` and `bias`, with the gates in
Keras's order (LSTM i, f, c, o; GRU z, r, h), so
`jaxcomponents.weights.load_keras` copies them unchanged.

Dropout masks come from the caller (`Recurrent` samples them once per sequence):
`input_mask` multiplies `x`, `recurrent_mask` multiplies the previous `h`. A
mask is either one array shaped like the masked value, shared by every gate,
or one per gate stacked on a leading axis, `(gates, batch, n)`, which is what
Keras 3 does for LSTM and GRU when `recurrent_dropout > 0`.

A cell of your own works in `Recurrent(cell=...)` when it follows the same
protocol: a `features` field (the state size, Keras's `units`), class
attributes `num_states` (arrays in the carry), `gates` (how many per-gate
dropout masks it takes) and `keras_name` (the layer name `Recurrent` gives
it), and this call signature. The built-in cells still take `units` as a
deprecated alias of `features` for one release.

Precision, as `flax.linen` cells have it: `dtype` (computation dtype; None:
inferred from the inputs, carry and parameters), `param_dtype` (float32) and
`precision` of the products (None: JAX's default); see
`jaxcomponents.layers.precision`. The carry comes back in the computation dtype.

Example:
  >>> import jax, jax.numpy as jnp
  >>> cell = LSTMCell(4)
  >>> carry = (jnp.zeros((2, 4)), jnp.zeros((2, 4)))
  >>> variables = cell.init(jax.random.key(0), carry, jnp.ones((2, 3)))
  >>> (h, c), y = cell.apply(variables, carry, jnp.ones((2, 3)))
  >>> y.shape
  (2, 4)
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents import activations
from jaxcomponents.deprecation import renamed_to
from jaxcomponents.errors import check_positive_int
from jaxcomponents.layers.precision import PrecisionFields

Carry = tuple[jax.Array, ...]

glorot_uniform = nn.initializers.glorot_uniform()
zeros = nn.initializers.zeros
_orthogonal = nn.initializers.orthogonal()


def orthogonal(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
  """Keras's orthogonal initializer, drawn in at least float32 (the QR it takes has no bfloat16 kernel)."""
  return _orthogonal(key, shape, jnp.promote_types(dtype, jnp.float32)).astype(dtype)


def project(v: jax.Array, kernel: jax.Array, mask: jax.Array | None, gates: int, precision=None) -> jax.Array:
  """`v @ kernel` with `v` dropped out by `mask`: one mask for all gates, or one per gate."""
  if mask is None:
    return jnp.matmul(v, kernel, precision=precision)
  mask = mask.astype(v.dtype)
  if mask.ndim == v.ndim:
    return jnp.matmul(v * mask, kernel, precision=precision)
  n, width = kernel.shape
  y = jnp.einsum("gbn,ngu->bgu", v * mask, kernel.reshape(n, gates, width // gates), precision=precision)
  return y.reshape(v.shape[0], width)


def _gate_masks(mask: jax.Array | None, start: int, stop: int) -> jax.Array | None:
  """The masks of gates `start:stop` (a shared mask serves every gate)."""
  if mask is None or mask.ndim == 2:
    return mask
  return mask[start:stop] if stop - start > 1 else mask[start]


class LSTMCell(PrecisionFields):
  """Keras's `LSTMCell`: gates i, f, c, o; carry `(h, c)`; output `h`.

  Attributes:
    features: state size (Keras's `units`).
    activation: Keras name or callable for the cell input and output (tanh).
    recurrent_activation: Keras name or callable for the gates (sigmoid).
    use_bias: add `bias (4 * features,)`.
    unit_forget_bias: initialize the forget-gate bias to 1 (Keras's default).
    units: deprecated alias of `features` (removed in the next release).
    dtype, param_dtype, precision: keyword-only; see the module doc.
  """

  features: int | None = None
  activation: str | activations.Activation | None = "tanh"
  recurrent_activation: str | activations.Activation | None = "sigmoid"
  use_bias: bool = True
  unit_forget_bias: bool = True
  units: int | None = renamed_to("features")
  num_states: ClassVar[int] = 2
  gates: ClassVar[int] = 4
  keras_name: ClassVar[str] = "lstm"

  @nn.compact
  def __call__(self, carry: Carry, x: jax.Array, input_mask: jax.Array | None = None,
               recurrent_mask: jax.Array | None = None) -> tuple[Carry, jax.Array]:
    check_positive_int("features", self.features)
    act = activations.get(self.activation, "activation")
    gate_act = activations.get(self.recurrent_activation, "recurrent_activation")
    u = self.features
    h, c = carry
    kernel = self.param("kernel", glorot_uniform, (x.shape[-1], 4 * u), self.param_dtype)
    recurrent_kernel = self.param("recurrent_kernel", orthogonal, (u, 4 * u), self.param_dtype)
    bias = self.param("bias", self._bias_init, (4 * u,), self.param_dtype) if self.use_bias else None
    x, h, c, kernel, recurrent_kernel, bias = nn.dtypes.promote_dtype(x, h, c, kernel, recurrent_kernel, bias,
                                                                      dtype=self.dtype)
    z = (project(x, kernel, input_mask, 4, self.precision)
         + project(h, recurrent_kernel, recurrent_mask, 4, self.precision))
    if bias is not None:
      z = z + bias
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = gate_act(f) * c + gate_act(i) * act(g)
    h = gate_act(o) * act(c)
    return (h, c), h

  def _bias_init(self, key, shape, dtype=jnp.float32):
    bias = zeros(key, shape, dtype)
    if self.unit_forget_bias:
      bias = bias.at[self.features:2 * self.features].set(1.0)
    return bias


class GRUCell(PrecisionFields):
  """Keras's `GRUCell`: gates z, r, h; carry `(h,)`; output `h`.

  Attributes:
    features: state size (Keras's `units`).
    activation: Keras name or callable for the candidate state (tanh).
    recurrent_activation: Keras name or callable for the gates (sigmoid).
    use_bias: add a bias: `(2, 3 * features)` (input and recurrent rows) when
      `reset_after`, else `(3 * features,)`.
    reset_after: apply the reset gate after the recurrent matmul (Keras 3's and
      cuDNN's default) rather than before it.
    units: deprecated alias of `features` (removed in the next release).
    dtype, param_dtype, precision: keyword-only; see the module doc.
  """

  features: int | None = None
  activation: str | activations.Activation | None = "tanh"
  recurrent_activation: str | activations.Activation | None = "sigmoid"
  use_bias: bool = True
  reset_after: bool = True
  units: int | None = renamed_to("features")
  num_states: ClassVar[int] = 1
  gates: ClassVar[int] = 3
  keras_name: ClassVar[str] = "gru"

  @nn.compact
  def __call__(self, carry: Carry, x: jax.Array, input_mask: jax.Array | None = None,
               recurrent_mask: jax.Array | None = None) -> tuple[Carry, jax.Array]:
    check_positive_int("features", self.features)
    act = activations.get(self.activation, "activation")
    gate_act = activations.get(self.recurrent_activation, "recurrent_activation")
    u = self.features
    (h,) = carry
    kernel = self.param("kernel", glorot_uniform, (x.shape[-1], 3 * u), self.param_dtype)
    recurrent_kernel = self.param("recurrent_kernel", orthogonal, (u, 3 * u), self.param_dtype)
    bias = None
    if self.use_bias:
      bias = self.param("bias", zeros, (2, 3 * u) if self.reset_after else (3 * u,), self.param_dtype)
    x, h, kernel, recurrent_kernel, bias = nn.dtypes.promote_dtype(x, h, kernel, recurrent_kernel, bias,
                                                                   dtype=self.dtype)
    input_bias = recurrent_bias = None
    if bias is not None:
      input_bias, recurrent_bias = bias if self.reset_after else (bias, None)

    x_proj = project(x, kernel, input_mask, 3, self.precision)
    if input_bias is not None:
      x_proj = x_proj + input_bias
    x_z, x_r, x_h = jnp.split(x_proj, 3, axis=-1)
    if self.reset_after:
      rec = project(h, recurrent_kernel, recurrent_mask, 3, self.precision)
      if recurrent_bias is not None:
        rec = rec + recurrent_bias
      rec_z, rec_r, rec_h = jnp.split(rec, 3, axis=-1)
      z = gate_act(x_z + rec_z)
      r = gate_act(x_r + rec_r)
      hh = act(x_h + r * rec_h)
    else:
      rec = project(h, recurrent_kernel[:, :2 * u], _gate_masks(recurrent_mask, 0, 2), 2, self.precision)
      rec_z, rec_r = jnp.split(rec, 2, axis=-1)
      z = gate_act(x_z + rec_z)
      r = gate_act(x_r + rec_r)
      h_mask = _gate_masks(recurrent_mask, 2, 3)
      h_in = h if h_mask is None else h * h_mask.astype(h.dtype)
      hh = act(x_h + jnp.matmul(r * h_in, recurrent_kernel[:, 2 * u:], precision=self.precision))
    h = z * h + (1.0 - z) * hh
    return (h,), h


class SimpleRNNCell(PrecisionFields):
  """Keras's `SimpleRNNCell`: `h = activation(x @ kernel + bias + h @ recurrent_kernel)`.

  Attributes:
    features: state size (Keras's `units`).
    activation: Keras name or callable (tanh).
    use_bias: add `bias (features,)`.
    units: deprecated alias of `features` (removed in the next release).
    dtype, param_dtype, precision: keyword-only; see the module doc.
  """

  features: int | None = None
  activation: str | activations.Activation | None = "tanh"
  use_bias: bool = True
  units: int | None = renamed_to("features")
  num_states: ClassVar[int] = 1
  gates: ClassVar[int] = 1
  keras_name: ClassVar[str] = "simple_rnn"

  @nn.compact
  def __call__(self, carry: Carry, x: jax.Array, input_mask: jax.Array | None = None,
               recurrent_mask: jax.Array | None = None) -> tuple[Carry, jax.Array]:
    check_positive_int("features", self.features)
    act = activations.get(self.activation, "activation")
    u = self.features
    (h,) = carry
    kernel = self.param("kernel", glorot_uniform, (x.shape[-1], u), self.param_dtype)
    bias = self.param("bias", zeros, (u,), self.param_dtype) if self.use_bias else None
    recurrent_kernel = self.param("recurrent_kernel", orthogonal, (u, u), self.param_dtype)
    x, h, kernel, bias, recurrent_kernel = nn.dtypes.promote_dtype(x, h, kernel, bias, recurrent_kernel,
                                                                   dtype=self.dtype)
    y = project(x, kernel, input_mask, 1, self.precision)
    if bias is not None:
      y = y + bias
    h = act(y + project(h, recurrent_kernel, recurrent_mask, 1, self.precision))
    return (h,), h
