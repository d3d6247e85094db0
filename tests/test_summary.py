"""`summary`: Keras's `model.summary()`: the model's name, layer names and classes, output shapes with a `None`
batch, parameter counts, totals equal to Keras's (every backbone; Keras-derived graphs layer by layer)."""

import json
import os
import re

import flax.linen as nn
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from jaxcomponents import models
from jaxcomponents.layers import Convolution, Dense
from jaxcomponents.models import backbones
from jaxcomponents.summary import summary
from jaxcomponents.weights import from_keras


def _rows(table):
  """The table's rows as {"name", "class", "shape", "params", "connected"} (cells spanning lines joined)."""
  rows, current = [], None
  for line in table.splitlines():
    if line.startswith("+"):
      if current is not None:
        rows.append(current)
      current = None
    elif line.startswith("|"):
      cells = [c.strip() for c in line.strip("|").split(" | ")]
      current = cells if current is None else [f"{a} {b}".strip() for a, b in zip(current, cells)]
  header, *body = rows
  assert header[:3] == ["Layer (type)", "Output Shape", "Param #"]
  found = []
  for cells in body:
    name, kind = re.fullmatch(r"(\S+) \((\w+)\)", cells[0]).groups()
    found.append({"name": name, "class": kind, "shape": cells[1], "params": int(cells[2].replace(",", "")),
                  "connected": cells[3] if len(cells) > 3 else None})
  return found


def _totals(table):
  return [int(m.replace(",", "")) for m in re.findall(r"^ (?:Total|Trainable|Non-trainable) params: ([\d,]+) \(",
                                                        table, flags=re.M)]


def _keras_totals(model):
  trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
  return [model.count_params(), trainable, model.count_params() - trainable]


def _keras_shape(layer):
  return "(" + ", ".join(str(d) for d in layer.output.shape) + ")"


# Every backbone's totals against Keras's, recorded by tests/reference/make_summary_counts.py (building all the
# keras.applications models takes Keras minutes); four are compared with Keras live, layer by layer, below.

with open(os.path.join(os.path.dirname(__file__), "reference", "summary_counts.json")) as _f:
  KERAS_COUNTS = json.load(_f)
SMALLEST_OF_EACH_FAMILY = ("VGG16", "ResNet50", "ResNet50V2", "DenseNet121", "EfficientNetB0", "InceptionV3",
                           "MobileNet", "MobileNetV2")


@pytest.mark.parametrize("name", backbones.NAMES)
def test_every_backbone_totals_equal_keras(name):
  record, reference = backbones.get(name), KERAS_COUNTS[name]
  size = reference["input_size"]
  for top in ("top", "no_top") if name in SMALLEST_OF_EACH_FAMILY else ("top",):
    module = record.module(include_top=top == "top", **record.weights_arguments(None))
    table = summary(module, jnp.zeros((1, size, size, 3)), print_fn=None)
    counts = reference[top]
    assert _totals(table) == [counts["count_params"], counts["trainable"], counts["non_trainable"]], (name, top)
    rows = _rows(table)
    assert table.startswith(f'Model: "{name}"')
    assert len({r["name"] for r in rows}) == len(rows)  # each layer once
    assert all(r["shape"].startswith("(None, ") for r in rows), name


BACKBONES = [
    ("VGG16", dict(include_top=False), 32),
    ("ResNet50", dict(include_top=False, pooling="avg"), 32),
    ("MobileNetV2", dict(alpha=0.35), 96),
    ("InceptionV3", dict(include_top=False), 75),
]


@pytest.mark.parametrize("name, options, size", BACKBONES)
def test_backbone_counts_equal_keras_layer_by_layer(name, options, size):
  table = summary(getattr(models, name)(**options), jnp.zeros((1, size, size, 3)), print_fn=None)
  keras.backend.clear_session()  # Keras numbers unnamed layers (InceptionV3's conv2d_N) per session
  reference = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), **options)
  rows = {r["name"]: r for r in _rows(table)}
  for layer in reference.layers:
    if layer.weights:
      assert rows[layer.name]["params"] == layer.count_params(), layer.name
      assert rows[layer.name]["shape"] == _keras_shape(layer), layer.name
  assert _totals(table) == _keras_totals(reference)


# Keras-derived graphs: exactly the Keras model's rows.

def _functional_model():
  image = keras.Input((16, 16, 3), name="image")
  x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(image)
  x = keras.layers.BatchNormalization(name="bn")(x)
  y = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
  x = keras.layers.Add(name="add")([y, x])
  x = keras.layers.Dense(4, trainable=False)(keras.layers.GlobalAveragePooling2D()(x))  # Keras: non-trainable
  return keras.Model(image, x, name="small_net")


