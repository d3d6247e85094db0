"""Keras 3 twins of keras-unet-collection's building blocks in any number of spatial dimensions, for the 3-D models.

keras-unet-collection is 2-D only and written for Keras 2; the library's 3-D
models (`unet_3d`, `att_unet_3d`, `unet_plus_3d`, `resunet_a_3d`,
`vnet_3d`) have no reference to match. These functions are kuc's
`layer_utils` and U-Net blocks transcribed to Keras 3 with the layer classes
of `rank` spatial dimensions (`Conv3D`, `MaxPooling3D`, `UpSampling3D` ...),
keeping every argument, default and layer name, so a model built from them is
what kuc's code would build in 3-D. `check_twin` compares a library model with
such a Keras model: outputs, parameter count and one SGD step.
"""

from __future__ import annotations

import math

import jax
import keras
import numpy as np
import optax
from keras import layers

from jaxcomponents.training import Model
from jaxcomponents.weights import load_keras
from tests.helpers import assert_close, write_legacy_h5
from tests.kuc_references import as_list


class GELU(layers.Layer):
  """keras-unet-collection's GELU: the tanh approximation."""

  def call(self, x):
    return 0.5 * x * (1.0 + keras.ops.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


class Snake(layers.Layer):
  """keras-unet-collection's Snake, its `beta_factor` a saved non-trainable weight as in Keras 2."""

  def __init__(self, beta=0.5, **kwargs):
    super().__init__(**kwargs)
    self.beta = beta

  def build(self, input_shape):
    self.beta_factor = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.beta),
                                       trainable=False, name="beta_factor")

  def call(self, x):
    return x + (1.0 / self.beta_factor) * keras.ops.square(keras.ops.sin(self.beta_factor * x))


class BatchNormalization(layers.BatchNormalization):
  """Keras 2's fused batch norm, kuc's engine: a training step moves the moving variance towards the unbiased
  batch variance (Keras 3's moves it towards the biased one)."""

  def call(self, inputs, training=None, mask=None):
    before = keras.ops.convert_to_tensor(self.moving_variance)
    outputs = super().call(inputs, training=training, mask=mask)
    if training and self.trainable:
      x = keras.ops.cast(inputs, "float32")
      axes = [i for i in range(len(x.shape)) if i != self.axis % len(x.shape)]
      count = math.prod(x.shape[i] for i in axes)
      unbiased = keras.ops.var(x, axis=axes) * count / (count - 1)
      self.moving_variance.assign(before * self.momentum + unbiased * (1.0 - self.momentum))
    return outputs


def activation_layer(name: str, layer_name: str):
  """kuc's `eval(activation)(name=...)`: Keras 2's activation layers with their defaults (LeakyReLU 0.3)."""
  if name == "LeakyReLU":
    return layers.LeakyReLU(negative_slope=0.3, name=layer_name)
  if name in ("GELU", "Snake"):
    return {"GELU": GELU, "Snake": Snake}[name](name=layer_name)
  if name == "Sigmoid":
    return layers.Activation("sigmoid", name=layer_name)
  return getattr(layers, name)(name=layer_name)


def _layer(kind: str, rank: int):
  return getattr(layers, kind.format(rank))


def conv(rank: int, *args, **kwargs):
  return _layer("Conv{}D", rank)(*args, **kwargs)


def _normalized(X, batch_norm, activation, name):
  """kuc's `[BatchNormalization] -> [activation]` after a convolution named `name`."""
  if batch_norm:
    X = BatchNormalization(name=f"{name}_bn")(X)
  return X if activation is None else activation_layer(activation, f"{name}_activation")(X)


def CONV_stack(X, channel, kernel_size=3, stack_num=2, dilation_rate=1, activation="ReLU", batch_norm=False,
               name="conv_stack"):
  rank = len(X.shape) - 2
  for i in range(stack_num):
    X = conv(rank, channel, kernel_size, padding="same", use_bias=not batch_norm, dilation_rate=dilation_rate,
             name=f"{name}_{i}")(X)
    X = _normalized(X, batch_norm, activation, f"{name}_{i}")
  return X


def Res_CONV_stack(X, X_skip, channel, res_num, activation="ReLU", batch_norm=False, name="res_conv"):
  X = CONV_stack(X, channel, kernel_size=3, stack_num=res_num, dilation_rate=1, activation=activation,
                 batch_norm=batch_norm, name=name)
  X = layers.add([X_skip, X], name=f"{name}_add")
  return activation_layer(activation, f"{name}_add_activation")(X)


