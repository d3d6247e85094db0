"""Losses by their Keras names, computing Keras 3's numbers.

`get(name, **options)` returns a `Loss`: `loss(y_true, y_pred,
sample_weight=None, mask=None)`. It computes what the Keras loss class of that
name computes (`keras.losses.CategoricalCrossentropy(**options)`), including
Keras's rank fix-ups of `y_true`/`y_pred`, its probability clipping at
`epsilon = 1e-7` and its reductions:

* `"sum_over_batch_size"` (default) and `"mean"`: the sum of the weighted
  per-sample losses divided by the number of per-sample losses. As in Keras,
  examples with `sample_weight` 0 still count in that divisor.
* `"sum"`: the sum; `"mean_with_sample_weight"`: the sum divided by the sum of
  the weights; `"none"` / `None`: the per-sample losses.

Padding: pass `mask` (1 real, 0 padding), Keras's masking rule for a masked
`y_pred`: the loss is then the mean over the real entries only (times their
`sample_weight`), whatever the padding holds. `sample_weight=0` alone does not
do that with the default reduction, exactly as in Keras.

Example:
  >>> import jax.numpy as jnp
  >>> loss = get("categorical_crossentropy", label_smoothing=0.1)
  >>> round(float(loss(jnp.array([[0.0, 1.0]]), jnp.array([[0.2, 0.8]]))), 4)
  0.2925
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxcomponents.errors import check_choice, is_int, is_real
from jaxcomponents.registry import ANY, Registry, built, keras_config

EPSILON = 1e-7  # keras.backend.epsilon()

REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", "none", None)

Array = jax.Array


def match_rank(x1: Array, x2: Array, expand_rank_1: bool = True) -> tuple[Array, Array]:
  """Keras's `squeeze_or_expand_to_same_rank`: fixes a rank difference of one trailing axis of size 1.

  Example:
    >>> a, b = match_rank(jnp.zeros((4, 1)), jnp.zeros((4,)))
    >>> a.shape, b.shape
    ((4, 1), (4, 1))
  """
  if x1.ndim == x2.ndim + 1 and x1.shape[-1] == 1:
    if x2.ndim == 1 and expand_rank_1:
      x2 = x2[..., None]
    else:
      x1 = jnp.squeeze(x1, -1)
  elif x2.ndim == x1.ndim + 1 and x2.shape[-1] == 1:
    if x1.ndim == 1 and expand_rank_1:
      x1 = x1[..., None]
    else:
      x2 = jnp.squeeze(x2, -1)
  return x1, x2


# Per-sample losses: (y_true, y_pred, **options) -> (values, mask or None), after `match_rank`.


def _mean_squared_error(y_true, y_pred):
  return jnp.mean(jnp.square(y_true - y_pred), axis=-1), None


def _mean_absolute_error(y_true, y_pred):
  return jnp.mean(jnp.abs(y_true - y_pred), axis=-1), None


def _mean_absolute_percentage_error(y_true, y_pred):
  diff = jnp.abs((y_true - y_pred) / jnp.maximum(jnp.abs(y_true), EPSILON))
  return 100.0 * jnp.mean(diff, axis=-1), None


def _mean_squared_logarithmic_error(y_true, y_pred):
  first = jnp.log(jnp.maximum(y_pred, EPSILON) + 1.0)
  second = jnp.log(jnp.maximum(y_true, EPSILON) + 1.0)
  return jnp.mean(jnp.square(first - second), axis=-1), None


def _l2_normalize(x, axis):
  # Keras's ops.normalize: x * min(rsqrt(sum(x^2)), 1 / epsilon), so a zero vector stays zero.
  inv_norm = jax.lax.rsqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
  return x * jnp.minimum(inv_norm, 1.0 / EPSILON)


def _cosine_similarity(y_true, y_pred, axis=-1):
  return -jnp.sum(_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis), axis=axis), None


def _huber(y_true, y_pred, delta=1.0):
  error = y_pred - y_true
  abs_error = jnp.abs(error)
  delta = jnp.asarray(delta, y_pred.dtype)
  values = jnp.where(abs_error <= delta, 0.5 * jnp.square(error), delta * abs_error - 0.5 * jnp.square(delta))
  return jnp.mean(values, axis=-1), None


def _log_cosh(y_true, y_pred):
  x = y_pred - y_true
  return jnp.mean(x + jax.nn.softplus(-2.0 * x) - jnp.log(2.0).astype(x.dtype), axis=-1), None


def _hinge_labels(y_true):
  # Keras turns {0, 1} labels into {-1, 1}, only when every label is 0 or 1.
  is_binary = jnp.all((y_true == 0) | (y_true == 1))
  return jnp.where(is_binary, 2.0 * y_true - 1.0, y_true)


def _hinge(y_true, y_pred):
  return jnp.mean(jnp.maximum(1.0 - _hinge_labels(y_true) * y_pred, 0.0), axis=-1), None


def _squared_hinge(y_true, y_pred):
  return jnp.mean(jnp.square(jnp.maximum(1.0 - _hinge_labels(y_true) * y_pred, 0.0)), axis=-1), None


def _categorical_hinge(y_true, y_pred):
  pos = jnp.sum(y_true * y_pred, axis=-1)
  neg = jnp.max((1.0 - y_true) * y_pred, axis=-1)
  return jnp.maximum(neg - pos + 1.0, 0.0), None


def _kl_divergence(y_true, y_pred):
  y_true = jnp.clip(y_true, EPSILON, 1.0)
  y_pred = jnp.clip(y_pred, EPSILON, 1.0)
  return jnp.sum(y_true * jnp.log(y_true / y_pred), axis=-1), None


def _poisson(y_true, y_pred):
  return jnp.mean(y_pred - y_true * jnp.log(y_pred + EPSILON), axis=-1), None


def _log_probs(y_pred, from_logits, axis):
  if from_logits:
    return jax.nn.log_softmax(y_pred, axis=axis)
  # Keras renormalizes the probabilities, then clips them to [eps, 1 - eps].
  probs = y_pred / jnp.sum(y_pred, axis=axis, keepdims=True)
  return jnp.log(jnp.clip(probs, EPSILON, 1.0 - EPSILON))


def _categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
  if y_true.shape != y_pred.shape:
    raise ValueError(
        f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}; "
        "categorical_crossentropy expects one-hot y_true of the same shape "
        "(use sparse_categorical_crossentropy for integer labels)."
    )
  if label_smoothing:
    # Keras smooths over the last axis's size, whatever `axis` is.
    y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]
  return -jnp.sum(y_true * _log_probs(y_pred, from_logits, axis), axis=axis), None


def _sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
  axis = axis % y_pred.ndim
  if y_true.ndim == y_pred.ndim and y_true.shape[axis] == 1:
    y_true = jnp.squeeze(y_true, axis)
  expected = y_pred.shape[:axis] + y_pred.shape[axis + 1:]
  if y_true.shape != expected:
    raise ValueError(
        f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}; "
        f"sparse_categorical_crossentropy expects integer labels of shape {expected} "
        f"(y_pred without its class axis {axis})."
    )
  labels = y_true.astype(jnp.int32)
  valid = None
  if ignore_class is not None:
    valid = labels != ignore_class
    labels = jnp.where(valid, labels, 0)
  one_hot = jax.nn.one_hot(labels, y_pred.shape[axis], axis=axis, dtype=y_pred.dtype)
  values = -jnp.sum(one_hot * _log_probs(y_pred, from_logits, axis), axis=axis)
  if valid is not None:
    values = jnp.where(valid, values, 0.0)
  return values, valid


def is_binary_or_sparse(y_true, y_pred) -> tuple[bool, bool]:
  """Keras's compile rule (`is_binary_or_sparse_categorical`) for "accuracy" and "crossentropy", from the static
  shapes: binary where `y_pred` has one column, sparse where the labels have one axis fewer or one column against
  several.

  Example:
    >>> is_binary_or_sparse(jnp.zeros((4,)), jnp.zeros((4, 3)))
    (False, True)
  """
  is_binary = y_pred.shape[-1] == 1
  is_sparse = y_true.ndim < y_pred.ndim or (y_true.shape[-1] == 1 and y_pred.shape[-1] > 1)
  return is_binary, is_sparse


def _crossentropy(y_true, y_pred):
  """Keras's `compile(loss="crossentropy")` (or `"ce"`): the binary, sparse or categorical cross-entropy the
  shapes call for (`is_binary_or_sparse`), with Keras's defaults."""
  is_binary, is_sparse = is_binary_or_sparse(y_true, y_pred)
  if is_binary:
    return _binary_crossentropy(y_true, y_pred)
  if is_sparse:
    return _sparse_categorical_crossentropy(y_true, y_pred)
  return _categorical_crossentropy(y_true, y_pred)


