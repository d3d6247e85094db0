"""A Flax module's variables back to Keras: a legacy `.h5` weights file, or a live Keras model's weights.

`save_keras_h5` writes one group per weighted layer in the module's creation
order, with Keras's weight names and order, so `keras_model.load_weights(path)`
(and `keras.applications.X(weights=path)`) loads it: a model fine-tuned with
jaxcomponents goes back to Keras users. `write_to_model` assigns a
`from_keras` module's variables to the Keras model it came from (`to_keras`).
Both name the weights by the records' renaming tables (`renaming.keras_weights`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from jaxcomponents import files
from jaxcomponents.keras.convert import init_shapes
from jaxcomponents.keras.pairing import pair_layers
from jaxcomponents.keras.renaming import keras_targets, keras_weights
from jaxcomponents.keras.weight_files import layers_from_model, weight_keys
from jaxcomponents.variable_trees import Path, Target, fit_to, flatten_variables, leaf_layers


def checked_leaves(shapes: Mapping[str, Any], variables: Mapping[str, Any], what: str) -> dict[Path, dict[Target, Any]]:
  """`variables` grouped by module (`leaf_layers`), once they are shown to fit `shapes`.

  Raises:
    ValueError: `what`, then every missing, unexpected and mis-shaped variable.
  """
  given = {k: (np.asarray(jax.device_get(v)), f"variables[{'/'.join(k)!r}]")
           for k, v in flatten_variables(variables).items()}
  fit_to(shapes, given, what)
  return leaf_layers(variables)


def write_to_model(keras_model, leaves: Mapping[Path, Mapping[Target, Any]], skip=lambda layer: False,
                   extra_tables=()) -> None:
  """Assigns each Flax module's variables (by path, as `from_keras` builds them) to the live Keras layer's weights.

  Args:
    keras_model: a built Keras model; its layers pair with `leaves` by path (`pairing.pair_layers(..., "path")`).
    leaves: the variables grouped by module.
    skip: layers whose weights are not converted (folded constants).
    extra_tables: renaming tables tried before the records' (custom layers).
  """
  keras_layers = layers_from_model(keras_model, skip)
  live = {}
  for layer in keras_model.layers:
    for (key, short), variable in zip(weight_keys(layer.name, [v.path for v in layer.weights]), layer.weights):
      live[(layer.name, *key, short)] = variable
  for path, keras_layer in pair_layers(leaves, keras_layers, "path"):
    for name, value in keras_weights(path, leaves[path], keras_layer, extra_tables):
      live[(*keras_layer.path, name)].assign(value)


def keras_order(module: nn.Module, variables: Mapping[str, Any], sample_input) -> list[tuple[str, ...]]:
  """The variables' keys, `(collection, *path, name)`, in Keras's weight order (`keras_model.weights`, what
  `get_weights` lists): module by module in creation order, each one's as its Keras layer orders them."""
  _, order = init_shapes(module, sample_input)
  leaves = leaf_layers(variables)
  return [(collection, *path, name) for path in [*order, *(p for p in leaves if p not in order)] if path in leaves
          for collection, name in keras_targets(path, leaves[path])]


def _keras_layers(module: nn.Module, variables: Mapping[str, Any], sample_input):
  """(Keras layer name, [(weight path, value)]) per Keras layer; `Bidirectional` halves merged.

  Raises:
    ValueError: if `variables` do not fit `module`, listing the missing, unexpected and mis-shaped ones.
  """
  shapes, order = init_shapes(module, sample_input)
  leaves = checked_leaves(shapes, variables, f"the variables do not fit {type(module).__name__}")
  layers: list[tuple[str, list[tuple[str, np.ndarray]]]] = []
  used: set[str] = set()
  for path in order:
    name = path[-1] if path else "layer"
    weights = keras_weights(path, leaves[path])
    if name.startswith("backward_") and layers and layers[-1][1][0][0].split("/")[1] == "forward_" + name[9:]:
      parent = layers[-1][0]
      layers[-1][1].extend((f"{parent}/{name}/{n}", v) for n, v in weights)
      continue
    if name.startswith("forward_") and len(path) > 1:
      name, inner = path[-2], name
      prefix = f"{name}/{inner}"
    else:
      prefix = name
    unique, i = name, 1
    while unique in used:
      unique, i = f"{name}_{i}", i + 1
    used.add(unique)
    layers.append((unique, [(f"{prefix if prefix != name else unique}/{n}", v) for n, v in weights]))
  return layers


def save_keras_h5(path: str | os.PathLike, module: nn.Module, variables: Mapping[str, Any], sample_input, *,
                  overwrite: bool = True) -> None:
  """Writes `variables` as a Keras legacy `.h5` weights file.

  The file is written beside `path` and renamed into place when complete
  (`jaxcomponents.files.write_beside`): a failed write leaves `path` as it was.

  Args:
    path: the file to write.
    module: the module the variables belong to (gives the layer order).
    variables: `{"params": ..., "batch_stats": ...}`.
    sample_input: an input the module is called with.
    overwrite: replace an existing file at `path` (Keras's default, True); a folder is never replaced.

  Raises:
    ValueError: the variables do not fit `module`, or a layer matches no Keras layer type.
    FileExistsError: `path` exists and `overwrite` is False, or it is a folder.

  Example:
    save_keras_h5("vgg16_finetuned.h5", model, variables, x)
    keras.applications.VGG16(weights="vgg16_finetuned.h5")
  """
  import h5py

  layers = _keras_layers(module, variables, sample_input)
  files.write_beside(path, lambda staged: _write_h5(h5py, staged, layers), overwrite=overwrite)


def _write_h5(h5py, path: str, layers) -> None:
  with h5py.File(path, "w") as f:
    f.attrs["layer_names"] = np.array([name.encode("utf8") for name, _ in layers])
    f.attrs["backend"] = b"jax"
    f.attrs["keras_version"] = b"3"
    for name, weights in layers:
      group = f.create_group(name)
      group.attrs["weight_names"] = np.array([w.encode("utf8") for w, _ in weights])
      for weight_name, value in weights:
        group.create_dataset(weight_name, data=value)
