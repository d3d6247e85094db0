"""`jaxcomponents.Model` against `keras.Model`: a Keras script ported by changing the model line.

Each test builds a random Keras model, converts it with `from_keras`, and runs the same script on both
(`shuffle=False`): the same `History`, the same callback calls with the same indices and batch logs, the same
evaluate/predict results and the same trained weights.
"""

import csv
import json
import os
import re

import jax
import jax.numpy as jnp
import keras
import numpy as np
import optax
import pytest
from orbax.checkpoint import v1 as ocp_v1

from jaxcomponents import Model, callbacks, load_model, losses, metrics, optimizers
from jaxcomponents.training.checkpoint import CheckpointError
from jaxcomponents.training.step import resolve_loss
from jaxcomponents.weights import from_keras
from tests.helpers import random_input, randomize_keras

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)

RECORDED = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
            "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
            "on_predict_begin", "on_predict_end", "on_predict_batch_begin")
INDEXED = ("on_epoch_", "on_train_batch_", "on_test_batch_", "on_predict_batch_")


def recorder(base):
  """A callback of `base` (Keras's or ours) that records each hook call: (hook, index, logs at that moment)."""

  def hook(name):
    def record(self, *args, **kwargs):
      indexed = name.startswith(INDEXED)
      logs = kwargs.get("logs", args[1] if indexed and len(args) > 1 else args[0] if not indexed and args else None)
      self.calls.append((name, args[0] if indexed else None, None if logs is None else dict(logs)))
    return record

  def __init__(self):
    base.__init__(self)
    self.calls = []

  return type("Recorder", (base,), {"__init__": __init__, **{name: hook(name) for name in RECORDED}})


def assert_calls_equal(ours, theirs, rtol=1e-4):
  assert [(name, index) for name, index, _ in ours] == [(name, index) for name, index, _ in theirs]
  for (name, index, got), (_, _, want) in zip(ours, theirs):
    assert (got is None) == (want is None), (name, index, got, want)  # Keras hands {} where it has no logs
    got, want = got or {}, want or {}
    assert list(got) == list(want), (name, index)
    for key in want:
      np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=1e-6, err_msg=f"{name}({index}) {key}")


def assert_history_equal(ours, theirs, rtol=1e-4):
  assert list(ours.history) == list(theirs.history)
  for key, values in theirs.history.items():
    np.testing.assert_allclose(ours.history[key], values, rtol=rtol, atol=1e-6, err_msg=key)
  assert ours.epoch == theirs.epoch and ours.params == theirs.params


def assert_weights_equal(model, keras_model, tol=1e-4):
  _, expected = from_keras(keras_model)
  for got, want in zip(jax.tree.leaves(model.variables), jax.tree.leaves(expected)):
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def assert_runs_equal(ours, theirs, model, keras_model):
  """Two runs' `(history, evaluate's result)`: the same history and result, and the same trained weights."""
  assert_history_equal(ours[0], theirs[0])
  np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-4)
  assert_weights_equal(model, keras_model)


def small_cnn(seed=0, outputs=5, activation="softmax"):
  model = keras.Sequential([
      keras.Input((8, 8, 2)),
      keras.layers.Conv2D(6, 3, use_bias=False),  # no bias before batch norm: see test_training_keras.py
      keras.layers.BatchNormalization(),
      keras.layers.Activation("relu"),
      keras.layers.MaxPooling2D(2),
      keras.layers.Flatten(),
      keras.layers.Dense(outputs, activation=activation),
  ])
  randomize_keras(model, seed=seed, scale=0.3)
  return model


def pair(keras_model):
  """The Keras model and its jaxcomponents twin (same weights)."""
  module, variables = from_keras(keras_model)
  return Model(module, variables)


def data(n, seed, classes=5):
  return random_input((n, 8, 8, 2), seed=seed), np.random.default_rng(seed).integers(0, classes, n)


def test_a_ported_keras_script_gives_kerass_history_callbacks_and_results():
  keras_model = small_cnn()
  model = pair(keras_model)
  (x, y), (xv, yv) = data(40, 1), data(20, 2)  # batches of 16: the last training batch has 8 examples

  def script(m, cb, optimizer):
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    record = recorder(cb.Callback)()
    seen = []
    schedule = cb.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)
    lam = cb.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append((epoch, dict(logs))))
    history = m.fit(x, y, batch_size=16, epochs=3, validation_data=(xv, yv), shuffle=False, verbose=0,
                    callbacks=[record, schedule, lam])
    return history, record.calls, seen, m.evaluate(xv, yv, batch_size=8, verbose=0), m.predict(xv, verbose=0)

  ours = script(model, callbacks, optimizers.get("sgd", learning_rate=0.1, momentum=0.9))
  theirs = script(keras_model, keras.callbacks, keras.optimizers.SGD(0.1, momentum=0.9))
  assert_history_equal(ours[0], theirs[0])
  assert "learning_rate" in ours[0].history and ours[0].model is model
  assert_calls_equal(ours[1], theirs[1])
  assert [epoch for epoch, _ in ours[2]] == [0, 1, 2]
  for (_, got), (_, want) in zip(ours[2], theirs[2]):
    assert list(got) == list(want) and np.allclose(list(got.values()), list(want.values()), rtol=1e-4)
  np.testing.assert_allclose(ours[3], theirs[3], rtol=1e-4)
  np.testing.assert_allclose(ours[4], theirs[4], rtol=1e-4, atol=1e-6)
  assert_weights_equal(model, keras_model)


def test_kerass_metric_objects_and_metrics_built_from_the_first_batch_train_and_evaluate_as_keras():
  """F1/FBeta and R2 take their state's shape from the first batch, as Keras builds them: the same logs in a
  grouped fit (steps_per_execution) and in an evaluate whose last batch is padded."""
  keras_model = small_cnn(seed=23, outputs=3, activation="sigmoid")
  model = pair(keras_model)
  rng = np.random.default_rng(24)
  x, xv = random_input((20, 8, 8, 2), seed=25), random_input((10, 8, 8, 2), seed=26)
  y, yv = rng.integers(0, 2, (20, 3)).astype(np.float32), rng.integers(0, 2, (10, 3)).astype(np.float32)

  def script(m, optimizer, watch=lambda m: None):
    m.compile(optimizer=optimizer, loss="binary_crossentropy", steps_per_execution=2, metrics=[
        keras.metrics.F1Score(average="macro", threshold=0.5, name="f1"), keras.metrics.FBetaScore(beta=2.0, name="f2"),
        keras.metrics.R2Score(name="r2"), keras.metrics.BinaryIoU(target_class_ids=[1], name="iou"),
        keras.metrics.PrecisionAtRecall(0.5, num_thresholds=20, name="p_at_r")])
    watch(m)
    history = m.fit(x, y, batch_size=8, epochs=2, validation_data=(xv, yv), shuffle=False, verbose=0)
    return history, m.evaluate(xv, yv, batch_size=4, verbose=0, return_dict=True)

  seen = []  # the metric states' shapes at each grouped call: built before it, so one shape and one compilation

  def watch(m):
    scan = m.train_step.scan
    object.__setattr__(m.train_step, "scan", lambda state, batches: seen.append(
        jax.tree.map(np.shape, state.metrics)) or scan(state, batches))

  ours = script(model, optimizers.get("sgd", learning_rate=0.1), watch)
  theirs = script(keras_model, keras.optimizers.SGD(0.1))
  assert len(seen) == 2 and seen[0] == seen[1] == jax.tree.map(np.shape, model.state.metrics)
  assert seen[0]["f1"]["true_positives"] == (3,) and seen[0]["r2"]["sum"] == (3,)
  assert_history_equal(ours[0], theirs[0])
  assert list(ours[1]) == list(theirs[1])
  for key, want in theirs[1].items():
    np.testing.assert_allclose(ours[1][key], want, rtol=1e-4, atol=1e-6, err_msg=key)
  assert_weights_equal(model, keras_model)


def test_our_metric_objects_are_logged_by_kerass_default_names():
  keras_model = small_cnn(seed=36, outputs=3, activation="sigmoid")
  model = pair(keras_model)
  x, y = random_input((16, 8, 8, 2), seed=37), np.random.default_rng(38).integers(0, 2, (16, 3)).astype(np.float32)
  ours, theirs = ([get("auc"), get("r2_score"), get("binary_iou")] for get in (metrics.get, lambda name: {
      "auc": keras.metrics.AUC, "r2_score": keras.metrics.R2Score, "binary_iou": keras.metrics.BinaryIoU}[name]()))
  for m, listed in ((model, ours), (keras_model, theirs)):
    m.compile(optimizer="sgd", loss="binary_crossentropy", metrics=listed)
  got = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
  want = keras_model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
  assert list(got) == ["auc", "binary_io_u", "loss", "r2_score"]  # sorted, as Keras's evaluate returns them
  assert [re.sub(r"_\d+$", "", key) for key in want] == list(got)  # Keras numbers repeated names
  np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=1e-4, atol=1e-6)