def _binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
  if y_true.shape != y_pred.shape:
    raise ValueError(
        f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}; "
        "binary_crossentropy expects the same shape."
    )
  if label_smoothing:
    y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
  if from_logits:
    values = -y_true * jax.nn.log_sigmoid(y_pred) - (1.0 - y_true) * jax.nn.log_sigmoid(-y_pred)
  else:
    values = _clipped_binary_crossentropy(y_true, y_pred)
  return jnp.mean(values, axis=axis), None


def _clipped_binary_crossentropy(y_true, p):
  """Keras's backend binary cross-entropy of probabilities, per entry: `p` clipped to [eps, 1 - eps]."""
  p = jnp.clip(p, EPSILON, 1.0 - EPSILON)
  return -(y_true * jnp.log(p) + (1.0 - y_true) * jnp.log(1.0 - p))


def _binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25, gamma=2.0,
                               from_logits=False, label_smoothing=0.0, axis=-1):
  if label_smoothing:
    y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
  if from_logits:
    y_pred = jax.nn.sigmoid(y_pred)  # Keras then clips, as for probabilities (not the log-sigmoid form)
  p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
  values = (1.0 - p_t) ** gamma * _clipped_binary_crossentropy(y_true, y_pred)
  if apply_class_balancing:
    values = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * values
  return jnp.mean(values, axis=axis), None


