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

FRAMEWORKS = ("jaxcomponents", "keras-jax", "keras-tf", "flax")
MODES = ("train", "infer")
SIZES = ("tiny", "quick", "full")
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

  def builder(self, framework: str) -> str | None:
    """The builder reference for a contender (`keras-jax` and `keras-tf` share the Keras twin)."""
    if framework in ("keras-jax", "keras-tf"):
      return self.keras
    return {"jaxcomponents": self.jaxcomponents, "flax": self.flax}[framework]

  def skip_reason(self, framework: str) -> str | None:
    """Why `framework` has no contender in this family, or None when it has one."""
    if self.builder(framework) is not None:
      if framework == "jaxcomponents" and self.requires and not _importable(self.requires):
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
  FAMILIES[family.name] = family
  return family


def get(name: str) -> Family:
  """The registered family `name`; ValueError naming the known ones otherwise."""
  if name not in FAMILIES:
    raise ValueError(f"model={name!r} is not allowed; expected one of {', '.join(FAMILIES)}.")
  return FAMILIES[name]


def resolve(reference: str) -> Callable[[Size], Any]:
  """Imports `"package.module:function"`."""
  module, _, attr = reference.partition(":")
  return getattr(importlib.import_module(module), attr)


def synthetic_batch(family: Family, size: Size, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """The same synthetic inputs and integer labels for every contender."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(size.batch,) + tuple(size.input_shape)).astype(np.float32)
  label_shape = (size.batch,) if family.task == "classify" else (size.batch,) + tuple(size.input_shape[:2])
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
