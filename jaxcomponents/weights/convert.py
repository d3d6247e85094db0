"""Keras weights into any Flax module: `load_keras`.

The modules of jaxcomponents keep Keras's weight names, shapes and layouts in
every layer that owns weights (kernel, bias, depthwise_kernel, ...), so the
conversion is a renaming table per Keras layer type. Layers are paired by
name, by Keras's automatic numbered names, or in order (Flax layers in
creation order, Keras layers in topological order, like Keras's own
`load_weights`); see `load_keras`. The result is checked against
`jax.eval_shape(module.init, ...)` before it is returned.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcomponents.errors import check_choice
from jaxcomponents.tree_paths import path_parts
from jaxcomponents.weights.keras_layers import KerasLayer, layers_from_model, name_positional_weights, open_keras_file

Path = tuple[str, ...]
Target = tuple[str, str]  # (collection, variable name)

_SAME = {name: ("params", name) for name in ("kernel", "bias")}

# Keras layer type, signature weight, {Keras weight name: (Flax collection, Flax variable name)}
# in Keras's weight order. A layer's rule is the first with its signature weight whose targets are
# the Flax layer's variables (or, failing that, the first with its signature weight).
CONVERSION_RULES: tuple[tuple[str, str, Mapping[str, Target]], ...] = (
    ("LSTM, GRU, SimpleRNN", "recurrent_kernel",
     {"kernel": ("params", "kernel"), "recurrent_kernel": ("params", "recurrent_kernel"),
      "bias": ("params", "bias")}),
    ("SeparableConv1D/2D", "pointwise_kernel",
     {"depthwise_kernel": ("params", "depthwise_kernel"),
      "pointwise_kernel": ("params", "pointwise_kernel"), "bias": ("params", "bias")}),
    ("DepthwiseConv1D/2D", "depthwise_kernel",
     {"depthwise_kernel": ("params", "depthwise_kernel"), "bias": ("params", "bias")}),
    ("DepthwiseConv1D/2D of Keras 3 (its depthwise kernel is called `kernel`)", "kernel",
     {"kernel": ("params", "depthwise_kernel"), "bias": ("params", "bias")}),
    ("BatchNormalization", "moving_mean",
     {"gamma": ("params", "scale"), "beta": ("params", "bias"),
      "moving_mean": ("batch_stats", "mean"), "moving_variance": ("batch_stats", "var")}),
    ("Dense, Conv1D/2D/3D, Conv1D/2D/3DTranspose", "kernel", _SAME),
    ("LayerNormalization", "gamma", {"gamma": ("params", "scale"), "beta": ("params", "bias")}),
    ("LayerNormalization with scale=False", "beta", {"beta": ("params", "bias")}),
    ("Embedding", "embeddings", {"embeddings": ("params", "embeddings")}),
    ("PReLU", "alpha", {"alpha": ("params", "alpha")}),
    ("LayerScale (ConvNeXt; Keras leaves its one weight unnamed: `variable`)", "variable",
     {"variable": ("params", "scale")}),
    ("Snake (keras-unet-collection)", "beta_factor", {"beta_factor": ("params", "beta_factor")}),
    ("Normalization (non-trainable statistics, kept in batch_stats)", "count",
     {"mean": ("batch_stats", "mean"), "variance": ("batch_stats", "variance"), "count": ("batch_stats", "count")}),
)


def _record_rules() -> tuple[tuple[str, str, Mapping[str, Target]], ...]:
  from jaxcomponents.keras.records import RECORDS  # pylint: disable=import-outside-toplevel
  return tuple((name, next(iter(table)), table) for name, record in RECORDS.items() for table in record.weights)


CONVERSION_RULES = CONVERSION_RULES + _record_rules()


def conversion_rule(layer: KerasLayer, targets: set[Target] | None = None) -> tuple[str, Mapping[str, Target]]:
  """Returns the (layer type, renaming table) for a Keras layer's weights going to `targets`."""
  candidates = [(t, table) for t, signature, table in CONVERSION_RULES if signature in layer.weights]
  fitting = [(t, table) for t, table in candidates
             if targets is not None and {table.get(k) for k in layer.weights} == set(targets)]
  for layer_type, table in fitting or candidates[:1]:
    unknown = sorted(set(layer.weights) - set(table))
    if unknown:
      raise ValueError(f"{layer.origin}: weights {unknown} are not {layer_type} weights.")
    return layer_type, table
  raise ValueError(
      f"{layer.origin}: no conversion rule for a layer with weights {sorted(layer.weights)}; "
      f"known layer types: {'; '.join(t for t, _, _ in CONVERSION_RULES)}."
  )