def _categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                    label_smoothing=0.0, axis=-1):
  if label_smoothing:
    y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]
  if from_logits:
    y_pred = jax.nn.softmax(y_pred, axis=axis)
  probs = jnp.clip(y_pred / jnp.sum(y_pred, axis=axis, keepdims=True), EPSILON, 1.0 - EPSILON)
  return jnp.sum(alpha * (1.0 - probs) ** gamma * -y_true * jnp.log(probs), axis=axis), None


def _categorical_generalized_cross_entropy(y_true, y_pred, q=0.5):
  one_hot = jax.nn.one_hot(y_true.astype(jnp.int32), y_pred.shape[-1], dtype=y_pred.dtype)
  return (1.0 - jnp.sum(y_pred * one_hot, axis=-1) ** q) / q, None


def _dice(y_true, y_pred, axis=None):
  intersection = jnp.sum(y_true * y_pred, axis=axis)
  return 1.0 - 2.0 * intersection / (jnp.sum(y_true, axis=axis) + jnp.sum(y_pred, axis=axis) + EPSILON), None


def _tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
  intersection = jnp.sum(y_true * y_pred, axis=axis)
  false_positives = jnp.sum((1.0 - y_pred) * y_true, axis=axis)  # as Keras names them (y_true is its "inputs")
  false_negatives = jnp.sum(y_pred * (1.0 - y_true), axis=axis)
  return 1.0 - intersection / (intersection + false_positives * alpha + false_negatives * beta + EPSILON), None


