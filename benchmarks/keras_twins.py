"""The Keras twins of the benchmarked families: the same architectures with Keras's defaults.

Each builder takes a `benchmarks.families.Size` and returns an uncompiled
`keras.Model`; the worker compiles it with the family's optimizer and sparse
categorical cross-entropy. Keras is imported inside the builders so that the
backend (`KERAS_BACKEND`) is whatever the worker process chose.
"""

from __future__ import annotations

from benchmarks import families


def _keras():
  import keras
  return keras


def dense_stack(size):
  keras, units = _keras(), size.options["units"]
  layers = keras.layers
  return keras.Sequential([
      keras.Input(size.input_shape),
      layers.Dense(units, activation="relu"), layers.Dropout(0.2),
      layers.Dense(units, activation="relu"), layers.Dropout(0.2),
      layers.Dense(size.classes, activation="softmax"),
  ])


def _conv_stack(size, make_layer):
  keras = _keras()
  layers = keras.layers
  return keras.Sequential([
      keras.Input(size.input_shape), make_layer(layers), make_layer(layers),
      layers.GlobalAveragePooling2D(), layers.Dense(size.classes, activation="softmax"),
  ])


def conv_stack(size):
  filters = size.options["filters"]
  return _conv_stack(size, lambda layers: layers.Conv2D(filters, 3, padding="same", activation="relu"))


def conv_transpose_stack(size):
  filters = size.options["filters"]
  return _conv_stack(
      size, lambda layers: layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu"))


def separable_conv_stack(size):
  filters = size.options["filters"]
  return _conv_stack(size, lambda layers: layers.SeparableConv2D(filters, 3, padding="same", activation="relu"))


def depthwise_conv_stack(size):
  return _conv_stack(size, lambda layers: layers.DepthwiseConv2D(3, padding="same", activation="relu"))


def _recurrent(size, layer_name):
  keras = _keras()
  layers = keras.layers
  return keras.Sequential([
      keras.Input(size.input_shape), getattr(layers, layer_name)(size.options["units"]),
      layers.Dense(size.classes, activation="softmax"),
  ])


def lstm(size):
  return _recurrent(size, "LSTM")


def gru(size):
  return _recurrent(size, "GRU")


def simple_rnn(size):
  return _recurrent(size, "SimpleRNN")


def _application(size, name, **kwargs):
  keras = _keras()
  return getattr(keras.applications, name)(
      weights=None, input_shape=tuple(size.input_shape), classes=size.classes, **kwargs)


def vgg16(size):
  return _application(size, "VGG16")


def resnet50(size):
  return _application(size, "ResNet50")


def inception_v3(size):
  return _application(size, "InceptionV3")


def mobilenet_v2(size):
  return _application(size, "MobileNetV2")


def mnist_cnn(size):
  """The seed's CNN; the options are `benchmarks.jc_models.SeedCNN`'s, in the same order of layers."""
  keras = _keras()
  layers = keras.layers
  o = dict(padding="valid", batch_norm=False, pool="max", strides=1, dilation=1, dropout_inside=False)
  o.update(size.options)
  pool = {"max": layers.MaxPooling2D, "avg": layers.AveragePooling2D}[o["pool"]]

  def conv(strides=1):
    options = dict(strides=strides, padding=o["padding"].lower(), dilation_rate=o["dilation"])
    if not o["batch_norm"]:
      return [layers.Conv2D(32, 3, activation="relu", **options)]
    return [layers.Conv2D(32, 3, **options), layers.BatchNormalization(), layers.Activation("relu")]

  model = [keras.Input(size.input_shape), *conv(), *conv(o["strides"])]
  if o["dropout_inside"]:
    model.append(layers.Dropout(0.25))
  if o["strides"] == 1:
    model.append(pool(2))
  if not o["dropout_inside"]:
    model.append(layers.Dropout(0.25))
  model += [layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.5),
            layers.Dense(size.classes, activation="softmax")]
  return keras.Sequential(model)


def conv_stack_nd(size):
  """The matrix's convolution stacks: Keras's layer of `kind` over `dims` axes, twice, then the head."""
  keras, o = _keras(), size.options
  layers = keras.layers
  filters, dims = o["filters"], o["dims"]

  def layer():
    if o["kind"] == "conv":
      return getattr(layers, f"Conv{dims}D")(filters, 3, padding="same", activation="relu")
    if o["kind"] == "transpose":
      return getattr(layers, f"Conv{dims}DTranspose")(filters, 3, strides=2, padding="same", activation="relu")
    if o["kind"] == "separable":
      return getattr(layers, f"SeparableConv{dims}D")(filters, 3, padding="same", activation="relu")
    return getattr(layers, f"DepthwiseConv{dims}D")(3, padding="same", activation="relu")

  pooling = getattr(layers, f"GlobalAveragePooling{dims}D")
  return keras.Sequential([keras.Input(size.input_shape), layer(), layer(), pooling(),
                           layers.Dense(size.classes, activation="softmax")])


def _unet(size, attention):
  """keras-unet-collection's `unet_2d` / `att_unet_2d` without a backbone: max pool, bilinear upsampling, BN."""
  keras = _keras()
  layers = keras.layers
  filter_num, bn = size.options["filters"], size.options["batch_norm"]

  def conv_stack(x, channels, count):
    for _ in range(count):
      x = layers.Conv2D(channels, 3, padding="same", use_bias=not bn)(x)
      if bn:
        x = layers.BatchNormalization()(x)
      x = layers.ReLU()(x)
    return x

  def attention_gate(skip, gate, channels):
    theta = layers.Conv2D(channels, 1)(skip)
    phi = layers.Conv2D(channels, 1)(gate)
    coef = layers.Activation("sigmoid")(layers.Conv2D(1, 1)(layers.ReLU()(layers.Add()([theta, phi]))))
    return layers.Multiply()([skip, coef])

  inputs = keras.Input(size.input_shape)
  x = conv_stack(inputs, filter_num[0], 2)
  skips = [x]
  for channels in filter_num[1:]:
    x = conv_stack(layers.MaxPooling2D(2)(x), channels, 2)
    skips.append(x)
  x = skips[-1]
  for skip, channels in zip(skips[-2::-1], filter_num[-2::-1]):
    x = layers.UpSampling2D(2, interpolation="bilinear")(x)
    if attention:
      skip = attention_gate(skip, x, channels // 2)
    else:
      x = conv_stack(x, channels, 1)
    x = conv_stack(layers.Concatenate()([x, skip]), channels, 2)
  outputs = layers.Softmax()(layers.Conv2D(size.classes, 1)(x))
  return keras.Model(inputs, outputs)


def unet(size):
  return _unet(size, attention=False)


def unet_collection(size):
  """keras-unet-collection's own model, built by the same call as the jaxcomponents side (needs tf.keras)."""
  try:
    from keras_unet_collection import models
  except ImportError as e:
    raise ImportError("the unet_zoo families' Keras contender is keras-unet-collection itself: `make kuc-venv` "
                      "(TensorFlow 2.15, Keras 2) and pass --tf-python .venv-kuc/bin/python") from e
  return families.zoo_model(models, size)


def attention_unet(size):
  return _unet(size, attention=True)
