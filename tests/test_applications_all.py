"""All 40 `keras.applications` models, as recorded from Keras, compute what Keras computed.

tests/reference/make_application_configs.py recorded each model (include_top=True, classes=5, at its smallest
input size): its Keras config, the paths and shapes of its weights, an input and Keras's outputs on it (the
features the classifier reads and the class probabilities), with every weight given by a rule
(`weight_value`). Here each model is rebuilt as a `KerasGraph` from the config, its weights are made again by the
rule and converted by the library's conversion, and its outputs are compared with Keras's, within 1e-5 of the
largest |Keras output|; the parameter count is Keras's.

Compiling whole graphs of up to a thousand layers with XLA takes longer than this suite may, and op by op even
more, so the graph runs with each of its layers (each module `KerasGraph` creates) compiled alone and compiled once
for all the layers of the same class, configuration and input shapes (`LayerByLayer`); that whole-graph
compilation gives the same outputs is checked on two models. The same models run live through `from_keras`:
`KERAS_BACKEND=jax python tests/reference/make_application_configs.py`.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import os
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomponents.keras.convert import convert_layers
from jaxcomponents.keras.records import RECORDS
from jaxcomponents.keras.weight_files import split_layer
from jaxcomponents.models import KerasGraph
from jaxcomponents.variable_trees import flatten_variables
from tests.reference.make_application_configs import FOLDER, NAMES, input_from, weight_value

_MODEL_CLASSES = ("Functional", "Sequential", "Model")


def _frozen(value):
  """A config value as a hashable key."""
  if isinstance(value, dict):
    return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
  if isinstance(value, (list, tuple)):
    return tuple(_frozen(v) for v in value)
  try:
    hash(value)
  except TypeError:
    return repr(value)
  return value


def _layer_configs(config: dict, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], tuple]:
  """Module path -> (Keras class, config without the name) of every layer, nested models' layers included."""
  found = {}
  for layer in config["layers"]:
    path = (*prefix, layer.get("name", layer["config"].get("name")))
    if layer["class_name"] in _MODEL_CLASSES:
      found.update(_layer_configs(layer["config"], path))
    else:
      found[path] = (layer["class_name"], _frozen({k: v for k, v in layer["config"].items() if k != "name"}))
  return found


class LayerByLayer:
  """Runs a `KerasGraph` with each module it creates compiled alone, once per class, configuration and inputs.

  Every call of a module below the graph (a layer's module, or the `StatelessLayer` of a layer without weights)
  is replaced by a jitted call of the same module on the same variables and inputs; modules equal in all but
  their name (a stateless layer: of the same Keras class and configuration) share one compiled function.
  """

  def __init__(self):
    self.compiled: dict = {}
    self._inside = False

  def _key(self, module, configs):
    if type(module).__name__ == "StatelessLayer":
      return ("stateless", configs[tuple(module.path)])
    return (type(module), tuple((f.name, _frozen(getattr(module, f.name))) for f in dataclasses.fields(module)
                                if f.name not in ("parent", "name")))

  def apply(self, module: KerasGraph, variables, x, configs):
    def intercept(next_fun, args, kwargs, context):
      layer = context.module
      if self._inside or isinstance(layer, KerasGraph) or context.method_name != "__call__":
        return next_fun(*args, **kwargs)
      leaves, tree = jax.tree_util.tree_flatten((args, kwargs))
      arrays = [i for i, leaf in enumerate(leaves) if isinstance(leaf, (jax.Array, np.ndarray))]
      key = (self._key(layer, configs), tree,
             tuple((leaf.shape, leaf.dtype) if i in arrays else leaf for i, leaf in enumerate(leaves)))
      if key not in self.compiled:
        self.compiled[key] = jax.jit(self._alone(layer.clone(parent=None), leaves, arrays, tree))
      own = dict(layer.variables) if layer.scope is not None else {}
      return self.compiled[key](own, [leaves[i] for i in arrays])

    with nn.intercept_methods(intercept):
      return module.apply(variables, x)

  def _alone(self, layer, leaves, arrays, tree):
    def call(variables, values):
      filled = list(leaves)
      for i, value in zip(arrays, values):
        filled[i] = value
      args, kwargs = jax.tree_util.tree_unflatten(tree, filled)
      self._inside = True
      try:
        return layer.apply(variables, *args, **kwargs)
      finally:
        self._inside = False
    return call


