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

`StackedRNNCells` makes a list of cells one cell (Keras's class of that name),
for `jaxcomponents.layers.recurrent.RNN`. A cell whose states are not
`(batch, features)` (`ConvLSTMCell`) says what they are with a method
`state_shapes(x_shape)`, the shapes of its states for a step input of shape
`x_shape`; `state_shapes(cell, x_shape)` asks any cell.

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

from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents import activations, initializers
from jaxcomponents.deprecation import renamed_to
from jaxcomponents.errors import check_bool, check_positive_int, check_rate
from jaxcomponents.layers.init_fields import RecurrentInitFields
from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.ops import random

Carry = tuple[jax.Array, ...]

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


def lstm_gates(z: jax.Array, c: jax.Array, act, gate_act) -> tuple[Carry, jax.Array]:
  """Keras's LSTM update from the summed projections `z` (gates i, f, c, o in that order): `((h, c), h)`."""
  i, f, g, o = jnp.split(z, 4, axis=-1)
  c = gate_act(f) * c + gate_act(i) * act(g)
  h = gate_act(o) * act(c)
  return (h, c), h


def lstm_bias_init(key: jax.Array, shape: tuple[int, ...], dtype, features: int, unit_forget_bias: bool,
                   bias_init: initializers.Initializer = nn.initializers.zeros) -> jax.Array:
  """Keras's LSTM bias: `bias_init` over the four gates, or with `unit_forget_bias` over the input gate and then
  the cell and output gates apart, the forget gate's ones between them."""
  if not unit_forget_bias:
    return bias_init(key, shape, dtype)
  first, rest = jax.random.split(key)
  return jnp.concatenate([bias_init(first, (features,), dtype), jnp.ones((features,), dtype),
                          bias_init(rest, (2 * features,), dtype)])


def check_cell(cell: nn.Module, *flags: str) -> None:
  """A built-in cell's size, dropout rates and boolean `flags` (`use_bias`, ...), checked at every call (at
  inference too, where the rates are not used), each error naming its field."""
  check_positive_int("features", cell.features)
  check_rate("dropout", cell.dropout)
  check_rate("recurrent_dropout", cell.recurrent_dropout)
  for flag in ("use_bias", *flags):
    check_bool(flag, getattr(cell, flag))


def _gate_masks(mask: jax.Array | None, start: int, stop: int) -> jax.Array | None:
  """The masks of gates `start:stop` (a shared mask serves every gate)."""
  if mask is None or mask.ndim == 2:
    return mask
  return mask[start:stop] if stop - start > 1 else mask[start]


class LSTMCell(PrecisionFields, RecurrentInitFields):
  """Keras's `LSTMCell`: gates i, f, c, o; carry `(h, c)`; output `h`.

  Attributes:
    features: state size (Keras's `units`).
    activation: Keras name or callable for the cell input and output (tanh).
    recurrent_activation: Keras name or callable for the gates (sigmoid).
    use_bias: add `bias (4 * features,)`.
    unit_forget_bias: initialize the forget-gate bias to 1 (Keras's default).
    units: deprecated alias of `features` (removed in the next release).
    dropout, recurrent_dropout: Keras's rates in [0, 1) for `RNN`, which draws the masks (`Recurrent` has its
      own rates and refuses a cell module with these set).
    kernel_init, recurrent_kernel_init, bias_init: keyword-only initializers (Keras's `glorot_uniform`,
      `orthogonal`, `zeros`); see `jaxcomponents.layers.init_fields`.
    dtype, param_dtype, precision: keyword-only; see the module doc.
  """

  features: int | None = None
  activation: str | activations.Activation | None = "tanh"
  recurrent_activation: str | activations.Activation | None = "sigmoid"
  use_bias: bool = True
  unit_forget_bias: bool = True
  units: int | None = renamed_to("features")
  dropout: float = 0.0
  recurrent_dropout: float = 0.0
  num_states: ClassVar[int] = 2
  gates: ClassVar[int] = 4
  keras_name: ClassVar[str] = "lstm"

  @nn.compact
  def __call__(self, carry: Carry, x: jax.Array, input_mask: jax.Array | None = None,
               recurrent_mask: jax.Array | None = None) -> tuple[Carry, jax.Array]:
    check_cell(self, "unit_forget_bias")
    act = activations.get(self.activation, "activation")
    gate_act = activations.get(self.recurrent_activation, "recurrent_activation")
    u = self.features
    h, c = carry
    kernel = self.init_param("kernel", "kernel_init", (x.shape[-1], 4 * u))
    recurrent_kernel = self.init_param("recurrent_kernel", "recurrent_kernel_init", (u, 4 * u))
    bias = self.param("bias", self._bias_init, (4 * u,), self.param_dtype) if self.use_bias else None
    x, h, c, kernel, recurrent_kernel, bias = nn.dtypes.promote_dtype(x, h, c, kernel, recurrent_kernel, bias,
                                                                      dtype=self.dtype)
    z = (project(x, kernel, input_mask, 4, self.precision)
         + project(h, recurrent_kernel, recurrent_mask, 4, self.precision))
    if bias is not None:
      z = z + bias
    return lstm_gates(z, c, act, gate_act)

  def _bias_init(self, key, shape, dtype=jnp.float32):
    return lstm_bias_init(key, shape, dtype, self.features, self.unit_forget_bias, self.initializer("bias_init"))


class GRUCell(PrecisionFields, RecurrentInitFields):
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
    dropout, recurrent_dropout: Keras's rates in [0, 1) for `RNN`, which draws the masks (`Recurrent` has its
      own rates and refuses a cell module with these set).
    kernel_init, recurrent_kernel_init, bias_init: keyword-only initializers (Keras's `glorot_uniform`,
      `orthogonal`, `zeros`); see `jaxcomponents.layers.init_fields`.
    dtype, param_dtype, precision: keyword-only; see the module doc.
  """

  features: int | None = None
  activation: str | activations.Activation | None = "tanh"
  recurrent_activation: str | activations.Activation | None = "sigmoid"
  use_bias: bool = True
  reset_after: bool = True
  units: int | None = renamed_to("features")
  dropout: float = 0.0
  recurrent_dropout: float = 0.0
  num_states: ClassVar[int] = 1
  gates: ClassVar[int] = 3
  keras_name: ClassVar[str] = "gru"

  @nn.compact
  def __call__(self, carry: Carry, x: jax.Array, input_mask: jax.Array | None = None,
               recurrent_mask: jax.Array | None = None) -> tuple[Carry, jax.Array]:
    check_cell(self, "reset_after")
    act = activations.get(self.activation, "activation")
    gate_act = activations.get(self.recurrent_activation, "recurrent_activation")
    u = self.features
    (h,) = carry
    kernel = self.init_param("kernel", "kernel_init", (x.shape[-1], 3 * u))
    recurrent_kernel = self.init_param("recurrent_kernel", "recurrent_kernel_init", (u, 3 * u))
    bias = None
    if self.use_bias:
      bias = self.init_param("bias", "bias_init", (2, 3 * u) if self.reset_after else (3 * u,))
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


class SimpleRNNCell(PrecisionFields, RecurrentInitFields):
  """Keras's `SimpleRNNCell`: `h = activation(x @ kernel + bias + h @ recurrent_kernel)`.

  Attributes:
    features: state size (Keras's `units`).
    activation: Keras name or callable (tanh).
    use_bias: add `bias (features,)`.
    units: deprecated alias of `features` (removed in the next release).
    dropout, recurrent_dropout: Keras's rates in [0, 1) for `RNN`, which draws the masks (`Recurrent` has its
      own rates and refuses a cell module with these set).
    kernel_init, recurrent_kernel_init, bias_init: keyword-only initializers (Keras's `glorot_uniform`,
      `orthogonal`, `zeros`); see `jaxcomponents.layers.init_fields`.
    dtype, param_dtype, precision: keyword-only; see the module doc.
  """

  features: int | None = None
  activation: str | activations.Activation | None = "tanh"
  use_bias: bool = True
  units: int | None = renamed_to("features")
  dropout: float = 0.0
  recurrent_dropout: float = 0.0
  num_states: ClassVar[int] = 1
  gates: ClassVar[int] = 1
  keras_name: ClassVar[str] = "simple_rnn"

  @nn.compact
  def __call__(self, carry: Carry, x: jax.Array, input_mask: jax.Array | None = None,
               recurrent_mask: jax.Array | None = None) -> tuple[Carry, jax.Array]:
    check_cell(self)
    act = activations.get(self.activation, "activation")
    u = self.features
    (h,) = carry
    kernel = self.init_param("kernel", "kernel_init", (x.shape[-1], u))
    bias = self.init_param("bias", "bias_init", (u,)) if self.use_bias else None
    recurrent_kernel = self.init_param("recurrent_kernel", "recurrent_kernel_init", (u, u))
    x, h, kernel, bias, recurrent_kernel = nn.dtypes.promote_dtype(x, h, kernel, bias, recurrent_kernel,
                                                                   dtype=self.dtype)
    y = project(x, kernel, input_mask, 1, self.precision)
    if bias is not None:
      y = y + bias
    h = act(y + project(h, recurrent_kernel, recurrent_mask, 1, self.precision))
    return (h,), h


class StackedRNNCells(nn.Module):
  """Keras's `StackedRNNCells`: cells run one after the other at each step, as one cell.

  The carry is every cell's states in order (LSTM `h, c`, then the next cell's);
  each cell's output is the next one's input; the last cell's output is the
  output. Dropout masks, when given, are tuples with one entry per cell.

  Attributes:
    cells: the cells (`LSTMCell`, `GRUCell`, `SimpleRNNCell`, `ConvLSTMCell` or your own), each configured.
    names: the cells' module names (Keras's cell names, which its weight paths carry); default Keras's
      automatic ones: `lstm_cell`, `lstm_cell_1`, `gru_cell`, ...

  Example:
    >>> import jax, jax.numpy as jnp
    >>> stack = StackedRNNCells([LSTMCell(4), GRUCell(3)])
    >>> carry = tuple(jnp.zeros(s) for s in state_shapes(stack, (2, 5)))
    >>> variables = stack.init(jax.random.key(0), carry, jnp.ones((2, 5)))
    >>> sorted(variables["params"]), stack.num_states
    (['gru_cell', 'lstm_cell'], 3)
  """

  cells: Sequence[nn.Module]
  names: Sequence[str] | None = None
  gates: ClassVar[int] = 1
  keras_name: ClassVar[str] = "stacked_rnn_cells"

  @property
  def num_states(self) -> int:
    return sum(cell.num_states for cell in self.cells)

  @property
  def features(self) -> int:
    """The output size: the last cell's."""
    return _features(self.cells[-1])

  def cell_names(self) -> list[str]:
    if self.names is not None:
      if len(self.names) != len(self.cells) or len(set(self.names)) != len(self.names):
        raise ValueError(f"names={list(self.names)!r} is not allowed; expected {len(self.cells)} distinct names, one "
                         f"per cell.")
      return list(self.names)
    counts: dict[str, int] = {}
    names = []
    for cell in self.cells:
      base = f"{cell.keras_name}_cell"
      names.append(base if base not in counts else f"{base}_{counts[base]}")
      counts[base] = counts.get(base, 0) + 1
    return names

  def state_shapes(self, x_shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    shapes = []
    for cell in self.cells:
      own = state_shapes(cell, x_shape)
      shapes.extend(own)
      x_shape = own[0]
    return tuple(shapes)

  @nn.compact
  def __call__(self, carry: Carry, x: jax.Array, input_mask: Sequence[Any] | None = None,
               recurrent_mask: Sequence[Any] | None = None) -> tuple[Carry, jax.Array]:
    if not self.cells:
      raise ValueError("cells=[] is not allowed; expected at least one cell.")
    new_carry, start = [], 0
    for k, (cell, name) in enumerate(zip(self.cells, self.cell_names())):
      n = cell.num_states
      masks = (None if input_mask is None else input_mask[k], None if recurrent_mask is None else recurrent_mask[k])
      states, x = cell.clone(parent=self, name=name)(tuple(carry[start:start + n]), x, *masks)
      new_carry.extend(states)
      start += n
    return tuple(new_carry), x


def _features(cell: nn.Module) -> int:
  return cell.features if hasattr(cell, "features") else cell.units


def state_shapes(cell: nn.Module, x_shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
  """The shapes of a cell's states for one step's input of shape `x_shape` (`(batch, features)` unless it says)."""
  if hasattr(cell, "state_shapes"):
    return tuple(tuple(s) for s in cell.state_shapes(tuple(x_shape)))
  return ((x_shape[0], _features(cell)),) * cell.num_states


def dropout_keep_mask(key: jax.Array, rate: float, shape: tuple[int, ...], dtype) -> jax.Array:
  """Keras's `dropout(ones)`: 0 or 1 / (1 - rate)."""
  keep = random.bernoulli(key, 1.0 - rate, shape)
  return jnp.where(keep, jnp.asarray(1.0 / (1.0 - rate), dtype), jnp.asarray(0.0, dtype))


def dropout_masks(cell: nn.Module, key: jax.Array, x_shape: tuple[int, ...], dtype) -> tuple[Any, Any]:
  """One sequence's dropout masks for a cell from its own `dropout` and `recurrent_dropout`, as Keras's `RNN` draws.

  Returns `(input_mask, recurrent_mask)`, None where a rate is 0. A mask is
  shared by the gates, or one per gate (stacked first) where Keras draws one
  per gate: LSTM and GRU with recurrent dropout, and cells with
  `per_gate_dropout` (ConvLSTM). `StackedRNNCells` gives tuples, one entry per cell.
  """
  if isinstance(cell, StackedRNNCells):
    inputs, recurrents = [], []
    for sub in cell.cells:
      key, own = jax.random.split(key)
      input_mask, recurrent_mask = dropout_masks(sub, own, x_shape, dtype)
      inputs.append(input_mask)
      recurrents.append(recurrent_mask)
      x_shape = state_shapes(sub, x_shape)[0]
    return (tuple(inputs) if any(m is not None for m in inputs) else None,
            tuple(recurrents) if any(m is not None for m in recurrents) else None)
  rate, recurrent_rate = getattr(cell, "dropout", 0.0), getattr(cell, "recurrent_dropout", 0.0)
  check_rate("dropout", rate)
  check_rate("recurrent_dropout", recurrent_rate)
  if not rate and not recurrent_rate:
    return None, None
  gates = cell.gates
  per_gate = (gates,) if gates > 1 and (recurrent_rate or getattr(cell, "per_gate_dropout", False)) else ()
  key_in, key_rec = jax.random.split(key)
  input_mask = dropout_keep_mask(key_in, rate, (*per_gate, *x_shape), dtype) if rate else None
  recurrent_mask = None
  if recurrent_rate:
    recurrent_mask = dropout_keep_mask(key_rec, recurrent_rate, (*per_gate, *state_shapes(cell, x_shape)[0]), dtype)
  return input_mask, recurrent_mask
