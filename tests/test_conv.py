"""Convolution against Keras's Conv*, Conv*Transpose, SeparableConv*, DepthwiseConv* (+ BN, pooling)."""

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from jaxcomponents.layers import Conv, Convolution, ConvTranspose, DepthwiseConv, SeparableConv, pooling
from jaxcomponents.layers.conv import KINDS
from jaxcomponents.weights import load_keras
from tests.helpers import assert_close, random_input, randomize_keras

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)

SHAPES = {1: (2, 9, 3), 2: (2, 9, 8, 3), 3: (1, 5, 6, 4, 2)}
KERAS_LAYERS = {
    ("conv", 1): keras.layers.Conv1D, ("conv", 2): keras.layers.Conv2D, ("conv", 3): keras.layers.Conv3D,
    ("transpose", 1): keras.layers.Conv1DTranspose, ("transpose", 2): keras.layers.Conv2DTranspose,
    ("transpose", 3): keras.layers.Conv3DTranspose,
    ("separable", 1): keras.layers.SeparableConv1D, ("separable", 2): keras.layers.SeparableConv2D,
    ("depthwise", 1): keras.layers.DepthwiseConv1D, ("depthwise", 2): keras.layers.DepthwiseConv2D,
}
POOL_LAYERS = {("max", 1): keras.layers.MaxPooling1D, ("max", 2): keras.layers.MaxPooling2D,
               ("max", 3): keras.layers.MaxPooling3D, ("avg", 1): keras.layers.AveragePooling1D,
               ("avg", 2): keras.layers.AveragePooling2D, ("avg", 3): keras.layers.AveragePooling3D}


def keras_twin(in_shape, features, kernel_size, kind="conv", dims=2, strides=1, padding="same", kernel_dilation=1,
               feature_group_count=1, depth_multiplier=1, output_padding=None, activation=None, use_bias=True,
               batch_norm=False, pool=None, pool_size=2, pool_strides=2, pool_padding="valid"):
  """The Keras model a Convolution with these arguments reproduces, with random weights."""
  args = dict(kernel_size=kernel_size, strides=strides, padding=padding, dilation_rate=kernel_dilation,
              use_bias=use_bias)
  if kind != "depthwise":
    args["filters"] = features
  if kind == "conv":
    args["groups"] = feature_group_count
  if kind in ("separable", "depthwise"):
    args["depth_multiplier"] = depth_multiplier
  if kind == "transpose":
    args["output_padding"] = output_padding
  layers = [keras.Input(in_shape), KERAS_LAYERS[(kind, dims)](**args)]
  if batch_norm:
    layers.append(keras.layers.BatchNormalization())
  layers.append(keras.layers.Activation(activation or "linear"))
  if pool:
    layers.append(POOL_LAYERS[(pool, dims)](pool_size, pool_strides, padding=pool_padding))
  model = keras.Sequential(layers)
  randomize_keras(model)
  return model


def check(kind="conv", dims=2, shape=None, **kwargs):
  shape = shape or SHAPES[dims]
  features = kwargs.pop("features", 4)
  kernel_size = kwargs.pop("kernel_size", 3)
  model = keras_twin(shape[1:], features, kernel_size, kind, dims, **kwargs)
  layer = Convolution(None if kind == "depthwise" else features, kernel_size, kind=kind, dims=dims, **kwargs)
  x = random_input(shape)
  variables = load_keras(layer, model, x)
  assert_close(layer.apply(variables, x), model(x, training=False))
  return layer, model, variables, x


@pytest.mark.parametrize("kind,dims,padding,strides", [
    (kind, dims, padding, strides)
    for (kind, dims), padding, strides in itertools.product(KERAS_LAYERS, ("same", "valid"), (1, 2))])
def test_every_kind_dims_padding_stride(kind, dims, padding, strides):
  check(kind, dims, padding=padding, strides=strides, activation="relu")