def _ctc(y_true, y_pred):
  """Keras's `ctc`: integer labels `(batch, max_length)`, 0 the blank that also pads them, against logits
  `(batch, time, classes)` (optax's `ctc_loss`, which Keras's JAX backend computes too)."""
  if y_true.ndim != 2 or y_pred.ndim != 3:
    raise ValueError(f"the CTC loss takes labels of shape (batch_size, max_length) and logits of shape "
                     f"(batch_size, max_length, num_classes); got y_true of shape {y_true.shape} and y_pred of "
                     f"shape {y_pred.shape}.")
  labels = y_true.astype(jnp.int32)
  lengths = jnp.sum(labels != 0, axis=-1, keepdims=True)
  label_paddings = (jnp.arange(labels.shape[1]) >= lengths).astype(y_pred.dtype)
  return optax.ctc_loss(y_pred, jnp.zeros(y_pred.shape[:2], y_pred.dtype), labels, label_paddings, blank_id=0), None


def _circle_over(y_true, y_pred, gamma=80.0, margin=0.4, remove_diagonal=True, rows=None):
  """Keras's `circle` of L2-normalised embeddings against every other example of the batch, or against the
  real ones where `rows` marks them (a padded batch's padding is no example to compare with)."""
  labels = y_true.astype(jnp.int32).reshape(-1)
  distances = jnp.maximum(1.0 - y_pred @ y_pred.T, 0.0)
  positive = labels[:, None] == labels[None, :]
  negative = ~positive
  if remove_diagonal:
    positive = positive & ~jnp.eye(labels.shape[0], dtype=bool)
  if rows is not None:
    positive, negative = positive & rows[None, :], negative & rows[None, :]
  positive_weights = jnp.maximum((margin + distances) * positive, 0.0)
  negative_weights = jnp.maximum((1.0 + margin - distances) * negative, 0.0)
  positive_terms = -1.0 * gamma * positive_weights * (margin - distances)
  negative_terms = gamma * negative_weights * (1.0 - margin - distances)
  p_loss = jax.scipy.special.logsumexp(jnp.where(positive, positive_terms, -jnp.inf), axis=1)
  n_loss = jax.scipy.special.logsumexp(jnp.where(negative, negative_terms, -jnp.inf), axis=1)
  values = jax.nn.softplus(p_loss + n_loss)
  return values, values > 0  # Keras masks the zero losses out of the mean


def _circle(y_true, y_pred, gamma=80.0, margin=0.4, remove_diagonal=True):
  return _circle_over(y_true, y_pred, gamma, margin, remove_diagonal)


# The losses whose examples are compared with the batch's other examples: `Loss.per_sample` tells them the
# real ones (`rows`) where a step pads the batch.
_PAIRWISE = {"circle": _circle_over}


def _build(name: str, fn: Callable[..., Any], options: dict[str, Any]) -> Loss:
  """The `Loss` of checked `options`, with the loss's defaults for the others."""
  options = {**LOSSES.arguments(name), **options}
  reduction = options.pop("reduction")
  check_choice("reduction", reduction, REDUCTIONS)
  return Loss(name, tuple((k, _check_option(name, k, v)) for k, v in options.items()), reduction)


# Keras's function names (canonical), class names and short aliases (`keras.losses.ALL_OBJECTS_DICT`), and
# Keras 2's older names. The per-sample functions' keyword arguments are the losses' options.
LOSSES = Registry("loss", inputs=("y_true", "y_pred"), common={"reduction": "sum_over_batch_size"},
                  make=_build, config_keys={"name": ANY, "dtype": (None, "float32")})
