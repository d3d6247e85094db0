"""Every Keras class jaxcomponents computes, by class name: `RECORDS`, and the `keras.ops` operations: `OPS`.

One module per family of layers, each with its own `RECORDS`; a class is
recorded once.
"""

from __future__ import annotations

from jaxcomponents.keras.record import KerasClass
from jaxcomponents.keras.records import adaptive_pooling, applications, attention, noise, normalization, recurrent

_FAMILIES = (adaptive_pooling, applications, attention, noise, normalization, recurrent)


def _merged() -> dict[str, KerasClass]:
  merged: dict[str, KerasClass] = {}
  for family in _FAMILIES:
    for name, record in family.RECORDS.items():
      if name in merged:
        raise ValueError(f"the Keras class {name!r} is recorded twice (in {family.__name__}).")
      merged[name] = record
  return merged


RECORDS: dict[str, KerasClass] = _merged()

__all__ = ["RECORDS"]