@pytest.mark.parametrize("kind,dims", [("conv", 1), ("conv", 2), ("separable", 2), ("depthwise", 1),
                                       ("depthwise", 2), ("transpose", 2), ("transpose", 1)])
def test_dilation(kind, dims):
  check(kind, dims, kernel_dilation=2, padding="same")
  check(kind, dims, kernel_dilation=2, padding="valid")


@pytest.mark.parametrize("kind,dims", [("separable", 2), ("depthwise", 1), ("depthwise", 2)])
def test_separable_depthwise_take_strides_with_dilation_like_keras(kind, dims):
  check(kind, dims, strides=2, kernel_dilation=2, padding="same")
  check(kind, dims, strides=2, kernel_dilation=2, padding="valid", depth_multiplier=2)


def test_padding_names_in_any_case():
  check("separable", 1, padding="SAME", strides=2, features=5)
  check("depthwise", 2, padding="Valid")


@pytest.mark.parametrize("kind", KINDS)
def test_weighted_layers_have_keras_names(kind):
  names = {"conv": "conv{}d", "transpose": "conv{}d_transpose", "separable": "separable_conv{}d",
           "depthwise": "depthwise_conv{}d"}
  for dims in (1, 2, 3):
    layer = Convolution(None if kind == "depthwise" else 4, 3, kind=kind, dims=dims, batch_norm=True)
    variables = jax.eval_shape(layer.init, jax.random.key(0), random_input(SHAPES[dims]))
    assert set(variables["params"]) == {names[kind].format(dims), "batch_normalization"}
    assert set(variables["batch_stats"]) == {"batch_normalization"}


def test_causal_1d():
  check("conv", 1, padding="causal", kernel_dilation=2)


@pytest.mark.parametrize("kind", ["separable", "depthwise"])
def test_causal_1d_beyond_keras_equals_left_padding(kind):
  """Keras has causal padding for Conv1D only; here it is left zero-padding then VALID, as for Conv1D."""
  x = random_input((2, 9, 3))
  layer_cls = keras.layers.SeparableConv1D if kind == "separable" else keras.layers.DepthwiseConv1D
  args = dict(filters=4) if kind == "separable" else {}
  model = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.ZeroPadding1D((4, 0)),
                            layer_cls(kernel_size=3, dilation_rate=2, padding="valid", **args)])
  randomize_keras(model)
  layer = Convolution(4 if kind == "separable" else None, 3, kind=kind, dims=1, padding="causal", kernel_dilation=2)
  assert_close(layer.apply(load_keras(layer, model, x), x), model(x))


@pytest.mark.parametrize("shape", [(2, 7, 8, 3), (2, 8, 7, 3), (1, 5, 5, 2)])
@pytest.mark.parametrize("padding,strides,output_padding,kernel_size",
                         [("same", 2, 1, 3), ("valid", 2, 1, 3), ("same", 2, 0, 4), ("valid", 3, 2, 2),
                          ("same", 2, None, 4), ("valid", 2, None, 1)])
def test_transpose_shapes_and_values(shape, padding, strides, output_padding, kernel_size):
  check("transpose", 2, shape=shape, padding=padding, strides=strides, output_padding=output_padding,
        kernel_size=kernel_size)


@pytest.mark.parametrize("dims,shape,kwargs", [
    (1, (2, 6, 3), dict(strides=3, output_padding=2, padding="same", kernel_size=4)),
    (1, (2, 7, 3), dict(strides=2, output_padding=0, padding="valid", kernel_size=3)),
    (1, (2, 7, 3), dict(kernel_dilation=3, output_padding=0, padding="same", kernel_size=2)),
    (3, (1, 3, 4, 5, 2), dict(strides=(2, 1, 2), output_padding=(1, 0, 0), padding="same", kernel_size=(3, 2, 2))),
    (3, (1, 3, 4, 5, 2), dict(strides=2, output_padding=(0, 1, 1), padding="valid", kernel_size=(2, 3, 1))),
])
def test_transpose_1d_3d_output_padding(dims, shape, kwargs):
  check("transpose", dims, shape=shape, **kwargs)