_RUNNER = LayerByLayer()


def _record(name: str) -> dict:
  with gzip.open(os.path.join(FOLDER, f"{name}.json.gz"), "rt") as f:
    return json.load(f)


def _owner(path: str, layers) -> str:
  """The model's layer owning the weight at `path`: the last of its parts naming one (NASNet's paths hold name
  scopes, `reduction_A_block_stem_1/block_1/.../separable_conv_1_reduction_left1_stem_1/kernel`; a nested model's,
  its own name first)."""
  owners = [part for part in path.split("/")[:-1] if part in layers]
  assert owners, f"no layer of the model owns the weight {path!r}"
  return owners[-1]


def _rebuilt(name: str):
  """(module, variables, input, recorded) of a recorded model, with its weights made by the rule and converted."""
  recorded = _record(name)
  config = recorded["model"]["config"]
  classes = {layer["name"]: layer["class_name"] for layer in config["layers"]}
  values = {path: weight_value(path, shape, owner) for path, shape, owner in recorded["weights"]}
  folded, by_layer = 0, {}
  for path, _, _ in recorded["weights"]:
    by_layer.setdefault(_owner(path, classes), []).append((path, values[path]))
  for layer in config["layers"]:  # weights Keras keeps as constants go into the config, as from_keras folds them
    record = RECORDS.get(layer["class_name"])
    if record is not None and record.fold is not None and layer["name"] in by_layer:
      named = {path.rsplit("/", 1)[-1]: value for path, value in by_layer.pop(layer["name"])}
      record.fold(types.SimpleNamespace(**named), layer["config"])
      folded += sum(v.size for v in named.values())
  keras_layers = [part for top, named in by_layer.items() if classes.get(top) != "InputLayer"
                  for part in split_layer(top, named, f"the weight rule of {name}")]
  features, last = recorded["outputs"]["layers"]
  config["output_layers"] = [[features, 0, 0], [last, 0, 0]]
  module = KerasGraph(json.dumps(config), precision="highest")
  x = input_from(recorded["input"])
  shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), x))
  variables = convert_layers(shapes, keras_layers, match="path")
  return module, variables, x, recorded, folded


def _assert_as_keras(outputs, recorded) -> None:
  for layer, ours, theirs, shape in zip(recorded["outputs"]["layers"], outputs, recorded["outputs"]["values"],
                                         recorded["outputs"]["shapes"]):
    theirs = np.asarray(theirs, np.float32).reshape(shape)
    ours = np.asarray(ours)
    assert ours.shape == theirs.shape, f"{layer}: shape {ours.shape}, Keras {theirs.shape}"
    scale = float(np.max(np.abs(theirs)))
    err = float(np.max(np.abs(ours.astype(np.float64) - theirs)))
    assert scale > 0 and err <= 1e-5 * scale, f"{layer}: max error {err:.3g} exceeds 1e-5 x {scale:.3g}"


