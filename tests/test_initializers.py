"""Initializers by Keras's names, and the components' `kernel_init`, `recurrent_kernel_init`, `bias_init` and
`embedding_init`, against Keras 3's initializers and layers."""

import re

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from jaxcomponents import initializers
from jaxcomponents.layers import (Conv, Convolution, ConvLSTM2D, Dense, EinsumDense, Embedding, LSTMCell,
                                  MultiHeadAttention, Recurrent)
from tests.helpers import assert_drawn_as

KEY = jax.random.key(0)


@pytest.mark.parametrize("config, shape", [
    ({"class_name": "GlorotUniform", "config": {}}, (3, 3, 64, 96)),
    ({"class_name": "GlorotNormal", "config": {}}, (3, 3, 64, 96)),
    ({"class_name": "HeUniform", "config": {}}, (300, 200)),
    ({"class_name": "HeNormal", "config": {}}, (3, 3, 64, 96)),
    ({"class_name": "LecunUniform", "config": {}}, (5, 96, 64)),
    ({"class_name": "LecunNormal", "config": {}}, (300, 200)),
    ({"class_name": "VarianceScaling", "config": {"scale": 0.5, "mode": "fan_out", "distribution": "uniform"}},
     (3, 3, 64, 96)),
    ({"class_name": "VarianceScaling", "config": {"scale": 3.0, "mode": "fan_avg",
                                                  "distribution": "untruncated_normal"}}, (300, 200)),
    ({"class_name": "VarianceScaling", "config": {"mode": "fan_in", "distribution": "normal"}}, (300, 200)),
    ({"class_name": "RandomNormal", "config": {"mean": 1.0, "stddev": 0.2}}, (300, 200)),
    ({"class_name": "TruncatedNormal", "config": {"stddev": 0.3}}, (300, 200)),
    ({"class_name": "RandomUniform", "config": {"minval": -1.0, "maxval": 2.0}}, (300, 200)),
    ({"class_name": "RandomUniform", "config": {}}, (60000,)),
    ({"class_name": "HeNormal", "config": {}}, (60000,)),  # a 1-D shape: fan_in = its size, as Keras
])
def test_random_initializers_draw_what_keras_draws(config, shape):
  """The same distribution (spread, bound, kurtosis) as Keras's own draw of the same shape, by config and name."""
  assert_drawn_as(initializers.get(config)(KEY, shape), config)
  if not config["config"]:
    assert_drawn_as(initializers.get(config["class_name"])(KEY, shape), config)


@pytest.mark.parametrize("config, shape", [
    ({"class_name": "Zeros", "config": {}}, (3, 4)),
    ({"class_name": "Ones", "config": {}}, (2, 3, 4)),
    ({"class_name": "Constant", "config": {"value": -0.25}}, (3, 3, 2, 4)),
    ({"class_name": "Identity", "config": {"gain": 2.0}}, (3, 5)),
    ({"class_name": "Identity", "config": {}}, (4, 4)),
])
def test_constant_initializers_equal_kerass(config, shape):
  np.testing.assert_array_equal(initializers.get(config)(KEY, shape), keras.initializers.get(config)(shape))


@pytest.mark.parametrize("shape", [(6, 24), (3, 3, 8, 4), (24, 6)])
def test_orthogonal_is_orthogonal_with_kerass_gain_and_flattening(shape):
  """Keras's `Orthogonal(gain)`: the kernel flattened to (all but the last axis, the last axis) has orthogonal
  rows or columns (whichever are fewer) of norm `gain`."""
  flat = np.asarray(initializers.get({"class_name": "Orthogonal", "config": {"gain": 2.0}})(KEY, shape))
  flat = flat.reshape(-1, shape[-1])
  small = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
  np.testing.assert_allclose(small, 4.0 * np.eye(len(small)), atol=1e-5)
  keras_flat = np.asarray(keras.initializers.Orthogonal(gain=2.0, seed=0)(shape)).reshape(-1, shape[-1])
  np.testing.assert_allclose(np.linalg.norm(flat, axis=0), np.linalg.norm(keras_flat, axis=0), rtol=0.5)


