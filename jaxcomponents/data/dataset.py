"""Epochs of fixed-shape batches from arrays or from random-access record sources.

Every batch has the same shape: a short last batch is padded by repeating
examples and masked out (`mask` 0), so a jitted step never recompiles.
Epoch `e`'s order depends only on `(seed, e)`, so a resumed run sees the same
batches as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from jaxcomponents.errors import check_positive_int


def check_labels(y: np.ndarray, num_classes: int | None, where: str = "y") -> None:
  """Raises if integer class labels fall outside [0, num_classes)."""
  if num_classes is None or not np.issubdtype(np.asarray(y).dtype, np.integer):
    return
  bad = np.flatnonzero((y < 0) | (y >= num_classes))
  if bad.size:
    raise ValueError(f"{where} has labels outside [0, {num_classes}): e.g. {np.asarray(y)[bad[:5]].tolist()} at "
                     f"indices {bad[:5].tolist()}.")


class _Batches:
  """Shuffled index batches of static size with a padding mask."""

  def __init__(self, size: int, batch_size: int, shuffle: bool, seed: int, drop_remainder: bool):
    check_positive_int("batch_size", batch_size)
    if size == 0 or (drop_remainder and size < batch_size):
      raise ValueError(f"{size} examples give no batch of batch_size={batch_size}.")
    self.size, self.batch_size, self.shuffle, self.seed = size, batch_size, shuffle, seed
    self.drop_remainder = drop_remainder

  def __len__(self) -> int:
    full, rest = divmod(self.size, self.batch_size)
    return full + (1 if rest and not self.drop_remainder else 0)

  def index_batches(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    order = np.random.default_rng([self.seed, epoch]).permutation(self.size) if self.shuffle else np.arange(self.size)
    for start in range(0, len(self) * self.batch_size, self.batch_size):
      idx = order[start:start + self.batch_size]
      mask = np.ones(self.batch_size, np.float32)
      if len(idx) < self.batch_size:
        mask[len(idx):] = 0.0
        idx = np.resize(idx, self.batch_size)
      yield idx, mask


class ArrayDataset(_Batches):
  """Batches of `{"x", "y", "mask"}` from in-memory arrays.

  Example:
    >>> data = ArrayDataset(np.zeros((10, 2)), np.arange(10), batch_size=4)
    >>> len(data), [float(b["mask"].sum()) for b in data.epoch(0)]
    (3, [4.0, 4.0, 2.0])
  """

  def __init__(self, x, y, batch_size: int, *, shuffle: bool = True, seed: int = 0, drop_remainder: bool = False,
               num_classes: int | None = None):
    self.x, self.y = np.asarray(x), np.asarray(y)
    if len(self.x) != len(self.y):
      raise ValueError(f"x has {len(self.x)} examples but y has {len(self.y)}; they must match.")
    check_labels(self.y, num_classes)
    super().__init__(len(self.x), batch_size, shuffle, seed, drop_remainder)

  def epoch(self, index: int) -> Iterator[dict[str, np.ndarray]]:
    """The batches of epoch `index`."""
    for idx, mask in self.index_batches(index):
      yield {"x": self.x[idx], "y": self.y[idx], "mask": mask}


class RecordDataset(_Batches):
  """Batches from a random-access source of records (a TFDS or grain data source, a list of files).

  Args:
    source: supports `len()` and `source[i]`.
    to_example: record -> (x, y) numpy arrays of fixed shape (decode, resize here).
    batch_size, shuffle, seed, drop_remainder: as `ArrayDataset`.
    num_classes: when given, every label is checked to lie in [0, num_classes).
  """

  def __init__(self, source: Sequence[Any], to_example: Callable[[Any], tuple[np.ndarray, Any]], batch_size: int, *,
               shuffle: bool = True, seed: int = 0, drop_remainder: bool = False, num_classes: int | None = None):
    self.source, self.to_example, self.num_classes = source, to_example, num_classes
    super().__init__(len(source), batch_size, shuffle, seed, drop_remainder)

  def epoch(self, index: int) -> Iterator[dict[str, np.ndarray]]:
    for idx, mask in self.index_batches(index):
      xs, ys = zip(*(self.to_example(self.source[int(i)]) for i in idx))
      y = np.stack(ys)
      check_labels(y, self.num_classes, where=f"records {idx[:5].tolist()}...")
      yield {"x": np.stack(xs), "y": y, "mask": mask}