def named_for(layer: KerasLayer, targets: set[Target]) -> KerasLayer:
  """`layer` with its Keras 3 positional weights named for the Flax layer with variables `targets`."""
  if not layer.positional:
    return layer
  for _, _, table in CONVERSION_RULES:
    names = [k for k, t in table.items() if t in targets]
    if len(names) == len(layer.weights) and {table[k] for k in names} == set(targets):
      return name_positional_weights(layer, dict(table), targets)
  raise ValueError(f"{layer.origin}: no Keras layer type stores {len(layer.weights)} weights for a Flax layer with "
                   f"{sorted('/'.join(t) for t in targets)}.")


def leaf_layers(variables: Mapping[str, Any]) -> dict[Path, dict[Target, Any]]:
  """Groups variables by the module that owns them, in creation order."""
  leaves: dict[Path, dict[Target, Any]] = {}

  def walk(collection, node, path):
    for key, value in node.items():
      if isinstance(value, Mapping):
        walk(collection, value, path + (key,))
      else:
        leaves.setdefault(path, {})[(collection, key)] = value

  for collection in ("params", *[c for c in variables if c != "params"]):
    if collection in variables:
      walk(collection, variables[collection], ())
  return leaves


def _describe(leaf: Mapping[Target, Any]) -> str:
  return ", ".join(f"{c}/{n}{tuple(v.shape)}" for (c, n), v in leaf.items())


_NUMBERED = re.compile(r"^(.*?)(?:_(\d+))?$")
MATCH_MODES = ("auto", "name", "numbered", "order")


def _numbered_ranks(names: Sequence[str]) -> list[tuple[str, int]]:
  """(base name, rank) per name: `conv2d_7` is the k-th `conv2d` when sorted by number, then position."""
  parsed = []
  for position, name in enumerate(names):
    base, number = _NUMBERED.match(name).groups()
    parsed.append((base, -1 if number is None else int(number), position))
  ranks: dict[int, tuple[str, int]] = {}
  counters: dict[str, int] = {}
  for base, _, position in sorted(parsed):
    ranks[position] = (base, counters.get(base, 0))
    counters[base] = counters.get(base, 0) + 1
  return [ranks[i] for i in range(len(names))]


def _pair_layers(flax_leaves, keras_layers: list[KerasLayer], match: str):
  check_choice("match", match, MATCH_MODES)
  flax_names = [path[-1] if path else "" for path in flax_leaves]
  keras_names = [layer.name for layer in keras_layers]
  keras_2_as_3 = [name.replace("/", "_") for name in keras_names]  # Keras 2's `conv1/conv` is Keras 3's `conv1_conv`
  if match == "auto":
    if len(set(flax_names)) == len(flax_names) and set(flax_names) <= set(keras_2_as_3):
      match = "name"
    elif sorted(_numbered_ranks(flax_names)) == sorted(_numbered_ranks(keras_names)):
      match = "numbered"
    else:
      match = "order"
  if match in ("name", "numbered"):
    flax_keys = flax_names if match == "name" else _numbered_ranks(flax_names)
    keras_keys = keras_2_as_3 if match == "name" else _numbered_ranks(keras_names)
    by_key = dict(zip(keras_keys, keras_layers))
    missing = [n for n, k in zip(flax_names, flax_keys) if k not in by_key]
    if missing:
      raise ValueError(
          f"match={match!r} but these Flax layers have no Keras layer of the same "
          f"{'name' if match == 'name' else 'numbered name'}: {missing}; Keras layers with weights: {keras_names}."
      )
    return [(path, by_key[key]) for path, key in zip(flax_leaves, flax_keys)]
  if any(layer.positional for layer in keras_layers):
    raise ValueError(
        f"match={match!r} pairs layers in order, but a Keras 3 weights file does not record the order of "
        f"layers of different classes; name the Flax layers as the Keras layers ({keras_names}) or keep Keras's "
        f"numbered names, or load the Keras model and pass it (or use weights.from_keras).")
  if len(flax_leaves) != len(keras_layers):
    flax_list = "\n".join(f"  {'/'.join(p)}: {_describe(v)}" for p, v in flax_leaves.items())
    keras_list = "\n".join(
        f"  {l.name}: {', '.join(f'{k}{v.shape}' for k, v in l.weights.items())}" for l in keras_layers
    )
    raise ValueError(
        f"Layer count mismatch: the Flax module has {len(flax_leaves)} layers with weights, "
        f"the Keras source {len(keras_layers)} (paired in order because the names differ).\n"
        f"Flax layers:\n{flax_list}\nKeras layers:\n{keras_list}"
    )
  return list(zip(flax_leaves, keras_layers))


