"""Fixed-shape global batches read through Grain, each process loading its own part.

One Grain element is one batch: `BatchPipeline.epoch(e)` is
`grain.MapDataset.range(num_batches)` mapped to this process's part of each
global batch, read by Grain's threads (`threads`) or worker processes
(`workers`). Batch `i` of epoch `e` holds the examples at global positions
`i * batch_size ... (i + 1) * batch_size - 1` of epoch `e`'s permutation (a
function of `(seed, e)` only); process `p` of `P` loads the `p`-th contiguous
slice of it, so the concatenation over processes (what `shard_batch` builds)
is exactly the batch a single process would load. A short last batch is
padded by repeating examples and masked out (`mask` 0), so a jitted step never
recompiles. Per-example augmentation draws from a generator seeded by
`(seed, epoch, global position)`: batches are the same for any number of
processes, threads or workers, and a resumed run (`epoch(e, start=k)`) sees
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import grain
import numpy as np

from jaxcomponents.errors import check_positive_int, is_int

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def check_labels(y: np.ndarray, num_classes: int | None, where: str = "y") -> None:
  """Raises if integer class labels fall outside [0, num_classes)."""
  if num_classes is None or not np.issubdtype(np.asarray(y).dtype, np.integer):
    return
  bad = np.flatnonzero((y < 0) | (y >= num_classes))
  if bad.size:
    raise ValueError(f"{where} has labels outside [0, {num_classes}): e.g. {np.asarray(y)[bad[:5]].tolist()} at "
                     f"indices {bad[:5].tolist()}.")


def map_arrays(fn: Callable[[Any], Any], tree: Any) -> Any:
  """`fn` on each array of a tuple/list/dict nest of arrays (None stays None), without importing JAX.

  A list or tuple of numbers is one array, as Keras reads it.

  Example:
    >>> map_arrays(len, {"a": [1, 2], "b": (np.zeros(3), None)})
    {'a': 2, 'b': (3, None)}
  """
  if tree is None:
    return None
  if isinstance(tree, dict):
    return {k: map_arrays(fn, v) for k, v in tree.items()}
  if isinstance(tree, (tuple, list)) and any(v is None or isinstance(v, dict) or hasattr(v, "shape") for v in tree):
    return type(tree)(map_arrays(fn, v) for v in tree)
  return fn(tree)


def array_leaves(tree: Any) -> list[Any]:
  """The arrays of a tuple/list/dict nest, in order."""
  leaves: list[Any] = []
  map_arrays(leaves.append, tree)
  return leaves


def process_layout() -> tuple[int, int]:
  """`(jax.process_index(), jax.process_count())`, read when an epoch starts (after `initialize_distributed`)."""
  import jax  # the pipeline itself runs in Grain's workers without JAX

  return jax.process_index(), jax.process_count()


class BatchPipeline:
  """Epochs of fixed-shape batches `{"x", "y", "mask"}`; subclasses say how to load examples.

  Args:
    size: number of examples.
    batch_size: the global batch (as in Keras); each of `P` processes loads `batch_size / P` of it.
    shuffle: a new permutation each epoch, fixed by `(seed, epoch)`.
    seed: seeds the permutation and the augmentation.
    drop_remainder: drop the last short batch instead of padding it.
    pad: pad the last short batch to `batch_size` (masked out by the batches'
      `mask`), so a jitted step never recompiles; False hands it over short, as
      Keras does (one more compile, batch statistics over the real examples
      only, and no `mask`). One process only.
    augment: `augment(x, rng) -> x` applied to each example on the host with a
      `np.random.Generator` fixed by `(seed, epoch, position)`. For record
      datasets it runs before stacking, so it may turn a file name or encoded
      bytes into the fixed-shape array (e.g. `decode_random_resized_crop`).
    threads: Grain reader threads (0: read in the consuming thread).
    workers: Grain worker processes (0: none); each builds whole batches. The
      workers are spawned and unpickle the dataset, so `augment` and record
      functions must be picklable (module-level functions or classes). If the
      program has not parsed absl's flags (Grain reads them), they are marked
      parsed at their defaults.
  """

  def __init__(self, size: int, batch_size: int, *, shuffle: bool = True, seed: int = 0,
               drop_remainder: bool = False, augment: Augment | None = None, threads: int = 1, workers: int = 0,
               pad: bool = True):
    check_positive_int("batch_size", batch_size)
    check_positive_int("threads", threads, allow_zero=True)
    check_positive_int("workers", workers, allow_zero=True)
    if not is_int(seed) or not 0 <= seed < 2**32:
      raise ValueError(f"seed={seed!r} is not allowed; expected an integer in [0, 2**32).")
    if size == 0 or (drop_remainder and size < batch_size):
      raise ValueError(f"{size} examples give no batch of batch_size={batch_size}.")
    self.size, self.batch_size, self.shuffle, self.seed = size, batch_size, shuffle, seed
    self.drop_remainder, self.augment, self.threads, self.workers = drop_remainder, augment, threads, workers
    self.pad = pad
    self._checked_layout: tuple[int, int] | None = None

  def __len__(self) -> int:
    full, rest = divmod(self.size, self.batch_size)
    return full + (1 if rest and not self.drop_remainder else 0)

  def spec(self) -> dict[str, Any]:
    """What fixes the batches: a resumed run must read a dataset with the same spec."""
    spec = {"size": self.size, "batch_size": self.batch_size, "shuffle": self.shuffle, "seed": self.seed,
            "drop_remainder": self.drop_remainder}
    if not self.pad:
      spec["pad"] = False
    return spec

  def load(self, indices: np.ndarray, rngs: list[np.random.Generator] | None) -> tuple[np.ndarray, ...]:
    """Returns `(x, y)` (or `(x, y, sample_weight)`) stacked for the examples `indices`, each `x` through `augment`
    with its `rngs` entry."""
    raise NotImplementedError

  def epoch(self, index: int, start: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """This process's part of the batches `start, start + 1, ...` of epoch `index`.

    Example:
      >>> from jaxcomponents.data import ArrayDataset
      >>> data = ArrayDataset(np.arange(10)[:, None], np.arange(10), batch_size=4, shuffle=False)
      >>> [b["y"].tolist() for b in data.epoch(0, start=1)]
      [[4, 5, 6, 7], [8, 9, 0, 1]]
    """
    check_positive_int("index", index, allow_zero=True)
    check_positive_int("start", start, allow_zero=True)
    return self.stream(index * len(self) + start, (index + 1) * len(self))

  def stream(self, start: int, stop: int) -> Iterator[dict[str, np.ndarray]]:
    """Batches `start ... stop - 1` counted across epochs (batch `k` is batch `k % len` of epoch `k // len`).

    One stream for a whole run starts Grain's worker processes once, not once per epoch.

    Example:
      >>> from jaxcomponents.data import ArrayDataset
      >>> data = ArrayDataset(np.arange(4)[:, None], np.arange(4), batch_size=2, shuffle=False)
      >>> [b["y"].tolist() for b in data.stream(1, 4)]
      [[2, 3], [0, 1], [2, 3]]
    """
    check_positive_int("start", start, allow_zero=True)
    if not is_int(stop) or stop < start:
      raise ValueError(f"stop={stop!r} is not allowed with start={start}; expected an integer >= start.")
    process, count = self._layout()
    closed = threading.Event()
    batches = grain.MapDataset.range(start, stop).map(_LoadBatch(self, process, count, closed))
    options = grain.ReadOptions(num_threads=self.threads, prefetch_buffer_size=max(2 * self.threads, 1))
    stream = batches.to_iter_dataset(options)
    if self.workers:
      _absl_flags_readable()
      stream = stream.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.workers, per_worker_buffer_size=2))
    return _Stream(iter(stream), closed, copy=bool(self.workers))

  def _layout(self) -> tuple[int, int]:
    process, count = process_layout()
    if self._checked_layout == (process, count):
      return process, count
    if self.batch_size % count:
      raise ValueError(f"batch_size={self.batch_size} is not allowed on {count} processes; the global batch must "
                       f"be a multiple of the process count {count}.")
    local = self.batch_size // count
    if count > 1 and not self.pad:
      raise ValueError(f"pad=False is not allowed on {count} processes: each process must load its part of a full "
                       "batch; keep pad=True (the padding is masked out of losses and metrics).")
    if count > 1 and self.size <= (count - 1) * local:
      raise ValueError(f"{self.size} examples in batches of {self.batch_size} leave process {count - 1} of {count} "
                       f"nothing to read; use at least {(count - 1) * local + 1} examples or a smaller batch_size.")
    if count > 1:
      _check_processes_agree(self.spec())
    self._checked_layout = (process, count)
    return process, count

  def _example_rng(self, epoch: int, position: int) -> np.random.Generator:
    return np.random.default_rng([self.seed, epoch, position])


class _LoadBatch:
  """Grain map: batch number across epochs -> this process's part of it (picklable for worker processes)."""

  def __init__(self, pipeline: BatchPipeline, process: int, count: int, closed: threading.Event | None = None):
    self.pipeline, self.process, self.count, self.closed = pipeline, process, count, closed
    self._order: tuple[int, np.ndarray] | None = None

  def __getstate__(self):
    return {**self.__dict__, "closed": None}  # worker processes are stopped by closing Grain's iterator

  def order(self, epoch: int) -> np.ndarray:
    if self._order is None or self._order[0] != epoch:
      p = self.pipeline
      self._order = (epoch, np.random.default_rng([p.seed, epoch]).permutation(p.size) if p.shuffle
                     else np.arange(p.size))
    return self._order[1]

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    _reading.closed = self.closed
    check_open()
    p = self.pipeline
    epoch, batch = divmod(step, len(p))
    local = p.batch_size // self.count
    positions = batch * p.batch_size + self.process * local + np.arange(local)
    if not p.pad:
      positions = positions[positions < p.size]
    indices = self.order(epoch)[positions % p.size]
    rngs = None if p.augment is None else [p._example_rng(epoch, int(pos)) for pos in positions]
    x, y, *weight = p.load(indices, rngs)
    batch = {"x": x, "y": y}
    if p.pad:  # unpadded batches hold real examples only: no mask to send
      batch["mask"] = (positions < p.size).astype(np.float32)
    if weight:
      batch["sample_weight"] = weight[0]
    return batch


