"""Streaming metrics by their Keras names, as pure functions of a pytree state.

Every metric is a frozen (hashable) object with three pure methods, so its
state can live inside a jitted train or eval step:

* `init() -> state`: a dict of zero arrays;
* `update(state, y_true, y_pred, sample_weight=None) -> state`: adds one batch;
* `result(state) -> scalar`: the value over every batch since `init`.

The numbers are Keras 3's (`keras.metrics.<Class>(...).update_state` over the
same batches, then `.result()`), whatever the batch sizes. A `sample_weight` of
0 leaves an example out entirely, so it masks padding; a per-example weight of
shape `(batch,)` spreads over that example's entries.

Example:
  >>> import jax.numpy as jnp
  >>> acc = get("sparse_categorical_accuracy")
  >>> state = acc.update(acc.init(), jnp.array([1, 0]), jnp.array([[0.2, 0.8], [0.3, 0.7]]))
  >>> float(acc.result(state))
  0.5
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcomponents import losses
from jaxcomponents.errors import check_choice, check_positive_int, is_int, is_real
from jaxcomponents.registry import ANY, Registry, built, keras_config
from jaxcomponents.losses import EPSILON, match_rank

Array = jax.Array
State = dict[str, Array]
NEG_INF = -1e10  # Keras's threshold when `top_k` is set.


def _div_no_nan(a, b):
  return jnp.where(b != 0, a / jnp.where(b != 0, b, 1.0), 0.0)


def _weights_like(sample_weight: Any, shape: tuple[int, ...]) -> Array:
  """Sample weights broadcast to `shape`; a weight per leading index covers the trailing axes (`(batch,)` and
  `(batch, 1)` weigh each example of a `(batch, steps, classes)` batch, as Keras's confusion metrics do)."""
  weight = jnp.asarray(sample_weight, jnp.float32)
  if weight.ndim > len(shape) and weight.shape[-1] == 1:
    weight = jnp.squeeze(weight, -1)
  if 0 < weight.ndim < len(shape):
    leading = weight.reshape(weight.shape + (1,) * (len(shape) - weight.ndim))
    if all(w in (1, n) for w, n in zip(leading.shape, shape)):
      weight = leading
  return jnp.broadcast_to(weight, shape)


# Per-sample metric functions (Keras's `keras.metrics.<name>` functions).


def _float_pair(y_true, y_pred, like_pred: bool = False) -> tuple[Array, Array]:
  """Both as float32 (`like_pred`: in `y_pred`'s float dtype, as Keras's correlations compute), after Keras's rank
  fix-up (`squeeze_or_expand_to_same_rank`)."""
  dtype = jnp.asarray(y_pred).dtype if like_pred else jnp.float32
  dtype = dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.float32
  return match_rank(jnp.asarray(y_true, dtype), jnp.asarray(y_pred, dtype))


def accuracy(y_true, y_pred) -> Array:
  """1.0 where `y_true == y_pred` (Keras's `Accuracy`: exact equality).

  Example:
    >>> accuracy(jnp.array([1, 2]), jnp.array([1, 3])).tolist()
    [1.0, 0.0]
  """
  y_true, y_pred = _float_pair(y_true, y_pred)
  return (y_true == y_pred).astype(jnp.float32)


def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> Array:
  """1.0 where `y_pred > threshold` equals `y_true`.

  Example:
    >>> binary_accuracy(jnp.array([1, 0]), jnp.array([0.7, 0.6])).tolist()
    [1.0, 0.0]
  """
  y_true, y_pred = match_rank(jnp.asarray(y_true), jnp.asarray(y_pred))
  return (y_true == (y_pred > threshold).astype(y_true.dtype)).astype(jnp.float32)


def categorical_accuracy(y_true, y_pred) -> Array:
  """1.0 where the argmax of one-hot `y_true` equals the argmax of `y_pred`.

  Example:
    >>> categorical_accuracy(jnp.array([[0, 1], [1, 0]]), jnp.array([[0.3, 0.7], [0.4, 0.6]])).tolist()
    [1.0, 0.0]
  """
  y_pred = jnp.asarray(y_pred, jnp.float32)
  labels = jnp.argmax(jnp.asarray(y_true), axis=-1).astype(jnp.float32)
  shape = labels.shape
  if labels.ndim == y_pred.ndim:
    labels = jnp.squeeze(labels, -1)
  matches = (labels == jnp.argmax(y_pred, axis=-1).astype(jnp.float32)).astype(jnp.float32)
  return matches.reshape(shape)


def sparse_categorical_accuracy(y_true, y_pred) -> Array:
  """1.0 where the integer label `y_true` equals the argmax of `y_pred`.

  Example:
    >>> sparse_categorical_accuracy(jnp.array([1, 1]), jnp.array([[0.3, 0.7], [0.4, 0.2]])).tolist()
    [1.0, 0.0]
  """
  y_pred = jnp.asarray(y_pred, jnp.float32)
  labels = jnp.asarray(y_true, jnp.float32)
  shape = labels.shape
  if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
    labels = jnp.squeeze(labels, -1)
  matches = (labels == jnp.argmax(y_pred, axis=-1).astype(jnp.float32)).astype(jnp.float32)
  matches = matches.reshape(shape)
  if matches.ndim > 1 and matches.shape[-1] == 1:
    matches = jnp.squeeze(matches, -1)
  return matches


def _in_top_k(labels, y_pred, k):
  # Keras's in_top_k: rank = 1 + the number of scores strictly above the label's score.
  at_label = jnp.take_along_axis(y_pred, labels[:, None], axis=-1)
  at_label = jnp.where(jnp.isnan(at_label), -jnp.inf, at_label)
  return (1 + jnp.sum(y_pred > at_label, axis=-1)) <= k


def sparse_top_k_categorical_accuracy(y_true, y_pred, k: int = 5, from_sorted_ids: bool = False) -> Array:
  """1.0 where the integer label is among the `k` highest scores (ties count for the label); with
  `from_sorted_ids`, `y_pred` holds class ids from the highest score down, and the label is among its first `k`.

  Example:
    >>> scores = jnp.array([[0.1, 0.5, 0.4], [0.1, 0.5, 0.4]])
    >>> sparse_top_k_categorical_accuracy(jnp.array([2, 0]), scores, k=2).tolist()
    [1.0, 0.0]
    >>> sparse_top_k_categorical_accuracy(jnp.array([2, 0]), jnp.array([[1, 2], [1, 2]]), 2, True).tolist()
    [1.0, 0.0]
  """
  y_pred = jnp.asarray(y_pred) if from_sorted_ids else jnp.asarray(y_pred, jnp.float32)
  labels = jnp.asarray(y_true).astype(y_pred.dtype if from_sorted_ids else jnp.int32)
  shape = labels.shape
  y_pred = y_pred.reshape(-1, y_pred.shape[-1])
  if from_sorted_ids:
    matches = jnp.any(labels.reshape(-1)[:, None] == y_pred[:, :k], axis=1)
  else:
    matches = _in_top_k(labels.reshape(-1), y_pred, k)
  return matches.astype(jnp.float32).reshape(shape)


def top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> Array:
  """1.0 where the argmax of one-hot `y_true` is among the `k` highest scores.

  Example:
    >>> top_k_categorical_accuracy(jnp.array([[0, 0, 1]]), jnp.array([[0.1, 0.5, 0.4]]), k=2).tolist()
    [1.0]
  """
  return sparse_top_k_categorical_accuracy(jnp.argmax(jnp.asarray(y_true), axis=-1), y_pred, k)


def compile_accuracy(y_true, y_pred) -> Array:
  """`model.compile(metrics=["accuracy"])`: binary, sparse or categorical accuracy by the shapes.

  Example:
    >>> compile_accuracy(jnp.array([1, 0]), jnp.array([[0.2, 0.8], [0.9, 0.1]])).tolist()  # sparse
    [1.0, 1.0]
  """
  y_true, y_pred = jnp.asarray(y_true), jnp.asarray(y_pred)
  is_binary, is_sparse = losses.is_binary_or_sparse(y_true, y_pred)
  if is_binary:
    return binary_accuracy(y_true, y_pred)
  if is_sparse:
    return sparse_categorical_accuracy(y_true, y_pred)
  return categorical_accuracy(y_true, y_pred)


@dataclasses.dataclass(frozen=True)
class Mean:
  """The weighted mean of per-sample values `fn(y_true, y_pred)` (Keras's `MeanMetricWrapper`).

  The count is the number of samples, or the sum of their weights.

  Example:
    >>> import jax.numpy as jnp
    >>> mae = get("mae")
    >>> s = mae.update(mae.init(), jnp.array([[1.0], [2.0]]), jnp.array([[0.0], [0.0]]), jnp.array([1.0, 0.0]))
    >>> float(mae.result(s))
    1.0
  """

  name: str
  fn: Callable[..., Array]
  options: tuple[tuple[str, Any], ...] = ()

  def init(self) -> State:
    return {"total": jnp.zeros((), jnp.float32), "count": jnp.zeros((), jnp.float32)}

  def update(self, state: State, y_true, y_pred, sample_weight=None) -> State:
    values, mask = self.fn(y_true, y_pred, **dict(self.options)), None
    if isinstance(values, tuple):  # a loss's values and the mask Keras attaches to them (`ignore_class`)
      values, mask = values
    values = jnp.asarray(values, jnp.float32)
    if values.ndim == 0 and sample_weight is not None:
      # One value for the whole batch (a batch-pooled score): counted once, as Keras counts it unweighted.
      real = (jnp.sum(jnp.asarray(sample_weight, jnp.float32)) > 0).astype(jnp.float32)
      return {"total": state["total"] + values * real, "count": state["count"] + real}
    if sample_weight is None:  # Keras's Mean reads the mask only to weigh given weights
      count = values.shape[0] if values.ndim else 1
    else:
      weight = jnp.asarray(sample_weight, jnp.float32)
      if mask is not None:
        mask, weight = match_rank(jnp.asarray(mask, jnp.float32), weight)
        weight = weight * mask
      values, weight = match_rank(values, weight)
      if values.ndim > weight.ndim:
        values = jnp.mean(values, axis=tuple(range(weight.ndim, values.ndim)))
      weight = jnp.broadcast_to(weight, values.shape)
      values = values * weight
      if weight.ndim > 1:
        weight = jnp.mean(weight, axis=tuple(range(1, weight.ndim)))
      count = jnp.sum(weight)
    if values.ndim > 1:
      values = jnp.mean(values, axis=tuple(range(1, values.ndim)))
    return {"total": state["total"] + jnp.sum(values), "count": state["count"] + count}

  def result(self, state: State) -> Array:
    return _div_no_nan(state["total"], state["count"])


def _filter_top_k(x, k):
  _, idx = jax.lax.top_k(x, k)
  keep = jnp.sum(jax.nn.one_hot(idx, x.shape[-1], dtype=x.dtype), axis=-2)
  return x * keep + NEG_INF * (1 - keep)


def _is_evenly_distributed(thresholds: np.ndarray) -> bool:
  n = len(thresholds)
  return n >= 3 and bool(np.allclose(thresholds, np.arange(n, dtype=np.float32) / (n - 1), atol=EPSILON))


def _confusion_counts(y_true, y_pred, sample_weight, thresholds: np.ndarray, evenly: bool, *,
                      top_k=None, class_id=None, multi_label=False, label_weights=None):
  """Keras's `update_confusion_matrix_variables`: (tp, fp, tn, fn), each of shape (T,) or (T, labels)."""
  y_true = jnp.asarray(y_true, jnp.float32)
  y_pred = jnp.asarray(y_pred, jnp.float32)
  y_pred, y_true = match_rank(y_pred, y_true)
  if top_k is not None:
    y_pred = _filter_top_k(y_pred, top_k)
  weight = None if sample_weight is None else jnp.asarray(sample_weight, jnp.float32)
  if class_id is not None:
    if y_pred.ndim == 1:
      raise ValueError(f"class_id={class_id!r} needs y_pred of shape (batch, classes); got {y_pred.shape}.")
    if not -y_pred.shape[-1] <= class_id < y_pred.shape[-1]:  # an index JAX would clamp to the last class
      raise ValueError(f"class_id={class_id!r} is not allowed for y_pred of shape {y_pred.shape}; expected an "
                       f"integer in [-{y_pred.shape[-1]}, {y_pred.shape[-1]}).")
    if weight is not None:
      weight = _weights_like(weight, y_pred.shape)[..., class_id, None]
    y_true = y_true[..., class_id, None]
    y_pred = y_pred[..., class_id, None]
  if weight is not None:
    weight = _weights_like(weight, y_pred.shape)
  if label_weights is not None and not multi_label:
    lw = jnp.broadcast_to(jnp.asarray(label_weights, jnp.float32)[None], y_pred.shape)
    weight = lw if weight is None else weight * lw
  if weight is None:
    weight = jnp.ones(y_pred.shape, jnp.float32)
  labels = y_true.astype(bool)
  if not multi_label:
    labels, y_pred, weight = labels.reshape(-1), y_pred.reshape(-1), weight.reshape(-1)
  num = len(thresholds)
  if evenly:
    # Keras's bucketed path: one pass, then a reversed cumulative sum over the buckets.
    pred = jnp.clip(y_pred, 0.0, 1.0)
    bucket = jnp.ceil(pred * jnp.float32(num - 1)) - 1
    if thresholds[0] < 0.0 or thresholds[-1] > 1.0:
      bucket = jnp.maximum(bucket, 0)
    bucket = bucket.astype(jnp.int32)
    true_w = labels.astype(jnp.float32) * weight
    false_w = (1.0 - labels.astype(jnp.float32)) * weight

    def buckets(data, ids):
      summed = jax.ops.segment_sum(data, ids, num_segments=num)
      return jnp.flip(jnp.cumsum(jnp.flip(summed)))

    if multi_label:
      tp = jax.vmap(buckets, in_axes=(1, 1), out_axes=1)(true_w, bucket)
      fp = jax.vmap(buckets, in_axes=(1, 1), out_axes=1)(false_w, bucket)
    else:
      tp, fp = buckets(true_w, bucket), buckets(false_w, bucket)
    fn = jnp.sum(true_w, axis=0) - tp
    tn = jnp.sum(false_w, axis=0) - fp
    return tp, fp, tn, fn
  thr = jnp.asarray(thresholds, jnp.float32).reshape((num,) + (1,) * y_pred.ndim)
  pos = y_pred[None] > thr
  lab = labels[None]

  def count(mask):
    return jnp.sum(jnp.where(mask, weight[None], 0.0), axis=1)

  return count(lab & pos), count(~lab & pos), count(~lab & ~pos), count(lab & ~pos)


def _counts_at(thresholds: tuple[float, ...], y_true, y_pred, sample_weight, **options):
  """`_confusion_counts` at `thresholds`, on Keras's bucketed path where they are evenly spaced."""
  thresholds = np.asarray(thresholds)
  return _confusion_counts(y_true, y_pred, sample_weight, thresholds, _is_evenly_distributed(thresholds), **options)


def _parse_thresholds(thresholds, default, bounded: bool = True):
  """`thresholds` as a tuple of floats, each in [0, 1] where `bounded` (Keras's precision, recall and confusion
  counts check that; its AUC takes any)."""
  values = [default] if thresholds is None else (
      np.asarray(thresholds).tolist() if np.ndim(thresholds) else [thresholds])
  bad = not values or any(t != NEG_INF and (not is_real(t) or not math.isfinite(t)
                                            or (bounded and not 0.0 <= t <= 1.0)) for t in values)
  if bad:
    kind = "a float in [0, 1]" if bounded else "a finite float"
    raise ValueError(f"thresholds={thresholds!r} is not allowed; expected {kind} or a non-empty list of them.")
  return tuple(float(t) for t in values)


@dataclasses.dataclass(frozen=True)
class PrecisionRecall:
  """Keras's `Precision` (`name="precision"`) or `Recall` (`name="recall"`).

  A prediction counts as positive above each threshold (default 0.5), among
  the `top_k` scores when set, for class `class_id` only when set. The result
  is a scalar, or one value per threshold.

  Example:
    >>> import jax.numpy as jnp
    >>> p = get("precision")
    >>> float(p.result(p.update(p.init(), jnp.array([1, 0, 1]), jnp.array([0.9, 0.6, 0.2]))))
    0.5
  """

  name: str
  thresholds: tuple[float, ...] = (0.5,)
  top_k: int | None = None
  class_id: int | None = None

  def init(self) -> State:
    n = len(self.thresholds)
    return {"true_positives": jnp.zeros((n,), jnp.float32), "other": jnp.zeros((n,), jnp.float32)}

  def update(self, state: State, y_true, y_pred, sample_weight=None) -> State:
    tp, fp, _, fn = _counts_at(self.thresholds, y_true, y_pred, sample_weight, top_k=self.top_k,
                               class_id=self.class_id)
    other = fp if self.name == "precision" else fn
    return {"true_positives": state["true_positives"] + tp, "other": state["other"] + other}

  def result(self, state: State) -> Array:
    value = _div_no_nan(state["true_positives"], state["true_positives"] + state["other"])
    return value[0] if len(self.thresholds) == 1 else value


@dataclasses.dataclass(frozen=True)
class AUC:
  """Keras's `AUC`: area under the ROC (or PR) curve from confusion counts at fixed thresholds.

  Defaults as Keras: 200 thresholds evenly spread over [0, 1], ROC, trapezoidal
  ("interpolation") summation. With `multi_label=True` and no `num_labels`, the
  state takes its size from the first batch, as Keras builds it.

  Example:
    >>> import jax.numpy as jnp
    >>> auc = get("auc")
    >>> s = auc.update(auc.init(), jnp.array([0, 0, 1, 1]), jnp.array([0.1, 0.4, 0.35, 0.8]))
    >>> round(float(auc.result(s)), 3)
    0.75
  """

  thresholds: tuple[float, ...]
  evenly: bool
  curve: str = "ROC"
  summation_method: str = "interpolation"
  multi_label: bool = False
  num_labels: int | None = None
  label_weights: tuple[float, ...] | None = None
  from_logits: bool = False
  name = "auc"  # Keras's default name (a class attribute: not part of the metric's value)

  _KEYS = ("tp", "fp", "tn", "fn")

  def init(self) -> State:
    if self.multi_label and self.num_labels is None:
      return {}
    return _built({}, (len(self.thresholds),) + ((self.num_labels,) if self.multi_label else ()), self._KEYS)

  def update(self, state: State, y_true, y_pred, sample_weight=None) -> State:
    y_pred = jnp.asarray(y_pred, jnp.float32)
    if self.from_logits:
      y_pred = jax.nn.sigmoid(y_pred)
    if self.multi_label:
      labels = self.num_labels or (state["tp"].shape[1] if state else None)
      if y_pred.ndim != 2 or labels not in (None, y_pred.shape[1]):
        raise ValueError(f"y_pred has shape {y_pred.shape}; multi_label AUC expects (batch, {labels or 'labels'}).")
      state = _built(state, (len(self.thresholds), y_pred.shape[1]), self._KEYS)
    counts = _confusion_counts(y_true, y_pred, sample_weight, np.asarray(self.thresholds), self.evenly,
                               multi_label=self.multi_label,
                               label_weights=None if self.multi_label else self.label_weights)
    return {k: state[k] + c for k, c in zip(self._KEYS, counts)}

  def _average(self, by_label):
    if not self.multi_label:
      return jnp.sum(by_label)
    by_label = jnp.sum(by_label, axis=0)
    if self.label_weights is None:
      return jnp.mean(by_label)
    lw = jnp.asarray(self.label_weights, jnp.float32)
    return _div_no_nan(jnp.sum(by_label * lw), jnp.sum(lw))

  def result(self, state: State) -> Array:
    _unbuilt(self, state)
    tp, fp, tn, fn = state["tp"], state["fp"], state["tn"], state["fn"]
    if self.curve == "PR" and self.summation_method == "interpolation":
      # Davis & Goadrich interpolation of precision between thresholds, as Keras.
      dtp = tp[:-1] - tp[1:]
      p = tp + fp
      dp = p[:-1] - p[1:]
      slope = _div_no_nan(dtp, jnp.maximum(dp, 0))
      intercept = tp[1:] - slope * p[1:]
      ratio = jnp.where((p[:-1] > 0) & (p[1:] > 0), _div_no_nan(p[:-1], jnp.maximum(p[1:], 0)), 1.0)
      increments = _div_no_nan(slope * (dtp + intercept * jnp.log(ratio)), jnp.maximum(tp[1:] + fn[1:], 0))
      return self._average(increments)
    recall = _div_no_nan(tp, tp + fn)
    if self.curve == "ROC":
      x, y = _div_no_nan(fp, fp + tn), recall
    elif self.curve == "PR":
      x, y = recall, _div_no_nan(tp, tp + fp)
    else:  # PRGAIN
      scale = _div_no_nan(tp + fn, tn + fp)
      recall_gain = jnp.where(tp == 0, 0.0, 1.0 - scale * _div_no_nan(fn, tp))
      precision_gain = jnp.where(tp == 0, 1.0, 1.0 - scale * _div_no_nan(fp, tp))
      x, y = jnp.maximum(recall_gain, 0.0), precision_gain
    if self.summation_method == "interpolation":
      heights = (y[:-1] + y[1:]) / 2.0
    elif self.summation_method == "minoring":
      heights = jnp.minimum(y[:-1], y[1:])
    else:
      heights = jnp.maximum(y[:-1], y[1:])
    return self._average((x[:-1] - x[1:]) * heights)


@dataclasses.dataclass(frozen=True)
class IoU:
  """Keras's `IoU`, `MeanIoU`, `BinaryIoU`, `OneHotIoU` and `OneHotMeanIoU`: TP / (TP + FP + FN) per class from
  a streamed confusion matrix, averaged over `target_class_ids` (every class when None: `MeanIoU`).

  As in Keras, labels and predictions are integer class ids unless
  `sparse_y_true` / `sparse_y_pred` is False (then the argmax over `axis`), the
  matrix has dtype `int32` by default (weights are truncated to integers;
  pass `dtype="float32"` for fractional weights), and ids outside
  `[0, num_classes)` or equal to `ignore_class` are left out. With a
  `threshold` (`BinaryIoU`), a prediction is class 1 where `y_pred >= threshold`.

  Example:
    >>> import jax.numpy as jnp
    >>> iou = get("mean_iou", num_classes=2)
    >>> s = iou.update(iou.init(), jnp.array([0, 0, 1, 1]), jnp.array([0, 1, 0, 1]))
    >>> round(float(iou.result(s)), 4)
    0.3333
    >>> float(get("iou", num_classes=2, target_class_ids=[1]).result(s))
    0.3333333134651184
  """

  num_classes: int
  ignore_class: int | None = None
  sparse_y_true: bool = True
  sparse_y_pred: bool = True
  axis: int = -1
  dtype: str = "int32"
  target_class_ids: tuple[int, ...] | None = None
  threshold: float | None = None
  name: str = "mean_io_u"  # Keras's default name for the class the factory stands for

  def init(self) -> State:
    return {"confusion_matrix": jnp.zeros((self.num_classes, self.num_classes), self.dtype)}

  def update(self, state: State, y_true, y_pred, sample_weight=None) -> State:
    y_true, y_pred = jnp.asarray(y_true), jnp.asarray(y_pred)
    if self.threshold is not None:
      y_pred = (y_pred.astype(jnp.float32) >= self.threshold).astype(self.dtype)
    if not self.sparse_y_true:
      y_true = jnp.argmax(y_true, axis=self.axis)
    if not self.sparse_y_pred:
      y_pred = jnp.argmax(y_pred, axis=self.axis)
    shape = y_true.shape
    y_true = y_true.astype(self.dtype).reshape(-1)
    y_pred = y_pred.astype(self.dtype).reshape(-1)
    if sample_weight is None:
      weight = jnp.ones(y_true.shape, self.dtype)
    else:
      weight = jnp.asarray(sample_weight).astype(self.dtype)
      if weight.ndim < len(shape) and weight.shape == shape[:weight.ndim]:
        weight = jnp.broadcast_to(weight.reshape(weight.shape + (1,) * (len(shape) - weight.ndim)), shape)
      weight = jnp.broadcast_to(weight.reshape(-1) if weight.ndim > 1 else weight, y_true.shape)
    n = self.num_classes
    keep = (y_true >= 0) & (y_true < n) & (y_pred >= 0) & (y_pred < n)
    if self.ignore_class is not None:
      keep = keep & (y_true != self.ignore_class)
    y_true = jnp.where(keep, y_true, 0).astype(jnp.int32)
    y_pred = jnp.where(keep, y_pred, 0).astype(jnp.int32)
    weight = jnp.where(keep, weight, 0)
    cm = state["confusion_matrix"].at[y_true, y_pred].add(weight)
    return {"confusion_matrix": cm}

  def result(self, state: State) -> Array:
    cm = state["confusion_matrix"]
    tp = jnp.diag(cm).astype(jnp.float32)
    denominator = (jnp.sum(cm, axis=0) + jnp.sum(cm, axis=1) - jnp.diag(cm)).astype(jnp.float32)
    if self.target_class_ids is not None:
      ids = jnp.asarray(self.target_class_ids, jnp.int32)
      tp, denominator = tp[ids], denominator[ids]
    valid = denominator > 1e-9
    iou = jnp.where(valid, tp / (denominator + EPSILON), 0.0)
    return jnp.sum(iou) / (jnp.sum(valid.astype(jnp.float32)) + EPSILON)


def _mean(name, fn, **options):
  return Mean(name, fn, tuple(options.items()))


@dataclasses.dataclass(frozen=True)
class _PerSampleLoss:
  """A loss's per-sample values as Keras's metric computes them: in the predictions' float dtype (the loss
  itself computes in float32), times `sign` (-1: the cosine similarity, which the loss negates)."""

  name: str
  options: tuple[tuple[str, Any], ...] = ()
  sign: float = 1.0

  def __call__(self, y_true, y_pred):
    dtype = jnp.asarray(y_pred).dtype
    values, mask = losses.Loss(self.name, self.options).per_sample(
        y_true, y_pred, dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.float32)
    return self.sign * values if mask is None else (self.sign * values, mask)


def _per_sample_loss(name, sign=1.0, **options):
  """The loss `name`'s per-sample values, its `options` checked as the loss checks them."""
  return _PerSampleLoss(name, losses.get(name, **options).options if options else (), sign)


@dataclasses.dataclass(frozen=True)
class RootMean(Mean):
  """The square root of a `Mean` (Keras's `RootMeanSquaredError`).

  Example:
    >>> import jax.numpy as jnp
    >>> rmse = get("root_mean_squared_error")
    >>> float(rmse.result(rmse.update(rmse.init(), jnp.array([[0.0], [0.0]]), jnp.array([[3.0], [1.0]]))))
    2.2360680103302
  """

  def result(self, state: State) -> Array:
    return jnp.sqrt(super().result(state))


def squared_error(y_true, y_pred) -> Array:
  """`(y_pred - y_true)**2` per entry, after Keras's rank fix-up (what `RootMeanSquaredError` averages)."""
  y_true, y_pred = _float_pair(y_true, y_pred)
  return jnp.square(y_pred - y_true)


def pearson_correlation(y_true, y_pred, axis: int = -1) -> Array:
  """Keras's `pearson_correlation` along `axis`: one coefficient per sample (averaged by the metric)."""
  y_true, y_pred = _float_pair(y_true, y_pred, like_pred=True)
  true = y_true - jnp.mean(y_true, axis=axis, keepdims=True)
  pred = y_pred - jnp.mean(y_pred, axis=axis, keepdims=True)
  true = true / jnp.std(true, axis=axis, keepdims=True)
  pred = pred / jnp.std(pred, axis=axis, keepdims=True)
  return jnp.mean(true * pred, axis=axis)


def concordance_correlation(y_true, y_pred, axis: int = -1) -> Array:
  """Keras's `concordance_correlation` along `axis` (its covariance centres both on `y_pred`'s mean, as Keras's)."""
  y_true, y_pred = _float_pair(y_true, y_pred, like_pred=True)
  true_mean = jnp.mean(y_true, axis=axis, keepdims=True)
  pred_mean = jnp.mean(y_pred, axis=axis, keepdims=True)
  true_var = jnp.var(y_true - true_mean, axis=axis, keepdims=True)
  pred_var = jnp.var(y_pred - pred_mean, axis=axis, keepdims=True)
  covariance = (y_true - pred_mean) * (y_pred - pred_mean)
  norm = true_var + pred_var + jnp.square(true_mean - pred_mean)
  return jnp.mean(2.0 * covariance / (norm + losses.EPSILON), axis=axis)


@dataclasses.dataclass(frozen=True)
class ConfusionCount:
  """Keras's `TruePositives`, `FalsePositives`, `TrueNegatives` or `FalseNegatives` (by `name`): the weighted
  count of predictions above each threshold (default 0.5) by their label; a scalar, or one per threshold.

  Example:
    >>> import jax.numpy as jnp
    >>> tp = get("true_positives")
    >>> float(tp.result(tp.update(tp.init(), jnp.array([1, 0, 1]), jnp.array([0.9, 0.6, 0.2]))))
    1.0
  """

  name: str
  thresholds: tuple[float, ...] = (0.5,)

  def init(self) -> State:
    return {"count": jnp.zeros((len(self.thresholds),), jnp.float32)}

  def update(self, state: State, y_true, y_pred, sample_weight=None) -> State:
    tp, fp, tn, fn = _counts_at(self.thresholds, y_true, y_pred, sample_weight)
    counts = {"true_positives": tp, "false_positives": fp, "true_negatives": tn, "false_negatives": fn}
    return {"count": state["count"] + counts[self.name]}

  def result(self, state: State) -> Array:
    return state["count"][0] if len(self.thresholds) == 1 else state["count"]


def _built(state: State, shape: tuple[int, ...], keys: tuple[str, ...]) -> State:
  """`state`, or zeros of `shape` under `keys` while it is still `{}`: the state of a metric whose shape comes from
  the first batch, as Keras builds these metrics' variables at their first `update_state`."""
  return state if state else {key: jnp.zeros(shape, jnp.float32) for key in keys}


def _unbuilt(metric: Any, state: State) -> None:
  if not state:
    raise ValueError(f"{type(metric).__name__} has no result before its first update: its state takes its shape "
                     "from the first batch.")


def _check_2d(what: str, y_true, y_pred) -> None:
  if y_true.ndim != 2 or y_pred.ndim != 2:
    raise ValueError(f"{what} expects 2D inputs of shape (batch_size, output_dim); got y_true of shape "
                     f"{y_true.shape} and y_pred of shape {y_pred.shape}.")


@dataclasses.dataclass(frozen=True)
class FBetaScore:
  """Keras's `FBetaScore` and `F1Score` (`beta=1`): the weighted harmonic mean of precision and recall.

  A prediction is positive above `threshold`, or, when it is None, where it is
  the row's largest (and not 0). `average` None gives one score per class,
  "micro" one from the counts over every class, "macro" the mean of the
  classes' scores and "weighted" their mean weighted by each class's count of
  true labels. The per-class state takes its shape from the first batch.

  Example:
    >>> import jax.numpy as jnp
    >>> f1 = get("f1_score", threshold=0.5)
    >>> s = f1.update(f1.init(), jnp.array([[1, 1, 1], [1, 0, 0]]), jnp.array([[0.2, 0.6, 0.7], [0.2, 0.6, 0.6]]))
    >>> [round(float(v), 4) for v in f1.result(s)]
    [0.0, 0.6667, 0.6667]
  """

  name: str = "fbeta_score"
  average: str | None = None
  beta: float = 1.0
  threshold: float | None = None

  _KEYS = ("true_positives", "false_positives", "false_negatives", "intermediate_weights")

  def init(self) -> State:
    return _built({}, (), self._KEYS) if self.average == "micro" else {}

  def update(self, state: State, y_true, y_pred, sample_weight=None) -> State:
    y_true, y_pred = jnp.asarray(y_true, jnp.float32), jnp.asarray(y_pred, jnp.float32)
    _check_2d(type(self).__name__, y_true, y_pred)
    state = _built(state, (y_pred.shape[-1],), self._KEYS)
    if self.threshold is None:
      positive = (y_pred >= jnp.max(y_pred, axis=-1, keepdims=True)) & (jnp.abs(y_pred) > 1e-9)
    else:
      positive = y_pred > self.threshold
    y_pred = positive.astype(jnp.float32)
    weight = 1.0 if sample_weight is None else _weights_like(sample_weight, y_pred.shape)
    axis = None if self.average == "micro" else 0
    added = (y_pred * y_true, y_pred * (1 - y_true), (1 - y_pred) * y_true, y_true)
    return {key: state[key] + jnp.sum(value * weight, axis=axis) for key, value in zip(self._KEYS, added)}

  def result(self, state: State) -> Array:
    _unbuilt(self, state)
    tp, fp, fn = state["true_positives"], state["false_positives"], state["false_negatives"]
    precision = tp / (tp + fp + EPSILON)
    recall = tp / (tp + fn + EPSILON)
    b2 = self.beta ** 2
    score = precision * recall / (b2 * precision + recall + EPSILON) * (1 + b2)
    if self.average == "weighted":
      support = state["intermediate_weights"]
      return jnp.sum(score * support / (jnp.sum(support) + EPSILON))
    return score if self.average is None else jnp.mean(score)


@dataclasses.dataclass(frozen=True)
class R2Score:
  """Keras's `R2Score`: the coefficient of determination per output, aggregated by `class_aggregation`
  ("uniform_average", "variance_weighted_average" or None: one per output); adjusted for `num_regressors`
  where there are more samples than regressors plus one (else the plain score, where Keras warns).

  Examples of weight 0 are left out entirely, so padding is; that includes the adjusted score's sample count,
  where Keras counts every row, so there a weight of 0 you give differs from Keras.

  Example:
    >>> import jax.numpy as jnp
    >>> r2 = get("r2_score")
    >>> s = r2.update(r2.init(), jnp.array([[1.0], [4.0], [3.0]]), jnp.array([[2.0], [4.0], [4.0]]))
    >>> round(float(r2.result(s)), 4)
    0.5714
  """

  class_aggregation: str | None = "uniform_average"
  num_regressors: int = 0

  name = "r2_score"
  _KEYS = ("sum", "squared_sum", "residual", "count")

  def init(self) -> State:
    return {}

  def update(self, state: State, y_true, y_pred, sample_weight=None) -> State:
    y_true, y_pred = _float_pair(y_true, y_pred)
    _check_2d("R2Score", y_true, y_pred)
    state = {"num_samples": jnp.zeros((), jnp.float32), **_built(state, (y_pred.shape[-1],), self._KEYS)}
    weight = _weights_like(1.0 if sample_weight is None else sample_weight, y_true.shape)
    rows = jnp.sum(jnp.any(weight != 0, axis=-1).astype(jnp.float32))
    added = (y_true * weight, y_true * y_true * weight, jnp.square(y_true - y_pred) * weight, weight)
    new = {key: state[key] + jnp.sum(value, axis=0) for key, value in zip(self._KEYS, added)}
    return {**new, "num_samples": state["num_samples"] + rows * y_true.shape[-1]}

  def result(self, state: State) -> Array:
    _unbuilt(self, state)
    mean = state["sum"] / state["count"]
    total = state["squared_sum"] - state["sum"] * mean
    raw = 1 - state["residual"] / total
    raw = jnp.where(jnp.isinf(raw), 0.0, raw)
    if self.class_aggregation == "uniform_average":
      score = jnp.mean(raw)
    elif self.class_aggregation == "variance_weighted_average":
      score = jnp.sum(total * raw) / jnp.sum(total)
    else:
      score = raw
    if self.num_regressors:
      n, p = state["num_samples"], float(self.num_regressors)
      score = jnp.where(p < n - 1, 1 - (1 - score) * (n - 1) / (n - p - 1), score)
    return score


# Each `AtConstraint` metric: (the rate constrained to at least `value`, the rate maximised under it).
_CONSTRAINED = {"sensitivity_at_specificity": ("specificity", "recall"),
                "specificity_at_sensitivity": ("recall", "specificity"),
                "precision_at_recall": ("recall", "precision"),
                "recall_at_precision": ("precision", "recall")}


@dataclasses.dataclass(frozen=True)
class AtConstraint:
  """Keras's `SensitivityAtSpecificity`, `SpecificityAtSensitivity`, `PrecisionAtRecall` and `RecallAtPrecision`
  (by `name`): the best of one rate over the thresholds where the other is at least `value`.

  Example:
    >>> import jax.numpy as jnp
    >>> m = get("precision_at_recall", recall=0.5)
    >>> s = m.update(m.init(), jnp.array([0, 0, 0, 1, 1]), jnp.array([0.0, 0.3, 0.8, 0.3, 0.8]))
    >>> float(m.result(s))
    0.5
  """

  name: str
  value: float
  num_thresholds: int = 200
  class_id: int | None = None

  def init(self) -> State:
    return {key: jnp.zeros((self.num_thresholds,), jnp.float32) for key in ("tp", "fp", "tn", "fn")}

  def update(self, state: State, y_true, y_pred, sample_weight=None) -> State:
    n = self.num_thresholds  # Keras's thresholds: 0, 1 and n - 2 evenly between them; 0.5 alone for n = 1
    thresholds = np.array([0.5]) if n == 1 else np.concatenate([[0.0], np.arange(1, n - 1) / (n - 1), [1.0]])
    counts = _confusion_counts(y_true, y_pred, sample_weight, thresholds, n > 1, class_id=self.class_id)
    return {key: state[key] + count for key, count in zip(("tp", "fp", "tn", "fn"), counts)}

  def result(self, state: State) -> Array:
    tp, fp, tn, fn = state["tp"], state["fp"], state["tn"], state["fn"]
    rates = {"recall": _div_no_nan(tp, tp + fn), "specificity": _div_no_nan(tn, tn + fp),
             "precision": _div_no_nan(tp, tp + fp)}
    constrained, maximised = _CONSTRAINED[self.name]
    return jnp.max(jnp.where(rates[constrained] >= self.value, rates[maximised], 0.0), initial=0.0)


def _check_axis(axis):
  if not is_int(axis):
    raise ValueError(f"axis={axis!r} is not allowed; expected an integer axis.")
  return axis


def _check_k(k):
  return check_positive_int("k", k)


def _check_threshold(threshold):
  if not is_real(threshold) or not math.isfinite(threshold):
    raise ValueError(f"threshold={threshold!r} is not allowed; expected a finite float.")
  return float(threshold)


def _bool(param, value):
  if not isinstance(value, bool):
    raise ValueError(f"{param}={value!r} is not allowed; expected True or False.")
  return value


def _optional_int(param, value):
  if value is not None and not is_int(value):
    raise ValueError(f"{param}={value!r} is not allowed; expected None or an integer.")
  return value


def _make_precision_recall(name):
  def make(thresholds=None, top_k=None, class_id=None):
    if top_k is not None:
      check_positive_int("top_k", top_k)
    _optional_int("class_id", class_id)
    return PrecisionRecall(name, _parse_thresholds(thresholds, 0.5 if top_k is None else NEG_INF), top_k, class_id)
  return make


def _make_auc(num_thresholds=200, curve="ROC", summation_method="interpolation", thresholds=None,
              multi_label=False, num_labels=None, label_weights=None, from_logits=False):
  curve = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}.get(curve, curve)  # Keras's spellings, and only them
  check_choice("curve", curve, ("ROC", "PR", "PRGAIN"))
  summation_method = {"Interpolation": "interpolation", "Majoring": "majoring", "Minoring": "minoring"}.get(
      summation_method, summation_method)
  check_choice("summation_method", summation_method, ("interpolation", "majoring", "minoring"))
  _bool("multi_label", multi_label)
  _bool("from_logits", from_logits)
  if thresholds is not None:
    inner = sorted(_parse_thresholds(thresholds, 0.5, bounded=False))
    evenly = _is_evenly_distributed(np.array([0.0] + inner + [1.0]))
  else:
    if not is_int(num_thresholds) or num_thresholds <= 1:
      raise ValueError(f"num_thresholds={num_thresholds!r} is not allowed; expected an integer > 1.")
    inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    evenly = True
  if multi_label:
    if num_labels is not None:
      check_positive_int("num_labels", num_labels)
  elif num_labels is not None:
    raise ValueError(f"num_labels={num_labels!r} is not allowed without multi_label=True.")
  if label_weights is not None:
    label_weights = tuple(float(w) for w in np.ravel(label_weights))
    if any(not math.isfinite(w) or w < 0 for w in label_weights):
      raise ValueError(f"label_weights={label_weights!r} is not allowed; expected non-negative weights (Keras's "
                       "documented range).")
  return AUC((0.0 - EPSILON, *inner, 1.0 + EPSILON), evenly, curve, summation_method, multi_label, num_labels,
             label_weights, from_logits)


