"""In-memory arrays as epochs of fixed-shape batches."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from jaxcomponents.errors import check_positive_int


class ArrayDataset:
  """Batches of `{"x", "y", "mask"}` from arrays, reshuffled each epoch from a seed.

  Every batch has the same shape: a short last batch is padded by repeating
  examples and masked out (`mask` 0), so a jitted step never recompiles.
  Epoch `e`'s order depends only on `(seed, e)`, so a resumed run sees the
  same batches as an uninterrupted one.

  Example:
    >>> data = ArrayDataset(np.zeros((10, 2)), np.arange(10), batch_size=4)
    >>> len(data), [b["mask"].sum() for b in data.epoch(0)]
    (3, [4.0, 4.0, 2.0])
  """

  def __init__(self, x, y, batch_size: int, *, shuffle: bool = True, seed: int = 0, drop_remainder: bool = False):
    check_positive_int("batch_size", batch_size)
    self.x, self.y = np.asarray(x), np.asarray(y)
    if len(self.x) != len(self.y):
      raise ValueError(f"x has {len(self.x)} examples but y has {len(self.y)}; they must match.")
    if len(self.x) == 0 or (drop_remainder and len(self.x) < batch_size):
      raise ValueError(f"{len(self.x)} examples give no batch of batch_size={batch_size}.")
    self.batch_size, self.shuffle, self.seed, self.drop_remainder = batch_size, shuffle, seed, drop_remainder

  def __len__(self) -> int:
    full, rest = divmod(len(self.x), self.batch_size)
    return full + (1 if rest and not self.drop_remainder else 0)

  def epoch(self, index: int) -> Iterator[dict[str, np.ndarray]]:
    """The batches of epoch `index`."""
    n = len(self.x)
    order = np.random.default_rng([self.seed, index]).permutation(n) if self.shuffle else np.arange(n)
    for start in range(0, len(self) * self.batch_size, self.batch_size):
      idx = order[start:start + self.batch_size]
      mask = np.ones(self.batch_size, np.float32)
      if len(idx) < self.batch_size:
        mask[len(idx):] = 0.0
        idx = np.resize(idx, self.batch_size)
      yield {"x": self.x[idx], "y": self.y[idx], "mask": mask}
