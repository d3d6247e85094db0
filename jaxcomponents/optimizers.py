"""Optimizers by their Keras names, as optax transformations with Keras 3's updates.

`get(name, **hyperparameters)` returns an `optax.GradientTransformation` whose
updates, applied step by step, move parameters exactly as
`keras.optimizers.<Name>(**hyperparameters).apply_gradients` moves Keras
variables given the same gradients: Keras's defaults (learning rates,
`epsilon=1e-7`, Adagrad's 0.1 initial accumulator, ...), Keras's epsilon
placement, and Keras's order: gradients are clipped (`clipnorm` per variable,
`global_clipnorm` over all, `clipvalue` elementwise), then `weight_decay`
shrinks every parameter by `learning_rate * weight_decay * param` (decoupled, as
Keras 3 does for every optimizer), then the optimizer's own step.

`learning_rate` is a float or a schedule (a callable of the step count, e.g.
an optax schedule or a Keras `LearningRateSchedule`), evaluated at the number of
updates done so far, as Keras evaluates a schedule at `optimizer.iterations`; a
callable that takes no argument is called as Keras calls one, with none. `decay` is Keras 2's legacy
inverse-time decay, `learning_rate / (1 + decay * step)` (Keras 3 warns and
ignores the argument; here it is honoured).

Where optax computes the same thing, the chain uses optax's transforms
(`scale_by_rss`, `scale_by_rms`, `scale_by_stddev`, `scale_by_adadelta`,
`trace`, `clip`); Adam/AdamW (epsilon added to
`sqrt(v)` before the bias correction), Adamax (epsilon outside the infinity
norm), Nadam (Keras's momentum cache `beta_1 * (1 - 0.5 * 0.96**t)`),
per-variable `clipnorm`, `global_clipnorm` (a non-finite norm makes every
gradient NaN, as in Keras) and the learning-rate-scaled weight decay are
written here.

Example:
  >>> import jax.numpy as jnp, optax
  >>> tx = get("sgd", learning_rate=0.1, momentum=0.9)
  >>> params = {"w": jnp.ones(2)}
  >>> updates, state = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
  >>> [round(v, 4) for v in optax.apply_updates(params, updates)["w"].tolist()]
  [0.9, 0.9]
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcomponents.errors import check_positive_int, is_int, is_real
from jaxcomponents.registry import ANY, Registry, keras_config
from jaxcomponents.tree_paths import path_string

LearningRate = float | Callable[[jax.Array], jax.Array]


# ---------------------------------------------------------------------------- checks


def _check_real(param: str, value: Any, low: float, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False) -> Any:
  """Checks a Python number's range; arrays pass (e.g. from `optax.inject_hyperparams`)."""
  if isinstance(value, jax.Array) and value.ndim == 0:
    return value
  bad = not is_real(value) or not math.isfinite(value)
  if not bad:
    bad = value < low or (low_open and value == low)
    if high is not None:
      bad = bad or value > high or (high_open and value == high)
  if bad:
    lo = "(" if low_open else "["
    hi = ")" if high is None or high_open else "]"
    raise ValueError(f"{param}={value!r} is not allowed; expected a finite float in {lo}{low}, "
                     f"{'inf' if high is None else high}{hi}.")
  return value


def _is_zero(value: Any) -> bool:
  """None or a Python zero: the feature is off (an array, e.g. injected, always counts as on)."""
  return value is None or (is_real(value) and value == 0)


def _check_bool(param: str, value: Any) -> bool:
  if not isinstance(value, bool):
    raise ValueError(f"{param}={value!r} is not allowed; expected True or False.")
  return value


_LEARNING_RATES = "a finite float >= 0, a schedule (a callable of the step count) or a callable of no argument"


def _takes_no_argument(fn: Callable[..., Any]) -> bool:
  """Whether `fn` takes no argument or only ones with defaults, as Keras calls a learning rate that is not a
  schedule (`*args`: a schedule of the step count, as a wrapper without `functools.wraps` passes it on)."""
  try:
    return all(p.default is not inspect.Parameter.empty for p in inspect.signature(fn).parameters.values())
  except (TypeError, ValueError):  # no signature to read (some builtins): a schedule of the step count
    return False


def _check_learning_rate(value: Any) -> LearningRate:
  """A float, a schedule of the step count, or Keras's callable of no argument (made a schedule here)."""
  if callable(value):
    if _takes_no_argument(value):
      return lambda count: value()
    return value
  if not is_real(value) and not (isinstance(value, jax.Array) and value.ndim == 0):
    raise ValueError(f"learning_rate={value!r} is not allowed; expected {_LEARNING_RATES}.")
  return _check_real("learning_rate", value, 0.0)


# Keras's learning-rate schedules (`keras.optimizers.schedules`), as a Keras optimizer config names them.
KERAS_SCHEDULES = ("ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay", "InverseTimeDecay",
                   "CosineDecay", "CosineDecayRestarts")


def _keras_schedule(config: Mapping[str, Any]) -> Callable[[jax.Array], jax.Array]:
  """The Keras schedule a serialised optimizer config holds as its `learning_rate`, rebuilt by Keras."""
  name = config.get("class_name")
  if name not in KERAS_SCHEDULES:
    raise ValueError(f"learning_rate={dict(config)!r} is not allowed; a schedule in a config must be one of Keras's "
                     f"{', '.join(KERAS_SCHEDULES)} (else pass the schedule itself: {_LEARNING_RATES}).")
  try:
    import keras  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    raise ImportError(f"learning_rate is a Keras {name} config: rebuilding it needs Keras (pip install keras), "
                      "or pass the schedule itself, e.g. an optax schedule.") from error
  return keras.optimizers.schedules.deserialize(dict(config))


# ---------------------------------------------------------------------------- transforms written by hand


def _schedule(learning_rate: LearningRate, decay: float | None) -> LearningRate:
  """The learning rate as Keras computes it at step `count`: schedule, then legacy inverse-time decay."""
  if _is_zero(decay):
    return learning_rate

  def lr(count):
    base = learning_rate(count) if callable(learning_rate) else learning_rate
    return base / (1.0 + decay * jnp.asarray(count, jnp.float32))

  return lr


def _lr_at(learning_rate: LearningRate, count: jax.Array) -> jax.Array:
  return jnp.asarray(learning_rate(count) if callable(learning_rate) else learning_rate, jnp.float32)


