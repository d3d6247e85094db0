"""Records of Keras's recurrent layers: see `jaxcomponents.keras.record`.

`LSTM`, `GRU`, `SimpleRNN` (`Recurrent`), `RNN` over the cells `LSTMCell`,
`GRUCell`, `SimpleRNNCell` and `StackedRNNCells` (`RNN`), `ConvLSTM1D/2D/3D`
(`ConvLSTM`), `Bidirectional` (mirrored, or with a `backward_layer` of its
own) and `TimeDistributed`. Stateful layers keep their states in the variable
collection "states" (see `jaxcomponents.layers.recurrent.reset_states`).

Example:
  >>> sorted(RECORDS["LSTM"].weights[0])
  ['bias', 'kernel', 'recurrent_kernel']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxcomponents.keras.config import Config, activation_name, all_checks, as_tuple, channels_last, known_activation
from jaxcomponents.keras.record import KerasClass
from jaxcomponents.layers.cells import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from jaxcomponents.layers.conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D
from jaxcomponents.layers.recurrent import RNN, Bidirectional, Recurrent

# The weights of every recurrent cell, Keras's order (`CONVERSION_RULES`' "LSTM, GRU, SimpleRNN").
RNN_WEIGHTS = {"kernel": ("params", "kernel"), "recurrent_kernel": ("params", "recurrent_kernel"),
               "bias": ("params", "bias")}
_LAYER_CELLS = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}
_CONV_LSTMS = {"ConvLSTM1D": ConvLSTM1D, "ConvLSTM2D": ConvLSTM2D, "ConvLSTM3D": ConvLSTM3D}
_CELL_CLASSES = {"LSTMCell": LSTMCell, "GRUCell": GRUCell, "SimpleRNNCell": SimpleRNNCell}
_WEIGHT_REGULARIZERS = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer")
_TRAINING_ONLY = ("activity_regularizer", "kernel_constraint", "recurrent_constraint", "bias_constraint")
_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _unset(*keys: str, allowed: str = "only None"):
  """A check that `keys` (regularizers, constraints: they change training, which the record does not) are None."""
  return lambda config: [f"{k}={config[k]!r} ({allowed})" for k in keys if config.get(k) is not None]


def _activations(config: Config) -> dict[str, Any]:
  found = {"activation": activation_name(config)}
  if "recurrent_activation" in config:
    found["recurrent_activation"] = activation_name(config, "recurrent_activation")
  return found


def _rates(config: Config) -> dict[str, float]:
  return {"dropout": config.get("dropout", 0.0), "recurrent_dropout": config.get("recurrent_dropout", 0.0)}


_cell_check = all_checks(known_activation(), lambda c: known_activation("recurrent_activation")(c)
                         if "recurrent_activation" in c else [], _unset(*_TRAINING_ONLY))
# Weight regularizers are honoured on a layer of its own (the graph sows their penalties, `keras/regularization.py`),
# not yet on a cell inside `RNN` or a layer inside `Bidirectional`.
_nested_check = all_checks(_cell_check, _unset(*_WEIGHT_REGULARIZERS, allowed=(
    "only None inside Bidirectional or RNN; an LSTM, GRU, SimpleRNN or ConvLSTM layer of its own takes it")))


# Cells (inside RNN and StackedRNNCells).

def _cell(spec: Mapping[str, Any], options, name: str | None = None) -> nn.Module:
  """The cell module of a serialized Keras cell (`{"class_name", "config"}`): unbound, or a child named `name`."""
  class_name, config = spec["class_name"], spec["config"]
  where = {"parent": None} if name is None else {"name": name}
  if class_name == "StackedRNNCells":
    cells = [_cell(c, options) for c in config["cells"]]
    return StackedRNNCells(cells, names=[c["config"]["name"] for c in config["cells"]], **where)
  common = dict(features=config["units"], use_bias=config.get("use_bias", True), **_activations(config),
                **_rates(config), **where, **options)
  if class_name == "LSTMCell":
    return LSTMCell(unit_forget_bias=config.get("unit_forget_bias", True), **common)
  if class_name == "GRUCell":
    return GRUCell(reset_after=config.get("reset_after", True), **common)
  return SimpleRNNCell(**common)


def _cell_problems(spec: Mapping[str, Any]) -> list[str]:
  class_name, config = spec.get("class_name"), spec.get("config", {})
  if class_name == "StackedRNNCells":
    return [p for c in config.get("cells", []) for p in _cell_problems(c)] or (
        [] if config.get("cells") else ["StackedRNNCells without cells"])
  if class_name not in _CELL_CLASSES:
    return [f"a cell of class {class_name} (only {', '.join([*_CELL_CLASSES, 'StackedRNNCells'])})"]
  return [f"{class_name} {config.get('name')!r}: {p}" for p in _nested_check(config)]


def _cell_record(class_name: str) -> KerasClass:
  """A Keras cell called on its own: `(inputs, states) -> (output, new_states)`, as Keras's `cell(inputs, states)`."""
  def build(config, name, options):
    cell = _cell({"class_name": class_name, "config": config}, options, name=name)

    def call(inputs, states, train=False):
      states = (states,) if hasattr(states, "shape") else tuple(states)
      new_states, y = cell(states, inputs)
      return y, list(new_states)
    return call
  return KerasClass(build, check=lambda c: _cell_problems({"class_name": class_name, "config": c}),
                    creates_module=True, weights=(RNN_WEIGHTS,))


