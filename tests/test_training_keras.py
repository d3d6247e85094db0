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
from jaxcomponents.layers import Convolution, Dense, Recurrent
from jaxcomponents.data import ArrayDataset
from jaxcomponents.training import ReduceLROnPlateau, TrainState, fit, make_train_step
from jaxcomponents.weights import load_keras
from tests.helpers import assert_close, random_input, randomize_keras

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)


class SmallCNN(nn.Module):
  @nn.compact
  def __call__(self, x, *, train=False):
    x = Convolution(6, 3, padding="VALID", use_bias=False, batch_norm=True, activation="relu", pool="max")(
        x, train=train)
    x = x.reshape((x.shape[0], -1))
    return Dense(5, activation="softmax")(x, train=train)


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


def test_fit_with_class_weight_and_validation_split_equals_keras_fit():
  model = keras_small_cnn()
  x, y = random_input((64, 8, 8, 2)), np.random.default_rng(3).integers(0, 5, 64)
  class_weight = {0: 1.0, 1: 3.0, 2: 0.5, 3: 1.0, 4: 2.0}
  module = SmallCNN()
  state = TrainState.create(module, optimizers.get("sgd", learning_rate=0.1), variables=load_keras(module, model, x))
  state, history = fit(state, make_train_step("sparse_categorical_crossentropy"),
                       ArrayDataset(x, y, batch_size=16, shuffle=False), epochs=2, validation_split=0.25,
                       class_weight=class_weight, verbose=0)
  model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
  reference = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, validation_split=0.25,
                        class_weight=class_weight, verbose=0)
  assert int(state.step) == 2 * 3  # 48 training examples in batches of 16; the last 16 validate
  np.testing.assert_allclose(history.history["val_loss"], reference.history["val_loss"], rtol=1e-5)
  expected = load_keras(module, model, x)
  for got, want in zip(jax.tree.leaves({"params": state.params, "batch_stats": state.batch_stats}),
                       jax.tree.leaves(expected)):
    assert_close(got, want, tol=1e-5)


def test_class_weight_rounds_soft_labels_and_weighs_the_classes_it_leaves_out_1_as_keras():
  from jaxcomponents.training.loop import _class_weigher  # pylint: disable=import-outside-toplevel
  from keras.src.trainers.data_adapters.data_adapter_utils import class_weight_to_sample_weights
  for y in (np.array([0.2, 0.5, 0.7, 1.0, 0.0]), np.array([3, 1, 0, 1, 2]), np.eye(4)[[3, 1, 0, 2, 1]]):
    got = _class_weigher({1: 5.0, 3: 0.5})({"y": y})["sample_weight"]
    np.testing.assert_array_equal(got, class_weight_to_sample_weights(y, {1: 5.0, 3: 0.5}))


def test_class_weight_and_validation_split_errors():
  x, y = random_input((20, 8, 8, 2)), np.arange(20) % 5
  module = SmallCNN()
  state = TrainState.create(module, optimizers.get("sgd"), x[:1])
  step, data = make_train_step("sparse_categorical_crossentropy"), ArrayDataset(x, y, batch_size=4)
  for bad in ({1: -2.0}, {"a": 1.0}, {0: float("nan")}, [1.0, 2.0]):
    with pytest.raises(ValueError, match=r"class_weight=.* is not allowed; expected a dict from class indices "
                                         r"\(integers, or floats with integer values as np.unique gives them\) to "
                                         r"finite weights >= 0 \(a class it leaves out weighs 1.0, as in Keras\)"):
      fit(state, step, data, epochs=1, class_weight=bad, verbose=0)
  with pytest.raises(ValueError, match=r"validation_split=1.5 is not allowed; expected a float in \(0, 1\)"):
    fit(state, step, data, epochs=1, validation_split=1.5, verbose=0)
  with pytest.raises(ValueError, match=r"validation_split and validation_data are both given"):
    fit(state, step, data, epochs=1, validation_split=0.2, validation_data=data, verbose=0)