def test_groups_and_depth_multiplier():
  check("conv", 2, shape=(2, 6, 6, 4), features=6, feature_group_count=2)
  check("conv", 1, shape=(2, 9, 6), features=9, feature_group_count=3, strides=2)
  check("depthwise", 2, depth_multiplier=3)
  check("separable", 1, depth_multiplier=2, features=5)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("pool,pool_padding", [("max", "valid"), ("avg", "same"), ("max", "same"),
                                               ("avg", "valid")])
def test_batch_norm_activation_pooling(dims, pool, pool_padding):
  check("conv", dims, batch_norm=True, activation="elu", pool=pool, pool_size=2, pool_strides=2,
        pool_padding=pool_padding, use_bias=False)


def test_avg_pool_same_with_stride_one_excludes_padding():
  check("conv", 2, shape=(1, 5, 5, 2), pool="avg", pool_size=3, pool_strides=1, pool_padding="same")


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_pooling_gradients_equal_keras(kind, padding):
  x = random_input((2, 5, 6, 3))
  keras_pool = {"max": keras.ops.max_pool, "avg": keras.ops.average_pool}[kind]
  expected = jax.grad(lambda v: (keras_pool(v, 3, 2, padding) ** 2).sum())(x)
  got = jax.jit(jax.grad(lambda v: (pooling.pool(v, kind, 3, 2, padding) ** 2).sum()))(x)
  assert_close(got, expected, tol=1e-6)
  layer = Convolution(4, 3, batch_norm=True, dropout=0.2, pool=kind, pool_padding=padding)
  variables = layer.init(jax.random.key(0), x)

  def loss(params):
    y, _ = layer.apply({**variables, "params": params}, x, train=True, rngs={"dropout": jax.random.key(1)},
                       mutable=["batch_stats"])
    return (y ** 2).mean()

  grads = jax.jit(jax.grad(loss))(variables["params"])
  assert all(np.isfinite(g).all() and np.abs(g).max() > 0 for g in jax.tree.leaves(grads))


def test_pool_strides_none_is_the_window_and_windows_overlap():
  check("depthwise", 1, shape=(2, 11, 3), pool="max", pool_size=3, pool_strides=None, pool_padding="same")
  check("conv", 2, pool="avg", pool_size=3, pool_strides=2, pool_padding="same")


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("dims,size,strides", [(1, 3, 2), (2, (3, 2), (2, 1)), (3, (2, 3, 2), None)])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_pooling_functions_equal_keras(kind, dims, size, strides, padding):
  x = random_input((2, 7, 6, 5, 3)[:dims + 1] + (3,))
  expected = POOL_LAYERS[(kind, dims)](size, strides, padding=padding)(x)
  assert_close(pooling.POOLS[kind](x, size, strides, padding.upper()), expected, tol=1e-6)
  assert_close(pooling.pool(x, kind, size, strides, padding), expected, tol=1e-6)


@pytest.mark.parametrize("kind", ["separable", "depthwise"])
@pytest.mark.parametrize("padding,strides", [("same", 1), ("valid", 2)])
def test_3d_extensions_equal_grouped_keras_conv3d(kind, padding, strides):
  in_channels, multiplier, features = 2, 2, 3
  x = random_input((1, 5, 6, 4, in_channels))
  depthwise = keras.layers.Conv3D(in_channels * multiplier, 3, strides=strides, padding=padding, groups=in_channels,
                                  use_bias=kind == "depthwise")
  layers = [keras.Input(x.shape[1:]), depthwise]
  if kind == "separable":
    layers.append(keras.layers.Conv3D(features, 1))
  model = keras.Sequential(layers)
  randomize_keras(model)
  layer = Convolution(features if kind == "separable" else None, 3, strides, padding, kind=kind, dims=3,
                      depth_multiplier=multiplier)
  variables = layer.init(jax.random.key(0), x)
  leaf = variables["params"][f"{kind}_conv3d"]
  kernel = np.asarray(depthwise.kernel)  # (3, 3, 3, 1, in * multiplier): group c owns outputs c*m .. c*m + m - 1
  leaf["depthwise_kernel"] = kernel.reshape(3, 3, 3, in_channels, multiplier)
  if kind == "separable":
    leaf["pointwise_kernel"] = np.asarray(model.layers[1].kernel)
    leaf["bias"] = np.asarray(model.layers[1].bias)
  else:
    leaf["bias"] = np.asarray(depthwise.bias)
  assert_close(layer.apply(variables, x), model(x))