def clip_by_norm_per_variable(clipnorm: float) -> optax.GradientTransformation:
  """Keras's `clipnorm`: each gradient array is rescaled to L2 norm at most `clipnorm`.

  Example:
    >>> g, _ = clip_by_norm_per_variable(1.0).update({"a": jnp.array([3.0, 4.0])}, optax.EmptyState())
    >>> [round(v, 4) for v in g["a"].tolist()]
    [0.6, 0.8]
  """

  def update(updates, state, params=None):
    del params

    def clip(g):
      norm = jnp.sqrt(jnp.sum(jnp.square(g)))
      return g * clipnorm / jnp.maximum(norm, clipnorm)

    return jax.tree.map(clip, updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def clip_by_global_norm(global_clipnorm: float) -> optax.GradientTransformation:
  """Keras's `global_clipnorm`: all gradients rescaled to a joint L2 norm of at most `global_clipnorm`.

  As in Keras, a non-finite norm (an infinite or NaN gradient anywhere) makes every gradient NaN.

  Example:
    >>> g, _ = clip_by_global_norm(1.0).update({"a": jnp.array([3.0]), "b": jnp.array([4.0])}, optax.EmptyState())
    >>> [round(float(v[0]), 4) for v in (g["a"], g["b"])]
    [0.6, 0.8]
  """

  def update(updates, state, params=None):
    del params
    leaves = jax.tree.leaves(updates)
    norm = jnp.sqrt(jnp.sum(jnp.stack([jnp.sum(jnp.square(g)) for g in leaves]))) if leaves else 0.0
    scale = global_clipnorm * jnp.minimum(1.0 / norm, 1.0 / global_clipnorm) + (norm - norm)
    return jax.tree.map(lambda g: g * scale.astype(g.dtype), updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _leaf_name(key_path) -> str:
  """A parameter's own name, the last part of its path (Keras's `variable.name`)."""
  return path_string(key_path[-1:])


class CountState(NamedTuple):
  count: jax.Array


def keras_weight_decay(learning_rate: LearningRate, weight_decay: float | Callable[[str, jax.Array], float | None],
                       exclude: Sequence[str] = ()) -> optax.GradientTransformation:
  """Keras 3's weight decay: adds `-learning_rate(step) * weight_decay * param` to the updates.

  Args:
    learning_rate: a float or a schedule of the step count.
    weight_decay: the decay factor, or a function of a parameter's path and value giving its own (None: not
      decayed), as Muon decays its two kinds of variable by two factors.
    exclude: regular expressions; a parameter whose name (the last part of its
      path: `"bias"` in `"dense/bias"`) any of them matches (`re.search`) is
      not decayed, as Keras's `optimizer.exclude_from_weight_decay(var_names=...)`
      matches a variable's name. The names are the module's own (a Flax
      `BatchNorm`'s `scale` and `bias` where Keras says `gamma` and `beta`); a
      pattern that matches no parameter raises at `init`.

  Example:
    >>> tx = keras_weight_decay(0.1, 0.5)
    >>> p = {"w": jnp.ones(1)}
    >>> round(float(tx.update({"w": jnp.zeros(1)}, tx.init(p), p)[0]["w"][0]), 4)
    -0.05
  """
  patterns = [re.compile(p) for p in exclude]

  def excluded(key_path) -> bool:
    return any(pattern.search(_leaf_name(key_path)) for pattern in patterns)

  def init(params):
    names = {_leaf_name(path) for path, _ in jax.tree_util.tree_leaves_with_path(params)}
    unmatched = [pattern.pattern for pattern in patterns if not any(pattern.search(name) for name in names)]
    if unmatched:
      raise ValueError(f"exclude_from_weight_decay={list(exclude)!r} is not allowed: {unmatched!r} match no "
                       f"parameter's name; the names are {', '.join(sorted(names))}.")
    return CountState(jnp.zeros((), jnp.int32))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("params=None is not allowed: weight decay needs the parameters; "
                       "call tx.update(grads, state, params).")
    lr = _lr_at(learning_rate, state.count)

    def decay(key_path, u, p):
      factor = weight_decay(path_string(key_path), p) if callable(weight_decay) else weight_decay
      if factor is None or excluded(key_path):
        return u
      return u - (p * (lr * factor)).astype(u.dtype)

    updates = jax.tree_util.tree_map_with_path(decay, updates, params)
    return updates, CountState(optax.safe_increment(state.count))

  return optax.GradientTransformation(init, update)


class KerasAdamState(NamedTuple):
  count: jax.Array
  mu: Any
  nu: Any
  nu_max: Any


def scale_by_keras_adam(beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                        amsgrad: bool = False) -> optax.GradientTransformation:
  """Keras's Adam direction `m * sqrt(1 - beta_2**t) / (1 - beta_1**t) / (sqrt(v) + epsilon)`.

  optax's `scale_by_adam` adds epsilon to the bias-corrected `sqrt(v_hat)`;
  Keras adds it to the raw `sqrt(v)` (and AMSGrad keeps the maximum raw `v`).
  Multiply by the negative learning rate afterwards.

  Example:
    >>> tx = optax.chain(scale_by_keras_adam(amsgrad=True), optax.scale_by_learning_rate(1e-3))
  """

  def init(params):
    zeros = optax.tree.zeros_like  # a fresh buffer per state entry, so a donated state donates each once
    return KerasAdamState(jnp.zeros((), jnp.int32), zeros(params), zeros(params), zeros(params) if amsgrad else None)

  def update(updates, state, params=None):
    del params
    t = jnp.asarray(state.count + 1, jnp.float32)
    mu = jax.tree.map(lambda g, m: m + (g - m) * (1 - beta_1), updates, state.mu)
    nu = jax.tree.map(lambda g, v: v + (jnp.square(g) - v) * (1 - beta_2), updates, state.nu)
    nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu) if amsgrad else None
    alpha = jnp.sqrt(1 - jnp.power(jnp.float32(beta_2), t)) / (1 - jnp.power(jnp.float32(beta_1), t))
    updates = jax.tree.map(lambda m, v: m * alpha / (jnp.sqrt(v) + epsilon), mu, nu_max if amsgrad else nu)
    return updates, KerasAdamState(optax.safe_increment(state.count), mu, nu, nu_max)

  return optax.GradientTransformation(init, update)


class KerasAdamaxState(NamedTuple):
  count: jax.Array
  mu: Any
  norm: Any


def scale_by_keras_adamax(beta_1: float = 0.9, beta_2: float = 0.999,
                          epsilon: float = 1e-7) -> optax.GradientTransformation:
  """Keras's Adamax direction `m / ((1 - beta_1**t) * (u + epsilon))`, `u = max(beta_2 * u, |g|)`.

  optax keeps `u = max(beta_2 * u, |g| + epsilon)` instead, so the two drift apart.

  Example:
    >>> tx = optax.chain(scale_by_keras_adamax(), optax.scale_by_learning_rate(1e-3))
  """

  def init(params):
    zeros = optax.tree.zeros_like
    return KerasAdamaxState(jnp.zeros((), jnp.int32), zeros(params), zeros(params))

  def update(updates, state, params=None):
    del params
    t = jnp.asarray(state.count + 1, jnp.float32)
    mu = jax.tree.map(lambda g, m: m + (g - m) * (1 - beta_1), updates, state.mu)
    norm = jax.tree.map(lambda g, u: jnp.maximum(beta_2 * u, jnp.abs(g)), updates, state.norm)
    correction = 1 - jnp.power(jnp.float32(beta_1), t)
    updates = jax.tree.map(lambda m, u: m / (correction * (u + epsilon)), mu, norm)
    return updates, KerasAdamaxState(optax.safe_increment(state.count), mu, norm)

  return optax.GradientTransformation(init, update)


class KerasNadamState(NamedTuple):
  count: jax.Array
  mu: Any
  nu: Any
  u_product: jax.Array


def scale_by_keras_nadam(beta_1: float = 0.9, beta_2: float = 0.999,
                         epsilon: float = 1e-7) -> optax.GradientTransformation:
  """Keras's Nadam direction, with its momentum cache `u_t = beta_1 * (1 - 0.5 * 0.96**t)`.

  optax's `nadam` is the simplified Nesterov Adam with constant `beta_1`;
  Keras (after Dozat) multiplies a running product of the `u_t`.

  Example:
    >>> tx = optax.chain(scale_by_keras_nadam(), optax.scale_by_learning_rate(1e-3))
  """

  def init(params):
    zeros = optax.tree.zeros_like
    return KerasNadamState(jnp.zeros((), jnp.int32), zeros(params), zeros(params), jnp.ones((), jnp.float32))

  def update(updates, state, params=None):
    del params
    b1, b2 = jnp.asarray(beta_1, jnp.float32), jnp.asarray(beta_2, jnp.float32)  # Keras's float32 betas: 1 - b2
    t = jnp.asarray(state.count + 1, jnp.float32)                                 # rounds as Keras's does
    u_t = b1 * (1.0 - 0.5 * jnp.power(jnp.float32(0.96), t))
    u_next = b1 * (1.0 - 0.5 * jnp.power(jnp.float32(0.96), t + 1))
    u_product = state.u_product * u_t
    u_product_next = u_product * u_next
    v_correction = 1 - jnp.power(b2, t)
    mu = jax.tree.map(lambda g, m: m + (g - m) * (1 - b1), updates, state.mu)
    nu = jax.tree.map(lambda g, v: v + (jnp.square(g) - v) * (1 - b2), updates, state.nu)

    def direction(g, m, v):
      m_hat = u_next * m / (1 - u_product_next) + (1 - u_t) * g / (1 - u_product)
      return m_hat / (jnp.sqrt(v / v_correction) + epsilon)

    updates = jax.tree.map(direction, updates, mu, nu)
    return updates, KerasNadamState(optax.safe_increment(state.count), mu, nu, u_product)

  return optax.GradientTransformation(init, update)


# ---------------------------------------------------------------------------- the optimizers


class KerasLambState(NamedTuple):
  count: jax.Array
  mu: Any
  nu: Any


def scale_by_keras_lamb(beta_1: float = 0.9, beta_2: float = 0.999,
                        epsilon: float = 1e-7) -> optax.GradientTransformation:
  """Keras's Lamb direction: Adam's `m_hat / (sqrt(v_hat) + epsilon)` per variable, scaled by the trust ratio
  `||variable|| / ||direction||` (1 where either norm is 0). Multiply by the negative learning rate afterwards.

  Example:
    >>> tx = optax.chain(scale_by_keras_lamb(), optax.scale_by_learning_rate(1e-3))
  """

  def init(params):
    zeros = optax.tree.zeros_like
    return KerasLambState(jnp.zeros((), jnp.int32), zeros(params), zeros(params))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("Keras's Lamb needs the parameters: call update(grads, state, params).")
    t = jnp.asarray(state.count + 1, jnp.float32)
    mu = jax.tree.map(lambda g, m: m + (g - m) * (1 - beta_1), updates, state.mu)
    nu = jax.tree.map(lambda g, v: v + (jnp.square(g) - v) * (1 - beta_2), updates, state.nu)
    beta_1_power, beta_2_power = jnp.power(jnp.float32(beta_1), t), jnp.power(jnp.float32(beta_2), t)

    def direction(m, v, w):
      step = (m / (1.0 - beta_1_power)) / (jnp.sqrt(v / (1.0 - beta_2_power)) + epsilon)
      w_norm, step_norm = jnp.sqrt(jnp.sum(jnp.square(w))), jnp.sqrt(jnp.sum(jnp.square(step)))
      ratio = jnp.where(w_norm > 0, jnp.where(step_norm > 0, w_norm / step_norm, 1.0), 1.0)
      return ratio * step

    return jax.tree.map(direction, mu, nu, params), KerasLambState(optax.safe_increment(state.count), mu, nu)

  return optax.GradientTransformation(init, update)


def _unzip(like: Any, tree: Any, n: int) -> tuple[Any, ...]:
  """The `n` trees of `tree`, shaped like `like` with an n-tuple at each leaf (one per-leaf update's results)."""
  return tuple(jax.tree.map(lambda _, leaf: leaf[i], like, tree) for i in range(n))


class KerasAdafactorState(NamedTuple):
  count: jax.Array
  r: Any  # per variable of 2 or more axes: the row means of the squared gradients (else a 0-d placeholder)
  c: Any  # ... and the column means
  v: Any  # per variable of fewer axes: the squared gradients' moving average (else a 0-d placeholder)


def keras_adafactor(learning_rate: LearningRate, beta_2_decay: float = -0.8, epsilon_1: float = 1e-30,
                    epsilon_2: float = 1e-3, clip_threshold: float = 1.0) -> optax.GradientTransformation:
  """Keras's Adafactor update, the learning rate included: second moments factored over a variable's last two
  axes, the step `max(epsilon_2, rms(variable)) * min(lr, 1 / sqrt(t))` times the clipped `g / sqrt(v)`.

  Example:
    >>> tx = keras_adafactor(1e-3)
  """

  def factored(p):
    return p.ndim >= 2

  def init(params):
    def zeros(shape_of):  # a 0-d placeholder where the variable does not keep this moment
      return jax.tree.map(lambda p: jnp.zeros(shape_of(p) if shape_of(p) is not None else (), p.dtype), params)

    r = zeros(lambda p: p.shape[:-1] if factored(p) else None)
    c = zeros(lambda p: p.shape[:-2] + p.shape[-1:] if factored(p) else None)
    v = zeros(lambda p: None if factored(p) else p.shape)
    return KerasAdafactorState(jnp.zeros((), jnp.int32), r, c, v)

  def rms(x):
    return jnp.sqrt(jnp.mean(jnp.square(x)))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("Keras's Adafactor needs the parameters: call update(grads, state, params).")
    t = jnp.asarray(state.count + 1, jnp.float32)
    rho = jnp.minimum(_lr_at(learning_rate, state.count), 1 / jnp.sqrt(t))
    beta_2 = 1 - jnp.power(t, beta_2_decay)

    def one(g, w, r, c, v):
      square = jnp.square(g) + epsilon_1
      if factored(w):
        r = beta_2 * r + (1 - beta_2) * jnp.mean(square, axis=-1)
        c = beta_2 * c + (1 - beta_2) * jnp.mean(square, axis=-2)
        second = (r / jnp.mean(r, axis=-1, keepdims=True))[..., None] * c[..., None, :]
      else:
        v = beta_2 * v + (1 - beta_2) * square
        second = v
      u = g / jnp.sqrt(second)
      u = u / jnp.maximum(1.0, rms(u) / clip_threshold)
      return -(jnp.maximum(epsilon_2, rms(w)) * rho) * u, r, c, v

    step, r, c, v = _unzip(updates, jax.tree.map(one, updates, params, state.r, state.c, state.v), 4)
    return step, KerasAdafactorState(optax.safe_increment(state.count), r, c, v)

  return optax.GradientTransformation(init, update)


class KerasFtrlState(NamedTuple):
  count: jax.Array
  accumulator: Any
  linear: Any


def keras_ftrl(learning_rate: LearningRate, learning_rate_power: float = -0.5, initial_accumulator_value: float = 0.1,
               l1_regularization_strength: float = 0.0, l2_regularization_strength: float = 0.0,
               l2_shrinkage_regularization_strength: float = 0.0, beta: float = 0.0) -> optax.GradientTransformation:
  """Keras's FTRL-Proximal update, the learning rate included: the new variable is
  `(clip(linear, -l1, l1) - linear) / (accumulator**-lr_power / lr + 2 * l2)`; the update is its difference.

  Example:
    >>> tx = keras_ftrl(1e-3, l1_regularization_strength=0.01)
  """

  def init(params):
    accumulator = jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator_value), params)
    return KerasFtrlState(jnp.zeros((), jnp.int32), accumulator, optax.tree.zeros_like(params))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("Keras's Ftrl needs the parameters: call update(grads, state, params).")
    lr = _lr_at(learning_rate, state.count)
    l2 = l2_regularization_strength + beta / (2.0 * lr)
    power = -learning_rate_power

    def one(g, w, accumulator, linear):
      new_accumulator = accumulator + jnp.square(g)
      shrunk = g + 2 * l2_shrinkage_regularization_strength * w
      linear = linear + shrunk - (jnp.power(new_accumulator, power) - jnp.power(accumulator, power)) / lr * w
      quadratic = jnp.power(new_accumulator, power) / lr + 2 * l2
      clipped = jnp.clip(linear, -l1_regularization_strength, l1_regularization_strength)
      return (clipped - linear) / quadratic - w, new_accumulator, linear

    out = jax.tree.map(one, updates, params, state.accumulator, state.linear)
    step, accumulator, linear = _unzip(updates, out, 3)
    return step, KerasFtrlState(optax.safe_increment(state.count), accumulator, linear)

  return optax.GradientTransformation(init, update)


