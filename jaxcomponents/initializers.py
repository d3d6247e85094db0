"""Initializers by their Keras names, in one registry (`INITIALIZERS`), as Flax initializers.

Each name builds a Flax initializer, `(key, shape, dtype) -> array`, drawing
what `keras.initializers.<name>` draws with Keras's defaults: the fans of
`compute_fans` (a convolution kernel's receptive field times its input or
output channels), the truncated normal cut at two standard deviations (and
widened by Keras's 0.8796 in `variance_scaling`), `random_normal` and
`random_uniform` of spread 0.05. The values come from the module's `'params'`
rng, so a Keras `seed` is refused rather than ignored.

`get` takes what Keras's `initializers.get` takes: a name, a config dict, a
Keras initializer object (read through its config) or a Flax initializer (a
callable, returned as it is).

Example:
  >>> import jax
  >>> kernel = get("he_normal")(jax.random.key(0), (3, 3, 8, 16))
  >>> kernel.shape, round(float(kernel.std()), 2)  # sqrt(2 / (3 * 3 * 8))
  ((3, 3, 8, 16), 0.16)
  >>> get({"class_name": "Constant", "config": {"value": 2.0}})(jax.random.key(0), (2,)).tolist()
  [2.0, 2.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.errors import check_choice, is_real
from jaxcomponents.registry import Registry, keras_identifier

Initializer = Callable[..., jax.Array]
MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform", "normal")
_TRUNCATED_STDDEV = 0.87962566103423978  # the standard deviation of a unit normal cut at +-2


def _check_seed(seed: Any) -> None:
  if seed is not None:
    raise ValueError(f"seed={seed!r} is not allowed; expected None: initial values come from the module's 'params' "
                     "rng (the key given to module.init).")


def _check_number(param: str, value: Any, *, positive: bool = False) -> float:
  if not is_real(value) or not math.isfinite(value) or (
      positive and value <= 0):
    raise ValueError(f"{param}={value!r} is not allowed; expected a finite float{' > 0' if positive else ''}.")
  return float(value)


def compute_fans(shape: Sequence[int], input_axes: Sequence[int] | None = None,
                 output_axes: Sequence[int] | None = None) -> tuple[int, int]:
  """Keras's (fan_in, fan_out) of a weight shape: a kernel `(*window, in, out)` counts its window in both.

  Example:
    >>> compute_fans((3, 3, 8, 16)), compute_fans((5,))
    ((72, 144), (5, 5))
  """
  shape = tuple(shape)
  if input_axes is not None and output_axes is not None:
    return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)
  if len(shape) < 2:
    return (shape[0], shape[0]) if shape else (1, 1)
  receptive_field = math.prod(shape[:-2])
  return shape[-2] * receptive_field, shape[-1] * receptive_field


def variance_scaling(scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                     seed: None = None, input_axes: Sequence[int] | None = None,
                     output_axes: Sequence[int] | None = None) -> Initializer:
  """Keras's `VarianceScaling`: variance `scale / fan` ("normal" is Keras's spelling of "truncated_normal")."""
  scale = _check_number("scale", scale, positive=True)
  check_choice("mode", mode, MODES)
  if not (isinstance(distribution, str) and distribution.lower() in DISTRIBUTIONS):
    check_choice("distribution", distribution, DISTRIBUTIONS)  # raises, naming the value as given
  distribution = distribution.lower()
  _check_seed(seed)

  def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    fan_in, fan_out = compute_fans(shape, input_axes, output_axes)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
    variance = scale / max(1.0, fan)
    if distribution == "uniform":
      limit = math.sqrt(3.0 * variance)
      return jax.random.uniform(key, shape, dtype, -limit, limit)
    if distribution == "untruncated_normal":
      return math.sqrt(variance) * jax.random.normal(key, shape, dtype)
    return math.sqrt(variance) / _TRUNCATED_STDDEV * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)

  return init


def _scaling(scale: float, mode: str, distribution: str) -> Callable[..., Initializer]:
  def factory(seed: None = None, input_axes: Sequence[int] | None = None,
              output_axes: Sequence[int] | None = None) -> Initializer:
    return variance_scaling(scale, mode, distribution, seed, input_axes, output_axes)

  return factory


glorot_uniform = _scaling(1.0, "fan_avg", "uniform")
glorot_normal = _scaling(1.0, "fan_avg", "truncated_normal")
he_uniform = _scaling(2.0, "fan_in", "uniform")
he_normal = _scaling(2.0, "fan_in", "truncated_normal")
lecun_uniform = _scaling(1.0, "fan_in", "uniform")
lecun_normal = _scaling(1.0, "fan_in", "truncated_normal")


def random_normal(mean: float = 0.0, stddev: float = 0.05, seed: None = None) -> Initializer:
  """Keras's `RandomNormal`."""
  mean, stddev = _check_number("mean", mean), _check_number("stddev", stddev)
  _check_seed(seed)
  return lambda key, shape, dtype=jnp.float32: mean + stddev * jax.random.normal(key, shape, dtype)


def truncated_normal(mean: float = 0.0, stddev: float = 0.05, seed: None = None) -> Initializer:
  """Keras's `TruncatedNormal`: a normal of `stddev` cut at two of them."""
  mean, stddev = _check_number("mean", mean), _check_number("stddev", stddev)
  _check_seed(seed)
  return lambda key, shape, dtype=jnp.float32: mean + stddev * jax.random.truncated_normal(key, -2.0, 2.0, shape,
                                                                                             dtype)