def _stacked_record() -> KerasClass:
  def build(config, name, options):
    cell = _cell({"class_name": "StackedRNNCells", "config": config}, options, name=name)

    def call(inputs, states, train=False):
      flat = [s for part in states for s in ((part,) if hasattr(part, "shape") else part)]
      new_states, y = cell(tuple(flat), inputs)
      return y, list(new_states)
    return call
  return KerasClass(build, check=lambda c: _cell_problems({"class_name": "StackedRNNCells", "config": c}),
                    creates_module=True)


# Layers.

def _sequence_options(config: Config) -> dict[str, Any]:
  return {"return_sequences": config.get("return_sequences", False), "return_state": config.get("return_state", False),
          "go_backwards": config.get("go_backwards", False), "stateful": config.get("stateful", False)}


def _layer(class_name: str, config: Config, options, name: str | None = None, **extra) -> nn.Module:
  """The jaxcomponents layer of a Keras recurrent layer's config: unbound, or a child named `name`.

  `extra`: more fields of `Recurrent` (`bidirectional`).
  """
  where = {"parent": None} if name is None else {"name": name}
  if class_name in _LAYER_CELLS and not config.get("unroll", False):
    if class_name != "SimpleRNN":
      extra["recurrent_activation"] = activation_name(config, "recurrent_activation")
    if class_name == "GRU":
      extra["reset_after"] = config.get("reset_after", True)
    if class_name == "LSTM":
      extra["unit_forget_bias"] = config.get("unit_forget_bias", True)
    return Recurrent(config["units"], _LAYER_CELLS[class_name], activation_name(config),
                     use_bias=config.get("use_bias", True), zero_output_for_mask=config.get("zero_output_for_mask"),
                     use_cudnn=config.get("use_cudnn", "auto") is not False, **_rates(config),
                     **_sequence_options(config), **extra, **where, **options)
  sequence = {**_sequence_options(config), "unroll": bool(config.get("unroll", False)),
              "zero_output_for_mask": bool(config.get("zero_output_for_mask", False))}
  if class_name in _LAYER_CELLS:  # Keras's unrolled loop: `RNN`, whose `unroll=True` computes it
    cell_class = {"LSTM": "LSTMCell", "GRU": "GRUCell", "SimpleRNN": "SimpleRNNCell"}[class_name]
    cell = _cell({"class_name": cell_class, "config": config}, options)
    return RNN(cell, **sequence, cell_name=Recurrent(cell=cell).keras_layer_name, **where)
  if class_name == "RNN":
    spec = config["cell"]
    return RNN(_cell(spec, options), **sequence, cell_name=spec["config"]["name"], **where)
  return _CONV_LSTMS[class_name](
      config["filters"], as_tuple(config["kernel_size"]), as_tuple(config.get("strides", 1)),
      config.get("padding", "valid").lower(), as_tuple(config.get("dilation_rate", 1)), activation_name(config),
      activation_name(config, "recurrent_activation"), config.get("use_bias", True),
      config.get("unit_forget_bias", True), **_rates(config), **sequence, **where, **options)