def test_layers_get_layer_and_trainable_as_kerass_transfer_learning_script():
  """Freezing a layer (a batch norm too: it then runs on its moving statistics) and the whole model, each
  followed by compile as Keras requires: the same layers, weights, trainable weights and training."""
  keras_model = small_cnn(seed=27)
  model = pair(keras_model)
  x, y = data(24, 28)

  conv, batch_norm, *_, dense = [layer.name for layer in keras_model.layers]

  def script(m, optimizer):
    names = [layer.name for layer in m.layers]
    m.get_layer(conv).trainable = False
    m.get_layer(index=1).trainable = False  # the batch norm
    m.compile(optimizer=optimizer(), loss="sparse_categorical_crossentropy")
    counts = (len(m.trainable_weights), len(m.non_trainable_weights), len(m.layers[1].trainable_weights),
              len(m.layers[1].non_trainable_weights), m.get_layer(dense).count_params())
    history = m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    m.trainable = False
    flags = [layer.trainable for layer in m.layers]
    m.trainable = True
    m.get_layer(dense).set_weights([w * 0.5 for w in m.get_layer(dense).get_weights()])
    m.compile(optimizer=optimizer(), loss="sparse_categorical_crossentropy")
    return names, counts, history, flags, m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)

  ours = script(model, lambda: optimizers.get("sgd", learning_rate=0.1))
  theirs = script(keras_model, lambda: keras.optimizers.SGD(0.1))
  assert ours[0] == theirs[0] and len(ours[0]) == 6  # a Sequential lists no InputLayer
  assert ours[1] == theirs[1] and ours[3] == theirs[3] == [False] * 6
  assert_history_equal(ours[2], theirs[2])
  assert_history_equal(ours[4], theirs[4])
  assert_weights_equal(model, keras_model)
  for got, want in zip(model.get_layer(batch_norm).get_weights(), keras_model.get_layer(batch_norm).get_weights()):
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_freezing_a_nested_model_freezes_its_layers_as_keras():
  base = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4), keras.layers.BatchNormalization()])
  inputs = keras.Input((6,))
  keras_model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(base(inputs)))
  randomize_keras(keras_model, seed=31, scale=0.3)
  model = pair(keras_model)
  x, y = random_input((16, 6), seed=32), np.random.default_rng(33).integers(0, 3, 16)

  def script(m, optimizer):
    m.get_layer(base.name).trainable = False
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return [layer.name for layer in m.layers], len(m.trainable_weights), m.fit(
        x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)

  ours = script(model, optimizers.get("sgd", learning_rate=0.1))
  theirs = script(keras_model, keras.optimizers.SGD(0.1))
  assert ours[0] == theirs[0] and len(ours[0]) == 3  # a Functional lists its InputLayer
  assert ours[1] == theirs[1] == 2
  assert model.layers[0].get_weights() == [] and not model.get_layer(base.name).trainable
  assert_history_equal(ours[2], theirs[2])
  assert_weights_equal(model, keras_model)


def test_a_fit_with_gradient_accumulation_steps_as_keras():
  keras_model = small_cnn(seed=34)
  model = pair(keras_model)
  x, y = data(40, 35)  # 5 batches of 8 an epoch: updates after batches 2 and 4, then across the epochs

  def script(m, optimizer):
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)

  ours = script(model, optimizers.get("adam", learning_rate=0.01, gradient_accumulation_steps=2))
  theirs = script(keras_model, keras.optimizers.Adam(0.01, gradient_accumulation_steps=2))
  assert_history_equal(ours, theirs)
  assert_weights_equal(model, keras_model)
  assert model.optimizer.learning_rate == pytest.approx(0.01)
  assert model.optimizer.iterations == int(keras_model.optimizer.iterations) == 5  # updates, not batches


def test_a_fit_with_use_ema_ends_on_the_average_as_keras():
  """The weights train as usual and are set to their moving average when `fit` ends (a frozen layer's too
  stay as they are), as Keras's `finalize_variable_values` sets them."""
  keras_model = small_cnn(seed=39)
  model = pair(keras_model)
  x, y = data(32, 40)

  def script(m, optimizer):
    m.layers[0].trainable = False
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0), m.evaluate(x, y, verbose=0)

  ours = script(model, optimizers.get("sgd", learning_rate=0.1, momentum=0.9, use_ema=True, ema_momentum=0.8))
  theirs = script(keras_model, keras.optimizers.SGD(0.1, momentum=0.9, use_ema=True, ema_momentum=0.8))
  assert_runs_equal(ours, theirs, model, keras_model)
  # Training goes on from the average (Keras's own second fit fails here on the JAX backend): the weights set to
  # it are copies, so the donated state holds no buffer twice.
  before = model.get_weights()
  assert np.isfinite(model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history["loss"]).all()
  assert not np.array_equal(model.get_weights()[-1], before[-1])


def test_a_fit_and_evaluate_with_the_ctc_loss_as_keras():
  inputs = keras.Input((7, 3))
  keras_model = keras.Model(inputs, keras.layers.Dense(5)(keras.layers.GRU(6, return_sequences=True)(inputs)))
  randomize_keras(keras_model, seed=41, scale=0.5)
  model = pair(keras_model)
  rng = np.random.default_rng(42)
  x, y = random_input((12, 7, 3), seed=43), rng.integers(1, 5, (12, 3))
  y[np.arange(3)[None] >= rng.integers(1, 4, (12, 1))] = 0  # label sequences of 1 to 3, padded with the blank

  def script(m, optimizer):
    m.compile(optimizer=optimizer, loss="ctc")
    return m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0), m.evaluate(x, y, batch_size=5, verbose=0)

  ours = script(model, optimizers.get("adam", learning_rate=0.01))
  theirs = script(keras_model, keras.optimizers.Adam(0.01))
  assert_runs_equal(ours, theirs, model, keras_model)


def test_a_fit_and_padded_evaluate_with_the_circle_loss_as_keras():
  """Circle compares each example with the batch's others and leaves zero losses out of the mean: an evaluate
  whose last batch is padded compares only the real examples."""
  inputs = keras.Input((6,))
  keras_model = keras.Model(inputs, keras.layers.UnitNormalization()(keras.layers.Dense(4)(inputs)))
  randomize_keras(keras_model, seed=51, scale=0.5)
  model = pair(keras_model)
  x, y = random_input((14, 6), seed=52), np.random.default_rng(53).integers(0, 3, 14)

  def script(m, optimizer):
    m.compile(optimizer=optimizer, loss=keras.losses.Circle(gamma=20.0))
    return m.fit(x, y, batch_size=7, epochs=2, shuffle=False, verbose=0), m.evaluate(x, y, batch_size=5, verbose=0)

  ours = script(model, optimizers.get("sgd", learning_rate=0.05))
  theirs = script(keras_model, keras.optimizers.SGD(0.05))
  assert_runs_equal(ours, theirs, model, keras_model)


def test_kerass_loss_and_optimizer_objects_compile_as_the_keras_model_does():
  keras_model = small_cnn(seed=44, activation="linear")
  model = pair(keras_model)
  x, y = data(24, 45)

  def script(m):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5)
    m.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.5, clipnorm=1.0),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0), m.evaluate(x, y, batch_size=5, verbose=0)

  ours, theirs = script(model), script(keras_model)
  assert_runs_equal(ours, theirs, model, keras_model)
  assert resolve_loss(keras.losses.MeanSquaredError(reduction="sum")).reduction == "sum"  # kept whole
  assert resolve_loss(keras.losses.MeanSquaredError()).reduction == "none"  # the step's per-example mean

  class Own(keras.losses.Loss):  # a Keras class of the user's own: no counterpart to read its config into
    def call(self, y_true, y_pred):
      return keras.ops.mean(y_pred, axis=-1)

  with pytest.raises(ValueError, match=r"the Keras class Own has no jaxcomponents counterpart to read its config "
                                       r"into; pass a function \(y_true, y_pred\) -> per-example losses"):
    model.compile(optimizer="sgd", loss=Own())


@pytest.mark.parametrize("swap_on_epoch", [False, True])
def test_swap_ema_weights_validates_and_ends_as_keras(swap_on_epoch):
  keras_model = small_cnn(seed=46)
  model = pair(keras_model)
  (x, y), (xv, yv) = data(32, 47), data(16, 48)

  def script(m, cb, optimizer):
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    swap = cb.SwapEMAWeights(swap_on_epoch=swap_on_epoch)
    history = m.fit(x, y, batch_size=8, epochs=3, validation_data=(xv, yv), shuffle=False, verbose=0,
                    callbacks=[swap])
    # After swap_on_epoch, Keras's own evaluate with the callback fails on the JAX backend (its averages' buffers
    # were donated): compared without it there.
    swapped = [] if swap_on_epoch else [m.evaluate(xv, yv, batch_size=8, verbose=0, callbacks=[swap])]
    return history, *swapped, m.evaluate(xv, yv, verbose=0)

  ours = script(model, callbacks, optimizers.get("adam", learning_rate=0.01, use_ema=True, ema_momentum=0.7))
  theirs = script(keras_model, keras.callbacks, keras.optimizers.Adam(0.01, use_ema=True, ema_momentum=0.7))
  assert_history_equal(ours[0], theirs[0])
  np.testing.assert_allclose(ours[1:], theirs[1:], rtol=1e-4)
  assert_weights_equal(model, keras_model)


