"""What each Keras layer class computes, built from its `get_config()`.

`LAYERS` maps a Keras class name to a `LayerRule`: `build(config, name,
options)` returns the layer's call, `fn(*args, train, **kwargs)`, creating
jaxcomponents' own modules (named after the Keras layer) for layers with
weights. `problems(class_name, config)` lists what is not supported before
anything is built. `OPS` does the same for the `keras.ops` operations Keras 3
records in a functional graph (masks are such operations).

Example:
  >>> import jax.numpy as jnp
  >>> call = LAYERS["Flatten"].build({"data_format": "channels_last"}, "flatten", {})
  >>> call(jnp.ones((2, 3, 4)), train=False).shape
  (2, 12)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents import activations
from jaxcomponents.layers.conv import Convolution
from jaxcomponents.layers.dense import Dense
from jaxcomponents.layers.dropout import Dropout
from jaxcomponents.layers.embedding import Embedding
from jaxcomponents.layers.normalization import BatchNorm
from jaxcomponents.layers.pooling import pool
from jaxcomponents.layers.recurrent import Recurrent
from jaxcomponents.models.unet_blocks import PReLU
from jaxcomponents.keras.config import activation_name, all_checks, as_tuple, channels_last, known_activation
from jaxcomponents.keras.record import KerasClass
from jaxcomponents.keras.records import RECORDS

LayerRule = KerasClass
_tuple, _channels_last, _known_activation, _checks = as_tuple, channels_last, known_activation, all_checks


def _activation(config, key="activation"):
  return activation_name(config, key)

Config = Mapping[str, Any]
Call = Callable[..., Any]


# Dense, convolutions, pooling.

def _dense(config, name, options):
  layer = Dense(config["units"], _activation(config), config.get("use_bias", True), name=name, **options)
  return lambda x, train: layer(x, train=train)


def _conv(kind: str, dims: int):
  def build(config, name, options):
    layer = Convolution(
        config.get("filters"), _tuple(config["kernel_size"]), _tuple(config.get("strides", 1)),
        config.get("padding", "valid").upper(), kind=kind, dims=dims,
        kernel_dilation=_tuple(config.get("dilation_rate", 1)), feature_group_count=config.get("groups", 1),
        depth_multiplier=config.get("depth_multiplier", 1),
        output_padding=None if config.get("output_padding") is None else _tuple(config["output_padding"]),
        activation=_activation(config), use_bias=config.get("use_bias", True), name=name, **options)
    return lambda x, train: layer(x, train=train)
  return LayerRule(build, check=_checks(_channels_last, _known_activation()), creates_module=True)


def _pooling(kind: str):
  def build(config, name, options):
    strides = config.get("strides")
    return lambda x, train: pool(x, kind, _tuple(config["pool_size"]), None if strides is None else _tuple(strides),
                                 config.get("padding", "valid"))
  return LayerRule(build, check=_channels_last)


def _global_pooling(kind: str, dims: int):
  def build(config, name, options):
    keepdims = config.get("keepdims", False)
    axes = tuple(range(1, dims + 1))

    def call(x, train, mask=None):
      if kind == "max":
        return jnp.max(x, axis=axes, keepdims=keepdims)
      if mask is None:
        return jnp.mean(x, axis=axes, keepdims=keepdims)
      weight = mask.astype(x.dtype)[..., None]  # Keras's masked mean over the steps
      return jnp.sum(x * weight, axis=axes, keepdims=keepdims) / jnp.sum(weight, axis=axes, keepdims=keepdims)
    return call
  return LayerRule(build, kwargs=("mask",) if kind == "avg" and dims == 1 else (), check=_channels_last)


# Normalization.

def _batch_norm(config, name, options):
  layer = BatchNorm(momentum=config.get("momentum", 0.99), epsilon=config.get("epsilon", 1e-3),
                    use_bias=config.get("center", True), use_scale=config.get("scale", True), name=name,
                    dtype=options.get("dtype"), param_dtype=options.get("param_dtype", jnp.float32))

  def call(x, train):
    axis = config.get("axis", -1)
    if _tuple(axis) not in ((-1,), (x.ndim - 1,)):
      raise ValueError(f"BatchNormalization {name!r}: axis={axis!r} is not supported; only the last axis.")
    return layer(x, use_running_average=not train)
  return call


def _layer_norm(config, name, options):
  axes = _tuple(config.get("axis", -1))
  layer = nn.LayerNorm(epsilon=config.get("epsilon", 1e-3), use_bias=config.get("center", True),
                       use_scale=config.get("scale", True), reduction_axes=axes, feature_axes=axes,
                       use_fast_variance=False, name=name, dtype=options.get("dtype"),
                       param_dtype=options.get("param_dtype", jnp.float32))
  return lambda x, train: layer(x)


def _normalization(config, name, options):
  """`(x - mean) / max(sqrt(variance), 1e-7)`; `from_keras` puts the adapted statistics in the config."""
  mean, variance = jnp.asarray(config["mean"], jnp.float32), jnp.asarray(config["variance"], jnp.float32)
  scale = jnp.maximum(jnp.sqrt(variance), 1e-7)
  if config.get("invert", False):
    return lambda x, train: mean + x * scale
  return lambda x, train: (x - mean) / scale


def _normalization_check(config):
  if config.get("mean") is None or config.get("variance") is None:
    return ["no mean and variance (adapt the layer, or give them)"]
  return []


# Activations.

def _activation_layer(config, name, options):
  fn = activations.get(_activation(config))
  return lambda x, train: fn(x)


def _relu(config, name, options):
  """Keras's `ReLU(max_value, negative_slope, threshold)`."""
  max_value, slope, threshold = config.get("max_value"), config.get("negative_slope", 0.0), config.get("threshold", 0.0)

  def call(x, train):
    negative = jax.nn.relu(threshold - x) if slope else 0.0
    y = jnp.where(x > threshold, x, 0.0) if threshold else jax.nn.relu(x)
    if max_value is not None:
      y = jnp.clip(y, 0.0, max_value)
    return y - slope * negative if slope else y
  return call


