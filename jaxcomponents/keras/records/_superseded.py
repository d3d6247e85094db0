"""Records of normalization, recurrent and ConvNeXt layers, kept here until their families take them over.

See `jaxcomponents.keras.record` for what a record holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxcomponents.keras.config import Config, activation_name, as_tuple, known_activation
from jaxcomponents.keras.record import KerasClass
from jaxcomponents.layers.normalization import BatchNorm
from jaxcomponents.layers.recurrent import Recurrent

# Normalization.

def _batch_norm(config, name, options):
  layer = BatchNorm(momentum=config.get("momentum", 0.99), epsilon=config.get("epsilon", 1e-3),
                    use_bias=config.get("center", True), use_scale=config.get("scale", True), name=name,
                    dtype=options.get("dtype"), param_dtype=options.get("param_dtype", jnp.float32))

  def call(x, train):
    axis = config.get("axis", -1)
    if as_tuple(axis) not in ((-1,), (x.ndim - 1,)):
      raise ValueError(f"BatchNormalization {name!r}: axis={axis!r} is not supported; only the last axis.")
    return layer(x, use_running_average=not train)
  return call


def _layer_norm(config, name, options):
  axes = as_tuple(config.get("axis", -1))
  layer = nn.LayerNorm(epsilon=config.get("epsilon", 1e-3), use_bias=config.get("center", True),
                       use_scale=config.get("scale", True), reduction_axes=axes, feature_axes=axes,
                       use_fast_variance=False, name=name, dtype=options.get("dtype"),
                       param_dtype=options.get("param_dtype", jnp.float32))
  return lambda x, train: layer(x)


def _normalization(config, name, options):
  """`(x - mean) / max(sqrt(variance), 1e-7)`; `from_keras` puts the adapted statistics in the config."""
  mean, variance = jnp.asarray(config["mean"], jnp.float32), jnp.asarray(config["variance"], jnp.float32)
  scale = jnp.maximum(jnp.sqrt(variance), 1e-7)
  if config.get("invert", False):
    return lambda x, train: mean + x * scale
  return lambda x, train: (x - mean) / scale


def _normalization_check(config):
  if config.get("mean") is None or config.get("variance") is None:
    return ["no mean and variance (adapt the layer, or give them)"]
  return []



class LayerScale(nn.Module):
  """ConvNeXt's `LayerScale`: `x * gamma`, one factor per channel (stored as `scale`, Keras's `gamma`)."""

  projection_dim: int
  init_values: float

  @nn.compact
  def __call__(self, x):
    return x * self.param("scale", nn.initializers.constant(self.init_values), (self.projection_dim,))


def _layer_scale(config, name, options):
  layer = LayerScale(config["projection_dim"], config["init_values"], name=name)
  return lambda x, train: layer(x)



_CELLS = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}


def _recurrent_options(class_name: str, config: Config) -> dict[str, Any]:
  options = {
      "cell": _CELLS[class_name], "activation": activation_name(config),
      "use_bias": config.get("use_bias", True), "return_sequences": config.get("return_sequences", False),
      "return_state": config.get("return_state", False), "go_backwards": config.get("go_backwards", False),
      "dropout": config.get("dropout", 0.0), "recurrent_dropout": config.get("recurrent_dropout", 0.0),
      "zero_output_for_mask": config.get("zero_output_for_mask"),
  }
  if class_name != "SimpleRNN":
    options["recurrent_activation"] = activation_name({"activation": config.get("recurrent_activation", "sigmoid")})
  if class_name == "GRU":
    options["reset_after"] = config.get("reset_after", True)
  if class_name == "LSTM":
    options["unit_forget_bias"] = config.get("unit_forget_bias", True)
  return options


def _recurrent(class_name: str):
  def build(config, name, options):
    layer = Recurrent(config["units"], **_recurrent_options(class_name, config), name=name, **options)

    def call(x, train, mask=None, initial_state=None):
      return layer(x, train=train, mask=mask, initial_state=initial_state)
    return call
  return KerasClass(build, kwargs=("mask", "initial_state"), check=_recurrent_check, creates_module=True)


def _recurrent_check(config):
  problems = known_activation()(config) + known_activation("recurrent_activation")(config)
  if config.get("stateful"):
    problems.append("stateful=True (only False)")
  return problems


def _inner(config: Config) -> tuple[str, Config]:
  layer = config["layer"]
  return layer["class_name"], layer["config"]


def _bidirectional(config, name, options):
  class_name, inner = _inner(config)
  merge = config.get("merge_mode", "concat")
  # Keras's Bidirectional forces zero_output_for_mask = return_sequences on both directions.
  recurrent = {**_recurrent_options(class_name, inner), "go_backwards": False, "zero_output_for_mask": None}
  layer = Recurrent(inner["units"], **recurrent, bidirectional=merge or "concat", name=name, **options)
  units = inner["units"]

  def call(x, train, mask=None, initial_state=None):
    out = layer(x, train=train, mask=mask, initial_state=initial_state)
    if merge is not None:
      return out
    y, *states = out if recurrent["return_state"] else (out,)
    return (y[..., :units], y[..., units:], *states)  # merge_mode=None: the two directions apart
  return call


def _mirrored(config: Config) -> dict[str, Any]:
  return {k: v for k, v in config.items() if k not in ("name", "go_backwards")}


def _bidirectional_check(config):
  class_name, inner = _inner(config)
  problems = []
  if class_name not in _CELLS:
    problems.append(f"a wrapped {class_name} (only LSTM, GRU, SimpleRNN)")
  else:
    problems += _recurrent_check(inner)
  backward = config.get("backward_layer")
  if backward is not None and _mirrored(backward["config"]) != _mirrored(inner):
    problems.append("a backward_layer configured unlike the forward layer (only the mirrored forward layer)")
  if config.get("merge_mode", "concat") not in ("concat", "sum", "mul", "ave", None):
    problems.append(f"merge_mode={config['merge_mode']!r}")
  return problems


class _TimeDistributed(nn.Module):
  """Applies a layer to every step of `(batch, time, ...)`."""

  inner_class: str
  config: Any  # the inner layer's config as a frozen tuple of items
  inner_name: str
  options: Any

  @nn.compact
  def __call__(self, x, *, train):
    from jaxcomponents.keras.records import RECORDS  # pylint: disable=import-outside-toplevel
    inner = RECORDS[self.inner_class].build(dict(self.config), self.inner_name, dict(self.options))
    batch, time = x.shape[:2]
    y = inner(x.reshape(batch * time, *x.shape[2:]), train=train)
    return y.reshape(batch, time, *y.shape[1:])


def _time_distributed(config, name, options):
  class_name, inner = _inner(config)
  layer = _TimeDistributed(class_name, _freeze(inner), inner.get("name", class_name.lower()),
                           _freeze(options), name=name)
  return lambda x, train, mask=None: layer(x, train=train)


def _freeze(value):
  """A config as nested tuples, hashable as a Flax module field needs."""
  if isinstance(value, Mapping):
    return tuple((k, _freeze(v)) for k, v in value.items())
  if isinstance(value, (list, tuple)):
    return tuple(_freeze(v) for v in value)
  return value


def _time_distributed_check(config):
  class_name, inner = _inner(config)
  from jaxcomponents.keras.records import RECORDS  # pylint: disable=import-outside-toplevel
  if class_name not in RECORDS:
    return [f"a wrapped {class_name}, which is not supported"]
  from jaxcomponents.keras.records import RECORDS  # pylint: disable=import-outside-toplevel
  return RECORDS[class_name].check(inner)




def _fold_normalization(layer, config: dict[str, Any]) -> None:
  """Puts a `Normalization` layer's adapted statistics into its config."""
  if getattr(layer, "mean", None) is not None:
    config["mean"] = np.asarray(layer.mean).tolist()
    config["variance"] = np.asarray(layer.variance).tolist()