def test_keras_objects_and_flax_initializers_are_taken():
  constant = initializers.get(keras.initializers.Constant(0.5), "kernel_init")
  np.testing.assert_array_equal(constant(KEY, (2,)), [0.5, 0.5])
  scaling = keras.initializers.VarianceScaling(2.0, "fan_out", "uniform")
  assert_drawn_as(initializers.get(scaling)(KEY, (300, 200)), keras.initializers.serialize(scaling))
  flax_init = jax.nn.initializers.ones
  assert initializers.get(flax_init) is flax_init


@pytest.mark.parametrize("identifier, message", [
    ("he_normall", r"kernel_init='he_normall' is not allowed; expected one of .*Did you mean 'he_normal'\?"),
    (3, r"kernel_init=3 is not allowed; expected an initializer name"),
    ({"class_name": "RandomNormal", "config": {"stdev": 1.0}},
     r"stdev=1.0 is not an argument of initializer 'random_normal'.*Did you mean stddev\?"),
    ({"class_name": "VarianceScaling", "config": {"mode": "fanin"}},
     r"mode='fanin' is not allowed; expected one of 'fan_in', 'fan_out', 'fan_avg'"),
    ({"class_name": "VarianceScaling", "config": {"scale": 0.0}}, r"scale=0.0 is not allowed; expected a finite"),
    (keras.initializers.HeNormal(seed=3), r"seed=3 is not allowed; expected None: initial values come from the "
                                          r"module's 'params' rng"),
])
def test_bad_initializers_are_named(identifier, message):
  with pytest.raises(ValueError, match=message):
    initializers.get(identifier, "kernel_init")


@pytest.mark.parametrize("name, shape", [("orthogonal", (5,)), ("identity", (3, 3, 2))])
def test_shapes_an_initializer_cannot_fill_are_refused(name, shape):
  with pytest.raises(ValueError, match=rf"shape={re.escape(repr(shape))} is not allowed with the {name} initializer"):
    initializers.get(name)(KEY, shape)


def _keras_weights(layer, input_shape):
  layer.build(input_shape)
  return {w.path.split("/")[-1]: np.asarray(w) for w in layer.weights}


def _params(module, x, path):
  params = module.init(KEY, x)["params"]
  for name in path:
    params = params[name]
  return {k: np.asarray(v) for k, v in params.items()}


CONSTANT = {"class_name": "Constant", "config": {"value": 0.3}}
BIAS = {"class_name": "Constant", "config": {"value": -0.2}}
RECURRENT = {"class_name": "Identity", "config": {"gain": 0.5}}
KERAS_NAMES = {"lstm": "lstm", "gru": "gru", "rnn": "simple_rnn"}


@pytest.mark.parametrize("case", ["dense", "conv", "transpose", "separable", "depthwise", "lstm", "gru",
                                  "gru_reset_before", "simple_rnn", "conv_lstm", "embedding"])
