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


def _to_aspect_ratio(x, height: int, width: int, crop: bool, pad: bool, fill_value: float):
  """Keras's `crop_to_aspect_ratio` (the largest centred crop of the target's aspect ratio) or
  `pad_to_aspect_ratio` (`fill_value` added on both sides of the height, else of the width) of `(batch, h, w, c)`."""
  h, w = x.shape[1], x.shape[2]
  fit_h, fit_w = int(float(w * height) / width), int(float(h * width) / height)  # Keras's rounding
  if crop:
    crop_h, crop_w = max(min(h, fit_h), 1), max(min(w, fit_w), 1)
    top, left = int(float(h - crop_h) / 2), int(float(w - crop_w) / 2)
    return x[:, top:top + crop_h, left:left + crop_w]
  if pad:
    top, left = int(float(max(h, fit_h) - h) / 2), int(float(max(w, fit_w) - w) / 2)
    if top > 0 or left > 0:
      edges = ((0, 0), (top, top), (0, 0), (0, 0)) if top > 0 else ((0, 0), (0, 0), (left, left), (0, 0))
      return jnp.pad(x, edges, constant_values=jnp.asarray(fill_value).astype(x.dtype))
  return x


def _resized(x, height: int, width: int, method: str, antialias: bool):
  shape = (x.shape[0], height, width, x.shape[-1])
  resized = jax.image.resize(x.astype(jnp.float32), shape, method=_RESIZE_METHODS[method], antialias=antialias)
  return _in_input_dtype(resized, x.dtype)


def _resizing(config, name, options):
  height, width, method = config["height"], config["width"], config.get("interpolation", "bilinear")
  antialias = config.get("antialias", False)
  crop, pad = config.get("crop_to_aspect_ratio", False), config.get("pad_to_aspect_ratio", False)
  fill_value = config.get("fill_value", 0.0)

  def call(x, train):
    return _resized(_to_aspect_ratio(x, height, width, crop, pad, fill_value), height, width, method, antialias)
  return call


def _center_crop(config, name, options):
  """Keras's `CenterCrop`: the centred `height x width`; an image smaller than that on a side is cropped to the
  target's aspect ratio and resized bilinearly instead (Keras's `smart_resize`)."""
  height, width = config["height"], config["width"]

  def call(x, train):
    x = x.astype(jnp.float32)
    h, w = x.shape[1], x.shape[2]
    if h >= height and w >= width:
      top, left = (h - height) // 2, (w - width) // 2
      return x[:, top:top + height, left:left + width]
    return _resized(_to_aspect_ratio(x, height, width, True, False, 0.0), height, width, "bilinear", False)
  return call


def _in_input_dtype(resized, dtype):
  """Integer images come back rounded and saturated into their own dtype, as Keras's resizing gives them."""
  if not jnp.issubdtype(dtype, jnp.integer):
    return resized
  info = jnp.iinfo(dtype)
  return jnp.clip(jnp.round(resized), info.min, info.max).astype(dtype)


def _resizing_check(config):
  problems = []
  if config.get("fill_mode", "constant") != "constant":
    problems.append(f"fill_mode={config['fill_mode']!r} (only 'constant', as Keras)")
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
    "CenterCrop": any_data_format(KerasClass(_center_crop)),
}