def _make_iou(num_classes, target_class_ids=None, ignore_class=None, sparse_y_true=True, sparse_y_pred=True,
              axis=-1, dtype="int32", threshold=None, *, name="mean_io_u"):
  check_positive_int("num_classes", num_classes)
  _optional_int("ignore_class", ignore_class)
  _bool("sparse_y_true", sparse_y_true)
  _bool("sparse_y_pred", sparse_y_pred)
  if not is_int(axis):
    raise ValueError(f"axis={axis!r} is not allowed; expected an integer.")
  check_choice("dtype", dtype, ("int32", "float32"))
  if target_class_ids is not None:
    try:  # any sequence of ids, as Keras's list(target_class_ids) reads it
      ids = () if isinstance(target_class_ids, str) else tuple(target_class_ids)
    except TypeError:
      ids = ()
    if not ids or any(not is_int(i) or not 0 <= i < num_classes
                      for i in ids):
      raise ValueError(f"target_class_ids={target_class_ids!r} is not allowed; expected a non-empty list of class "
                       f"ids in [0, {num_classes}).")
    target_class_ids = tuple(int(i) for i in ids)
  if threshold is not None:
    threshold = _check_threshold(threshold)
  return IoU(num_classes, ignore_class, sparse_y_true, sparse_y_pred, axis, dtype, target_class_ids, threshold, name)