def _softmax(config, name, options):
  axis = config.get("axis", -1)

  def call(x, train, mask=None):
    if mask is not None:
      keep = mask if mask.dtype == jnp.bool_ else mask > 0.5
      x = jnp.where(keep, x, -1e9)
    axes = _tuple(axis)
    y = jnp.exp(x - jax.nn.logsumexp(x, axis=axes, keepdims=True)) if len(axes) > 1 else jax.nn.softmax(x, axes[0])
    return y if mask is None else jnp.where(keep, y, 0.0)
  return call


def _prelu(config, name, options):
  shared = config.get("shared_axes")
  layer = PReLU(shared_axes=None if shared is None else _tuple(shared), name=name,
                dtype=options.get("dtype"), param_dtype=options.get("param_dtype", jnp.float32))
  return lambda x, train: layer(x)


class LayerScale(nn.Module):
  """ConvNeXt's `LayerScale`: `x * gamma`, one factor per channel (stored as `scale`, Keras's `gamma`)."""

  projection_dim: int
  init_values: float

  @nn.compact
  def __call__(self, x):
    return x * self.param("scale", nn.initializers.constant(self.init_values), (self.projection_dim,))


def _layer_scale(config, name, options):
  layer = LayerScale(config["projection_dim"], config["init_values"], name=name)
  return lambda x, train: layer(x)


# Dropout.

def _dropout(spatial: int):
  """Keras's Dropout (`spatial` 0; `noise_shape` 1s: axes sharing one draw) and SpatialDropout1D/2D/3D."""
  def build(config, name, options):
    shared = tuple(range(1, spatial + 1))
    if config.get("noise_shape") is not None:
      shared = tuple(axis for axis, size in enumerate(config["noise_shape"]) if size == 1)
    layer = Dropout(config["rate"], broadcast_dims=shared, name=name)
    return lambda x, train: layer(x, train=train)
  return LayerRule(build, check=_channels_last, creates_module=True)


# Reshaping.

def _flatten(config, name, options):
  return lambda x, train: x.reshape(x.shape[0], -1)