class KerasMomentumState(NamedTuple):
  count: jax.Array
  momentum: Any


def keras_muon(learning_rate: LearningRate, momentum: float = 0.95, nesterov: bool = True,
               coefficients: tuple[float, float, float] = (3.4445, -4.7750, 2.0315), ns_steps: int = 5,
               rms_rate: float | None = 0.2) -> optax.GradientTransformation:
  """Keras's Muon update of 2-D parameters, the learning rate included: the momentum (Nesterov's by default)
  orthogonalised by `ns_steps` Newton-Schulz iterations, then scaled by `sqrt(max(rows, cols)) * rms_rate`.

  Example:
    >>> tx = keras_muon(1e-3)
  """
  a, b, c = coefficients

  def init(params):
    return KerasMomentumState(jnp.zeros((), jnp.int32), optax.tree.zeros_like(params))

  def transpose(x):
    return jnp.swapaxes(x, -2, -1)

  def orthogonalised(x):
    tall = x.shape[-2] > x.shape[-1]
    x = transpose(x) if tall else x
    x = x / (jnp.linalg.norm(x, axis=(-2, -1), keepdims=True) + 1e-7)
    for _ in range(ns_steps):
      gram = x @ transpose(x)
      x = a * x + (b * gram + c * gram @ gram) @ x
    return transpose(x) if tall else x

  def update(updates, state, params=None):
    lr = _lr_at(learning_rate, state.count)
    momenta = jax.tree.map(lambda g, m: m + (g + m * (momentum - 1)), updates, state.momentum)

    def step(g, m):
      update = lr * orthogonalised(g + momentum * m if nesterov else m)
      if rms_rate is not None:
        update = update * jnp.sqrt(jnp.float32(max(g.shape[0], g.shape[1]))) * rms_rate
      return -update

    return jax.tree.map(step, updates, momenta), KerasMomentumState(optax.safe_increment(state.count), momenta)

  return optax.GradientTransformation(init, update)


