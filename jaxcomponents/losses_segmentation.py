"""Segmentation losses on maps `(batch, height, width, channels)`, one value per example.

Every loss here returns per-example losses of shape `(batch,)`, what
`jaxcomponents.training.make_train_step(loss=...)` expects, so
`make_train_step(get("dice"))` trains with it. Formulas:

* `dice`, `tversky`, `binary_focal_crossentropy`,
  `categorical_focal_crossentropy`: Keras 3's (`keras.losses.dice(...,
  axis=(1, 2, 3))`, ...), over each example's pixels and channels.
* `jaccard` (alias `iou`): `1 - I / (T + P - I)` with
  `I = sum(y_true * y_pred)`, zero-safe, keras-unet-collection's `iou_seg`.
* `kuc_dice`, `focal_tversky`: keras-unet-collection's `dice` and
  `focal_tversky` (its constants, `alpha` weighting false negatives).
* `binary_crossentropy`, `categorical_crossentropy`,
  `sparse_categorical_crossentropy`: Keras's per-pixel losses
  (`jaxcomponents.losses`), averaged over each example's pixels.

`per_example=False` reduces over the whole batch instead and returns a scalar:
what keras-unet-collection's losses return (they flatten the batch).

Example:
  >>> import jax.numpy as jnp
  >>> y = jnp.ones((2, 4, 4, 1))
  >>> dice(y, y).tolist()
  [0.0, 0.0]
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxcomponents import losses as keras_losses
from jaxcomponents.registry import Registry

EPSILON = 1e-7  # keras.backend.epsilon()

Array = jax.Array


def _cast(y_true, y_pred) -> tuple[Array, Array]:
  y_pred = jnp.asarray(y_pred, jnp.float32)
  y_true = jnp.asarray(y_true, y_pred.dtype)
  if y_true.shape != y_pred.shape:
    raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}; expected the same "
                     "shape (one channel per label).")
  return y_true, y_pred


def _sum(x: Array, per_example: bool) -> Array:
  return jnp.sum(x, axis=tuple(range(1, x.ndim))) if per_example else jnp.sum(x)


def _mean(x: Array, per_example: bool) -> Array:
  return jnp.mean(x, axis=tuple(range(1, x.ndim))) if per_example else jnp.mean(x)


def _div_no_nan(a: Array, b: Array) -> Array:
  return jnp.where(b == 0, 0.0, a / jnp.where(b == 0, 1.0, b))


def dice(y_true, y_pred, per_example: bool = True) -> Array:
  """Keras's `dice`: `1 - 2 I / (sum(y_true) + sum(y_pred) + eps)`."""
  y_true, y_pred = _cast(y_true, y_pred)
  intersection = _sum(y_true * y_pred, per_example)
  return 1.0 - 2.0 * intersection / (_sum(y_true, per_example) + _sum(y_pred, per_example) + EPSILON)


def tversky(y_true, y_pred, alpha: float = 0.5, beta: float = 0.5, per_example: bool = True) -> Array:
  """Keras's `tversky`: `1 - I / (I + alpha FP + beta FN + eps)` (Keras's FP/FN naming)."""
  y_true, y_pred = _cast(y_true, y_pred)
  intersection = _sum(y_true * y_pred, per_example)
  fp = _sum((1.0 - y_pred) * y_true, per_example)
  fn = _sum(y_pred * (1.0 - y_true), per_example)
  return 1.0 - intersection / (intersection + alpha * fp + beta * fn + EPSILON)


def jaccard(y_true, y_pred, per_example: bool = True) -> Array:
  """The Jaccard (IoU) loss `1 - I / (T + P - I)`, 0/0 counted as 0 (keras-unet-collection's `iou_seg`)."""
  y_true, y_pred = _cast(y_true, y_pred)
  intersection = _sum(y_true * y_pred, per_example)
  union = _sum(y_true, per_example) + _sum(y_pred, per_example) - intersection
  return 1.0 - _div_no_nan(intersection, union)


def kuc_dice(y_true, y_pred, const: float = EPSILON, per_example: bool = True) -> Array:
  """keras-unet-collection's `dice`: `1 - (2 TP + const) / (2 TP + FP + FN)`."""
  y_true, y_pred = _cast(y_true, y_pred)
  tp = _sum(y_true * y_pred, per_example)
  fn = _sum(y_true * (1.0 - y_pred), per_example)
  fp = _sum((1.0 - y_true) * y_pred, per_example)
  return 1.0 - (2.0 * tp + const) / (2.0 * tp + fp + fn)


