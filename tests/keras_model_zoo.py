"""Random Keras models built from the layers `from_keras` supports, for parity tests.

`random_model(family, seed)` draws a Sequential or Functional model of one
family (dense, image1d, image2d, image3d, sequence, graph) with random layer
choices and options, and random weights (batch-norm statistics too).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

L = keras.layers
FAMILIES = ("dense", "image1d", "image2d", "image3d", "sequence", "graph")
ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "gelu", "silu", "elu", "selu", "softplus", "relu6")


def randomize(model, seed: int) -> None:
  """Random weights; variances positive."""
  rng = np.random.default_rng(seed)
  for variable in model.weights:
    shape = tuple(variable.shape)
    if "variance" in variable.path:
      value = rng.uniform(0.5, 1.5, shape)
    else:
      value = rng.normal(0.0, 0.4, shape)
    variable.assign(value.astype(str(variable.dtype)))


def _act(rng):
  return str(rng.choice(ACTIVATIONS))


def _pointwise(rng, features: int, rank: int):
  """Layers that keep the shape (channels last)."""
  choices = [
      lambda: L.BatchNormalization(epsilon=float(rng.choice([1e-3, 1e-5])), center=bool(rng.integers(2)),
                                   scale=bool(rng.integers(2))),
      lambda: L.LayerNormalization(epsilon=1e-3),
      lambda: L.Activation(_act(rng)),
      lambda: L.ReLU(max_value=float(rng.choice([6.0, 2.0])), negative_slope=float(rng.choice([0.0, 0.1])),
                     threshold=float(rng.choice([0.0, 0.2]))),
      lambda: L.LeakyReLU(negative_slope=float(rng.uniform(0.05, 0.4))),
      lambda: L.PReLU(shared_axes=list(range(1, rank - 1)) or None),
      lambda: L.ELU(alpha=float(rng.uniform(0.5, 1.5))),
      lambda: L.Dropout(0.3),
      lambda: L.Softmax() if features > 1 else L.Activation("tanh"),  # a softmax over one channel is constant
      lambda: L.Rescaling(float(rng.uniform(0.5, 2.0)), offset=float(rng.uniform(-1, 1))),
  ]
  return choices[rng.integers(len(choices))]()


def _dense(rng):
  features = int(rng.integers(3, 9))
  layers = [keras.Input((features,))]
  for _ in range(int(rng.integers(2, 5))):
    if rng.random() < 0.5:
      layers.append(L.Dense(int(rng.integers(2, 9)), activation=_act(rng), use_bias=bool(rng.integers(2))))
    else:
      layers.append(_pointwise(rng, features, 2))
  layers.append(L.Dense(3))
  return keras.Sequential(layers)


def _image(rng, dims: int):
  size = {1: 24, 2: 16, 3: 8}[dims]
  channels = int(rng.integers(2, 5))
  x = inputs = keras.Input((size,) * dims + (channels,))
  conv, pools = {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}[dims], {1: L.MaxPooling1D, 2: L.MaxPooling2D,
                                                                   3: L.MaxPooling3D}[dims]
  avg = {1: L.AveragePooling1D, 2: L.AveragePooling2D, 3: L.AveragePooling3D}[dims]
  transpose = {1: L.Conv1DTranspose, 2: L.Conv2DTranspose, 3: L.Conv3DTranspose}[dims]
  pad = {1: L.ZeroPadding1D, 2: L.ZeroPadding2D, 3: L.ZeroPadding3D}[dims]
  crop = {1: L.Cropping1D, 2: L.Cropping2D, 3: L.Cropping3D}[dims]
  up = {1: L.UpSampling1D, 2: L.UpSampling2D, 3: L.UpSampling3D}[dims]
  for _ in range(int(rng.integers(3, 6))):
    spatial = x.shape[1]
    kind = int(rng.integers(11))
    padding = str(rng.choice(["same", "valid"]))
    if dims == 1 and kind == 0:
      x = conv(int(rng.integers(2, 5)), 3, padding="causal", dilation_rate=int(rng.choice([1, 2])))(x)
    elif kind <= 2 or spatial < 4:
      strides = int(rng.choice([1, 2])) if spatial >= 6 else 1
      dilation = 1 if strides > 1 else int(rng.choice([1, 2]))
      groups = int(rng.choice([g for g in (1, 2) if x.shape[-1] % g == 0]))
      filters = groups * int(rng.integers(1, 4))
      x = conv(filters, 3, strides=strides, padding="same" if spatial < 6 else padding, dilation_rate=dilation,
               groups=groups, activation=_act(rng), use_bias=bool(rng.integers(2)))(x)
    elif kind == 3:
      x = transpose(int(rng.integers(2, 5)), int(rng.choice([2, 3])), strides=int(rng.choice([1, 2])),
                    padding=padding, activation=_act(rng))(x) if spatial <= 12 else pools(2)(x)
    elif kind == 4 and dims <= 2:
      separable = L.SeparableConv1D if dims == 1 else L.SeparableConv2D
      x = separable(int(rng.integers(2, 5)), 3, padding=padding, depth_multiplier=int(rng.choice([1, 2])),
                    strides=int(rng.choice([1, 2])))(x)
    elif kind == 5 and dims <= 2:
      depthwise = L.DepthwiseConv1D if dims == 1 else L.DepthwiseConv2D
      x = depthwise(3, padding=padding, depth_multiplier=int(rng.choice([1, 2])), strides=int(rng.choice([1, 2])))(x)
    elif kind == 6:
      x = (pools if rng.integers(2) else avg)(2, strides=int(rng.choice([1, 2])), padding=padding)(x)
    elif kind == 7:
      x = pad(1)(x) if rng.integers(2) else crop(1)(x)
    elif kind == 8 and spatial <= 12:
      interpolation = str(rng.choice(["nearest", "bilinear"])) if dims == 2 else None
      x = (up(2, interpolation=interpolation) if interpolation else up(2))(x)
    elif kind == 9:
      spatial_dropout = {1: L.SpatialDropout1D, 2: L.SpatialDropout2D, 3: L.SpatialDropout3D}[dims]
      x = spatial_dropout(0.2)(x)
    else:
      x = _pointwise(rng, x.shape[-1], dims + 2)(x)
  if rng.integers(2):
    glob = {1: (L.GlobalAveragePooling1D, L.GlobalMaxPooling1D), 2: (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D),
            3: (L.GlobalAveragePooling3D, L.GlobalMaxPooling3D)}[dims][int(rng.integers(2))]
    x = glob(keepdims=bool(rng.integers(2)))(x)
    x = L.Flatten()(x)
  else:
    x = L.Flatten()(x)
  outputs = L.Dense(3, activation="softmax")(x)
  return keras.Model(inputs, outputs)


def _sequence(rng):
  time, vocabulary = 6, 9
  if rng.integers(2):
    ids = inputs = keras.Input((time,))
    x = L.Embedding(vocabulary, 4, mask_zero=bool(rng.integers(2)))(ids)
  else:
    inputs = keras.Input((time, 3))
    x = L.Masking(0.0)(inputs) if rng.integers(2) else inputs
  cells = (L.LSTM, L.GRU, L.SimpleRNN)
  for _ in range(int(rng.integers(1, 3))):
    cell = cells[int(rng.integers(3))]
    options = {"return_sequences": True, "go_backwards": bool(rng.integers(2))}
    if cell is L.GRU:
      options["reset_after"] = bool(rng.integers(2))
    if rng.integers(2):
      options.pop("go_backwards")
      x = L.Bidirectional(cell(int(rng.integers(2, 5)), **options),
                          merge_mode=str(rng.choice(["concat", "sum", "mul", "ave"])))(x)
    else:
      x = cell(int(rng.integers(2, 5)), **options)(x)
    if rng.integers(2):
      x = L.TimeDistributed(L.Dense(int(rng.integers(2, 5))))(x)
  if rng.integers(2):
    x = L.GlobalAveragePooling1D()(x)
  else:
    x = cells[int(rng.integers(3))](3)(x)
  return keras.Model(inputs, L.Dense(2)(x))


def _graph(rng):
  """Two inputs, branches, merges, a shared layer and two outputs."""
  a, b = keras.Input((6,)), keras.Input((6,))
  shared = L.Dense(5, activation=_act(rng))
  x, y = shared(a), shared(b)
  merges = [L.Add(), L.Subtract(), L.Multiply(), L.Average(), L.Maximum(), L.Minimum(), L.Concatenate(),
            L.Dot(axes=1, normalize=bool(rng.integers(2)))]
  merged = merges[int(rng.integers(len(merges)))]([x, y])
  z = L.Dense(8)(merged)
  z = L.Reshape((2, 4))(z)
  z = L.Permute((2, 1))(z)
  z = L.Flatten()(z)
  w = L.RepeatVector(3)(y)
  w = L.Flatten()(w)
  out1 = L.Dense(2)(L.Concatenate()([z, w]))
  out2 = L.Dense(1, activation="sigmoid")(L.Maximum()([x, y]))
  return keras.Model([a, b], [out1, out2])


def random_model(family: str, seed: int):
  """A random Keras model of `family` with random weights."""
  rng = np.random.default_rng(seed)
  keras.utils.set_random_seed(seed)
  if family == "dense":
    model = _dense(rng)
  elif family.startswith("image"):
    model = _image(rng, int(family[5]))
  elif family == "sequence":
    model = _sequence(rng)
  else:
    model = _graph(rng)
  randomize(model, seed)
  return model


def random_input(model, seed: int, batch: int = 3):
  """Inputs for `model`: token ids (zeros as padding) for an embedding, padded sequences, else normal."""
  rng = np.random.default_rng(seed + 1000)
  values = []
  embedding = any(type(layer).__name__ == "Embedding" for layer in model.layers)
  for tensor in model.inputs:
    shape = (batch, *tensor.shape[1:])
    if embedding:
      x = rng.integers(1, 9, shape).astype("float32")
      x[:, -2:] = 0
      x[0] = rng.integers(1, 9, shape[1:])  # one sequence without padding
    else:
      x = rng.normal(0, 1, shape).astype("float32")
      if len(shape) == 3 and any(type(layer).__name__ == "Masking" for layer in model.layers):
        x[1:, -2:] = 0.0
    values.append(x)
  return values if len(values) > 1 else values[0]