def _make_mean_iou(num_classes, ignore_class=None, sparse_y_true=True, sparse_y_pred=True, axis=-1,
                   dtype="int32"):
  return _make_iou(num_classes, None, ignore_class, sparse_y_true, sparse_y_pred, axis, dtype)


def _make_target_iou(num_classes, target_class_ids, ignore_class=None, sparse_y_true=True, sparse_y_pred=True,
                     axis=-1, dtype="int32"):
  return _make_iou(num_classes, target_class_ids, ignore_class, sparse_y_true, sparse_y_pred, axis, dtype,
                   name="io_u")


def _make_binary_iou(target_class_ids=(0, 1), threshold=0.5, dtype="int32"):
  return _make_iou(2, target_class_ids, dtype=dtype, threshold=threshold, name="binary_io_u")


def _make_one_hot_iou(num_classes, target_class_ids, ignore_class=None, sparse_y_pred=False, axis=-1,
                      dtype="int32"):
  return _make_iou(num_classes, target_class_ids, ignore_class, False, sparse_y_pred, axis, dtype,
                   name="one_hot_io_u")


def _make_one_hot_mean_iou(num_classes, ignore_class=None, sparse_y_pred=False, axis=-1, dtype="int32"):
  return _make_iou(num_classes, None, ignore_class, False, sparse_y_pred, axis, dtype, name="one_hot_mean_io_u")


