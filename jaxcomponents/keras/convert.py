"""Keras weights into any Flax module: `load_keras`, `convert_layers`.

The modules of jaxcomponents keep Keras's weight names, shapes and layouts in
every layer that owns weights (kernel, bias, depthwise_kernel, ...), so the
conversion is a renaming table per Keras class (`KerasClass.weights`, read by
`jaxcomponents.keras.renaming`). Layers pair by name, by Keras's automatic
numbered names, or in order (`jaxcomponents.keras.pairing`). The result is
checked against `jax.eval_shape(module.init, ...)` before it is returned.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from jaxcomponents.keras.pairing import MATCH_MODES, pair_layers
from jaxcomponents.keras.record import WeightTable
from jaxcomponents.keras.renaming import named_for, table_for
from jaxcomponents.keras.weight_files import KerasLayer, layers_from_model, open_keras_file
from jaxcomponents.models.unet_backbone import weights_loaded_elsewhere
from jaxcomponents.variable_trees import Path, fit_to, leaf_layers


def unsaved_layers(flax_leaves: Mapping[Path, Any], keras_layers: list[KerasLayer],
                   constants: Mapping[Path, Mapping[str, Any]] | None) -> list[Path]:
  """The Flax layers whose only weights are `constants` that none of the Keras layers holds (a Keras 3 file)."""
  saved = {name for layer in keras_layers for name in layer.weights}
  return [path for path, values in (constants or {}).items()
          if path in flax_leaves and {n for _, n in flax_leaves[path]} == set(values) and not saved & set(values)]


def convert_layers(expected: Mapping[str, Any], keras_layers: list[KerasLayer], match: str = "auto",
                   creation_order: list[Path] | None = None,
                   constants: Mapping[Path, Mapping[str, Any]] | None = None,
                   extra_tables: tuple[WeightTable, ...] = (),
                   what: str = "Keras weights do not fit the module") -> dict[str, Any]:
  """Converts Keras layers into a variables tree shaped like `expected`.

  Args:
    expected: the module's variables (arrays or `jax.ShapeDtypeStruct`s).
    keras_layers: Keras layers with weights, in topological order.
    match: how layers pair up, see `load_keras`, or "path" (`jaxcomponents.keras.pairing`).
    creation_order: the Flax layer paths in creation order; default: `expected`'s order.
    constants: layer path -> {parameter: value} for weights Keras 3 does not save (keras-unet-collection's
      non-trainable Snake `beta_factor`); used when the Keras layers hold none of these weights.
    extra_tables: renaming tables tried before the records' (custom layers).
    what: the first line of the error.

  Raises:
    ValueError: listing every missing, unexpected and mis-shaped variable.
  """
  flax_leaves = leaf_layers(expected)
  if creation_order is not None:
    flax_leaves = {p: flax_leaves[p] for p in creation_order if p in flax_leaves}
  produced: dict[tuple[str, ...], tuple[np.ndarray, str]] = {}
  for path in unsaved_layers(flax_leaves, keras_layers, constants):
    del flax_leaves[path]
    produced.update({("params", *path, n): (np.asarray(v), "its configuration (Keras 3 does not save it)")
                     for n, v in constants[path].items()})
  for path, layer in pair_layers(flax_leaves, keras_layers, match):
    layer = named_for(layer, set(flax_leaves[path]))
    table = table_for(layer, set(flax_leaves[path]), extra_tables)
    for keras_name, value in layer.weights.items():
      collection, flax_name = table[keras_name]
      produced[(collection, *path, flax_name)] = (value, f"Keras {layer.name}/{keras_name}")

  return fit_to(expected, produced, what)


def _siblings_in_call_order(paths: list[Path], first_call: dict[Path, int]) -> list[Path]:
  """`paths` with each run of siblings (one parent) in the order they were first called.

  Variables come in creation order, which is the call order, except under a lifted transform (the scan over
  `StackedRNNCells`), whose variables come back sorted by name.
  """
  ordered, start = list(paths), 0
  while start < len(ordered):
    end = start + 1
    while end < len(ordered) and ordered[end][:-1] == ordered[start][:-1]:
      end += 1
    if all(path in first_call for path in ordered[start:end]):
      ordered[start:end] = sorted(ordered[start:end], key=first_call.__getitem__)
    start = end
  return ordered


def init_shapes(module: nn.Module, sample_input,
                outputs: dict[Path, Any] | None = None) -> tuple[dict[str, Any], list[Path]]:
  """Returns the module's variable shapes and its weighted layers in creation order.

  With `outputs`, also records each submodule's first output shape there (keyed by its path), and under
  `("keras3_constants", *path)` the `keras3_constants()` of modules that have them.
  """
  inputs = sample_input if isinstance(sample_input, (tuple, list)) else (sample_input,)
  order: list[Path] = []
  first_call: dict[Path, int] = {}

  def record(next_fun, args, kwargs, context):
    first_call.setdefault(tuple(context.module.path), len(first_call))
    out = next_fun(*args, **kwargs)
    if outputs is not None and context.method_name == "__call__" and hasattr(out, "shape"):
      outputs.setdefault(tuple(context.module.path), tuple(out.shape))
    if outputs is not None and context.method_name == "__call__" and hasattr(context.module, "keras3_constants"):
      outputs.setdefault(("keras3_constants", *context.module.path), context.module.keras3_constants())
    return out

  def init():
    with nn.intercept_methods(record), weights_loaded_elsewhere():  # shapes only
      variables = module.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, *inputs)
    order.extend(_siblings_in_call_order(list(leaf_layers(variables)), first_call))
    return variables

  shapes = jax.eval_shape(init)
  return shapes, order


def load_keras(module: nn.Module, source, sample_input, *, match: str = "auto") -> dict[str, Any]:
  """Returns the module's variables holding the weights of a Keras model.

  Args:
    module: any Flax module whose weighted layers follow Keras's layouts
      (every module of jaxcomponents does).
    source: a live `keras.Model`, or the path of a Keras file: a legacy `.h5`
      (weights or full model), a Keras 3 `.weights.h5` or a `.keras` archive
      (these two pair layers by name or numbered name, as they do not record
      the order of layers of different classes).
    sample_input: an input (or tuple of inputs) the module is called with.
    match: how Flax and Keras layers pair up: "name" (equal names),
      "numbered" (Keras's automatic names such as `conv2d_7`, by base name and
      number, whatever session or Keras version numbered them), "order"
      (creation order against Keras's topological order, like Keras's own
      `load_weights`), or "auto": "name" when every Flax layer name is a Keras
      layer name, else "numbered" when the base names agree, else "order".

  Returns:
    `{"params": ..., "batch_stats": ...}` (the collections the module has).

  Raises:
    ValueError: if the weights do not fit, listing the missing, unexpected and
      mis-shaped variables (a file's arrays are read only once every shape
      fits); a `limits.LimitExceededError` if a file declares more than
      `jaxcomponents.limits` allows.

  Example:
    >>> import keras, numpy as np
    >>> from jaxcomponents.layers import Dense
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    >>> variables = load_keras(Dense(4), model, np.zeros((1, 3), np.float32))
    >>> variables["params"]["dense"]["kernel"].shape
    (3, 4)
  """
  if isinstance(source, (str, os.PathLike)):
    keras_file = open_keras_file(source)
  elif hasattr(source, "layers") and hasattr(source, "weights"):
    keras_file = contextlib.nullcontext(layers_from_model(source))
  else:
    raise ValueError(
        f"source={source!r} is not allowed; expected a keras.Model or the path of a Keras .h5, .weights.h5 or "
        f".keras file."
    )
  outputs: dict[Path, Any] = {}
  with keras_file as keras_layers:  # a file's arrays are read only after their shapes are checked
    shapes, order = init_shapes(module, sample_input, outputs)
    constants = {path[1:]: v for path, v in outputs.items() if path[:1] == ("keras3_constants",)}
    variables = convert_layers(shapes, keras_layers, match=match, creation_order=order, constants=constants)
  if not isinstance(source, (str, os.PathLike)):
    leaves = leaf_layers(shapes)
    leaves = {p: leaves[p] for p in order if p in leaves}
    for path in unsaved_layers(leaves, keras_layers, constants):
      del leaves[path]
    _check_output_shapes(source, pair_layers(leaves, keras_layers, match), outputs)
  return variables


def _shape_checked(class_name: str) -> bool:
  """Whether a Keras class's output is one tensor computed by one module of ours (their shapes must agree)."""
  from jaxcomponents.keras.records import RECORDS  # pylint: disable=import-outside-toplevel
  return class_name in RECORDS and RECORDS[class_name].shape_checked