def test_components_start_from_the_initializers_given_as_keras_layers_do(case):
  """Each component's initializer fields fill its weights as the Keras layer's initializers fill them (exactly,
  with deterministic initializers): an LSTM's forget-gate bias stays ones under `unit_forget_bias`."""
  k_init, b_init = keras.initializers.get(CONSTANT), keras.initializers.get(BIAS)
  ours_init = {"kernel_init": CONSTANT, "bias_init": BIAS}
  recurrent = {**ours_init, "recurrent_kernel_init": RECURRENT}
  keras_recurrent = dict(kernel_initializer=k_init, recurrent_initializer=keras.initializers.get(RECURRENT),
                         bias_initializer=b_init)
  seq = np.ones((2, 5, 3), np.float32)
  image = np.ones((2, 6, 6, 3), np.float32)
  if case == "dense":
    theirs = _keras_weights(keras.layers.Dense(4, kernel_initializer=k_init, bias_initializer=b_init), (2, 3))
    ours = _params(Dense(4, **ours_init), seq[:, 0], ["dense"])
  elif case in ("conv", "transpose"):
    cls = keras.layers.Conv2D if case == "conv" else keras.layers.Conv2DTranspose
    theirs = _keras_weights(cls(4, 3, kernel_initializer=k_init, bias_initializer=b_init), image.shape)
    ours = _params(Convolution(4, 3, kind=case, **ours_init), image, [f"conv2d{'_transpose' * (case != 'conv')}"])
  elif case == "separable":
    theirs = _keras_weights(keras.layers.SeparableConv2D(4, 3, depthwise_initializer=k_init,
                                                         pointwise_initializer=k_init, bias_initializer=b_init),
                            image.shape)
    ours = _params(Convolution(4, 3, kind="separable", **ours_init), image, ["separable_conv2d"])
  elif case == "depthwise":
    theirs = _keras_weights(keras.layers.DepthwiseConv2D(3, depthwise_initializer=k_init, bias_initializer=b_init),
                            image.shape)
    ours = _params(Convolution(None, 3, kind="depthwise", **ours_init), image, ["depthwise_conv2d"])
    ours["kernel"] = ours.pop("depthwise_kernel")  # Keras 3's variable path; its files say depthwise_kernel
  elif case in ("lstm", "gru", "gru_reset_before", "simple_rnn"):
    cell = case.split("_reset")[0].replace("simple_rnn", "rnn")
    reset_after = case != "gru_reset_before"
    keras_cls = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}[cell]
    extra = {"reset_after": reset_after} if cell == "gru" else {}
    theirs = _keras_weights(keras_cls(4, **keras_recurrent, **extra), seq.shape)
    ours = _params(Recurrent(4, cell=cell, **extra, **recurrent), seq, [KERAS_NAMES[cell]])
  elif case == "conv_lstm":
    keras_recurrent["recurrent_initializer"] = keras.initializers.Constant(0.5)  # Identity takes 2-D weights only
    theirs = _keras_weights(keras.layers.ConvLSTM2D(4, 3, **keras_recurrent), (2, 5, 6, 6, 3))
    ours = _params(ConvLSTM2D(4, (3, 3), **{**recurrent, "recurrent_kernel_init": keras.initializers.Constant(0.5)}),
                   np.ones((2, 5, 6, 6, 3), np.float32), ["conv_lstm_cell"])
  else:
    theirs = _keras_weights(keras.layers.Embedding(10, 4, embeddings_initializer=k_init), (2, 5))
    ours = _params(Embedding(10, 4, embedding_init=CONSTANT), np.zeros((2, 5), np.int32), [])
  assert sorted(ours) == sorted(theirs)
  for name, value in theirs.items():
    np.testing.assert_array_equal(ours[name], value, err_msg=name)


def test_lstm_random_bias_is_drawn_per_gate_block_as_keras():
  """With `unit_forget_bias`, Keras draws the input gate's bias and the cell and output gates' apart (shapes
  `(units,)` and `(2 * units,)`): a fan-scaled bias initializer gives those blocks Keras's spread."""
  units = 3000
  bias = LSTMCell(units, bias_init="he_uniform").init(KEY, (jnp.zeros((1, units)),) * 2, jnp.ones((1, 2)))
  bias = np.asarray(bias["params"]["bias"])
  config = {"class_name": "HeUniform", "config": {}}
  assert_drawn_as(bias[:units], config)
  assert_drawn_as(bias[2 * units:], config)
  np.testing.assert_array_equal(bias[units:2 * units], 1.0)


def test_einsum_dense_counts_fans_over_its_equations_axes_as_keras():
  """Keras's `EinsumDense` gives a variance-scaling initializer the kernel's input and output axes."""
  layer = keras.layers.EinsumDense("ab,bcd->acd", output_shape=(16, 32), kernel_initializer="he_normal")
  theirs = _keras_weights(layer, (2, 64))["kernel"]
  ours = EinsumDense("ab,bcd->acd", output_shape=(16, 32), kernel_init="he_normal").init(KEY, jnp.ones((2, 64)))
  np.testing.assert_allclose(np.asarray(ours["params"]["kernel"]).std(), theirs.std(), rtol=0.05)
  mha = MultiHeadAttention(2, 8, kernel_init="zeros", bias_init="ones")
  params = mha.init(KEY, jnp.ones((1, 3, 4)), jnp.ones((1, 3, 4)))["params"]
  assert all(not np.asarray(p["kernel"]).any() and np.asarray(p["bias"]).all() for p in params.values())


