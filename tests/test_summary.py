"""`summary`: Keras's layer names, output shapes and parameter counts, totals equal to Keras's."""

import re

import jax.numpy as jnp
import keras
import numpy as np
import pytest

from jaxcomponents import models
from jaxcomponents.layers import Dense
from jaxcomponents.summary import summary

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
  rows = {m.group(1): (m.group(3), int(m.group(4).replace(",", ""))) for m in
          re.finditer(r"^(\S+) \((\w+)\)\s+(\(.*?\))\s+([\d,]+)$", table, flags=re.M)}
  for layer in reference.layers:
    if layer.weights:
      shape, count = rows[layer.name]
      assert count == layer.count_params(), layer.name
      assert shape == str((1, *layer.output.shape[1:])), layer.name
  trainable = sum(int(np.prod(w.shape)) for w in reference.trainable_weights)
  assert f"Total params: {reference.count_params():,}" in table
  assert f"Trainable params: {trainable:,}" in table
  assert f"Non-trainable params: {reference.count_params() - trainable:,}" in table


def test_summary_prints_through_print_fn():
  printed = []
  table = summary(Dense(4, batch_norm=True), jnp.zeros((2, 3)), print_fn=printed.append)
  assert printed == [table] and table.startswith('Model: "Dense"')
  assert "Total params: 32" in table and "Non-trainable params: 8" in table  # 12 + 4 + BN 4 x 4