def _make_fbeta(name, average=None, beta=1.0, threshold=None):
  check_choice("average", average, (None, "micro", "macro", "weighted"))
  if not isinstance(beta, float) or not beta > 0:
    raise ValueError(f"beta={beta!r} is not allowed; expected a Python float > 0 (as Keras: 1.0, not 1).")
  if threshold is not None and (not isinstance(threshold, float) or not 0.0 < threshold <= 1.0):
    raise ValueError(f"threshold={threshold!r} is not allowed; expected None or a Python float in (0, 1].")
  return FBetaScore(name, average, beta, threshold)


def _make_fbeta_score(average=None, beta=1.0, threshold=None):
  return _make_fbeta("fbeta_score", average, beta, threshold)


def _make_f1_score(average=None, threshold=None):
  return _make_fbeta("f1_score", average, 1.0, threshold)


def _make_r2_score(class_aggregation="uniform_average", num_regressors=0):
  check_choice("class_aggregation", class_aggregation, (None, "uniform_average", "variance_weighted_average"))
  if not is_int(num_regressors) or num_regressors < 0:
    raise ValueError(f"num_regressors={num_regressors!r} is not allowed; expected an integer >= 0.")
  return R2Score(class_aggregation, num_regressors)


def _at_constraint(name: str, param: str):
  """The factory of the `AtConstraint` metric `name`, whose constrained rate is Keras's argument `param`."""

  def factory(**arguments):
    value, num_thresholds = arguments[param], arguments.get("num_thresholds", 200)
    if not is_real(value) or not 0.0 <= value <= 1.0:
      raise ValueError(f"{param}={value!r} is not allowed; expected a float in [0, 1].")
    check_positive_int("num_thresholds", num_thresholds)
    return AtConstraint(name, float(value), num_thresholds, _optional_int("class_id", arguments.get("class_id")))

  factory.__signature__ = inspect.Signature(
      [inspect.Parameter(param, inspect.Parameter.KEYWORD_ONLY)]
      + [inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default)
         for key, default in (("num_thresholds", 200), ("class_id", None))])
  return factory