@pytest.mark.parametrize("kind,dims", [("conv", 2), ("separable", 1), ("transpose", 3)])
def test_training_updates_batch_stats_like_keras(kind, dims):
  shape = (8,) + SHAPES[dims][1:]
  model = keras_twin(shape[1:], 4, 3, kind, dims, strides=2, batch_norm=True, activation="relu")
  layer = Convolution(4, 3, 2, kind=kind, dims=dims, batch_norm=True, activation="relu")
  x = random_input(shape)
  variables = load_keras(layer, model, x)
  before = jax.tree.map(np.asarray, variables["batch_stats"]["batch_normalization"])
  y, updates = layer.apply(variables, x, train=True, mutable=["batch_stats"])
  assert_close(y, model(x, training=True))
  bn, stats = model.layers[1], updates["batch_stats"]["batch_normalization"]
  assert not np.allclose(stats["mean"], before["mean"]) and not np.allclose(stats["var"], before["var"])
  assert_close(stats["mean"], bn.moving_mean, tol=1e-6)
  assert_close(stats["var"], bn.moving_variance, tol=1e-6)


def test_dropout_only_in_training():
  layer = Convolution(16, 3, dims=1, dropout=0.5)
  x = random_input((4, 9, 3))
  variables = layer.init(jax.random.key(0), x)
  rngs = {"dropout": jax.random.key(1)}
  inference = np.asarray(layer.apply(variables, x, rngs=rngs))
  np.testing.assert_array_equal(inference, layer.apply(variables, x))
  np.testing.assert_array_equal(inference, layer.apply(variables, x, train=False, rngs=rngs))
  trained = np.asarray(layer.apply(variables, x, train=True, rngs=rngs))
  dropped = trained == 0
  assert 0.4 < dropped.mean() < 0.6
  np.testing.assert_allclose(trained[~dropped], 2 * inference[~dropped], rtol=1e-6)


