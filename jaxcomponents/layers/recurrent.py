"""The Recurrent component: Keras's LSTM, GRU and SimpleRNN, optionally `Bidirectional`.

The time loop is one lifted `nn.scan` over a cell of `jaxcomponents.layers.cells`
(weights broadcast to every step), so tracing and compiling do not grow with the
sequence length. Masks, `go_backwards`, dropout and the bidirectional merge follow
Keras 3 (`keras/src/layers/rnn/`, `keras/src/backend/jax/rnn.py`):

- a masked step keeps the previous state; its output is the previous output `h`,
  or zeros with `zero_output_for_mask` (Keras's `RNN` option, which
  `Bidirectional` sets to `return_sequences`); without `return_sequences` the
  output is the last step's (masked) output.
- `go_backwards` reads the sequence from its end and returns the outputs in
  that processing order.
- dropout masks are drawn once per call and direction and reused at every
  step: one input mask and one recurrent mask, or, like Keras for LSTM and GRU
  when `recurrent_dropout > 0`, one of each per gate.

On NVIDIA GPUs an LSTM that Keras would run through cuDNN runs through cuDNN
here too (`jax.experimental.rnn.lstm`, one call for both directions; see
`jaxcomponents.ops.cudnn_rnn` for the rule and the weight mapping): the choice
is made when the computation is lowered, so CPU, TPU, and CUDA machines lowering
for another platform run the scan, with the same results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcomponents import activations, deprecation
from jaxcomponents.deprecation import keyword_only, renamed_to
from jaxcomponents.errors import (changed_fields, check_bool, check_choice, check_positive_int, check_rank, check_rate,
                                  is_int)
from jaxcomponents.layers.cells import Carry, GRUCell, LSTMCell, SimpleRNNCell, dropout_keep_mask, dropout_masks
from jaxcomponents.layers.cells import state_shapes
from jaxcomponents.layers.init_fields import INIT_FIELDS, RecurrentInitFields
from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.layers.weight_regularizers import RecurrentRegularizerFields
from jaxcomponents.ops import cudnn_rnn

CELL_CLASSES = {"lstm": LSTMCell, "gru": GRUCell, "rnn": SimpleRNNCell}
CELLS = tuple(CELL_CLASSES)
MERGE_MODES = (None, "concat", "sum", "mul", "ave")
KERAS_UNROLLED = "keras"  # `Recurrent(unroll=True)` as kept: Keras's unrolled loop


STATES = "states"  # the variable collection of stateful layers' kept states (Keras's `rnn_state` variables)
_dropout_mask = dropout_keep_mask


def scan_cell(cell: nn.Module, carry: Carry, x: jax.Array, mask: jax.Array | None, masks: tuple[Any, Any], *,
              go_backwards: bool, zero_output: bool, return_sequences: bool, unroll: int | bool = 1,
              output_state: int = 0, unrolled_masking: bool = False) -> tuple[jax.Array, Carry]:
  """Runs a bound cell over `x` `(batch, time, ...)` with one `nn.scan`, as Keras's `backend.rnn`.

  Returns the outputs (in processing order, `(batch, time, ...)`) or the last one, and the final states.
  A masked step keeps the states; its output is zeros with `zero_output`, else
  the previous output: Keras's scan takes the state `carry[output_state]` (the
  last cell's `h`), Keras's unrolled loop (`unrolled_masking`, Keras's
  `unroll=True`) the previous step's output, zeros before the first, and
  never zeros.
  """
  xs = jnp.swapaxes(x, 0, 1)
  ms = None if mask is None else jnp.swapaxes(mask, 0, 1)
  if go_backwards:
    xs = jnp.flip(xs, axis=0)
    ms = None if ms is None else jnp.flip(ms, axis=0)

  def step(cell, scan_carry, inputs, dropout_masks):
    carry, previous = scan_carry
    x_t, m_t = inputs
    new_carry, y = cell(carry, x_t, *dropout_masks)
    if m_t is None:
      return (new_carry, previous), y

    def keep(value):
      return m_t.reshape(m_t.shape + (1,) * (value.ndim - 1))
    new_carry = tuple(jnp.where(keep(new), new, old) for new, old in zip(new_carry, carry))
    if unrolled_masking:
      y = jnp.where(keep(y), y, previous)
      return (new_carry, y), y
    y = jnp.where(keep(y), y, jnp.zeros_like(y) if zero_output else carry[output_state])
    return (new_carry, previous), y

  previous = jnp.zeros_like(carry[output_state]) if unrolled_masking and mask is not None else None
  scan = nn.scan(step, variable_broadcast="params", split_rngs={"params": False},
                 in_axes=(0, nn.broadcast), out_axes=0, unroll=unroll)
  (final, _), ys = scan(cell, (tuple(carry), previous), (xs, ms), masks)
  return (jnp.swapaxes(ys, 0, 1) if return_sequences else ys[-1]), final


def kept_states(module: nn.Module, states: Carry, given: bool, train: bool = False) -> Carry:
  """A stateful layer's initial states: those kept in collection "states" (unless `given`), else `states`.

  Raises:
    ValueError: in training without collection "states" mutable (the train steps do not carry it yet): the states
      would silently start from zeros at every batch, where Keras carries them.
  """
  if train and not module.is_initializing() and not module.is_mutable_collection(STATES):
    raise ValueError(f"the stateful layer {module.name!r} is trained without its states kept: apply it with "
                     f"mutable=[{STATES!r}] and carry them, as Keras does; jaxcomponents' train steps do not carry "
                     f"them yet (build the layer with stateful=False to train it).")
  if module.is_initializing() or not module.has_variable(STATES, "rnn_state"):
    return states
  kept = tuple(module.get_variable(STATES, "rnn_state"))
  shapes, expected = [jnp.shape(k) for k in kept], [jnp.shape(s) for s in states]
  if shapes != expected:
    raise ValueError(f"the states kept by the stateful layer {module.name!r} have shapes {shapes}; this call needs "
                     f"{expected}: a stateful layer's batch size (and input size) is fixed by its first call, as in "
                     f"Keras (reset with reset_states(variables, drop=True) to start with another).")
  return states if given else tuple(k.astype(s.dtype) for k, s in zip(kept, states))


def keep_states(module: nn.Module, final: Carry) -> None:
  """Keeps a stateful layer's final states in collection "states" when that collection is mutable."""
  if not module.is_initializing() and module.is_mutable_collection(STATES):
    module.put_variable(STATES, "rnn_state", tuple(final))


