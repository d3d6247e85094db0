"""Keras's `data_format="channels_first"` for any record written for channels last.

The channels move last before the layer and back after it, as Keras's own
channels-first layers compute (Keras's `Flatten` also flattens in
channels-last order). Transposes are exact, so the numbers are Keras's.

Example:
  >>> import jax.numpy as jnp
  >>> from jaxcomponents.keras.record import KerasClass
  >>> mean = any_data_format(KerasClass(lambda c, n, o: lambda x, train: x.mean(axis=1, keepdims=True)))
  >>> mean.build({"data_format": "channels_first"}, "m", {})(jnp.ones((2, 3, 5)), train=False).shape
  (2, 3, 1)
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jaxcomponents.keras.record import KerasClass

DATA_FORMATS = (None, "channels_last", "channels_first")


def _data_format_problem(config) -> list[str]:
  fmt = config.get("data_format")
  return [] if fmt in DATA_FORMATS else [f"data_format={fmt!r} (known: 'channels_last', 'channels_first')"]


def any_data_format(record: KerasClass) -> KerasClass:
  """`record` (written for channels last) taking `data_format="channels_first"` too."""
  def build(config, name, options):
    call = record.build(config, name, options)
    if config.get("data_format") != "channels_first":
      return call

    def channels_first(x, train, **kwargs):
      y = call(jnp.moveaxis(x, 1, -1), train=train, **kwargs)
      return jnp.moveaxis(y, -1, 1) if y.ndim > 2 else y
    return channels_first

  def check(config):
    return _data_format_problem(config) + record.check({**config, "data_format": "channels_last"})
  return dataclasses.replace(record, build=build, check=check)


__all__ = ["DATA_FORMATS", "any_data_format"]