def test_swap_ema_weights_predicts_on_the_average_and_swaps_back():
  model = pair(small_cnn(seed=49))
  x, y = data(16, 50)
  model.compile(optimizer=optimizers.get("sgd", learning_rate=0.1, use_ema=True, ema_momentum=0.5),
                loss="sparse_categorical_crossentropy")
  model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[callbacks.SwapEMAWeights()])
  raw = model.get_weights()
  swapped = optimizers.swap_ema(model.state.opt_state, model.state.params)[1]
  want = Model(model.module, {**model.variables, "params": swapped}).predict(x, verbose=0)
  np.testing.assert_allclose(model.predict(x, verbose=0, callbacks=[callbacks.SwapEMAWeights()]), want, rtol=1e-6)
  assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), raw))
  model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
  with pytest.raises(ValueError, match=r"SwapEMAWeights must be used when `use_ema=True` is set on the optimizer"):
    model.evaluate(x, y, verbose=0, callbacks=[callbacks.SwapEMAWeights()])


def test_layer_errors_and_a_stale_compile_are_named_as_keras_names_them():
  model = pair(small_cnn(seed=29))
  with pytest.raises(ValueError, match=rf"No such layer: conv\. Existing layers are: \['{model.layers[0].name}', "):
    model.get_layer("conv")
  with pytest.raises(ValueError, match=r"Was asked to retrieve layer at index 6 but model only has 6 layers"):
    model.get_layer(index=6)
  with pytest.raises(ValueError, match=r"Provide either a layer name or layer index"):
    model.get_layer()
  dense = model.layers[-1]
  with pytest.raises(ValueError, match=rf"set_weights got 1 arrays; layer '{dense.name}' has 2 weights"):
    dense.set_weights([np.zeros((54, 5))])
  model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
  dense.trainable = False
  with pytest.raises(RuntimeError, match=r"a layer's trainable flag changed since compile\(\): call compile\(\) "
                                         r"again before fit"):
    model.fit(*data(8, 30), verbose=0)
  with pytest.raises(ValueError, match=r"trainable=0 is not allowed; expected True or False"):
    model.trainable = 0
  keras_model = small_cnn(seed=55)
  for m in (pair(keras_model), keras_model):  # a model not trainable trains no layer, whatever the layer's flag
    m.trainable = False
    m.layers[-1].trainable = True
    assert m.layers[-1].trainable and len(m.trainable_weights) == 0 and len(m.non_trainable_weights) == 7


def test_each_fit_call_reads_its_data_from_the_first_batch_as_keras():
  keras_model = small_cnn(seed=6)
  model = pair(keras_model)
  (x, y), (x2, y2) = data(32, 7), data(24, 8)

  def script(m, optimizer):
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    m.train_on_batch(x[:8], y[:8])
    first = m.fit(x, y, batch_size=8, epochs=1, steps_per_epoch=3, shuffle=False, verbose=0)
    return first, m.fit(x2, y2, batch_size=8, epochs=2, shuffle=False, verbose=0)

  ours = script(model, optimizers.get("sgd", learning_rate=0.1))
  theirs = script(keras_model, keras.optimizers.SGD(0.1))
  for got, want in zip(ours, theirs):
    assert_history_equal(got, want)
  assert_weights_equal(model, keras_model)


_SCCE = {"class_name": "SparseCategoricalCrossentropy", "config": {"from_logits": True}}


@pytest.mark.parametrize("task", ["segment", "classify"])
@pytest.mark.parametrize("options", [{"ignore_class": 0}, {"reduction": "sum"},
                                     {"reduction": "mean_with_sample_weight"}],
                         ids=["ignore_class", "sum", "mean_with_sample_weight"])
def test_a_compiled_losss_reduction_and_ignore_class_train_as_keras(task, options):
  loss = dict(_SCCE, config={**_SCCE["config"], **options})
  if task == "segment":  # per-pixel losses; Keras takes no per-example weights for them
    keras_model = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, padding="same")])
    randomize_keras(keras_model, seed=9, scale=0.3)
    x, y = random_input((20, 6, 6, 2), seed=10), np.random.default_rng(10).integers(0, 3, (20, 6, 6))
    weights = {}
  else:
    keras_model = small_cnn(seed=9, activation=None)
    (x, y), weights = data(20, 10), {"sample_weight": np.linspace(0.5, 2.0, 20)}
  model = pair(keras_model)  # batches of 8: the last one is padded here, short in Keras

  def script(m, loss_object, optimizer):
    m.compile(optimizer=optimizer, loss=loss_object)
    history = m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, **weights)
    return history, m.evaluate(x, y, batch_size=8, verbose=0)

  ours = script(model, losses.get(loss), optimizers.get("sgd", learning_rate=0.05))
  theirs = script(keras_model, keras.losses.deserialize(loss), keras.optimizers.SGD(0.05))
  assert_runs_equal(ours, theirs, model, keras_model)


@pytest.mark.parametrize("loss", ["dice", "tversky", "binary_focal_crossentropy", "categorical_focal_crossentropy"])
def test_kerass_batch_and_focal_losses_train_and_evaluate_as_keras(loss):
  keras_model = small_cnn(seed=23, activation="sigmoid")
  model = pair(keras_model)
  x, labels = data(40, 24)
  y = np.eye(5, dtype=np.float32)[labels]  # batches of 16: the last of 8, padded to 16 by evaluate

  def script(m, optimizer):
    m.compile(optimizer=optimizer, loss=loss)
    history = m.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    return history, m.evaluate(x, y, batch_size=16, verbose=0)

  ours = script(model, optimizers.get("sgd", learning_rate=0.5))
  theirs = script(keras_model, keras.optimizers.SGD(0.5))
  assert_runs_equal(ours, theirs, model, keras_model)


def test_kerass_confusion_count_and_loss_based_metrics_log_as_keras():
  keras_model = small_cnn(seed=25, outputs=1, activation="sigmoid")
  model = pair(keras_model)
  x, labels = data(40, 26, classes=2)
  y = labels[:, None].astype(np.float32)
  names = ["TruePositives", "false_negatives", "bce", "RootMeanSquaredError", "LogCoshError"]

  def script(m, optimizer):
    m.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=names)
    history = m.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, validation_data=(x[:24], y[:24]))
    return history, m.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)

  ours = script(model, optimizers.get("sgd", learning_rate=0.2))
  theirs = script(keras_model, keras.optimizers.SGD(0.2))
  assert_history_equal(ours[0], theirs[0])
  assert list(ours[1]) == list(theirs[1])
  np.testing.assert_allclose(list(ours[1].values()), list(theirs[1].values()), rtol=1e-4)


def test_a_compiled_loss_with_no_reduction_or_with_unsupported_arguments_is_refused():
  model = pair(small_cnn())
  with pytest.raises(ValueError, match=r"reduction=None leaves a loss per entry"):
    model.compile(optimizer="sgd", loss=losses.get("mse", reduction=None))
  with pytest.raises(ValueError, match=r"not allowed with loss_weights"):
    model.compile(optimizer="sgd", loss=losses.get("mse", reduction="sum"), loss_weights=2.0)


@pytest.mark.parametrize("case", ["class_weight", "sample_weight", "validation_split",
                                  "validation_split_own_batch_size", "numpy_scalars"])
def test_weights_and_validation_split_as_keras(case):
  keras_model = small_cnn(seed=3)
  model = pair(keras_model)
  x, y = data(48, 4)
  options = {"class_weight": dict(class_weight={0: 1.0, 1: 3.0, 2: 0.5, 3: 1.0, 4: 2.0}, validation_split=0.25),
             "sample_weight": dict(sample_weight=np.linspace(0.0, 2.0, 48), validation_data=data(12, 5)),
             "validation_split": dict(validation_split=0.3),
             # the held-out part is batched by validation_batch_size, which validation_steps counts
             "validation_split_own_batch_size": dict(validation_split=0.3, validation_batch_size=4, validation_steps=2),
             # as np.unique and array shapes give them
             "numpy_scalars": dict(class_weight={np.float64(c): w for c, w in enumerate([1.0, 3.0, 0.5, 1.0, 2.0])},
                                   batch_size=np.int64(16), epochs=np.int64(2))}[case]

  def script(m, optimizer):
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
              weighted_metrics=["accuracy"])
    return m.fit(x, y, **{"batch_size": 16, "epochs": 2, **options}, shuffle=False, verbose=0)

  ours = script(model, "adam")
  theirs = script(keras_model, "adam")
  assert_history_equal(ours, theirs)
  assert_weights_equal(model, keras_model)


def test_class_weight_on_a_model_with_two_outputs_is_refused_as_keras_refuses_it():
  inputs = keras.Input((4,))
  keras_model = keras.Model(inputs, [keras.layers.Dense(3, activation="softmax", name=n)(inputs) for n in "ab"])
  model = pair(keras_model)
  model.compile(optimizer="sgd", loss=["sparse_categorical_crossentropy"] * 2)
  x, y = random_input((6, 4)), np.arange(6) % 3
  for batch_size in (2, 6):  # 2: as many examples in a batch as outputs, once trained with wrong weights
    with pytest.raises(ValueError, match=r"class_weight is only supported for models with a single output"):
      model.fit(x, [y, y[::-1]], batch_size=batch_size, class_weight={0: 5.0, 1: 0.1}, verbose=0)
  single = pair(small_cnn())
  single.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
  with pytest.raises(ValueError, match=r"class_weight=\{0.5: 2.0\} is not allowed; expected a dict from class"):
    single.fit(*data(4, 0), class_weight={0.5: 2.0}, verbose=0)


@pytest.mark.parametrize("case", ["column", "per_timestep", "column_mean_with_sample_weight",
                                  "per_timestep_two_outputs"])
