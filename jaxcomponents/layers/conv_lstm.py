"""Keras's convolutional LSTMs: `ConvLSTMCell` and the layers `ConvLSTM1D`, `ConvLSTM2D`, `ConvLSTM3D`.

An LSTM whose input and recurrent transformations are convolutions
(`keras/src/layers/rnn/conv_lstm.py`): the gates i, f, c, o are the four
blocks of `features` output channels (Keras's `filters`) of `conv(x, kernel) + bias +
conv(h, recurrent_kernel)`. The input convolution takes the layer's strides,
padding and dilation; the recurrent one is stride 1, "same", undilated, so the
states keep the input convolution's output shape `(batch, *spatial, features)`.
Weights have Keras's names and layouts: `kernel (*kernel_size, in, 4 * features)`,
`recurrent_kernel (*kernel_size, features, 4 * features)`, `bias (4 * features,)`.

The layers run the cell with `RNN`'s scan (`jaxcomponents.layers.recurrent`),
so masks, `go_backwards`, `initial_state`, `stateful` and dropout behave as
there. Keras draws ConvLSTM's dropout masks per gate (four input masks and
four recurrent masks, each fixed over time).

Masks: Keras 3.15 on JAX computes a masked ConvLSTM only with `unroll=True`;
its scan broadcasts the `(batch, 1)` step mask against `(batch, *spatial,
filters)` states, which fails (or, when the last spatial size equals the
batch, mixes examples). These layers apply the mask per example, as Keras's
unrolled loop does, in both modes.

Example:
  >>> import jax, jax.numpy as jnp
  >>> layer = ConvLSTM2D(4, 3, padding="same", return_sequences=True)
  >>> x = jnp.ones((2, 5, 8, 8, 3))
  >>> variables = layer.init(jax.random.key(0), x)
  >>> {k: v.shape for k, v in variables["params"]["conv_lstm_cell"].items()}
  {'bias': (16,), 'kernel': (3, 3, 3, 16), 'recurrent_kernel': (3, 3, 4, 16)}
  >>> layer.apply(variables, x).shape
  (2, 5, 8, 8, 4)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents import activations
from jaxcomponents.errors import check_choice, is_int
from jaxcomponents.layers.cells import Carry, check_cell, lstm_bias_init, lstm_gates
from jaxcomponents.layers.init_fields import RecurrentInitFields
from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.layers.weight_regularizers import RecurrentRegularizerFields
from jaxcomponents.layers.recurrent import run_rnn
from jaxcomponents.ops import conv

PADDINGS = ("valid", "same")


def _tuple(value, rank: int, param: str) -> tuple[int, ...]:
  values = tuple(value) if isinstance(value, (list, tuple)) else (value,) * rank
  if len(values) != rank or not all(is_int(v) and v > 0 for v in values):
    raise ValueError(f"{param}={value!r} is not allowed; expected a positive integer or {rank} of them.")
  return values


class ConvLSTMCell(PrecisionFields, RecurrentInitFields):
  """Keras's `ConvLSTMCell`: one step of a convolutional LSTM; carry `(h, c)`, output `h`.

  Attributes:
    features: output channels, the states' (Keras's `filters`).
    kernel_size: the window, one size per spatial axis (its length is the rank, 1 to 3).
    strides, dilation_rate: of the input convolution (not both above 1, as in Keras).
    padding: "valid" or "same", of the input convolution.
    activation, recurrent_activation: Keras names or callables (tanh, sigmoid).
    use_bias: add `bias (4 * features,)` to the input convolution.
    unit_forget_bias: initialize the forget-gate bias to 1.
    dropout, recurrent_dropout: Keras's rates, read by `RNN` (masks per gate).
    kernel_init, recurrent_kernel_init, bias_init: keyword-only initializers (Keras's `glorot_uniform`,
      `orthogonal`, `zeros`); see `jaxcomponents.layers.init_fields`.
    dtype, param_dtype, precision: keyword-only; see `jaxcomponents.layers.precision`.
  """

  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] | int = 1
  padding: str = "valid"
  dilation_rate: Sequence[int] | int = 1
  activation: str | activations.Activation | None = "tanh"
  recurrent_activation: str | activations.Activation | None = "sigmoid"
  use_bias: bool = True
  unit_forget_bias: bool = True
  dropout: float = 0.0
  recurrent_dropout: float = 0.0
  num_states: ClassVar[int] = 2
  gates: ClassVar[int] = 4
  keras_name: ClassVar[str] = "conv_lstm"
  per_gate_dropout: ClassVar[bool] = True

  def _geometry(self) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    kernel_size = tuple(self.kernel_size) if isinstance(self.kernel_size, (list, tuple)) else (self.kernel_size,)
    rank = len(kernel_size)
    if rank not in (1, 2, 3):
      raise ValueError(f"kernel_size={self.kernel_size!r} is not allowed; expected 1 to 3 sizes (the rank).")
    kernel_size = _tuple(kernel_size, rank, "kernel_size")
    strides = _tuple(self.strides, rank, "strides")
    dilation = _tuple(self.dilation_rate, rank, "dilation_rate")
    if max(strides) > 1 and max(dilation) > 1:
      raise ValueError(f"strides={self.strides!r} with dilation_rate={self.dilation_rate!r} is not allowed; expected "
                       f"strides 1 or dilation_rate 1 (as Keras requires).")
    check_choice("padding", self.padding.lower() if isinstance(self.padding, str) else self.padding, PADDINGS)
    check_cell(self, "unit_forget_bias")
    return rank, kernel_size, strides, dilation

  def state_shapes(self, x_shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """The states' shape `(batch, *output_spatial, features)` for a step input of shape `x_shape`."""
    rank, kernel_size, strides, dilation = self._geometry()
    if len(x_shape) != rank + 2:
      raise ValueError(f"a step input of shape {tuple(x_shape)} is not allowed for kernel_size {kernel_size}; expected "
                       f"(batch, {rank} spatial sizes, channels).")
    spatial = []
    for n, k, s, d in zip(x_shape[1:-1], kernel_size, strides, dilation):
      span = n - (k - 1) * d if self.padding.lower() == "valid" else n  # in any case, as Keras
      if span < 1:
        raise ValueError(f"the input's spatial sizes {tuple(x_shape[1:-1])} are smaller than the dilated window of "
                         f"kernel_size {kernel_size} (dilation_rate {dilation}) with padding='valid'.")
      spatial.append(math.ceil(span / s))
    shape = (x_shape[0], *spatial, self.features)
    return (shape, shape)

  @nn.compact
  def __call__(self, carry: Carry, x: jax.Array, input_mask: jax.Array | None = None,
               recurrent_mask: jax.Array | None = None) -> tuple[Carry, jax.Array]:
    rank, kernel_size, strides, dilation = self._geometry()
    act = activations.get(self.activation, "activation")
    gate_act = activations.get(self.recurrent_activation, "recurrent_activation")
    f = self.features
    h, c = carry
    kernel = self.init_param("kernel", "kernel_init", (*kernel_size, x.shape[-1], 4 * f))
    recurrent_kernel = self.init_param("recurrent_kernel", "recurrent_kernel_init", (*kernel_size, f, 4 * f))
    bias = self.param("bias", self._bias_init, (4 * f,), self.param_dtype) if self.use_bias else None
    x, h, c, kernel, recurrent_kernel, bias = nn.dtypes.promote_dtype(x, h, c, kernel, recurrent_kernel, bias,
                                                                      dtype=self.dtype)
    numbers = conv.channels_last(rank)

    def convolve(v, w, mask, strides, padding, dilation):
      if mask is None or mask.ndim == v.ndim:  # no mask, or one shared by the gates
        v = v if mask is None else v * mask.astype(v.dtype)
        return conv.conv_general_dilated(v, w, strides, padding, rhs_dilation=dilation, dimension_numbers=numbers,
                                         precision=self.precision)
      blocks = jnp.split(w, 4, axis=-1)
      return jnp.concatenate([
          conv.conv_general_dilated(v * m.astype(v.dtype), b, strides, padding, rhs_dilation=dilation,
                                    dimension_numbers=numbers, precision=self.precision)
          for m, b in zip(mask, blocks)], axis=-1)

    z = convolve(x, kernel, input_mask, strides, self.padding.upper(), dilation)
    if bias is not None:
      z = z + bias
    z = z + convolve(h, recurrent_kernel, recurrent_mask, (1,) * rank, "SAME", (1,) * rank)
    return lstm_gates(z, c, act, gate_act)

  def _bias_init(self, key, shape, dtype=jnp.float32):
    return lstm_bias_init(key, shape, dtype, self.features, self.unit_forget_bias, self.initializer("bias_init"))


