"""A user's own layers for `from_keras(..., custom_layers=...)`, as records.

A custom layer is given by its Keras class name (or one layer's name, for a
`Lambda`) as one of:

- a `KerasClass` record;
- a Flax module class: built with the Keras config entries named as its fields and `name=` the layer's name;
  called with the layer's inputs (and `train=` when its `__call__` takes it). Its parameters are named as the
  Keras layer's weights, or the record's tables say how;
- a factory `(config, name) -> module or function`, called while the graph is set up.

Nothing is ever run from a Keras file: the code is the user's.

Example:
  >>> import flax.linen as nn
  >>> class Scale(nn.Module):
  ...   scale: float
  ...   def __call__(self, x):
  ...     return x * self.scale
  >>> records = custom_records({"CustomScale": Scale})
  >>> records[0][0]
  'CustomScale'
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn

from jaxcomponents.keras.record import KerasClass


def _takes_train(fn: Callable[..., Any]) -> bool:
  try:
    parameters = inspect.signature(fn).parameters
  except (TypeError, ValueError):
    return False
  return "train" in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _call(target: Callable[..., Any]) -> Callable[..., Any]:
  takes_train = _takes_train(target.__call__ if isinstance(target, nn.Module) else target)

  def call(*args, train, **kwargs):
    return target(*args, train=train, **kwargs) if takes_train else target(*args, **kwargs)
  return call


def _module_class_record(cls: type[nn.Module]) -> KerasClass:
  fields = {f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name")}

  def build(config, name, options):
    return _call(cls(**{k: v for k, v in config.items() if k in fields}, name=name))
  return KerasClass(build, creates_module=True)


def _factory_record(factory: Callable[..., Any]) -> KerasClass:
  def build(config, name, options):
    made = factory(dict(config), name)
    if isinstance(made, nn.Module):
      return _call(made)
    from jaxcomponents.keras.graph import StatelessLayer  # pylint: disable=import-outside-toplevel
    return _call(StatelessLayer(name, _call(made), name=name))
  return KerasClass(build, creates_module=True)


def custom_records(custom_layers: Mapping[str, Any] | None) -> tuple[tuple[str, KerasClass], ...]:
  """`custom_layers` as (class or layer name, record) pairs, hashable for a Flax module's field.

  Raises:
    ValueError: naming an entry that is not a record, a Flax module class or a callable.
  """
  if custom_layers is None:
    return ()
  if not isinstance(custom_layers, Mapping):
    raise ValueError(f"custom_layers={custom_layers!r} is not allowed; expected a dict of Keras class (or layer) "
                     f"name -> KerasClass, Flax module class or factory (config, name) -> module.")
  records = []
  for key, value in custom_layers.items():
    if isinstance(value, KerasClass):
      record = value
    elif isinstance(value, type) and issubclass(value, nn.Module):
      record = _module_class_record(value)
    elif callable(value) and not isinstance(value, type):
      record = _factory_record(value)
    else:
      raise ValueError(f"custom_layers[{key!r}]={value!r} is not allowed; expected a KerasClass, a Flax module "
                       f"class or a factory (config, name) -> module or function.")
    records.append((str(key), record))
  return tuple(records)


def custom_tables(records: tuple[tuple[str, KerasClass], ...]) -> tuple[Any, ...]:
  """The renaming tables of custom records."""
  return tuple(table for _, record in records for table in record.weights)


__all__ = ["custom_records", "custom_tables"]