def _decay_first(decay: optax.GradientTransformation,
                 step: optax.GradientTransformation) -> optax.GradientTransformation:
  """Weight decay, then `step` given the decayed parameters (as Keras decays a variable before its update)."""

  def init(params):
    return decay.init(params), step.init(params)

  def update(updates, state, params=None):
    decayed, decay_state = decay.update(jax.tree.map(jnp.zeros_like, updates), state[0], params)
    stepped, step_state = step.update(updates, state[1], optax.apply_updates(params, decayed))
    return jax.tree.map(jnp.add, decayed, stepped), (decay_state, step_state)

  return optax.GradientTransformation(init, update)


def _keras_chain(core: Callable[[LearningRate], list[optax.GradientTransformation]], learning_rate, *,
                 weight_decay, clipnorm, clipvalue, global_clipnorm, decay, exclude_from_weight_decay,
                 name: str, reads_params: bool = False) -> optax.GradientTransformation:
  """Clipping -> the optimizer's step (given the learning rate) -> decoupled weight decay.

  A step that `reads_params` (Lamb's trust ratio) sees them decayed, as Keras decays first.
  """
  learning_rate = _check_learning_rate(learning_rate)
  clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
  given = {k: v for k, v in clips.items() if v is not None}
  if len(given) > 1:
    raise ValueError(f"{', '.join(f'{k}={v!r}' for k, v in given.items())} are not allowed together; "
                     "set at most one of clipnorm, clipvalue, global_clipnorm (as Keras).")
  # Keras clips only with a value above 0: 0 leaves the gradients as they are.
  clipnorm, clipvalue, global_clipnorm = (None if _is_zero(v) else v for v in (clipnorm, clipvalue, global_clipnorm))
  given = {k: v for k, v in given.items() if not _is_zero(v)}
  for key, value in given.items():
    _check_real(key, value, 0.0, low_open=True)
  if decay is not None:
    _check_real("decay", decay, 0.0)
  if weight_decay is not None and not callable(weight_decay):  # a callable: a factor per parameter (Muon's)
    _check_real("weight_decay", weight_decay, 0.0)
  if isinstance(exclude_from_weight_decay, str):
    exclude_from_weight_decay = (exclude_from_weight_decay,)
  if exclude_from_weight_decay and weight_decay is None:
    raise ValueError(f"exclude_from_weight_decay={exclude_from_weight_decay!r} is not allowed without "
                     f"weight_decay for {name!r}.")
  lr = _schedule(learning_rate, decay)
  parts = []
  if clipnorm is not None:
    parts.append(clip_by_norm_per_variable(clipnorm))
  elif global_clipnorm is not None:
    parts.append(clip_by_global_norm(global_clipnorm))
  elif clipvalue is not None:
    parts.append(optax.clip(clipvalue))
  decaying = None if weight_decay is None else keras_weight_decay(lr, weight_decay,
                                                                   tuple(exclude_from_weight_decay or ()))
  if decaying is not None and reads_params:
    parts.append(_decay_first(decaying, optax.chain(*core(lr))))
  else:
    parts.extend(core(lr))
    if decaying is not None:
      parts.append(decaying)
  return optax.chain(*parts)


def sgd(learning_rate: LearningRate = 0.01, momentum: float = 0.0, nesterov: bool = False, *,
        weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
        global_clipnorm: float | None = None, decay: float | None = None,
        exclude_from_weight_decay: Sequence[str] = ()) -> optax.GradientTransformation:
  """Keras's `SGD`: `m = momentum * m - lr * g`, then `param += m` (Nesterov: `momentum * m - lr * g`).

  The learning rate is applied before the momentum trace, as Keras does, so a
  schedule gives Keras's numbers too.

  Example:
    >>> tx = sgd(0.1, momentum=0.9, nesterov=True)
  """
  _check_real("momentum", momentum, 0.0, 1.0)
  _check_bool("nesterov", nesterov)

  def core(lr):
    parts = [optax.scale_by_learning_rate(lr)]
    if not _is_zero(momentum):
      parts.append(optax.trace(decay=momentum, nesterov=nesterov))
    return parts

  return _keras_chain(core, learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                      global_clipnorm=global_clipnorm, decay=decay,
                      exclude_from_weight_decay=exclude_from_weight_decay, name="sgd")


def _check_betas(beta_1, beta_2, epsilon):
  _check_real("beta_1", beta_1, 0.0, 1.0, high_open=True)
  _check_real("beta_2", beta_2, 0.0, 1.0, high_open=True)
  _check_real("epsilon", epsilon, 0.0)


def adam(learning_rate: LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
         epsilon: float = 1e-7, amsgrad: bool = False, *, weight_decay: float | None = None,
         clipnorm: float | None = None, clipvalue: float | None = None, global_clipnorm: float | None = None,
         decay: float | None = None, exclude_from_weight_decay: Sequence[str] = ()) -> optax.GradientTransformation:
  """Keras's `Adam` (epsilon 1e-7 added to `sqrt(v)`, not to the bias-corrected one; optional AMSGrad).

  Example:
    >>> tx = adam(1e-3, amsgrad=True)
  """
  _check_betas(beta_1, beta_2, epsilon)
  _check_bool("amsgrad", amsgrad)
  return _keras_chain(
      lambda lr: [scale_by_keras_adam(beta_1, beta_2, epsilon, amsgrad), optax.scale_by_learning_rate(lr)],
      learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
      global_clipnorm=global_clipnorm, decay=decay, exclude_from_weight_decay=exclude_from_weight_decay,
      name="adam")