def _reshape(config, name, options):
  target = tuple(config["target_shape"])
  return lambda x, train: x.reshape(x.shape[0], *target)


def _permute(config, name, options):
  dims = tuple(config["dims"])
  return lambda x, train: jnp.transpose(x, (0, *dims))


def _repeat_vector(config, name, options):
  n = config["n"]
  return lambda x, train: jnp.repeat(x[:, None, :], n, axis=1)


def _pairs(value, dims: int) -> list[tuple[int, int]]:
  """Keras's padding/cropping argument (int, per-axis ints or per-axis pairs) as `dims` (before, after) pairs."""
  if isinstance(value, int):
    return [(value, value)] * dims
  value = list(value)
  if dims == 1 and len(value) == 2 and all(isinstance(v, int) for v in value):
    return [tuple(value)]
  return [(v, v) if isinstance(v, int) else tuple(v) for v in value]


def _zero_padding(dims: int):
  def build(config, name, options):
    pads = _pairs(config["padding"], dims)
    return lambda x, train: jnp.pad(x, [(0, 0), *pads, (0, 0)])
  return LayerRule(build, check=_channels_last)


def _cropping(dims: int):
  def build(config, name, options):
    crops = _pairs(config["cropping"], dims)

    def call(x, train):
      index = tuple(slice(a, x.shape[1 + i] - b) for i, (a, b) in enumerate(crops))
      return x[(slice(None), *index)]
    return call
  return LayerRule(build, check=_channels_last)


_RESIZE_METHODS = {"nearest": "nearest", "bilinear": "linear", "bicubic": "cubic", "lanczos3": "lanczos3",
                   "lanczos5": "lanczos5"}


def _up_sampling(dims: int):
  def build(config, name, options):
    size = _tuple(config.get("size", 2)) if dims > 1 else (config.get("size", 2),)
    method = config.get("interpolation", "nearest")

    def call(x, train):
      if method == "nearest":
        for axis, factor in enumerate(size, start=1):
          x = jnp.repeat(x, factor, axis=axis)
        return x
      shape = (x.shape[0], *(d * f for d, f in zip(x.shape[1:-1], size)), x.shape[-1])
      return jax.image.resize(x, shape, method=_RESIZE_METHODS[method], antialias=False)
    return call

  def check(config):
    method = config.get("interpolation", "nearest")
    return [] if method in _RESIZE_METHODS else [f"interpolation={method!r} (known: {sorted(_RESIZE_METHODS)})"]
  return LayerRule(build, check=_checks(check, _channels_last))


def _resizing(config, name, options):
  height, width, method = config["height"], config["width"], config.get("interpolation", "bilinear")
  antialias = config.get("antialias", False)

  def call(x, train):
    shape = (x.shape[0], height, width, x.shape[-1])
    return jax.image.resize(x.astype(jnp.float32), shape, method=_RESIZE_METHODS[method], antialias=antialias)
  return call


def _resizing_check(config):
  problems = _channels_last(config)
  for key in ("crop_to_aspect_ratio", "pad_to_aspect_ratio"):
    if config.get(key):
      problems.append(f"{key}=True (only False)")
  if config.get("interpolation", "bilinear") not in _RESIZE_METHODS:
    problems.append(f"interpolation={config.get('interpolation')!r} (known: {sorted(_RESIZE_METHODS)})")
  return problems


def _rescaling(config, name, options):
  scale = jnp.asarray(config.get("scale", 1.0), jnp.float32)
  offset = jnp.asarray(config.get("offset", 0.0), jnp.float32)
  return lambda x, train: x.astype(jnp.float32) * scale + offset


# Merging.

def _merge(fn: Callable[[list[jax.Array]], jax.Array]):
  def build(config, name, options):
    return lambda xs, train: fn(list(xs))
  return LayerRule(build)


def _concatenate(config, name, options):
  axis = config.get("axis", -1)
  return lambda xs, train: jnp.concatenate(list(xs), axis=axis)


def _l2_normalize(x, axis):
  return x * jnp.minimum(jax.lax.rsqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True)), 1e7)


