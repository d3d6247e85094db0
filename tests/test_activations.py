"""Every activation in the table computes what Keras's activation of that name computes."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from jaxcomponents import activations
from jaxcomponents.keras import from_keras
from jaxcomponents.models.unet_blocks import KERAS_UNET_COLLECTION_ACTIVATIONS, activation_layer
from tests.helpers import assert_close


@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_matches_keras(name):
  x = np.linspace(-6.0, 6.0, 56, dtype=np.float32).reshape(7, 8)  # an even last axis: glu halves it
  expected = np.asarray(keras.activations.get(name)(x))
  assert_close(activations.get(name)(x), expected, tol=1e-6)


@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_gradients_at_the_kinks_equal_kerass(name):
  """Exactly at 0, +-0.5, +-1, +-3 and 6 (a zero-padded map meets relu6's kink) the gradients are Keras's too."""
  x = jnp.asarray([[-6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0, 7.0]], jnp.float32)
  expected = jax.grad(lambda v: keras.activations.get(name)(v).sum())(x)
  assert_close(jax.grad(lambda v: activations.get(name)(v).sum())(x), expected, tol=1e-6)


@pytest.mark.parametrize("config", [dict(max_value=6.0), dict(max_value=3.0), dict(negative_slope=0.1),
                                    dict(negative_slope=0.1, max_value=6.0), dict(threshold=1.0, max_value=6.0),
                                    dict(negative_slope=0.2, threshold=0.5)])
def test_the_relu_layers_values_and_gradients_equal_kerass(config):
  inputs = keras.Input((10,))
  model = keras.Model(inputs, keras.layers.ReLU(**config)(inputs))
  module, variables = from_keras(model)
  x = jnp.asarray([[-6.0, -3.0, -1.0, 0.0, 0.5, 1.0, 3.0, 6.0, 7.0, -0.5]], jnp.float32)
  assert_close(module.apply(variables, x), model(x), tol=1e-6)
  expected = jax.grad(lambda v: model(v).sum())(x)
  assert_close(jax.grad(lambda v: module.apply(variables, v).sum())(x), expected, tol=1e-6)


def test_none_is_linear_and_callables_pass_through():
  x = np.arange(3.0)
  np.testing.assert_array_equal(activations.get(None)(x), x)
  assert activations.get(np.tanh) is np.tanh


def test_unknown_name_lists_allowed_values():
  with pytest.raises(ValueError, match=r"activation='ReLu' is not allowed; expected one of .*'relu'"):
    activations.get("ReLu")


KERAS_UNET_COLLECTION_REFERENCES = {  # the Keras layer (or function) each keras-unet-collection spelling is
    "ReLU": lambda x: keras.layers.ReLU()(x), "LeakyReLU": lambda x: keras.layers.LeakyReLU()(x),
    "ELU": lambda x: keras.layers.ELU()(x), "Softmax": lambda x: keras.layers.Softmax()(x),
    "Sigmoid": keras.activations.sigmoid, "GELU": lambda x: keras.activations.gelu(x, approximate=True),
}


@pytest.mark.parametrize("name", sorted(KERAS_UNET_COLLECTION_ACTIVATIONS))
def test_keras_unet_collection_spellings_match_their_keras_layers(name):
  x = np.linspace(-6.0, 6.0, 56, dtype=np.float32).reshape(7, 8)  # an even last axis: glu halves it
  assert_close(activation_layer(name, "act")(x), np.asarray(KERAS_UNET_COLLECTION_REFERENCES[name](x)), tol=1e-6)


def test_the_spellings_that_differ_from_the_functions():
  x = np.linspace(-3.0, 3.0, 13, dtype=np.float32)
  assert not np.allclose(activation_layer("GELU", "act")(x), activations.get("gelu")(x), atol=1e-6)  # tanh vs exact
  assert not np.allclose(activation_layer("LeakyReLU", "act")(x), activations.get("leaky_relu")(x))  # 0.3 vs 0.2


@pytest.mark.parametrize("name", ["GELU", "ReLU", "LeakyReLU", "Snake"])
def test_keras_unet_collection_spellings_are_not_keras_activation_names(name):
  """Only the U-Net takes them: elsewhere "GELU" would silently be the tanh approximation, not Keras's "gelu"."""
  with pytest.raises(ValueError, match=rf"activation='{name}' is not allowed; expected one of 'linear', 'relu', .*"
                                       rf"'{name}' is keras-unet-collection's spelling .*UNet\(activation='{name}'\)"):
    activations.get(name)
  assert name not in activations.ACTIVATIONS
