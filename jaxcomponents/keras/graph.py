"""A Keras functional model's graph, run as a Flax module: `KerasGraph`.

The graph is Keras 3's own functional config (`model.get_config()`), kept as
JSON: layers, the nodes where each is called (shared layers are called at
several), the model's inputs and outputs, and the `keras.ops` operations Keras
records between layers (masks). Each layer computes what its Keras class
computes (its record, `jaxcomponents.keras.records`); layers with weights are
jaxcomponents' modules named after the Keras layer, so the variables read like
the model. `jaxcomponents.keras.from_keras` builds one from a Keras model or file.

Example:
  >>> import json, jax, jax.numpy as jnp
  >>> config = {"layers": [
  ...     {"class_name": "InputLayer", "name": "x", "config": {"batch_shape": [None, 3]}, "inbound_nodes": []},
  ...     {"class_name": "Dense", "name": "head", "config": {"units": 2},
  ...      "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": ["x", 0, 0]}}],
  ...                         "kwargs": {}}]}],
  ...     "input_layers": [["x", 0, 0]], "output_layers": [["head", 0, 0]]}
  >>> model = KerasGraph(json.dumps(config))
  >>> variables = model.init(jax.random.key(0), jnp.ones((1, 3)))
  >>> model.apply(variables, jnp.ones((4, 3))).shape
  (4, 2)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxcomponents.keras import records, regularization
from jaxcomponents.layers.activity import LOSSES, with_activity_regularizer
from jaxcomponents.layers.precision import PrecisionFields, cast_floats
from jaxcomponents.layers.weight_regularizers import sow_penalty

MODEL_CLASSES = ("Functional", "Sequential", "Model")


@dataclasses.dataclass(frozen=True)
class Ref:
  """A tensor of the graph: output `tensor` of the `node`-th call of layer `layer`."""

  layer: str
  node: int = 0
  tensor: int = 0


@dataclasses.dataclass(frozen=True)
class Entry:
  """One layer (or `keras.ops` operation, or nested model) and the calls made of it."""

  name: str
  class_name: str
  module: str | None
  config: dict[str, Any]
  nodes: tuple[tuple[tuple, dict[str, Any]], ...]  # (args, kwargs) per call, tensors as `Ref`

  @property
  def is_model(self) -> bool:
    return self.class_name in MODEL_CLASSES


OPEN_SIZE = 256  # stands for a dimension Keras leaves open (None) where only shapes are traced


@dataclasses.dataclass(frozen=True)
class Graph:
  entries: dict[str, Entry]
  inputs: tuple[Ref, ...]
  outputs: tuple[Ref, ...]
  input_keys: tuple[str, ...] | None = None  # a model taking a dict: its keys, in the order of `inputs`
  output_keys: tuple[str, ...] | None = None  # a model giving a dict: its keys, in the order of `outputs`
  output_nesting: tuple | None = None  # a model giving lists in its list: `outputs`' indices so nested


def _refs(value):
  """A node's arguments with Keras's serialized tensors replaced by `Ref`s."""
  if isinstance(value, Mapping):
    if value.get("class_name") == "__keras_tensor__":
      return Ref(*value["config"]["keras_history"])
    return {k: _refs(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return tuple(_refs(v) for v in value)
  return value


def _ref_list(value, entries: Mapping[str, Entry]
              ) -> tuple[tuple[Ref, ...], tuple[str, ...] | None, tuple | None]:
  """The model's inputs or outputs as `Ref`s, their keys where the model takes or gives a dict, and their
  nesting where a list holds lists (`(0, (1, 2), 3)`: `Ref` indices), else None.

  A nested Functional model's output is counted from 1, as Keras counts its built-in node first.
  """
  keys = None
  if isinstance(value, Mapping):
    keys, value = tuple(value), list(value.values())
  elif value and isinstance(value[0], str):  # a single [name, node, tensor]
    value = [value]
  refs = []

  def walk(item):
    if not (len(item) == 3 and isinstance(item[0], str)):  # a list of outputs (RNN(..., return_state=True)'s)
      return tuple(walk(v) for v in item)
    name, node, tensor = item
    functional = name in entries and entries[name].class_name == "Functional"
    refs.append(Ref(name, node - 1 if functional and node > 0 else node, tensor))
    return len(refs) - 1

  structure = tuple(walk(v) for v in value)
  return tuple(refs), keys, structure if any(isinstance(s, tuple) for s in structure) else None


def _sequential(config: Mapping[str, Any]) -> Graph:
  """A Sequential config as a chain of calls."""
  layers = list(config["layers"])
  entries, previous = {}, None
  if not layers or layers[0]["class_name"] != "InputLayer":
    raise ValueError("a Sequential model without an InputLayer has no known input shape; build it with "
                     "keras.Input(shape) first.")
  for layer in layers:
    name = layer["config"]["name"]
    nodes = () if previous is None else (((previous,), {}),)
    entries[name] = Entry(name, layer["class_name"], layer.get("module"), dict(layer["config"]), nodes)
    previous = Ref(name)
  return Graph(entries, (Ref(layers[0]["config"]["name"]),), (previous,))


def parse(config: Mapping[str, Any]) -> Graph:
  """Reads a Keras 3 Functional or Sequential config into a `Graph`."""
  if "input_layers" not in config:
    return _sequential(config)
  entries = {}
  for layer in config["layers"]:
    nodes = tuple((tuple(_refs(n.get("args", ()))), dict(_refs(n.get("kwargs", {}))))
                  for n in layer.get("inbound_nodes", ()))
    entries[layer["name"]] = Entry(layer["name"], layer["class_name"], layer.get("module"),
                                   dict(layer["config"]), nodes)
  inputs, input_keys, _ = _ref_list(config["input_layers"], entries)
  outputs, output_keys, output_nesting = _ref_list(config["output_layers"], entries)
  return Graph(entries, inputs, outputs, input_keys, output_keys, output_nesting)


@functools.lru_cache(maxsize=64)
def parse_json(text: str) -> Graph:
  return parse(json.loads(text))


def _tensor_refs(value) -> list[Ref]:
  if isinstance(value, Ref):
    return [value]
  if isinstance(value, Mapping):
    return [r for v in value.values() for r in _tensor_refs(v)]
  if isinstance(value, (list, tuple)):
    return [r for v in value for r in _tensor_refs(v)]
  return []


def _frozen_patterns(graph: Graph, prefix: tuple[str, ...]) -> list[str]:
  found = []
  for entry in graph.entries.values():
    path = (*prefix, entry.name)
    if entry.config.get("trainable", True) is False:
      found.append(re.escape("/".join(path)) + "(/.*)?")
    elif entry.is_model:
      found += _frozen_patterns(parse(entry.config), path)
  return found


def _set_trainable(config: dict[str, Any], trainable: bool) -> None:
  """Sets `trainable` in a layer's config and, for a model, in each of its layers' configs."""
  config["trainable"] = trainable
  for layer in config.get("layers", ()):
    _set_trainable(layer["config"], trainable)


def _param_paths(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
  return [p for key, value in tree.items()
          for p in (_param_paths(value, (*prefix, key)) if isinstance(value, Mapping) else [(*prefix, key)])]


def _leaves_named(tree: Mapping[str, Any], name: str) -> list[Any]:
  """Every array named `name` in a module's variables (one per direction of a `Bidirectional`)."""
  found = []
  for key, value in tree.items():
    if isinstance(value, Mapping):
      found += _leaves_named(value, name)
    elif key == name:
      found.append(value)
  return found


