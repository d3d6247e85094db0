"""Records of Keras's layers over spatial axes: convolutions, pooling, padding, cropping, up-sampling, resizing.

Every one takes `data_format="channels_first"` too (`data_format.any_data_format`).
See `jaxcomponents.keras.record` for what a record holds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcomponents.keras.config import activation_name, as_tuple, known_activation
from jaxcomponents.keras.record import KerasClass
from jaxcomponents.keras.records.core import KERNEL_BIAS
from jaxcomponents.keras.records.data_format import any_data_format
from jaxcomponents.layers.conv import Convolution
from jaxcomponents.layers.pooling import pool

_SEPARABLE = {"depthwise_kernel": ("params", "depthwise_kernel"), "pointwise_kernel": ("params", "pointwise_kernel"),
              "bias": ("params", "bias")}
# Keras 3 calls a DepthwiseConv's kernel `kernel`; Keras 2 called it `depthwise_kernel`.
_DEPTHWISE = ({"depthwise_kernel": ("params", "depthwise_kernel"), "bias": ("params", "bias")},
              {"kernel": ("params", "depthwise_kernel"), "bias": ("params", "bias")})
_WEIGHTS = {"conv": (KERNEL_BIAS,), "transpose": (KERNEL_BIAS,), "separable": (_SEPARABLE,), "depthwise": _DEPTHWISE}

def _conv(kind: str, dims: int):
  def build(config, name, options):
    layer = Convolution(
        config.get("filters"), as_tuple(config["kernel_size"]), as_tuple(config.get("strides", 1)),
        config.get("padding", "valid").upper(), kind=kind, dims=dims,
        kernel_dilation=as_tuple(config.get("dilation_rate", 1)), feature_group_count=config.get("groups", 1),
        depth_multiplier=config.get("depth_multiplier", 1),
        output_padding=None if config.get("output_padding") is None else as_tuple(config["output_padding"]),
        activation=activation_name(config), use_bias=config.get("use_bias", True), name=name, **options)
    return lambda x, train: layer(x, train=train)
  return any_data_format(KerasClass(build, check=known_activation(), creates_module=True, weights=_WEIGHTS[kind],
                                    shape_checked=True))


def _pooling(kind: str):
  def build(config, name, options):
    strides = config.get("strides")
    return lambda x, train: pool(x, kind, as_tuple(config["pool_size"]), None if strides is None else as_tuple(strides),
                                 config.get("padding", "valid"))
  return any_data_format(KerasClass(build))


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
  return any_data_format(KerasClass(build, kwargs=("mask",) if kind == "avg" and dims == 1 else ()))



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
  return any_data_format(KerasClass(build))


def _cropping(dims: int):
  def build(config, name, options):
    crops = _pairs(config["cropping"], dims)

    def call(x, train):
      index = tuple(slice(a, x.shape[1 + i] - b) for i, (a, b) in enumerate(crops))
      return x[(slice(None), *index)]
    return call
  return any_data_format(KerasClass(build))


_RESIZE_METHODS = {"nearest": "nearest", "bilinear": "linear", "bicubic": "cubic", "lanczos3": "lanczos3",
                   "lanczos5": "lanczos5"}


def _up_sampling(dims: int):
  def build(config, name, options):
    size = as_tuple(config.get("size", 2)) if dims > 1 else (config.get("size", 2),)
    method = config.get("interpolation", "nearest")

    def call(x, train):
      if method == "nearest":
        for axis, factor in enumerate(size, start=1):
          x = jnp.repeat(x, factor, axis=axis)
        return x
      shape = (x.shape[0], *(d * f for d, f in zip(x.shape[1:-1], size)), x.shape[-1])
      return _in_input_dtype(jax.image.resize(x, shape, method=_RESIZE_METHODS[method], antialias=False), x.dtype)
    return call

  def check(config):
    method = config.get("interpolation", "nearest")
    return [] if method in _RESIZE_METHODS else [f"interpolation={method!r} (known: {sorted(_RESIZE_METHODS)})"]
  return any_data_format(KerasClass(build, check=check))


def _resizing(config, name, options):
  height, width, method = config["height"], config["width"], config.get("interpolation", "bilinear")
  antialias = config.get("antialias", False)

  def call(x, train):
    shape = (x.shape[0], height, width, x.shape[-1])
    resized = jax.image.resize(x.astype(jnp.float32), shape, method=_RESIZE_METHODS[method], antialias=antialias)
    return _in_input_dtype(resized, x.dtype)
  return call


def _in_input_dtype(resized, dtype):
  """Integer images come back rounded and saturated into their own dtype, as Keras's resizing gives them."""
  if not jnp.issubdtype(dtype, jnp.integer):
    return resized
  info = jnp.iinfo(dtype)
  return jnp.clip(jnp.round(resized), info.min, info.max).astype(dtype)


def _resizing_check(config):
  problems = []
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




RECORDS: dict[str, KerasClass] = {
    **{f"Conv{d}D": _conv("conv", d) for d in (1, 2, 3)},
    **{f"Conv{d}DTranspose": _conv("transpose", d) for d in (1, 2, 3)},
    **{f"SeparableConv{d}D": _conv("separable", d) for d in (1, 2)},
    **{f"DepthwiseConv{d}D": _conv("depthwise", d) for d in (1, 2)},
    **{f"MaxPooling{d}D": _pooling("max") for d in (1, 2, 3)},
    **{f"AveragePooling{d}D": _pooling("avg") for d in (1, 2, 3)},
    **{f"GlobalMaxPooling{d}D": _global_pooling("max", d) for d in (1, 2, 3)},
    **{f"GlobalAveragePooling{d}D": _global_pooling("avg", d) for d in (1, 2, 3)},
    **{f"ZeroPadding{d}D": _zero_padding(d) for d in (1, 2, 3)},
    **{f"Cropping{d}D": _cropping(d) for d in (1, 2, 3)},
    **{f"UpSampling{d}D": _up_sampling(d) for d in (1, 2, 3)},
    "Rescaling": KerasClass(_rescaling),
    "Resizing": any_data_format(KerasClass(_resizing, check=_resizing_check)),
}