def test_sample_weights_of_a_column_or_one_per_timestep_as_keras(case):
  """Keras takes `sample_weight` as `(n,)`, `(n, 1)` or, for a sequence's losses `(n, T)`, one per time step."""
  inputs = keras.Input((5, 4))
  outputs = [keras.layers.Dense(3, activation="softmax", name=name)(inputs) for name in ("a", "b")]
  two = case.endswith("two_outputs")
  keras_model = keras.Model(inputs, outputs if two else outputs[0])
  randomize_keras(keras_model, seed=31, scale=0.5)
  model = pair(keras_model)
  rng = np.random.default_rng(32)
  x, y = rng.normal(size=(20, 5, 4)).astype(np.float32), rng.integers(0, 3, (20, 5))
  weight = rng.uniform(0.0, 2.0, (20, 1) if case.startswith("column") else (20, 5)).astype(np.float32)
  y = [y, y[:, ::-1]] if two else y
  results = []
  for m in (model, keras_model):
    loss = (keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight")
            if case.endswith("mean_with_sample_weight") else "sparse_categorical_crossentropy")
    m.compile(optimizer="sgd", loss=[loss, loss] if two else loss, loss_weights=[0.5, 2.0] if two else None,
              weighted_metrics=[["accuracy"], ["accuracy"]] if two else ["accuracy"])
    if two:  # Keras's fit and evaluate take one such array per output; its batch methods take one for all
      results.append([m.train_on_batch(x[:8], [t[:8] for t in y], sample_weight=weight[:8]),
                      m.test_on_batch(x[8:], [t[8:] for t in y], sample_weight=weight[8:])])
      continue
    history = m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, sample_weight=weight)
    results.append((history, m.evaluate(x, y, batch_size=8, sample_weight=weight, verbose=0),
                    m.train_on_batch(x[:4], y[:4], sample_weight=weight[:4])))
  if not two:
    assert_history_equal(results[0][0], results[1][0], rtol=1e-5)
  for ours, theirs in zip(results[0][-2:], results[1][-2:]):
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
  assert_weights_equal(model, keras_model, tol=1e-5)


def test_evaluate_predict_and_batch_methods_as_keras():
  keras_model = small_cnn(seed=6)
  model = pair(keras_model)
  x, y = data(20, 7)
  for m in (model, keras_model):
    m.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
  np.testing.assert_allclose(model.evaluate(x, y, batch_size=6, verbose=0),
                             keras_model.evaluate(x, y, batch_size=6, verbose=0), rtol=1e-5)
  ours, theirs = model.evaluate(x, y, verbose=0, return_dict=True), keras_model.evaluate(x, y, verbose=0,
                                                                                          return_dict=True)
  assert list(ours) == list(theirs) and np.allclose(list(ours.values()), list(theirs.values()), rtol=1e-5)
  np.testing.assert_allclose(model.predict_on_batch(x), keras_model.predict_on_batch(x), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(model.test_on_batch(x, y), keras_model.test_on_batch(x, y), rtol=1e-5)
  for _ in range(2):
    np.testing.assert_allclose(model.train_on_batch(x, y, sample_weight=np.linspace(0.5, 1.5, 20)),
                               keras_model.train_on_batch(x, y, sample_weight=np.linspace(0.5, 1.5, 20)),
                               rtol=1e-5)
  assert_weights_equal(model, keras_model, tol=1e-5)
  assert model.count_params() == keras_model.count_params()
  record_ours, record_theirs = recorder(callbacks.Callback)(), recorder(keras.callbacks.Callback)()
  model.predict(x, batch_size=8, verbose=0, callbacks=[record_ours])
  keras_model.predict(x, batch_size=8, verbose=0, callbacks=[record_theirs])
  assert [c[:2] for c in record_ours.calls] == [c[:2] for c in record_theirs.calls]


def test_early_stopping_restores_the_best_weights_as_keras():
  keras_model = small_cnn(seed=8)
  model = pair(keras_model)
  (x, y), (xv, yv) = data(32, 9), data(16, 10)

  def script(m, cb):
    m.compile(optimizer=keras.optimizers.SGD(0.5) if m is keras_model else optimizers.get("sgd", learning_rate=0.5),
              loss="sparse_categorical_crossentropy")
    stop = cb.EarlyStopping(monitor="val_loss", min_delta=10.0, patience=1, restore_best_weights=True)
    history = m.fit(x, y, batch_size=16, epochs=5, validation_data=(xv, yv), shuffle=False, verbose=0,
                    callbacks=[stop])
    return history, stop

  (ours, stop), (theirs, keras_stop) = script(model, callbacks), script(keras_model, keras.callbacks)
  assert_history_equal(ours, theirs)
  assert len(ours.epoch) == 2 and stop.stopped_epoch == keras_stop.stopped_epoch == 1
  assert stop.best_epoch == keras_stop.best_epoch == 0
  assert_weights_equal(model, keras_model)  # both hold the weights of epoch 0


def test_monitors_without_their_log_warn_and_train_on_and_a_named_metric_object_tells_its_direction_as_keras(
    tmp_path):
  keras_model = small_cnn(seed=12)
  model = pair(keras_model)
  (x, y), (xv, yv) = data(32, 13), data(16, 14)

  def script(m, cb, folder):
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
              metrics=[keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")])
    no_log = [cb.EarlyStopping(), cb.ReduceLROnPlateau(patience=1, verbose=2),  # val_loss: no validation data
              cb.ModelCheckpoint(str(tmp_path / folder / "m-{epoch}.weights.h5"), save_best_only=True,
                                 save_weights_only=True)]
    history = m.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=no_log)
    # "top2" tells no direction by its name: the metric's own (an accuracy) does
    stop = cb.EarlyStopping(monitor="val_top2", patience=0, min_delta=1.0)
    stopped = m.fit(x, y, batch_size=8, epochs=4, validation_data=(xv, yv), shuffle=False, verbose=0,
                    callbacks=[stop])
    return history, stopped, stop

  with pytest.warns(UserWarning, match=r"EarlyStopping monitor='val_loss' names no log of this run; the logs will be "
                                       r"\['learning_rate', 'loss', 'top2'\]"):
    ours = script(model, callbacks, "ours")
  theirs = script(keras_model, keras.callbacks, "keras")
  for a, b in zip(ours[:2], theirs[:2]):
    assert_history_equal(a, b)
  assert ours[2].mode == "max" and ours[2].stopped_epoch == theirs[2].stopped_epoch == 1
  assert sorted(os.listdir(tmp_path / "ours")) == sorted(os.listdir(tmp_path / "keras")) == [
      "m-1.weights.h5", "m-2.weights.h5", "m-3.weights.h5"]  # saved at every epoch, as Keras saves them
  with pytest.raises(ValueError, match=r"EarlyStopping\(monitor='val_score', mode='auto'\) cannot tell whether "
                                       r"'val_score' should be minimised or maximised"):
    model.fit(x, y, epochs=1, verbose=0, validation_data=(xv, yv), callbacks=[callbacks.EarlyStopping("val_score")])


def test_reduce_lr_terminate_on_nan_and_csv_logger_as_keras(tmp_path):
  keras_model = small_cnn(seed=11)
  model = pair(keras_model)
  x, y = data(48, 12)
  x_bad = x.copy()
  x_bad[20:] = np.nan  # the loss turns NaN at batch 1

  def script(m, cb, name):
    m.compile(optimizer=keras.optimizers.SGD(0.1) if m is keras_model else optimizers.get("sgd", learning_rate=0.1),
              loss="sparse_categorical_crossentropy")
    reduce = cb.ReduceLROnPlateau("val_loss", factor=0.5, patience=0, min_delta=1.0)
    log = cb.CSVLogger(str(tmp_path / f"{name}.csv"))
    history = m.fit(x, y, batch_size=16, epochs=3, validation_split=0.25, shuffle=False, verbose=0,
                    callbacks=[reduce, log])
    record = recorder(cb.Callback)()
    nan = m.fit(x_bad, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                callbacks=[cb.TerminateOnNaN(), record])
    return history, nan, record.calls

  ours, theirs = script(model, callbacks, "ours"), script(keras_model, keras.callbacks, "keras")
  assert_history_equal(ours[0], theirs[0])
  assert ours[0].history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05])  # the rate each epoch trained with
  with open(tmp_path / "ours.csv") as f, open(tmp_path / "keras.csv") as g:
    got, want = list(csv.reader(f)), list(csv.reader(g))
  assert got[0] == want[0] and len(got) == len(want) == 4
  np.testing.assert_allclose(np.asarray(got[1:], float), np.asarray(want[1:], float), rtol=1e-4)
  assert [c[:2] for c in ours[2]] == [c[:2] for c in theirs[2]]  # stopped after the first NaN batch
  assert list(ours[1].history) == list(theirs[1].history) == ["loss"]
  assert np.isnan(ours[1].history["loss"]).all() and np.isnan(theirs[1].history["loss"]).all()


