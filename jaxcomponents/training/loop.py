"""`fit`: epochs of jitted steps with a progress bar, validation, logs, checkpoints and resume."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

import jax
from tqdm.auto import tqdm

from jaxcomponents.data.pipeline import BatchPipeline
from jaxcomponents.data.prefetch import prefetch
from jaxcomponents.training.callbacks import Callback, CSVLogger, History, LearningCurves, TensorBoard
from jaxcomponents.training.checkpoint import Checkpointer
from jaxcomponents.training.parallel import data_mesh, replicate
from jaxcomponents.training.state import TrainState
from jaxcomponents.training.step import Step


class Dataset(Protocol):
  """What `fit` reads: `len(data)` batches per epoch, `data.epoch(e)` yields them.

  `BatchPipeline`s are read as one stream for the whole run (`stream(start, stop)`), so a
  resumed run starts at its next batch; other datasets' epochs are read and skipped up to it.
  """

  def __len__(self) -> int: ...

  def epoch(self, index: int): ...


class _Batches:
  """The training batches from step `start` on: one Grain stream for the run, or `epoch(e)` per epoch."""

  def __init__(self, data: Dataset, start: int, total: int):
    self.data = data
    self.stream = data.stream(start, total) if isinstance(data, BatchPipeline) else None

  def epoch(self, epoch: int, start: int, stop: int):
    if self.stream is not None:
      return itertools.islice(self.stream, stop - start)
    return itertools.islice(self.data.epoch(epoch), start, stop)

  def close(self) -> None:
    if self.stream is not None:
      self.stream.close()


def _dataset_record(data: Dataset, step: int) -> dict[str, Any]:
  """What a checkpoint says about the input: where the next batch is and what fixes the batches."""
  record = {"next_step": step, "steps_per_epoch": len(data)}
  if isinstance(data, BatchPipeline):
    record["spec"] = data.spec()
  return record


def _check_same_dataset(saved: dict[str, Any], data: Dataset, checkpoint_dir) -> None:
  current = _dataset_record(data, 0)
  for key in ("steps_per_epoch", "spec"):
    if key in saved and key in current and saved[key] != current[key]:
      raise ValueError(
          f"the checkpoint in {checkpoint_dir} was written while reading a dataset with {key} {saved[key]}, but "
          f"train_data has {key} {current[key]}; resume with the same dataset, or start a new checkpoint_dir.")


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or infinite; training stopped without saving the broken state."""


@contextlib.contextmanager
def _stop_on_signals():
  """Turns SIGINT/SIGTERM into a flag the loop checks after each step."""
  received: list[str] = []
  if threading.current_thread() is not threading.main_thread():
    yield received
    return
  previous = {}

  def handler(signum, frame):
    received.append(signal.Signals(signum).name)

  for sig in (signal.SIGINT, signal.SIGTERM):
    previous[sig] = signal.signal(sig, handler)
  try:
    yield received
  finally:
    for sig, old in previous.items():
      signal.signal(sig, old)


def _floats(results: dict[str, Any]) -> dict[str, float]:
  return {k: float(v) for k, v in jax.device_get(results).items()}


def evaluate(state: TrainState, eval_step: Step, data: Dataset, mesh=None) -> dict[str, float]:
  """Runs `eval_step` over one pass of `data`; returns the final metric values."""
  eval_state, results = eval_step.reset(state), {}
  for batch in prefetch(data.epoch(0), mesh=mesh):
    eval_state, results = eval_step(eval_state, batch)
  return _floats(results)


