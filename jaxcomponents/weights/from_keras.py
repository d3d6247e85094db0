"""Whole Keras models into Flax: `from_keras`, `compare_with_keras`, and back: `to_keras`.

`from_keras(model_or_path)` reads a Keras 3 Sequential or Functional model
(live, or a `.keras` / full-model `.h5` file through Keras's own loader) and
returns a `KerasGraph` module with its variables. Every layer with weights
becomes one of jaxcomponents' modules under the Keras layer's name; each Keras
weight is placed by its path (`bidirectional/forward_lstm/lstm_cell/kernel`)
and renamed by `CONVERSION_RULES`. Layers the graph cannot compute are all
listed, by name and class, before anything is built.

Example:
  >>> import keras, numpy as np
  >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu")])
  >>> module, variables = from_keras(model)
  >>> x = np.ones((2, 3), np.float32)
  >>> bool(np.allclose(module.apply(variables, x), model(x), atol=1e-6))
  True
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jaxcomponents.keras.records import RECORDS
from jaxcomponents.models import keras_graph
from jaxcomponents.models.keras_graph import KerasGraph
from jaxcomponents.weights.convert import Path, fit_to, flatten_variables, leaf_layers
from jaxcomponents.weights.convert import conversion_rule
from jaxcomponents.weights.keras_layers import KerasLayer, check_keras_file, short_weight_name

# Layers whose Keras weights are constants of the graph (folded into its config by `from_keras`).
_FOLDED = ("Normalization",)
_UNKNOWN_SIZE = 256  # stands for a dimension Keras leaves open (None) when only shapes are traced


def load_keras_model(model_or_path):
  """A live Keras model from a model or a `.keras` / `.h5` path (Keras's own loader).

  A file is checked first (`keras_layers.check_keras_file`): one cut short,
  not Keras's, or declaring more than `jaxcomponents.limits` allows is refused
  with a `ValueError` naming it, before Keras reads it.
  """
  if hasattr(model_or_path, "get_config") and hasattr(model_or_path, "layers"):
    return model_or_path
  if not isinstance(model_or_path, (str, os.PathLike)):
    raise ValueError(f"model_or_path={model_or_path!r} is not allowed; expected a keras.Model or the path of a "
                     f"Keras model file (.keras or .h5).")
  path = os.fspath(model_or_path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"Keras model file {path!r} does not exist.")
  if path.endswith(".weights.h5") or not path.endswith((".keras", ".h5", ".hdf5")):
    raise ValueError(f"model_or_path={path!r} is not allowed; expected a .keras or .h5 Keras model file "
                     f"(a .weights.h5 file holds no architecture: load it into its Keras model first).")
  check_keras_file(path)
  if path.endswith(".keras"):
    with zipfile.ZipFile(path) as archive:
      if "config.json" not in archive.namelist():
        raise ValueError(f"{path!r} is not a Keras model archive: it has no config.json (members: "
                         f"{', '.join(archive.namelist()[:5])}).")
  try:
    import keras  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("reading a Keras model file needs Keras 3: pip install keras") from e
  try:
    return keras.saving.load_model(path, compile=False)
  except (OSError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f"Keras cannot read {path!r} ({e}); is the file damaged?") from e


def _functional(model):
  """The model as a functional graph; a Sequential's masks become explicit operations on the way."""
  if type(model).__name__ != "Sequential":
    return model
  import keras  # pylint: disable=import-outside-toplevel
  if not getattr(model, "inputs", None):
    raise ValueError(f"the Sequential model {model.name!r} has no input shape; start it with keras.Input(shape).")
  return keras.Model(_single(model.inputs), _single(model.outputs), name=model.name)


def _single(tensors):
  """One tensor alone, as Keras expects a single-input model's inputs, else the list."""
  return tensors[0] if len(tensors) == 1 else tensors


def _jsonable(value):
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, np.generic):
    return value.item()
  raise TypeError(f"a Keras config holds {type(value).__name__} {value!r}, which cannot be kept as JSON.")


def _fold_constants(model, config: dict[str, Any]) -> dict[str, Any]:
  """Puts the adapted statistics of `Normalization` layers into their configs (nested models too)."""
  for entry in config["layers"]:
    if entry["class_name"] in keras_graph.MODEL_CLASSES:
      _fold_constants(model.get_layer(entry["name"]), entry["config"])
    elif entry["class_name"] in RECORDS and RECORDS[entry["class_name"]].fold is not None:
      RECORDS[entry["class_name"]].fold(model.get_layer(entry["name"]), entry["config"])
    elif entry["class_name"] in _FOLDED:
      layer = model.get_layer(entry["name"])
      if getattr(layer, "mean", None) is not None:
        entry["config"]["mean"] = np.asarray(layer.mean).tolist()
        entry["config"]["variance"] = np.asarray(layer.variance).tolist()
  return config