def random_uniform(minval: float = -0.05, maxval: float = 0.05, seed: None = None) -> Initializer:
  """Keras's `RandomUniform`."""
  minval, maxval = _check_number("minval", minval), _check_number("maxval", maxval)
  _check_seed(seed)
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, minval, maxval)


def constant(value: float = 0.0) -> Initializer:
  """Keras's `Constant` (a scalar)."""
  value = _check_number("value", value)
  return lambda key, shape, dtype=jnp.float32: jnp.full(shape, value, dtype)


def zeros() -> Initializer:
  return nn.initializers.zeros


def ones() -> Initializer:
  return nn.initializers.ones


def orthogonal(gain: float = 1.0, seed: None = None) -> Initializer:
  """Keras's `Orthogonal`: the shape flattened to (everything but the last axis, the last axis), drawn in at least
  float32 (its QR has no bfloat16 kernel)."""
  gain = _check_number("gain", gain)
  _check_seed(seed)
  draw = nn.initializers.orthogonal(scale=gain)

  def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    if len(shape) < 2:
      raise ValueError(f"shape={tuple(shape)} is not allowed with the orthogonal initializer; expected rank >= 2.")
    return draw(key, shape, jnp.promote_types(dtype, jnp.float32)).astype(dtype)

  return init


def identity(gain: float = 1.0) -> Initializer:
  """Keras's `Identity`: `gain` times the (rows, columns) identity, for 2-D weights only."""
  gain = _check_number("gain", gain)

  def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    if len(shape) != 2:
      raise ValueError(f"shape={tuple(shape)} is not allowed with the identity initializer; expected a 2-D weight.")
    return gain * jnp.eye(*shape, dtype=dtype)

  return init


INITIALIZERS = Registry("initializer", param="initializer", snake_case_classes=True, none="glorot_uniform",
                        passes=lambda obj: callable(obj) and not hasattr(obj, "get_config"),
                        passes_what="a Flax initializer (key, shape, dtype) -> array")
for _name, _factory, _class, _aliases in (
    ("glorot_uniform", glorot_uniform, "GlorotUniform", ()),
    ("glorot_normal", glorot_normal, "GlorotNormal", ()),
    ("he_uniform", he_uniform, "HeUniform", ()),
    ("he_normal", he_normal, "HeNormal", ()),
    ("lecun_uniform", lecun_uniform, "LecunUniform", ()),
    ("lecun_normal", lecun_normal, "LecunNormal", ()),
    ("variance_scaling", variance_scaling, "VarianceScaling", ()),
    ("random_normal", random_normal, "RandomNormal", ("normal",)),
    ("truncated_normal", truncated_normal, "TruncatedNormal", ()),
    ("random_uniform", random_uniform, "RandomUniform", ("uniform",)),
    ("constant", constant, "Constant", ()),
    ("zeros", zeros, "Zeros", ("zero",)),
    ("ones", ones, "Ones", ("one",)),
    ("orthogonal", orthogonal, "Orthogonal", ("OrthogonalInitializer",)),
    ("identity", identity, "Identity", ("IdentityInitializer",)),
):
  INITIALIZERS.register(_name, _factory, keras_class=_class, aliases=_aliases)
del _name, _factory, _class, _aliases


VARIANCE_SCALING = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal",
                    "variance_scaling")


def get(identifier: str | dict | Initializer | Any, param: str = "initializer", *,
        fan_axes: tuple[Sequence[int], Sequence[int]] | None = None) -> Initializer:
  """The Flax initializer for a Keras name, config dict or initializer object, or a Flax initializer as it is.

  Args:
    identifier: a name in `INITIALIZERS` ("he_normal", "GlorotUniform", ...), a config dict
      (`{"class_name": "RandomNormal", "config": {"stddev": 0.1}}`), a Keras initializer object or class
      (`keras.initializers.Orthogonal(gain=2.0)`, read through `get_config`), a Flax initializer, or None:
      `glorot_uniform`, what Keras's `add_weight` draws for a weight given no initializer.
    param: the argument name to report in errors (`"kernel_init"`, ...).
    fan_axes: (input axes, output axes) that a variance-scaling initializer naming none counts its fans over,
      as Keras's `EinsumDense` sets them.

  Raises:
    ValueError: an unknown name or argument, a Keras `seed` that is not None, or any other value.

  Example:
    >>> import jax
    >>> get("random_uniform")(jax.random.key(0), (1000,)).max() <= 0.05
    Array(True, dtype=bool)
  """
  identifier = "glorot_uniform" if identifier is None else keras_identifier(identifier)
  if fan_axes is not None and isinstance(identifier, (str, Mapping)):
    name, arguments = INITIALIZERS.resolve(identifier, None, param)
    if name in VARIANCE_SCALING and (arguments.get("input_axes") is None or arguments.get("output_axes") is None):
      arguments = {**arguments, "input_axes": tuple(fan_axes[0]), "output_axes": tuple(fan_axes[1])}
    return INITIALIZERS.build(name, arguments)
  return INITIALIZERS.get(identifier, param)


__all__ = ["INITIALIZERS", "VARIANCE_SCALING", "Initializer", "compute_fans", "constant", "get", "glorot_normal",
           "glorot_uniform", "he_normal", "he_uniform", "identity", "lecun_normal", "lecun_uniform", "ones",
           "orthogonal", "random_normal", "random_uniform", "truncated_normal", "variance_scaling", "zeros"]