def encode_layer(X, channel, pool_size, pool, kernel_size="auto", activation="ReLU", batch_norm=False,
                 name="encode"):
  rank = len(X.shape) - 2
  if pool is True:
    pool = "max"
  if pool == "max":
    return _layer("MaxPooling{}D", rank)(pool_size, name=f"{name}_maxpool")(X)
  if pool == "ave":
    return _layer("AveragePooling{}D", rank)(pool_size, name=f"{name}_avepool")(X)
  kernel_size = pool_size if kernel_size == "auto" else kernel_size
  X = conv(rank, channel, kernel_size, strides=pool_size, padding="valid", use_bias=not batch_norm,
           name=f"{name}_stride_conv")(X)
  return _normalized(X, batch_norm, activation, name)


def decode_layer(X, channel, pool_size, unpool, kernel_size=3, activation="ReLU", batch_norm=False, name="decode"):
  """In 3-D, `unpool` True or 'nearest' is `UpSampling3D` (Keras's only 3-D upsampling: it repeats voxels)."""
  rank = len(X.shape) - 2
  if unpool is not False:
    if rank == 2:
      interpolation = "nearest" if unpool == "nearest" else "bilinear"
      return layers.UpSampling2D(pool_size, interpolation=interpolation, name=f"{name}_unpool")(X)
    return _layer("UpSampling{}D", rank)(pool_size, name=f"{name}_unpool")(X)
  kernel_size = pool_size if kernel_size == "auto" else kernel_size
  X = _layer("Conv{}DTranspose", rank)(channel, kernel_size, strides=pool_size, padding="same",
                                      name=f"{name}_trans_conv")(X)
  return _normalized(X, batch_norm, activation, name)


def attention_gate(X, g, channel, activation="ReLU", attention="add", name="att"):
  rank = len(X.shape) - 2
  theta_att = conv(rank, channel, 1, use_bias=True, name=f"{name}_theta_x")(X)
  phi_g = conv(rank, channel, 1, use_bias=True, name=f"{name}_phi_g")(g)
  query = (layers.add if attention == "add" else layers.multiply)([theta_att, phi_g], name=f"{name}_add")
  f = activation_layer(activation, f"{name}_activation")(query)
  psi_f = conv(rank, 1, 1, use_bias=True, name=f"{name}_psi_f")(f)
  coef_att = layers.Activation("sigmoid", name=f"{name}_sigmoid")(psi_f)
  return layers.multiply([X, coef_att], name=f"{name}_masking")


def CONV_output(X, n_labels, kernel_size=1, activation="Softmax", name="conv_output"):
  X = conv(len(X.shape) - 2, n_labels, kernel_size, padding="same", use_bias=True, name=name)(X)
  if activation:
    X = activation_layer(activation, f"{name}_activation")(X)
  return X


def UNET_left(X, channel, kernel_size=3, stack_num=2, activation="ReLU", pool=True, batch_norm=False, name="left0"):
  X = encode_layer(X, channel, 2, pool, activation=activation, batch_norm=batch_norm, name=f"{name}_encode")
  return CONV_stack(X, channel, kernel_size, stack_num=stack_num, activation=activation, batch_norm=batch_norm,
                    name=f"{name}_conv")


def UNET_right(X, X_list, channel, kernel_size=3, stack_num=2, activation="ReLU", unpool=True, batch_norm=False,
               concat=True, name="right0"):
  X = decode_layer(X, channel, 2, unpool, activation=activation, batch_norm=batch_norm, name=f"{name}_decode")
  X = CONV_stack(X, channel, kernel_size, stack_num=1, activation=activation, batch_norm=batch_norm,
                 name=f"{name}_conv_before_concat")
  if concat:
    X = layers.concatenate([X, *X_list], axis=-1, name=f"{name}_concat")
  return CONV_stack(X, channel, kernel_size, stack_num=stack_num, activation=activation, batch_norm=batch_norm,
                    name=f"{name}_conv_after_concat")


def UNET_att_right(X, X_left, channel, att_channel, kernel_size=3, stack_num=2, activation="ReLU",
                   atten_activation="ReLU", attention="add", unpool=True, batch_norm=False, name="right0"):
  X = decode_layer(X, channel, 2, unpool, activation=activation, batch_norm=batch_norm, name=f"{name}_decode")
  X_left = attention_gate(X=X_left, g=X, channel=att_channel, activation=atten_activation, attention=attention,
                          name=f"{name}_att")
  X = layers.concatenate([X, X_left], axis=-1, name=f"{name}_concat")
  return CONV_stack(X, channel, kernel_size, stack_num=stack_num, activation=activation, batch_norm=batch_norm,
                    name=f"{name}_conv_after_concat")