def reset_states(variables: Mapping[str, Any], *, drop: bool = False) -> dict[str, Any]:
  """Keras's `reset_states()`: the variables with every kept state of stateful layers set to zeros.

  Args:
    variables: a module's variables, with collection "states" once a stateful layer was applied with
      `mutable=["states"]`.
    drop: remove the collection instead (the next call starts from zeros, with any batch size).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = Recurrent(3, stateful=True)
    >>> x = jnp.ones((2, 4, 5))
    >>> variables = layer.init(jax.random.key(0), x)
    >>> y, kept = layer.apply(variables, x, mutable=["states"])
    >>> variables = reset_states({**variables, **kept})
    >>> float(jnp.abs(variables["states"]["rnn_state"][0]).max())
    0.0
  """
  out = dict(variables)
  if STATES in out:
    if drop:
      del out[STATES]
    else:
      out[STATES] = jax.tree_util.tree_map(jnp.zeros_like, out[STATES])
  return out


class Recurrent(PrecisionFields, RecurrentInitFields, RecurrentRegularizerFields):
  """A recurrent layer as Keras's `LSTM`, `GRU` or `SimpleRNN`, or their `Bidirectional`.

  Weighted submodules carry Keras's default names, `lstm`, `gru` or
  `simple_rnn`, and `forward_<name>` / `backward_<name>` when bidirectional,
  so `jaxcomponents.weights.load_keras` maps the Keras layers onto them.

  Attributes:
    features: state size of each direction (Keras's `units`; with a cell module: its `features`, or None).
    cell: "lstm", "gru" or "rnn" (SimpleRNN), built from the options below; or a cell module, as
      `flax.linen.RNN` takes one: a `jaxcomponents.layers.cells` cell configured as you like, or your own
      following their protocol (`features`, `num_states`, `gates`, `keras_name`, `cell(carry, x, input_mask,
      recurrent_mask) -> (carry, y)`); the layer runs a copy per direction, named `keras_name`. The options
      `activation` ... `unit_forget_bias` and the initializers then belong to the cell and must stay at their
      defaults here.
    activation: Keras name or callable (tanh).
    recurrent_activation: gate activation of LSTM and GRU (sigmoid).
    use_bias: give the cell a bias.
    return_sequences: return every step's output `(batch, time, features)`, not
      just the last `(batch, features)`.
    return_state: return `(output, *final_states)`: LSTM `h, c`, GRU and RNN
      `h`; bidirectional: the forward states, then the backward states.
    go_backwards: process the sequence from its end (not with `bidirectional`,
      as in Keras).
    bidirectional: None, or the merge of the two directions as in Keras's
      `Bidirectional`: "concat", "sum", "mul" or "ave".
    dropout: input dropout rate in [0, 1), with `train=True` (rng 'dropout').
    recurrent_dropout: dropout rate of the recurrent state in [0, 1).
    reset_after: GRU only: Keras's `reset_after` (Keras 3 default True).
    unit_forget_bias: LSTM only: initialize the forget-gate bias to 1.
    zero_output_for_mask: outputs of masked steps are zeros rather than the
      previous output; None: Keras's choice (False, but `return_sequences`
      when bidirectional).
    unroll: Keras's `unroll`: True computes Keras's unrolled loop (every step
      unrolled; a masked step outputs the previous step's output, zeros before
      the first, never zeros as the scan's `zero_output_for_mask` gives them),
      kept as `KERAS_UNROLLED` ("keras", which never equals an integer, so
      jit caches keyed on the module keep the two apart); False (or 1) Keras's
      scan; an integer, time steps per scan iteration (passed to `nn.scan`),
      changes speed and compile size only.
    use_cudnn: LSTM only: run through cuDNN on NVIDIA GPUs where Keras would
      (`cudnn_eligible`: tanh and sigmoid, a bias, no recurrent dropout,
      Keras's scan (`unroll` False or 1), `lengths` rather than a `mask`, float32), like Keras's
      `use_cudnn="auto"`; False: always the scan.
    units: deprecated alias of `features` (removed in the next release).
    stateful: Keras's `stateful`: the final states are kept in the variable collection "states" (variable
      `rnn_state`, every direction's states) when it is mutable (`apply(..., mutable=["states"])`), and the next
      call starts from them unless given `initial_state`; the first such call fixes the batch size. `init` creates
      no states (a call without them starts from zeros); `reset_states(variables)` sets them to zeros.
    kernel_init, recurrent_kernel_init, bias_init: keyword-only, passed to the cells: Keras's
      `kernel_initializer`, `recurrent_initializer` and `bias_initializer` (`glorot_uniform`, `orthogonal`,
      `zeros`; an LSTM's forget-gate bias starts at ones with `unit_forget_bias`, as Keras's); see
      `jaxcomponents.layers.init_fields`.
    kernel_regularizer, recurrent_regularizer, bias_regularizer: keyword-only, Keras's: a penalty of the cells'
      weights added to the loss (each direction's); see `jaxcomponents.layers.weight_regularizers`.
    dtype, param_dtype, precision: keyword-only, passed to the cells: computation dtype (None:
      inferred from the input and parameters; the states are kept in it), parameter dtype (float32),
      precision of the products (None: JAX's default); see `jaxcomponents.layers.precision`.

  Call arguments (all but `x` keyword-only):
    x: `(batch, time, in_features)`.
    train: enable dropout.
    mask: optional boolean `(batch, time)`, True at the steps to process.
    lengths: optional `(batch,)` valid lengths (mask `t < length`); not with `mask`.
    initial_state: optional sequence of `(batch, features)` states in the order
      `return_state` gives them (default zeros).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = Recurrent(4, cell="gru", return_sequences=True, bidirectional="concat")
    >>> x = jnp.ones((2, 7, 3))
    >>> variables = layer.init(jax.random.key(0), x)
    >>> sorted(variables["params"])
    ['backward_gru', 'forward_gru']
    >>> layer.apply(variables, x, lengths=jnp.array([7, 5])).shape
    (2, 7, 8)
    >>> from jaxcomponents.layers.cells import LSTMCell
    >>> layer = Recurrent(cell=LSTMCell(4, recurrent_activation="hard_sigmoid"))
    >>> layer.apply(layer.init(jax.random.key(0), x), x).shape
    (2, 4)
  """

  features: int | None = None
  cell: str | nn.Module = "lstm"
  activation: str | activations.Activation | None = "tanh"
  recurrent_activation: str | activations.Activation | None = "sigmoid"
  use_bias: bool = True
  return_sequences: bool = False
  return_state: bool = False
  go_backwards: bool = False
  bidirectional: str | None = None
  dropout: float = 0.0
  recurrent_dropout: float = 0.0
  reset_after: bool = True
  unit_forget_bias: bool = True
  zero_output_for_mask: bool | None = None
  unroll: int | bool | str = 1
  use_cudnn: bool = True
  units: int | None = renamed_to("features")
  stateful: bool = False

  def __post_init__(self):
    if self.unroll is True:  # True == 1: kept apart from the speed setting under another value
      object.__setattr__(self, "unroll", KERAS_UNROLLED)
    super().__post_init__()

  @nn.compact
  @keyword_only("train", "mask", "lengths", "initial_state")
  def __call__(self, x: jax.Array, *, train: bool = False, mask: jax.Array | None = None,
               lengths: jax.Array | None = None,
               initial_state: Sequence[jax.Array] | jax.Array | None = None):
    self._check_config()
    check_rank("x", jnp.shape(x), (3,), "(batch, time, features)")
    x = jnp.asarray(x)
    batch, time = x.shape[:2]
    if time < 1:
      raise ValueError(f"x has shape {x.shape}; expected at least one time step.")
    mask = self._sequence_mask(batch, time, mask, lengths)
    dtype = _state_dtype(self if isinstance(self.cell, str) else self.cell, x.dtype)
    directions = 2 if self.bidirectional else 1
    states = self._initial_states(batch, dtype, initial_state, directions)
    if self.stateful:
      states = kept_states(self, states, initial_state is not None, train)
    n = self._cell_type.num_states
    zero_output = self.zero_output_for_mask
    if zero_output is None:
      zero_output = bool(self.bidirectional) and self.return_sequences

    self.sow_weight_penalties(*self._direction_names)
    if (not self.is_initializing() and not self.stateful
        and cudnn_eligible(self, dtype=dtype, mask=lengths is None and mask is not None,
                               lengths=lengths is not None, train=train)
        and cudnn_rnn.available(x)):
      return self._lstm_cudnn(x, lengths, states, zero_output, train)

    if not self.bidirectional:
      results = [self._run(self._direction_names[0], x, mask, states, self.go_backwards, zero_output, train)]
    else:
      forward, backward = self._direction_names
      results = [self._run(forward, x, mask, states[:n], False, zero_output, train),
                 self._run(backward, x, mask, states[n:], True, zero_output, train)]
    if self.stateful:
      keep_states(self, tuple(s for _, final in results for s in final))
    return self._output(results)

  @property
  def keras_layer_name(self) -> str:
    """Keras's default name of the layer this one is (`lstm`, `gru`, `simple_rnn`)."""
    return self._cell_type.keras_name

  @property
  def _direction_names(self) -> list[str]:
    """The cells' module names: the cell's Keras name, or `forward_<name>` and `backward_<name>`."""
    name = self._cell_type.keras_name
    return [f"forward_{name}", f"backward_{name}"] if self.bidirectional else [name]

  def _output(self, results: list[tuple[jax.Array, Carry]]):
    """The layer's output from each direction's `(outputs, final states)`: merged, states appended if asked."""
    if not self.bidirectional:
      ((y, final),) = results
      return (y, *final) if self.return_state else y
    (y, forward_final), (y_rev, backward_final) = results
    if self.return_sequences:
      y_rev = jnp.flip(y_rev, axis=1)
    merged = {
        "concat": lambda: jnp.concatenate([y, y_rev], axis=-1),
        "sum": lambda: y + y_rev,
        "mul": lambda: y * y_rev,
        "ave": lambda: (y + y_rev) / 2,
    }[self.bidirectional]()
    return (merged, *forward_final, *backward_final) if self.return_state else merged

  def _lstm_cudnn(self, x: jax.Array, lengths: jax.Array | None, states: Carry, zero_output: bool, train: bool):
    """The LSTM through cuDNN where lowered for CUDA, else this layer's scan (with `use_cudnn=False`)."""
    input_mask, _ = self._dropout_masks(x.shape[0], x.shape[-1], states[0].dtype, train)
    if input_mask is not None:  # one direction: the same mask as its scan, at every step
      x = x * input_mask[:, None, :]
    names = self._direction_names
    scan_layer = self.clone(parent=None, use_cudnn=False)

    def cudnn(params, x, lengths, states):
      cells = [(params[n]["kernel"], params[n]["recurrent_kernel"], params[n].get("bias")) for n in names]
      return self._output(cudnn_rnn.lstm(x, states, cells, lengths, go_backwards=self.go_backwards,
                                         zero_output=zero_output, return_sequences=self.return_sequences,
                                         precision=self.precision))

    def scan(params, x, lengths, states):
      return scan_layer.apply({"params": params}, x, lengths=lengths, initial_state=states)

    return cudnn_rnn.on_cuda(cudnn, scan, self.variables["params"], x, lengths, tuple(states))

  @property
  def _cell_type(self) -> type[nn.Module]:
    return CELL_CLASSES[self.cell] if isinstance(self.cell, str) else type(self.cell)

  @property
  def _features(self) -> int:
    return self.features if isinstance(self.cell, str) else _cell_features(self.cell)

  def _make_cell(self, name: str) -> nn.Module:
    if not isinstance(self.cell, str):
      return self.cell.clone(parent=self, name=name)
    options = {**self.precision_options, **self.init_options}
    if self.cell == "lstm":
      return LSTMCell(self.features, self.activation, self.recurrent_activation, self.use_bias,
                      self.unit_forget_bias, name=name, **options)
    if self.cell == "gru":
      return GRUCell(self.features, self.activation, self.recurrent_activation, self.use_bias,
                     self.reset_after, name=name, **options)
    return SimpleRNNCell(self.features, self.activation, self.use_bias, name=name, **options)

  def _run(self, name: str, x: jax.Array, mask: jax.Array | None, carry: Carry, backwards: bool,
           zero_output: bool, train: bool) -> tuple[jax.Array, Carry]:
    """One direction: (outputs in processing order or the last one, final states)."""
    cell = self._make_cell(name)
    masks = self._dropout_masks(x.shape[0], x.shape[-1], carry[0].dtype, train)
    keras_unrolled = self.unroll == KERAS_UNROLLED
    return scan_cell(cell, carry, x, mask, masks, go_backwards=backwards, zero_output=zero_output,
                     return_sequences=self.return_sequences, unroll=True if keras_unrolled else int(self.unroll) or 1,
                     unrolled_masking=keras_unrolled)

  def _dropout_masks(self, batch: int, features: int, dtype, train: bool):
    """Keras's masks, fixed over time: shared by the gates, or one per gate with recurrent dropout."""
    if not train or not (self.dropout or self.recurrent_dropout):
      return None, None
    key_in, key_rec = jax.random.split(self.make_rng("dropout"))
    gates = self._cell_type.gates
    per_gate = (gates,) if self.recurrent_dropout and gates > 1 else ()
    input_mask = recurrent_mask = None
    if self.dropout:
      input_mask = _dropout_mask(key_in, self.dropout, (*per_gate, batch, features), dtype)
    if self.recurrent_dropout:
      recurrent_mask = _dropout_mask(key_rec, self.recurrent_dropout, (*per_gate, batch, self._features), dtype)
    return input_mask, recurrent_mask

  def _sequence_mask(self, batch: int, time: int, mask, lengths) -> jax.Array | None:
    if mask is not None and lengths is not None:
      raise ValueError("mask and lengths are both given; expected at most one of them.")
    if mask is not None:
      mask = jnp.asarray(mask)
      if mask.shape != (batch, time):
        raise ValueError(f"mask has shape {mask.shape}; expected (batch, time) = {(batch, time)}.")
      return mask.astype(bool)
    if lengths is not None:
      lengths = jnp.asarray(lengths)
      if lengths.shape != (batch,) or not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise ValueError(
            f"lengths has shape {lengths.shape} and dtype {lengths.dtype}; expected integers of shape "
            f"(batch,) = {(batch,)}."
        )
      if not isinstance(lengths, jax.core.Tracer):  # concrete lengths are checked; traced ones cannot be
        values = np.asarray(lengths)
        rows = np.flatnonzero((values < 0) | (values > time))
        if rows.size:
          raise ValueError(f"lengths {values[rows[:5]].tolist()} (batch rows {rows[:5].tolist()}) are not allowed; "
                           f"expected lengths in [0, {time}], the sequences' time steps.")
      return jnp.arange(time)[None, :] < lengths[:, None]
    return None

  def _initial_states(self, batch: int, dtype, initial_state, directions: int) -> Carry:
    count = self._cell_type.num_states * directions
    features = self._features
    if initial_state is None:
      return (jnp.zeros((batch, features), dtype),) * count
    states = (initial_state,) if hasattr(initial_state, "shape") else tuple(initial_state)
    shapes = [jnp.shape(s) for s in states]
    if len(states) != count or any(s != (batch, features) for s in shapes):
      raise ValueError(
          f"initial_state has {len(states)} arrays of shapes {shapes}; expected {count} "
          f"(cell={self._cell_type.__name__}, bidirectional={self.bidirectional!r}) of shape (batch, features) = "
          f"{(batch, features)}."
      )
    return tuple(jnp.asarray(s, dtype) for s in states)

  def _check_config(self) -> None:
    if isinstance(self.cell, nn.Module):
      self._check_cell_module()
    else:
      check_choice("cell", self.cell, CELLS)
      check_positive_int("features", self.features)
    check_choice("bidirectional", self.bidirectional, MERGE_MODES)
    activations.get(self.activation, "activation")
    activations.get(self.recurrent_activation, "recurrent_activation")
    check_rate("dropout", self.dropout)
    check_rate("recurrent_dropout", self.recurrent_dropout)
    for flag in ("use_bias", "return_sequences", "return_state", "go_backwards", "reset_after", "unit_forget_bias",
                 "stateful"):
      check_bool(flag, getattr(self, flag))
    if self.zero_output_for_mask is not None:
      check_bool("zero_output_for_mask", self.zero_output_for_mask)
    if self.use_cudnn not in (True, False, "auto"):
      raise ValueError(f"use_cudnn={self.use_cudnn!r} is not allowed; expected True, False or 'auto' (Keras's "
                       "names; True and 'auto' both use cuDNN where Keras 3 would).")
    if not (self.unroll is False or self.unroll == KERAS_UNROLLED
            or is_int(self.unroll) and self.unroll > 0):
      raise ValueError(f"unroll={self.unroll!r} is not allowed; expected True or False (Keras's) or a positive "
                       "integer (time steps per scan iteration).")
    if self.bidirectional and self.go_backwards:
      raise ValueError(
          f"go_backwards=True is not allowed with bidirectional={self.bidirectional!r} (Keras's "
          "Bidirectional requires the wrapped layer to go forwards); expected go_backwards=False."
      )
    not_for_cell = [
        ("recurrent_activation", self.recurrent_activation, "sigmoid", ("lstm", "gru")),
        ("reset_after", self.reset_after, True, ("gru",)),
        ("unit_forget_bias", self.unit_forget_bias, True, ("lstm",)),
    ]
    for param, value, default, cells in not_for_cell:
      if value != default and self.cell not in cells:
        raise ValueError(
            f"{param}={value!r} is not allowed with cell={self.cell!r}; it applies to cell "
            f"{' or '.join(repr(c) for c in cells)} only (expected the default {default!r})."
        )

  def _check_cell_module(self) -> None:
    """A cell module brings its own size and options; the layer's must not contradict or silently miss them."""
    if hasattr(self.cell, "cells"):
      raise ValueError(f"cell={type(self.cell).__name__}(...) is not allowed in Recurrent, which runs one cell per "
                       "direction; run a stack of cells in RNN(StackedRNNCells([...])).")
    missing = [attr for attr in ("num_states", "gates", "keras_name") if not hasattr(self.cell, attr)]
    if not hasattr(self.cell, "features") and not hasattr(self.cell, "units"):
      missing.insert(0, "features")
    if missing:
      raise ValueError(f"cell={type(self.cell).__name__} is not allowed; a cell module needs {missing} (see "
                       "jaxcomponents.layers.cells for the protocol), or pass 'lstm', 'gru' or 'rnn'.")
    features = _cell_features(self.cell)
    if self.features is not None and self.features != features:
      raise ValueError(f"features={self.features!r} is not allowed with cell={type(self.cell).__name__}(features="
                       f"{features}); expected None or {features}.")
    changed = changed_fields(self, ("activation", "recurrent_activation", "use_bias", "reset_after",
                                    "unit_forget_bias", *INIT_FIELDS, "dtype", "param_dtype", "precision"))
    rates = [f"{k}={getattr(self.cell, k)!r}" for k in ("dropout", "recurrent_dropout") if getattr(self.cell, k, 0.0)]
    if rates:
      raise ValueError(f"a cell with {', '.join(rates)} is not allowed in Recurrent, which draws the masks from its own "
                       f"rates; set Recurrent(dropout=..., recurrent_dropout=...), or run the cell in RNN.")
    if changed:
      raise ValueError(f"{', '.join(changed)} is not allowed with a cell module; configure the cell itself "
                       f"({type(self.cell).__name__}(...)).")