for _name, _fn, _class, _aliases in (
    ("mean_squared_error", _mean_squared_error, "MeanSquaredError", ("mse", "MSE")),
    ("mean_absolute_error", _mean_absolute_error, "MeanAbsoluteError", ("mae", "MAE")),
    ("mean_absolute_percentage_error", _mean_absolute_percentage_error, "MeanAbsolutePercentageError",
     ("mape", "MAPE")),
    ("mean_squared_logarithmic_error", _mean_squared_logarithmic_error, "MeanSquaredLogarithmicError",
     ("msle", "MSLE")),
    ("cosine_similarity", _cosine_similarity, "CosineSimilarity", ()),
    ("huber", _huber, "Huber", ("huber_loss",)),
    ("log_cosh", _log_cosh, "LogCosh", ("logcosh",)),
    ("hinge", _hinge, "Hinge", ()),
    ("squared_hinge", _squared_hinge, "SquaredHinge", ()),
    ("categorical_hinge", _categorical_hinge, "CategoricalHinge", ()),
    ("kl_divergence", _kl_divergence, "KLDivergence", ("kld", "KLD", "kullback_leibler_divergence")),
    ("poisson", _poisson, "Poisson", ()),
    ("binary_crossentropy", _binary_crossentropy, "BinaryCrossentropy", ("bce", "BCE")),
    ("categorical_crossentropy", _categorical_crossentropy, "CategoricalCrossentropy", ()),
    ("sparse_categorical_crossentropy", _sparse_categorical_crossentropy, "SparseCategoricalCrossentropy", ()),
    ("binary_focal_crossentropy", _binary_focal_crossentropy, "BinaryFocalCrossentropy", ()),
    ("categorical_focal_crossentropy", _categorical_focal_crossentropy, "CategoricalFocalCrossentropy", ()),
    ("categorical_generalized_cross_entropy", _categorical_generalized_cross_entropy,
     "CategoricalGeneralizedCrossEntropy", ()),
    ("dice", _dice, "Dice", ()),
    ("tversky", _tversky, "Tversky", ()),
    ("ctc", _ctc, "CTC", ()),
    ("circle", _circle, "Circle", ()),
    ("crossentropy", _crossentropy, None, ("ce",)),  # not a Keras loss: compile's choice by the shapes
):
  LOSSES.register(_name, _fn, keras_class=_class, aliases=_aliases)
del _name, _fn, _class, _aliases

ALIASES = LOSSES.aliases  # every accepted spelling -> its canonical name


def _check_option(name: str, key: str, value: Any) -> Any:
  if key == "from_logits":
    if not isinstance(value, bool):
      raise ValueError(f"from_logits={value!r} is not allowed for loss {name!r}; expected True or False.")
  elif key == "axis" and name in ("dice", "tversky", "cosine_similarity"):
    axes = value if isinstance(value, (tuple, list)) else (value,)
    if (value is None and name == "cosine_similarity") or (
        value is not None and (not axes or any(not is_int(a) for a in axes))):
      every = "" if name == "cosine_similarity" else "None (every axis), "
      raise ValueError(f"axis={value!r} is not allowed for loss {name!r}; expected {every}an integer axis or a "
                       "tuple of them.")
    value = tuple(value) if isinstance(value, list) else value
  elif key == "axis":
    if not is_int(value):
      raise ValueError(f"axis={value!r} is not allowed for loss {name!r}; expected an integer axis.")
  elif key == "remove_diagonal":
    if not isinstance(value, bool):
      raise ValueError(f"remove_diagonal={value!r} is not allowed for loss {name!r}; expected True or False.")
  elif key in ("alpha", "beta", "gamma", "margin"):
    if not is_real(value) or not math.isfinite(value):
      raise ValueError(f"{key}={value!r} is not allowed for loss {name!r}; expected a finite float.")
    value = float(value)
  elif key == "q":
    if not is_real(value) or not 0.0 < value < 1.0:
      raise ValueError(f"q={value!r} is not allowed for loss {name!r}; expected a float in (0, 1).")
    value = float(value)
  elif key == "apply_class_balancing":
    if not isinstance(value, bool):
      raise ValueError(f"apply_class_balancing={value!r} is not allowed for loss {name!r}; expected True or "
                       "False.")
  elif key == "label_smoothing":
    if not is_real(value) or not 0.0 <= value <= 1.0:
      raise ValueError(f"label_smoothing={value!r} is not allowed for loss {name!r}; expected a float in [0, 1].")
    value = float(value)
  elif key == "ignore_class":
    if value is not None and not (is_real(value) and float(value).is_integer()):
      raise ValueError(f"ignore_class={value!r} is not allowed for loss {name!r}; expected None or an integer.")
    value = None if value is None else int(value)
  elif key == "delta":
    if not is_real(value) or not 0 <= value < math.inf:
      raise ValueError(f"delta={value!r} is not allowed for loss {name!r}; expected a float >= 0.")
    value = float(value)
  return value


