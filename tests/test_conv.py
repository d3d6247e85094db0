"""Convolution against Keras's Conv*, Conv*Transpose, SeparableConv*, DepthwiseConv* (+ BN, pooling)."""

import itertools

import jax
import keras
import numpy as np
import pytest

from jaxcomponents.layers import Convolution
from jaxcomponents.weights import load_keras
from tests.helpers import assert_close, random_input, randomize_keras

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


def keras_twin(in_shape, features, kernel_size, kind="conv", dims=2, strides=1, padding="same", dilation=1, groups=1,
               depth_multiplier=1, output_padding=None, activation=None, use_bias=True, batch_norm=False,
               pool=None, pool_size=2, pool_strides=2, pool_padding="valid"):
  """The Keras model a Convolution with these arguments reproduces, with random weights."""
  args = dict(kernel_size=kernel_size, strides=strides, padding=padding, dilation_rate=dilation, use_bias=use_bias)
  if kind != "depthwise":
    args["filters"] = features
  if kind == "conv":
    args["groups"] = groups
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
  layer_args = {k: v for k, v in kwargs.items() if k != "dilation"}
  layer = Convolution(None if kind == "depthwise" else features, kernel_size, kind=kind, dims=dims,
                      dilation=kwargs.get("dilation", 1), **layer_args)
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
  check(kind, dims, dilation=2, padding="same")
  check(kind, dims, dilation=2, padding="valid")


def test_causal_1d():
  check("conv", 1, padding="causal", dilation=2)


@pytest.mark.parametrize("kind", ["separable", "depthwise"])
def test_causal_1d_beyond_keras_equals_left_padding(kind):
  """Keras has causal padding for Conv1D only; here it is left zero-padding then VALID, as for Conv1D."""
  x = random_input((2, 9, 3))
  layer_cls = keras.layers.SeparableConv1D if kind == "separable" else keras.layers.DepthwiseConv1D
  args = dict(filters=4) if kind == "separable" else {}
  model = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.ZeroPadding1D((4, 0)),
                            layer_cls(kernel_size=3, dilation_rate=2, padding="valid", **args)])
  randomize_keras(model)
  layer = Convolution(4 if kind == "separable" else None, 3, kind=kind, dims=1, padding="causal", dilation=2)
  assert_close(layer.apply(load_keras(layer, model, x), x), model(x))


@pytest.mark.parametrize("shape", [(2, 7, 8, 3), (2, 8, 7, 3), (1, 5, 5, 2)])
@pytest.mark.parametrize("padding,strides,output_padding,kernel_size",
                         [("same", 2, 1, 3), ("valid", 2, 1, 3), ("same", 2, 0, 4), ("valid", 3, 2, 2),
                          ("same", 2, None, 4), ("valid", 2, None, 1)])
def test_transpose_shapes_and_values(shape, padding, strides, output_padding, kernel_size):
  check("transpose", 2, shape=shape, padding=padding, strides=strides, output_padding=output_padding,
        kernel_size=kernel_size)


def test_groups_and_depth_multiplier():
  check("conv", 2, shape=(2, 6, 6, 4), features=6, groups=2)
  check("conv", 1, shape=(2, 9, 6), features=9, groups=3, strides=2)
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


@pytest.mark.parametrize("kind", ["separable", "depthwise"])
def test_3d_extensions_equal_grouped_keras_conv3d(kind):
  in_channels, multiplier, features = 2, 2, 3
  x = random_input((1, 5, 6, 4, in_channels))
  depthwise = keras.layers.Conv3D(in_channels * multiplier, 3, padding="same", groups=in_channels,
                                  use_bias=kind == "depthwise")
  layers = [keras.Input(x.shape[1:]), depthwise]
  if kind == "separable":
    layers.append(keras.layers.Conv3D(features, 1))
  model = keras.Sequential(layers)
  randomize_keras(model)
  layer = Convolution(features if kind == "separable" else None, 3, kind=kind, dims=3,
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


def test_training_mode_batch_stats_and_dropout():
  model = keras_twin(SHAPES[2][1:], 4, 3, batch_norm=True, activation="relu")
  layer = Convolution(4, 3, batch_norm=True, activation="relu")
  x = random_input((8, 9, 8, 3))
  variables = load_keras(layer, model, x)
  y, updates = layer.apply(variables, x, train=True, mutable=["batch_stats"])
  assert_close(y, model(x, training=True))
  bn = model.layers[1]
  assert_close(updates["batch_stats"]["batch_normalization"]["mean"], bn.moving_mean, tol=1e-6)
  assert_close(updates["batch_stats"]["batch_normalization"]["var"], bn.moving_variance, tol=1e-6)

  dropped = Convolution(16, 3, dropout=0.5)
  params = dropped.init(jax.random.key(0), x)
  rngs = {"dropout": jax.random.key(1)}
  np.testing.assert_array_equal(dropped.apply(params, x, rngs=rngs), dropped.apply(params, x))
  trained = np.asarray(dropped.apply(params, x, train=True, rngs=rngs))
  assert 0.4 < (trained == 0).mean() < 0.6


@pytest.mark.parametrize("kwargs,message", [
    (dict(kind="dilated"), r"kind='dilated' is not allowed; expected one of 'conv', 'transpose'"),
    (dict(dims=4), r"dims=4 is not allowed; expected one of 1, 2, 3"),
    (dict(padding="full"), r"padding='FULL' is not allowed; expected one of 'SAME', 'VALID'"),
    (dict(padding="causal"), r"padding='CAUSAL' is not allowed; expected one of 'SAME', 'VALID'\."),
    (dict(kind="transpose", dims=1, padding="causal"), r"padding='CAUSAL' is not allowed"),
    (dict(features=0), r"features=0 is not allowed; expected a positive integer"),
    (dict(kernel_size=(3, 0)), r"kernel_size=\(3, 0\) is not allowed; expected a positive integer or a sequence "
                               r"of 2 positive integers"),
    (dict(kernel_size=(3, 3, 3)), r"kernel_size=\(3, 3, 3\) is not allowed; expected a positive integer or a "
                                  r"sequence of 2"),
    (dict(strides=2, dilation=2), r"strides=2 with dilation=2 is not allowed"),
    (dict(activation="relu7"), r"activation='relu7' is not allowed"),
    (dict(pool="min"), r"pool='min' is not allowed; expected one of None, 'max', 'avg'"),
    (dict(pool="max", pool_padding="full"), r"pool_padding='FULL' is not allowed"),
    (dict(groups=2), r"groups=2 is not allowed; it must divide the input channels \(3\)"),
    (dict(kind="separable", groups=3), r"groups=3 is not allowed with kind='separable'"),
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


def test_wrong_input_rank():
  with pytest.raises(ValueError, match=r"x has shape \(2, 9, 3\) \(rank 3\); dims=2 expects rank 4"):
    Convolution(4, 3).init(jax.random.key(0), random_input((2, 9, 3)))