def _dot(config, name, options):
  """Keras's `Dot(axes, normalize)`: a dot product per example over the given axes."""
  def call(xs, train):
    x, y = xs
    given = config["axes"]
    if isinstance(given, int):
      axes = [given % x.ndim, given % y.ndim] if given < 0 else [given, given]
    else:
      axes = [a % t.ndim if a < 0 else a for a, t in zip(given, (x, y))]
    if config.get("normalize", False):
      x, y = _l2_normalize(x, axes[0]), _l2_normalize(y, axes[1])
    out = jax.lax.dot_general(x, y, (((axes[0],), (axes[1],)), ((0,), (0,))),
                              precision=options.get("precision"))
    return out[:, None] if out.ndim == 1 else out
  return call


# Embedding, recurrent layers and wrappers.

def _embedding(config, name, options):
  layer = Embedding(config["input_dim"], config["output_dim"], name=name, dtype=options.get("dtype"),
                    param_dtype=options.get("param_dtype", jnp.float32))
  return lambda x, train: layer(x)


_CELLS = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}


def _recurrent_options(class_name: str, config: Config) -> dict[str, Any]:
  options = {
      "cell": _CELLS[class_name], "activation": _activation(config),
      "use_bias": config.get("use_bias", True), "return_sequences": config.get("return_sequences", False),
      "return_state": config.get("return_state", False), "go_backwards": config.get("go_backwards", False),
      "dropout": config.get("dropout", 0.0), "recurrent_dropout": config.get("recurrent_dropout", 0.0),
      "zero_output_for_mask": config.get("zero_output_for_mask"),
  }
  if class_name != "SimpleRNN":
    options["recurrent_activation"] = _activation({"activation": config.get("recurrent_activation", "sigmoid")})
  if class_name == "GRU":
    options["reset_after"] = config.get("reset_after", True)
  if class_name == "LSTM":
    options["unit_forget_bias"] = config.get("unit_forget_bias", True)
  return options


def _recurrent(class_name: str):
  def build(config, name, options):
    layer = Recurrent(config["units"], **_recurrent_options(class_name, config), name=name, **options)

    def call(x, train, mask=None, initial_state=None):
      return layer(x, train=train, mask=mask, initial_state=initial_state)
    return call
  return LayerRule(build, kwargs=("mask", "initial_state"), check=_recurrent_check, creates_module=True)


def _recurrent_check(config):
  problems = _known_activation()(config) + _known_activation("recurrent_activation")(config)
  if config.get("stateful"):
    problems.append("stateful=True (only False)")
  return problems


def _inner(config: Config) -> tuple[str, Config]:
  layer = config["layer"]
  return layer["class_name"], layer["config"]


def _bidirectional(config, name, options):
  class_name, inner = _inner(config)
  merge = config.get("merge_mode", "concat")
  # Keras's Bidirectional forces zero_output_for_mask = return_sequences on both directions.
  recurrent = {**_recurrent_options(class_name, inner), "go_backwards": False, "zero_output_for_mask": None}
  layer = Recurrent(inner["units"], **recurrent, bidirectional=merge or "concat", name=name, **options)
  units = inner["units"]

  def call(x, train, mask=None, initial_state=None):
    out = layer(x, train=train, mask=mask, initial_state=initial_state)
    if merge is not None:
      return out
    y, *states = out if recurrent["return_state"] else (out,)
    return (y[..., :units], y[..., units:], *states)  # merge_mode=None: the two directions apart
  return call


def _mirrored(config: Config) -> dict[str, Any]:
  return {k: v for k, v in config.items() if k not in ("name", "go_backwards")}


def _bidirectional_check(config):
  class_name, inner = _inner(config)
  problems = []
  if class_name not in _CELLS:
    problems.append(f"a wrapped {class_name} (only LSTM, GRU, SimpleRNN)")
  else:
    problems += _recurrent_check(inner)
  backward = config.get("backward_layer")
  if backward is not None and _mirrored(backward["config"]) != _mirrored(inner):
    problems.append("a backward_layer configured unlike the forward layer (only the mirrored forward layer)")
  if config.get("merge_mode", "concat") not in ("concat", "sum", "mul", "ave", None):
    problems.append(f"merge_mode={config['merge_mode']!r}")
  return problems


