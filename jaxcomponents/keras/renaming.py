"""Keras weight names to the variables of jaxcomponents' modules, and back, by the records' weight tables.

Every `KerasClass` record lists the renaming tables of the modules it builds
(`KerasClass.weights`); this module reads them all, for loading (a Keras
layer's weights into one Flax module's variables) and writing back (a Flax
module's variables as Keras weights, in Keras's order). A module whose
variables are named as the Keras weights (a custom layer) needs no table.

Example:
  >>> import numpy as np
  >>> from jaxcomponents.keras.weight_files import KerasLayer
  >>> layer = KerasLayer("dense", {"kernel": np.ones((2, 3)), "bias": np.zeros(3)}, "example")
  >>> dict(table_for(layer, {("params", "kernel"), ("params", "bias")}))
  {'kernel': ('params', 'kernel'), 'bias': ('params', 'bias')}
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jaxcomponents.keras.record import Target, WeightTable
from jaxcomponents.keras.weight_files import KerasLayer, name_positional_weights
from jaxcomponents.variable_trees import Path


@functools.lru_cache(maxsize=1)
def weight_tables() -> tuple[tuple[str, WeightTable], ...]:
  """(the Keras classes using it, table) for every distinct renaming table of the records, in record order."""
  from jaxcomponents.keras.records import RECORDS  # pylint: disable=import-outside-toplevel

  classes: dict[tuple, list[str]] = {}
  for name, record in RECORDS.items():
    for table in record.weights:
      classes.setdefault(tuple(table.items()), []).append(name)
  return tuple((", ".join(names), dict(items)) for items, names in classes.items())


def _identity(names, targets: set[Target]) -> WeightTable | None:
  """Keras names kept as they are, when the module's variables are the layer's own names (a custom layer)."""
  if {c for c, _ in targets} == {"params"} and {n for _, n in targets} == set(names):
    return {name: ("params", name) for name in names}
  return None


def table_for(layer: KerasLayer, targets: set[Target], extra: tuple[WeightTable, ...] = ()) -> WeightTable:
  """The renaming table taking `layer`'s weights to a Flax module with variables `targets`.

  When no table fits exactly, the table sharing the most weight names is
  returned, so that the missing and unexpected variables are then listed.

  Raises:
    ValueError: if no table holds every weight of the layer.
  """
  names = set(layer.weights)
  for _, table in (*(("", t) for t in extra), *weight_tables()):
    if names <= set(table) and {table[k] for k in names} == set(targets):
      return table
  identity = _identity(names, set(targets))
  if identity is not None:
    return identity
  sharing = sorted((t for t in weight_tables() if names & set(t[1])), key=lambda t: -len(names & set(t[1])))
  if not sharing:
    raise ValueError(f"{layer.origin}: no conversion rule for a layer with weights {sorted(names)}; known layer "
                     f"types: {'; '.join(classes for classes, _ in weight_tables())}.")
  classes, table = sharing[0]
  unknown = sorted(names - set(table))
  if unknown:
    raise ValueError(f"{layer.origin}: weights {unknown} are not {classes} weights.")
  return table


def named_for(layer: KerasLayer, targets: set[Target]) -> KerasLayer:
  """`layer` with its Keras 3 positional weights (`"0"`, `"1"`, ...) named for a Flax module with `targets`."""
  if not layer.positional:
    return layer
  for _, table in weight_tables():
    names = [k for k, t in table.items() if t in targets]
    if len(names) == len(layer.weights) and {table[k] for k in names} == set(targets):
      return name_positional_weights(layer, dict(table), targets)
  raise ValueError(f"{layer.origin}: no Keras layer type stores {len(layer.weights)} weights for a Flax layer with "
                   f"{sorted('/'.join(t) for t in targets)}.")


def _table_of_module(path: Path, leaf: Mapping[Target, Any]) -> WeightTable:
  """The table whose variables are the module's: an exact one first, else the one covering most of it."""
  found = set(leaf)
  fitting = [table for _, table in weight_tables() if found <= set(table.values())]
  exact = [table for table in fitting if set(table.values()) == found]
  if exact or fitting:
    return (exact or sorted(fitting, key=len))[0]
  identity = _identity({n for _, n in found}, found)
  if identity is not None:
    return identity
  raise ValueError(f"layer {'/'.join(path)} with variables {sorted('/'.join(t) for t in leaf)} matches no Keras "
                   f"layer type.")


def keras_targets(path: Path, leaf: Mapping[Target, Any]) -> list[Target]:
  """A module's variables, `(collection, name)`, in its Keras layer's weight order; those no table names
  (a module of the user's own) follow, sorted.

  Example:
    >>> keras_targets(("dense",), {("params", "bias"): 0, ("params", "kernel"): 0})
    [('params', 'kernel'), ('params', 'bias')]
  """
  try:
    named = [target for target in _table_of_module(path, leaf).values() if target in leaf]
  except ValueError:
    named = []
  return named + sorted(target for target in leaf if target not in named)


def keras_weights(path: Path, leaf: Mapping[Target, Any], keras_layer: KerasLayer | None = None,
                  extra: tuple[WeightTable, ...] = ()) -> list[tuple[str, np.ndarray]]:
  """A Flax module's variables as Keras (weight name, value) pairs, in Keras's order.

  Args:
    path: the module's path (for messages).
    leaf: its variables, `(collection, name) -> value`.
    keras_layer: the Keras layer they go to, when known (its weight names choose the table).
    extra: tables tried first (a custom layer's record).
  """
  table = _table_of_module(path, leaf) if keras_layer is None else table_for(keras_layer, set(leaf), extra)
  return [(name, np.asarray(jax.device_get(leaf[target]))) for name, target in table.items() if target in leaf]


__all__ = ["keras_targets", "keras_weights", "named_for", "table_for", "weight_tables"]
