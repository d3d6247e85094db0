"""Recurrent cells with Keras's math, weight names, layouts and initializers.

One call computes one time step, `cell(carry, x) -> (new_carry, output)`, with
`carry` a tuple of `(batch, units)` arrays (LSTM: `(h, c)`; GRU and SimpleRNN:
`(h,)`) and `x` of shape `(batch, features)`. Each cell owns Keras's three
weights, `kernel (features, g * units)`, `recurrent_kernel (units, g * units)`
and `bias`, with the gates in Keras's order (LSTM i, f, c, o; GRU z, r, h), so
`jaxcomponents.weights.load_keras` copies them unchanged.

Dropout masks come from the caller (`Recurrent` samples them once per sequence):
`input_mask` multiplies `x`, `recurrent_mask` multiplies the previous `h`. A
mask is either one array shaped like the masked value, shared by every gate,
or one per gate stacked on a leading axis, `(gates, batch, n)`, which is what
Keras 3 does for LSTM and GRU when `recurrent_dropout > 0`.

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

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents import activations
from jaxcomponents.errors import check_positive_int

Carry = tuple[jax.Array, ...]

glorot_uniform = nn.initializers.glorot_uniform()
orthogonal = nn.initializers.orthogonal()
zeros = nn.initializers.zeros


def project(v: jax.Array, kernel: jax.Array, mask: jax.Array | None, gates: int) -> jax.Array:
  """`v @ kernel` with `v` dropped out by `mask`: one mask for all gates, or one per gate."""
  if mask is None:
    return v @ kernel
  if mask.ndim == v.ndim:
    return (v * mask) @ kernel
  n, width = kernel.shape
  y = jnp.einsum("gbn,ngu->bgu", v * mask, kernel.reshape(n, gates, width // gates))
  return y.reshape(v.shape[0], width)


def _gate_masks(mask: jax.Array | None, start: int, stop: int) -> jax.Array | None:
  """The masks of gates `start:stop` (a shared mask serves every gate)."""
  if mask is None or mask.ndim == 2:
    return mask
  return mask[start:stop] if stop - start > 1 else mask[start]


class LSTMCell(nn.Module):
  """Keras's `LSTMCell`: gates i, f, c, o; carry `(h, c)`; output `h`.

  Attributes:
    units: state size.
    activation: Keras name or callable for the cell input and output (tanh).
    recurrent_activation: Keras name or callable for the gates (sigmoid).
    use_bias: add `bias (4 * units,)`.
    unit_forget_bias: initialize the forget-gate bias to 1 (Keras's default).
  """

  units: int
  activation: str | activations.Activation | None = "tanh"
  recurrent_activation: str | activations.Activation | None = "sigmoid"
  use_bias: bool = True
  unit_forget_bias: bool = True

  @nn.compact
  def __call__(self, carry: Carry, x: jax.Array, input_mask: jax.Array | None = None,
               recurrent_mask: jax.Array | None = None) -> tuple[Carry, jax.Array]:
    check_positive_int("units", self.units)
    act = activations.get(self.activation, "activation")
    gate_act = activations.get(self.recurrent_activation, "recurrent_activation")
    u = self.units
    h, c = carry
    kernel = self.param("kernel", glorot_uniform, (x.shape[-1], 4 * u))
    recurrent_kernel = self.param("recurrent_kernel", orthogonal, (u, 4 * u))
    z = project(x, kernel, input_mask, 4) + project(h, recurrent_kernel, recurrent_mask, 4)
    if self.use_bias:
      z = z + self.param("bias", self._bias_init, (4 * u,))
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = gate_act(f) * c + gate_act(i) * act(g)
    h = gate_act(o) * act(c)
    return (h, c), h

  def _bias_init(self, key, shape, dtype=jnp.float32):
    bias = zeros(key, shape, dtype)
    if self.unit_forget_bias:
      bias = bias.at[self.units:2 * self.units].set(1.0)
    return bias


class GRUCell(nn.Module):
  """Keras's `GRUCell`: gates z, r, h; carry `(h,)`; output `h`.

  Attributes:
    units: state size.
    activation: Keras name or callable for the candidate state (tanh).
    recurrent_activation: Keras name or callable for the gates (sigmoid).
    use_bias: add a bias: `(2, 3 * units)` (input and recurrent rows) when
      `reset_after`, else `(3 * units,)`.
    reset_after: apply the reset gate after the recurrent matmul (Keras 3's and
      cuDNN's default) rather than before it.
  """

  units: int
  activation: str | activations.Activation | None = "tanh"
  recurrent_activation: str | activations.Activation | None = "sigmoid"
  use_bias: bool = True
  reset_after: bool = True

  @nn.compact
  def __call__(self, carry: Carry, x: jax.Array, input_mask: jax.Array | None = None,
               recurrent_mask: jax.Array | None = None) -> tuple[Carry, jax.Array]:
    check_positive_int("units", self.units)
    act = activations.get(self.activation, "activation")
    gate_act = activations.get(self.recurrent_activation, "recurrent_activation")
    u = self.units
    (h,) = carry
    kernel = self.param("kernel", glorot_uniform, (x.shape[-1], 3 * u))
    recurrent_kernel = self.param("recurrent_kernel", orthogonal, (u, 3 * u))
    input_bias = recurrent_bias = None
    if self.use_bias:
      if self.reset_after:
        input_bias, recurrent_bias = self.param("bias", zeros, (2, 3 * u))
      else:
        input_bias = self.param("bias", zeros, (3 * u,))

    x_proj = project(x, kernel, input_mask, 3)
    if input_bias is not None:
      x_proj = x_proj + input_bias
    x_z, x_r, x_h = jnp.split(x_proj, 3, axis=-1)
    if self.reset_after:
      rec = project(h, recurrent_kernel, recurrent_mask, 3)
      if recurrent_bias is not None:
        rec = rec + recurrent_bias
      rec_z, rec_r, rec_h = jnp.split(rec, 3, axis=-1)
      z = gate_act(x_z + rec_z)
      r = gate_act(x_r + rec_r)
      hh = act(x_h + r * rec_h)
    else:
      rec = project(h, recurrent_kernel[:, :2 * u], _gate_masks(recurrent_mask, 0, 2), 2)
      rec_z, rec_r = jnp.split(rec, 2, axis=-1)
      z = gate_act(x_z + rec_z)
      r = gate_act(x_r + rec_r)
      h_mask = _gate_masks(recurrent_mask, 2, 3)
      h_in = h if h_mask is None else h * h_mask
      hh = act(x_h + (r * h_in) @ recurrent_kernel[:, 2 * u:])
    h = z * h + (1.0 - z) * hh
    return (h,), h


class SimpleRNNCell(nn.Module):
  """Keras's `SimpleRNNCell`: `h = activation(x @ kernel + bias + h @ recurrent_kernel)`.

  Attributes:
    units: state size.
    activation: Keras name or callable (tanh).
    use_bias: add `bias (units,)`.
  """

  units: int
  activation: str | activations.Activation | None = "tanh"
  use_bias: bool = True

  @nn.compact
  def __call__(self, carry: Carry, x: jax.Array, input_mask: jax.Array | None = None,
               recurrent_mask: jax.Array | None = None) -> tuple[Carry, jax.Array]:
    check_positive_int("units", self.units)
    act = activations.get(self.activation, "activation")
    u = self.units
    (h,) = carry
    y = project(x, self.param("kernel", glorot_uniform, (x.shape[-1], u)), input_mask, 1)
    if self.use_bias:
      y = y + self.param("bias", zeros, (u,))
    h = act(y + project(h, self.param("recurrent_kernel", orthogonal, (u, u)), recurrent_mask, 1))
    return (h,), h
