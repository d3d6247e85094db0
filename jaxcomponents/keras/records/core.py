"""Records of Keras's core layers: Dense, activations, dropout, reshaping, merging, Embedding, Masking.

See `jaxcomponents.keras.record` for what a record holds.

Example:
  >>> import jax.numpy as jnp
  >>> call = RECORDS["Flatten"].build({"data_format": "channels_last"}, "flatten", {})
  >>> call(jnp.ones((2, 3, 4)), train=False).shape
  (2, 12)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxcomponents import activations
from jaxcomponents.keras.config import activation_name, as_tuple, known_activation
from jaxcomponents.keras.record import KerasClass
from jaxcomponents.keras.records.data_format import any_data_format
from jaxcomponents.layers.dense import Dense
from jaxcomponents.layers.dropout import Dropout
from jaxcomponents.layers.embedding import Embedding
from jaxcomponents.models.unet_blocks import PReLU

KERNEL_BIAS = {"kernel": ("params", "kernel"), "bias": ("params", "bias")}

def _dense(config, name, options):
  layer = Dense(config["units"], activation_name(config), config.get("use_bias", True), name=name, **options)
  return lambda x, train: layer(x, train=train)



# Activations.

def _activation_layer(config, name, options):
  fn = activations.get(activation_name(config))
  return lambda x, train: fn(x)


def _relu(config, name, options):
  """Keras's `ReLU(max_value, negative_slope, threshold)`."""
  max_value, slope, threshold = config.get("max_value"), config.get("negative_slope", 0.0), config.get("threshold", 0.0)

  def call(x, train):  # Keras's branches, whose gradients at the kinks differ (`jax.nn.relu6`'s against a clip)
    if slope and max_value is None and not threshold:
      return jax.nn.leaky_relu(x, negative_slope=slope)
    negative = jax.nn.relu(threshold - x) if slope else 0.0
    if threshold:
      y = jnp.where(x > threshold, x, 0.0)
    elif max_value == 6:
      y = jax.nn.relu6(x)
    else:
      y = jax.nn.relu(x)
    if max_value is not None and (threshold or max_value != 6):
      y = jnp.clip(y, 0.0, max_value)
    return y - slope * negative if slope else y
  return call


def _softmax(config, name, options):
  axis = config.get("axis", -1)

  def call(x, train, mask=None):
    if mask is not None:
      keep = mask if mask.dtype == jnp.bool_ else mask > 0.5
      x = jnp.where(keep, x, -1e9)
    axes = as_tuple(axis)
    y = jnp.exp(x - jax.nn.logsumexp(x, axis=axes, keepdims=True)) if len(axes) > 1 else jax.nn.softmax(x, axes[0])
    return y if mask is None else jnp.where(keep, y, 0.0)
  return call


def _prelu(config, name, options):
  shared = config.get("shared_axes")
  layer = PReLU(shared_axes=None if shared is None else as_tuple(shared), name=name,
                dtype=options.get("dtype"), param_dtype=options.get("param_dtype", jnp.float32))
  return lambda x, train: layer(x)


# Dropout.

def _shared_axes(noise_shape: Any, ndim: int) -> tuple[int, ...]:
  """The input axes one draw of a Keras `noise_shape` spans: its mask broadcasts against the input from the right,
  so its 1s and the leading axes it leaves out are shared."""
  offset = ndim - len(noise_shape)
  return tuple(axis for axis in range(ndim) if axis < offset or noise_shape[axis - offset] == 1)


def _dropout(spatial: int):
  """Keras's Dropout (`spatial` 0; `noise_shape`: the axes sharing one draw) and SpatialDropout1D/2D/3D."""
  def build(config, name, options):
    noise_shape = config.get("noise_shape")
    if noise_shape is None:
      layer = Dropout(config["rate"], broadcast_dims=tuple(range(1, spatial + 1)), name=name)
      return lambda x, train: layer(x, train=train)
    layers = {}  # by input rank, which the shared axes depend on

    def call(x, train):
      if x.ndim not in layers:
        layers[x.ndim] = Dropout(config["rate"], broadcast_dims=_shared_axes(noise_shape, x.ndim), name=name)
      return layers[x.ndim](x, train=train)
    return call
  return KerasClass(build, creates_module=True)


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



# Merging.

def _same_rank(xs) -> list[jax.Array]:
  """Keras's merge layers (base_merge.py) give each lower-rank input new axes after its batch axis first."""
  rank = max(x.ndim for x in xs)
  return [x.reshape(x.shape[:1] + (1,) * (rank - x.ndim) + x.shape[1:]) for x in xs]


