"""Dense against keras Dense -> BatchNormalization -> Activation -> Dropout."""

import jax
import keras
import numpy as np
import pytest

from jaxcomponents.layers import Dense
from jaxcomponents.weights import load_keras
from tests.helpers import assert_close, assert_drawn_as, random_input, randomize_keras

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


def test_kernels_start_as_keras_initializes_them():
  """Keras's default `glorot_uniform` for Dense and the convolutions (Flax's default is `lecun_normal`), and
  EfficientNet's own initializers, as keras.applications gives them."""
  from flax import linen as nn

  from jaxcomponents.layers import Conv, DepthwiseConv
  from jaxcomponents.models.common import predictions
  from jaxcomponents.models.efficientnet import DENSE_INIT, EfficientNetB0

  key, glorot = jax.random.key(0), {"class_name": "GlorotUniform", "config": {}}
  dense = Dense(200).init(key, np.ones((1, 300), np.float32))["params"]["dense"]["kernel"]
  assert_drawn_as(dense, glorot)
  assert_drawn_as(Conv(64, (3, 3)).init(key, np.ones((1, 4, 4, 16), np.float32))["params"]["kernel"], glorot)
  depthwise = DepthwiseConv((5, 5), (1, 1), depth_multiplier=16).init(key, np.ones((1, 6, 6, 32), np.float32))
  assert_drawn_as(depthwise["params"]["depthwise_kernel"], glorot)

  class Head(nn.Module):  # a backbone's classifier: `classes`, `classifier_activation`, `precision_options`
    classes: int = 300
    classifier_activation: str = "softmax"
    precision_options = {}

    @nn.compact
    def __call__(self, x, kernel_init=None):
      return predictions(self, x) if kernel_init is None else predictions(self, x, kernel_init)

  features = np.ones((1, 200), np.float32)
  assert_drawn_as(Head().init(key, features)["params"]["predictions"]["kernel"], glorot)
  assert_drawn_as(Head().init(key, features, DENSE_INIT)["params"]["predictions"]["kernel"],
                   {"class_name": "VarianceScaling", "config": {"scale": 1 / 3, "mode": "fan_out",
                                                                "distribution": "uniform"}})
  stem = EfficientNetB0(include_top=False, taps=("stem_activation",)).init(key, np.ones((1, 32, 32, 3), np.float32))
  assert_drawn_as(stem["params"]["stem_conv"]["kernel"],  # 864 values: the looser moments still tell the kinds
                   {"class_name": "VarianceScaling", "config": {"scale": 2.0, "mode": "fan_out",
                                                                "distribution": "truncated_normal"}})


def test_a_weight_penalty_counts_once_however_often_the_layer_is_called():
  """Keras adds a weight's penalty once a step (`Layer.losses`), not once per call of the layer."""
  from flax import linen as nn

  from jaxcomponents.layers.activity import LOSSES, total_loss

  class Twice(nn.Module):
    @nn.compact
    def __call__(self, x):
      layer = Dense(3, bias_init="ones", kernel_regularizer="l1", bias_regularizer="l2")
      return layer(layer(x))

  x = np.ones((2, 3), np.float32)
  variables = Twice().init(jax.random.key(0), x)
  _, sown = Twice().apply(variables, x, mutable=[LOSSES])
  params = variables["params"]["Dense_0"]["dense"]
  expected = 0.01 * np.abs(params["kernel"]).sum() + 0.01 * np.square(params["bias"]).sum()
  np.testing.assert_allclose(total_loss(sown[LOSSES]), expected, rtol=1e-6)
  with pytest.raises(ValueError, match=r"kernel_regularizer='l3' is not allowed; expected one of 'l1'"):
    Dense(3, kernel_regularizer="l3").apply({"params": {"dense": params}}, x, mutable=[LOSSES])
