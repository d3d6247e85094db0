"""Datasets from in-memory arrays and from random-access record sources, read through Grain.

Both are `BatchPipeline`s (see `jaxcomponents.data.pipeline`): fixed-shape
global batches with a padding mask, each process loading its own part.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from jaxcomponents.data.pipeline import Augment, BatchPipeline, array_leaves, check_labels, check_open, map_arrays
from jaxcomponents.errors import is_real


class ArrayDataset(BatchPipeline):
  """Batches of `{"x", "y", "mask"}` (and `sample_weight`) from in-memory arrays, gathered a batch at a time.

  `x` and `y` may be arrays or tuples/lists/dicts of arrays (a model's several
  inputs or outputs), examples along the first axis of each.

  Example:
    >>> data = ArrayDataset(np.zeros((10, 2)), np.arange(10), batch_size=4)
    >>> len(data), [float(b["mask"].sum()) for b in data.epoch(0)]
    (3, [4.0, 4.0, 2.0])
  """

  def __init__(self, x, y, batch_size: int, *, sample_weight=None, shuffle: bool = True, seed: int = 0,
               drop_remainder: bool = False, num_classes: int | None = None, augment: Augment | None = None,
               threads: int = 1, workers: int = 0, pad: bool = True):
    self.x, self.y = _arrays(x), _arrays(y)
    self.sample_weight = None if sample_weight is None else np.asarray(sample_weight, np.float32)
    sizes = {name: [len(a) for a in array_leaves(part)]
             for name, part in (("x", self.x), ("y", self.y), ("sample_weight", self.sample_weight))}
    if not sizes["x"]:
      raise ValueError("x holds no arrays; expected an array or a tuple/list/dict of arrays.")
    count = sizes["x"][0]
    for name, lengths in sizes.items():
      if any(n != count for n in lengths):
        raise ValueError(f"x has {count} examples but {name} has {lengths[0] if len(set(lengths)) == 1 else lengths}"
                         "; every array must have one entry per example.")
    if not isinstance(self.y, np.ndarray) or self.y.ndim == 0:
      num_classes = None
    check_labels(self.y, num_classes)
    super().__init__(count, batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder,
                     augment=augment, threads=threads, workers=workers, pad=pad)

  def _take(self, start: int | None, stop: int | None) -> dict[str, Any]:
    part = lambda tree: map_arrays(lambda a: a[start:stop], tree)
    return {"x": part(self.x), "y": part(self.y),
            "sample_weight": None if self.sample_weight is None else self.sample_weight[start:stop]}

  def split(self, validation_split: float) -> tuple["ArrayDataset", "ArrayDataset"]:
    """`(training, validation)`: the validation part is the last `validation_split` of the examples, as Keras takes it.

    The training part keeps this dataset's settings; the validation part is read in order, without augmentation.

    Example:
      >>> train, val = ArrayDataset(np.zeros((10, 2)), np.arange(10), batch_size=4).split(0.2)
      >>> val.y.tolist()
      [8, 9]
    """
    if not is_real(validation_split) or not (
        0.0 < validation_split < 1.0):
      raise ValueError(f"validation_split={validation_split!r} is not allowed; expected a float in (0, 1).")
    cut = int(math.floor(self.size * (1.0 - validation_split)))
    if cut == 0 or cut == self.size:
      raise ValueError(f"validation_split={validation_split} of {self.size} examples leaves one part empty.")
    train = ArrayDataset(**self._take(None, cut), batch_size=self.batch_size, shuffle=self.shuffle, seed=self.seed,
                         drop_remainder=self.drop_remainder, augment=self.augment, threads=self.threads,
                         workers=self.workers, pad=self.pad)
    return train, ArrayDataset(**self._take(cut, None), batch_size=self.batch_size, shuffle=False,
                               threads=self.threads)

  def load(self, indices, rngs):
    x = map_arrays(lambda a: a[indices], self.x)
    if rngs is not None:
      x = stack_as_made((self.augment(example, rng) for example, rng in zip(x, rngs)), len(x))
    y = map_arrays(lambda a: a[indices], self.y)
    if self.sample_weight is None:
      return x, y
    return x, y, self.sample_weight[indices]


def _arrays(tree):
  """Arrays (or tuples/lists/dicts of them) as NumPy arrays; None stays None."""
  return map_arrays(np.asarray, tree)


class RecordDataset(BatchPipeline):
  """Batches from a random-access source of records (a TFDS or Grain data source, a list of files).

  Args:
    source: supports `len()` and `source[i]`.
    to_example: record -> (x, y): numpy arrays of fixed shape (decode, resize here), or `x` anything
      `augment` turns into one (a file name, encoded bytes).
    batch_size, shuffle, seed, drop_remainder, augment, threads, workers, pad: as `BatchPipeline`.
    num_classes: when given, every label is checked to lie in [0, num_classes).

  Example:
    >>> data = RecordDataset(list(range(5)), lambda r: (np.full(2, r), r), batch_size=2, shuffle=False)
    >>> [b["y"].tolist() for b in data.epoch(0)]
    [[0, 1], [2, 3], [4, 0]]
  """

  def __init__(self, source: Sequence[Any], to_example: Callable[[Any], tuple[np.ndarray, Any]], batch_size: int, *,
               shuffle: bool = True, seed: int = 0, drop_remainder: bool = False, num_classes: int | None = None,
               augment: Augment | None = None, threads: int = 4, workers: int = 0):
    self.source, self.to_example, self.num_classes = source, to_example, num_classes
    super().__init__(len(source), batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder,
                     augment=augment, threads=threads, workers=workers)

  def load(self, indices, rngs):
    xs, ys = zip(*(self._example(int(i)) for i in indices))
    y = np.stack(ys)
    check_labels(y, self.num_classes, where=f"records {indices[:5].tolist()}...")
    if rngs is not None:
      return stack_as_made((self.augment(x, rng) for x, rng in zip(xs, rngs)), len(xs)), y
    return np.stack(xs), y

  def _example(self, index: int):
    check_open()  # a closed stream's reader stops between records
    return self.to_example(self.source[index])


def stack_as_made(examples: Iterable[np.ndarray], count: int) -> np.ndarray:
  """`np.stack` of `count` examples, each copied into the batch as soon as it is made (while still in cache).

  Example:
    >>> stack_as_made((np.full(2, i) for i in range(3)), 3).tolist()
    [[0, 0], [1, 1], [2, 2]]
  """
  out = None
  for i, example in enumerate(examples):
    example = np.asarray(example)
    if out is None:
      out = np.empty((count, *example.shape), example.dtype)
    elif example.shape != out.shape[1:]:
      raise ValueError(f"example {i} of the batch has shape {example.shape} but example 0 has {out.shape[1:]}; "
                       "every example (after augment) must have the same shape.")
    elif example.dtype != out.dtype:
      out = out.astype(np.result_type(out.dtype, example.dtype))
    out[i] = example
  return out