def _is_metric(value: Any) -> bool:
  return callable(value) or all(hasattr(value, method) for method in ("init", "update", "result"))


# Keras's class names and their snake_case (`keras.metrics.ALL_OBJECTS_DICT`), Keras's short aliases, and
# compile's "accuracy"/"acc", which pick the accuracy by the batch shapes (`model.compile(metrics=["accuracy"])`,
# keras/src/trainers/compile_utils.py `get_metric`); the class name "Accuracy" is Keras's exact `Accuracy`.
METRICS = Registry("metric", snake_case_classes=True, passes=_is_metric,
                   passes_what="a metric (init, update, result) or a callable",
                   config_keys={"name": ANY, "dtype": (None, "float32")})


@METRICS.register("accuracy", aliases=("acc",))
def _accuracy():
  return _mean("accuracy", compile_accuracy)


@METRICS.register("exact_accuracy", keras_class="Accuracy")
def _exact_accuracy():
  return _mean("accuracy", accuracy)  # Keras names the class's objects "accuracy"


@METRICS.register("binary_accuracy", keras_class="BinaryAccuracy")
def _binary_accuracy(threshold=0.5):
  return _mean("binary_accuracy", binary_accuracy, threshold=_check_threshold(threshold))


@METRICS.register("categorical_accuracy", keras_class="CategoricalAccuracy")
def _categorical_accuracy():
  return _mean("categorical_accuracy", categorical_accuracy)