def graph_config(model) -> str:
  """The JSON config a `KerasGraph` computes `model` from (a Sequential is made functional first).

  Raises:
    ValueError: listing every layer (name and class) the graph cannot compute, and why.
  """
  functional = _functional(model)
  config = _fold_constants(functional, functional.get_config())
  found = keras_graph.problems(config)
  if found:
    raise ValueError(f"the Keras model {model.name!r} has {len(found)} layer(s) jaxcomponents cannot compute:\n  "
                     + "\n  ".join(found))
  return json.dumps(config, default=_jsonable)


def sample_inputs(model, batch: int = 1) -> list[np.ndarray]:
  """Zeros shaped like the model's inputs (open dimensions set to a placeholder size)."""
  samples = []
  for tensor in _functional(model).inputs:
    shape = (batch, *(_UNKNOWN_SIZE if d is None else d for d in tensor.shape[1:]))
    samples.append(np.zeros(shape, str(tensor.dtype)))
  return samples


def _weight_groups(layer) -> dict[tuple[str, ...], list[tuple[str, Any]]]:
  """A layer's weights grouped by the sub-layer that owns them: path below the layer -> [(short name, variable)]."""
  groups: dict[tuple[str, ...], list[tuple[str, Any]]] = {}
  for variable in layer.weights:
    parts = variable.path.split("/")
    if layer.name in parts[:-1]:
      parts = parts[parts.index(layer.name) + 1:]
    key = tuple(p for p in parts[:-1] if not p.endswith("_cell"))
    groups.setdefault(key, []).append((short_weight_name(parts[-1]), variable))
  return groups


def _pairs(layer, leaves: Mapping[Path, Any]) -> list[tuple[tuple[str, ...], Path]]:
  """(Keras sub-layer path, Flax leaf path) for each sub-layer of `layer` with weights.

  A Keras sub-layer pairs with the Flax leaf at its path below the layer's
  module (one wrapper module deep at most); those left over pair in the order
  of their names (`Bidirectional(LSTM(name="encoder"))`: Keras's
  `backward_encoder` and `forward_encoder` pair with `backward_lstm` and `forward_lstm`).
  """
  groups = _weight_groups(layer)
  ours = [p for p in leaves if p and p[0] == layer.name]
  pairs, left_keras, taken = [], [], set()
  for key in groups:
    found = [p for p in ours if p[1:1 + len(key)] == key and len(p) - 1 - len(key) in (0, 1) and p not in taken]
    if len(found) == 1:
      pairs.append((key, found[0]))
      taken.add(found[0])
    else:
      left_keras.append(key)
  left_ours = [p for p in ours if p not in taken]
  if len(left_keras) != len(left_ours):
    raise ValueError(f"Keras layer {layer.name!r} ({type(layer).__name__}) has weights in "
                     f"{[ '/'.join(k) or layer.name for k in groups]}, the module has layers "
                     f"{['/'.join(p) for p in ours]}; they do not pair up.")
  return pairs + list(zip(sorted(left_keras), sorted(left_ours)))


def _keras_layer(layer, key: tuple[str, ...]) -> KerasLayer:
  weights = {name: np.asarray(variable) for name, variable in _weight_groups(layer)[key]}
  return KerasLayer("/".join((layer.name, *key)), weights, f"keras layer {layer.name!r}")


def _weighted_layers(model):
  return [layer for layer in _functional(model).layers
          if layer.weights and type(layer).__name__ not in _FOLDED
          and getattr(RECORDS.get(type(layer).__name__), "fold", None) is None]


def keras_variables(model, shapes: Mapping[str, Any]) -> dict[str, Any]:
  """The Keras model's weights as variables shaped like `shapes` (a `KerasGraph`'s).

  Raises:
    ValueError: listing every missing, unexpected and mis-shaped variable.
  """
  leaves = leaf_layers(shapes)
  produced: dict[tuple[str, ...], tuple[np.ndarray, str]] = {}
  for layer in _weighted_layers(model):
    for key, path in _pairs(layer, leaves):
      keras_layer = _keras_layer(layer, key)
      _, table = conversion_rule(keras_layer, set(leaves[path]))
      for name, value in keras_layer.weights.items():
        collection, flax_name = table[name]
        produced[(collection, *path, flax_name)] = (value, f"Keras {keras_layer.name}/{name}")
  return fit_to(shapes, produced, f"the weights of Keras model {model.name!r} do not fit its graph")


def from_keras(model_or_path, *, check=None, precision: Any = "highest", atol: float = 1e-5,
               rtol: float = 1e-5) -> tuple[KerasGraph, dict[str, Any]]:
  """Returns `(module, variables)` computing what a Keras model computes.

  Args:
    model_or_path: a Keras 3 Sequential or Functional model, or the path of a
      `.keras` or full-model `.h5` file (read with Keras's loader, so Keras must
      be installed; Keras 2 `.h5` files load as Keras 3 reads them).
    check: optional input (an array, or a list with one per model input): the
      module's outputs, layer by layer, are compared with Keras's
      (`compare_with_keras`) and a `ValueError` names the first layer that differs.
    precision: the weighted layers' `precision` ("highest" matches Keras's
      float32 numbers; None is JAX's default, faster on accelerators).
    atol, rtol: the tolerances of `check`.

  Raises:
    ValueError: listing every layer that cannot be computed, before anything is built;
      or, with `check`, naming the first layer whose outputs differ.

  Example:
    module, variables = from_keras("model.keras", check=x)
    y = module.apply(variables, x)
  """
  model = load_keras_model(model_or_path)
  module = KerasGraph(graph_config(model), precision=precision)
  shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), *sample_inputs(model)))
  variables = keras_variables(model, shapes)
  if check is not None:
    report = compare_with_keras(module, variables, model, check, atol=atol, rtol=rtol)
    if report.first_divergent is not None:
      raise ValueError(f"the converted model differs from Keras:\n{report}")
  return module, variables