def _layer_record(class_name: str) -> KerasClass:
  def build(config, name, options):
    layer = _layer(class_name, config, options, name=name)

    def call(x, train, mask=None, initial_state=None):
      return layer(x, train=train, mask=mask, initial_state=initial_state)
    return call
  return KerasClass(build, kwargs=("mask", "initial_state"), check=lambda c: _layer_problems(class_name, c),
                    creates_module=True, weights=(RNN_WEIGHTS,))


def _layer_problems(class_name: str, config: Config, nested: bool = False) -> list[str]:
  """What of a recurrent layer's config cannot be converted (`nested`: inside `Bidirectional`)."""
  if class_name == "RNN":
    return _cell_problems(config.get("cell", {})) + _unset("activity_regularizer")(config)
  problems = (_nested_check if nested else _cell_check)(config)
  if class_name in _CONV_LSTMS:
    problems += channels_last(config)
    if str(config.get("padding", "valid")).lower() not in ("valid", "same"):
      problems.append(f"padding={config.get('padding')!r} (only 'valid', 'same')")
  return problems


# Wrappers.

def _inner(config: Config) -> tuple[str, Config]:
  layer = config["layer"]
  return layer["class_name"], layer["config"]


def _mirrored(config: Config) -> dict[str, Any]:
  return {k: v for k, v in config.items() if k not in ("name", "go_backwards")}


def _strip(name: str, prefix: str) -> str:
  return name[len(prefix):] if name.startswith(prefix) else name


def _bidirectional(config, name, options):
  class_name, inner = _inner(config)
  merge = config.get("merge_mode", "concat")
  backward = config.get("backward_layer")
  # One layer computing both directions names them forward_<name> and backward_<name>: a backward layer of
  # another name, or a forward layer going backwards, takes the general path, where each keeps its own.
  mirrored = not inner.get("go_backwards", False) and (backward is None or (
      backward["class_name"] == class_name and _mirrored(backward["config"]) == _mirrored(inner)
      and backward["config"].get("name") == f"backward_{_strip(inner['name'], 'forward_')}"))
  if mirrored and class_name in _LAYER_CELLS and not inner.get("unroll", False):
    # Keras's Bidirectional forces zero_output_for_mask = return_sequences on both directions (None: that rule).
    layer = _layer(class_name, {**inner, "go_backwards": False, "zero_output_for_mask": None}, options, name=name,
                   bidirectional=merge or "concat")
    units = inner["units"]

    def call(x, train, mask=None, initial_state=None):
      out = layer(x, train=train, mask=mask, initial_state=initial_state)
      if merge is not None:
        return out
      y, *states = out if inner.get("return_state") else (out,)
      return (y[..., :units], y[..., units:], *states)  # merge_mode=None: the two directions apart
    return call
  names = (f"forward_{_strip(inner['name'], 'forward_')}",
           f"backward_{_strip(inner['name'], 'backward_')}" if backward is None else backward["config"]["name"])
  forward_layer = _layer(class_name, inner, options)
  backward_layer = None if backward is None else _layer(backward["class_name"], backward["config"], options)
  layer = Bidirectional(forward_layer, merge, backward_layer, names=names, name=name)

  def call(x, train, mask=None, initial_state=None):
    return layer(x, train=train, mask=mask, initial_state=initial_state)
  return call


_WRAPPABLE = (*_LAYER_CELLS, "RNN", *_CONV_LSTMS)


