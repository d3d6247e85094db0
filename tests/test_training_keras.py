"""One full training step equals Keras's `train_on_batch` for the same weights and batch.

The convolution before batch norm has no bias: batch norm cancels that bias's gradient, and Adam or RMSprop
turn the float noise left in a zero gradient into full-size updates that no two implementations share.
"""

import flax.linen as nn
import jax
import keras
import numpy as np
import pytest

from jaxcomponents import optimizers, regularizers
from jaxcomponents.layers import Convolution, Dense
from jaxcomponents.training import TrainState, make_train_step
from jaxcomponents.weights import load_keras
from tests.helpers import assert_close, random_input, randomize_keras

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)


class SmallCNN(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    x = Convolution(6, 3, padding="VALID", use_bias=False, batch_norm=True, activation="relu", pool="max")(x, train)
    x = x.reshape((x.shape[0], -1))
    return Dense(5, activation="softmax")(x, train)


def keras_small_cnn(kernel_regularizer=None):
  model = keras.Sequential([
      keras.Input((8, 8, 2)),
      keras.layers.Conv2D(6, 3, use_bias=False, kernel_regularizer=kernel_regularizer),
      keras.layers.BatchNormalization(),
      keras.layers.Activation("relu"),
      keras.layers.MaxPooling2D(2),
      keras.layers.Flatten(),
      keras.layers.Dense(5, activation="softmax", kernel_regularizer=kernel_regularizer),
  ])
  randomize_keras(model, scale=0.3)
  return model


@pytest.mark.parametrize("optimizer,options", [("sgd", dict(learning_rate=0.1, momentum=0.9)),
                                               ("adam", dict(learning_rate=0.01)),
                                               ("rmsprop", dict(learning_rate=0.01, clipnorm=1.0))])
def test_one_step_equals_train_on_batch(optimizer, options):
  model = keras_small_cnn()
  x, y = random_input((16, 8, 8, 2)), np.arange(16) % 5
  module = SmallCNN()
  variables = load_keras(module, model, x)
  state = TrainState.create(module, optimizers.get(optimizer, **options), variables=variables)
  step = make_train_step("sparse_categorical_crossentropy")
  model.compile(optimizer=keras.optimizers.get({"class_name": optimizer, "config": options}),
                loss="sparse_categorical_crossentropy")
  for _ in range(2):
    state, metrics = step(state, {"x": x, "y": y})
    keras_loss = model.train_on_batch(x, y)
    state = step.reset(state)  # train_on_batch reports each batch's own loss
    assert_close(metrics["loss"], keras_loss, tol=1e-5)
  expected = load_keras(module, model, x)
  for got, want in zip(jax.tree.leaves({"params": state.params, "batch_stats": state.batch_stats}),
                       jax.tree.leaves(expected)):
    assert_close(got, want, tol=1e-5)


def test_l2_regularization_matches_keras():
  model = keras_small_cnn(keras.regularizers.l2(0.01))
  x, y = random_input((16, 8, 8, 2)), np.arange(16) % 5
  module = SmallCNN()
  variables = load_keras(module, model, x)
  state = TrainState.create(module, optimizers.get("sgd", learning_rate=0.1), variables=variables)
  penalty = regularizers.select(regularizers.l2(0.01), r"kernel$")
  state, _ = make_train_step("sparse_categorical_crossentropy", regularizer=penalty)(state, {"x": x, "y": y})
  model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
  model.train_on_batch(x, y)
  for got, want in zip(jax.tree.leaves(state.params), jax.tree.leaves(load_keras(module, model, x)["params"])):
    assert_close(got, want, tol=1e-5)
