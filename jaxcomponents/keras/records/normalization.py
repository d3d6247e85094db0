"""Records of Keras's normalization layers: see `jaxcomponents.keras.record`.

`BatchNormalization` (any `axis`), `LayerNormalization` (`rms_scaling` too),
`GroupNormalization`, `UnitNormalization`, `RMSNormalization`, and `Normalization`, whose adapted
statistics are folded into its config (`fold`) and computed as constants.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxcomponents.errors import is_int
from jaxcomponents.keras.config import all_checks, as_tuple
from jaxcomponents.keras.record import KerasClass
from jaxcomponents.layers.normalization import (BatchNorm, GroupNormalization, LayerNormalization, RMSNormalization,
                                                UnitNormalization)

_GAMMA_BETA = {"gamma": ("params", "gamma"), "beta": ("params", "beta")}
_BETA = {"beta": ("params", "beta")}
# Keras's LayerNormalization weights into Flax's own `nn.LayerNorm` in a user's module (`load_keras`).
_FLAX_LAYER_NORM = ({"gamma": ("params", "scale"), "beta": ("params", "bias")}, {"beta": ("params", "bias")})


def _module_options(options) -> dict[str, Any]:
  return {"dtype": options.get("dtype"), "param_dtype": options.get("param_dtype", jnp.float32)}


def _only_none(*keys: str) -> Callable[[Any], list[str]]:
  """A check that the config's `keys` (weight regularizers, constraints) are unset: they change training."""
  return lambda config: [f"{k}={config[k]!r} (only None)" for k in keys if config.get(k) is not None]


_GAMMA_BETA_OPTIONS = _only_none("gamma_regularizer", "beta_regularizer", "gamma_constraint", "beta_constraint")


def _int_axes(config, allow_many: bool = True) -> list[str]:
  axis = config.get("axis", -1)
  axes = as_tuple(axis)
  if not axes or any(not is_int(a) for a in axes) or (len(axes) > 1 and not allow_many):
    return [f"axis={axis!r} (only {'ints' if allow_many else 'one int'})"]
  return []


def _one_axis(config) -> list[str]:
  return _int_axes(config, allow_many=False)


def _batch_norm(config, name, options):
  (axis,) = as_tuple(config.get("axis", -1))
  layer = BatchNorm(axis=axis, momentum=config.get("momentum", 0.99), epsilon=config.get("epsilon", 1e-3),
                    use_bias=config.get("center", True), use_scale=config.get("scale", True), name=name,
                    **_module_options(options))
  frozen = config.get("trainable", True) is False  # Keras normalizes with the moving statistics, never updated
  return lambda x, train: layer(x, use_running_average=frozen or not train)


def _batch_norm_check(config) -> list[str]:
  # `synchronized` is matched as it is: under `jax.jit` the batch statistics are the whole (global) batch's.
  return ["renorm=True (only False)"] if config.get("renorm") else []


def _layer_norm(config, name, options):
  layer = LayerNormalization(
      axis=as_tuple(config.get("axis", -1)), epsilon=config.get("epsilon", 1e-3), use_bias=config.get("center", True),
      use_scale=config.get("scale", True), rms_scaling=config.get("rms_scaling", False), name=name,
      **_module_options(options))
  return lambda x, train: layer(x)


def _group_norm(config, name, options):
  layer = GroupNormalization(
      num_groups=config.get("groups", 32), axis=config.get("axis", -1), epsilon=config.get("epsilon", 1e-3),
      use_bias=config.get("center", True), use_scale=config.get("scale", True), name=name, **_module_options(options))
  return lambda x, train: layer(x)


def _group_norm_check(config) -> list[str]:
  groups = config.get("groups", 32)
  if not is_int(groups) or (groups <= 0 and groups != -1):
    return [f"groups={groups!r} (only a positive int or -1)"]
  return []


def _rms_norm(config, name, options):
  layer = RMSNormalization(as_tuple(config.get("axis", -1)), config.get("epsilon", 1e-6),
                           options.get("param_dtype", jnp.float32), name=name)
  return lambda x, train: layer(x)


def _unit_norm(config, name, options):
  axis = config.get("axis", -1)
  layer = UnitNormalization(tuple(axis) if isinstance(axis, (list, tuple)) else axis)
  return lambda x, train: layer(x)


def _normalization(config, name, options):
  """`(x - mean) / max(sqrt(variance), 1e-7)` (`invert`: `mean + x * max(...)`), the statistics folded in."""
  mean, variance = jnp.asarray(config["mean"], jnp.float32), jnp.asarray(config["variance"], jnp.float32)
  scale = jnp.maximum(jnp.sqrt(variance), 1e-7)
  if config.get("invert", False):
    return lambda x, train: mean + x * scale
  return lambda x, train: (x - mean) / scale


def _normalization_check(config) -> list[str]:
  if config.get("mean") is None or config.get("variance") is None:
    return ["no mean and variance (adapt the layer, or give them)"]
  return []


def _normalization_fold(layer, config: dict[str, Any]) -> None:
  """Puts the layer's statistics, as Keras broadcasts them over its input (`layer.mean`), into `config`."""
  if getattr(layer, "mean", None) is not None:
    config["mean"] = np.asarray(layer.mean).tolist()
    config["variance"] = np.asarray(layer.variance).tolist()


RECORDS: dict[str, KerasClass] = {
    "BatchNormalization": KerasClass(
        _batch_norm, check=all_checks(_one_axis, _batch_norm_check, _GAMMA_BETA_OPTIONS), creates_module=True,
        weights=({"gamma": ("params", "scale"), "beta": ("params", "bias"), "moving_mean": ("batch_stats", "mean"),
                  "moving_variance": ("batch_stats", "var")},),
        shape_checked=True),
    "LayerNormalization": KerasClass(
        _layer_norm, check=all_checks(_int_axes, _GAMMA_BETA_OPTIONS), creates_module=True,
        weights=(_GAMMA_BETA, _BETA, *_FLAX_LAYER_NORM), shape_checked=True),
    "GroupNormalization": KerasClass(
        _group_norm, check=all_checks(_one_axis, _group_norm_check, _GAMMA_BETA_OPTIONS), creates_module=True,
        weights=(_GAMMA_BETA, _BETA), shape_checked=True),
    "UnitNormalization": KerasClass(_unit_norm, check=_int_axes),
    "RMSNormalization": KerasClass(_rms_norm, check=_int_axes, creates_module=True,
                                   weights=({"scale": ("params", "scale")},), shape_checked=True),
    "Normalization": KerasClass(
        _normalization, check=_normalization_check, fold=_normalization_fold,
        weights=({"mean": ("batch_stats", "mean"), "variance": ("batch_stats", "variance"),
                  "count": ("batch_stats", "count")},)),
}
