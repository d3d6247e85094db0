"""load_keras: live models and legacy .h5 files in both layouts, pairing and errors."""

import re

import flax.linen as nn
import h5py
import jax
import keras
import numpy as np
import pytest

from jaxcomponents.layers import Convolution, Dense
from jaxcomponents.weights import layers_from_h5, layers_from_model, load_keras, load_npz, save_keras_h5, save_npz
from jaxcomponents.weights.keras_layers import short_weight_name, split_layer
from tests.helpers import assert_close, random_input, randomize_keras, write_keras2_h5, write_legacy_h5

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)


class TwoDense(nn.Module):
  """Two Dense components, the first with batch norm; Keras names on request."""

  keras_names: bool = False

  @nn.compact
  def __call__(self, x, *, train=False):
    x = Dense(6, activation="relu", batch_norm=True, name="block1" if self.keras_names else None)(x, train=train)
    return Dense(3, name="block2" if self.keras_names else None)(x, train=train)


def leaves_equal(a, b):
  return jax.tree.structure(a) == jax.tree.structure(b) and all(
      np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def keras_two_dense(names=None):
  names = names or (None, None, None)
  model = keras.Sequential([
      keras.Input((4,)),
      keras.layers.Dense(6, name=names[0]),
      keras.layers.BatchNormalization(name=names[1]),
      keras.layers.Activation("relu"),
      keras.layers.Dense(3, name=names[2]),
  ])
  randomize_keras(model)
  return model


def test_live_model_and_both_h5_writers_agree(tmp_path):
  model = keras_two_dense()
  x = random_input((5, 4))
  module = TwoDense()
  expected = model(x, training=False)
  write_legacy_h5(tmp_path / "weights.h5", model)
  model.save(tmp_path / "model.h5")
  for source in (model, tmp_path / "weights.h5", str(tmp_path / "model.h5")):
    variables = load_keras(module, source, x)
    assert_close(module.apply(variables, x), expected)


def test_keras2_nested_and_flat_layouts(tmp_path):
  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="fc1"), keras.layers.Dense(2, name="fc2")])
  randomize_keras(model)
  x = random_input((2, 4))

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=False):
      return nn.Dense(2, name="fc2")(nn.Dense(3, name="fc1")(x))

  for flat in (False, True):
    write_keras2_h5(tmp_path / f"w{flat}.h5", model, flat_names=flat)
    variables = load_keras(Net(), tmp_path / f"w{flat}.h5", x)
    assert_close(Net().apply(variables, x), model(x))


def test_pairs_by_name_when_names_match_else_in_order():
  x = random_input((5, 4))
  model = keras_two_dense(("block1_dense", "block1_bn", "block2_dense"))
  # Flax layer names (dense, batch_normalization, dense) are not Keras names: paired in order.
  variables = load_keras(TwoDense(), model, x)
  assert_close(TwoDense().apply(variables, x), model(x))
  with pytest.raises(ValueError, match="match='name' but these Flax layers have no Keras layer of the same name"):
    load_keras(TwoDense(), model, x, match="name")
  with pytest.raises(ValueError, match=r"match='nearest' is not allowed; expected one of 'auto', 'name'"):
    load_keras(TwoDense(), model, x, match="nearest")


def test_numbered_names_pair_whatever_the_numbering():
  class Numbered(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=False):
      second = nn.Dense(2, name="dense_1")
      first = nn.Dense(3, name="dense")
      return second(first(x))  # created dense_1 first: order alone would pair them wrongly

  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense_41"),
                            keras.layers.Dense(2, name="dense_42")])
  randomize_keras(model)
  x = random_input((2, 4))
  variables = load_keras(Numbered(), model, x)
  assert_close(Numbered().apply(variables, x), model(x))


def test_by_name_ignores_order():
  class Swapped(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=False):
      b = nn.Dense(2, name="second")
      a = nn.Dense(3, name="first")
      return b(a(x))

  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="first"), keras.layers.Dense(2, name="second")])
  randomize_keras(model)
  x = random_input((2, 4))
  variables = load_keras(Swapped(), model, x)
  assert_close(Swapped().apply(variables, x), model(x))


