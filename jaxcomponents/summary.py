"""`summary`: Keras's `model.summary()` for any Flax Linen module.

The table has Keras's layout: the title `Model: "name"`, one row per layer
("Layer (type)", "Output Shape" with `None` for the batch, "Param #", and
"Connected to" for a Keras functional graph that is not a chain), then the
totals, trainable (`params`) and non-trainable (`batch_stats` and the other
collections), with their sizes. Nothing is computed: the shapes come from
`jax.eval_shape`, with a symbolic batch.

Which modules are layers:
  - a `KerasGraph` (`jaxcomponents.weights.from_keras`): exactly the Keras
    model's layers, each once, with its Keras class, in the Keras model's
    order, titled with the Keras model's name;
  - otherwise jaxcomponents' layers (`jaxcomponents.layers`) and Flax's own
    are one row each (the Flax layer a `Convolution` or `Dense` wraps is not a
    row of its own); a module holding other modules (a block) is a row with
    its layers indented below it.
"""

from __future__ import annotations

import json
import math
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from flax.traverse_util import flatten_dict

from jaxcomponents.models.unet_backbone import weights_loaded_elsewhere

Path = tuple[str, ...]

_NOT_VARIABLES = ("intermediates",)  # sown values (`Module.sow`), not weights


def summary(module: nn.Module, sample, *, name: str | None = None,
            print_fn: Callable[[str], Any] | None = print) -> str:
  """Prints and returns Keras's `model.summary()` table of `module` for inputs like `sample`.

  Each row is a layer, named as its Keras layer in jaxcomponents' models and
  Keras-derived graphs, with its class (the Keras class for a `KerasGraph`),
  its output shape (`None` for the batch; and for a `KerasGraph`, for every
  dimension the Keras model leaves open) and its parameter count, batch
  statistics included as Keras counts them. The totals split trainable
  variables (`params`) from the non-trainable ones (`batch_stats` and other
  collections; for a `KerasGraph` also the weights of Keras layers with
  `trainable=False`), so they equal Keras's for the backbones.

  Args:
    module: a Flax Linen module, called as `module(sample)` (a `KerasGraph`
      with several inputs: `module(*sample)`).
    sample: an input batch (an array, or anything with `.shape` and `.dtype`;
      a pytree of them); only its shapes and dtypes are used.
    name: the title (default: the Keras model's name for a `KerasGraph`, else
      the module's `name`, else its class name).
    print_fn: where the table goes (None: only returned).

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxcomponents.layers import Dense
    >>> print(summary(Dense(4), jnp.zeros((1, 3)), name="head", print_fn=None))
    Model: "head"
    +---------------+--------------+---------+
    | Layer (type)  | Output Shape | Param # |
    +===============+==============+=========+
    | dense (Dense) | (None, 4)    |      16 |
    +---------------+--------------+---------+
     Total params: 16 (64.00 B)
     Trainable params: 16 (64.00 B)
     Non-trainable params: 0 (0.00 B)
  """
  graph = _graph_config(module)
  args = tuple(sample) if graph is not None and isinstance(sample, (tuple, list)) else (sample,)
  open_dims = _open_dims(graph, args)
  calls, variables = _trace(module, args, open_dims)
  frozen = _frozen_paths(graph) if graph is not None else set()
  counts: dict[Path, list[int]] = {}  # module path -> [trainable, non-trainable]
  sizes = [0, 0]  # bytes
  for (collection, *path), leaf in variables.items():
    if collection in _NOT_VARIABLES:
      continue
    path = tuple(path)
    trainable = collection == "params" and not any(path[:k] in frozen for k in range(len(path) + 1))
    n = math.prod(leaf.shape)
    for depth in range(len(path)):
      counts.setdefault(path[:depth], [0, 0])[not trainable] += n
    sizes[not trainable] += n * _itemsize(leaf.dtype)
  if graph is not None:
    header, rows = _graph_rows(graph, calls, counts, args, open_dims, module.is_sequential())
    title = name or graph.get("name") or type(module).__name__
  else:
    header, rows = ["Layer (type)", "Output Shape", "Param #"], _module_rows(calls, counts)
    title = name or (module.name if isinstance(getattr(module, "name", None), str) else None) or type(module).__name__
  trainable, non_trainable = counts.get((), [0, 0])
  lines = [f'Model: "{title}"', *_table(header, rows),
           f" Total params: {trainable + non_trainable:,} ({_readable(sizes[0] + sizes[1])})",
           f" Trainable params: {trainable:,} ({_readable(sizes[0])})",
           f" Non-trainable params: {non_trainable:,} ({_readable(sizes[1])})"]
  text = "\n".join(lines)
  if print_fn is not None:
    print_fn(text)
  return text


# Tracing.

class _Call:
  """The first call of one module: the module and its outputs' shapes."""

  def __init__(self, module: nn.Module):
    self.module = module
    self.shapes: Any = None