@METRICS.register("sparse_categorical_accuracy", keras_class="SparseCategoricalAccuracy")
def _sparse_categorical_accuracy():
  return _mean("sparse_categorical_accuracy", sparse_categorical_accuracy)


@METRICS.register("top_k_categorical_accuracy", keras_class="TopKCategoricalAccuracy")
def _top_k_categorical_accuracy(k=5):
  return _mean("top_k_categorical_accuracy", top_k_categorical_accuracy, k=_check_k(k))


@METRICS.register("sparse_top_k_categorical_accuracy", keras_class="SparseTopKCategoricalAccuracy")
def _sparse_top_k_categorical_accuracy(k=5, from_sorted_ids=False):
  if not isinstance(from_sorted_ids, bool):
    raise ValueError(f"from_sorted_ids={from_sorted_ids!r} is not allowed; expected True or False.")
  return _mean("sparse_top_k_categorical_accuracy", sparse_top_k_categorical_accuracy, k=_check_k(k),
               from_sorted_ids=from_sorted_ids)


METRICS.register("precision", _make_precision_recall("precision"), keras_class="Precision")
METRICS.register("recall", _make_precision_recall("recall"), keras_class="Recall")
METRICS.register("auc", _make_auc, keras_class="AUC")
METRICS.register("mean_iou", _make_mean_iou, keras_class="MeanIoU")
METRICS.register("iou", _make_target_iou, keras_class="IoU")
METRICS.register("binary_iou", _make_binary_iou, keras_class="BinaryIoU")
METRICS.register("one_hot_iou", _make_one_hot_iou, keras_class="OneHotIoU")
METRICS.register("one_hot_mean_iou", _make_one_hot_mean_iou, keras_class="OneHotMeanIoU")