@pytest.mark.parametrize("kwargs,message", [
    (dict(kind="dilated"), r"kind='dilated' is not allowed; expected one of 'conv', 'transpose'"),
    (dict(dims=4), r"dims=4 is not allowed; expected one of 1, 2, 3"),
    (dict(padding="full"), r"padding='full' is not allowed with kind='conv', dims=2; expected one of 'SAME', "
                           r"'VALID' \(any case\)"),
    (dict(padding=None), r"padding=None is not allowed"),
    (dict(padding="causal"), r"padding='causal' is not allowed with kind='conv', dims=2; expected one of 'SAME', "
                             r"'VALID' \(any case\); 'CAUSAL' needs dims=1 and a kind other than 'transpose'"),
    (dict(kind="transpose", dims=1, padding="causal"), r"padding='causal' is not allowed with kind='transpose', "
                                                       r"dims=1"),
    (dict(kind="separable", dims=3, padding="CAUSAL"), r"padding='CAUSAL' is not allowed with kind='separable'"),
    (dict(features=0), r"features=0 is not allowed; expected a positive integer"),
    (dict(kernel_size=(3, 0)), r"kernel_size=\(3, 0\) is not allowed; expected a positive integer or a sequence "
                               r"of 2 positive integers"),
    (dict(kernel_size=(3, 3, 3)), r"kernel_size=\(3, 3, 3\) is not allowed; expected a positive integer or a "
                                  r"sequence of 2"),
    (dict(strides=2, kernel_dilation=2), r"strides=2 with kernel_dilation=2 is not allowed with kind='conv'; "
                                         r"like Keras"),
    (dict(kind="transpose", strides=(1, 2), kernel_dilation=(2, 1)), r"strides=\(1, 2\) with kernel_dilation="
                                                                      r"\(2, 1\) is not allowed with kind='transpose'"),
    (dict(strides=0), r"strides=0 is not allowed; expected a positive integer"),
    (dict(kernel_dilation=(1, 0)), r"kernel_dilation=\(1, 0\) is not allowed; expected a positive integer"),
    (dict(kind="separable", depth_multiplier=0), r"depth_multiplier=0 is not allowed; expected a positive integer"),
    (dict(feature_group_count=0), r"feature_group_count=0 is not allowed; expected a positive integer"),
    (dict(features=None), r"features=None is not allowed; expected a positive integer"),
    (dict(kind="separable", features=-2), r"features=-2 is not allowed; expected a positive integer"),
    (dict(pool="avg", pool_size=0), r"pool_size=0 is not allowed; expected a positive integer"),
    (dict(pool="max", pool_strides=(2, 0)), r"pool_strides=\(2, 0\) is not allowed; expected a positive integer"),
    (dict(pool="avg", pool_padding=None), r"pool_padding=None is not allowed; expected one of 'SAME', 'VALID'"),
    (dict(kind="transpose", strides=2, output_padding=-1), r"output_padding=-1 is not allowed; expected a "
                                                            r"non-negative integer"),
    (dict(kind="transpose", strides=(2, 1), output_padding=(1, 1)), r"output_padding=\(1, 1\) is not allowed; "
                                                                     r"each value must be smaller than its stride"),
    (dict(activation="relu7"), r"activation='relu7' is not allowed"),
    (dict(pool="min"), r"pool='min' is not allowed; expected one of None, 'max', 'avg'"),
    (dict(pool="max", pool_padding="full"), r"pool_padding='full' is not allowed; expected one of 'SAME', 'VALID'"),
    (dict(feature_group_count=2), r"feature_group_count=2 is not allowed; it must divide the input channels "
                                  r"\(3\)"),
    (dict(features=5, feature_group_count=3), r"feature_group_count=3 is not allowed; it must divide the input "
                                              r"channels \(3\) and features \(5\)"),
    (dict(kind="transpose", feature_group_count=3), r"feature_group_count=3 is not allowed with kind='transpose'"),
    (dict(kind="depthwise", features=None, output_padding=1), r"output_padding=1 is not allowed with "
                                                               r"kind='depthwise'"),
    (dict(kind="transpose", depth_multiplier=2), r"depth_multiplier=2 is not allowed with kind='transpose'"),
    (dict(kind="separable", feature_group_count=3), r"feature_group_count=3 is not allowed with kind='separable'"),
    (dict(kind="conv", depth_multiplier=2), r"depth_multiplier=2 is not allowed with kind='conv'"),
    (dict(kind="depthwise", features=5), r"features=5 is not allowed for kind='depthwise' with 3 input channels"),
    (dict(kind="transpose", strides=2, output_padding=2), r"output_padding=2 is not allowed; each value must be "
                                                           r"smaller than its stride"),
    (dict(output_padding=1), r"output_padding=1 is not allowed with kind='conv'"),
    (dict(dropout=-0.1), r"dropout=-0.1 is not allowed"),
])
def test_bad_arguments(kwargs, message):
  args = dict(features=4, kernel_size=3)
  args.update(kwargs)
  with pytest.raises(ValueError, match=message):
    Convolution(**args).init(jax.random.key(0), random_input(SHAPES[2]))


