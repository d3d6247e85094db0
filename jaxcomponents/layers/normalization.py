"""Normalization as Keras computes it: `BatchNorm`, `GroupNormalization`, `LayerNormalization`, `UnitNormalization`.

`BatchNorm` is Flax's batch normalization with Keras's defaults: epsilon 1e-3
and momentum 0.99 (Flax: 1e-5 and 0.99) and the two-pass variance. Parameters
are `scale`/`bias` in `params` and `mean`/`var` in `batch_stats`;
`jaxcomponents.keras` maps Keras's `gamma`, `beta`, `moving_mean` and
`moving_variance` onto them. `axis` is the feature axis (1 for channels-first).

Precision, as Flax's: `dtype` is the output dtype (None: inferred from the input
and parameters), `param_dtype` that of `scale` and `bias` (float32). The
statistics (`mean`/`var`, and those of each batch) and the normalization are
computed in float32 whatever the input dtype (`force_float32_reductions`).

`GroupNormalization` and `LayerNormalization` keep Keras's weight names
(`gamma`, `beta` in `params`) and compute Keras's formula
(`x * inv + (beta - mean * inv)` with `inv = rsqrt(variance + epsilon) * gamma`,
the variance two-pass) in at least float32.

Example:
  >>> import jax, jax.numpy as jnp
  >>> bn = BatchNorm(use_running_average=True)
  >>> variables = bn.init(jax.random.key(0), jnp.ones((2, 3)))
  >>> sorted(variables)
  ['batch_stats', 'params']
  >>> bf16 = BatchNorm(use_running_average=False, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)
  >>> variables = bf16.init(jax.random.key(0), jnp.ones((2, 3)))
  >>> variables["params"]["scale"].dtype, variables["batch_stats"]["mean"].dtype
  (dtype(bfloat16), dtype('float32'))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen import normalization as flax_normalization

from jaxcomponents.errors import is_int

KERAS_EPSILON = 1e-3
KERAS_MOMENTUM = 0.99


class BatchNorm(nn.BatchNorm):
  """`flax.linen.BatchNorm` with Keras's defaults (epsilon 1e-3, momentum 0.99, the two-pass variance) and Keras's
  arithmetic, `x * inv + (beta - mean * inv)` with `inv = rsqrt(variance + epsilon) * gamma` (Flax computes
  `(x - mean) * inv + beta`, a rounding apart): the same parameters, statistics, masks and `axis_name` as Flax's.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> bn = BatchNorm(use_running_average=True)
    >>> x = jnp.array([[1.0, 2.0]])
    >>> [round(float(v), 4) for v in bn.apply(bn.init(jax.random.key(0), x), x)[0]]  # (x - 0) / sqrt(1 + 1e-3)
    [0.9995, 1.999]
  """

  epsilon: float = KERAS_EPSILON
  momentum: float = KERAS_MOMENTUM
  use_fast_variance: bool = False

  @nn.compact
  def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
    use_running_average = nn.merge_param("use_running_average", self.use_running_average, use_running_average)
    feature_axes = flax_normalization._canonicalize_axes(x.ndim, self.axis)  # pylint: disable=protected-access
    reduction_axes = tuple(i for i in range(x.ndim) if i not in feature_axes)
    feature_shape = tuple(x.shape[ax] for ax in feature_axes)
    stats_dtype = jnp.float32 if self.force_float32_reductions else self.param_dtype
    ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, stats_dtype), feature_shape)
    ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, stats_dtype), feature_shape)
    if use_running_average:
      mean, var = ra_mean.value, ra_var.value
      if not self.force_float32_reductions:
        mean, var = jnp.asarray(mean, self.param_dtype), jnp.asarray(var, self.param_dtype)
    else:
      mean, var = flax_normalization._compute_stats(  # pylint: disable=protected-access
          x, reduction_axes, dtype=self.dtype, axis_name=None if self.is_initializing() else self.axis_name,
          axis_index_groups=self.axis_index_groups, use_fast_variance=self.use_fast_variance, mask=mask,
          force_float32_reductions=self.force_float32_reductions)
      if not self.is_initializing():
        ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
        ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    shape = [x.shape[i] if i in feature_axes else 1 for i in range(x.ndim)]
    scale = bias = None
    args = [x]
    if self.use_scale:
      scale = self.param("scale", self.scale_init, feature_shape, self.param_dtype)
      args.append(scale)
      scale = jnp.asarray(scale, None if self.force_float32_reductions else self.param_dtype).reshape(shape)
    if self.use_bias:
      bias = self.param("bias", self.bias_init, feature_shape, self.param_dtype)
      args.append(bias)
      bias = jnp.asarray(bias, None if self.force_float32_reductions else self.param_dtype).reshape(shape)
    y = _normalized(x, mean.reshape(shape), var.reshape(shape), self.epsilon, scale, bias)
    return jnp.asarray(y, nn.dtypes.canonicalize_dtype(*args, dtype=self.dtype))


class Keras2BatchNorm(BatchNorm):
  """Keras 2's `BatchNormalization` (TensorFlow's fused kernel): `BatchNorm`, but a training step moves the moving
  variance towards the batch's unbiased variance, `n / (n - 1)` times the biased one it normalizes with.

  Keras 3 moves it towards the biased variance; keras-unet-collection's
  models ran under Keras 2, so its twins use this rule. Everything else
  (parameters, statistics, epsilon 1e-3, momentum 0.99) is `BatchNorm`'s.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> bn = Keras2BatchNorm(use_running_average=False)
    >>> x = jnp.array([[1.0], [3.0]])  # biased variance 1, unbiased 2
    >>> _, state = bn.apply(bn.init(jax.random.key(0), x), x, mutable=["batch_stats"])
    >>> round(float(state["batch_stats"]["var"][0]), 6)  # 0.99 * 1 + 0.01 * 2
    1.01
  """

  @nn.compact
  def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
    training = not nn.merge_param("use_running_average", self.use_running_average, use_running_average)
    updating = training and not self.is_initializing()
    before = self.get_variable("batch_stats", "var") if updating else None
    y = super().__call__(x, use_running_average, mask=mask)
    if not updating:
      return y  # inference (or init): nothing moves, and the batch may be symbolic
    count = int(np.prod([x.shape[i] for i in range(x.ndim) if i not in _axes(self.axis, x.ndim)]))
    if count > 1:
      # Flax moved `var` to m * before + (1 - m) * biased; Keras 2 adds (1 - m) * biased / (count - 1).
      moving = self.get_variable("batch_stats", "var")
      self.put_variable("batch_stats", "var", moving + (moving - self.momentum * before) / (count - 1))
    return y


def _axes(axis: int | Sequence[int], ndim: int, param: str = "axis", ordered: bool = True) -> tuple[int, ...]:
  """`axis` (an int or ints) as sorted non-negative axes of an `ndim`-dimensional input, batch axis excluded
  (in the order given, without `ordered`)."""
  given = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
  if not given or any(not is_int(a) for a in given):
    raise ValueError(f"{param}={axis!r} is not allowed; expected an int or a sequence of ints.")
  if any(not -ndim < a < ndim or a % ndim == 0 for a in given):
    raise ValueError(f"{param}={axis!r} is not allowed for inputs of rank {ndim}; expected axes in 1..{ndim - 1} "
                     f"(or -{ndim - 1}..-1), not the batch axis.")
  axes = tuple(dict.fromkeys(a % ndim for a in given))
  return tuple(sorted(axes)) if ordered else axes


def _compute_dtype(x: jax.Array):
  """Keras's `result_type(x.dtype, "float32")`: statistics in at least float32."""
  return jnp.result_type(x.dtype, jnp.float32)