def to_keras(module, variables: Mapping[str, Any], keras_model):
  """Writes `variables` (of `from_keras(keras_model)`'s module) into `keras_model`'s weights; returns it.

  Then Keras's own writers save it: `keras_model.save("m.keras")` or
  `keras_model.save_weights("m.weights.h5")`.
  """
  shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), *sample_inputs(keras_model)))
  given = {k: (np.asarray(jax.device_get(v)), f"variables[{'/'.join(k)!r}]")
           for k, v in flatten_variables(variables).items()}
  fit_to(shapes, given, f"the variables do not fit the graph of Keras model {keras_model.name!r}")
  leaves = leaf_layers(variables)
  for layer in _weighted_layers(keras_model):
    groups = _weight_groups(layer)
    for key, path in _pairs(layer, leaves):
      _, table = conversion_rule(_keras_layer(layer, key), set(leaves[path]))
      for name, variable in groups[key]:
        variable.assign(np.asarray(jax.device_get(leaves[path][table[name]])))
  return keras_model


@dataclasses.dataclass(frozen=True)
class LayerDifference:
  """How far one layer's output is from Keras's: `max_abs`, and `max_rel` (max_abs over Keras's max |output|)."""

  name: str
  class_name: str
  max_abs: float
  max_rel: float


@dataclasses.dataclass(frozen=True)
class ParityReport:
  """`compare_with_keras`'s answer: one row per compared layer, in the order they run."""

  layers: tuple[LayerDifference, ...]
  first_divergent: str | None
  atol: float
  rtol: float

  def __str__(self) -> str:
    width = max([len(r.name) for r in self.layers] + [5])
    lines = [f"{'layer':<{width}}  {'class':<24} {'max abs':>10} {'max rel':>10}"]
    for r in self.layers:
      mark = "  <- first to differ" if r.name == self.first_divergent else ""
      lines.append(f"{r.name:<{width}}  {r.class_name:<24} {r.max_abs:10.3e} {r.max_rel:10.3e}{mark}")
    verdict = ("every layer agrees" if self.first_divergent is None
               else f"first layer to differ: {self.first_divergent}")
    return "\n".join(lines + [f"{verdict} (atol {self.atol:g}, rtol {self.rtol:g})"])


def _as_list(x) -> list:
  return list(x) if isinstance(x, (list, tuple)) else [x]


def compare_with_keras(module, variables: Mapping[str, Any], keras_model, x, *, atol: float = 1e-5,
                       rtol: float = 1e-5) -> ParityReport:
  """Compares every layer's output of `module` (a `KerasGraph`) with Keras's on input `x`.

  A layer differs when its largest absolute difference exceeds
  `atol + rtol * max |Keras output|`. Layers called more than once (shared)
  and layers with several outputs are compared through what follows them.

  Example:
    print(compare_with_keras(module, variables, keras_model, x))
  """
  import keras  # pylint: disable=import-outside-toplevel

  functional = _functional(keras_model)
  inputs = [np.asarray(v) for v in _as_list(x)]
  ours = module.apply(variables, *inputs, method=KerasGraph.layer_outputs)
  compared = []
  for layer in functional.layers:
    if layer.name not in ours or type(layer).__name__ == "InputLayer":
      continue
    try:
      output = layer.output
    except (AttributeError, ValueError, RuntimeError):  # shared: no single output
      continue
    if isinstance(output, (list, tuple)):
      continue
    compared.append((layer, output))
  probe = keras.Model(_single(functional.inputs), [o for _, o in compared])
  theirs = probe.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
  theirs = _as_list(theirs) if len(compared) > 1 else [theirs]
  rows, first = [], None
  for (layer, _), reference in zip(compared, theirs):
    value = ours[layer.name]
    diff = float(np.max(np.abs(np.asarray(value, np.float64) - np.asarray(reference, np.float64)), initial=0.0))
    scale = float(np.max(np.abs(np.asarray(reference, np.float64)), initial=0.0))
    rows.append(LayerDifference(layer.name, type(layer).__name__, diff, diff / scale if scale else diff))
    if first is None and (np.shape(value) != np.shape(reference) or diff > atol + rtol * scale):
      first = layer.name
  return ParityReport(tuple(rows), first, atol, rtol)


__all__ = ["LayerDifference", "ParityReport", "compare_with_keras", "from_keras", "graph_config",
           "keras_variables", "load_keras_model", "sample_inputs", "to_keras"]