def fit(
    state: TrainState,
    train_step: Step,
    train_data: Dataset,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    eval_step: Step | None = None,
    validation_data: Dataset | None = None,
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | os.PathLike | None = None,
    keep_checkpoints: int = 3,
    best_metric: str | None = None,
    best_mode: str = "min",
    resume: bool = False,
    log_dir: str | os.PathLike | None = None,
    mesh=None,
    progress: bool = True,
    log_every: int = 10,
) -> tuple[TrainState, History]:
  """Trains for `epochs` epochs or `steps` steps; returns the final state and the history.

  Each epoch ends with validation (`val_` logs), callbacks and a checkpoint.
  With `resume=True`, training continues from the latest checkpoint in
  `checkpoint_dir`, at the same batch of the same epoch, so k steps, a restart
  and n - k more steps give the parameters of n uninterrupted steps.
  SIGINT/SIGTERM save a checkpoint and return (`history.stopped_by` names the
  signal). A non-finite loss raises `NonFiniteLossError` naming the step, and
  saves nothing.

  Args:
    state: from `TrainState.create`.
    train_step: from `make_train_step`.
    train_data: `len()` batches per epoch and `.epoch(e)` yielding dict batches.
    epochs: number of epochs (or give `steps`).
    steps: number of optimizer steps in all.
    eval_step, validation_data: evaluated after each epoch.
    callbacks: `Callback`s; `EarlyStopping` among them can end training.
    checkpoint_dir: where orbax checkpoints go (keep the last `keep_checkpoints`,
      and the best by `best_metric`).
    resume: continue from the latest checkpoint in `checkpoint_dir`.
    log_dir: writes `history.csv`, TensorBoard events and `learning_curves.png` there.
    mesh: a `data_mesh()`: the state is replicated and each batch sharded across it.
      When several processes run (`initialize_distributed`), the default is
      `data_mesh()` over every device of every process; each process feeds its
      part of each global batch (jaxcomponents' datasets do this by themselves).
    progress: show a progress bar with live metrics and throughput.
    log_every: steps between progress updates (each one waits for the device).
  """
  if (epochs is None) == (steps is None):
    raise ValueError(f"epochs={epochs!r}, steps={steps!r}: give exactly one of them.")
  steps_per_epoch = len(train_data)
  total = steps if steps is not None else epochs * steps_per_epoch
  if not isinstance(total, int) or total < 1:
    raise ValueError(f"epochs={epochs!r}, steps={steps!r} is not allowed; expected a positive integer.")
  if (eval_step is None) != (validation_data is None):
    raise ValueError("eval_step and validation_data go together: give both or neither.")
  if resume and checkpoint_dir is None:
    raise ValueError("resume=True needs a checkpoint_dir to resume from.")
  callbacks = list(callbacks)
  if log_dir is not None:
    os.makedirs(log_dir, exist_ok=True)
    callbacks += [CSVLogger(os.path.join(log_dir, "history.csv")), TensorBoard(os.path.join(log_dir, "tensorboard")),
                  LearningCurves(os.path.join(log_dir, "learning_curves.png"))]
  checkpointer = (Checkpointer(checkpoint_dir, keep=keep_checkpoints, best_metric=best_metric, best_mode=best_mode)
                  if checkpoint_dir is not None else None)
  if mesh is None and jax.process_count() > 1:
    mesh = data_mesh()
  if mesh is not None:
    state = replicate(state, mesh)
  if resume and checkpointer.latest_step() is not None:
    _check_same_dataset(checkpointer.dataset(), train_data, checkpoint_dir)
    state = checkpointer.restore(state)  # into the state's shardings
  history = History()
  step = int(jax.device_get(state.step))
  for callback in callbacks:
    callback.on_train_begin(state)

  def save(metrics=None):
    if checkpointer is not None:
      checkpointer.save(state, metrics, dataset=_dataset_record(train_data, int(jax.device_get(state.step))))

  def check_finite(state):
    bad = int(jax.device_get(state.metrics["nonfinite_step"]))
    if bad >= 0:
      if checkpointer is not None:
        checkpointer.wait()
      last = checkpointer.latest_step() if checkpointer is not None else None
      raise NonFiniteLossError(
          f"the loss became NaN or infinite at step {bad + 1}; training stopped. "
          + (f"The last good checkpoint (step {last}) is kept." if last is not None else "No checkpoint was written."))

  source = _Batches(train_data, step, total)
  try:
    with _stop_on_signals() as signals:
      for epoch in range(step // steps_per_epoch, math.ceil(total / steps_per_epoch)):
        state = train_step.reset(state)
        first = epoch * steps_per_epoch
        epoch_steps = min(steps_per_epoch, total - first)
        bar = tqdm(total=epoch_steps, initial=step - first, desc=f"epoch {epoch + 1}", disable=not progress,
                   dynamic_ncols=True, leave=True)
        start, seen, results = time.perf_counter(), 0, {}
        batches = source.epoch(epoch, step - first, epoch_steps)
        for batch in prefetch(batches, mesh=mesh):
          state, results = train_step(state, batch)
          step += 1
          seen += len(jax.tree.leaves(batch)[0])
          if step % log_every == 0 or step == first + epoch_steps:
            check_finite(state)
            rate = seen / (time.perf_counter() - start)
            bar.set_postfix({**{k: f"{v:.4f}" for k, v in _floats(results).items()}, "img/s": f"{rate:.0f}"})
          bar.update(1)
          if signals:
            bar.close()
            check_finite(state)
            save()
            history.stopped_by = signals[0]
            return state, history
        bar.close()
        check_finite(state)
        logs = _floats(results)
        logs["time_s"] = time.perf_counter() - start
        logs["images_per_s"] = seen / logs["time_s"]
        if eval_step is not None:
          logs.update({f"val_{k}": v for k, v in evaluate(state, eval_step, validation_data, mesh).items()})
        history.append(epoch, logs)
        if progress:
          print(f"epoch {epoch + 1}: " + "  ".join(f"{k} {v:.4f}" for k, v in logs.items()))
        save(logs if best_metric is not None else None)
        stop = [callback.on_epoch_end(epoch, logs, state) for callback in callbacks]
        if any(stop):
          history.stopped_by = "callback"
          break
    save(history.last if best_metric is not None and history.epochs else None)
  finally:
    source.close()
    if checkpointer is not None:
      checkpointer.wait()
      checkpointer.close()
  for callback in callbacks:
    callback.on_train_end(history)
  return state, history
