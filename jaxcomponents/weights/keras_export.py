"""A Flax module's variables back into a Keras legacy `.h5` weights file.

The file has one group per weighted layer in the module's creation order,
with Keras's weight names and order, so `keras_model.load_weights(path)`
(and `keras.applications.X(weights=path)`) loads it: a model fine-tuned
with jaxcomponents goes back to Keras users.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from jaxcomponents import files
from jaxcomponents.weights.convert import (CONVERSION_RULES, Path, Target, fit_to, flatten_variables, init_shapes,
                                           leaf_layers)


def keras_weights(path: Path, leaf: Mapping[Target, Any]) -> list[tuple[str, np.ndarray]]:
  """A Flax layer's variables as Keras (weight name, value) pairs, in Keras's order."""
  for _, signature, table in CONVERSION_RULES:
    if table[signature] in leaf and set(leaf) <= set(table.values()):
      return [(name, np.asarray(jax.device_get(leaf[target]))) for name, target in table.items() if target in leaf]
  raise ValueError(
      f"layer {'/'.join(path)} with variables {sorted('/'.join(t) for t in leaf)} matches no Keras layer type."
  )


def _keras_layers(module: nn.Module, variables: Mapping[str, Any], sample_input):
  """(Keras layer name, [(weight path, value)]) per Keras layer; `Bidirectional` halves merged.

  Raises:
    ValueError: if `variables` do not fit `module`, listing the missing, unexpected and mis-shaped ones.
  """
  shapes, order = init_shapes(module, sample_input)
  given = {k: (np.asarray(jax.device_get(v)), f"variables[{'/'.join(k)!r}]")
           for k, v in flatten_variables(variables).items()}
  fit_to(shapes, given, f"the variables do not fit {type(module).__name__}")
  leaves = leaf_layers(variables)
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
