"""Whole Keras models into Flax: `from_keras`, and back: `to_keras`.

`from_keras(model_or_path)` reads a Keras 3 Sequential or Functional model
(live, or a `.keras` / full-model `.h5` file through Keras's own loader) and
returns a `KerasGraph` module with its variables. Every layer with weights
becomes one of jaxcomponents' modules under the Keras layer's name; each Keras
weight is placed by its path (`bidirectional/forward_lstm/lstm_cell/kernel`,
`pairing.pair_layers(..., "path")`) and renamed by its class's record
(`renaming`). Layers the graph cannot compute are all listed, by name and
class, before anything is built. `compare_with_keras` (`parity`) reports
layer by layer.

Example:
  >>> import keras, numpy as np
  >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu")])
  >>> module, variables = from_keras(model)
  >>> x = np.ones((2, 3), np.float32)
  >>> bool(np.allclose(module.apply(variables, x), model(x), atol=1e-6))
  True
"""

from __future__ import annotations

import inspect
import json
import os
import zipfile
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jaxcomponents.keras import graph as keras_graph
from jaxcomponents.keras.convert import convert_layers
from jaxcomponents.keras.graph import OPEN_SIZE, KerasGraph
from jaxcomponents.keras.parity import compare_with_keras, functional
from jaxcomponents.keras.records import RECORDS, CustomRecords
from jaxcomponents.keras.records.custom import custom_records, custom_tables
from jaxcomponents.keras.weight_files import check_keras_file, layers_from_model
from jaxcomponents.keras.write import checked_leaves, write_to_model



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


def _jsonable(value):
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, np.generic):
    return value.item()
  raise TypeError(f"a Keras config holds {type(value).__name__} {value!r}, which cannot be kept as JSON.")


def _fold_constants(model, config: dict[str, Any]) -> dict[str, Any]:
  """Puts the weights that records fold (`KerasClass.fold`) into their layers' configs (nested models too)."""
  for entry in config["layers"]:
    if entry["class_name"] in keras_graph.MODEL_CLASSES:
      _fold_constants(model.get_layer(entry["name"]), entry["config"])
    elif entry["class_name"] in RECORDS and RECORDS[entry["class_name"]].fold is not None:
      RECORDS[entry["class_name"]].fold(model.get_layer(entry["name"]), entry["config"])
  return config


def _implicit_masks(layer, node) -> dict[str, Any]:
  """The masks Keras gives a call without recording them (`Layer.__call__`, "populate mask arguments"): a lone
  tensor argument's mask as `mask`, else each tensor argument `k`'s as `k_mask`, where the call takes them;
  also the inputs' masks of the merges that read them from their inputs (`Multiply`, `Maximum`, `Minimum`), and
  MultiHeadAttention's query mask in place of any given (None where the query has none)."""
  import keras  # pylint: disable=import-outside-toplevel

  reads_masks = isinstance(layer, (keras.layers.Multiply, keras.layers.Maximum, keras.layers.Minimum))
  # MultiHeadAttention takes its query's mask, and ignores a `query_mask` given to the call.
  replaced = {"query_mask"} if isinstance(layer, keras.layers.MultiHeadAttention) else set()

  try:
    signature = inspect.signature(layer.call)
    bound = signature.bind(*node.arguments.args, **node.arguments.kwargs).arguments
  except (TypeError, ValueError, AttributeError):
    return {}
  tensors = {k: v for k, v in bound.items()
             if any(isinstance(t, keras.KerasTensor) for t in keras.tree.flatten(v))}

  def masks_of(value):
    masks = keras.tree.map_structure(lambda t: getattr(t, "_keras_mask", None), value)
    return masks if any(m is not None for m in keras.tree.flatten(masks)) else None

  wanted = {"mask": next(iter(tensors.values()))} if len(tensors) == 1 else {f"{k}_mask": v for k, v in tensors.items()}
  found = {}
  for name, value in wanted.items():
    if (name in signature.parameters or (reads_masks and name == "mask")) and (
        bound.get(name) is None or name in replaced):
      masks = masks_of(value)
      if masks is not None or bound.get(name) is not None:
        found[name] = masks
  return found