def _state_dtype(cell: Any, x_dtype: Any) -> Any:
  """The dtype a cell computes in, which the states keep: its `dtype`, else its inputs' and parameters'."""
  dtype = getattr(cell, "dtype", None)
  return jnp.promote_types(x_dtype, getattr(cell, "param_dtype", jnp.float32)) if dtype is None else jnp.dtype(dtype)


def keras_cudnn_rule(activation: Any, recurrent_activation: Any, use_bias: bool, recurrent_dropout: float,
                     unroll: int) -> bool:
  """Keras 3's condition for its cuDNN LSTM (`cudnn_ok`, no recurrent dropout), a GPU aside.

  `unroll` is `Recurrent`'s: False or 1 is Keras's `unroll=False` (True, or `KERAS_UNROLLED`, Keras's True).
  """
  return (activations.get(activation) is activations.ACTIVATIONS["tanh"]
          and activations.get(recurrent_activation) is activations.ACTIVATIONS["sigmoid"]
          and bool(use_bias) and not recurrent_dropout and unroll is not True and unroll in (False, 1))


def cudnn_eligible(layer: Any, *, dtype: Any, mask: bool, lengths: bool, train: bool) -> bool:
  """Whether `layer` (a `Recurrent`) runs through cuDNN on a CUDA device for this call (GPU or not).

  Keras's rule (`keras_cudnn_rule`) for an LSTM with `use_cudnn`, and what
  the cuDNN kernel computes exactly:
  - no `mask`: `lengths` are right padding by construction, a mask need not be
    (Keras 3 on JAX scans with any mask);
  - not `lengths` with `go_backwards`: reversed, right padding is left padding;
  - no active input dropout when bidirectional: cuDNN's two directions share
    one input, and the layer's draw a mask each;
  - a float32 computation (`jax.experimental.rnn`) and a precision cuDNN has
    (`cudnn_rnn.cudnn_precision`).

  Args:
    layer: the layer (its fields: cell, use_cudnn, activations, use_bias,
      dropout rates, unroll, go_backwards, bidirectional, precision).
    dtype: the computation dtype.
    mask: a `mask` is given. lengths: `lengths` are given. train: dropout is on.
  """
  return (bool(layer.use_cudnn) and layer.cell == "lstm"
          and keras_cudnn_rule(layer.activation, layer.recurrent_activation, layer.use_bias,
                               layer.recurrent_dropout, layer.unroll)
          and not mask and not (lengths and layer.go_backwards)
          and not (layer.bidirectional and train and layer.dropout)
          and jnp.dtype(dtype) == jnp.float32 and cudnn_rnn.cudnn_precision(layer.precision) is not False)


