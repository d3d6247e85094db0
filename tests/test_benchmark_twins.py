"""The benchmark's Keras twins are the same models as the jaxcomponents side (else the ratios would mislead)."""

import jax
import pytest

from benchmarks import families
from jaxcomponents.weights import load_keras
from tests.helpers import assert_close, randomize_keras


@pytest.mark.parametrize("name", ["dense", "conv", "conv_transpose", "separable_conv", "depthwise_conv", "lstm",
                                  "gru", "simple_rnn", "unet", "attention_unet", "mnist_cnn"])
def test_keras_twin_is_the_same_model(name):
  """With the Keras twin's weights, the jaxcomponents model computes the same outputs: same architecture."""
  family = families.get(name)
  size = family.sizes["tiny"]
  keras_model = families.resolve(family.keras)(size)
  randomize_keras(keras_model, scale=0.2)
  model = families.resolve(family.jaxcomponents)(size)
  x, _ = families.synthetic_batch(family, size)
  variables = load_keras(model, keras_model, x)
  assert_close(jax.jit(model.apply)(variables, x), keras_model.predict_on_batch(x))