def _merge(fn: Callable[[list[jax.Array]], jax.Array]):
  def build(config, name, options):
    return lambda xs, train: fn(_same_rank(xs))
  return KerasClass(build)


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



def _masking(config, name, options):
  value = config.get("mask_value", 0.0)
  return lambda x, train: x * jnp.any(x != value, axis=-1, keepdims=True).astype(x.dtype)


def _identity(config, name, options):
  return lambda x, train: x


def _mean(xs):
  return sum(xs[1:], xs[0]) / len(xs)


def _entry_masks(xs, mask):
  """Each input's Keras mask (or None) spread over its feature axis."""
  masks = list(mask) if mask is not None else [None] * len(xs)
  return [None if m is None else jnp.broadcast_to(jnp.asarray(m).astype(bool)[..., None], x.shape)
          for m, x in zip(masks, xs)]


def _multiply_masked(xs, mask):
  """Keras's `Multiply` (merging/multiply.py): a masked entry counts as 1; where every input is masked, 0."""
  masks = _entry_masks(xs, mask)
  out, out_mask = None, None
  for x, m in zip(xs, masks):
    if m is not None:
      x = jnp.where(m, x, jnp.ones((), x.dtype))
      out_mask = m if out_mask is None else out_mask | m
    out = x if out is None else out * x
  return out if None in masks else jnp.where(out_mask, out, jnp.zeros((), out.dtype))


def _or_masked(fn):
  """Keras's `Maximum`/`Minimum` (base_merge.py, `_apply_merge_op_and_or_mask`): a masked entry takes the other
  input's value, so only entries masked in every input see masked values."""
  def merged(xs, mask):
    out, out_mask = None, None
    for x, m in zip(xs, _entry_masks(xs, mask)):
      if out is None:
        out, out_mask = x, m
        continue
      if m is not None:
        x = jnp.where(m, x, out)
      if out_mask is not None:
        out = jnp.where(out_mask, out, x)
      out_mask = out_mask | m if m is not None and out_mask is not None else None
      out = fn(out, x)
    return out
  return merged


def _masked_merge(fn):
  """A merge whose inputs' Keras masks change what it computes (the masks come as the `mask` keyword).

  An input given new axes to match the others' rank leaves its mask behind, as in Keras.
  """
  def merged(xs, train, mask=None):
    ranked = _same_rank(xs)
    masks = None if mask is None else [m if x.ndim == y.ndim else None for m, x, y in zip(mask, xs, ranked)]
    return fn(ranked, masks)

  return KerasClass(lambda config, name, options: merged, kwargs=("mask",))




RECORDS: dict[str, KerasClass] = {
    "InputLayer": KerasClass(_identity),
    "Identity": KerasClass(_identity),
    "Dense": KerasClass(_dense, check=known_activation(), creates_module=True, weights=(KERNEL_BIAS,),
                        shape_checked=True),
    "Dropout": _dropout(0),
    **{f"SpatialDropout{d}D": any_data_format(_dropout(d)) for d in (1, 2, 3)},
    "Activation": KerasClass(_activation_layer, check=known_activation()),
    "ReLU": KerasClass(_relu),
    "LeakyReLU": KerasClass(lambda c, n, o: lambda x, train: jax.nn.leaky_relu(x, c.get("negative_slope", 0.3))),
    "ELU": KerasClass(lambda c, n, o: lambda x, train: jax.nn.elu(x, c.get("alpha", 1.0))),
    "PReLU": KerasClass(_prelu, creates_module=True, weights=({"alpha": ("params", "alpha")},)),
    "Softmax": KerasClass(_softmax, kwargs=("mask",)),
    "Flatten": any_data_format(KerasClass(_flatten)),
    "Reshape": KerasClass(_reshape),
    "Permute": KerasClass(_permute),
    "RepeatVector": KerasClass(_repeat_vector),
    "Add": _merge(lambda xs: sum(xs[1:], xs[0])),
    "Subtract": _merge(lambda xs: xs[0] - xs[1]),
    "Multiply": _masked_merge(_multiply_masked),
    "Average": _merge(_mean),
    "Maximum": _masked_merge(_or_masked(jnp.maximum)),
    "Minimum": _masked_merge(_or_masked(jnp.minimum)),
    "Concatenate": KerasClass(_concatenate),
    "Dot": KerasClass(_dot),
    "Embedding": KerasClass(_embedding, creates_module=True, weights=({"embeddings": ("params", "embeddings")},)),
    "Masking": KerasClass(_masking),
}