def _normalized(x, mean, variance, epsilon, gamma, beta):
  """Keras's `x * inv + (beta - mean * inv)`, `inv = rsqrt(variance + epsilon) * gamma`."""
  inv = jax.lax.rsqrt(variance + epsilon)
  if gamma is not None:
    inv = inv * gamma
  res = -mean * inv
  if beta is not None:
    res = res + beta
  return x * inv + res


class GroupNormalization(nn.Module):
  """Keras's `GroupNormalization`: statistics over each group of channels (and all other axes but the batch).

  Attributes:
    num_groups: the number of groups (Keras's `groups`) the channels split into (they must divide evenly); -1:
      one per channel (instance normalization). Keras's default is 32.
    axis: the channel axis (-1; 1 for channels-first).
    epsilon: added to the variance (Keras: 1e-3).
    use_bias: learn `beta`, an offset per channel (Keras's `center`).
    use_scale: learn `gamma`, a factor per channel (Keras's `scale`).
    dtype: the output dtype (None: inferred from the input and parameters).
    param_dtype: the dtype of `gamma` and `beta`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = GroupNormalization(num_groups=2)
    >>> variables = layer.init(jax.random.key(0), jnp.ones((1, 4, 4, 6)))
    >>> {k: v.shape for k, v in variables["params"].items()}
    {'gamma': (6,), 'beta': (6,)}
  """

  num_groups: int = 32
  axis: int = -1
  epsilon: float = 1e-3
  use_bias: bool = True
  use_scale: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    if not is_int(self.num_groups) or (self.num_groups <= 0 and self.num_groups != -1):
      raise ValueError(f"num_groups={self.num_groups!r} is not allowed; expected a positive int, or -1 (one group per "
                       f"channel).")
    if isinstance(self.axis, (list, tuple)):
      raise ValueError(f"axis={self.axis!r} is not allowed; expected one int (the channel axis).")
    (axis,) = _axes(self.axis, x.ndim)
    channels = x.shape[axis]
    groups = channels if self.num_groups == -1 else self.num_groups
    if groups > channels or channels % groups:
      raise ValueError(f"num_groups={self.num_groups!r} is not allowed for {channels} channels; expected a divisor of "
                       f"{channels}.")
    gamma = self.param("gamma", nn.initializers.ones, (channels,), self.param_dtype) if self.use_scale else None
    beta = self.param("beta", nn.initializers.zeros, (channels,), self.param_dtype) if self.use_bias else None
    out_dtype = nn.dtypes.canonicalize_dtype(x, *(p for p in (gamma, beta) if p is not None), dtype=self.dtype)
    compute = _compute_dtype(x)
    grouped_shape = x.shape[:axis] + (groups, channels // groups) + x.shape[axis + 1:]
    xg = x.astype(compute).reshape(grouped_shape)
    reduce = tuple(i for i in range(1, xg.ndim) if i != axis)
    mean = jnp.mean(xg, reduce, keepdims=True)
    variance = jnp.var(xg, reduce, keepdims=True)
    per_channel = [1] * xg.ndim
    per_channel[axis:axis + 2] = [groups, channels // groups]
    as_grouped = lambda p: None if p is None else p.astype(compute).reshape(per_channel)
    y = _normalized(xg, mean, variance, self.epsilon, as_grouped(gamma), as_grouped(beta))
    return y.reshape(x.shape).astype(out_dtype)


class LayerNormalization(nn.Module):
  """Keras's `LayerNormalization`, `rms_scaling` included.

  With `rms_scaling=True` Keras computes `x * rsqrt(variance(x) + epsilon) * gamma`: the
  variance (not the mean square) and no offset; `gamma` then exists whatever `use_scale` says and `beta`
  never does.

  Attributes:
    axis: the axis or axes normalized over (and holding one `gamma`/`beta` entry per position, their axes in
      the order given, reshaped to the input's layout as Keras reshapes them).
    epsilon: added to the variance (Keras: 1e-3).
    use_bias: learn `beta`, Keras's `center` (not with `rms_scaling`).
    use_scale: learn `gamma`, Keras's `scale`.
    rms_scaling: Keras's (deprecated) RMS scaling, as above.
    dtype: the output dtype (None: inferred from the input and parameters).
    param_dtype: the dtype of `gamma` and `beta`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = LayerNormalization(rms_scaling=True)
    >>> variables = layer.init(jax.random.key(0), jnp.ones((2, 5)))
    >>> list(variables["params"])
    ['gamma']
  """

  axis: int | Sequence[int] = -1
  epsilon: float = 1e-3
  use_bias: bool = True
  use_scale: bool = True
  rms_scaling: bool = False
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    given_order = _axes(self.axis, x.ndim, ordered=False)
    axes = tuple(sorted(given_order))
    # As Keras: `gamma` and `beta` hold the axes in the order given, and reach the input's layout by a reshape.
    shape = tuple(x.shape[a] for a in given_order)
    gamma = (self.param("gamma", nn.initializers.ones, shape, self.param_dtype)
             if self.use_scale or self.rms_scaling else None)
    beta = (self.param("beta", nn.initializers.zeros, shape, self.param_dtype)
            if self.use_bias and not self.rms_scaling else None)
    out_dtype = nn.dtypes.canonicalize_dtype(x, *(p for p in (gamma, beta) if p is not None), dtype=self.dtype)
    given = x.dtype  # Keras rounds the result to the input's dtype, then casts it to the layer's
    compute = _compute_dtype(x)
    x = x.astype(compute)
    broadcast = [1] * x.ndim
    for a in axes:
      broadcast[a] = x.shape[a]
    as_broadcast = lambda p: None if p is None else p.astype(compute).reshape(broadcast)
    variance = jnp.var(x, axes, keepdims=True)
    if self.rms_scaling:
      y = x * jax.lax.rsqrt(variance + self.epsilon)
      if gamma is not None:
        y = y * as_broadcast(gamma)
    else:
      y = _normalized(x, jnp.mean(x, axes, keepdims=True), variance, self.epsilon, as_broadcast(gamma),
                      as_broadcast(beta))
    return y.astype(given).astype(out_dtype)


class RMSNormalization(nn.Module):
  """Keras's `RMSNormalization`: `x * rsqrt(mean(x**2) + epsilon) * scale` over `axis`, computed in float32 at
  least and returned in the input's dtype (unlike `LayerNormalization(rms_scaling=True)`, the mean square, not
  the variance). `scale` holds one entry per position of `axis` and multiplies as Keras's does, lined up with
  the trailing axes (so a single inner axis must match the last one in size, as in Keras).

  Attributes:
    axis: the axis or axes normalized over (and holding one `scale` entry per position).
    epsilon: added to the mean square (Keras: 1e-6).
    param_dtype: the dtype of `scale`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = RMSNormalization()
    >>> x = jnp.array([[3.0, 4.0]])
    >>> [round(float(v), 4) for v in layer.apply(layer.init(jax.random.key(0), x), x)[0]]
    [0.8485, 1.1314]
  """

  axis: int | Sequence[int] = -1
  epsilon: float = 1e-6
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    axes = tuple(sorted(_axes(self.axis, x.ndim)))
    scale = self.param("scale", nn.initializers.ones, tuple(x.shape[a] for a in axes), self.param_dtype)
    given, compute = x.dtype, _compute_dtype(x)
    x = x.astype(compute)
    y = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axes, keepdims=True) + self.epsilon)
    if jnp.issubdtype(given, jnp.floating):  # Keras hands the scale over in the layer's compute dtype (autocast)
      scale = scale.astype(given)
    return (y * scale.astype(compute)).astype(given)


