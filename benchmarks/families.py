"""The benchmarked model families: one small registry entry each.

A family names, per contender, a builder `"module:function"` that takes a
`Size` and returns the model (a Flax module or a `keras.Model`). Builders are
imported lazily, inside the worker process that runs them, so this module
needs neither JAX nor Keras and a TensorFlow-only interpreter can read it.

A family whose jaxcomponents part does not exist yet has `jaxcomponents=None`
and says why in `missing`; its other contenders still run (they are the
reference figures), and the report lists the jaxcomponents row as skipped.
A family with no builder at all is listed as skipped with that reason.

Example:
  >>> family = get("dense")
  >>> family.sizes["tiny"].batch
  8
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

# Every contender, in the report's order; `--frameworks` runs `DEFAULT_FRAMEWORKS` unless it names others.
FRAMEWORKS = ("jaxcomponents", "jaxcomponents-tuned", "jaxcomponents-pip", "jaxcomponents-pip-tuned", "keras-jax",
              "keras-tf", "flax")
DEFAULT_FRAMEWORKS = ("jaxcomponents", "jaxcomponents-tuned", "keras-jax", "keras-tf", "flax")
# jaxcomponents as imported, and after `jaxcomponents.cpu.tune()` (the explicit process-wide call): from this
# checkout, and (`-pip`) as `pip install .` installs it in a fresh virtualenv, with a fresh `JAXCOMPONENTS_HOME`.
JAXCOMPONENTS = ("jaxcomponents", "jaxcomponents-tuned", "jaxcomponents-pip", "jaxcomponents-pip-tuned")
TUNED = ("jaxcomponents-tuned", "jaxcomponents-pip-tuned")
PIP = ("jaxcomponents-pip", "jaxcomponents-pip-tuned")
MODES = ("train", "infer")
SIZES = ("tiny", "quick", "full")
GROUPS = ("main", "matrix", "unet_zoo")
TASKS = ("classify", "segment")


@dataclasses.dataclass(frozen=True)
class Size:
  """One configuration of a family: batch, input shape (without batch), classes, options.

  `options` carries family-specific widths (units, filters) that every
  contender's builder reads the same way.
  """

  batch: int
  input_shape: tuple[int, ...]
  classes: int = 10
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def describe(self) -> str:
    """A short human description: `input 28x28x1, 5 classes, units=64`."""
    extra = "".join(f", {k}={v}" for k, v in self.options.items())
    return f"input {'x'.join(map(str, self.input_shape))}, {self.classes} classes{extra}"


@dataclasses.dataclass(frozen=True)
class Family:
  """One model family and its builders per contender.

  Attributes:
    name: the `model` value of the JSON rows.
    summary: one line for the report.
    sizes: `Size` per preset (`tiny`, `quick`, `full`).
    jaxcomponents: builder of the jaxcomponents model, or None while it does not exist.
    keras: builder of the Keras twin (same architecture, Keras defaults), or None.
    flax: builder of a plain-Flax twin where one is natural, or None.
    optimizer: Keras optimizer name, with Keras's defaults for every contender.
    task: `classify` (labels `(batch,)`) or `segment` (labels `(batch, H, W)`).
    missing: why a contender with no builder is absent, shown in the report.
    requires: `"module:attribute"` the jaxcomponents builder needs; when this
      checkout cannot import it, that contender is skipped with the reason.
    group: `main` (the families of `make bench`) or `matrix` (the configurations
      users set on the components, `make bench-matrix`).
    dtype: the data type this family always runs in (None: the run's `--dtype`).
  """

  name: str
  summary: str
  sizes: Mapping[str, Size]
  jaxcomponents: str | None = None
  keras: str | None = None
  flax: str | None = None
  optimizer: str = "adam"
  task: str = "classify"
  missing: str | None = None
  requires: str | None = None
  group: str = "main"
  dtype: str | None = None

  def builder(self, framework: str) -> str | None:
    """The builder reference for a contender (`keras-jax` and `keras-tf` share the Keras twin)."""
    if framework in ("keras-jax", "keras-tf"):
      return self.keras
    if framework in JAXCOMPONENTS:
      return self.jaxcomponents
    return self.flax

  def skip_reason(self, framework: str) -> str | None:
    """Why `framework` has no contender in this family, or None when it has one."""
    if self.builder(framework) is not None:
      if framework in JAXCOMPONENTS and self.requires and not _importable(self.requires):
        return f"{self.requires.replace(':', '.')} is not importable in this checkout"
      return None
    if framework == "flax":
      return "no plain-Flax twin (not natural for this family)"
    return self.missing or f"no {framework} builder"


FAMILIES: dict[str, Family] = {}


def _importable(reference: str) -> bool:
  module, _, attr = reference.partition(":")
  try:
    return hasattr(importlib.import_module(module), attr) if attr else True
  except ImportError:
    return False


def register(family: Family) -> Family:
  """Adds a family to the registry (names are unique)."""
  if family.name in FAMILIES:
    raise ValueError(f"family {family.name!r} is registered twice.")
  if family.task not in TASKS:
    raise ValueError(f"task={family.task!r} is not allowed; expected one of {TASKS}.")
  if family.group not in GROUPS:
    raise ValueError(f"group={family.group!r} is not allowed; expected one of {GROUPS}.")
  FAMILIES[family.name] = family
  return family


def get(name: str) -> Family:
  """The registered family `name`; ValueError naming the known ones otherwise."""
  if name not in FAMILIES:
    raise ValueError(f"model={name!r} is not allowed; expected one of {', '.join(FAMILIES)}.")
  return FAMILIES[name]


def names(group: str = "main") -> list[str]:
  """The registered families of `group`, in registration order."""
  return [name for name, family in FAMILIES.items() if family.group == group]


def resolve(reference: str) -> Callable[[Size], Any]:
  """Imports `"package.module:function"`."""
  module, _, attr = reference.partition(":")
  return getattr(importlib.import_module(module), attr)


def synthetic_batch(family: Family, size: Size, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """The same synthetic inputs and integer labels for every contender."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(size.batch,) + tuple(size.input_shape)).astype(np.float32)
  label_shape = (size.batch,) if family.task == "classify" else (size.batch,) + tuple(size.input_shape[:-1])
  y = rng.integers(0, size.classes, size=label_shape).astype(np.int32)
  return x, y


def _image_sizes(quick: int, full: int, full_batch: int, tiny: int = 32) -> dict[str, Size]:
  return {
      "tiny": Size(2, (tiny, tiny, 3), 3),
      "quick": Size(8, (quick, quick, 3), 10),
      "full": Size(full_batch, (full, full, 3), 1000),
  }


def _conv_sizes() -> dict[str, Size]:
  return {
      "tiny": Size(4, (8, 8, 4), 3, {"filters": 4}),
      "quick": Size(32, (32, 32, 16), 10, {"filters": 32}),
      "full": Size(64, (64, 64, 32), 10, {"filters": 64}),
  }


def _rnn_sizes() -> dict[str, Size]:
  return {
      "tiny": Size(4, (5, 3), 3, {"units": 4}),
      "quick": Size(32, (32, 32), 10, {"units": 64}),
      "full": Size(64, (100, 64), 10, {"units": 256}),
  }


register(Family(
    "dense", "Dense(units, relu) -> Dropout .2, twice -> Dense(classes, softmax); Adam",
    {"tiny": Size(8, (16,), 3, {"units": 8}), "quick": Size(128, (784,), 10, {"units": 512}),
     "full": Size(512, (784,), 10, {"units": 1024})},
    jaxcomponents="benchmarks.jc_models:dense_stack", keras="benchmarks.keras_twins:dense_stack",
    flax="benchmarks.flax_twins:dense_stack"))

for _kind, _layer in (("conv", "Conv2D"), ("conv_transpose", "Conv2DTranspose (stride 2)"),
                      ("separable_conv", "SeparableConv2D"), ("depthwise_conv", "DepthwiseConv2D")):
  register(Family(
      _kind, f"{_layer}(3x3, relu), twice -> global average pool -> Dense(classes, softmax); Adam",
      _conv_sizes(), jaxcomponents=f"benchmarks.jc_models:{_kind}_stack",
      keras=f"benchmarks.keras_twins:{_kind}_stack"))

for _kind, _layer in (("lstm", "LSTM"), ("gru", "GRU"), ("simple_rnn", "SimpleRNN")):
  register(Family(
      _kind, f"{_layer}(units) over the sequence -> Dense(classes, softmax); Adam",
      _rnn_sizes(), jaxcomponents=f"benchmarks.jc_models:{_kind}", keras=f"benchmarks.keras_twins:{_kind}",
      flax=f"benchmarks.flax_twins:{_kind}", requires="jaxcomponents.layers.recurrent:Recurrent"))

register(Family(
    "vgg16", "keras.applications.VGG16 (weights=None, with top); Adam", _image_sizes(32, 224, 64),
    jaxcomponents="benchmarks.jc_models:vgg16", keras="benchmarks.keras_twins:vgg16"))
register(Family(
    "resnet50", "keras.applications.ResNet50 v1 (weights=None, with top); Adam", _image_sizes(32, 224, 128),
    jaxcomponents="benchmarks.jc_models:resnet50", keras="benchmarks.keras_twins:resnet50"))
register(Family(
    "inception_v3", "keras.applications.InceptionV3 (weights=None, with top); Adam",
    _image_sizes(75, 299, 64, tiny=75),
    jaxcomponents="benchmarks.jc_models:inception_v3", keras="benchmarks.keras_twins:inception_v3"))
register(Family(
    "mobilenet_v2", "keras.applications.MobileNetV2 (alpha 1, weights=None, with top); Adam",
    _image_sizes(32, 224, 128), jaxcomponents="benchmarks.jc_models:mobilenet_v2",
    keras="benchmarks.keras_twins:mobilenet_v2"))

_UNET_SIZES = {
    "tiny": Size(2, (32, 32, 3), 2, {"filters": (4, 8, 16), "batch_norm": True}),
    "quick": Size(4, (64, 64, 3), 2, {"filters": (16, 32, 64, 128), "batch_norm": True}),
    "full": Size(16, (256, 256, 3), 2, {"filters": (64, 128, 256, 512), "batch_norm": True}),
}
for _name, _summary in (("unet", "U-Net"), ("attention_unet", "attention U-Net (additive gates)")):
  register(Family(
      _name, f"keras-unet-collection's {_summary}: conv stacks with BN, max pool, bilinear upsampling, "
      "per-pixel softmax; Adam", _UNET_SIZES, jaxcomponents=f"benchmarks.jc_models:{_name}",
      keras=f"benchmarks.keras_twins:{_name}", task="segment"))

register(Family(
    "mnist_cnn",
    "seed notes' MNIST CNN: Conv2D(32,3,relu) x2 -> MaxPool 2 -> Dropout .25 -> Dense 128 relu -> Dropout .5 "
    "-> Dense(5, softmax); Adadelta",
    {"tiny": Size(8, (12, 12, 1), 5), "quick": Size(128, (28, 28, 1), 5), "full": Size(128, (28, 28, 1), 5)},
    jaxcomponents="benchmarks.jc_models:mnist_cnn", keras="benchmarks.keras_twins:mnist_cnn",
    flax="benchmarks.flax_twins:mnist_cnn", optimizer="adadelta"))


# The matrix: what users set on the components, each cell side by side with Keras (`make bench-matrix`).
_CNN = {"cnn_seed": {}, "cnn_dropout_inside": {"dropout_inside": True}, "cnn_same": {"padding": "SAME"},
        "cnn_batch_norm": {"batch_norm": True}, "cnn_avg_pool": {"pool": "avg"}, "cnn_strides2": {"strides": 2},
        "cnn_dilation2": {"dilation": 2}}
_CNN_BATCHES = {"cnn_batch32": 32, "cnn_batch512": 512}


def _cnn_sizes(batch: int = 128, **options) -> dict[str, Size]:
  return {"tiny": Size(4, (12, 12, 1), 5, options), "quick": Size(batch, (28, 28, 1), 5, options),
          "full": Size(batch, (28, 28, 1), 5, options)}


def _register_cnn(name: str, summary: str, sizes: dict[str, Size], dtype: str | None = None) -> None:
  register(Family(name, f"seed CNN, {summary}; Adadelta", sizes, jaxcomponents="benchmarks.jc_models:mnist_cnn",
                  keras="benchmarks.keras_twins:mnist_cnn", optimizer="adadelta", group="matrix", dtype=dtype))


for _name, _options in _CNN.items():
  _register_cnn(_name, ", ".join(f"{k}={v}" for k, v in _options.items()) or "as in the seed notes",
                _cnn_sizes(**_options))
for _name, _batch in _CNN_BATCHES.items():
  _register_cnn(_name, f"batch {_batch}", _cnn_sizes(_batch))
_register_cnn("cnn_bf16", "mixed bfloat16", _cnn_sizes(), dtype="mixed_bfloat16")

_SPATIAL = {1: (256,), 2: (32, 32), 3: (12, 12, 12)}
_BATCH = {1: 32, 2: 32, 3: 8}
_KERAS_KINDS = {"conv": (1, 2, 3), "transpose": (1, 2, 3), "separable": (1, 2), "depthwise": (1, 2)}


def _stack_sizes(kind: str, dims: int) -> dict[str, Size]:
  filters = 16 if dims == 3 else 32
  options = {"kind": kind, "dims": dims, "filters": filters}
  return {"tiny": Size(2, (6,) * dims + (4,), 3, dict(options, filters=4)),
          "quick": Size(_BATCH[dims], _SPATIAL[dims] + (16 if dims < 3 else 8,), 10, options),
          "full": Size(4 * _BATCH[dims], _SPATIAL[dims] + (16 if dims < 3 else 8,), 10, options)}


for _kind, _dims_list in _KERAS_KINDS.items():
  for _dims in _dims_list:
    register(Family(
        f"{_kind}_{_dims}d", f"two {_kind} convolutions (3, relu, SAME{', stride 2' if _kind == 'transpose' else ''})"
        f" over {_dims} axes -> global average pool -> Dense(classes, softmax); Adam", _stack_sizes(_kind, _dims),
        jaxcomponents="benchmarks.jc_models:conv_stack_nd", keras="benchmarks.keras_twins:conv_stack_nd",
        group="matrix"))
register(Family("conv_2d_bf16", "conv_2d in mixed bfloat16; Adam", _stack_sizes("conv", 2),
                jaxcomponents="benchmarks.jc_models:conv_stack_nd", keras="benchmarks.keras_twins:conv_stack_nd",
                group="matrix", dtype="mixed_bfloat16"))


# keras-unet-collection's models, each beside kuc's own Keras model built by the same call (`make bench-unet-zoo`:
# kuc needs tf.keras, so its contender runs in `.venv-kuc`, TensorFlow 2.15 with Keras 2). Batch norm on, deep
# supervision off, a softmax over the classes; the arguments are kuc's (V-Net decodes by transposed convolutions, as
# in its paper: kuc's upsampling needs equal filter numbers there).
_ZOO = {
    "unet_plus_2d": ({"filter_num": [4, 8, 16]}, {"filter_num": [16, 32, 64, 128]}),
    "r2_unet_2d": ({"filter_num": [4, 8, 16]}, {"filter_num": [16, 32, 64, 128]}),
    "resunet_a_2d": ({"filter_num": [4, 8, 16], "dilation_num": [1, 3], "aspp_num_down": 16, "aspp_num_up": 8},
                     {"filter_num": [16, 32, 64, 128], "dilation_num": [1, 3, 15, 31], "aspp_num_down": 128,
                      "aspp_num_up": 64}),
    "u2net_2d": ({"filter_num_down": [4, 8, 16]}, {"filter_num_down": [16, 32, 64, 128]}),
    "unet_3plus_2d": ({"filter_num_down": [4, 8, 16]}, {"filter_num_down": [16, 32, 64, 128]}),
    "vnet_2d": ({"filter_num": [4, 8, 16], "unpool": False}, {"filter_num": [16, 32, 64, 128], "unpool": False}),
    "transunet_2d": ({"filter_num": [4, 8, 16], "embed_dim": 16, "num_mlp": 32, "num_heads": 2, "num_transformer": 1},
                     {"filter_num": [16, 32, 64, 128], "embed_dim": 64, "num_mlp": 128, "num_heads": 4,
                      "num_transformer": 2}),
    "swin_unet_2d": ({"filter_num_begin": 8, "depth": 2, "stack_num_down": 1, "stack_num_up": 1,
                      "patch_size": (2, 2), "num_heads": [2, 2], "window_size": [4, 2], "num_mlp": 16},
                     {"filter_num_begin": 32, "depth": 3, "stack_num_down": 2, "stack_num_up": 2,
                      "patch_size": (2, 2), "num_heads": [2, 4, 4], "window_size": [4, 2, 2], "num_mlp": 64}),
}
_NO_BATCH_NORM = ("swin_unet_2d",)  # kuc's Swin-UNet takes no batch_norm


def zoo_model(library: Any, size: Size) -> Any:
  """`library`'s model (jaxcomponents.models or keras_unet_collection.models) for a unet_zoo size: one call, kuc's
  function name and arguments, on both sides."""
  options = dict(size.options)
  return getattr(library, options.pop("function"))(input_size=size.input_shape, n_labels=size.classes, **options)


def _zoo_sizes(function: str, tiny: dict[str, Any], quick: dict[str, Any]) -> dict[str, Size]:
  common = {"output_activation": "Softmax", **({} if function in _NO_BATCH_NORM else {"batch_norm": True})}
  return {"tiny": Size(2, (32, 32, 3), 2, {"function": function, **common, **tiny}),
          "quick": Size(4, (64, 64, 3), 2, {"function": function, **common, **quick}),
          "full": Size(8, (128, 128, 3), 2, {"function": function, **common, **quick})}


for _function, (_tiny, _quick) in _ZOO.items():
  register(Family(
      _function, f"keras-unet-collection's {_function} (kuc's arguments, batch norm, softmax); Adam",
      _zoo_sizes(_function, _tiny, _quick), jaxcomponents="benchmarks.jc_models:unet_collection",
      keras="benchmarks.keras_twins:unet_collection", task="segment", group="unet_zoo",
      requires=f"jaxcomponents.models:{_function}"))