def broadcast_weight(weight: Array, values: Array) -> tuple[Array, Array]:
  """Keras's rank fix-up, then a per-example weight spreads over that example's entries."""
  values, weight = match_rank(values, weight)
  if weight.ndim < values.ndim and weight.shape == values.shape[:weight.ndim]:
    weight = weight.reshape(weight.shape + (1,) * (values.ndim - weight.ndim))
  try:
    jnp.broadcast_shapes(values.shape, weight.shape)
  except ValueError:
    raise ValueError(f"sample_weight of shape {weight.shape} does not fit the loss's values of shape {values.shape}; "
                     "expected one weight per example or one per entry of the values.") from None
  return values, weight


def reduce_weighted(values: Array, sample_weight: Array | None = None, mask: Array | None = None,
                    reduction: str | None = "sum_over_batch_size") -> Array:
  """Keras's `reduce_weighted_values`: per-sample losses, weights and a mask -> the reduced loss.

  Example:
    >>> float(reduce_weighted(jnp.array([1.0, 3.0]), mask=jnp.array([1.0, 0.0])))
    1.0
  """
  values = jnp.asarray(values, jnp.float32)
  if mask is not None:
    mask = jnp.asarray(mask).astype(bool)
    if reduction in ("sum_over_batch_size", "mean"):
      # Real entries weigh total / valid, so dividing by the size gives the mean over the real ones.
      valid = jnp.sum(mask.astype(jnp.float32))
      scale = jnp.where(valid > 0, mask.size / jnp.where(valid > 0, valid, 1.0), 0.0)
      float_mask = jnp.where(mask, scale, 0.0)
    else:
      float_mask = mask.astype(jnp.float32)
    if sample_weight is None:
      sample_weight = float_mask
    else:
      float_mask, sample_weight = broadcast_weight(jnp.asarray(sample_weight, jnp.float32), float_mask)
      sample_weight = sample_weight * float_mask
  spread = False
  if sample_weight is not None:
    sample_weight = jnp.asarray(sample_weight, jnp.float32)
    matched = match_rank(values, sample_weight)[1]
    spread = 0 < matched.ndim < values.ndim  # a per-example weight over an example's entries
    values, sample_weight = broadcast_weight(sample_weight, values)
    values = values * sample_weight
  if reduction in (None, "none") or values.shape in ((), (0,)):
    return values
  total = jnp.sum(values)
  if reduction == "sum":
    return total
  if reduction == "mean_with_sample_weight" and sample_weight is not None:
    # Keras divides by the sum of the weights as given (after its rank fix-up), not as broadcast over the
    # entries; a per-example weight spread over an example's entries (an extension here) counts once per entry.
    divisor = jnp.sum(jnp.broadcast_to(sample_weight, values.shape) if spread else sample_weight)
  else:
    divisor = jnp.asarray(values.size, jnp.float32)
  return jnp.where(divisor != 0, total / jnp.where(divisor != 0, divisor, 1.0), 0.0)


