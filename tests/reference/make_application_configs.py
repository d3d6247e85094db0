"""Records all 40 `keras.applications` models for tests/test_applications_all.py, and checks `from_keras` on each live.

Building the 40 models (ConvNeXtXLarge alone holds 348M weights) and running
them in Keras takes far longer than a test may, so this script does it once:

  KERAS_BACKEND=jax nice python tests/reference/make_application_configs.py [Name ...]

For each model (include_top=True, classes=5, weights=None, at the smallest
input Keras accepts: 75 for InceptionV3 and InceptionResNetV2, 71 for
Xception, 32 for the rest) it writes `tests/reference/applications/<Name>.json.gz`:

- `model`: Keras's `model.to_json()`, parsed;
- `weights`: `[path, shape, class]` of every Keras weight in `model.weights` order (the class is that of the
  layer owning it); their values are `weight_value(path, shape, class)`, a rule the test repeats without Keras;
- `count_params`: Keras's `model.count_params()`;
- `input`: the rule of the input (`model_input`): seed, range and shape;
- `outputs`: Keras's outputs for that input: the features the classifier reads (the input of the last layer)
  and the class probabilities.

Then it converts the live model with `from_keras` and prints the largest absolute and relative difference (to the
largest |Keras output|) of both outputs, per model. Names on the command line redo only those models.
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import json
import math
import os
import sys
import time

import numpy as np

NAMES = (
    "ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge",
    "DenseNet121", "DenseNet169", "DenseNet201",
    "EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4", "EfficientNetB5",
    "EfficientNetB6", "EfficientNetB7",
    "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3", "EfficientNetV2S",
    "EfficientNetV2M", "EfficientNetV2L",
    "InceptionResNetV2", "InceptionV3", "MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large",
    "NASNetMobile", "NASNetLarge", "ResNet50", "ResNet101", "ResNet152", "ResNet50V2", "ResNet101V2",
    "ResNet152V2", "VGG16", "VGG19", "Xception",
)
MIN_SIZES = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}  # every other model: 32
CLASSES = 5
BATCH = 2
# Models that scale their input themselves (a Rescaling / Normalization first) take pixels in [0, 255].
PIXEL_INPUT = ("ConvNeXt", "EfficientNet", "MobileNetV3")

FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "applications")


def min_size(name: str) -> int:
  return MIN_SIZES.get(name, 32)


def _seed(text: str) -> int:
  return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


_DEPTHWISE = ("DepthwiseConv1D", "DepthwiseConv2D")


def weight_value(path: str, shape, class_name: str) -> np.ndarray:
  """The value every test gives the Keras weight at `path` (`conv1_conv/kernel`).

  Drawn from a generator seeded by the path; kernels are scaled by their fan-in
  (a depthwise kernel's is its window) so that deep stacks stay in range;
  variances, BatchNormalization/LayerNormalization scales and LayerScale factors
  lie in [0.5, 1.5]; biases and means are small; Normalization's `count` is 0.
  """
  rng = np.random.default_rng(_seed(path))
  shape = tuple(int(d) for d in shape)
  name = path.rsplit("/", 1)[-1]
  if name == "count":
    return np.zeros(shape, np.int64)
  if name in ("moving_variance", "variance", "gamma", "variable"):
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)
  if name in ("kernel", "depthwise_kernel", "pointwise_kernel"):
    window = name == "depthwise_kernel" or (name == "kernel" and class_name in _DEPTHWISE)
    fan_in = math.prod(shape[:-2] if window else shape[:-1])
    return (rng.standard_normal(shape, np.float32) / np.float32(math.sqrt(fan_in))).astype(np.float32)
  return (rng.standard_normal(shape, np.float32) * np.float32(0.1)).astype(np.float32)


def model_input(name: str, size: int) -> tuple[dict, np.ndarray]:
  """The input rule of a model and the input it gives."""
  low, high = (0.0, 255.0) if name.startswith(PIXEL_INPUT) else (-1.0, 1.0)
  rule = {"seed": _seed(name), "low": low, "high": high, "shape": [BATCH, size, size, 3]}
  return rule, input_from(rule)


def input_from(rule: dict) -> np.ndarray:
  return np.random.default_rng(rule["seed"]).uniform(rule["low"], rule["high"], rule["shape"]).astype(np.float32)


def _owner_classes(model) -> dict[int, str]:
  """id(variable) -> the class of the innermost layer owning it."""
  owners = {}
  for layer in model._flatten_layers(include_self=False, recursive=True):  # pylint: disable=protected-access
    for variable in layer.weights:
      owners[id(variable)] = type(layer).__name__
  return owners


def _features_layer(config: dict) -> str:
  """The layer whose output the last layer (the classifier) reads."""
  last = config["layers"][-1]
  return last["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0]


def record(name: str) -> dict:
  import keras  # pylint: disable=import-outside-toplevel

  keras.backend.clear_session()
  size = min_size(name)
  model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=CLASSES)
  owners = _owner_classes(model)
  weights = []
  for variable in model.weights:
    value = weight_value(variable.path, variable.shape, owners[id(variable)])
    variable.assign(value.astype(str(variable.dtype)))
    weights.append([variable.path, list(variable.shape), owners[id(variable)]])
  for layer in model._flatten_layers(include_self=False, recursive=True):  # pylint: disable=protected-access
    if type(layer).__name__ == "Normalization":
      layer.finalize_state()  # as Keras does after loading weights: the layer computes with its new statistics
  rule, x = model_input(name, size)
  config = json.loads(model.to_json())
  features = _features_layer(config["config"])
  probe = keras.Model(model.input, [model.get_layer(features).output, model.output])
  outputs = [np.asarray(y) for y in probe.predict(x, batch_size=BATCH, verbose=0)]
  data = {"name": name, "keras_version": keras.__version__, "input_size": size, "classes": CLASSES,
          "count_params": int(model.count_params()), "input": rule, "weights": weights, "model": config,
          "outputs": {"layers": [features, model.layers[-1].name],
                      "values": [[float(v) for v in y.ravel()] for y in outputs],
                      "shapes": [list(y.shape) for y in outputs]}}
  os.makedirs(FOLDER, exist_ok=True)
  with gzip.open(os.path.join(FOLDER, f"{name}.json.gz"), "wt", compresslevel=9) as f:
    json.dump(data, f, separators=(",", ":"))
  return {"model": model, "x": x, "outputs": outputs, "features": features, "layers": len(config["config"]["layers"])}


def check_live(model, x, outputs, features) -> list[tuple[float, float]]:
  """(max abs, max rel) of `from_keras`'s features and probabilities against Keras's."""
  import jax  # pylint: disable=import-outside-toplevel

  from jaxcomponents.models import KerasGraph  # pylint: disable=import-outside-toplevel
  from jaxcomponents.weights import from_keras  # pylint: disable=import-outside-toplevel

  module, variables = from_keras(model)
  ours = jax.jit(lambda v, x: module.apply(v, x, method=KerasGraph.layer_outputs))(variables, x)
  found = []
  for layer, theirs in zip((features, model.layers[-1].name), outputs):
    diff = float(np.max(np.abs(np.asarray(ours[layer], np.float64) - theirs)))
    found.append((diff, diff / float(np.max(np.abs(theirs)))))
  return found


def main(names) -> None:
  for name in names:
    start = time.time()
    made = record(name)
    recorded = time.time() - start
    try:
      (fa, fr), (pa, pr) = check_live(made["model"], made["x"], made["outputs"], made["features"])
      verdict = "ok" if max(fr, pr) <= 1e-5 else "DIFFERS"
      figures = f"features abs {fa:.2e} rel {fr:.2e} | probabilities abs {pa:.2e} rel {pr:.2e} {verdict}"
    except Exception as e:  # pylint: disable=broad-except  # the report goes on to the next model
      figures = f"from_keras failed: {type(e).__name__}: {str(e)[:300]}"
    scale = float(np.max(np.abs(made["outputs"][0])))
    print(f"{name:18s} {min_size(name):3d}px {made['layers']:5d} layers max|features| {scale:9.3g} | {figures} | "
          f"{recorded:.0f}s + {time.time() - start - recorded:.0f}s", flush=True)
    del made
    gc.collect()


if __name__ == "__main__":
  os.environ.setdefault("KERAS_BACKEND", "jax")
  main(sys.argv[1:] or NAMES)
