"""Segmentation metrics on maps, streaming like `jaxcomponents.metrics` (`init`, `update`, `result`).

* `mean_iou(num_classes)`: Keras's `MeanIoU` on a softmax map (class = argmax
  over channels) against integer label maps (or one-hot with `sparse_y_true=False`).
* `binary_iou`: Keras's `BinaryIoU` on a sigmoid map: prediction 1 where
  `y_pred >= threshold`, IoU averaged over `target_class_ids` (0 and 1 by default).

Both accumulate a confusion matrix over every pixel of every batch, so the
result is the dataset's IoU, not a mean of per-batch values. `get(name,
**kwargs)` looks them up by name, as `jaxcomponents.metrics.get` does.

Example:
  >>> import jax.numpy as jnp
  >>> iou = binary_iou(target_class_ids=(1,))
  >>> s = iou.update(iou.init(), jnp.array([[1.0, 0.0]]), jnp.array([[0.9, 0.8]]))
  >>> round(float(iou.result(s)), 4)
  0.5
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jaxcomponents import metrics
from jaxcomponents.metrics import IoU
from jaxcomponents.registry import Registry


def mean_iou(num_classes: int, sparse_y_true: bool = True, ignore_class: int | None = None) -> IoU:
  """Keras's `MeanIoU(num_classes, sparse_y_pred=False)`: for softmax outputs `(batch, h, w, num_classes)`."""
  return metrics.get("mean_iou", num_classes=num_classes, ignore_class=ignore_class, sparse_y_true=sparse_y_true,
                     sparse_y_pred=False, dtype="float32")


def binary_iou(target_class_ids: Sequence[int] = (0, 1), threshold: float = 0.5) -> IoU:
  """Keras's `BinaryIoU(target_class_ids, threshold)` with a float32 confusion matrix."""
  return metrics.get("binary_iou", target_class_ids=list(target_class_ids), threshold=threshold, dtype="float32")


BinaryIoU = binary_iou  # Keras's class name, kept for code written against it


def _is_metric(value: Any) -> bool:
  return callable(value) or all(hasattr(value, method) for method in ("init", "update", "result"))


# Keras's class names (and their snake_case) for the segmentation forms of its IoU metrics.
METRICS = Registry("segmentation metric", snake_case_classes=True, passes=_is_metric,
                   passes_what="a metric (init, update, result) or a callable")
METRICS.register("mean_iou", mean_iou, keras_class="MeanIoU")
METRICS.register("binary_iou", binary_iou, keras_class="BinaryIoU")


def get(name: str | Mapping[str, Any] | Any, /, **kwargs: Any):
  """The segmentation metric `name` with its arguments: `"mean_iou"` (`num_classes`, ...) or `"binary_iou"`.

  Raises:
    ValueError: for an unknown name, an argument the metric does not take, or a missing `num_classes`.

  Example:
    >>> get("BinaryIoU", threshold=0.3).threshold
    0.3
  """
  return METRICS.get(name, **kwargs)