def test_reduce_lr_on_plateau_equals_keras_fit():
  model = keras_small_cnn()
  x, y = random_input((64, 8, 8, 2)), np.random.default_rng(4).integers(0, 5, 64)
  module = SmallCNN()
  state = TrainState.create(module, optimizers.get("sgd", learning_rate=0.1), variables=load_keras(module, model, x))
  options = dict(monitor="val_loss", factor=0.5, patience=1, min_delta=0.05, cooldown=1, min_lr=0.03)
  state, history = fit(state, make_train_step("sparse_categorical_crossentropy"),
                       ArrayDataset(x, y, batch_size=16, shuffle=False), epochs=6, validation_split=0.25,
                       callbacks=[ReduceLROnPlateau(**options)], verbose=0)
  model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
  reference = model.fit(x, y, batch_size=16, epochs=6, shuffle=False, validation_split=0.25, verbose=0,
                        callbacks=[keras.callbacks.ReduceLROnPlateau(**options)])
  assert len(set(reference.history["learning_rate"])) >= 3  # the case reduces, waits and stops at the floor
  np.testing.assert_allclose(history.history["learning_rate"], reference.history["learning_rate"], rtol=1e-7)
  np.testing.assert_allclose(history.history["val_loss"], reference.history["val_loss"], rtol=1e-5)
  expected = load_keras(module, model, x)
  for got, want in zip(jax.tree.leaves({"params": state.params, "batch_stats": state.batch_stats}),
                       jax.tree.leaves(expected)):
    assert_close(got, want, tol=1e-5)


KERAS_L1 = keras.regularizers.L1(0.2)  # made outside any trace: Keras keeps its factor as a tensor


class RegularizedCNN(nn.Module):
  @nn.compact
  def __call__(self, x, *, train=False):
    x = Convolution(6, 3, padding="VALID", activation="relu", pool="max", kernel_regularizer={
        "class_name": "L2", "config": {"l2": 0.05}}, bias_regularizer=KERAS_L1)(x, train=train)
    return Dense(5, activation="softmax", kernel_regularizer="l1l2")(x.reshape((x.shape[0], -1)), train=train)


class RegularizedRNN(nn.Module):
  @nn.compact
  def __call__(self, x, *, train=False):
    x = Recurrent(4, cell="gru", bidirectional="concat", kernel_regularizer="l2", recurrent_regularizer="l1",
                  bias_regularizer=regularizers.l2(0.5))(x, train=train)
    return Dense(5, activation="softmax")(x, train=train)


def keras_regularized(kind):
  if kind == "cnn":
    layers = [keras.Input((8, 8, 2)),
              keras.layers.Conv2D(6, 3, activation="relu", kernel_regularizer=keras.regularizers.L2(0.05),
                                  bias_regularizer=keras.regularizers.L1(0.2)),
              keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
              keras.layers.Dense(5, activation="softmax", kernel_regularizer=keras.regularizers.L1L2())]
  else:
    layers = [keras.Input((6, 3)),
              keras.layers.Bidirectional(keras.layers.GRU(4, kernel_regularizer="l2", recurrent_regularizer="l1",
                                                          bias_regularizer=keras.regularizers.L2(0.5))),
              keras.layers.Dense(5, activation="softmax")]
  model = keras.Sequential(layers)
  randomize_keras(model, scale=0.3)
  return model


@pytest.mark.parametrize("kind", ["cnn", "rnn"])
def test_layer_weight_regularizers_add_kerass_penalty_in_fit_and_evaluate(kind):
  """`kernel_regularizer`, `bias_regularizer` and `recurrent_regularizer` on the components: Keras's penalty of
  each weight (each direction's), once a step, in the trained and evaluated loss."""
  from jaxcomponents import Model

  keras_model = keras_regularized(kind)
  x = random_input((24, 8, 8, 2) if kind == "cnn" else (24, 6, 3))
  y = np.arange(24) % 5
  module = RegularizedCNN() if kind == "cnn" else RegularizedRNN()
  model = Model(module, load_keras(module, keras_model, x[:1]))
  results = []
  for m in (model, keras_model):
    m.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    history = m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    results.append((history.history["loss"], m.evaluate(x, y, verbose=0)))
  np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
  np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-5)
  for got, want in zip(jax.tree.leaves(model.variables), jax.tree.leaves(load_keras(module, keras_model, x[:1]))):
    assert_close(got, want, tol=1e-5)
  penalty = sum(float(np.asarray(v)) for v in keras_model.losses)
  assert penalty > 0.1 * results[1][1]  # the penalty is a good part of the loss compared