def unflatten_variables(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
  """The inverse of `flatten_variables`."""
  tree: dict[str, Any] = {}
  for path, value in flat.items():
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return tree


def unsaved_layers(flax_leaves: Mapping[Path, Any], keras_layers: list[KerasLayer],
                   constants: Mapping[Path, Mapping[str, Any]] | None) -> list[Path]:
  """The Flax layers whose only weights are `constants` that none of the Keras layers holds (a Keras 3 file)."""
  saved = {name for layer in keras_layers for name in layer.weights}
  return [path for path, values in (constants or {}).items()
          if path in flax_leaves and {n for _, n in flax_leaves[path]} == set(values) and not saved & set(values)]


def convert_layers(expected: Mapping[str, Any], keras_layers: list[KerasLayer], match: str = "auto",
                   creation_order: list[Path] | None = None,
                   constants: Mapping[Path, Mapping[str, Any]] | None = None) -> dict[str, Any]:
  """Converts Keras layers into a variables tree shaped like `expected`.

  Args:
    expected: the module's variables (arrays or `jax.ShapeDtypeStruct`s).
    keras_layers: Keras layers with weights, in topological order.
    match: how layers pair up, see `load_keras`.
    creation_order: the Flax layer paths in creation order; default: `expected`'s order.
    constants: layer path -> {parameter: value} for weights Keras 3 does not save (keras-unet-collection's
      non-trainable Snake `beta_factor`); used when the Keras layers hold none of these weights.

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
  for path, layer in _pair_layers(flax_leaves, keras_layers, match):
    layer = named_for(layer, set(flax_leaves[path]))
    _, table = conversion_rule(layer, set(flax_leaves[path]))
    for keras_name, value in layer.weights.items():
      collection, flax_name = table[keras_name]
      produced[(collection, *path, flax_name)] = (value, f"Keras {layer.name}/{keras_name}")

  return fit_to(expected, produced, "Keras weights do not fit the module")


def flatten_variables(variables: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
  """`{"params": {"dense": {"kernel": a}}}` -> `{("params", "dense", "kernel"): a}`."""
  return {
      path_parts(key_path): leaf
      for key_path, leaf in jax.tree_util.tree_flatten_with_path(dict(variables))[0]
  }


def fit_to(expected: Mapping[str, Any], produced: Mapping[tuple[str, ...], tuple[np.ndarray, str]],
           what: str) -> dict[str, Any]:
  """Returns `produced` (flat path -> (value, origin)) nested like `expected`, with its dtypes.

  Every shape is compared before any value is read, so a file's array (a
  `StoredArray`) of the wrong shape is refused without reading it.

  Raises:
    ValueError: `what`, then every missing, unexpected and mis-shaped variable.
  """
  wanted = flatten_variables(expected)
  missing = [f"{'/'.join(k)} {tuple(wanted[k].shape)}" for k in wanted if k not in produced]
  unexpected = [f"{'/'.join(k)} {produced[k][0].shape} (from {produced[k][1]})"
                for k in produced if k not in wanted]
  misshaped = [
      f"{'/'.join(k)}: module expects {tuple(wanted[k].shape)}, {produced[k][1]} has {produced[k][0].shape}"
      for k in wanted if k in produced and tuple(produced[k][0].shape) != tuple(wanted[k].shape)
  ]
  if missing or unexpected or misshaped:
    sections = [(t, items) for t, items in
                (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if items]
    raise ValueError(
        f"{what}:\n"
        + "\n".join(f"{title}:\n" + "\n".join(f"  {i}" for i in items) for title, items in sections)
    )
  return unflatten_variables({k: jnp.asarray(np.asarray(produced[k][0]), dtype=wanted[k].dtype) for k in wanted})


def init_shapes(module: nn.Module, sample_input,
                outputs: dict[Path, Any] | None = None) -> tuple[dict[str, Any], list[Path]]:
  """Returns the module's variable shapes and its weighted layers in creation order.

  With `outputs`, also records each submodule's first output shape there (keyed by its path), and under
  `("keras3_constants", *path)` the `keras3_constants()` of modules that have them.
  """
  inputs = sample_input if isinstance(sample_input, (tuple, list)) else (sample_input,)
  order: list[Path] = []

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__" and hasattr(out, "shape"):
      outputs.setdefault(tuple(context.module.path), tuple(out.shape))
    if context.method_name == "__call__" and hasattr(context.module, "keras3_constants"):
      outputs.setdefault(("keras3_constants", *context.module.path), context.module.keras3_constants())
    return out

  def init():
    with nn.intercept_methods(record) if outputs is not None else contextlib.nullcontext():
      variables = module.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, *inputs)
    order.extend(leaf_layers(variables))
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
    _check_output_shapes(source, _pair_layers(leaves, keras_layers, match), outputs)
  return variables


# Keras layers whose output is one tensor computed by one module of ours: their shapes must agree.
_SHAPE_CHECKED = re.compile(r"(Conv[123]D(Transpose)?|DepthwiseConv[12]D|SeparableConv[12]D|Dense|BatchNormalization)")


def _shape_checked(class_name: str) -> bool:
  from jaxcomponents.keras.records import RECORDS  # pylint: disable=import-outside-toplevel
  record = RECORDS.get(class_name)
  return record.shape_checked if record is not None else bool(_SHAPE_CHECKED.fullmatch(class_name))


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