def test_forty_models_recorded():
  assert len(NAMES) == 40 and len(set(NAMES)) == 40
  assert sorted(f[:-len(".json.gz")] for f in os.listdir(FOLDER) if f.endswith(".json.gz")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_application_matches_keras(name):
  module, variables, x, recorded, folded = _rebuilt(name)
  assert sum(math.prod(shape) for _, shape, _ in recorded["weights"]) == recorded["count_params"]
  assert sum(v.size for v in flatten_variables(variables).values()) + folded == recorded["count_params"]
  outputs = _RUNNER.apply(module, variables, x, _layer_configs(json.loads(module.config)))
  _assert_as_keras(outputs, recorded)


# ConvNeXt nests Sequential models; MobileNetV3 computes its hard sigmoid with keras.ops operations.
@pytest.mark.parametrize("name", ["ConvNeXtTiny", "MobileNetV3Small"])
def test_whole_graph_compiled_at_once_matches_keras(name):
  module, variables, x, recorded, _ = _rebuilt(name)
  _assert_as_keras(jax.jit(module.apply)(variables, x), recorded)


def _tiny_model(keras):
  """The three classes keras.applications defines, in one small model."""
  from keras.src.applications.convnext import LayerScale, StochasticDepth  # pylint: disable=import-outside-toplevel
  from keras.src.applications.inception_resnet_v2 import CustomScaleLayer  # pylint: disable=import-outside-toplevel

  inputs = keras.Input((4, 4, 3))
  shortcut = keras.layers.Conv2D(6, 1, name="shortcut")(inputs)
  branch = keras.layers.Conv2D(6, 3, padding="same", name="branch")(shortcut)
  branch = StochasticDepth(0.3, name="drop_path")(LayerScale(0.1, 6, name="layer_scale")(branch))
  return keras.Model(inputs, CustomScaleLayer(0.17, name="scaled_sum")([shortcut, branch]))


def test_application_classes_convert_and_go_back_to_keras():
  keras = pytest.importorskip("keras")
  from jaxcomponents.weights import from_keras, to_keras  # pylint: disable=import-outside-toplevel

  model, fresh = _tiny_model(keras), _tiny_model(keras)
  rng = np.random.default_rng(0)
  for variable in model.weights:
    variable.assign(rng.normal(0.0, 0.5, tuple(variable.shape)).astype(np.float32))
  x = rng.normal(size=(16, 4, 4, 3)).astype(np.float32)
  module, variables = from_keras(model, check=x)
  expected = np.asarray(model(x))
  np.testing.assert_allclose(module.apply(variables, x), expected, rtol=0, atol=1e-5 * np.abs(expected).max())
  scale = model.get_layer("layer_scale").weights[0]  # Keras leaves it unnamed: `variable`
  np.testing.assert_array_equal(variables["params"]["layer_scale"]["scale"], np.asarray(scale))
  to_keras(module, variables, fresh)
  np.testing.assert_array_equal(np.asarray(fresh(x)), expected)

  # Training: StochasticDepth keeps or drops each example's branch whole, and scales the kept by 1 / 0.7.
  probe = keras.Model(model.input, [model.get_layer("shortcut").output, model.get_layer("layer_scale").output])
  shortcut, branch = (np.asarray(y) for y in probe(x))
  y = np.asarray(module.apply(variables, x, train=True, rngs={"dropout": jax.random.key(3)}))
  kept = [bool(np.allclose(y[i], shortcut[i] + 0.17 * branch[i] / 0.7, atol=1e-5)) for i in range(16)]
  dropped = [bool(np.allclose(y[i], shortcut[i], atol=1e-6)) for i in range(16)]
  assert all(k != d for k, d in zip(kept, dropped)) and any(kept) and any(dropped)


def test_application_class_configs_are_checked():
  assert RECORDS["CustomScaleLayer"].check({"scale": "0.1"}) == ["scale='0.1' (expected a number)"]
  assert RECORDS["StochasticDepth"].check({"drop_path_rate": 1.0}) == [
      "drop_path_rate=1.0 (expected a number in [0, 1))"]
  assert RECORDS["LayerScale"].check({"init_values": 0.1, "projection_dim": 0}) == [
      "projection_dim=0 (expected a positive int)"]
  assert RECORDS["LayerScale"].check({"init_values": 1e-6, "projection_dim": 96}) == []
  call = RECORDS["CustomScaleLayer"].build({"scale": 0.5}, "block", {})
  with pytest.raises(ValueError, match="takes a list of two tensors"):
    call(jnp.ones(2), train=False)