def _cell_features(cell: nn.Module) -> int:
  """A cell module's state size: its `features`, or, from a cell written for the old protocol, its `units`."""
  if hasattr(cell, "features"):
    return cell.features
  deprecation.warn(f"{type(cell).__name__}.units is a deprecated alias of the cell protocol's features (the state "
                   "size); rename the field: units is read until the next release.")
  return cell.units


def _rates(cell: nn.Module) -> list[float]:
  """Every dropout rate of a cell (of each cell of a stack)."""
  if hasattr(cell, "cells"):
    return [r for sub in cell.cells for r in _rates(sub)]
  return [getattr(cell, "dropout", 0.0), getattr(cell, "recurrent_dropout", 0.0)]


def _flat_states(initial_state) -> tuple[jax.Array, ...] | None:
  """`initial_state` as a flat tuple (Keras nests a stack's states by cell)."""
  if initial_state is None:
    return None
  if hasattr(initial_state, "shape"):
    return (initial_state,)
  return tuple(s for part in initial_state for s in (_flat_states(part) or ()))


def run_rnn(module: nn.Module, cell: nn.Module, x: jax.Array, *, train: bool, mask, initial_state,
            return_sequences: bool, return_state: bool, go_backwards: bool, stateful: bool, unroll: bool,
            zero_output_for_mask: bool):
  """Keras's `RNN.call` for a cell bound under `module` (whose rng and "states" collection it uses)."""
  for flag, value in (("return_sequences", return_sequences), ("return_state", return_state),
                      ("go_backwards", go_backwards), ("stateful", stateful), ("unroll", unroll),
                      ("zero_output_for_mask", zero_output_for_mask)):
    check_bool(flag, value)
  x = jnp.asarray(x)
  if x.ndim < 3 or x.shape[1] < 1:
    raise ValueError(f"x has shape {x.shape}; expected (batch, time, ...) with at least one time step.")
  batch, time = x.shape[:2]
  if mask is not None:
    mask = jnp.asarray(mask)
    if mask.shape != (batch, time):
      raise ValueError(f"mask has shape {mask.shape}; expected (batch, time) = {(batch, time)}.")
    mask = mask.astype(bool)
  dtype = _state_dtype(cell.cells[0] if hasattr(cell, "cells") else cell, x.dtype)
  step_shape = (batch, *x.shape[2:])
  shapes = state_shapes(cell, step_shape)
  given = _flat_states(initial_state)
  if given is None:
    states = tuple(jnp.zeros(s, dtype) for s in shapes)
  else:
    if [tuple(jnp.shape(s)) for s in given] != list(shapes):
      raise ValueError(f"initial_state has {len(given)} arrays of shapes {[tuple(jnp.shape(s)) for s in given]}; "
                       f"expected {len(shapes)} of shapes {list(shapes)} ({type(cell).__name__}'s states).")
    states = tuple(jnp.asarray(s, dtype) for s in given)
  if stateful:
    states = kept_states(module, states, given is not None, train)
  masks = (None, None)
  if train and any(_rates(cell)):
    masks = dropout_masks(cell, module.make_rng("dropout"), step_shape, dtype)
  output_state = cell.num_states - cell.cells[-1].num_states if hasattr(cell, "cells") else 0
  y, final = scan_cell(cell, states, x, mask, masks, go_backwards=go_backwards, zero_output=zero_output_for_mask,
                       return_sequences=return_sequences, unroll=bool(unroll) or 1, output_state=output_state,
                       unrolled_masking=bool(unroll))
  if stateful:
    keep_states(module, final)
  return (y, *final) if return_state else y