def adamw(learning_rate: LearningRate = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
          beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, *, clipnorm: float | None = None,
          clipvalue: float | None = None, global_clipnorm: float | None = None, decay: float | None = None,
          exclude_from_weight_decay: Sequence[str] = ()) -> optax.GradientTransformation:
  """Keras's `AdamW`: Keras's Adam with decoupled weight decay (default 0.004, required).

  Example:
    >>> tx = adamw(1e-3, weight_decay=0.01, exclude_from_weight_decay=["bias"])
  """
  if weight_decay is None:
    raise ValueError("weight_decay=None is not allowed for 'adamw'; expected a float >= 0 (Keras's default 0.004).")
  return adam(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, clipnorm=clipnorm,
              clipvalue=clipvalue, global_clipnorm=global_clipnorm, decay=decay,
              exclude_from_weight_decay=exclude_from_weight_decay)


def rmsprop(learning_rate: LearningRate = 0.001, rho: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-7,
            centered: bool = False, *, weight_decay: float | None = None, clipnorm: float | None = None,
            clipvalue: float | None = None, global_clipnorm: float | None = None, decay: float | None = None,
            exclude_from_weight_decay: Sequence[str] = ()) -> optax.GradientTransformation:
  """Keras's `RMSprop`: `lr * g / sqrt(v + epsilon)` (centered: `sqrt(v - mean_g**2 + epsilon)`).

  optax's transforms with Keras's settings: epsilon inside the square root, the
  average starting at 0, the momentum trace after the learning rate.

  Example:
    >>> tx = rmsprop(1e-3, momentum=0.9, centered=True)
  """
  _check_real("rho", rho, 0.0, 1.0)
  _check_real("momentum", momentum, 0.0, 1.0)
  _check_real("epsilon", epsilon, 0.0)
  _check_bool("centered", centered)

  def core(lr):
    scale = optax.scale_by_stddev if centered else optax.scale_by_rms
    parts = [scale(decay=rho, eps=epsilon, initial_scale=0.0, eps_in_sqrt=True), optax.scale_by_learning_rate(lr)]
    if not _is_zero(momentum):
      parts.append(optax.trace(decay=momentum))
    return parts

  return _keras_chain(core, learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                      global_clipnorm=global_clipnorm, decay=decay,
                      exclude_from_weight_decay=exclude_from_weight_decay, name="rmsprop")


def adagrad(learning_rate: LearningRate = 0.001, initial_accumulator_value: float = 0.1, epsilon: float = 1e-7, *,
            weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
            global_clipnorm: float | None = None, decay: float | None = None,
            exclude_from_weight_decay: Sequence[str] = ()) -> optax.GradientTransformation:
  """Keras's `Adagrad`: `lr * g / sqrt(accumulator + epsilon)`, accumulators starting at 0.1.

  Example:
    >>> tx = adagrad(0.01)
  """
  _check_real("initial_accumulator_value", initial_accumulator_value, 0.0)
  _check_real("epsilon", epsilon, 0.0)
  return _keras_chain(
      lambda lr: [optax.scale_by_rss(initial_accumulator_value, epsilon), optax.scale_by_learning_rate(lr)],
      learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
      global_clipnorm=global_clipnorm, decay=decay, exclude_from_weight_decay=exclude_from_weight_decay,
      name="adagrad")


def adadelta(learning_rate: LearningRate = 0.001, rho: float = 0.95, epsilon: float = 1e-7, *,
             weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
             global_clipnorm: float | None = None, decay: float | None = None,
             exclude_from_weight_decay: Sequence[str] = ()) -> optax.GradientTransformation:
  """Keras's `Adadelta` (learning rate 0.001, rho 0.95, epsilon 1e-7 — optax defaults differ).

  Example:
    >>> tx = adadelta(1.0)
  """
  _check_real("rho", rho, 0.0, 1.0)
  _check_real("epsilon", epsilon, 0.0)
  return _keras_chain(
      lambda lr: [optax.scale_by_adadelta(rho, epsilon), optax.scale_by_learning_rate(lr)],
      learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
      global_clipnorm=global_clipnorm, decay=decay, exclude_from_weight_decay=exclude_from_weight_decay,
      name="adadelta")


def adamax(learning_rate: LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
           *, weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
           global_clipnorm: float | None = None, decay: float | None = None,
           exclude_from_weight_decay: Sequence[str] = ()) -> optax.GradientTransformation:
  """Keras's `Adamax` (epsilon added to the infinity norm when dividing).

  Example:
    >>> tx = adamax(2e-3)
  """
  _check_betas(beta_1, beta_2, epsilon)
  return _keras_chain(
      lambda lr: [scale_by_keras_adamax(beta_1, beta_2, epsilon), optax.scale_by_learning_rate(lr)],
      learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
      global_clipnorm=global_clipnorm, decay=decay, exclude_from_weight_decay=exclude_from_weight_decay,
      name="adamax")


def nadam(learning_rate: LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
          *, weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
          global_clipnorm: float | None = None, decay: float | None = None,
          exclude_from_weight_decay: Sequence[str] = ()) -> optax.GradientTransformation:
  """Keras's `Nadam` (Dozat's momentum cache, not optax's `nadam`).

  Example:
    >>> tx = nadam(1e-3)
  """
  _check_betas(beta_1, beta_2, epsilon)
  return _keras_chain(
      lambda lr: [scale_by_keras_nadam(beta_1, beta_2, epsilon), optax.scale_by_learning_rate(lr)],
      learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
      global_clipnorm=global_clipnorm, decay=decay, exclude_from_weight_decay=exclude_from_weight_decay,
      name="nadam")


def lion(learning_rate: LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.99, *,
         weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
         global_clipnorm: float | None = None, decay: float | None = None,
         exclude_from_weight_decay: Sequence[str] = ()) -> optax.GradientTransformation:
  """Keras's `Lion`: `variable -= lr * sign(beta_1 * m + (1 - beta_1) * g)`, then `m = beta_2 * m + (1 - beta_2) * g`
  (optax's `scale_by_lion`, without optax's default weight decay).

  Example:
    >>> tx = lion(1e-4, weight_decay=0.01)
  """
  _check_real("beta_1", beta_1, 0.0, 1.0, low_open=True)
  _check_real("beta_2", beta_2, 0.0, 1.0)
  return _keras_chain(
      lambda lr: [optax.scale_by_lion(b1=beta_1, b2=beta_2), optax.scale_by_learning_rate(lr)],
      learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
      global_clipnorm=global_clipnorm, decay=decay, exclude_from_weight_decay=exclude_from_weight_decay,
      name="lion")


def lamb(learning_rate: LearningRate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7, *,
         weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
         global_clipnorm: float | None = None, decay: float | None = None,
         exclude_from_weight_decay: Sequence[str] = ()) -> optax.GradientTransformation:
  """Keras's `Lamb`: Adam's direction per variable times its trust ratio `||variable|| / ||direction||`.

  Example:
    >>> tx = lamb(1e-3)
  """
  _check_betas(beta_1, beta_2, epsilon)
  return _keras_chain(
      lambda lr: [scale_by_keras_lamb(beta_1, beta_2, epsilon), optax.scale_by_learning_rate(lr)],
      learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
      global_clipnorm=global_clipnorm, decay=decay, exclude_from_weight_decay=exclude_from_weight_decay,
      name="lamb", reads_params=True)


def adafactor(learning_rate: LearningRate = 0.001, beta_2_decay: float = -0.8, epsilon_1: float = 1e-30,
              epsilon_2: float = 1e-3, clip_threshold: float = 1.0, relative_step: bool = True, *,
              weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
              global_clipnorm: float | None = None, decay: float | None = None,
              exclude_from_weight_decay: Sequence[str] = ()) -> optax.GradientTransformation:
  """Keras's `Adafactor`: factored second moments, a step scaled by the variable's RMS and `min(lr, 1/sqrt(t))`.

  `relative_step` is taken for Keras's signature: Keras's step is `min(lr, 1/sqrt(t))` whatever its value.

  Example:
    >>> tx = adafactor(1e-2)
  """
  _check_real("beta_2_decay", beta_2_decay, -np.inf)
  _check_real("epsilon_1", epsilon_1, 0.0)
  _check_real("epsilon_2", epsilon_2, 0.0)
  _check_real("clip_threshold", clip_threshold, 0.0, low_open=True)
  _check_bool("relative_step", relative_step)
  return _keras_chain(
      lambda lr: [keras_adafactor(lr, beta_2_decay, epsilon_1, epsilon_2, clip_threshold)],
      learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
      global_clipnorm=global_clipnorm, decay=decay, exclude_from_weight_decay=exclude_from_weight_decay,
      name="adafactor", reads_params=True)