def focal_tversky(y_true, y_pred, alpha: float = 0.5, gamma: float = 4 / 3, const: float = EPSILON,
                  per_example: bool = True) -> Array:
  """keras-unet-collection's `focal_tversky`: `(1 - (TP + c) / (TP + alpha FN + (1 - alpha) FP + c)) ** (1 / gamma)`."""
  y_true, y_pred = _cast(y_true, y_pred)
  tp = _sum(y_true * y_pred, per_example)
  fn = _sum(y_true * (1.0 - y_pred), per_example)
  fp = _sum((1.0 - y_true) * y_pred, per_example)
  coef = (tp + const) / (tp + alpha * fn + (1.0 - alpha) * fp + const)
  return jnp.power(1.0 - coef, 1.0 / gamma)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing: bool = False, alpha: float = 0.25,
                              gamma: float = 2.0, from_logits: bool = False, label_smoothing: float = 0.0,
                              per_example: bool = True) -> Array:
  """Keras's `binary_focal_crossentropy`, averaged over pixels and channels."""
  y_true, y_pred = _cast(y_true, y_pred)
  if label_smoothing:
    y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
  if from_logits:
    y_pred = jax.nn.sigmoid(y_pred)
  p = jnp.clip(y_pred, EPSILON, 1.0 - EPSILON)
  bce = -(y_true * jnp.log(p) + (1.0 - y_true) * jnp.log(1.0 - p))
  p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
  focal = jnp.power(1.0 - p_t, gamma) * bce
  if apply_class_balancing:
    focal = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal
  return _mean(focal, per_example)


def categorical_focal_crossentropy(y_true, y_pred, alpha: float = 0.25, gamma: float = 2.0,
                                   from_logits: bool = False, label_smoothing: float = 0.0,
                                   per_example: bool = True) -> Array:
  """Keras's `categorical_focal_crossentropy` over the channel axis (one-hot `y_true`), averaged over pixels."""
  y_true, y_pred = _cast(y_true, y_pred)
  if label_smoothing:
    y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]
  if from_logits:
    y_pred = jax.nn.softmax(y_pred, axis=-1)
  output = jnp.clip(y_pred / jnp.sum(y_pred, axis=-1, keepdims=True), EPSILON, 1.0 - EPSILON)
  focal = alpha * jnp.power(1.0 - output, gamma) * -y_true * jnp.log(output)
  return _mean(jnp.sum(focal, axis=-1), per_example)


def _keras_map_loss(name: str, y_true, y_pred, per_example: bool, **options) -> Array:
  values = keras_losses.get(name, reduction="none", **options)(y_true, y_pred)
  return _mean(values, per_example)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                        per_example: bool = True) -> Array:
  """Keras's `binary_crossentropy` per pixel, averaged per example."""
  return _keras_map_loss("binary_crossentropy", y_true, y_pred, per_example, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0,
                             axis: int = -1, per_example: bool = True) -> Array:
  """Keras's `categorical_crossentropy` per pixel, averaged per example."""
  return _keras_map_loss("categorical_crossentropy", y_true, y_pred, per_example, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False, ignore_class: int | None = None,
                                    axis: int = -1, per_example: bool = True) -> Array:
  """Keras's `sparse_categorical_crossentropy` per pixel, averaged per example."""
  return _keras_map_loss("sparse_categorical_crossentropy", y_true, y_pred, per_example, from_logits=from_logits,
                         ignore_class=ignore_class, axis=axis)


def _bind(name: str, fn: Callable[..., Array], options: dict[str, Any]) -> Callable[..., Array]:
  return functools.partial(fn, **options) if options else fn


# Keras's function names (not its classes: `keras.losses.Dice()` reduces over the whole batch) and
# keras-unet-collection's. Each function's keyword arguments are the loss's options.
LOSSES = Registry("segmentation loss", inputs=("y_true", "y_pred"), make=_bind)
for _name, _fn, _aliases in (
    ("dice", dice, ()), ("jaccard", jaccard, ("iou",)), ("tversky", tversky, ()), ("kuc_dice", kuc_dice, ()),
    ("focal_tversky", focal_tversky, ()), ("binary_focal_crossentropy", binary_focal_crossentropy, ()),
    ("categorical_focal_crossentropy", categorical_focal_crossentropy, ()),
    ("binary_crossentropy", binary_crossentropy, ()), ("categorical_crossentropy", categorical_crossentropy, ()),
    ("sparse_categorical_crossentropy", sparse_categorical_crossentropy, ()),
):
  LOSSES.register(_name, _fn, aliases=_aliases)
del _name, _fn, _aliases


def get(name: str | Mapping[str, Any] | Callable[..., Array], **options: Any) -> Callable[[Array, Array], Array]:
  """The loss `name` with `options` bound: `loss(y_true, y_pred) -> (batch,)` losses.

  Args:
    name: a name in `LOSSES`; or a config dict `{"class_name": name, "config": options}`; or a
      callable, returned as is.
    **options: the loss function's keyword arguments (`alpha`, `gamma`, `per_example`, ...).

  Raises:
    ValueError: for an unknown name or an option the loss does not take.

  Example:
    >>> loss = get("binary_focal_crossentropy", gamma=3.0)
  """
  return LOSSES.get(name, **options)


def combined(*terms: tuple[Callable[[Array, Array], Array], float]) -> Callable[[Array, Array], Array]:
  """A weighted sum of per-example losses, e.g. `combined((get("binary_crossentropy"), 1.0), (get("dice"), 1.0))`."""
  if not terms:
    raise ValueError("combined() needs at least one (loss, weight) pair.")

  def loss(y_true, y_pred):
    return sum(weight * fn(y_true, y_pred) for fn, weight in terms)

  return loss