class ConvLSTM(PrecisionFields, RecurrentInitFields, RecurrentRegularizerFields):
  """Keras's `ConvLSTM1D/2D/3D`: a `ConvLSTMCell` run over `(batch, time, *spatial, channels)`.

  The cell is the submodule `conv_lstm_cell`, as Keras names it.

  Attributes:
    features (Keras's `filters`), kernel_size, strides, padding, dilation_rate, activation, recurrent_activation,
      use_bias, unit_forget_bias, dropout, recurrent_dropout: the cell's (`ConvLSTMCell`); `kernel_size`, `strides` and
      `dilation_rate` may be one integer for every spatial axis.
    return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask: as `RNN`'s;
      `return_state` gives `(output, h, c)`.
    kernel_init, recurrent_kernel_init, bias_init, dtype, param_dtype, precision: keyword-only, the cell's.
    kernel_regularizer, recurrent_regularizer, bias_regularizer: keyword-only, Keras's penalties of the cell's
      weights; see `jaxcomponents.layers.weight_regularizers`.

  Call arguments (all but `x` keyword-only): `x (batch, time, *spatial, channels)`, `train` (dropout, rng
  "dropout"), `mask` (boolean `(batch, time)`), `initial_state` (`[h, c]`, each `(batch, *out_spatial, features)`).
  """

  features: int
  kernel_size: Sequence[int] | int
  strides: Sequence[int] | int = 1
  padding: str = "valid"
  dilation_rate: Sequence[int] | int = 1
  activation: str | activations.Activation | None = "tanh"
  recurrent_activation: str | activations.Activation | None = "sigmoid"
  use_bias: bool = True
  unit_forget_bias: bool = True
  dropout: float = 0.0
  recurrent_dropout: float = 0.0
  return_sequences: bool = False
  return_state: bool = False
  go_backwards: bool = False
  stateful: bool = False
  unroll: bool = False
  zero_output_for_mask: bool = False
  rank: ClassVar[int | None] = None

  @property
  def keras_layer_name(self) -> str:
    return f"conv_lstm{self.rank}d" if self.rank else "conv_lstm"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False, mask: jax.Array | None = None, initial_state=None):
    x = jnp.asarray(x)
    rank = self.rank or x.ndim - 3
    if rank not in (1, 2, 3) or x.ndim != rank + 3:
      expected = f"rank {rank + 3}" if self.rank else "rank 4 to 6"
      raise ValueError(f"x has shape {x.shape}; expected {expected}: (batch, time, *spatial, channels).")
    cell = ConvLSTMCell(self.features, _tuple(self.kernel_size, rank, "kernel_size"), self.strides, self.padding,
                        self.dilation_rate, self.activation, self.recurrent_activation, self.use_bias,
                        self.unit_forget_bias, self.dropout, self.recurrent_dropout, name="conv_lstm_cell",
                        **self.precision_options, **self.init_options)
    self.sow_weight_penalties("conv_lstm_cell")
    return run_rnn(self, cell, x, train=train, mask=mask, initial_state=initial_state,
                   return_sequences=self.return_sequences, return_state=self.return_state,
                   go_backwards=self.go_backwards, stateful=self.stateful, unroll=self.unroll,
                   zero_output_for_mask=self.zero_output_for_mask)


class ConvLSTM1D(ConvLSTM):
  """Keras's `ConvLSTM1D`: inputs `(batch, time, length, channels)`; see `ConvLSTM`."""

  rank: ClassVar[int] = 1


class ConvLSTM2D(ConvLSTM):
  """Keras's `ConvLSTM2D`: inputs `(batch, time, height, width, channels)`; see `ConvLSTM`."""

  rank: ClassVar[int] = 2


class ConvLSTM3D(ConvLSTM):
  """Keras's `ConvLSTM3D`: inputs `(batch, time, depth, height, width, channels)`; see `ConvLSTM`."""

  rank: ClassVar[int] = 3


__all__ = ["ConvLSTM", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "ConvLSTMCell"]