def _passed(key: str, value) -> bool:
  """Whether a keyword recorded at a call is given to the layer: tensors, and options other than `training`
  (a record refuses those it does not take, so that none is silently dropped)."""
  return bool(_tensor_refs(value)) or (key != "training" and value is not None)


def problems(config: Mapping[str, Any], prefix: str = "", custom: records.CustomRecords = ()) -> list[str]:
  """Every layer of a Keras model config (nested models included) that `KerasGraph` cannot compute."""
  graph = parse(config)
  found = []
  for entry in graph.entries.values():
    where = f"{prefix}{entry.name} ({entry.class_name})"
    if entry.is_model:
      nested = entry.config
      if "input_layers" not in nested and any(
          layer["class_name"] == "Masking" or layer["config"].get("mask_zero") for layer in nested["layers"]):
        found.append(f"{where}: masks inside a nested Sequential (make it a functional model)")
      found.extend(problems(nested, prefix=f"{entry.name}/", custom=custom))
      continue
    kwargs = {k for _, node_kwargs in entry.nodes for k, v in node_kwargs.items() if _passed(k, v)}
    for problem in records.problems(entry.class_name, entry.module, entry.config, sorted(kwargs), entry.name, custom):
      found.append(f"{where}: {problem}")
  return found


def _substitute(value, values: Mapping[Ref, Any]):
  if isinstance(value, Ref):
    return values[value]
  if isinstance(value, Mapping):
    return {k: _substitute(v, values) for k, v in value.items()}
  if isinstance(value, tuple):
    return tuple(_substitute(v, values) for v in value)
  return value