@dataclasses.dataclass(frozen=True)
class Loss:
  """A Keras loss: `loss(y_true, y_pred, sample_weight=None, mask=None) -> loss`.

  Build it with `get`. Inputs are cast to float32 as Keras does; the result is a
  scalar, or the per-sample losses with `reduction="none"`.

  Attributes:
    name: the canonical Keras function name, e.g. `"binary_crossentropy"`.
    options: the loss's options (`from_logits`, `label_smoothing`, `axis`, `delta`, ...).
    reduction: one of `REDUCTIONS`.

  Example:
    >>> import jax.numpy as jnp
    >>> mse = get("mse")
    >>> float(mse(jnp.array([[0.0], [1.0]]), jnp.array([[1.0], [1.0]]), sample_weight=jnp.array([2.0, 1.0])))
    1.0
  """

  name: str
  options: tuple[tuple[str, Any], ...] = ()
  reduction: str | None = "sum_over_batch_size"

  @property
  def masks_entries(self) -> bool:
    """Whether Keras leaves some of its entries out of the mean (`ignore_class`'s, or Circle's zero losses), so
    a batch is reduced by this loss itself, never as a plain mean of per-example values."""
    return self.name in _PAIRWISE or dict(self.options).get("ignore_class") is not None

  def per_sample(self, y_true: Array, y_pred: Array, dtype: Any = jnp.float32,
                 rows: Array | None = None) -> tuple[Array, Array | None]:
    """The unreduced losses, computed in `dtype`, and the mask Keras attaches to them (`ignore_class`), or None.

    `rows` marks a padded batch's real examples, for the losses that compare each example with the others.
    """
    y_pred = jnp.asarray(y_pred, dtype)
    y_true = jnp.asarray(y_true, dtype)
    y_true, y_pred = match_rank(y_true, y_pred)
    if rows is not None and self.name in _PAIRWISE:
      return _PAIRWISE[self.name](y_true, y_pred, **dict(self.options), rows=rows)
    return LOSSES[self.name](y_true, y_pred, **dict(self.options))

  def __call__(self, y_true: Array, y_pred: Array, sample_weight: Array | None = None,
               mask: Array | None = None) -> Array:
    values, out_mask = self.per_sample(y_true, y_pred)
    if mask is not None:
      mask = jnp.asarray(mask).astype(bool)
      if out_mask is not None:
        mask = mask & out_mask
    else:
      mask = out_mask
    return reduce_weighted(values, sample_weight, mask, self.reduction)


def get(name: str | Mapping[str, Any] | Callable[..., Any], /, **options: Any) -> Loss | Callable[..., Any]:
  """Returns the Keras loss `name` (function name, class name or alias such as `"mse"`).

  Args:
    name: e.g. `"categorical_crossentropy"`, `"CategoricalCrossentropy"`, `"mse"`, `"kld"`; or a Keras config
      dict (`keras.losses.serialize(...)`: its `name` label is not used); or a Keras loss object
      (`keras.losses.Huber(delta=2.0)`), read from its class and config; or another callable, returned as is.
    **options: the Keras class's arguments: `from_logits`, `label_smoothing`,
      `axis` (cross-entropies), `ignore_class` (sparse), `delta` (huber),
      `axis` (cosine_similarity), `alpha`, `gamma` and `apply_class_balancing` (focal cross-entropies),
      `q` (categorical_generalized_cross_entropy), `axis` (None, an axis or a tuple: dice, tversky),
      `alpha`, `beta` (tversky), and `reduction` (every loss).

  Raises:
    ValueError: for an unknown name, an option the loss does not have, or a bad value.

  Example:
    >>> import jax.numpy as jnp
    >>> bce = get("binary_crossentropy", from_logits=True)
    >>> round(float(bce(jnp.array([1.0]), jnp.array([0.0]))), 4)
    0.6931
    >>> get({"class_name": "BinaryCrossentropy", "config": {"from_logits": True}}) == bce
    True
  """
  name = built(name)
  if is_keras_object(name):
    if str(getattr(name, "dtype", "float32")) != "float32":  # Keras computes the loss in it; its config omits it
      raise ValueError(f"loss={name!r} has dtype={name.dtype!r}; jaxcomponents computes Keras's losses in float32 "
                       "only, so build the Keras loss without dtype (its default, float32).")
    if type(name).__name__ not in LOSSES.aliases:
      raise ValueError(f"loss={name!r} is not allowed: the Keras class {type(name).__name__} has no jaxcomponents "
                       "counterpart to read its config into; pass a function (y_true, y_pred) -> per-example losses "
                       "instead.")
    name = keras_config(name)
  return LOSSES.get(name, **options)


def is_keras_object(value: Any) -> bool:
  """Whether `value` is a Keras loss object (an instance with a class config and a reduction)."""
  return callable(value) and hasattr(value, "get_config") and hasattr(value, "reduction") and \
      not isinstance(value, Loss)