@pytest.mark.parametrize("dims,shape", [(2, (2, 9, 3)), (1, (2, 9, 8, 3)), (3, (2, 9, 8, 3))])
def test_wrong_input_rank(dims, shape):
  message = rf"x has shape \({', '.join(map(str, shape))}\) \(rank {len(shape)}\); dims={dims} expects rank {dims + 2}"
  with pytest.raises(ValueError, match=message):
    Convolution(4, 3, dims=dims).init(jax.random.key(0), random_input(shape))


@pytest.mark.parametrize("kwargs,shape,message", [
    (dict(kernel_size=5, padding="valid"), (1, 4, 6, 3), r"the conv2d output would have shape \(1, 0, 2, 4\)"),
    (dict(kind="depthwise", features=None, kernel_size=3, kernel_dilation=3, padding="valid"), (1, 6, 9, 3),
     r"the depthwise_conv2d output would have shape \(1, 0, 3, 3\)"),
    (dict(kind="transpose", kernel_size=2, output_padding=0), (1, 1, 3, 3),
     r"the conv2d_transpose output would have shape \(1, 0, 2, 4\)"),
    (dict(kernel_size=3, pool="max", pool_size=3), (1, 2, 6, 3), r"the max pooling output would have shape"),
])
def test_empty_output_is_an_error(kwargs, shape, message):
  with pytest.raises(ValueError, match=r"x has shape .*; " + message + r".*the input is too small"):
    Convolution(**{"features": 4, **kwargs}).init(jax.random.key(0), random_input(shape))


# A convolution module passed in (issue 18): the component composes it with batch norm, activation, dropout, pool.

@pytest.mark.parametrize("by_kind,module", [
    (dict(features=6, kernel_size=3, padding="VALID"), lambda: Conv(6, (3, 3), padding="VALID")),
    (dict(features=6, kernel_size=3, strides=2, kind="transpose"), lambda: ConvTranspose(6, (3, 3), (2, 2), "SAME")),
    (dict(features=None, kernel_size=3, kind="depthwise", depth_multiplier=2),
     lambda: DepthwiseConv((3, 3), (1, 1), "SAME", depth_multiplier=2)),
    (dict(features=6, kernel_size=3, kind="separable"), lambda: SeparableConv(6, (3, 3), (1, 1), "SAME")),
])
def test_a_conv_module_composes_like_its_kind(by_kind, module):
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 9, 9, 4)), jnp.float32)
  rest = dict(activation="relu", batch_norm=True, pool="max", pool_size=2)
  built = Convolution(**by_kind, **rest)
  composed = Convolution(None, None, conv=module(), **rest)
  variables = built.init(jax.random.key(0), x)
  assert jax.tree.structure(composed.init(jax.random.key(1), x)) == jax.tree.structure(variables)
  y, updates = composed.apply(variables, x, train=True, mutable=["batch_stats"])
  y_built, updates_built = built.apply(variables, x, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(y, y_built, rtol=1e-6, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), updates, updates_built)


def test_a_conv_module_of_ones_own_and_its_errors():
  x = jnp.ones((1, 8, 8, 3))
  layer = Convolution(None, None, conv=nn.Conv(5, (3, 3)), activation="tanh", pool="avg")
  variables = layer.init(jax.random.key(0), x)
  assert sorted(variables["params"]) == ["conv"]
  assert layer.apply(variables, x).shape == (1, 4, 4, 5)
  with pytest.raises(ValueError, match=r"features=8, kernel_size=3 is not allowed with conv=Conv\(\.\.\.\); "
                                       r"configure the convolution module itself"):
    Convolution(8, 3, conv=Conv(8, (3, 3))).init(jax.random.key(0), x)