def _node_order(graph: Graph) -> list[tuple[str, int]]:
  """The calls the outputs depend on, each after the calls it takes tensors from."""
  order, done = [], set()
  stack = [((r.layer, r.node), False) for r in reversed(graph.outputs)]
  while stack:
    key, expanded = stack.pop()
    if key in done:
      continue
    entry = graph.entries[key[0]]
    if expanded or not entry.nodes:
      done.add(key)
      order.append(key)
      continue
    stack.append((key, True))
    args, kwargs = entry.nodes[key[1]]
    stack.extend(((r.layer, r.node), False) for r in reversed(_tensor_refs((args, kwargs)))
                 if (r.layer, r.node) not in done)
  return order


class StatelessLayer(nn.Module):
  """A layer without weights, as a module so that it has its Keras name in summaries and traces.

  Attributes:
    class_name: the Keras class (or `keras.ops` operation) it computes.
    call: the computation, `call(*args, train, **kwargs)`.
  """

  class_name: str
  call: Callable[..., Any]

  def __call__(self, *args, train: bool = False, **kwargs):
    return self.call(*args, train=train, **kwargs)


class KerasGraph(PrecisionFields):
  """A Keras functional (or Sequential) model computed by jaxcomponents' layers.

  Attributes:
    config: the model's Keras 3 config (`model.get_config()`) as JSON.
    custom_layers: (Keras class or layer name, record) pairs for the user's own layers
      (`records.custom.custom_records`; `from_keras(..., custom_layers=...)` makes them).
    sequential: the Keras model was a `Sequential` (its config is made functional; its `model.layers` lists
      no `InputLayer`).
    dtype, param_dtype, precision: keyword-only, given to every weighted layer.

  Call arguments:
    *inputs: one array per Keras model input, in the model's order (or one list of them, or a dict by input
      name, as a Keras model is called).
    train: dropout on and batch statistics updated, as Keras's `training=True`.

  Returns:
    The output array, or a tuple with one array per Keras output (nested as the Keras model nests them).
  """

  config: str
  custom_layers: records.CustomRecords = ()
  sequential: bool = False

  def __call__(self, *inputs, train: bool = False):
    graph = parse_json(self.config)
    values = self.run(*inputs, train=train)
    outputs = tuple(values[r] for r in graph.outputs)
    if graph.output_keys is not None:
      return dict(zip(graph.output_keys, outputs))
    if graph.output_nesting is not None:
      nest = lambda s: outputs[s] if isinstance(s, int) else tuple(nest(v) for v in s)
      return nest(graph.output_nesting)
    return outputs[0] if len(outputs) == 1 else outputs

  def sample_inputs(self, open_size: int | None = None) -> list[Any] | None:
    """Zeros of batch 1 shaped like the Keras model's inputs (its `InputLayer`s), in the model's input order;
    an open (None) dimension takes `open_size`, and without one there is no sample (None).

    Example:
      >>> graph = KerasGraph(json.dumps({"layers": [{"class_name": "InputLayer", "name": "x", "config": {
      ...     "batch_shape": [None, 3]}, "inbound_nodes": []}], "input_layers": [["x", 0, 0]],
      ...     "output_layers": [["x", 0, 0]]}))
      >>> [a.shape for a in graph.sample_inputs()]
      [(1, 3)]
    """
    graph, samples = parse_json(self.config), []
    for ref in graph.inputs:
      config = graph.entries[ref.layer].config
      dims = list(config.get("batch_shape") or [None, *config.get("shape", [])])[1:]
      if None in dims and open_size is None:
        return None
      dtype = config.get("dtype")
      samples.append(np.zeros((1, *(open_size if d is None else d for d in dims)),
                               dtype if isinstance(dtype, str) else "float32"))
    return samples

  def is_sequential(self) -> bool:
    """Whether the Keras model is a `Sequential` (its `layers` and summary list no `InputLayer`)."""
    return self.sequential or "input_layers" not in json.loads(self.config)

  def layer_names(self) -> list[str]:
    """The Keras model's `model.layers` names, in its config's order (a Sequential's lists no `InputLayer`)."""
    entries = parse_json(self.config).entries
    sequential = self.is_sequential()
    return [name for name, entry in entries.items() if not (sequential and entry.class_name == "InputLayer")]

  def is_trainable(self, layer: str | None = None) -> bool:
    """Keras's `trainable` of the layer `layer`, or of the whole model when None."""
    config = json.loads(self.config)
    if layer is None:
      return config.get("trainable", True) is not False
    return parse_json(self.config).entries[layer].config.get("trainable", True) is not False

  def with_trainable(self, trainable: bool, layer: str | None = None) -> "KerasGraph":
    """This model with Keras's `trainable` set on the layer `layer` (on the model and every layer when None) and
    on every layer inside a nested model, as Keras's setter sets it: `frozen` then lists what is not trainable,
    and a `BatchNormalization` that is not runs on its moving statistics.

    Example:
      module = module.with_trainable(False, "conv1")  # then compile again, as in Keras
    """
    config = json.loads(self.config)
    if layer is None:
      _set_trainable(config, trainable)
    else:
      for entry in config["layers"]:
        if entry["config"]["name"] == layer:
          _set_trainable(entry["config"], trainable)
    return self.clone(config=json.dumps(config))

  @property
  def output_names(self) -> list[str]:
    """The Keras model's output names (its output layers' names), in order, as Keras's `model.output_names`."""
    return [r.layer for r in parse_json(self.config).outputs]

  def frozen(self, params: Mapping[str, Any]) -> list[str]:
    """Path patterns (for `jaxcomponents.training.freeze`) of the parameters of layers Keras does not train
    (`trainable=False` in their config, or in a nested model's, or in the model's own, which freezes every
    layer whatever its flag, as Keras's `trainable_weights` is then empty); `Model.compile` freezes them as
    Keras does.

    Example:
      tx = freeze(optax.adam(1e-3), module.frozen(variables["params"]))
    """
    patterns = [".*"] if not self.is_trainable() else _frozen_patterns(parse_json(self.config), ())
    return [pattern for pattern in patterns
            if any(re.fullmatch(pattern, "/".join(path)) for path in _param_paths(params))]

  def layer_outputs(self, *inputs, train: bool = False) -> dict[str, Any]:
    """Each layer's first output at its first call, by layer name (to compare with Keras layer by layer)."""
    return {ref.layer: value for ref, value in self.run(*inputs, train=train).items()
            if ref.node == 0 and ref.tensor == 0}

  @nn.compact
  def run(self, *inputs, train: bool = False) -> dict[Ref, Any]:
    """Every tensor the outputs depend on, by `Ref`."""
    graph = parse_json(self.config)
    if len(inputs) == 1 and (len(graph.inputs) > 1 or graph.input_keys) and isinstance(inputs[0], (list, tuple, dict)):
      given = inputs[0]  # one list (or dict by input name) of the inputs, as a Keras model is called
      names = list(graph.input_keys or [r.layer for r in graph.inputs])
      if isinstance(given, dict) and set(given) != set(names):
        raise ValueError(f"the inputs are named {sorted(given)}; the model's inputs are {names}.")
      inputs = tuple(given[n] for n in names) if isinstance(given, dict) else tuple(given)
    if len(inputs) != len(graph.inputs):
      raise ValueError(f"the model takes {len(graph.inputs)} inputs "
                       f"({', '.join(r.layer for r in graph.inputs)}); {len(inputs)} were given.")
    calls, rules, autocast = {}, {}, {}
    for entry in graph.entries.values():
      if entry.is_model:
        calls[entry.name] = KerasGraph(json.dumps(entry.config), self.custom_layers, name=entry.name,
                                       **self.precision_options)
      elif entry.class_name != "InputLayer":
        rule = rules[entry.name] = records.rule_for(entry.class_name, entry.module, entry.name, self.custom_layers)
        if rule is None:
          raise ValueError(f"layer {entry.name!r} ({entry.class_name}) is not supported.")
        options, autocast[entry.name] = self._policy_dtypes(entry)
        call = with_activity_regularizer(rule.build(entry.config, entry.name, options),
                                         entry.config.get("activity_regularizer"), entry.name)
        calls[entry.name] = call if rule.creates_module else StatelessLayer(entry.class_name, call, name=entry.name)
    values: dict[Ref, Any] = {}
    for ref, x in zip(graph.inputs, inputs):
      dtype = graph.entries[ref.layer].config.get("dtype")
      values[ref] = jnp.asarray(x, dtype if isinstance(dtype, str) else None)
    for layer, node in _node_order(graph):
      entry = graph.entries[layer]
      if not entry.nodes:
        if Ref(layer) not in values:
          raise ValueError(f"the graph uses {layer!r} ({entry.class_name}), which is neither an input nor called.")
        continue
      args, kwargs = _substitute(entry.nodes[node], values)
      # Tensors and the call options the record takes are passed on (`training` recorded at a call yields to
      # `train`, as in Keras).
      kwargs = {k: v for k, v in kwargs.items() if _passed(k, entry.nodes[node][1][k])}
      if entry.is_model:
        args = args[0] if len(args) == 1 and isinstance(args[0], tuple) else args
        out = calls[layer](*args, train=train)
      else:
        if autocast[layer] is not None:  # Keras casts a layer's floating inputs to its compute dtype
          args, kwargs = cast_floats((args, kwargs), autocast[layer])
        out = calls[layer](*args, train=train, **kwargs)
      for i, value in enumerate(_flat_outputs(out)):  # numbered as Keras numbers them, flattened: (y, [h, c])
        values[Ref(layer, node, i)] = value
    self._sow_weight_regularization(graph, rules)
    return values

  def _policy_dtypes(self, entry) -> tuple[dict[str, Any], Any]:
    """A layer's record options and the dtype Keras casts its floating inputs to, from its Keras dtype policy.

    The options compute and keep the weights in the policy's dtypes (`mixed_bfloat16`: bfloat16 and float32);
    the inputs are cast to its compute dtype, except a preprocessing or normalization layer's (Keras passes
    theirs as given): None. A `dtype` given to this graph overrides every policy (its options, no cast).
    """
    policy = None if self.dtype is not None else keras_dtype_policy(entry.config)
    if policy is None:
      return self.precision_options, None
    options = self.precision_options if policy == ("float32", "float32") else {
        **self.precision_options, "dtype": jnp.dtype(policy[0]), "param_dtype": jnp.dtype(policy[1])}
    return options, None if entry.class_name in _INPUTS_AS_GIVEN else jnp.dtype(policy[0])

  def _sow_weight_regularization(self, graph: Graph, rules: Mapping[str, records.KerasClass]) -> None:
    """Keras's penalty of every regularized weight (`kernel_regularizer=`, ...), once, into `"losses"`."""
    if self.is_initializing() or not self.is_mutable_collection(LOSSES):
      return
    params = self.variables.get("params", {})
    for entry in graph.entries.values():
      if entry.name not in rules or entry.name not in params:
        continue
      tables = rules[entry.name].weights
      for collection, variable, regularizer in regularization.regularized_weights(entry.config, tables):
        weights = _leaves_named(params[entry.name], variable) if collection == "params" else []
        if weights:
          sow_penalty(self, f"{entry.name}/{variable}_regularizer", regularizer, weights)