def ftrl(learning_rate: LearningRate = 0.001, learning_rate_power: float = -0.5,
         initial_accumulator_value: float = 0.1, l1_regularization_strength: float = 0.0,
         l2_regularization_strength: float = 0.0, l2_shrinkage_regularization_strength: float = 0.0,
         beta: float = 0.0, *, weight_decay: float | None = None, clipnorm: float | None = None,
         clipvalue: float | None = None, global_clipnorm: float | None = None, decay: float | None = None,
         exclude_from_weight_decay: Sequence[str] = ()) -> optax.GradientTransformation:
  """Keras's `Ftrl` (FTRL-Proximal, with L1, L2 and L2-shrinkage regularisation).

  Example:
    >>> tx = ftrl(0.05, l1_regularization_strength=0.001)
  """
  _check_real("learning_rate_power", learning_rate_power, -np.inf, 0.0)
  _check_real("initial_accumulator_value", initial_accumulator_value, 0.0)
  for param, value in (("l1_regularization_strength", l1_regularization_strength),
                       ("l2_regularization_strength", l2_regularization_strength),
                       ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength),
                       ("beta", beta)):
    _check_real(param, value, 0.0)
  return _keras_chain(
      lambda lr: [keras_ftrl(lr, learning_rate_power, initial_accumulator_value, l1_regularization_strength,
                             l2_regularization_strength, l2_shrinkage_regularization_strength, beta)],
      learning_rate, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
      global_clipnorm=global_clipnorm, decay=decay, exclude_from_weight_decay=exclude_from_weight_decay,
      name="ftrl", reads_params=True)


def muon(learning_rate: LearningRate = 0.001, adam_beta_1: float = 0.9, adam_beta_2: float = 0.999,
         adam_weight_decay: float | None = 0.004, epsilon: float = 1e-7, weight_decay: float | None = 0.004, *,
         clipnorm: float | None = None, clipvalue: float | None = None, global_clipnorm: float | None = None,
         decay: float | None = None, exclude_from_weight_decay: Sequence[str] = (),
         exclude_layers: Sequence[str] | None = None, exclude_embeddings: bool = True, muon_a: float = 3.4445,
         muon_b: float = -4.7750, muon_c: float = 2.0315, adam_lr_ratio: float = 1.0, momentum: float = 0.95,
         ns_steps: int = 5, nesterov: bool = True, rms_rate: float | None = 0.2) -> optax.GradientTransformation:
  """Keras's `Muon`: 2-D parameters by Muon (`keras_muon`), the others (and embeddings, and paths an
  `exclude_layers` pattern finds) by Keras's Adam at `learning_rate * adam_lr_ratio`; each kind decayed by its
  own factor (`weight_decay`, `adam_weight_decay`) at the full learning rate, as Keras decays them.

  Example:
    >>> tx = muon(0.02, exclude_layers=["head"])
  """
  _check_betas(adam_beta_1, adam_beta_2, epsilon)
  for param, value in (("weight_decay", weight_decay), ("adam_weight_decay", adam_weight_decay),
                       ("rms_rate", rms_rate)):
    if value is not None:
      _check_real(param, value, 0.0)
  _check_real("momentum", momentum, 0.0, 1.0)
  _check_real("adam_lr_ratio", adam_lr_ratio, 0.0)
  check_positive_int("ns_steps", ns_steps)
  _check_bool("nesterov", nesterov)
  _check_bool("exclude_embeddings", exclude_embeddings)
  excluded_layers = [re.compile(pattern) for pattern in (exclude_layers or ())]

  def uses_adam(path: str, param: jax.Array) -> bool:
    return (param.ndim != 2 or (exclude_embeddings and "embedding" in path.lower())
            or any(pattern.search(path) for pattern in excluded_layers))

  def labels(params):
    return jax.tree_util.tree_map_with_path(lambda p, x: "adam" if uses_adam(path_string(p), x) else "muon", params)

  def core(lr):
    adam_lr = lr if adam_lr_ratio == 1 else (lambda count: _lr_at(lr, count) * adam_lr_ratio)
    return [optax.multi_transform({
        "muon": keras_muon(lr, momentum, nesterov, (muon_a, muon_b, muon_c), ns_steps, rms_rate),
        "adam": optax.chain(scale_by_keras_adam(adam_beta_1, adam_beta_2, epsilon),
                            optax.scale_by_learning_rate(adam_lr))}, labels)]

  decays = None if weight_decay is None and adam_weight_decay is None else (
      lambda path, x: adam_weight_decay if uses_adam(path, x) else weight_decay)
  return _keras_chain(core, learning_rate, weight_decay=decays, clipnorm=clipnorm, clipvalue=clipvalue,
                      global_clipnorm=global_clipnorm, decay=decay, exclude_from_weight_decay=exclude_from_weight_decay,
                      name="muon")


def keras_gradient_accumulation(tx: optax.GradientTransformation, steps: int) -> optax.GradientTransformation:
  """Keras's `gradient_accumulation_steps`: the gradients of `steps` consecutive updates are summed, and the last
  of them applies `tx` once to their mean; the others leave the parameters and `tx`'s state as they are (optax's
  `MultiSteps`, summing as Keras sums). `tx` counts the applied updates, as Keras's `iterations` does then.

  Example:
    >>> tx = keras_gradient_accumulation(sgd(0.1), 4)
  """
  mean = optax.stateless(lambda updates, params=None: jax.tree.map(lambda g: g / steps, updates))
  return optax.MultiSteps(optax.chain(mean, tx), every_k_schedule=steps,
                          use_grad_mean=False).gradient_transformation()


def _check_accumulation(value: Any) -> int | None:
  """Keras's `gradient_accumulation_steps`: None or 0 (off), or an integer >= 2."""
  if value is None or (is_int(value) and (value == 0 or value >= 2)):
    return value or None
  raise ValueError(f"gradient_accumulation_steps={value!r} is not allowed; expected None or an integer >= 2.")


class KerasEmaState(NamedTuple):
  count: jax.Array  # batches seen
  inner: Any
  average: Any  # the moving average of the parameters


def keras_ema(tx: optax.GradientTransformation, ema_momentum: float = 0.99,
              ema_overwrite_frequency: int | None = None, *, steps_per_update: int = 1) -> optax.GradientTransformation:
  """Keras's `use_ema`: `tx`, keeping a moving average of the updated parameters (`ema_momentum`; the first
  update's parameters as they are), written over them every `ema_overwrite_frequency` updates when set, and by
  `fit` at its end (`ema_params`, Keras's `finalize_variable_values`). Keras counts its updates in groups of
  `steps_per_update` batches under gradient accumulation.

  Example:
    >>> tx = keras_ema(sgd(0.1), 0.9)
  """

  def init(params):
    return KerasEmaState(jnp.zeros((), jnp.int32), tx.init(params), optax.tree.zeros_like(params))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("Keras's use_ema needs the parameters: call update(grads, state, params).")
    updates, inner = tx.update(updates, state.inner, params)
    new = optax.apply_updates(params, updates)
    iterations = state.count // steps_per_update
    momentum = jnp.where(iterations != 0, jnp.float32(ema_momentum), 0.0)
    average = jax.tree.map(lambda a, v: (momentum * a + (1 - momentum) * v).astype(a.dtype), state.average, new)
    if ema_overwrite_frequency:
      overwrite = (iterations + 1) % ema_overwrite_frequency == 0
      updates = jax.tree.map(lambda u, a, p: jnp.where(overwrite, a - p, u), updates, average, params)
    return updates, KerasEmaState(optax.safe_increment(state.count), inner, average)

  return optax.GradientTransformation(init, update)


