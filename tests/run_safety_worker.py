"""A run for tests/test_run_safety.py to interrupt: `fit` on a slow, blocking or fast source, printing each step.

    python -m tests.run_safety_worker KIND CHECKPOINT_DIR

Prints `step N` after each step, then `returned STEP STOPPED_BY MONOTONIC_TIME`.
"""

import sys
import time

from jaxcomponents.data import ArrayDataset, RecordDataset
from jaxcomponents.training import Callback, fit, make_train_step
from tests.training_problem import blobs, new_state, xent

EPOCHS = {"slow": 4, "blocking": 4, "records": 4, "fast": 25}
BLOCK_SECONDS = 3.0


class Paced:
  """`batches`' batches, each after `delay` seconds; batch `block_at` (counted across epochs) after `block` more."""

  def __init__(self, batches, delay: float = 0.0, block_at: int | None = None, block: float = 0.0):
    self.batches, self.delay, self.block_at, self.block = batches, delay, block_at, block

  def __len__(self):
    return len(self.batches)

  def epoch(self, index):
    for k, batch in enumerate(self.batches.epoch(index)):
      time.sleep(self.delay + (self.block if index * len(self) + k == self.block_at else 0.0))
      yield batch


class SlowRecords:
  """The blobs as records, each read after `delay` seconds; record `block_at` blocks `block` seconds each read."""

  def __init__(self, delay: float = 0.0, block_at: int | None = None, block: float = 0.0):
    self.x, self.y = blobs()
    self.delay, self.block_at, self.block = delay, block_at, block

  def __len__(self):
    return len(self.x)

  def __getitem__(self, i):
    time.sleep(self.delay + (self.block if i == self.block_at else 0.0))
    return self.x[i], self.y[i]


def data(kind: str, paced: bool = True):
  """The source of `kind`; `paced=False` gives the same batches at once (for the reference and resumed runs)."""
  if kind == "records":
    records = SlowRecords(0.01, block_at=7, block=BLOCK_SECONDS) if paced else SlowRecords()
    return RecordDataset(records, lambda r: r, batch_size=16, seed=5, threads=2)
  if kind == "fast":
    return ArrayDataset(*blobs(), batch_size=2, seed=5)  # 48 steps an epoch
  batches = ArrayDataset(*blobs(), batch_size=16, seed=5)  # 6 steps an epoch
  if not paced:
    return batches
  return Paced(batches, 0.15) if kind == "slow" else Paced(batches, 0.02, block_at=9, block=60.0)


class PrintSteps(Callback):
  def on_train_batch_end(self, batch, logs=None):
    print(f"step {int(self.model.state.step)}", flush=True)


def main(kind: str, checkpoint_dir: str) -> None:
  state, history = fit(new_state(), make_train_step(xent), data(kind), epochs=EPOCHS[kind],
                       checkpoint_dir=checkpoint_dir, callbacks=[PrintSteps()], verbose=0)
  print(f"returned {int(state.step)} {history.stopped_by} {time.monotonic()}", flush=True)


if __name__ == "__main__":
  main(*sys.argv[1:3])