def _flat_outputs(out: Any) -> list[Any]:
  """A call's outputs in Keras's numbering: nested tuples and lists flattened in order (a cell's `(y, [h, c])`)."""
  if isinstance(out, (tuple, list)):
    return [value for part in out for value in _flat_outputs(part)]
  return [out]


# Keras layers that take their inputs as given: the preprocessing layers (`_convert_input_args = False`) and those
# that do not autocast (`self.autocast = False`).
_INPUTS_AS_GIVEN = frozenset({"Resizing", "Rescaling", "CenterCrop", "RandomCrop", "RandomFlip", "Normalization",
                              "CategoryEncoding", "Hashing", "HashedCrossing", "IntegerLookup", "StringLookup",
                              "TextVectorization", "Discretization", "LayerNormalization", "GroupNormalization",
                              "Embedding"})


def keras_dtype_policy(config: Mapping[str, Any]) -> tuple[str, str] | None:
  """(compute dtype, variable dtype) of a Keras layer config's dtype policy; None where it names none.

  Example:
    >>> keras_dtype_policy({"dtype": {"class_name": "DTypePolicy", "config": {"name": "mixed_bfloat16"}}})
    ('bfloat16', 'float32')
  """
  policy = config.get("dtype")
  if not isinstance(policy, Mapping) or policy.get("class_name") not in ("DTypePolicy", "FloatDTypePolicy"):
    return None
  name = policy.get("config", {}).get("name")
  if not isinstance(name, str):
    return None
  return (name.removeprefix("mixed_"), "float32") if name.startswith("mixed_") else (name, name)