def test_from_keras_summary_is_keras_s_rows():
  model = _functional_model()
  module, _ = from_keras(model)
  printed = []
  table = summary(module, np.zeros((2, 16, 16, 3), np.float32), print_fn=printed.append)
  assert printed == [table] and table.startswith('Model: "small_net"\n')
  rows = _rows(table)
  assert [(r["name"], r["class"], r["shape"], r["params"]) for r in rows] == [
      (layer.name, type(layer).__name__, _keras_shape(layer), layer.count_params()) for layer in model.layers]
  assert rows[4]["connected"] == "conv[0][0], bn[0][0]"  # Keras's "Connected to"
  assert _totals(table) == _keras_totals(model)
  assert " Total params: 876 (3.42 KB)" in table  # Keras's sizes: float32 weights


def test_from_keras_summary_of_sequence_nested_and_multi_input_models():
  inputs = keras.Input((None, 8))  # an open time axis stays None, as Keras shows it
  x = keras.layers.Conv1D(4, 3)(inputs)
  x = keras.layers.Bidirectional(keras.layers.LSTM(5, return_sequences=True))(x)
  chain = keras.Model(inputs, keras.layers.Dense(2)(x), name="chain")
  a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
  inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.BatchNormalization()],
                           name="inner")
  inner.trainable = False
  merged = keras.layers.Concatenate()([inner(a), inner(b)])  # a shared nested model
  two = keras.Model([a, b], keras.layers.Dense(1)(merged), name="two")
  for model, sample in ((chain, np.zeros((1, 20, 8), np.float32)),
                        (two, (np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float32)))):
    module, _ = from_keras(model)
    table = summary(module, sample, print_fn=None)
    rows = _rows(table)
    assert table.startswith(f'Model: "{model.name}"')
    assert [(r["name"], r["class"], r["params"]) for r in rows] == [
        (layer.name, type(layer).__name__, layer.count_params()) for layer in model.layers]
    assert _totals(table) == _keras_totals(model)
  assert [r["shape"] for r in _rows(summary(from_keras(chain)[0], np.zeros((1, 20, 8), np.float32),
                                            print_fn=None))] == [
      "(None, None, 8)", "(None, None, 4)", "(None, None, 10)", "(None, None, 2)"]
  assert "Connected to" not in summary(from_keras(chain)[0], np.zeros((1, 20, 8), np.float32), print_fn=None)
  assert _rows(summary(from_keras(two)[0], (np.zeros((1, 3)), np.zeros((1, 3))), print_fn=None))[2]["connected"] \
      == "a[0][0], b[0][0]"


# Any module.

class _Block(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = Convolution(4, (3, 3), batch_norm=True, name="conv")(x)
    return nn.Dense(2, name="proj")(x)


class _Net(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = _Block(name="block")(x)
    return Dense(3, name="head")(x.reshape(x.shape[0], -1))


def test_any_module_one_row_per_layer():
  table = summary(_Net(), jnp.zeros((2, 5, 5, 1)), print_fn=None)
  assert table.startswith('Model: "_Net"')
  rows = [(r["name"], r["class"], r["shape"], r["params"]) for r in _rows(table)]
  assert rows == [("block", "_Block", "(None, 5, 5, 2)", 40 + 16 + 10),  # a block: its layers below it
                  ("conv", "Convolution", "(None, 5, 5, 4)", 40 + 16),  # one row, not one more for its flax Conv
                  ("proj", "Dense", "(None, 5, 5, 2)", 10),
                  ("head", "Dense", "(None, 3)", 153)]
  assert "\n|   conv (Convolution) " in table  # indented below its block
  assert _totals(table) == [219, 211, 8]


def test_name_and_print_fn():
  printed = []
  table = summary(Dense(4, batch_norm=True), jnp.zeros((2, 3)), name="head", print_fn=printed.append)
  assert printed == [table] and table.startswith('Model: "head"')
  assert [(r["name"], r["class"], r["shape"]) for r in _rows(table)] == [
      ("dense", "Dense", "(None, 4)"), ("batch_normalization", "BatchNorm", "(None, 4)")]
  assert _totals(table) == [32, 24, 8]  # 12 + 4 + BN 4 x 4, moving statistics non-trainable
  assert summary(Dense(4), jnp.zeros((1, 3)), print_fn=None).startswith('Model: "Dense"')