class _TimeDistributed(nn.Module):
  """Applies a layer to every step of `(batch, time, ...)`."""

  inner_class: str
  config: Any  # the inner layer's config as a frozen tuple of items
  inner_name: str
  options: Any

  @nn.compact
  def __call__(self, x, *, train):
    inner = LAYERS[self.inner_class].build(dict(self.config), self.inner_name, dict(self.options))
    batch, time = x.shape[:2]
    y = inner(x.reshape(batch * time, *x.shape[2:]), train=train)
    return y.reshape(batch, time, *y.shape[1:])


def _time_distributed(config, name, options):
  class_name, inner = _inner(config)
  layer = _TimeDistributed(class_name, _freeze(inner), inner.get("name", class_name.lower()),
                           _freeze(options), name=name)
  return lambda x, train, mask=None: layer(x, train=train)


def _freeze(value):
  """A config as nested tuples, hashable as a Flax module field needs."""
  if isinstance(value, Mapping):
    return tuple((k, _freeze(v)) for k, v in value.items())
  if isinstance(value, (list, tuple)):
    return tuple(_freeze(v) for v in value)
  return value


def _time_distributed_check(config):
  class_name, inner = _inner(config)
  if class_name not in LAYERS:
    return [f"a wrapped {class_name}, which is not supported"]
  return LAYERS[class_name].check(inner)


def _masking(config, name, options):
  value = config.get("mask_value", 0.0)
  return lambda x, train: x * jnp.any(x != value, axis=-1, keepdims=True).astype(x.dtype)


def _identity(config, name, options):
  return lambda x, train: x


def _mean(xs):
  return sum(xs[1:], xs[0]) / len(xs)


def _fold(fn):
  def merged(xs):
    out = xs[0]
    for x in xs[1:]:
      out = fn(out, x)
    return out
  return merged


LAYERS: dict[str, LayerRule] = {
    "InputLayer": LayerRule(_identity),
    "Identity": LayerRule(_identity),
    "Dense": LayerRule(_dense, check=_known_activation(), creates_module=True),
    **{f"Conv{d}D": _conv("conv", d) for d in (1, 2, 3)},
    **{f"Conv{d}DTranspose": _conv("transpose", d) for d in (1, 2, 3)},
    **{f"SeparableConv{d}D": _conv("separable", d) for d in (1, 2)},
    **{f"DepthwiseConv{d}D": _conv("depthwise", d) for d in (1, 2)},
    **{f"MaxPooling{d}D": _pooling("max") for d in (1, 2, 3)},
    **{f"AveragePooling{d}D": _pooling("avg") for d in (1, 2, 3)},
    **{f"GlobalMaxPooling{d}D": _global_pooling("max", d) for d in (1, 2, 3)},
    **{f"GlobalAveragePooling{d}D": _global_pooling("avg", d) for d in (1, 2, 3)},
    "BatchNormalization": LayerRule(_batch_norm, creates_module=True),
    "LayerNormalization": LayerRule(
        _layer_norm, check=lambda c: ["rms_scaling=True (only False)"] if c.get("rms_scaling") else [], creates_module=True),
    "Normalization": LayerRule(_normalization, check=_normalization_check),
    "Dropout": _dropout(0),
    **{f"SpatialDropout{d}D": _dropout(d) for d in (1, 2, 3)},
    "Activation": LayerRule(_activation_layer, check=_known_activation()),
    "ReLU": LayerRule(_relu),
    "LeakyReLU": LayerRule(lambda c, n, o: lambda x, train: jax.nn.leaky_relu(x, c.get("negative_slope", 0.3))),
    "ELU": LayerRule(lambda c, n, o: lambda x, train: jax.nn.elu(x, c.get("alpha", 1.0))),
    "PReLU": LayerRule(_prelu, creates_module=True),
    "LayerScale": LayerRule(_layer_scale, creates_module=True),
    "Softmax": LayerRule(_softmax, kwargs=("mask",)),
    "Flatten": LayerRule(_flatten, check=_channels_last),
    "Reshape": LayerRule(_reshape),
    "Permute": LayerRule(_permute),
    "RepeatVector": LayerRule(_repeat_vector),
    **{f"ZeroPadding{d}D": _zero_padding(d) for d in (1, 2, 3)},
    **{f"Cropping{d}D": _cropping(d) for d in (1, 2, 3)},
    **{f"UpSampling{d}D": _up_sampling(d) for d in (1, 2, 3)},
    "Rescaling": LayerRule(_rescaling),
    "Resizing": LayerRule(_resizing, check=_resizing_check),
    "Add": _merge(lambda xs: sum(xs[1:], xs[0])),
    "Subtract": _merge(lambda xs: xs[0] - xs[1]),
    "Multiply": _merge(_fold(jnp.multiply)),
    "Average": _merge(_mean),
    "Maximum": _merge(_fold(jnp.maximum)),
    "Minimum": _merge(_fold(jnp.minimum)),
    "Concatenate": LayerRule(_concatenate),
    "Dot": LayerRule(_dot),
    "Embedding": LayerRule(_embedding, creates_module=True),
    **{name: _recurrent(name) for name in _CELLS},
    "Bidirectional": LayerRule(_bidirectional, kwargs=("mask", "initial_state"), check=_bidirectional_check,
                               creates_module=True),
    "TimeDistributed": LayerRule(_time_distributed, kwargs=("mask",), check=_time_distributed_check,
                                 creates_module=True),
    "Masking": LayerRule(_masking),
}


