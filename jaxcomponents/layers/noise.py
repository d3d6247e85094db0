"""Keras's noise layers: `GaussianNoise`, `GaussianDropout`, `AlphaDropout`.

Each is the identity at inference (and when its rate or deviation is 0), and
in training applies Keras's formula to a random draw from the Flax `"dropout"`
rng (`module.apply(..., rngs={"dropout": key})`); a `seed` is folded into that
draw. Keras's own draws cannot be reproduced, so the formulas are also given as
functions of the draw (`gaussian_noise`, `gaussian_dropout`, `alpha_dropout`).

Example:
  >>> import jax, jax.numpy as jnp
  >>> layer = GaussianNoise(0.1)
  >>> x = jnp.ones((2, 3))
  >>> bool((layer.apply({}, x, train=False) == x).all())
  True
  >>> layer.apply({}, x, train=True, rngs={"dropout": jax.random.key(0)}).shape
  (2, 3)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.errors import is_int, is_real

# SELU's constants, as Keras's AlphaDropout writes them.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _check_fraction(param: str, value) -> float:
  if not is_real(value) or not 0 <= value <= 1:
    raise ValueError(f"{param}={value!r} is not allowed; expected a float between 0 and 1.")
  return float(value)


def _check_seed(seed):
  if seed is not None and not is_int(seed):
    raise ValueError(f"seed={seed!r} is not allowed; expected an int or None.")


def gaussian_noise(x: jax.Array, stddev: float, normal: jax.Array) -> jax.Array:
  """Keras's GaussianNoise in training: `x + stddev * normal`, `normal` a standard normal draw shaped like `x`."""
  return x + jnp.asarray(stddev, x.dtype) * normal.astype(x.dtype)


def gaussian_dropout(x: jax.Array, rate: float, normal: jax.Array) -> jax.Array:
  """Keras's GaussianDropout in training: `x * (1 + sqrt(rate / (1 - rate)) * normal)`, `normal` standard normal."""
  stddev = math.sqrt(rate / (1.0 - rate)) if rate < 1 else math.inf
  return x * (1.0 + jnp.asarray(stddev, x.dtype) * normal.astype(x.dtype))


def alpha_dropout(x: jax.Array, rate: float, uniform: jax.Array) -> jax.Array:
  """Keras's AlphaDropout in training: entries whose `uniform` draw is below `rate` are set to SELU's saturation
  value, then an affine map keeps the mean and variance. `uniform` broadcasts against `x` (Keras's `noise_shape`)."""
  alpha_p = -_SELU_ALPHA * _SELU_SCALE
  a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5 if rate < 1 else math.inf
  b = -a * alpha_p * rate
  kept = (uniform >= rate).astype(x.dtype)
  return jnp.asarray(a, x.dtype) * (x * kept + alpha_p * (1 - kept)) + jnp.asarray(b, x.dtype)


class _Noise(nn.Module):
  """A random draw from the "dropout" rng, the layer's seed folded in."""

  def _key(self, seed):
    key = self.make_rng("dropout")
    return key if seed is None else jax.random.fold_in(key, seed)


class GaussianNoise(_Noise):
  """Keras's `GaussianNoise(stddev, seed)`: adds zero-mean normal noise in training.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> GaussianNoise(0.5).apply({}, jnp.zeros(3), train=False).tolist()
    [0.0, 0.0, 0.0]
  """

  stddev: float
  seed: int | None = None

  @nn.compact
  def __call__(self, x, *, train: bool):
    stddev = _check_fraction("stddev", self.stddev)
    _check_seed(self.seed)
    if not train or stddev == 0:
      return x
    return gaussian_noise(x, stddev, jax.random.normal(self._key(self.seed), x.shape, x.dtype))


class GaussianDropout(_Noise):
  """Keras's `GaussianDropout(rate, seed)`: multiplies by normal noise of mean 1, deviation `sqrt(rate/(1-rate))`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> GaussianDropout(0.2).apply({}, jnp.ones(2), train=False).tolist()
    [1.0, 1.0]
  """

  rate: float
  seed: int | None = None

  @nn.compact
  def __call__(self, x, *, train: bool):
    rate = _check_fraction("rate", self.rate)
    _check_seed(self.seed)
    if not train or rate == 0:
      return x
    return gaussian_dropout(x, rate, jax.random.normal(self._key(self.seed), x.shape, x.dtype))


class AlphaDropout(_Noise):
  """Keras's `AlphaDropout(rate, noise_shape, seed)`: dropout that keeps SELU's self-normalization.

  Attributes:
    rate: the fraction of entries dropped.
    noise_shape: the shape of the draw, broadcast over the input (None entries: the input's size); None: the
      input's shape.
    seed: folded into the "dropout" rng.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> AlphaDropout(0.1).apply({}, jnp.ones(2), train=False).tolist()
    [1.0, 1.0]
  """

  rate: float
  noise_shape: Sequence[int | None] | None = None
  seed: int | None = None

  @nn.compact
  def __call__(self, x, *, train: bool):
    rate = _check_fraction("rate", self.rate)
    _check_seed(self.seed)
    shape = x.shape
    if self.noise_shape is not None:
      given = tuple(self.noise_shape)
      if len(given) != x.ndim or any(s is not None and s not in (1, d) for s, d in zip(given, x.shape)):
        raise ValueError(f"noise_shape={self.noise_shape!r} is not allowed for inputs of shape {x.shape}; expected "
                         f"{x.ndim} entries, each the input's size, 1 or None.")
      shape = tuple(d if s is None else s for s, d in zip(given, x.shape))
    if not train or rate == 0:
      return x
    return alpha_dropout(x, rate, jax.random.uniform(self._key(self.seed), shape, x.dtype))


__all__ = ["AlphaDropout", "GaussianDropout", "GaussianNoise", "alpha_dropout", "gaussian_dropout", "gaussian_noise"]
