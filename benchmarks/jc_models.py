"""The jaxcomponents side of each family, built only from jaxcomponents components and models.

Each builder takes a `benchmarks.families.Size` and returns a Linen module
called as `module(x, train=...)` with softmax outputs, like the Keras twin.
Imports are inside the builders, so a family whose component is missing from
this checkout fails alone, with the import error in the report.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from benchmarks.families import Size
  >>> model = dense_stack(Size(2, (4,), 3, {"units": 8}))
  >>> variables = model.init(jax.random.key(0), jnp.ones((2, 4)))
  >>> model.apply(variables, jnp.ones((2, 4))).shape
  (2, 3)
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from benchmarks import families


class DenseStack(nn.Module):
  """Two `Dense(units, relu, dropout=rate)` components, then `Dense(classes, softmax)`."""

  units: int
  classes: int
  rate: float = 0.2

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    from jaxcomponents.layers import Dense
    x = Dense(self.units, activation="relu", dropout=self.rate)(x, train=train)
    x = Dense(self.units, activation="relu", dropout=self.rate)(x, train=train)
    return Dense(self.classes, activation="softmax")(x, train=train)


class ConvStack(nn.Module):
  """Two `Convolution(kind, 3, relu)` components over `dims` axes, global average pooling, `Dense(classes, softmax)`."""

  kind: str
  filters: int
  classes: int
  dims: int = 2

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    from jaxcomponents.layers import Convolution, Dense
    features = None if self.kind == "depthwise" else self.filters
    strides = 2 if self.kind == "transpose" else 1
    for _ in range(2):
      x = Convolution(features, 3, strides=strides, kind=self.kind, dims=self.dims, activation="relu")(x, train=train)
    return Dense(self.classes, activation="softmax")(jnp.mean(x, axis=tuple(range(1, 1 + self.dims))), train=train)


class SeedCNN(nn.Module):
  """The seed notes' MNIST CNN from `Convolution`, `Dropout` and `Dense` components, with the options users set.

  The defaults are the seed's arrangement (VALID, max pooling, dropout after
  the pooled component); `dropout_inside` gives the second component the
  dropout instead (ReLU -> dropout -> pool, the component's order), `strides`
  replaces its pooling by strided convolution.
  """

  classes: int
  padding: str = "VALID"
  batch_norm: bool = False
  pool: str = "max"
  strides: int = 1
  dilation: int = 1
  dropout_inside: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    from jaxcomponents.layers import Convolution, Dense, Dropout
    options = dict(padding=self.padding, activation="relu", batch_norm=self.batch_norm,
                   kernel_dilation=self.dilation)
    x = Convolution(32, 3, **options)(x, train=train)
    x = Convolution(32, 3, strides=self.strides, pool=None if self.strides > 1 else self.pool,
                    dropout=0.25 if self.dropout_inside else 0.0, **options)(x, train=train)
    if not self.dropout_inside:
      x = Dropout(0.25)(x, train=train)
    x = Dense(128, activation="relu", dropout=0.5)(x.reshape((x.shape[0], -1)), train=train)
    return Dense(self.classes, activation="softmax")(x, train=train)


class RecurrentClassifier(nn.Module):
  """A `Recurrent(units, cell)` component, its last output into `Dense(classes, softmax)`."""

  cell: str
  units: int
  classes: int

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    from jaxcomponents.layers.recurrent import Recurrent
    from jaxcomponents.layers import Dense
    return Dense(self.classes, activation="softmax")(Recurrent(self.units, cell=self.cell)(x, train=train), train=train)


def dense_stack(size):
  return DenseStack(size.options["units"], size.classes)


def conv_stack(size):
  return ConvStack("conv", size.options["filters"], size.classes)


def conv_transpose_stack(size):
  return ConvStack("transpose", size.options["filters"], size.classes)


def separable_conv_stack(size):
  return ConvStack("separable", size.options["filters"], size.classes)


def depthwise_conv_stack(size):
  return ConvStack("depthwise", size.options["filters"], size.classes)


def mnist_cnn(size):
  return SeedCNN(size.classes, **size.options)


def conv_stack_nd(size):
  """The matrix's convolution stacks: `kind` and `dims` from the size's options."""
  return ConvStack(size.options["kind"], size.options["filters"], size.classes, size.options["dims"])


def lstm(size):
  return RecurrentClassifier("lstm", size.options["units"], size.classes)


def gru(size):
  return RecurrentClassifier("gru", size.options["units"], size.classes)


def simple_rnn(size):
  return RecurrentClassifier("rnn", size.options["units"], size.classes)


def vgg16(size):
  from jaxcomponents.models import VGG16
  return VGG16(classes=size.classes)


def resnet50(size):
  from jaxcomponents.models import ResNet50
  return ResNet50(classes=size.classes)


def inception_v3(size):
  from jaxcomponents.models import InceptionV3
  return InceptionV3(classes=size.classes)


def mobilenet_v2(size):
  from jaxcomponents.models import MobileNetV2
  return MobileNetV2(classes=size.classes)


def _unet(size, attention):
  from jaxcomponents.models import UNet
  return UNet(filter_num=tuple(size.options["filters"]), n_labels=size.classes,
              batch_norm=size.options["batch_norm"], attention=attention, weights=None)


def unet(size):
  return _unet(size, attention=False)


def unet_collection(size):
  """A keras-unet-collection twin by its function name and kuc's arguments (`size.options`)."""
  from jaxcomponents import models
  return families.zoo_model(models, size)


def attention_unet(size):
  return _unet(size, attention=True)