def _with_implicit_masks(graph) -> dict[str, Any]:
  """`graph.get_config()` with the masks Keras passes implicitly written as call keywords, and the operations
  computing them added (read from a model that also outputs them)."""
  import keras  # pylint: disable=import-outside-toplevel
  from keras.src.ops.function import make_node_key  # pylint: disable=import-outside-toplevel

  calls = []  # (layer name, index among the graph's nodes of the layer, {keyword: masks})
  crossing = []  # nested models a mask enters or leaves
  for operation in graph.operations:
    kept = 0
    for index, node in enumerate(operation._inbound_nodes):  # pylint: disable=protected-access
      if make_node_key(operation, index) in graph._nodes:  # pylint: disable=protected-access
        if hasattr(operation, "layers"):
          tensors = [*keras.tree.flatten(node.arguments.args), *keras.tree.flatten(node.arguments.kwargs),
                     *keras.tree.flatten(node.output_tensors), *keras.tree.flatten(operation.outputs)]
          if any(getattr(t, "_keras_mask", None) is not None for t in tensors):
            crossing.append(f"{operation.name} ({type(operation).__name__}): a mask enters or leaves this nested "
                            f"model (build the model flat, or give the mask as an input)")
        elif isinstance(operation, keras.layers.Layer):
          masks = _implicit_masks(operation, node)
          if masks:
            calls.append((operation.name, kept, masks))
        kept += 1
  if crossing:
    raise ValueError(f"the Keras model {graph.name!r} has {len(crossing)} layer(s) jaxcomponents cannot compute:\n  "
                     + "\n  ".join(crossing))
  if not calls:
    return graph.get_config()
  masks = [m for _, _, found in calls for m in keras.tree.flatten(found) if m is not None]
  outputs = list(keras.tree.flatten(graph.outputs))
  probe = keras.Model(graph.inputs, outputs + masks, name=graph.name)
  config = probe.get_config()
  refs = dict(zip((id(m) for m in masks), config["output_layers"][len(outputs):]))
  config["output_layers"] = graph.get_config()["output_layers"]
  entries = {entry["name"]: entry for entry in config["layers"]}
  for name, node, found in calls:
    kwargs = entries[name]["inbound_nodes"][node]["kwargs"]
    for keyword, value in found.items():
      kwargs[keyword] = keras.tree.map_structure(
          lambda m: None if m is None else {"class_name": "__keras_tensor__",
                                            "config": {"shape": list(m.shape), "dtype": m.dtype,
                                                       "keras_history": refs[id(m)]}}, value)
  return config


def graph_config(model, custom: CustomRecords = ()) -> str:
  """The JSON config a `KerasGraph` computes `model` from (a Sequential is made functional first).

  Raises:
    ValueError: listing every layer (name and class) the graph cannot compute, and why.
  """
  graph = functional(model)
  config = _fold_constants(graph, _with_implicit_masks(graph))
  found = keras_graph.problems(config, custom=custom)
  if found:
    raise ValueError(f"the Keras model {model.name!r} has {len(found)} layer(s) jaxcomponents cannot compute:\n  "
                     + "\n  ".join(found))
  return json.dumps(config, default=_jsonable)


def sample_inputs(model, batch: int = 1) -> list[np.ndarray]:
  """Zeros shaped like the model's inputs (open dimensions set to a placeholder size)."""
  samples = []
  for tensor in functional(model).inputs:
    shape = (batch, *(OPEN_SIZE if d is None else d for d in tensor.shape[1:]))
    samples.append(np.zeros(shape, str(tensor.dtype)))
  return samples


def _folded(layer) -> bool:
  record = RECORDS.get(type(layer).__name__)
  return record is not None and record.fold is not None


def keras_variables(model, shapes: Mapping[str, Any], custom: CustomRecords = ()) -> dict[str, Any]:
  """The Keras model's weights as variables shaped like `shapes` (a `KerasGraph`'s).

  Raises:
    ValueError: listing every missing, unexpected and mis-shaped variable.
  """
  return convert_layers(shapes, layers_from_model(functional(model), _folded), match="path",
                        extra_tables=custom_tables(custom),
                        what=f"the weights of Keras model {model.name!r} do not fit its graph")


def from_keras(model_or_path, *, check=None, precision: Any = "highest", atol: float = 1e-5,
               rtol: float = 1e-5, custom_layers: Mapping[str, Any] | None = None) -> tuple[KerasGraph, dict[str, Any]]:
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
    custom_layers: the user's own Keras classes (or, by layer name, `Lambda` layers): name -> a `KerasClass`
      record, a Flax module class (built from the Keras config entries named as its fields), or a factory
      `(config, name) -> module or function`; see `jaxcomponents.keras.records.custom`. A file's Python code
      is never run.

  Raises:
    ValueError: listing every layer that cannot be computed, before anything is built;
      or, with `check`, naming the first layer whose outputs differ.

  Example:
    module, variables = from_keras("model.keras", check=x)
    y = module.apply(variables, x)
  """
  model = load_keras_model(model_or_path)
  custom = custom_records(custom_layers)
  module = KerasGraph(graph_config(model, custom), custom, sequential=type(model).__name__ == "Sequential",
                      precision=precision)
  shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), *sample_inputs(model)))
  variables = keras_variables(model, shapes, custom)
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
  leaves = checked_leaves(shapes, variables,
                          f"the variables do not fit the graph of Keras model {keras_model.name!r}")
  write_to_model(functional(keras_model), leaves, _folded, custom_tables(getattr(module, "custom_layers", ())))
  return keras_model


__all__ = ["compare_with_keras", "from_keras", "graph_config", "keras_variables", "load_keras_model",
           "sample_inputs", "to_keras"]