def test_initializers_that_would_be_ignored_are_refused():
  with pytest.raises(ValueError, match=r"kernel_init='he_normal' is not allowed with a cell module"):
    Recurrent(cell=LSTMCell(4), kernel_init="he_normal").init(KEY, jnp.ones((1, 2, 3)))
  with pytest.raises(ValueError, match=r"bias_init='ones' is not allowed with conv=Conv"):
    Convolution(None, None, conv=Conv(4, (3, 3)), bias_init="ones").init(KEY, jnp.ones((1, 4, 4, 3)))
  with pytest.raises(ValueError, match=r"recurrent_kernel_init='orthogonall' is not allowed; expected one of"):
    Recurrent(4, recurrent_kernel_init="orthogonall").init(KEY, jnp.ones((1, 2, 3)))


def test_none_keras_classes_and_names_everywhere_as_keras():
  """None draws `glorot_uniform`, as Keras's `add_weight` does for a weight given no initializer (a bias included);
  a Keras class is built with its defaults, as Keras's `get` builds it; `Conv` takes names like the others."""
  layer = keras.layers.Dense(60000, bias_initializer=None)
  layer.build((2, 3))
  bias = Dense(60000, bias_init=None).init(KEY, jnp.ones((2, 3)))["params"]["dense"]["bias"]
  np.testing.assert_allclose(np.abs(np.asarray(bias)).max(), np.abs(np.asarray(layer.bias)).max(), rtol=0.01)
  np.testing.assert_allclose(np.asarray(bias).std(), np.asarray(layer.bias).std(), rtol=0.05)
  assert_drawn_as(initializers.get(keras.initializers.HeNormal)(KEY, (300, 200)),
                  {"class_name": "HeNormal", "config": {}})
  params = Conv(4, (3, 3), kernel_init="zeros", bias_init={"class_name": "Ones", "config": {}}).init(
      KEY, jnp.ones((1, 5, 5, 2)))["params"]
  assert not np.asarray(params["kernel"]).any() and np.asarray(params["bias"]).all()


def test_errors_name_the_field_and_the_value_as_given():
  with pytest.raises(ValueError, match=r"bias_init='orthogonal' cannot initialize a weight of shape \(3,\): shape="
                                       r"\(3,\) is not allowed with the orthogonal initializer"):
    Dense(3, bias_init="orthogonal").init(KEY, jnp.ones((1, 2)))
  with pytest.raises(ValueError, match=r"distribution='Uniformm' is not allowed; expected one of"):
    initializers.get({"class_name": "VarianceScaling", "config": {"distribution": "Uniformm"}})
  scaling = initializers.get({"class_name": "VarianceScaling", "config": {"distribution": "Uniform"}})
  assert_drawn_as(scaling(KEY, (300, 200)), {"class_name": "VarianceScaling", "config": {"distribution": "uniform"}})


def test_modules_given_config_dicts_stay_hashable():
  """Config dicts are held frozen: jit caches and Flax's transforms key on the module."""
  config = {"class_name": "Constant", "config": {"value": 0.5}}
  modules = (Dense(3, bias_init=config, kernel_regularizer={"class_name": "L2", "config": {"l2": 0.1}}),
             Recurrent(4, recurrent_kernel_init=config, recurrent_regularizer="l1"),
             Embedding(5, 2, embedding_init=config), EinsumDense("ab,bc->ac", 4, kernel_init=config),
             MultiHeadAttention(2, 3, bias_init=config))
  for module in modules:
    assert hash(module) == hash(module.clone())
  assert Dense(3, bias_init=config).bias_init == config