@METRICS.register("mean_absolute_error", keras_class="MeanAbsoluteError", aliases=("mae", "MAE"))
def _mean_absolute_error():
  return _mean("mean_absolute_error", _per_sample_loss("mean_absolute_error"))


@METRICS.register("mean_squared_error", keras_class="MeanSquaredError", aliases=("mse", "MSE"))
def _mean_squared_error():
  return _mean("mean_squared_error", _per_sample_loss("mean_squared_error"))


def _loss_metric(name: str, loss: str, defaults: Mapping[str, Any]):
  """The factory of the metric `name`: the mean of the loss `loss`'s per-sample values, taking `defaults`'s
  arguments (the loss's options the Keras metric class takes)."""

  def factory(**options):
    return _mean(name, _per_sample_loss(loss, **options))

  factory.__signature__ = inspect.Signature(
      [inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=value) for key, value in defaults.items()])
  return factory


@METRICS.register("cosine_similarity", keras_class="CosineSimilarity")
def _cosine_similarity(axis=-1):
  return _mean("cosine_similarity", _per_sample_loss("cosine_similarity", sign=-1.0, axis=axis))


@METRICS.register("root_mean_squared_error", keras_class="RootMeanSquaredError")
def _root_mean_squared_error():
  return RootMean("root_mean_squared_error", squared_error)