def _live_layers(model) -> dict[str, Any]:
  found = {}
  for layer in getattr(model, "layers", []):
    found.setdefault(layer.name, layer)
    found.update({k: v for k, v in _live_layers(layer).items() if k not in found})
  return found


def _check_output_shapes(model, pairs, outputs: dict[Path, Any]) -> None:
  """Raises, naming the first paired layer whose output shape differs from Keras's (a configuration mismatch)."""
  live = _live_layers(model)
  for path, keras_layer in pairs:
    layer, ours = live.get(keras_layer.name), outputs.get(tuple(path))
    if layer is None or ours is None or not _shape_checked(type(layer).__name__):
      continue
    try:
      theirs = tuple(layer.output.shape)[1:]
    except (AttributeError, ValueError, RuntimeError):  # a layer called several times has no single output
      continue
    if len(theirs) == len(ours) - 1 and any(t is not None and t != o for t, o in zip(theirs, ours[1:])):
      config = {k: v for k, v in layer.get_config().items() if k in _CONFIG_KEYS}
      raise ValueError(
          f"the module does not compute what the Keras model computes: its layer {'/'.join(path)} gives outputs of "
          f"shape {ours[1:]} per example where Keras's {layer.name} ({type(layer).__name__}) gives {theirs}. "
          f"Keras's {layer.name} has {config}; configure the module's layer the same way.")


_CONFIG_KEYS = ("filters", "units", "kernel_size", "strides", "padding", "dilation_rate", "depth_multiplier",
                "output_padding", "data_format")


__all__ = ["MATCH_MODES", "convert_layers", "init_shapes", "load_keras", "unsaved_layers"]