def test_weight_regularizers_reach_a_convolution_module_of_ones_own():
  """`kernel_regularizer` and `bias_regularizer` penalise the `conv` module's weights, as they would the built one's."""
  from jaxcomponents.layers.activity import LOSSES, total_loss

  x = np.ones((1, 6, 6, 2), np.float32)
  for layer in (Convolution(None, None, conv=Conv(4, (3, 3), bias_init="ones"), kernel_regularizer="l2",
                            bias_regularizer="l1"),
                Convolution(4, 3, bias_init="ones", kernel_regularizer="l2", bias_regularizer="l1")):
    variables = layer.init(jax.random.key(0), x)
    (weights,) = variables["params"].values()
    _, sown = layer.apply(variables, x, mutable=[LOSSES])
    expected = 0.01 * np.square(weights["kernel"]).sum() + 0.01 * np.abs(weights["bias"]).sum()
    np.testing.assert_allclose(total_loss(sown[LOSSES]), expected, rtol=1e-6)


@pytest.mark.parametrize("shape", [(2, 5, 3), (2, 4, 6, 3), (2, 3, 4, 5, 3)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_equals_keras(shape, keepdims):
  x = np.random.default_rng(9).normal(size=shape).astype(np.float32)
  rank = len(shape) - 2
  for ours, name in ((pooling.global_avg_pool, "GlobalAveragePooling"), (pooling.global_max_pool, "GlobalMaxPooling")):
    keras_layer = getattr(keras.layers, f"{name}{rank}D")(keepdims=keepdims)
    np.testing.assert_allclose(ours(jnp.asarray(x), keepdims=keepdims), keras_layer(x), rtol=1e-6, atol=1e-7)


def test_global_average_pooling_of_a_masked_sequence_equals_keras():
  x = np.random.default_rng(10).normal(size=(3, 6, 4)).astype(np.float32)
  mask = np.arange(6)[None, :] < np.array([[6], [2], [4]])
  np.testing.assert_allclose(pooling.global_avg_pool(jnp.asarray(x), mask=mask),
                             keras.layers.GlobalAveragePooling1D()(x, mask=mask), rtol=1e-6, atol=1e-7)
  with pytest.raises(ValueError, match=r"mask of shape \(3, 5\) is not allowed with x of shape \(3, 6, 4\)"):
    pooling.global_avg_pool(jnp.asarray(x), mask=mask[:, :5])
  with pytest.raises(ValueError, match=r"x has shape \(3, 4\) \(rank 2\); expected rank >= 3"):
    pooling.global_max_pool(jnp.ones((3, 4)))


def test_pool_strides_default_to_the_window_as_keras():
  """`pool_size=3` without `pool_strides` pools in steps of 3 (Keras's `strides=None`), not 2."""
  layer, model, _, x = check("conv", 2, shape=(1, 9, 9, 2), pool="max", pool_size=3, pool_strides=None)
  assert Convolution(4, 3, padding="same", pool="max", pool_size=3).pool_strides is None
  assert model(x).shape == (1, 3, 3, 4)


@pytest.mark.parametrize("padding", ["valid", "same", "VALID", "Same"])
def test_the_transposed_leaf_takes_kerass_padding_names(padding):
  """`ConvTranspose(padding="valid")` is Keras's valid padding (it had been read as SAME)."""
  x = random_input((1, 9, 9, 2))
  reference = keras.layers.Conv2DTranspose(3, 3, strides=2, padding=padding.lower())
  reference.build(x.shape)
  randomize_keras(reference)
  layer = ConvTranspose(3, (3, 3), 2, padding=padding)
  params = {"kernel": jnp.asarray(reference.kernel), "bias": jnp.asarray(reference.bias)}
  assert_close(layer.apply({"params": params}, x), reference(x))


@pytest.mark.parametrize("module,message", [
    (ConvTranspose(3, (3, 3), (2, 2), "foo"), r"padding='foo' is not allowed for ConvTranspose on 2 spatial axes"),
    (ConvTranspose(3, (3, 3), (2, 2), "causal"), r"padding='causal' is not allowed for ConvTranspose"),
    (ConvTranspose(3, (3, 3), (2, 2), "SAME", output_padding=(3, 3)),
     r"output_padding=\(3, 3\) is not allowed with strides=\(2, 2\); each value must be smaller than its stride"),
    (ConvTranspose(3, (3, 3), (2, 2), kernel_dilation=(2, 2)), r"strides=\(2, 2\) with kernel_dilation=\(2, 2\)"),
    (ConvTranspose(0, (3, 3), (1, 1)), r"features=0 is not allowed; expected a positive integer"),
    (ConvTranspose(3, (0, 3), (1, 1)), r"kernel_size=\(0, 3\) is not allowed"),
    (DepthwiseConv((3, 3), (1, 1), padding="CAUSAL"), r"padding='CAUSAL' is not allowed for DepthwiseConv on 2"),
    (DepthwiseConv((3, 3), (1, 1), depth_multiplier=0), r"depth_multiplier=0 is not allowed"),
    (SeparableConv(0, (3, 3), (1, 1)), r"features=0 is not allowed"),
    (SeparableConv(2, (3, 3), (0, 1)), r"strides=\(0, 1\) is not allowed"),
    (Conv(0, (3, 3)), r"features=0 is not allowed"),
    (Conv(2, (3, 3), strides=0), r"strides=0 is not allowed"),
    (Conv(2, (3, -1)), r"kernel_size=\(3, -1\) is not allowed"),
])
def test_the_convolution_leaves_refuse_what_keras_refuses(module, message):
  with pytest.raises(ValueError, match=message):
    module.init(jax.random.key(0), jnp.ones((1, 9, 9, 2)))


def test_the_leaves_take_an_int_for_every_axis_and_causal_over_one():
  x = random_input((2, 9, 3))
  depthwise = DepthwiseConv(3, 1, padding="causal", use_bias=False)
  variables = depthwise.init(jax.random.key(0), x)
  kernel = variables["params"]["depthwise_kernel"]
  assert kernel.shape == (3, 3, 1)
  shifted = jnp.pad(x, ((0, 0), (2, 0), (0, 0)))
  assert_close(depthwise.apply(variables, x), DepthwiseConv((3,), (1,), "VALID", use_bias=False).apply(variables,
                                                                                                         shifted))


def test_numpy_integers_are_taken_as_keras_takes_them():
  x = random_input((1, 7, 7, 2))
  reference = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Conv2D(
      np.int64(4), (np.int64(3), np.int64(3)), strides=(np.int32(2),) * 2, padding="same"),
      keras.layers.MaxPooling2D((np.int64(2),) * 2)])
  randomize_keras(reference)
  layer = Convolution(np.int64(4), (np.int64(3), np.int64(3)), strides=np.int32(2), padding="same", pool="max",
                      pool_size=np.int64(2))
  variables = load_keras(Convolution(4, 3, strides=2, padding="same"), reference, x)
  assert_close(layer.apply(variables, x), reference(x))


@pytest.mark.parametrize("dtype", ["int32", "uint8", "bool"])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_max_pooling_of_integers_equals_keras(dtype, padding):
  x = (np.arange(50).reshape(1, 5, 5, 2) % 7 > 3) if dtype == "bool" else np.arange(50).reshape(1, 5, 5, 2) % 11
  x = x.astype(dtype)
  got = pooling.max_pool(x, 2, 2, padding)
  assert got.dtype == x.dtype
  np.testing.assert_array_equal(got, keras.ops.max_pool(x, 2, 2, padding))


@pytest.mark.parametrize("module", [lambda p: DepthwiseConv((3, 3), (1, 1), p),
                                    lambda p: SeparableConv(4, (3, 3), 1, p)])
def test_the_leaves_take_explicit_padding_pairs_as_flax_convolutions_do(module):
  x = random_input((1, 8, 8, 3))
  same = module("same")
  variables = same.init(jax.random.key(0), x)
  assert_close(module(((1, 1), (1, 1))).apply(variables, x), same.apply(variables, x))