RECORDS: dict[str, KerasClass] = {
    "BatchNormalization": KerasClass(_batch_norm, creates_module=True, shape_checked=True, weights=(
        {"gamma": ("params", "scale"), "beta": ("params", "bias"), "moving_mean": ("batch_stats", "mean"),
         "moving_variance": ("batch_stats", "var")},)),
    "LayerNormalization": KerasClass(
        _layer_norm, check=lambda c: ["rms_scaling=True (only False)"] if c.get("rms_scaling") else [],
        creates_module=True, weights=({"gamma": ("params", "scale"), "beta": ("params", "bias")},)),
    "Normalization": KerasClass(_normalization, check=_normalization_check, fold=_fold_normalization, weights=(
        {"mean": ("batch_stats", "mean"), "variance": ("batch_stats", "variance"),
         "count": ("batch_stats", "count")},)),
    "LayerScale": KerasClass(_layer_scale, creates_module=True, weights=({"variable": ("params", "scale")},)),
    **{name: dataclasses.replace(_recurrent(name), weights=(
        {"kernel": ("params", "kernel"), "recurrent_kernel": ("params", "recurrent_kernel"),
         "bias": ("params", "bias")},)) for name in _CELLS},
    "Bidirectional": KerasClass(_bidirectional, kwargs=("mask", "initial_state"), check=_bidirectional_check,
                                creates_module=True),
    "TimeDistributed": KerasClass(_time_distributed, kwargs=("mask",), check=_time_distributed_check,
                                  creates_module=True),
}