def _trace(module: nn.Module, args: tuple, open_dims: list[dict[int, str]]):
  """(first call of each submodule by path, in the order they start; flattened variable shapes).

  The batch (and the `open_dims`) are traced as symbolic dimensions, shown as
  None; a module that cannot take symbolic shapes is traced at the sample's
  shapes, and then only the first axis of each output is shown as None.
  """
  specs = [jax.ShapeDtypeStruct(np.shape(x), _dtype(x)) for x in jax.tree.leaves(args)]
  treedef = jax.tree.structure(args)
  try:
    symbolic = _symbolic_specs(specs, open_dims)
    calls, variables = _eval(module, jax.tree.unflatten(treedef, symbolic))
    if not all(isinstance(d, int) for leaf in variables.values() for d in leaf.shape):
      raise ValueError("a variable's shape depends on the input's open dimensions")
    return calls, variables
  except Exception:  # pylint: disable=broad-except  # e.g. an `if x.shape[0] == 1` on the batch
    calls, variables = _eval(module, jax.tree.unflatten(treedef, specs))
    for call in calls.values():
      call.shapes = jax.tree.map(lambda s: (None, *s[1:]) if s else s, call.shapes, is_leaf=_is_shape)
    return calls, variables


def _eval(module: nn.Module, args: tuple) -> tuple[dict[Path, _Call], dict[tuple, Any]]:
  calls: dict[Path, _Call] = {}

  def record(next_fun, call_args, kwargs, context):
    method = context.method_name
    path = tuple(context.module.path)
    if path in calls or (method.startswith("_") and method != "__call__") or method == "setup":
      return next_fun(*call_args, **kwargs)
    calls[path] = call = _Call(context.module)
    out = next_fun(*call_args, **kwargs)
    call.shapes = jax.tree.map(lambda a: tuple(None if not isinstance(d, int) else d for d in np.shape(a)), out)
    return out

  def init(*xs):
    with nn.intercept_methods(record), weights_loaded_elsewhere():  # shapes only
      return module.init(jax.random.key(0), *xs)

  variables = jax.eval_shape(init, *args)
  return calls, flatten_dict(variables)


def _symbolic_specs(specs: list, open_dims: list[dict[int, str]]) -> list:
  """The specs with the batch (axis 0 of every input) and the open dimensions symbolic, in one scope."""
  from jax import export  # pylint: disable=import-outside-toplevel
  named = [{0: "batch", **(open_dims[i] if i < len(open_dims) else {})} if spec.shape else {}
           for i, spec in enumerate(specs)]
  # An open dimension is at least the sample's size (a valid convolution of it then has a known sign).
  constraints = sorted({f"{symbol} >= {spec.shape[axis]}" for spec, names in zip(specs, named)
                        for axis, symbol in names.items() if axis})
  scope = export.SymbolicScope(constraints)
  return [jax.ShapeDtypeStruct(export.symbolic_shape(", ".join(names.get(axis, str(size))
                                                               for axis, size in enumerate(spec.shape)),
                                                     scope=scope), spec.dtype) if spec.shape else spec
          for spec, names in zip(specs, named)]


def _dtype(x):
  dtype = getattr(x, "dtype", None)
  return dtype if dtype is not None else np.asarray(x).dtype


def _itemsize(dtype) -> int:
  try:
    return np.dtype(dtype).itemsize
  except TypeError:  # a key array or another extended dtype
    return 0


def _is_shape(value) -> bool:
  return isinstance(value, tuple) and all(d is None or isinstance(d, int) for d in value)


# Rows of any module.

def _is_layer(module: nn.Module) -> bool:
  """jaxcomponents' layers, Flax's own and Keras graphs' layers are rows without rows below them."""
  home = type(module).__module__
  return (home.startswith(("flax.", "jaxcomponents.layers.", "jaxcomponents.keras."))
          or getattr(module, "class_name", None) is not None)


def _module_rows(calls: Mapping[Path, _Call], counts: Mapping[Path, list[int]]) -> list[list[str]]:
  rows, layers = [], set()
  for path, call in calls.items():
    if not path or any(path[:k] in layers for k in range(1, len(path))):
      continue  # the model itself, or inside a layer
    if _is_layer(call.module):
      layers.add(path)
    depth = sum(path[:k] in calls for k in range(1, len(path)))  # the rows it is below
    kind = getattr(call.module, "class_name", None) or type(call.module).__name__
    rows.append([f"{'  ' * depth}{path[-1]} ({kind})", _format_shapes(call.shapes),
                 f"{sum(counts.get(path, (0, 0))):,}"])
  return rows


# Rows of a Keras graph.

def _graph_config(module: nn.Module) -> dict[str, Any] | None:
  from jaxcomponents.keras.graph import KerasGraph  # pylint: disable=import-outside-toplevel
  return json.loads(module.config) if isinstance(module, KerasGraph) else None