def unit_normalize(x: jax.Array, axis: int | Sequence[int] = -1) -> jax.Array:
  """Keras's `ops.normalize(x, axis, order=2, epsilon=1e-12)`: `x * min(rsqrt(sum(x**2)), 1e12)`.

  Example:
    >>> import jax.numpy as jnp
    >>> unit_normalize(jnp.array([[3.0, 4.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929]]
  """
  axes = _axes(axis, x.ndim)
  inv_norm = jax.lax.rsqrt(jnp.sum(jnp.square(x), axis=axes, keepdims=True))
  return x * jnp.minimum(inv_norm, jnp.asarray(1e12, x.dtype))


class UnitNormalization(nn.Module):
  """Keras's `UnitNormalization`: each example scaled to unit L2 norm over `axis` (see `unit_normalize`).

  Example:
    >>> import jax.numpy as jnp
    >>> UnitNormalization().apply({}, jnp.array([[0.0, 2.0]])).tolist()
    [[0.0, 1.0]]
  """

  axis: int | Sequence[int] = -1

  def __call__(self, x):
    return unit_normalize(x, self.axis)


__all__ = ["BatchNorm", "GroupNormalization", "KERAS_EPSILON", "KERAS_MOMENTUM", "LayerNormalization",
           "UnitNormalization", "unit_normalize"]