class RNN(nn.Module):
  """Keras's `RNN(cell)`: any cell (or `StackedRNNCells`) over a sequence.

  Attributes:
    cell: a cell module, configured (`jaxcomponents.layers.cells`: `LSTMCell`, `GRUCell`, `SimpleRNNCell`,
      `StackedRNNCells`, `ConvLSTMCell`, or your own following their protocol). Its `dropout` and
      `recurrent_dropout` (Keras's cell arguments) are drawn once per call with `train=True` (rng "dropout").
    return_sequences: every step's output `(batch, time, ...)`, not the last one.
    return_state: return `(output, *final_states)`, the states flat in the cell's order (a stack: each cell's).
    go_backwards: read the sequence from its end; outputs in that processing order.
    stateful: keep the final states between calls (see `Recurrent.stateful`; `reset_states`).
    unroll: Keras's `unroll`: True computes Keras's unrolled loop, whose masked steps output the previous
      output (zeros before the first) and never zeros; False Keras's scan (see `scan_cell`).
    zero_output_for_mask: masked steps output zeros (Keras's scan only, as in Keras).
    cell_name: the cell's module name (Keras's cell name, which its weight paths carry); default Keras's
      automatic one (`lstm_cell`, `gru_cell`, `simple_rnn_cell`, `stacked_rnn_cells`, ...).

  Call arguments (all but `x` keyword-only): `x (batch, time, ...)`, `train`, `mask` (boolean
  `(batch, time)`), `initial_state` (the states in `return_state`'s order, or nested by cell as Keras takes them).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxcomponents.layers.cells import GRUCell, LSTMCell, StackedRNNCells
    >>> layer = RNN(StackedRNNCells([LSTMCell(4), GRUCell(3)]), return_state=True)
    >>> x = jnp.ones((2, 7, 5))
    >>> y, h1, c1, h2 = layer.apply(layer.init(jax.random.key(0), x), x)
    >>> y.shape, c1.shape
    ((2, 3), (2, 4))
  """

  cell: nn.Module
  return_sequences: bool = False
  return_state: bool = False
  go_backwards: bool = False
  stateful: bool = False
  unroll: bool = False
  zero_output_for_mask: bool = False
  cell_name: str | None = None

  @property
  def keras_layer_name(self) -> str:
    return "rnn"

  @nn.compact
  @keyword_only("train", "mask", "initial_state")
  def __call__(self, x: jax.Array, *, train: bool = False, mask: jax.Array | None = None, initial_state=None):
    for attr in ("num_states", "gates", "keras_name"):
      if not hasattr(self.cell, attr):
        raise ValueError(f"cell={type(self.cell).__name__} is not allowed; a cell module needs {attr!r} (see "
                         f"jaxcomponents.layers.cells for the protocol).")
    name = self.cell_name or (self.cell.keras_name if hasattr(self.cell, "cells") else f"{self.cell.keras_name}_cell")
    cell = self.cell.clone(parent=self, name=name)
    return run_rnn(self, cell, x, train=train, mask=mask, initial_state=initial_state,
                   return_sequences=self.return_sequences, return_state=self.return_state,
                   go_backwards=self.go_backwards, stateful=self.stateful,
                   unroll=check_choice("unroll", self.unroll, (False, True)),
                   zero_output_for_mask=self.zero_output_for_mask)