def test_nested_model_and_bidirectional_are_expanded(tmp_path):
  inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="c1"),
                            keras.layers.BatchNormalization(name="b1")], name="inner")
  inp = keras.Input((3, 6))
  y = keras.layers.TimeDistributed(inner)(inp)
  y = keras.layers.Bidirectional(keras.layers.LSTM(2))(y)
  model = keras.Model(inp, y)
  write_legacy_h5(tmp_path / "nested.h5", model)
  for layers in (layers_from_h5(tmp_path / "nested.h5"), layers_from_model(model)):
    assert [re.sub(r"_\d+$", "", l.name) for l in layers] == ["c1", "b1", "forward_lstm", "backward_lstm"]
    assert list(layers[1].weights) == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert list(layers[2].weights) == ["kernel", "recurrent_kernel", "bias"]
    np.testing.assert_array_equal(layers[3].weights["bias"], model.layers[2].backward_layer.cell.bias)


def test_short_weight_names_of_every_era():
  assert short_weight_name("conv1_conv/kernel:0") == "kernel"
  assert short_weight_name("inner/b1/moving_variance") == "moving_variance"
  assert short_weight_name("block1_conv1_W_1:0") == "kernel"
  assert short_weight_name("block1_conv1_b_1:0") == "bias"
  assert short_weight_name("bn_conv1_running_std:0") == "moving_variance"
  layers = split_layer("lstm", [("lstm/lstm_cell/kernel:0", np.zeros(1))], "f")
  assert [(l.name, list(l.weights)) for l in layers] == [("lstm", ["kernel"])]


def test_chunked_layer_names_attribute(tmp_path):
  model = keras_two_dense()
  path = tmp_path / "chunked.h5"
  write_legacy_h5(path, model)
  with h5py.File(path, "a") as f:
    names = f.attrs["layer_names"]
    del f.attrs["layer_names"]
    f.attrs["layer_names0"], f.attrs["layer_names1"] = names[:2], names[2:]
  x = random_input((2, 4))
  assert_close(TwoDense().apply(load_keras(TwoDense(), path, x), x), model(x))


def test_mismatch_lists_missing_unexpected_and_misshaped():
  model = keras_two_dense()
  x = random_input((2, 4))

  class Wrong(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=False):
      x = nn.Dense(7, name="dense")(x)
      x = nn.BatchNorm(use_running_average=True, use_scale=False, name="batch_normalization")(x)
      return nn.Dense(3, use_bias=False, name="dense_1")(x)

  with pytest.raises(ValueError) as error:
    load_keras(Wrong(), model, x)
  message = str(error.value)
  assert "unexpected:\n  params/batch_normalization/scale (6,)" in message
  assert "params/dense_1/bias (3,)" in message
  assert "mis-shaped:\n  batch_stats/batch_normalization/mean: module expects (7,), Keras" in message
  assert "params/dense/kernel: module expects (4, 7)" in message


def test_layer_count_mismatch_lists_both_sides():
  model = keras_two_dense(("hidden", "norm", "logits"))  # no name the module's `dense` could be matched by
  with pytest.raises(ValueError, match=r"(?s)Layer count mismatch.*Flax module has 1 .*Keras source 3.*Flax layers:.*Keras layers:"):
    load_keras(Dense(3), model, random_input((2, 4)))


def test_bad_sources(tmp_path):
  x = random_input((2, 4))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    load_keras(TwoDense(), tmp_path / "nope.h5", x)
  truncated = tmp_path / "truncated.h5"
  write_legacy_h5(truncated, keras_two_dense())
  truncated.write_bytes(truncated.read_bytes()[:300])
  with pytest.raises(ValueError, match="not a readable HDF5 file"):
    load_keras(TwoDense(), truncated, x)
  with h5py.File(tmp_path / "empty.h5", "w"):
    pass
  with pytest.raises(ValueError, match=r"has neither a 'layer_names' attribute \(legacy\) nor a 'layers' group"):
    load_keras(TwoDense(), tmp_path / "empty.h5", x)
  with pytest.raises(ValueError, match=r"source=42 is not allowed"):
    load_keras(TwoDense(), 42, x)


def test_result_matches_eval_shape_exactly():
  model = keras_two_dense()
  x = random_input((2, 4))
  variables = load_keras(TwoDense(), model, x)
  shapes = jax.eval_shape(TwoDense().init, jax.random.key(0), x)
  assert jax.tree.structure(variables) == jax.tree.structure(shapes)
  assert jax.tree.map(lambda a: (a.shape, a.dtype), variables) == jax.tree.map(lambda a: (a.shape, a.dtype), shapes)


