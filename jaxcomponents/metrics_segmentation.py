"""Segmentation metrics on maps, streaming like `jaxcomponents.metrics` (`init`, `update`, `result`).

* `mean_iou(num_classes)`: Keras's `MeanIoU` on a softmax map (class = argmax
  over channels) against integer label maps (or one-hot with `sparse_y_true=False`).
* `BinaryIoU`: Keras's `BinaryIoU` on a sigmoid map: prediction 1 where
  `y_pred >= threshold`, IoU averaged over `target_class_ids` (0 and 1 by default).

Both accumulate a confusion matrix over every pixel of every batch, so the
result is the dataset's IoU, not a mean of per-batch values. `get(name,
**kwargs)` looks them up by name, as `jaxcomponents.metrics.get` does.

Example:
  >>> import jax.numpy as jnp
  >>> iou = BinaryIoU(target_class_ids=(1,))
  >>> s = iou.update(iou.init(), jnp.array([[1.0, 0.0]]), jnp.array([[0.9, 0.8]]))
  >>> round(float(iou.result(s)), 4)
  0.5
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxcomponents.errors import check_positive_int
from jaxcomponents.metrics import MeanIoU
from jaxcomponents.registry import Registry

EPSILON = 1e-7


def mean_iou(num_classes: int, sparse_y_true: bool = True, ignore_class: int | None = None) -> MeanIoU:
  """Keras's `MeanIoU(num_classes, sparse_y_pred=False)`: for softmax outputs `(batch, h, w, num_classes)`."""
  check_positive_int("num_classes", num_classes)
  return MeanIoU(num_classes, ignore_class=ignore_class, sparse_y_true=sparse_y_true, sparse_y_pred=False,
                 dtype="float32")


@dataclasses.dataclass(frozen=True)
class BinaryIoU:
  """Keras's `BinaryIoU(target_class_ids, threshold)` with a float32 confusion matrix."""

  target_class_ids: Sequence[int] = (0, 1)
  threshold: float = 0.5

  def __post_init__(self):
    ids = tuple(self.target_class_ids)
    if not ids or any(i not in (0, 1) for i in ids):
      raise ValueError(f"target_class_ids={self.target_class_ids!r} is not allowed; expected a non-empty "
                       "sequence of 0 and/or 1.")

  @property
  def _matrix(self) -> MeanIoU:
    return MeanIoU(2, dtype="float32")

  def init(self) -> dict[str, jax.Array]:
    return self._matrix.init()

  def update(self, state: dict[str, jax.Array], y_true: Any, y_pred: Any, sample_weight: Any = None):
    y_pred = (jnp.asarray(y_pred, jnp.float32) >= self.threshold).astype(jnp.float32)
    return self._matrix.update(state, jnp.asarray(y_true, jnp.float32), y_pred, sample_weight)

  def result(self, state: dict[str, jax.Array]) -> jax.Array:
    cm = state["confusion_matrix"].astype(jnp.float32)
    tp = jnp.diag(cm)
    denominator = jnp.sum(cm, axis=0) + jnp.sum(cm, axis=1) - tp
    ids = jnp.asarray(tuple(self.target_class_ids))
    tp, denominator = tp[ids], denominator[ids]
    valid = jnp.sum((denominator > 1e-9).astype(jnp.float32))
    return jnp.sum(tp / (denominator + EPSILON)) / (valid + EPSILON)


def _is_metric(value: Any) -> bool:
  return callable(value) or all(hasattr(value, method) for method in ("init", "update", "result"))


# Keras's class names (and their snake_case) for the segmentation forms of its IoU metrics.
METRICS = Registry("segmentation metric", snake_case_classes=True, passes=_is_metric,
                   passes_what="a metric (init, update, result) or a callable")
METRICS.register("mean_iou", mean_iou, keras_class="MeanIoU")
METRICS.register("binary_iou", BinaryIoU, keras_class="BinaryIoU")


def get(name: str | Mapping[str, Any] | Any, /, **kwargs: Any):
  """The segmentation metric `name` with its arguments: `"mean_iou"` (`num_classes`, ...) or `"binary_iou"`.

  Raises:
    ValueError: for an unknown name, an argument the metric does not take, or a missing `num_classes`.

  Example:
    >>> get("BinaryIoU", threshold=0.3).threshold
    0.3
  """
  return METRICS.get(name, **kwargs)