def _absl_flags_readable() -> None:
  """Grain's worker processes read absl flags; a program not started by `absl.app` has not parsed them.

  Marks them parsed (at their defaults) in that case only, the one process-wide
  effect of asking for `workers`.
  """
  from absl import flags

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


class StreamClosed(Exception):
  """Raised in a reader thread whose stream was closed: the batch it was loading is abandoned."""


_reading = threading.local()


def check_open() -> None:
  """Raises `StreamClosed` in a reader thread whose stream was closed; `load` calls it between records.

  So a closed stream (`fit` stopped by a signal) leaves each reader thread
  after the record it is reading, not after its whole batch.
  """
  closed = getattr(_reading, "closed", None)
  if closed is not None and closed.is_set():
    raise StreamClosed("the batch stream was closed")


class _Stream:
  """Grain's batches; `close()` may be called from any thread, also while another waits in `next()`."""

  def __init__(self, iterator, closed: threading.Event, copy: bool):
    self._iterator, self._closed, self._copy = iterator, closed, copy

  def __iter__(self) -> "_Stream":
    return self

  def __next__(self) -> dict[str, Any]:
    if self._closed.is_set():
      raise StopIteration
    try:
      batch = next(self._iterator)
    except StopIteration:
      self.close()
      raise
    # Workers hand batches over in shared memory, released when the array is: copy so none outlives the epoch.
    return map_arrays(np.array, batch) if self._copy else batch

  def close(self) -> None:
    """Stops the reader threads after their current record and cancels what is queued (worker processes end)."""
    if self._closed.is_set():
      return
    self._closed.set()
    close = getattr(self._iterator, "close", None)
    if close is not None:
      close()

  def __del__(self):
    self.close()


def _check_processes_agree(spec: dict[str, Any]) -> None:
  """Raises on every process if the processes were given different datasets."""
  from jax.experimental import multihost_utils

  digest = zlib.crc32(json.dumps(spec, sort_keys=True).encode()) & 0x7FFFFFFF
  mine = np.asarray([spec["size"], spec["batch_size"], digest], np.int32)
  every = np.asarray(multihost_utils.process_allgather(mine))
  if not (every == every[0]).all():
    table = "; ".join(f"process {i}: size={row[0]}, batch_size={row[1]}, settings digest {row[2]}"
                      for i, row in enumerate(every))
    raise ValueError(f"the processes were given different datasets ({table}); every process must build the same "
                     "dataset (same examples, batch_size, shuffle, seed) and reads its own part of it.")
