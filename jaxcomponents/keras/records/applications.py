"""Records of Keras classes: see `jaxcomponents.keras.record`."""

from __future__ import annotations

from jaxcomponents.keras.record import KerasClass

RECORDS: dict[str, KerasClass] = {}