@METRICS.register("pearson_correlation", keras_class="PearsonCorrelation")
def _pearson_correlation(axis=-1):
  return _mean("pearson_correlation", pearson_correlation, axis=_check_axis(axis))


@METRICS.register("concordance_correlation", keras_class="ConcordanceCorrelation")
def _concordance_correlation(axis=-1):
  return _mean("concordance_correlation", concordance_correlation, axis=_check_axis(axis))


def _confusion_count(name: str):
  def factory(thresholds=None):
    return ConfusionCount(name, _parse_thresholds(thresholds, 0.5))
  return factory


for _name, _class in (("true_positives", "TruePositives"), ("false_positives", "FalsePositives"),
                      ("true_negatives", "TrueNegatives"), ("false_negatives", "FalseNegatives")):
  METRICS.register(_name, _confusion_count(_name), keras_class=_class)


METRICS.register("fbeta_score", _make_fbeta_score, keras_class="FBetaScore")
METRICS.register("f1_score", _make_f1_score, keras_class="F1Score")
METRICS.register("r2_score", _make_r2_score, keras_class="R2Score")
for _name, _class, _param in (("sensitivity_at_specificity", "SensitivityAtSpecificity", "specificity"),
                              ("specificity_at_sensitivity", "SpecificityAtSensitivity", "sensitivity"),
                              ("precision_at_recall", "PrecisionAtRecall", "recall"),
                              ("recall_at_precision", "RecallAtPrecision", "precision")):
  METRICS.register(_name, _at_constraint(_name, _param), keras_class=_class)


# Keras's loss-based metrics (`MeanMetricWrapper`s of the loss functions, with the loss classes' options but
# `reduction`), the cosine similarity as a similarity (the loss is its negative), and Keras's names for them.
for _name, _class, _loss, _options, _aliases in (
    ("mean_absolute_percentage_error", "MeanAbsolutePercentageError", None, (), ("mape", "MAPE")),
    ("mean_squared_logarithmic_error", "MeanSquaredLogarithmicError", None, (), ("msle", "MSLE")),
    ("hinge", "Hinge", None, (), ()),
    ("squared_hinge", "SquaredHinge", None, (), ()),
    ("categorical_hinge", "CategoricalHinge", None, (), ()),
    ("kl_divergence", "KLDivergence", None, (), ()),
    ("poisson", "Poisson", None, (), ()),
    ("logcosh", "LogCoshError", "log_cosh", (), ()),
    ("binary_crossentropy", "BinaryCrossentropy", None, ("from_logits", "label_smoothing"), ("bce", "BCE")),
    ("categorical_crossentropy", "CategoricalCrossentropy", None, ("from_logits", "label_smoothing", "axis"), ()),
    ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy", None, ("from_logits", "ignore_class", "axis"),
     ()),
):
  _defaults = {key: value for key, value in losses.LOSSES.arguments(_loss or _name).items() if key in _options}
  METRICS.register(_name, _loss_metric(_name, _loss or _name, _defaults), keras_class=_class, aliases=_aliases)
del _name, _class, _loss, _options, _aliases, _defaults


ALIASES = METRICS.aliases  # every accepted spelling -> its canonical name


def compile_metric(name: str | Mapping[str, Any] | Any):
  """A metric as `model.compile(metrics=[name])` reads it: any spelling of "accuracy" or "acc" (any case, so
  "Accuracy" too, as Keras's compile lower-cases it) is the accuracy chosen from the batch shapes; else `get`.

  Example:
    >>> compile_metric("Accuracy") is not None
    True
  """
  if isinstance(name, str) and name.lower() in ("accuracy", "acc"):
    return get("accuracy")
  return get(name, param="metrics") if isinstance(name, (str, Mapping)) else get(name)


def get(name: str | Mapping[str, Any] | Any, /, **kwargs: Any):
  """Returns the streaming metric `name` (Keras function/class name or alias) with Keras's arguments.

  `"accuracy"` / `"acc"` resolve as in `model.compile(metrics=["accuracy"])`:
  binary, sparse categorical or categorical accuracy, chosen from the batch
  shapes; `"Accuracy"` (the class name) is Keras's exact-equality `Accuracy`.

  Args:
    name: e.g. `"sparse_categorical_accuracy"`, `"auc"`, `"MeanIoU"`, `"mae"`; or a Keras config dict
      (`keras.metrics.serialize(...)`: its `name` label is not used, the caller names the metric); or a Keras
      metric object, read from its class and config; or a metric object (or callable), returned as is.
    **kwargs: the Keras class's arguments: `threshold` (binary_accuracy), `k`
      (top-k), `thresholds`/`top_k`/`class_id` (precision, recall),
      `num_thresholds`/`curve`/`summation_method`/... (auc), `num_classes`/
      `ignore_class`/`sparse_y_true`/`sparse_y_pred`/`axis`/`dtype` (mean_iou), `thresholds` (the confusion
      counts), `from_logits`/`label_smoothing`/`axis` (the cross-entropies), `axis` (cosine_similarity and
      the correlations).

  Raises:
    ValueError: for an unknown name, an argument the metric does not have, a
      missing required argument or a bad value.

  Example:
    >>> m = get("top_k_categorical_accuracy", k=3)
    >>> sorted(m.init())
    ['count', 'total']
    >>> config = {"class_name": "MeanIoU", "config": {"num_classes": 3, "name": "mean_io_u"}}
    >>> get(config) == get("mean_iou", num_classes=3)
    True
  """
  name = built(name)
  if is_keras_object(name):
    name = keras_config(name)
  return METRICS.get(name, **kwargs)


def is_keras_object(value: Any) -> bool:
  """Whether `value` is a Keras metric object (an instance with a class config that updates a state)."""
  return all(hasattr(value, attr) for attr in ("update_state", "get_config", "name"))