def ema_params(opt_state: Any, params: Any) -> Any:
  """`params` with those a `keras_ema` optimizer averages set to their moving average, as Keras's
  `finalize_variable_values` sets them at the end of `fit`; as they are where the optimizer keeps none.

  Example:
    >>> tx = keras_ema(sgd(0.1))
    >>> ema_params(tx.init({"w": jnp.ones(2)}), {"w": jnp.ones(2)})["w"].tolist()
    [0.0, 0.0]
  """
  states = [node for node in jax.tree.leaves(opt_state, is_leaf=lambda n: isinstance(n, KerasEmaState))
            if isinstance(node, KerasEmaState)]
  for state in states:  # one per trainable partition (`freeze` masks the others out of its average)
    params = jax.tree.map(lambda p, a: p if isinstance(a, optax.MaskedNode) else jnp.copy(a), params, state.average)
  return params  # copies: a train step donates the state, so no buffer may sit in it twice


def _with_ema_states(opt_state: Any, change: Callable[[KerasEmaState], KerasEmaState]) -> Any:
  is_ema = lambda node: isinstance(node, KerasEmaState)
  if not any(is_ema(node) for node in jax.tree.leaves(opt_state, is_leaf=is_ema)):
    raise ValueError("SwapEMAWeights must be used when `use_ema=True` is set on the optimizer (as Keras); this "
                     "optimizer keeps no moving average of the weights.")
  return jax.tree.map(lambda node: change(node) if is_ema(node) else node, opt_state, is_leaf=is_ema)


def swap_ema(opt_state: Any, params: Any) -> tuple[Any, Any]:
  """`(opt_state, params)` with the parameters a `keras_ema` optimizer averages exchanged with their average
  (Keras's `SwapEMAWeights`); swapping twice gives both back.

  Raises:
    ValueError: where the optimizer keeps no average (`use_ema` is off).

  Example:
    >>> tx = keras_ema(sgd(0.1))
    >>> state, params = swap_ema(tx.init({"w": jnp.ones(2)}), {"w": jnp.ones(2)})
    >>> params["w"].tolist(), ema_params(state, params)["w"].tolist()
    ([0.0, 0.0], [1.0, 1.0])
  """
  return set_ema(opt_state, params), ema_params(opt_state, params)


def set_ema(opt_state: Any, params: Any) -> Any:
  """`opt_state` with a `keras_ema` optimizer's average set to `params` (Keras's `SwapEMAWeights` does so at the
  last epoch, so that `fit` ends on the weights it swapped in)."""
  return _with_ema_states(opt_state, lambda s: s._replace(average=jax.tree.map(
      lambda a, p: a if isinstance(a, optax.MaskedNode) else jnp.copy(p), s.average, params,
      is_leaf=lambda a: isinstance(a, optax.MaskedNode))))


def _check_ema(use_ema: Any, ema_momentum: Any, ema_overwrite_frequency: Any) -> tuple[float, int | None] | None:
  """Keras's `use_ema` options: None when off, else (momentum, overwrite frequency)."""
  _check_bool("use_ema", use_ema)
  if not use_ema:
    return None
  _check_real("ema_momentum", ema_momentum, 0.0, 1.0)
  if ema_overwrite_frequency is not None:
    check_positive_int("ema_overwrite_frequency", ema_overwrite_frequency)
  return float(ema_momentum), ema_overwrite_frequency


# Keras's optimizer arguments that wrap the optimizer (`get` reads them), at Keras's defaults.
_WRAPPERS = {"gradient_accumulation_steps": None, "use_ema": False, "ema_momentum": 0.99,
             "ema_overwrite_frequency": None}
# Keras optimizer arguments with no counterpart here, and what to use instead.
_UNSUPPORTED = {
    "loss_scale_factor": "It is Keras's, not taken here: scale the loss and the gradients yourself.",
    "name": "It is Keras's, not taken here: optax transformations carry no name.",
}


def _is_optimizer(value: Any) -> bool:
  return isinstance(value, optax.GradientTransformation)


# Keras's class names in any case (`keras.optimizers.deserialize` lower-cases them). In a Keras config dict the
# arguments without a counterpart here (`loss_scale_factor`) are accepted at Keras's defaults.
OPTIMIZERS = Registry("optimizer", any_case=True, passes=_is_optimizer, passes_what="an optax.GradientTransformation",
                      argument_notes=_UNSUPPORTED, taken_before=_WRAPPERS,
                      config_keys={"name": ANY, "loss_scale_factor": (None,)})
for _name, _factory, _class in (("sgd", sgd, "SGD"), ("adam", adam, "Adam"), ("adamw", adamw, "AdamW"),
                                ("rmsprop", rmsprop, "RMSprop"), ("adagrad", adagrad, "Adagrad"),
                                ("adadelta", adadelta, "Adadelta"), ("adamax", adamax, "Adamax"),
                                ("nadam", nadam, "Nadam"), ("lion", lion, "Lion"), ("lamb", lamb, "Lamb"),
                                ("adafactor", adafactor, "Adafactor"), ("ftrl", ftrl, "Ftrl"),
                                ("muon", muon, "Muon")):
  OPTIMIZERS.register(_name, _factory, keras_class=_class)
del _name, _factory, _class


def get(name: str | Mapping[str, Any] | optax.GradientTransformation, /,
        **hyperparameters: Any) -> optax.GradientTransformation:
  """Returns the Keras optimizer `name` (case-insensitive, e.g. `"adam"`, `"RMSprop"`) as optax.

  Args:
    name: one of `OPTIMIZERS` (Keras's class name in any case); or a Keras config dict
      (`keras.optimizers.serialize(...)`; its `name` label, and `loss_scale_factor` at Keras's default, are
      accepted and change nothing; a Keras schedule as its
      learning rate is rebuilt by Keras); or a Keras optimizer object (`keras.optimizers.Adam(1e-3)`), read
      from its class and config; or an optax `GradientTransformation`, returned as is.
    **hyperparameters: the Keras class's arguments with Keras's defaults:
      `learning_rate` (float or schedule), the optimizer's own (`momentum`,
      `nesterov`, `beta_1`, `beta_2`, `epsilon`, `amsgrad`, `rho`, `centered`,
      `initial_accumulator_value`), and `weight_decay`, `clipnorm`,
      `clipvalue`, `global_clipnorm`, `decay` (legacy), `exclude_from_weight_decay`, and
      `gradient_accumulation_steps` (`keras_gradient_accumulation`; a schedule is read at the count of
      the batches, as Keras reads it), `use_ema`, `ema_momentum` and `ema_overwrite_frequency`
      (`keras_ema`: `fit` ends by setting the weights to their average, as Keras's does).

  The learning rate is kept in the optimizer's state
  (`optax.inject_hyperparams`, as float32), so `fit` logs it and
  `ReduceLROnPlateau` can change it (`learning_rate_logs`,
  `set_learning_rate`); the numbers are those of the plain factory
  (`adam(...)` and the others), whose state holds no learning rate.

  Raises:
    ValueError: for an unknown optimizer, an argument it does not have, or a bad value.

  Example:
    >>> tx = get("adam", learning_rate=3e-4, global_clipnorm=1.0)
    >>> tx = get({"class_name": "RMSprop", "config": {"learning_rate": 0.01, "use_ema": False}})
  """
  if _is_optimizer(name):
    return OPTIMIZERS.get(name, **hyperparameters)
  if is_keras_object(name):
    hyperparameters = {**_keras_object_arguments(name), **hyperparameters}
    name = keras_config(name)
  wrappers = {key: hyperparameters.pop(key) for key in _WRAPPERS if key in hyperparameters}
  if isinstance(name, Mapping) and isinstance(name.get("config"), Mapping):  # the kwargs over the config's
    config = dict(name["config"])
    wrappers = {**{key: config.pop(key) for key in _WRAPPERS if key in config}, **wrappers}
    name = {**name, "config": config}
  wrappers = {**_WRAPPERS, **wrappers}
  accumulation = _check_accumulation(wrappers["gradient_accumulation_steps"])
  ema = _check_ema(wrappers["use_ema"], wrappers["ema_momentum"], wrappers["ema_overwrite_frequency"])
  key, hyperparameters = OPTIMIZERS.resolve(name, hyperparameters)
  if "learning_rate" in hyperparameters:  # a Keras schedule's config, or a callable of no argument: a schedule
    learning_rate = hyperparameters["learning_rate"]
    if isinstance(learning_rate, Mapping):
      learning_rate = _keras_schedule(learning_rate)
    learning_rate = _check_learning_rate(learning_rate)
    if accumulation and callable(learning_rate):  # Keras reads a schedule at its step count, that of the batches
      learning_rate = functools.partial(_at_last_batch, learning_rate, accumulation)
    hyperparameters["learning_rate"] = learning_rate
  factory = OPTIMIZERS[key]
  factory(**hyperparameters)  # checks every value now; the injected factory is called only at init
  static = [param for param in OPTIMIZERS.arguments(key) if param != "learning_rate"]
  tx = optax.inject_hyperparams(factory, static_args=static, hyperparam_dtype=jnp.float32)(**hyperparameters)
  if accumulation:
    tx = keras_gradient_accumulation(tx, accumulation)
  return keras_ema(tx, *ema, steps_per_update=accumulation or 1) if ema else tx


