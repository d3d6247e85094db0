"""Every Keras class jaxcomponents computes, by class name: `RECORDS`; the `keras.ops` operations: `OPS`.

One module per family of layers, each with its own `RECORDS`; a class is
recorded once. `rule_for` finds the record of one entry of a Keras graph,
a user's custom layers first (`custom.custom_records`).

Example:
  >>> sorted(RECORDS["Dense"].weights[0])
  ['bias', 'kernel']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jaxcomponents.keras import regularization
from jaxcomponents.keras.record import KerasClass
from jaxcomponents.keras.records import (adaptive_pooling, applications, attention, augmentation, core, noise,
                                         normalization, recurrent, spatial, unet_collection)
from jaxcomponents.keras.records.ops import OPS
from jaxcomponents.layers.activity import activity_regularizer_problems

_FAMILIES = (core, spatial, normalization, recurrent, attention, noise, augmentation, adaptive_pooling, applications,
             unet_collection)
CustomRecords = tuple[tuple[str, KerasClass], ...]


def _merged() -> dict[str, KerasClass]:
  merged: dict[str, KerasClass] = {}
  for family in _FAMILIES:
    for name, record in family.RECORDS.items():
      if name in merged:
        raise ValueError(f"the Keras class {name!r} is recorded twice (in {family.__name__}).")
      merged[name] = record
  return merged


RECORDS: dict[str, KerasClass] = _merged()


def rule_for(class_name: str, module: str | None, layer_name: str = "",
             custom: CustomRecords = ()) -> KerasClass | None:
  """The record for a graph entry: the user's by layer name, then by class name; a `keras.ops` operation when its
  module says so; else the library's record of the class (None where there is none)."""
  given = dict(custom)
  if layer_name in given or class_name in given:
    return given.get(layer_name, given.get(class_name))
  if module and module.startswith("keras.src.ops"):
    return OPS.get(class_name)
  return RECORDS.get(class_name)


def _adapted_weights(config: Mapping[str, Any]) -> list[str]:
  """LoRA and quantized layers keep weights no record converts."""
  found = []
  if config.get("lora_rank"):
    found.append(f"lora_rank={config['lora_rank']!r} (only None: LoRA weights are not converted)")
  if config.get("quantization_config") is not None:
    found.append(f"quantization_config={config['quantization_config']!r} (only None: quantized weights are not "
                 f"converted)")
  dtype = config.get("dtype")
  policy = dtype.get("config", {}).get("name") if isinstance(dtype, Mapping) else dtype
  if isinstance(policy, str) and policy.startswith(("int8", "int4", "float8", "gptq")):
    found.append(f"dtype={policy!r} (quantized weights are not converted)")
  return found


def problems(class_name: str, module: str | None, config: Mapping[str, Any], kwargs: Sequence[str] = (),
             layer_name: str = "", custom: CustomRecords = ()) -> list[str]:
  """What keeps one graph entry from being computed (empty when it is supported)."""
  rule = rule_for(class_name, module, layer_name, custom)
  if rule is None:
    if class_name == "Lambda":
      return ["a Lambda layer runs Python code, which is never run from a model's config; give its equivalent: "
              f"from_keras(..., custom_layers={{{layer_name!r}: module_or_factory}})"]
    return [f"its class is not supported (give one: from_keras(..., custom_layers={{{class_name!r}: "
            f"module_or_factory}}))"]
  found = (rule.check(config) + activity_regularizer_problems(config) + regularization.problems(config, rule.weights)
           + _adapted_weights(config))
  extra = sorted(set(kwargs) - set(rule.kwargs))
  if extra:
    found.append(f"call arguments {extra} (this layer takes {list(rule.kwargs) or 'none'})")
  return found


__all__ = ["OPS", "RECORDS", "CustomRecords", "problems", "rule_for"]