def _bidirectional_check(config):
  problems = []
  layers = [_inner(config)]
  if config.get("backward_layer") is not None:
    layers.append((config["backward_layer"]["class_name"], config["backward_layer"]["config"]))
  for class_name, inner in layers:
    if class_name not in _WRAPPABLE:
      problems.append(f"a wrapped {class_name} (only {', '.join(_WRAPPABLE)})")
    else:
      problems += _layer_problems(class_name, inner, nested=True)
  if config.get("merge_mode", "concat") not in _MERGE_MODES:
    problems.append(f"merge_mode={config['merge_mode']!r}")
  return problems


class _TimeDistributed(nn.Module):
  """Applies a layer to every step of `(batch, time, ...)`."""

  inner_class: str
  config: Any  # the inner layer's config as a frozen tuple of items
  inner_name: str
  options: Any

  @nn.compact
  def __call__(self, x, mask=None, *, train):
    from jaxcomponents.keras.records import RECORDS  # pylint: disable=import-outside-toplevel
    record = RECORDS[self.inner_class]
    config = _thaw(self.config)
    inner = record.build(config, self.inner_name, _thaw(self.options))
    batch, time = x.shape[:2]
    # Keras hands each step its mask where the inner layer's call takes one, and drops it otherwise.
    masks = mask if mask is not None and "mask" in record.kwargs else None
    if train and self.inner_class in _STATISTICS_PER_STEP and config.get("trainable", True) is not False:
      # Keras loops over the steps: batch statistics per step, the moving averages updated once per step.
      steps = [inner(x[:, t], train=True, **({} if masks is None else {"mask": masks[:, t]})) for t in range(time)]
      return jnp.stack(steps, axis=1)
    kwargs = {} if masks is None else {"mask": masks.reshape(batch * time, *masks.shape[2:])}
    y = inner(x.reshape(batch * time, *x.shape[2:]), train=train, **kwargs)
    return y.reshape(batch, time, *y.shape[1:])


_STATISTICS_PER_STEP = ("BatchNormalization",)


def _time_distributed(config, name, options):
  class_name, inner = _inner(config)
  layer = _TimeDistributed(class_name, _freeze(inner), inner.get("name", class_name.lower()),
                           _freeze(options), name=name)
  return lambda x, train, mask=None: layer(x, mask, train=train)


def _freeze(value):
  """A config as nested tuples, hashable as a Flax module field needs (mappings marked to be thawed)."""
  if isinstance(value, Mapping):
    return ("__mapping__", tuple((k, _freeze(v)) for k, v in value.items()))
  if isinstance(value, (list, tuple)):
    return tuple(_freeze(v) for v in value)
  return value


def _thaw(value):
  if isinstance(value, tuple) and len(value) == 2 and value[0] == "__mapping__":
    return {k: _thaw(v) for k, v in value[1]}
  if isinstance(value, tuple):
    return [_thaw(v) for v in value]
  return value


def _time_distributed_check(config):
  class_name, inner = _inner(config)
  from jaxcomponents.keras.records import RECORDS  # pylint: disable=import-outside-toplevel
  if class_name not in RECORDS:
    return [f"a wrapped {class_name}, which is not supported"]
  return RECORDS[class_name].check(inner)


RECORDS: dict[str, KerasClass] = {
    **{name: _layer_record(name) for name in (*_LAYER_CELLS, "RNN", *_CONV_LSTMS)},
    **{name: _cell_record(name) for name in _CELL_CLASSES},
    "StackedRNNCells": _stacked_record(),
    "Bidirectional": KerasClass(_bidirectional, kwargs=("mask", "initial_state"), check=_bidirectional_check,
                                creates_module=True, weights=(RNN_WEIGHTS,)),
    "TimeDistributed": KerasClass(_time_distributed, kwargs=("mask",), check=_time_distributed_check,
                                  creates_module=True),
}

__all__ = ["RECORDS", "RNN_WEIGHTS"]