def test_npz_round_trip_and_checks(tmp_path):
  model = keras_two_dense()
  x = random_input((2, 4))
  variables = load_keras(TwoDense(), model, x)
  save_npz(tmp_path / "w.npz", variables)
  again = load_npz(tmp_path / "w.npz", TwoDense(), x)
  assert leaves_equal(variables, again)
  assert leaves_equal(variables, load_npz(tmp_path / "w.npz"))
  with pytest.raises(ValueError, match=r"does not fit the module:\nmis-shaped:\n  params/Dense_0/dense/kernel: "
                                       r"module expects \(5, 6\), .*w.npz:params/Dense_0/dense/kernel has \(4, 6\)"):
    load_npz(tmp_path / "w.npz", TwoDense(), random_input((2, 5)))
  with pytest.raises(ValueError, match=r"missing:\n  params/dense/bias \(5,\)"):
    load_npz(tmp_path / "w.npz", Dense(5), x)
  (tmp_path / "bad.npz").write_bytes(b"not an archive")
  with pytest.raises(ValueError, match="not a readable .npz archive"):
    load_npz(tmp_path / "bad.npz")
  (tmp_path / "cut.npz").write_bytes((tmp_path / "w.npz").read_bytes()[:-40])
  with pytest.raises(ValueError, match=r"cut.npz' is not a readable .npz archive \(.*\); if it was cut short, save"):
    load_npz(tmp_path / "cut.npz")
  np.save(tmp_path / "one.npy", np.ones(3))
  with pytest.raises(ValueError, match=r"one.npy' holds a single array, not an .npz archive of variables"):
    load_npz(tmp_path / "one.npy")
  np.savez(tmp_path / "text.npz", **{"params/dense/kernel": np.array(["a", "b"])})
  with pytest.raises(ValueError, match=r"text.npz' has arrays that are not numbers: params/dense/kernel \(<U1\)"):
    load_npz(tmp_path / "text.npz")


def test_export_to_keras_h5_round_trip(tmp_path):
  model = keras_two_dense()
  x = random_input((3, 4))
  variables = load_keras(TwoDense(), model, x)
  save_keras_h5(tmp_path / "export.h5", TwoDense(), variables, x)
  fresh = keras_two_dense()
  randomize_keras(fresh, seed=7)
  fresh.load_weights(tmp_path / "export.h5")
  np.testing.assert_array_equal(np.asarray(fresh(x)), np.asarray(model(x)))
  with pytest.raises(ValueError, match=r"(?s)the variables do not fit Dense:\nmissing:\n  params/dense/bias \(4,\)"
                                       r".*unexpected:.*  params/Dense_0/dense/kernel \(4, 6\)"):
    save_keras_h5(tmp_path / "wrong.h5", Dense(4), variables, x)
  assert not (tmp_path / "wrong.h5").exists() and not (tmp_path / "wrong.h5.partial").exists()


def test_export_merges_bidirectional_halves(tmp_path):
  from jaxcomponents.keras.write import _keras_layers

  class Bi(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=False):
      class Cell(nn.Module):
        @nn.compact
        def __call__(self, x):
          for name, shape in (("kernel", (4, 8)), ("recurrent_kernel", (2, 8)), ("bias", (8,))):
            self.param(name, nn.initializers.normal(), shape)
          return x

      Cell(name="forward_lstm")(x)
      Cell(name="backward_lstm")(x)
      return x

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=False):
      return Bi(name="bidirectional")(x)

  x = random_input((1, 4))
  variables = Net().init(jax.random.key(0), x)
  layers = _keras_layers(Net(), variables, x)
  assert [name for name, _ in layers] == ["bidirectional"]
  assert [w for w, _ in layers[0][1]] == [
      "bidirectional/forward_lstm/kernel", "bidirectional/forward_lstm/recurrent_kernel",
      "bidirectional/forward_lstm/bias", "bidirectional/backward_lstm/kernel",
      "bidirectional/backward_lstm/recurrent_kernel", "bidirectional/backward_lstm/bias"]