def _op(fn: Callable[..., Any], *keys: str) -> LayerRule:
  """A `keras.ops` operation recorded in a functional graph; `keys` are config entries passed as keywords."""
  def build(config, name, options):
    fixed = {k: config[k] for k in keys if k in config}
    return lambda *args, train: fn(*args, **fixed)
  return LayerRule(build)


OPS: dict[str, LayerRule] = {
    "NotEqual": _op(jnp.not_equal), "Equal": _op(jnp.equal), "Greater": _op(jnp.greater),
    "Less": _op(jnp.less), "LogicalAnd": _op(jnp.logical_and), "LogicalOr": _op(jnp.logical_or),
    "LogicalNot": _op(jnp.logical_not), "Any": _op(jnp.any, "axis", "keepdims"),
    "All": _op(jnp.all, "axis", "keepdims"), "ExpandDims": _op(jnp.expand_dims, "axis"),
    "Squeeze": _op(jnp.squeeze, "axis"), "Cast": _op(lambda x, dtype: x.astype(dtype), "dtype"),
    "Add": _op(jnp.add), "Subtract": _op(jnp.subtract), "Multiply": _op(jnp.multiply),
    "Divide": _op(jnp.divide), "Matmul": _op(jnp.matmul), "Transpose": _op(jnp.transpose, "axes"),
    "Reshape": _op(jnp.reshape, "newshape"), "Tanh": _op(jnp.tanh), "Exp": _op(jnp.exp),
    "ZerosLike": _op(jnp.zeros_like, "dtype"), "OnesLike": _op(jnp.ones_like, "dtype"),
    "Concatenate": _op(lambda xs, axis=0: jnp.concatenate(list(xs), axis), "axis"),
    "Stack": _op(lambda xs, axis=0: jnp.stack(list(xs), axis), "axis"), "Where": _op(jnp.where),
}


def rule_for(class_name: str, module: str | None) -> LayerRule | None:
  """The rule for a graph entry: a `keras.ops` operation when its module says so, else a layer."""
  if module and module.startswith("keras.src.ops"):
    return OPS.get(class_name)
  return RECORDS.get(class_name) or LAYERS.get(class_name)


def problems(class_name: str, module: str | None, config: Config, kwargs: Sequence[str] = ()) -> list[str]:
  """What keeps one graph entry from being computed (empty when it is supported)."""
  rule = rule_for(class_name, module)
  if rule is None:
    return ["its class is not supported"]
  found = rule.check(config)
  extra = sorted(set(kwargs) - set(rule.kwargs))
  if extra:
    found.append(f"call arguments {extra} (this layer takes {list(rule.kwargs) or 'none'})")
  return found