class Bidirectional(nn.Module):
  """Keras's `Bidirectional(layer, merge_mode, backward_layer)` over jaxcomponents' recurrent layers.

  The backward layer is `layer` mirrored (`go_backwards` flipped), or `backward_layer`, configured as you like
  (another size, cell or activation) with the opposite `go_backwards` and the same `return_sequences`,
  `return_state` and `stateful`, as Keras requires. As in Keras, both layers output zeros at masked steps when
  they return sequences, and the backward sequence is flipped back before merging. `Recurrent(bidirectional=...)`
  computes the mirrored case in one layer (with cuDNN on GPUs).

  Attributes:
    layer: the forward layer: `Recurrent`, `RNN` or `ConvLSTM1D/2D/3D`.
    merge_mode: "concat", "sum", "mul", "ave", or None (the two outputs apart).
    backward_layer: the backward layer, or None to mirror `layer`.
    names: the two layers' module names; default Keras's: `forward_<name>`, `backward_<name>` after the
      layer's Keras name (`forward_lstm`, `backward_lstm`).

  Call arguments: as the layers'; `initial_state` holds the forward states, then the backward ones (split in
  half, as Keras splits them).

  Returns:
    The merged output (with None: forward, backward), then with `return_state` the forward and the backward
    final states.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = Bidirectional(Recurrent(4, return_sequences=True),
    ...                       backward_layer=Recurrent(2, cell="gru", return_sequences=True, go_backwards=True))
    >>> x = jnp.ones((2, 7, 5))
    >>> layer.apply(layer.init(jax.random.key(0), x), x).shape
    (2, 7, 6)
  """

  layer: nn.Module
  merge_mode: str | None = "concat"
  backward_layer: nn.Module | None = None
  names: tuple[str, str] | None = None

  @nn.compact
  @keyword_only("train", "mask", "initial_state")
  def __call__(self, x: jax.Array, *, train: bool = False, mask: jax.Array | None = None, initial_state=None):
    check_choice("merge_mode", self.merge_mode, MERGE_MODES)
    forward_layer = self.layer
    backward_layer = self.backward_layer
    if backward_layer is None:
      backward_layer = forward_layer.clone(parent=None, go_backwards=True)  # as Keras mirrors it
    for which, layer in (("layer", forward_layer), ("backward_layer", backward_layer)):
      if getattr(layer, "bidirectional", None):
        raise ValueError(f"{which} with bidirectional={layer.bidirectional!r} is not allowed; expected a layer "
                         f"going one way.")
    if forward_layer.go_backwards == backward_layer.go_backwards:
      raise ValueError(f"backward_layer with go_backwards={backward_layer.go_backwards!r} is not allowed; the "
                       f"forward and backward layers must differ in go_backwards (as Keras requires).")
    for attr in ("return_sequences", "return_state", "stateful"):
      if getattr(forward_layer, attr) != getattr(backward_layer, attr):
        raise ValueError(f"backward_layer with {attr}={getattr(backward_layer, attr)!r} is not allowed; expected "
                         f"the forward layer's {attr}={getattr(forward_layer, attr)!r} (as Keras requires).")
    base = getattr(forward_layer, "keras_layer_name", "rnn")
    names = self.names or (f"forward_{base}", f"backward_{base}")
    zero_output = forward_layer.return_sequences  # Keras forces zero_output_for_mask = return_sequences
    forward = forward_layer.clone(parent=self, name=names[0], zero_output_for_mask=zero_output)
    backward = backward_layer.clone(parent=self, name=names[1], zero_output_for_mask=zero_output)
    forward_state = backward_state = None
    if initial_state is not None:
      initial_state = list(initial_state)
      half = len(initial_state) // 2
      forward_state, backward_state = initial_state[:half], initial_state[half:]
    y = forward(x, train=train, mask=mask, initial_state=forward_state)
    y_rev = backward(x, train=train, mask=mask, initial_state=backward_state)
    states = ()
    if forward_layer.return_state:
      states = (*y[1:], *y_rev[1:])
      y, y_rev = y[0], y_rev[0]
    if forward_layer.return_sequences:
      y_rev = jnp.flip(y_rev, axis=1)
    if self.merge_mode is None:
      return (y, y_rev, *states)
    merged = {"concat": lambda: jnp.concatenate([y, y_rev], axis=-1), "sum": lambda: y + y_rev,
              "mul": lambda: y * y_rev, "ave": lambda: (y + y_rev) / 2}[self.merge_mode]()
    return (merged, *states) if states else merged