def test_fit_reads_datasets_grain_and_a_subclass_that_overrides_epoch():
  import grain

  from jaxcomponents.data import ArrayDataset

  keras_model = small_cnn(seed=13)
  model = pair(keras_model)
  model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
  x, y = data(32, 14)

  class Reversed(ArrayDataset):
    """Overrides the documented `epoch()`: fit must read it, batches in reverse."""

    read = 0

    def epoch(self, index, start=0):
      Reversed.read += 1
      return reversed(list(super().epoch(index, start)))

  model.fit(Reversed(x, y, batch_size=16, shuffle=False), epochs=2, verbose=0)
  assert Reversed.read == 2
  keras_model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
  for _ in range(2):
    keras_model.fit(x[16:], y[16:], batch_size=16, epochs=1, shuffle=False, verbose=0)
    keras_model.fit(x[:16], y[:16], batch_size=16, epochs=1, shuffle=False, verbose=0)
  assert_weights_equal(model, keras_model)
  batches = grain.MapDataset.source([(x[i:i + 16], y[i:i + 16]) for i in (0, 16)])
  history = model.fit(batches, epochs=1, verbose=0)
  assert len(history.history["loss"]) == 1
  np.testing.assert_allclose(model.evaluate(batches, verbose=0), model.evaluate(x, y, batch_size=16, verbose=0),
                             rtol=1e-6)


def test_steps_per_epoch_past_the_data_reads_it_once_an_epoch_as_keras():
  keras_model = small_cnn(seed=14)
  model = pair(keras_model)
  x, y = data(30, 15)  # 4 batches of 8

  def script(m, optimizer):
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return m.fit(x, y, batch_size=8, epochs=3, steps_per_epoch=6, shuffle=False, verbose=0)

  with pytest.warns(UserWarning, match=r"steps_per_epoch=6 is more than the 4 batches"):
    ours = script(model, optimizers.get("sgd", learning_rate=0.1))
  theirs = script(keras_model, keras.optimizers.SGD(0.1))
  assert_history_equal(ours, theirs)
  assert_weights_equal(model, keras_model)
  with pytest.warns(UserWarning, match=r"steps_per_epoch=3 does not divide the 4 batches"):
    model.fit(x, y, batch_size=8, epochs=1, steps_per_epoch=3, verbose=0)


def test_steps_per_execution_groups_steps_and_batch_hooks_as_keras():
  keras_model = small_cnn(seed=18)
  model = pair(keras_model)
  (x, y), (xv, yv) = data(60, 19), data(20, 20)  # 8 training batches of 8 (the last of 4): groups of 3, 3 and 2

  def script(m, cb, optimizer):
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
              steps_per_execution=3)
    record = recorder(cb.Callback)()
    history = m.fit(x, y, batch_size=8, epochs=2, validation_data=(xv, yv), shuffle=False, verbose=0,
                    callbacks=[record])
    evaluated = m.evaluate(xv, yv, batch_size=8, verbose=0, callbacks=[record])
    return history, record.calls, evaluated, m.predict(xv, batch_size=8, verbose=0, callbacks=[record])

  ours = script(model, callbacks, optimizers.get("sgd", learning_rate=0.1))
  theirs = script(keras_model, keras.callbacks, keras.optimizers.SGD(0.1))
  assert model.steps_per_execution == keras_model.steps_per_execution == 3
  assert_history_equal(ours[0], theirs[0])
  assert_calls_equal(ours[1], theirs[1])
  assert [index for name, index, _ in ours[1] if name == "on_train_batch_end"] == [2, 5, 8] * 2
  np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-4)
  np.testing.assert_allclose(ours[3], theirs[3], rtol=1e-4, atol=1e-6)
  assert_weights_equal(model, keras_model)


def test_steps_per_execution_runs_whole_groups_as_one_call_with_the_updates_of_one_call_each():
  x, y = data(64, 21)
  trained = []
  for steps_per_execution in (1, 4):
    model = pair(small_cnn(seed=22))
    model.compile(optimizer=optimizers.get("adam"), loss="sparse_categorical_crossentropy",
                  steps_per_execution=steps_per_execution)
    calls = []
    scan = model.train_step.scan
    object.__setattr__(model.train_step, "scan", lambda state, batches: calls.append(len(batches)) or scan(
        state, batches))
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert calls == ([] if steps_per_execution == 1 else [4, 4, 4, 4])
    trained.append((history.history["loss"], model.variables))
  np.testing.assert_allclose(trained[0][0], trained[1][0], rtol=1e-5)
  for got, want in zip(jax.tree.leaves(trained[1][1]), jax.tree.leaves(trained[0][1])):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_fit_with_no_epoch_left_still_calls_on_train_begin_and_end_as_keras():
  keras_model = small_cnn(seed=16)
  model = pair(keras_model)
  x, y = data(8, 17)

  def script(m, cb):
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    record = recorder(cb.Callback)()
    history = m.fit(x, y, batch_size=8, epochs=2, initial_epoch=2, verbose=0, callbacks=[record])
    return history, record.calls

  ours, theirs = script(model, callbacks), script(keras_model, keras.callbacks)
  assert_calls_equal(ours[1], theirs[1])
  assert ours[0].history == theirs[0].history == {} and ours[0].params == theirs[0].params


def _top_probability(y_true, y_pred):
  return y_pred.max(axis=-1)


def test_metric_objects_and_functions_in_compile_log_under_their_names_as_keras():
  keras_model = small_cnn(seed=12)
  model = pair(keras_model)
  x, y = data(24, 13)
  from jaxcomponents import metrics  # pylint: disable=import-outside-toplevel

  def script(m, accuracy):
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=[accuracy, _top_probability])
    return m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=callbacks.History()
                 if m is model else keras.callbacks.History())

  ours = script(model, metrics.get("sparse_categorical_accuracy"))
  theirs = script(keras_model, keras.metrics.SparseCategoricalAccuracy())
  assert_history_equal(ours, theirs)
  with pytest.raises(ValueError, match=r"metrics='accuracy' is not allowed; expected a list, tuple or dict"):
    model.compile(optimizer="sgd", loss="mse", metrics="accuracy")


def test_the_optimizer_is_named_and_counts_its_updates_as_kerass():
  keras_model = small_cnn(seed=30)
  model = pair(keras_model)
  x, y = data(24, 31)
  for optimizer in ("adamw", "RMSprop", "sgd"):
    for m in (model, keras_model):
      m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
      m.fit(x, y, batch_size=8, epochs=2, verbose=0)
    keras_name = re.sub(r"_\d+$", "", keras_model.optimizer.name)  # Keras numbers a name's repeats in a process
    assert (model.optimizer.name, model.optimizer.iterations) == (keras_name, int(keras_model.optimizer.iterations))
  assert [w.shape for w in model.trainable_variables] == [tuple(w.shape) for w in keras_model.trainable_variables]
  assert [w.shape for w in model.non_trainable_variables] == [
      tuple(w.shape) for w in keras_model.non_trainable_variables]


def test_errors_name_what_is_allowed():
  model = Model(pair(small_cnn()).module)
  x, y = data(8, 1)
  with pytest.raises(ValueError, match=r"must call `compile\(\)`"):  # Keras's type (and RuntimeError, as before)
    model.fit(x, y)
  with pytest.raises(RuntimeError, match=r"must call `compile\(\)`"):
    model.evaluate(x, y)
  for options, message in ((dict(loss="nope"), "loss='nope' is not allowed"),
                           (dict(loss="mse", metrics=["nope"]), "metrics='nope' is not allowed"),
                           (dict(loss="mse", optimizer="nope"), "optimizer='nope' is not allowed")):
    with pytest.raises(ValueError, match=message):  # the compile argument named, as Keras names it
      model.compile(**options)
  model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
  with pytest.raises(ValueError, match=r"fit: y=None is not allowed with x as arrays; expected the targets"):
    model.fit(x, verbose=0)
  with pytest.raises(ValueError, match=r"y=None is not allowed; expected the targets of x"):
    model.train_on_batch(x)
  model.fit(x, y, validation_data=[x, y], epochs=1, verbose=0)  # a list, as Keras takes it
  with pytest.raises(ValueError, match=r"class_weight and sample_weight are both given"):
    model.fit(x, y, class_weight={0: 1.0}, sample_weight=np.ones(8), verbose=0)
  from jaxcomponents.data import ArrayDataset  # pylint: disable=import-outside-toplevel
  with pytest.raises(ValueError, match=r"class_weight is given and the data's batches carry their own sample_weight"):
    model.fit(ArrayDataset(x, y, 4, sample_weight=np.ones((8, 1))), class_weight={0: 1.0}, verbose=0)
  with pytest.raises(ValueError, match=r"shuffle='batch' is not allowed; expected True or False"):
    model.fit(x, y, shuffle="batch", verbose=0)
  with pytest.raises(ValueError, match=r"validation_steps=-3 is not allowed; expected a positive integer"):
    model.fit(x, y, validation_data=(x, y), validation_steps=-3, verbose=0)
  # as Keras reads a step count of 0: every batch
  assert model.evaluate(x, y, batch_size=4, steps=0, verbose=0) == model.evaluate(x, y, batch_size=4, verbose=0)
  assert model.predict(x, batch_size=4, steps=0, verbose=0).shape == (8, 5)
  with pytest.raises(TypeError, match=r"x=str is not something the model can read; expected arrays"):
    model.fit("images/", y, verbose=0)
  with pytest.raises(ValueError, match=r"optimizer=3 is not allowed; expected a Keras optimizer name"):
    model.compile(optimizer=3, loss="mse")
  with pytest.raises(ValueError, match=r"validation_freq=0 is not allowed"):
    model.fit(x, y, validation_freq=0, verbose=0)
  with pytest.raises(TypeError, match=r"takes `state`, as jaxcomponents 0.1's callbacks did"):
    class Old(callbacks.Callback):
      def on_epoch_end(self, epoch, logs, state):
        pass
    model.fit(x, y, callbacks=[Old()], verbose=0)