def unet_3d(input_size, filter_num, n_labels, stack_num_down=2, stack_num_up=2, activation="ReLU",
            output_activation="Softmax", batch_norm=False, pool=True, unpool=True, name="unet", attention=None,
            atten_activation="ReLU"):
  """kuc's `unet_2d` (or `att_unet_2d` with `attention` "add"/"multiply") without a backbone, in 3-D."""
  inputs = keras.Input(input_size)
  X, skips = inputs, []
  X = CONV_stack(X, filter_num[0], stack_num=stack_num_down, activation=activation, batch_norm=batch_norm,
                 name=f"{name}_down0")
  skips.append(X)
  for i, f in enumerate(filter_num[1:]):
    X = UNET_left(X, f, stack_num=stack_num_down, activation=activation, pool=pool, batch_norm=batch_norm,
                  name=f"{name}_down{i + 1}")
    skips.append(X)
  skips = skips[::-1]
  X = skips[0]
  for i, f in enumerate(filter_num[:-1][::-1]):
    if attention is None:
      X = UNET_right(X, [skips[i + 1]], f, stack_num=stack_num_up, activation=activation, unpool=unpool,
                     batch_norm=batch_norm, name=f"{name}_up{i}")
    else:
      X = UNET_att_right(X, skips[i + 1], f, att_channel=f // 2, stack_num=stack_num_up, activation=activation,
                         atten_activation=atten_activation, attention=attention, unpool=unpool,
                         batch_norm=batch_norm, name=f"{name}_up{i}")
  outputs = CONV_output(X, n_labels, kernel_size=1, activation=output_activation, name=f"{name}_output")
  return keras.Model(inputs, outputs, name=f"{name}_model")


def randomize(model, seed: int) -> None:
  """Every weight random, as make_unet_references.py draws kuc's: fan-in scaled kernels, positive variances."""
  rng = np.random.default_rng(seed)
  for w in model.weights:
    shape, short = tuple(w.shape), w.path.split("/")[-1]
    if short in ("kernel", "depthwise_kernel"):
      fan_in = int(np.prod(shape[:-1] if short == "kernel" else shape[:-2]))
      value = rng.normal(0.0, np.sqrt(1.0 / fan_in), shape)
    elif short in ("gamma", "moving_variance"):
      value = rng.uniform(0.5, 1.5, shape)
    elif short == "alpha":
      value = rng.normal(0.2, 0.2, shape)
    elif short == "beta_factor":
      value = rng.uniform(0.4, 1.2, shape)
    else:
      value = rng.normal(0.0, 0.2, shape)
    w.assign(value.astype(np.float32))


def check_twin(ours, theirs, x: np.ndarray, path, *, seed: int = 0, tol: float = 1e-5,
               train_tol: float = 1e-4, learning_rate: float = 0.05) -> None:
  """`ours` (a library model) computes what the Keras 3 model `theirs` computes, given its weights.

  Randomises `theirs`, saves it through Keras's legacy `.h5` writer at
  `path`, loads that file by layer name, then compares the outputs in
  inference mode (within `tol` of their scale), the parameter counts, and one
  SGD step on the mean squared error towards random targets (deep-supervision
  outputs weighted 0.5, the last 1): its loss and the outputs after it
  (`train_tol`).
  """
  randomize(theirs, seed)
  write_legacy_h5(path, theirs)
  variables = load_keras(ours, str(path), x, match="name")
  expected = [np.asarray(y) for y in as_list(theirs(x, training=False))]
  actual = as_list(jax.jit(ours.apply)(variables, x))
  assert len(actual) == len(expected)
  for got, want in zip(actual, expected):
    assert np.std(want) > 1e-3, "the Keras output is nearly constant"
    assert_close(got, want, tol=tol)
  assert sum(int(np.size(v)) for v in jax.tree.leaves(variables)) == theirs.count_params()
  rng = np.random.default_rng(seed + 1)
  targets = [rng.uniform(size=y.shape).astype(np.float32) for y in expected]
  weights = [0.5] * (len(targets) - 1) + [1.0]
  several = len(targets) > 1
  theirs.compile(optimizer=keras.optimizers.SGD(learning_rate), loss=["mean_squared_error"] * len(targets)
                 if several else "mean_squared_error", loss_weights=weights if several else None)
  their_loss = theirs.train_on_batch(x, targets if several else targets[0])
  their_loss = their_loss[0] if isinstance(their_loss, (list, tuple)) else their_loss
  trainer = Model(ours, variables)
  trainer.compile(optimizer=optax.sgd(learning_rate), loss=["mean_squared_error"] * len(targets) if several
                  else "mean_squared_error", loss_weights=weights if several else None)
  logs = trainer.train_on_batch(x, targets if several else targets[0], return_dict=True)
  np.testing.assert_allclose(logs["loss"], their_loss, rtol=train_tol)
  after = [np.asarray(y) for y in as_list(theirs(x, training=False))]
  for got, want in zip(as_list(trainer.predict_on_batch(x)), after):
    assert_close(got, want, tol=train_tol)