def _open_dims(graph: Mapping[str, Any] | None, args: tuple) -> list[dict[int, str]]:
  """For each input of a Keras graph, the axes beyond the batch its Keras `Input` leaves open (None)."""
  if graph is None:
    return []
  from jaxcomponents.keras.graph import parse  # pylint: disable=import-outside-toplevel
  parsed = parse(graph)
  found = []
  for i, (ref, x) in enumerate(zip(parsed.inputs, args)):
    shape = parsed.entries[ref.layer].config.get("batch_shape") or ()
    found.append({axis: f"d{i}_{axis}" for axis, size in enumerate(shape)
                  if axis and size is None and len(shape) == np.ndim(x)})
  return found


def _frozen_paths(graph: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
  """The Keras layers (nested models' too) whose weights Keras counts as non-trainable (`trainable=False`)."""
  frozen = {prefix} if graph.get("trainable") is False else set()
  for layer in graph["layers"]:
    config = layer.get("config", {})
    path = (*prefix, layer.get("name") or config.get("name"))
    if config.get("trainable") is False:
      frozen.add(path)
    if "layers" in config:
      frozen |= _frozen_paths(config, path)
  return frozen


def _graph_rows(graph, calls, counts, args, open_dims, sequential: bool) -> tuple[list[str], list[list[str]]]:
  """The table of a Keras graph; a Keras `Sequential`'s (`sequential`) without its input layer, as Keras's."""
  from jaxcomponents.keras import graph as keras_graph  # pylint: disable=import-outside-toplevel
  parsed = keras_graph.parse(graph)
  inputs = {ref.layer: i for i, ref in enumerate(parsed.inputs)}
  chain = _sequential_like(parsed)
  header = ["Layer (type)", "Output Shape", "Param #"] + ([] if chain else ["Connected to"])
  rows = []
  for entry in parsed.entries.values():
    if entry.name in inputs and sequential:
      continue
    if entry.name in inputs:
      i = inputs[entry.name]
      shape = np.shape(jax.tree.leaves(args)[i])
      dims = {0, *(open_dims[i] if i < len(open_dims) else ())}
      shown = str(_shape_text(tuple(None if axis in dims else d for axis, d in enumerate(shape))))
    else:
      call = calls.get((entry.name,))
      shown = "?" if call is None else _format_shapes(call.shapes)  # Keras's "?": not on the way to the outputs
    row = [f"{entry.name} ({entry.class_name})", shown, f"{sum(counts.get((entry.name,), (0, 0))):,}"]
    if not chain:
      refs = [r for node in entry.nodes for r in keras_graph._tensor_refs(node)]  # pylint: disable=protected-access
      row.append(",\n".join(f"{r.layer}[{r.node}][{r.tensor}]" for r in refs) or "-")
    rows.append(row)
  return header, rows


def _sequential_like(parsed) -> bool:
  """Keras's test for the short table: one input, each layer called once on one tensor, no tensor used twice."""
  from jaxcomponents.keras.graph import _tensor_refs  # pylint: disable=import-outside-toplevel
  if len(parsed.inputs) != 1 or len(parsed.outputs) != 1:
    return False
  used = []
  for entry in parsed.entries.values():
    if len(entry.nodes) > 1:
      return False
    for node in entry.nodes:
      refs = _tensor_refs(node)
      if len(refs) > 1:
        return False
      used += refs
  return len(used) == len(set(used))


# Text.

def _shape_text(shape: tuple) -> str:
  return "(" + ", ".join(str(d) for d in shape) + ")"


def _format_shapes(shapes) -> str:
  """One output as Keras writes it, `(None, 4)`; several as `[(None, 4), (None, 4)]` (a dict: `{a: ..., b: ...}`)."""
  if _is_shape(shapes):
    return _shape_text(shapes)
  if isinstance(shapes, Mapping):
    return "{" + ", ".join(f"{k}: {_format_shapes(v)}" for k, v in shapes.items()) + "}"
  if isinstance(shapes, (list, tuple)):
    return "[" + ", ".join(_format_shapes(s) for s in shapes) + "]"
  return "?" if shapes is None else str(shapes)


def _readable(size: float) -> str:
  """A byte count as Keras shows it: `3.42 KB`, `64.00 B`."""
  for unit in ("B", "KB", "MB", "GB", "TB"):
    if size < 1024:
      break
    size /= 1024
  return f"{size:.2f} {unit}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
  """A plain-text grid: the header, then each row (a cell may span lines), separated by rules."""
  right = {header.index("Param #")}
  cells = [[c.split("\n") for c in row] for row in [header, *rows]]
  widths = [max(len(line) for row in cells for line in row[i]) for i in range(len(header))]
  rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
  lines = [rule]
  for n, row in enumerate(cells):
    for k in range(max(len(c) for c in row)):
      parts = []
      for i, cell in enumerate(row):
        text = cell[k] if k < len(cell) else ""
        parts.append(text.rjust(widths[i]) if i in right else text.ljust(widths[i]))
      lines.append("| " + " | ".join(parts) + " |")
    lines.append(rule.replace("-", "=") if n == 0 else rule)
  return lines


class _CallableModule(types.ModuleType):
  """Lets `jaxcomponents.summary(module, sample)` call `summary` once this module is imported as the attribute."""

  def __call__(self, *args, **kwargs):
    return summary(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