def test_model_checkpoint_as_keras_and_the_files_round_trip(tmp_path):
  keras_model = small_cnn(seed=15)
  model = pair(keras_model)
  (x, y), (xv, yv) = data(32, 16), data(16, 17)

  def script(m, cb, folder):
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    best = cb.ModelCheckpoint(str(tmp_path / folder / "best-{epoch:02d}-{val_loss:.3f}.weights.h5"),
                              save_best_only=True, save_weights_only=True)
    every = cb.ModelCheckpoint(str(tmp_path / folder / "model-{epoch}.keras"), save_freq=3)
    legacy = cb.ModelCheckpoint(str(tmp_path / folder / "legacy-{epoch}.h5"))  # Keras's legacy whole-model file
    return m.fit(x, y, batch_size=8, epochs=3, validation_data=(xv, yv), shuffle=False, verbose=0,
                 callbacks=[best, every, legacy])

  assert_history_equal(script(model, callbacks, "ours"), script(keras_model, keras.callbacks, "keras"))
  assert sorted(os.listdir(tmp_path / "ours")) == sorted(os.listdir(tmp_path / "keras"))
  for name in os.listdir(tmp_path / "ours"):  # Keras reads our files into its model as its own
    if name.endswith(".keras") or name.startswith("legacy"):
      np.testing.assert_allclose(keras.models.load_model(tmp_path / "ours" / name).predict(xv, verbose=0),
                                 keras.models.load_model(tmp_path / "keras" / name).predict(xv, verbose=0),
                                 rtol=1e-4, atol=1e-6)
  last = sorted(n for n in os.listdir(tmp_path / "ours") if n.startswith("best"))[-1]
  twin = small_cnn(seed=99)
  twin.load_weights(tmp_path / "ours" / last)
  for name in ("model-3.keras", "legacy-3.h5"):
    reloaded = load_model(tmp_path / "ours" / name)
    np.testing.assert_allclose(reloaded.predict(xv, verbose=0), model.predict(xv, verbose=0), rtol=1e-6, atol=1e-7)
  for suffix in ("npz", "h5", "weights.h5"):
    fresh = Model(model.module, seed=5)  # the same architecture, its own initial weights
    fresh.build(x)
    model.save_weights(tmp_path / f"w.{suffix}")
    fresh.load_weights(tmp_path / f"w.{suffix}")
    np.testing.assert_allclose(fresh.predict(xv, verbose=0), model.predict(xv, verbose=0), rtol=1e-6, atol=1e-7)
  with pytest.raises(ValueError, match=r"filepath='m.npz' is not allowed with save_weights_only=False; "
                                       r"expected a name ending in .keras or .h5, or a folder name"):
    callbacks.ModelCheckpoint("m.npz")


def test_orbax_checkpoint_saves_the_steps_kerass_saves_holding_the_same_weights(tmp_path):
  keras_model = small_cnn(seed=21)
  model = pair(keras_model)
  (x, y), (xv, yv) = data(32, 22), data(16, 23)

  def script(m, cb, folder, epochs, **options):
    saver = cb.OrbaxCheckpoint(str(tmp_path / folder), **options)
    return m.fit(x, y, batch_size=8, epochs=epochs, validation_data=(xv, yv), shuffle=False, verbose=0,
                 callbacks=[saver])

  cases = {"epochs": dict(max_to_keep=None, save_on_background=False),
           "every3": dict(save_freq=3, max_to_keep=2),  # every 3 batches (4 an epoch), counted on from 12 batches
           # saves when val_loss rises: a decision by the monitor, taken as Keras takes it
           "best": dict(monitor="val_loss", mode="max", save_best_only=True, max_to_keep=None,
                        save_weights_only=True)}
  for m in (model, keras_model):
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
  for folder, options in cases.items():
    histories = [script(m, cb, f"{folder}-{who}", 4 if folder == "every3" else 3, **options)
                 for m, cb, who in ((model, callbacks, "ours"), (keras_model, keras.callbacks, "keras"))]
    assert_history_equal(*histories)
  for folder in cases:
    steps = sorted(os.listdir(tmp_path / f"{folder}-ours"), key=int)
    assert steps == sorted((n for n in os.listdir(tmp_path / f"{folder}-keras") if n.isdigit()), key=int), folder
    for step in steps:  # each checkpoint holds the weights Keras's holds (Keras's load_weights reads only the newest)
      model.load_weights(tmp_path / f"{folder}-ours" / step)
      saved = ocp_v1.load_checkpointables(tmp_path / f"{folder}-keras" / step, {"pytree": None})["pytree"]
      keras_model.set_state_tree(saved)
      assert_weights_equal(model, keras_model)
  assert sorted(os.listdir(tmp_path / "every3-ours"), key=int) == ["24", "27"]  # the optimizer's count goes on
  newest = load_model(tmp_path / "epochs-ours")  # architecture and weights of the newest: epoch 2
  model.load_weights(tmp_path / "epochs-ours" / "2")
  np.testing.assert_allclose(newest.predict(xv, verbose=0), model.predict(xv, verbose=0), rtol=1e-6, atol=1e-7)
  with pytest.raises(ValueError, match=r"holds no architecture \(only OrbaxCheckpoint saves one, unless "
                                       r"save_weights_only=True\)"):
    load_model(tmp_path / "best-ours")
  with pytest.raises(CheckpointError, match=r"cannot save checkpoint 0 in .*epochs-ours, which holds checkpoints "
                                            r"\[0, 1, 2\]: a number is saved once"):
    script(model, callbacks, "epochs-ours", 1, max_to_keep=None)

  class Fail(callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
      raise RuntimeError("stop")

  saver = callbacks.OrbaxCheckpoint(str(tmp_path / "failed"))
  with pytest.raises(RuntimeError, match="stop"):
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[saver, Fail()])
  assert os.listdir(tmp_path / "failed") == ["0"]  # written, and the folder given back for the next run:
  model.fit(x, y, batch_size=8, epochs=2, initial_epoch=1, verbose=0,
            callbacks=[callbacks.OrbaxCheckpoint(str(tmp_path / "failed"))])
  assert os.listdir(tmp_path / "failed") == ["1"]
  class Interrupt(callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      if self.model.state.step == 7:  # the backup of step 6 made: the rerun resumes in the second epoch's third batch
        raise KeyboardInterrupt

  resumed = Model(model.module, model.variables)
  resumed.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
  backup = callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=2)
  with pytest.raises(KeyboardInterrupt):
    resumed.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[backup, Interrupt()])
  every = callbacks.OrbaxCheckpoint(str(tmp_path / "resumed"), save_freq=1, save_weights_only=True, max_to_keep=None)
  resumed.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[backup, every])
  assert sorted(os.listdir(tmp_path / "resumed"), key=int) == ["7", "8"]  # numbered by the updates done
  with pytest.raises(ValueError, match=r"max_to_keep=0 is not allowed"):
    callbacks.OrbaxCheckpoint("runs", max_to_keep=0)
  with pytest.raises(ValueError, match=r"save_freq='batch' is not allowed; expected 'epoch' or a positive number"):
    callbacks.OrbaxCheckpoint("runs", save_freq="batch")


