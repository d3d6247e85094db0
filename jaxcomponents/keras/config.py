"""Reading a Keras layer's `get_config()`: the helpers every record shares.

Example:
  >>> as_tuple(3), activation_name({"activation": "relu"})
  ((3,), 'relu')
  >>> channels_last({"data_format": "channels_first"})
  ["data_format='channels_first' (only 'channels_last')"]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jaxcomponents import activations

Config = Mapping[str, Any]


def as_tuple(value) -> tuple:
  """A Keras int-or-sequence argument (`kernel_size`, `strides`, `axis`) as a tuple."""
  return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def activation_name(config: Config, key: str = "activation") -> str:
  """A Keras activation config entry (a name, or a serialized function) as jaxcomponents' name."""
  name = config.get(key, "linear")
  if isinstance(name, Mapping):  # a serialized function: its registered name
    name = name.get("config") if isinstance(name.get("config"), str) else name.get("class_name", "custom")
  return name or "linear"


def channels_last(config: Config) -> list[str]:
  """The problem with a `data_format` other than channels_last (empty when it is)."""
  fmt = config.get("data_format")
  return [] if fmt in (None, "channels_last") else [f"data_format={fmt!r} (only 'channels_last')"]


def known_activation(key: str = "activation") -> Callable[[Config], list[str]]:
  """A check that `config[key]` names an activation jaxcomponents has."""
  def check(config):
    name = activation_name(config, key)
    return [] if name in activations.ACTIVATIONS else [f"{key}={name!r} (known: {sorted(activations.ACTIVATIONS)})"]
  return check


def all_checks(*checks: Callable[[Config], list[str]]) -> Callable[[Config], list[str]]:
  """One check listing the problems of every check given."""
  return lambda config: [p for check in checks for p in check(config)]


__all__ = ["activation_name", "all_checks", "as_tuple", "channels_last", "known_activation"]