def test_graft_places_pretrained_variables_and_checks_shapes():
  from jaxcomponents.weights import graft

  model_vars = {"params": {"backbone": {"w": np.zeros(2)}, "head": {"w": np.zeros(3)}},
                "batch_stats": {"backbone": {"mean": np.zeros(2)}}}
  pretrained = {"params": {"w": np.ones(2)}, "batch_stats": {"mean": np.ones(2)}}
  out = graft(model_vars, "backbone", pretrained)
  assert out["params"]["backbone"]["w"].tolist() == [1.0, 1.0] and out["batch_stats"]["backbone"]["mean"][0] == 1
  assert model_vars["params"]["backbone"]["w"][0] == 0  # the input is not modified
  with pytest.raises(ValueError, match=r"pretrained 'params' does not fit 'head'"):
    graft(model_vars, "head", {"params": {"w": np.ones(2)}})
  with pytest.raises(ValueError, match=r"path='encoder' is not a submodule"):
    graft(model_vars, "encoder", pretrained)


def test_load_keras_names_the_first_layer_configured_differently():
  model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(32, 3, name="conv2d"),
                            keras.layers.Conv2D(8, 3, padding="same", name="conv2d_1")])
  x = random_input((1, 28, 28, 1))

  class TwoConvs(nn.Module):
    padding: str

    @nn.compact
    def __call__(self, x, *, train=False):
      x = Convolution(32, 3, padding=self.padding)(x, train=train)
      return Convolution(8, 3, padding="same")(x, train=train)

  with pytest.raises(ValueError, match=r"its layer Convolution_0/conv2d gives outputs of shape \(28, 28, 32\) per "
                                       r"example where Keras's conv2d \(Conv2D\) gives \(26, 26, 32\)\. Keras's conv2d "
                                       r"has .*'padding': 'valid'"):
    load_keras(TwoConvs("same"), model, x)
  variables = load_keras(TwoConvs("valid"), model, x)
  assert_close(TwoConvs("valid").apply(variables, x), model(x))


class ConvStack(nn.Module):
  """Convolutions of every kind and a bidirectional LSTM, with Keras's default layer names."""

  @nn.compact
  def __call__(self, x, *, train=False):
    from jaxcomponents.layers import Recurrent

    x = Convolution(4, 3, batch_norm=True, activation="relu")(x, train=train)
    x = Convolution(6, 3, kind="separable", depth_multiplier=2)(x, train=train)
    x = Convolution(None, 3, kind="depthwise")(x, train=train)
    x = Convolution(3, 2, strides=2, kind="transpose", padding="VALID")(x, train=train)
    x = x.reshape(x.shape[0], x.shape[1], -1)
    return Recurrent(2, bidirectional="concat")(x, train=train)


def keras_conv_stack():
  layers = keras.layers
  model = keras.Sequential([
      keras.Input((6, 6, 2)), layers.Conv2D(4, 3, padding="same"), layers.BatchNormalization(),
      layers.Activation("relu"), layers.SeparableConv2D(6, 3, padding="same", depth_multiplier=2),
      layers.DepthwiseConv2D(3, padding="same"), layers.Conv2DTranspose(3, 2, strides=2),
      layers.Reshape((12, 36)), layers.Bidirectional(layers.LSTM(2, return_sequences=False)),
  ])
  randomize_keras(model)
  return model


@pytest.mark.parametrize("make_keras, module, shape", [(keras_two_dense, TwoDense(), (5, 4)),
                                                       (keras_conv_stack, ConvStack(), (2, 6, 6, 2))])
def test_keras3_weights_and_keras_archives_load_without_keras(make_keras, module, shape, tmp_path):
  model = make_keras()
  x = random_input(shape)
  model.save_weights(tmp_path / "model.weights.h5")
  model.save(tmp_path / "model.keras")
  from_live = load_keras(module, model, x)
  for path in (tmp_path / "model.weights.h5", str(tmp_path / "model.keras")):
    layers = layers_from_h5(path)
    assert layers and all(layer.positional for layer in layers)
    variables = load_keras(module, path, x)
    assert leaves_equal(variables, from_live)
  assert_close(module.apply(from_live, x), model(x, training=False))


def test_keras3_weights_files_do_not_pair_in_order(tmp_path):
  model = keras_two_dense(names=("first", "norm", "second"))
  model.save_weights(tmp_path / "model.weights.h5")
  with pytest.raises(ValueError, match="does not record the order"):
    load_keras(TwoDense(), tmp_path / "model.weights.h5", random_input((2, 4)))