@pytest.mark.parametrize("save_freq, resumed_epochs", [("epoch", [2, 3]), (5, [1, 2, 3])])
def test_backup_and_restore_resumes_an_interrupted_run_where_it_stopped(tmp_path, save_freq, resumed_epochs):
  x, y = data(48, 18)  # 3 batches an epoch
  module, variables = from_keras(small_cnn(seed=19))

  def run(callbacks_=(), steps_per_execution=1):
    model = Model(module, variables)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=steps_per_execution)
    return model, model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=list(callbacks_))

  class Interrupt(callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      if self.model.state.step == 7:  # in the third epoch
        raise KeyboardInterrupt

  straight, _ = run()
  with pytest.raises(KeyboardInterrupt):
    run([callbacks.BackupAndRestore(tmp_path, save_freq), Interrupt()])
  resumed, history = run([callbacks.BackupAndRestore(tmp_path, save_freq)])
  # "epoch": epochs 0 and 1 were backed up; 5: the fifth step's state, in epoch 1, resumed at its third batch
  assert history.epoch == resumed_epochs
  for got, want in zip(jax.tree.leaves(resumed.variables), jax.tree.leaves(straight.variables)):
    np.testing.assert_array_equal(got, want)
  assert not [name for name in os.listdir(tmp_path) if name.isdigit()]  # a finished run deletes its backup
  if save_freq == 5:  # groups of 2 and 1 batches an epoch: saved after steps 5 and 11, and at the end (12)
    backup = callbacks.BackupAndRestore(tmp_path, save_freq, double_checkpoint=True, delete_checkpoint=False)
    run([backup], steps_per_execution=2)
    assert sorted(int(name) for name in os.listdir(tmp_path) if name.isdigit()) == [11, 12]  # the last two kept


def test_backup_and_restore_refuses_a_save_freq_keras_does_not_take(tmp_path):
  for save_freq in ("batch", 0, -2, True, 1.5):
    with pytest.raises(ValueError, match=r"save_freq=.* is not allowed; expected 'epoch', a positive number"):
      callbacks.BackupAndRestore(tmp_path, save_freq)


def test_get_weights_lists_kerass_order_and_summary_needs_no_build():
  base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None, alpha=0.35)
  image, sequence = keras.Input((32, 32, 3)), keras.Input((6, 4))
  shared = keras.layers.Dense(5, name="shared")  # called twice: its weights are listed once
  pooled = keras.layers.GlobalAveragePooling2D()(base(image))
  recurrent = keras.layers.Bidirectional(keras.layers.GRU(3))(sequence)
  attended = keras.layers.MultiHeadAttention(2, 4)(sequence, sequence)  # listed before the GRU, as Keras lists it
  keras_model = keras.Model([image, sequence], keras.layers.Concatenate()(
      [shared(pooled), shared(keras.layers.Dense(1280)(recurrent)), keras.layers.Flatten()(attended)]))
  randomize_keras(keras_model, seed=27)
  model = pair(keras_model)
  ours, theirs = model.get_weights(), keras_model.get_weights()
  assert [w.shape for w in ours] == [w.shape for w in theirs]
  for got, want in zip(ours, theirs):
    np.testing.assert_array_equal(got, want)
  model.set_weights([2 * w for w in theirs])
  for got, want in zip(model.get_weights(), theirs):
    np.testing.assert_array_equal(got, 2 * want)
  base.get_layer("Conv1").trainable = False  # a frozen layer inside a nested model
  model = pair(keras_model)
  for ours, theirs in ((model.trainable_weights, keras_model.trainable_weights),
                       (model.non_trainable_weights, keras_model.non_trainable_weights)):
    assert [w.shape for w in ours] == [tuple(w.shape) for w in theirs]
    for got, want in zip(ours, theirs):
      np.testing.assert_array_equal(got, np.asarray(want))
  lines = model.summary(print_fn=None).splitlines()  # the input shapes come from the Keras model, as in Keras
  assert lines[0] == f'Model: "{keras_model.name}"' and any("multi_head_attention" in line for line in lines)


def test_a_two_input_model_takes_a_list_or_a_dict_as_keras():
  a, b = keras.Input((6,), name="a"), keras.Input((4,), name="b")
  merged = keras.layers.Concatenate()([keras.layers.Dense(5, activation="tanh")(a), b])
  keras_model = keras.Model([a, b], keras.layers.Dense(3, activation="softmax")(merged))
  randomize_keras(keras_model, seed=20, scale=0.3)
  model = pair(keras_model)
  rng = np.random.default_rng(21)
  xa, xb, y = rng.normal(size=(36, 6)), rng.normal(size=(36, 4)), rng.integers(0, 3, 36)
  histories = []
  for m in (model, keras_model):
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    histories.append(m.fit([xa, xb], y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_split=0.25))
  assert_history_equal(*histories)
  np.testing.assert_allclose(model.predict({"a": xa, "b": xb}, verbose=0),
                             keras_model.predict({"a": xa, "b": xb}, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("form", ["dict", "list", "flat_list"])
def test_several_outputs_with_their_losses_weights_and_metrics_as_keras(form):
  x_in = keras.Input((6,), name="x")
  hidden = keras.layers.Dense(8, activation="relu")(x_in)
  outputs = [keras.layers.Dense(2, name="box")(hidden),
             keras.layers.Dense(3, activation="softmax", name="kind")(hidden)]
  keras_model = keras.Model(x_in, outputs)
  randomize_keras(keras_model, seed=22, scale=0.3)
  model = pair(keras_model)
  rng = np.random.default_rng(23)
  x, box, kind = rng.normal(size=(40, 6)), rng.normal(size=(40, 2)), rng.integers(0, 3, 40)
  if form == "dict":
    y, options = {"box": box, "kind": kind}, dict(
        loss={"box": "mse", "kind": "sparse_categorical_crossentropy"}, loss_weights={"box": 0.5, "kind": 2.0},
        metrics={"box": ["mae"], "kind": ["accuracy"]})
  elif form == "list":
    y, options = [box, kind], dict(loss=["mse", "sparse_categorical_crossentropy"], loss_weights=[0.5, 2.0],
                                   metrics=[["mae"], ["accuracy"]],
                                   weighted_metrics=[["mae", "mse"], ["accuracy"]])  # box_weighted_mae, box_mse
  else:  # one metric per output, as Keras 3 reads a list as long as the outputs
    y, options = [box, kind], dict(loss=["mse", "sparse_categorical_crossentropy"], metrics=["mae", "accuracy"],
                                   weighted_metrics=["mse", "accuracy"])
  results = []
  for m in (model, keras_model):
    m.compile(optimizer="adam", **options)
    weights = np.linspace(0.5, 1.5, 40) if form == "list" else None  # Keras 3.15 fails on dict targets with them
    history = m.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, validation_split=0.25,
                    sample_weight=weights)
    results.append((history, m.evaluate(x, y, verbose=0), m.predict(x, verbose=0)))
  assert_history_equal(results[0][0], results[1][0])
  assert "box_loss" in results[0][0].history and "val_kind_accuracy" in results[0][0].history
  np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-4)  # in Keras's order: the metrics by name
  if form == "list":
    assert model.metrics_names == ["loss", "box_loss", "kind_loss", "box_mae", "box_mse", "box_weighted_mae",
                                   "kind_accuracy", "kind_weighted_accuracy"]
  if form == "flat_list":
    history = results[0][0].history
    assert sorted(history) == sorted(results[1][0].history) and "box_accuracy" not in history
    with pytest.raises(ValueError, match=r"metrics has 1 entries; the model has 2 outputs"):  # Keras refuses it too
      model.compile(optimizer="adam", loss=["mse", "sparse_categorical_crossentropy"], metrics=["mae"])
      model.evaluate(x, y, verbose=0)
  for got, want in zip(results[0][2], results[1][2]):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
  assert_weights_equal(model, keras_model)


@pytest.mark.parametrize("form", ["dict", "list", "list_of_lists", "list_weighted"])
def test_one_output_given_its_loss_by_name_or_in_a_list_as_keras(form):
  """A single-output model compiled with a one-entry dict (by output name) or list: the loss is computed on the
  whole output (it took the first example's), logged as Keras logs it (no `<output>_loss`, metrics by their own
  names)."""
  x_in = keras.Input((6,), name="x")
  keras_model = keras.Model(x_in, keras.layers.Dense(3, activation="softmax", name="kind")(
      keras.layers.Dense(8, activation="relu")(x_in)))
  randomize_keras(keras_model, seed=25, scale=0.3)
  model = pair(keras_model)
  rng = np.random.default_rng(26)
  x, y = rng.normal(size=(32, 6)), rng.integers(0, 3, 32)
  options = {"dict": dict(loss={"kind": "sparse_categorical_crossentropy"}, metrics={"kind": ["accuracy"]}),
             "list": dict(loss=["sparse_categorical_crossentropy"], metrics=["accuracy"]),
             "list_of_lists": dict(loss=["sparse_categorical_crossentropy"], metrics=[["accuracy"]],
                                   weighted_metrics=[["accuracy"]]),
             "list_weighted": dict(loss=["sparse_categorical_crossentropy"], loss_weights=2.0,
                                   metrics=["accuracy"])}[form]
  results = []
  for m in (model, keras_model):
    m.compile(optimizer="adam", **options)
    history = m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, sample_weight=np.linspace(0.5, 1.5, 32))
    results.append((history, m.evaluate(x, y, verbose=0, return_dict=True)))
  assert_history_equal(results[0][0], results[1][0])
  assert sorted(results[0][1]) == sorted(results[1][1])
  for name, value in results[1][1].items():
    np.testing.assert_allclose(results[0][1][name], value, rtol=1e-4, err_msg=name)
  assert_weights_equal(model, keras_model)
  histories = []
  for m in (model, keras_model):  # a metric given by name under its own name
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics={"accuracy": "accuracy"})
    histories.append(m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0))
  assert_history_equal(*histories)
  with pytest.raises(ValueError, match=r"loss names \['kinds'\], which are not outputs of the model; its outputs are "
                                       r"\['kind'\]"):
    model.compile(optimizer="adam", loss={"kinds": "mse"})


def test_a_loss_on_one_of_two_outputs_logs_as_keras():
  """Keras logs `<output>_loss` only where more than one output has a loss, and names a multi-output model's
  metrics after their output."""
  x_in = keras.Input((6,), name="x")
  hidden = keras.layers.Dense(8, activation="relu")(x_in)
  keras_model = keras.Model(x_in, [keras.layers.Dense(2, name="box")(hidden), keras.layers.Dense(3, name="kind")(
      hidden)])
  randomize_keras(keras_model, seed=27, scale=0.3)
  model = pair(keras_model)
  rng = np.random.default_rng(28)
  x, y = rng.normal(size=(24, 6)), [rng.normal(size=(24, 2)), rng.normal(size=(24, 3))]
  histories = []
  for m in (model, keras_model):
    m.compile(optimizer="sgd", loss=["mse", None], metrics=[["mae"], []])
    histories.append(m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0))
  assert_history_equal(*histories)
  assert list(histories[0].history) == ["box_mae", "loss"]


