"""Dense against keras Dense -> BatchNormalization -> Activation -> Dropout."""

import jax
import keras
import numpy as np
import pytest

from jaxcomponents.layers import Dense
from jaxcomponents.weights import load_keras
from tests.helpers import assert_close, random_input, randomize_keras

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)


def keras_dense(in_shape, units, activation=None, use_bias=True, batch_norm=False, dropout=0.0):
  layers = [keras.Input(in_shape), keras.layers.Dense(units, use_bias=use_bias)]
  if batch_norm:
    layers.append(keras.layers.BatchNormalization())
  layers.append(keras.layers.Activation(activation or "linear"))
  if dropout:
    layers.append(keras.layers.Dropout(dropout))
  model = keras.Sequential(layers)
  randomize_keras(model)
  return model


@pytest.mark.parametrize(
    "in_shape,activation,use_bias,batch_norm,dropout",
    [
        ((6,), None, True, False, 0.0),
        ((6,), "relu", False, True, 0.5),
        ((6,), "softmax", True, True, 0.0),
        ((4, 6), "gelu", True, False, 0.25),
        ((2, 3, 6), "selu", True, True, 0.0),
    ],
)
def test_inference_matches_keras(in_shape, activation, use_bias, batch_norm, dropout):
  model = keras_dense(in_shape, 5, activation, use_bias, batch_norm, dropout)
  layer = Dense(5, activation=activation, use_bias=use_bias, batch_norm=batch_norm, dropout=dropout)
  x = random_input((3, *in_shape))
  variables = load_keras(layer, model, x)
  assert_close(layer.apply(variables, x), model(x, training=False))


def test_training_updates_batch_stats_like_keras():
  model = keras_dense((6,), 5, "relu", batch_norm=True)
  layer = Dense(5, activation="relu", batch_norm=True)
  x = random_input((16, 6))
  variables = load_keras(layer, model, x)
  y, updates = layer.apply(variables, x, train=True, mutable=["batch_stats"])
  keras_y = model(x, training=True)
  assert_close(y, keras_y)
  bn = model.layers[1]
  stats = updates["batch_stats"]["batch_normalization"]
  assert_close(stats["mean"], bn.moving_mean, tol=1e-6)
  assert_close(stats["var"], bn.moving_variance, tol=1e-6)


def test_dropout_only_in_training():
  layer = Dense(32, dropout=0.5)
  x = random_input((4, 8))
  variables = layer.init(jax.random.key(0), x)
  rngs = {"dropout": jax.random.key(1)}
  inference = layer.apply(variables, x, train=False, rngs=rngs)
  np.testing.assert_array_equal(inference, layer.apply(variables, x))
  trained = np.asarray(layer.apply(variables, x, train=True, rngs=rngs))
  dropped = trained == 0.0
  assert 0.3 < dropped.mean() < 0.7
  np.testing.assert_allclose(trained[~dropped], 2.0 * np.asarray(inference)[~dropped], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(features=0), r"features=0 is not allowed; expected a positive integer"),
        (dict(), r"features=None is not allowed; expected a positive integer"),
        (dict(features=3, dropout=1.0), r"dropout=1.0 is not allowed; expected a float in \[0, 1\)"),
        (dict(features=3, activation="rectified"), r"activation='rectified' is not allowed"),
    ],
)
def test_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    Dense(**kwargs).init(jax.random.key(0), np.ones((2, 3), np.float32))


def test_bad_input_rank():
  with pytest.raises(ValueError, match=r"x has shape \(3,\) \(rank 1\); expected rank >= 2"):
    Dense(2).init(jax.random.key(0), np.ones((3,), np.float32))