def is_keras_object(value: Any) -> bool:
  """Whether `value` is a Keras optimizer object (an instance with a class config that applies gradients)."""
  return hasattr(value, "get_config") and hasattr(value, "apply_gradients")


def _keras_object_arguments(optimizer: Any) -> dict[str, Any]:
  """What a Keras optimizer object holds outside its config: a learning rate that is a schedule object or a
  callable (taken as it is, so a schedule of the user's own works), and its `exclude_from_weight_decay(var_names=...)`
  patterns (Keras matches them as one `re.search` alternation against each variable's name) where it decays."""
  arguments = {}
  learning_rate = getattr(optimizer, "_learning_rate", None)
  if callable(learning_rate):
    arguments["learning_rate"] = learning_rate
  if not getattr(optimizer, "weight_decay", None) and not getattr(optimizer, "adam_weight_decay", None):
    return arguments  # Keras's exclusions then change nothing (Muon decays its Adam part by adam_weight_decay)
  if getattr(optimizer, "_exclude_from_weight_decay", None):
    raise ValueError("optimizer=<Keras optimizer> with exclude_from_weight_decay(var_list=...) is not allowed: "
                     "Keras variables name nothing here; exclude them by name with var_names=[...] (or "
                     "exclude_from_weight_decay=[...]).")
  pattern = getattr(optimizer, "_exclude_from_weight_decay_pattern", None)
  if pattern is not None:
    arguments["exclude_from_weight_decay"] = (pattern.pattern,)
  return arguments


def _at_last_batch(schedule: Callable[[jax.Array], jax.Array], steps: int, count: jax.Array) -> jax.Array:
  """`schedule` read for the `count`-th applied update at the count of its last batch, as Keras reads it."""
  return schedule(steps * count + steps - 1)


# ---------------------------------------------------------------------------- the learning rate in a state


_INJECTED = (optax.InjectStatefulHyperparamsState, optax.InjectHyperparamsState)


def _injected(opt_state: Any) -> list[tuple[str, Any]]:
  """(path, state) of each `optax.inject_hyperparams` state in `opt_state` that holds a learning rate."""
  nodes = jax.tree_util.tree_flatten_with_path(opt_state, is_leaf=lambda node: isinstance(node, _INJECTED))[0]
  return [(path_string(path), node) for path, node in nodes
          if isinstance(node, _INJECTED) and "learning_rate" in node.hyperparams]


def learning_rate_logs(opt_state: Any) -> dict[str, float]:
  """The learning rate of the last update, as logs: `{"learning_rate": ...}`.

  Readable where the optimizer holds it in its state, as `get`'s optimizers
  (and any `optax.inject_hyperparams` one) do; with several (one per
  `freeze` partition), each is logged as `learning_rate_<path>`. A schedule
  reports the rate of the last update taken, not of the next.

  Example:
    >>> tx = get("sgd", learning_rate=0.5)
    >>> learning_rate_logs(tx.init({"w": jnp.ones(2)}))
    {'learning_rate': 0.5}
  """
  found = _injected(opt_state)
  if len(found) == 1:
    return {"learning_rate": float(jax.device_get(found[0][1].hyperparams["learning_rate"]))}
  return {f"learning_rate_{re.sub(r'[^0-9A-Za-z]+', '_', path).strip('_')}":
          float(jax.device_get(node.hyperparams["learning_rate"])) for path, node in found}


def update_count(opt_state: Any, batches: int) -> int:
  """Keras's `optimizer.iterations`: the updates applied after `batches` batches, fewer where
  `gradient_accumulation_steps` applies one per group of batches.

  Example:
    >>> tx = get("sgd", gradient_accumulation_steps=2)
    >>> update_count(tx.init({"w": jnp.ones(2)}), 0)
    0
  """
  found = [node for node in jax.tree.leaves(opt_state, is_leaf=lambda n: isinstance(n, optax.MultiStepsState))
           if isinstance(node, optax.MultiStepsState)]
  return int(jax.device_get(found[0].gradient_step)) if found else batches


def set_learning_rate(opt_state: Any, new: Callable[[float], float]) -> Any:
  """`opt_state` with each settable learning rate `old` replaced by `new(old)` (a Python float).

  As assigning Keras's `optimizer.learning_rate`: the next updates use it.
  Each new value keeps its array's sharding.

  Raises:
    ValueError: when `opt_state` holds no learning rate that can be set: the
      optimizer does not keep it in its state (build it with `get` or
      `optax.inject_hyperparams`), or it follows a schedule (as Keras, which
      refuses to set a scheduled learning rate).

  Example:
    >>> tx = get("sgd", learning_rate=0.5)
    >>> state = set_learning_rate(tx.init({"w": jnp.ones(2)}), lambda old: old / 10)
    >>> round(learning_rate_logs(state)["learning_rate"], 6)
    0.05
  """
  settable = [node for _, node in _injected(opt_state)
              if "learning_rate" not in getattr(node, "hyperparams_states", {})]
  if not settable:
    scheduled = bool(_injected(opt_state))
    raise ValueError(
        "the optimizer's learning rate cannot be set: " +
        ("it follows a schedule (as in Keras, only a constant learning rate can be changed)." if scheduled else
         "the optimizer state holds none; build the optimizer with jaxcomponents.optimizers.get(...) or "
         "optax.inject_hyperparams(...)."))

  def replace(node):
    if not any(node is s for s in settable):
      return node
    old = node.hyperparams["learning_rate"]
    value = np.asarray(new(float(jax.device_get(old))), old.dtype)
    array = jax.make_array_from_callback(old.shape, old.sharding, lambda index: value[index])
    return node._replace(hyperparams={**node.hyperparams, "learning_rate": array})

  return jax.tree.map(replace, opt_state, is_leaf=lambda node: isinstance(node, _INJECTED))