def test_summary_name_and_counts_as_keras():
  keras_model = small_cnn(seed=24)
  model = pair(keras_model)
  model.build(data(2, 25)[0])
  text = model.summary(print_fn=None)
  assert model.name == keras_model.name and f'Model: "{keras_model.name}"' in text
  assert f"Total params: {keras_model.count_params():,}" in text and model.count_params() == keras_model.count_params()
  assert Model(model.module, name="mine").name == "mine"


@pytest.mark.parametrize("loss,labels", [
    ("ce", "sparse"), ("CrossEntropy", "one_hot"), ("crossentropy", "binary"), ("CE", "sparse_column"),
    (keras.losses.SparseCategoricalCrossentropy, "sparse"), (keras.losses.Huber, "one_hot")])
def test_compile_reads_crossentropy_by_the_shapes_and_builds_keras_loss_classes_as_keras(loss, labels):
  """`loss="ce"` (any case) is binary, sparse or categorical cross-entropy as the shapes say; a Keras loss class
  is built with its defaults."""
  binary = labels == "binary"
  keras_model = small_cnn(seed=5, outputs=1 if binary else 5, activation="sigmoid" if binary else "softmax")
  model = pair(keras_model)
  x, y = data(12, 6)
  y = {"sparse": y, "sparse_column": y[:, None], "one_hot": np.eye(5)[y], "binary": (y % 2)[:, None]}[labels]
  results = []
  for m in (model, keras_model):
    m.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
    results.append((m.fit(x, y, batch_size=5, epochs=2, shuffle=False, verbose=0), m.evaluate(x, y, verbose=0)))
  assert_history_equal(results[0][0], results[1][0])
  np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-5)


def test_batch_logs_are_one_plain_dict_per_batch_as_keras_hands_them():
  """A callback may copy, change, merge and serialise a batch's logs, and the next callback sees its changes."""

  def script(m, base):
    class Annotate(base):
      def on_train_batch_end(self, batch, logs=None):
        logs["seen"] = float(batch)
        self.copied = [json.loads(json.dumps(logs | {"batch": batch})), logs.copy(), logs.pop("seen")]

      def on_test_batch_end(self, batch, logs=None):
        self.test_type = type(logs)

    class Read(base):
      def on_train_batch_end(self, batch, logs=None):
        self.after = dict(logs)

    first, second = Annotate(), Read()
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(*data(10, 1), batch_size=4, epochs=1, shuffle=False, verbose=0, validation_data=data(4, 2),
          callbacks=[first, second])
    return first, second

  keras_model = small_cnn(seed=9)
  ours, theirs = script(pair(keras_model), callbacks.Callback), script(keras_model, keras.callbacks.Callback)
  assert ours[0].test_type is dict and theirs[0].test_type is dict
  for got, want in zip(ours[0].copied + [ours[1].after], theirs[0].copied + [theirs[1].after]):
    if isinstance(want, dict):
      assert sorted(got) == sorted(want)
      np.testing.assert_allclose([got[k] for k in sorted(got)], [want[k] for k in sorted(want)], rtol=1e-4)
    else:
      assert got == want


@pytest.mark.parametrize("make", [
    lambda path: keras.callbacks.EarlyStopping(monitor="loss", min_delta=-0.5, patience=1, restore_best_weights=True),
    lambda path: keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0),
    lambda path: keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5),
    lambda path: keras.callbacks.CSVLogger(str(path / "log.csv"), separator=";"),
    lambda path: keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: logs.__setitem__("extra", 1.0)),
    lambda path: keras.callbacks.TerminateOnNaN(),
    lambda path: keras.callbacks.ModelCheckpoint(str(path / "best.weights.h5"), monitor="loss", save_best_only=True,
                                                 save_weights_only=True),
])
def test_kerass_own_callback_objects_run_as_in_keras(make, tmp_path):
  """A ported script keeps its `keras.callbacks...` line: each is read into its jaxcomponents twin."""
  keras_model = small_cnn(seed=11)
  model = pair(keras_model)
  x, y = data(12, 12)
  results = []
  for m, folder in ((model, tmp_path / "ours"), (keras_model, tmp_path / "theirs")):
    folder.mkdir()
    m.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    results.append(m.fit(x, y, batch_size=4, epochs=4, shuffle=False, verbose=0, callbacks=[make(folder)]))
    files = sorted(os.listdir(folder))
    results.append((files, [list(csv.reader(open(folder / f, newline=""), delimiter=";")) if f.endswith(".csv")
                            else None for f in files]))
  assert_history_equal(results[0], results[2])
  assert results[1][0] == results[3][0]
  for ours, theirs in zip(results[1][1], results[3][1]):
    if theirs is not None:
      assert ours[0] == theirs[0] and [row[-1] for row in ours] == [row[-1] for row in theirs]  # the NA column too
      np.testing.assert_allclose([float(v) for row in ours[1:] for v in row[:-1]],
                                 [float(v) for row in theirs[1:] for v in row[:-1]], rtol=1e-5)
  assert_weights_equal(model, keras_model)


def test_a_keras_callback_of_ones_own_is_refused_naming_what_to_subclass():
  class Mine(keras.callbacks.Callback):
    pass

  model = pair(small_cnn())
  model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
  with pytest.raises(ValueError, match=r"callbacks holds Mine, a keras.callbacks.Callback subclass: .* subclass "
                                       r"jaxcomponents.callbacks.Callback instead"):
    model.fit(*data(4, 0), verbose=0, callbacks=[Mine()])
  with pytest.raises(ValueError, match=r"keras.callbacks.TensorBoard, which has no jaxcomponents twin"):
    model.fit(*data(4, 0), verbose=0, callbacks=keras.callbacks.TensorBoard())


def test_a_keras_optimizer_config_compiles_and_the_learning_rate_reads_and_sets_before_the_model_is_built():
  module, _ = from_keras(small_cnn(seed=13))
  x, y = data(8, 14)
  set_early, given = Model(module, seed=3), Model(module, seed=3)
  set_early.compile(optimizer=keras.optimizers.serialize(keras.optimizers.SGD(0.05, name="my_sgd")),
                    loss="sparse_categorical_crossentropy")
  assert set_early.optimizer.name == "my_sgd" and set_early.state is None
  np.testing.assert_allclose(set_early.optimizer.learning_rate, 0.05)
  set_early.optimizer.learning_rate = 0.02  # as Keras, before anything is built
  np.testing.assert_allclose(set_early.optimizer.learning_rate, 0.02)
  given.compile(optimizer=optimizers.get("sgd", learning_rate=0.02), loss="sparse_categorical_crossentropy")
  for m in (set_early, given):
    m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
  np.testing.assert_allclose(set_early.optimizer.learning_rate, 0.02)
  for a, b in zip(jax.tree.leaves(set_early.variables), jax.tree.leaves(given.variables)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match=r"learning_rate='abc' is not allowed; expected a finite float >= 0"):
    given.optimizer.learning_rate = "abc"
  given.optimizer.learning_rate = given.optimizer.learning_rate * jnp.exp(-0.1)  # Keras's scheduler idiom
  np.testing.assert_allclose(given.optimizer.learning_rate, 0.02 * np.exp(-0.1), rtol=1e-6)
  given.optimizer.learning_rate = np.array(0.01)
  np.testing.assert_allclose(given.optimizer.learning_rate, 0.01)


def test_reading_the_learning_rate_before_the_model_is_built_changes_nothing():
  """Two partitions at two rates keep them when the rate was only read (the first one is what it reads)."""
  module, _ = from_keras(small_cnn(seed=17))
  model = Model(module, seed=1)
  labels = lambda params: jax.tree_util.tree_map_with_path(
      lambda path, _: "dense" if "dense" in jax.tree_util.keystr(path) else "rest", params)
  tx = optax.multi_transform({"dense": optimizers.get("sgd", learning_rate=0.5),
                              "rest": optimizers.get("sgd", learning_rate=0.1)}, labels)
  model.compile(optimizer=tx, loss="sparse_categorical_crossentropy")
  model.optimizer.learning_rate  # pylint: disable=pointless-statement
  model.fit(*data(4, 18), batch_size=4, epochs=1, verbose=0)
  assert sorted(optimizers.learning_rate_logs(model.state.opt_state).values()) == pytest.approx([0.1, 0.5])


def test_the_librarys_own_callbacks_leave_batch_logs_unread_and_ones_own_read_them_once(tmp_path, monkeypatch):
  """A run watched per batch only by the library's callbacks never waits for the device for the logs; a callback
  of one's own makes one read a batch, shared with the others."""
  from jaxcomponents.training import callbacks as callbacks_lib  # pylint: disable=import-outside-toplevel

  reads = []
  original = callbacks_lib.BatchLogs._read

  def counted(self):
    if self._values is None:
      reads.append(1)
    return original(self)

  monkeypatch.setattr(callbacks_lib.BatchLogs, "_read", counted)
  model = pair(small_cnn(seed=15))
  model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
  x, y = data(12, 16)
  ours = [callbacks.OrbaxCheckpoint(str(tmp_path / "ckpt")), callbacks.ModelCheckpoint(
      str(tmp_path / "m.weights.h5"), save_weights_only=True, monitor="loss"), callbacks.TensorBoard(
      str(tmp_path / "tb"), write_steps_per_second=True)]
  model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=ours)
  assert reads == []

  class Mine(callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      self.seen = logs

  model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[Mine(), Mine()])
  assert len(reads) == 3  # one read a batch, however many callbacks look
