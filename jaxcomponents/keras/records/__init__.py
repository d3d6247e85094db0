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

from jaxcomponents.keras.record import KerasClass
from jaxcomponents.keras.records import (adaptive_pooling, applications, attention, core, noise, normalization,
                                         recurrent, spatial, unet_collection)
from jaxcomponents.keras.records.ops import OPS
from jaxcomponents.layers.activity import activity_regularizer_problems

_FAMILIES = (core, spatial, normalization, recurrent, attention, noise, adaptive_pooling, applications, unet_collection)
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
  found = rule.check(config) + activity_regularizer_problems(config)
  extra = sorted(set(kwargs) - set(rule.kwargs))
  if extra:
    found.append(f"call arguments {extra} (this layer takes {list(rule.kwargs) or 'none'})")
  return found


__all__ = ["OPS", "RECORDS", "CustomRecords", "problems", "rule_for"]
