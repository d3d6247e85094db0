"""Callbacks for `fit`: early stopping, learning-rate reduction, CSV and TensorBoard logs, learning curves."""

from __future__ import annotations

import csv
import math
import os
from typing import Any

import jax
import numpy as np

from jaxcomponents import extras, optimizers
from jaxcomponents.errors import check_choice, check_positive_int, check_rate


class Callback:
  """Hooks called by `fit`; `on_epoch_end` returning True stops training.

  A callback that adds entries to the epoch's `logs` names them in `adds_logs`,
  so monitors of them pass `fit`'s check before the first step.
  """

  adds_logs: tuple[str, ...] = ()

  def on_train_begin(self, state: Any) -> None:
    pass

  def on_epoch_end(self, epoch: int, logs: dict[str, float], state: Any) -> bool | None:
    return None

  def on_train_end(self, history: "History") -> None:
    pass

  def next_epoch_state(self, state: Any) -> Any:
    """The state the next epoch starts from, given the one this epoch ended with (e.g. a new learning rate)."""
    return state

  def final_state(self, state: Any) -> Any:
    """The state `fit` returns, given the one training ended with (e.g. the best weights restored)."""
    return state


class History:
  """Per-epoch logs: `history.history["val_loss"]` is a list, like Keras's `History`."""

  def __init__(self):
    self.epochs: list[int] = []
    self.history: dict[str, list[float]] = {}
    self.stopped_by: str | None = None

  def append(self, epoch: int, logs: dict[str, float]) -> None:
    self.epochs.append(epoch)
    for key, value in logs.items():
      self.history.setdefault(key, []).append(value)

  @property
  def last(self) -> dict[str, float]:
    return {k: v[-1] for k, v in self.history.items()}


class _Monitor(Callback):
  """A callback watching one log for improvement, as Keras's `MonitorCallback`.

  In "auto" mode accuracy-like names (acc, auc, precision, recall, iou) are
  maximised and everything else minimised; an improvement must beat the best
  value by more than `min_delta`.
  """

  def __init__(self, monitor: str, mode: str, min_delta: float):
    check_choice("mode", mode, ("auto", "min", "max"))
    if mode == "auto":
      mode = "max" if any(w in monitor for w in ("acc", "auc", "precision", "recall", "iou")) else "min"
    self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
    self._forget_best()

  def _forget_best(self) -> None:
    self.best = math.inf if self.mode == "min" else -math.inf

  def _value(self, logs: dict[str, float]) -> float:
    if self.monitor not in logs:
      raise ValueError(f"{type(self).__name__} monitor={self.monitor!r} is not among the logs {sorted(logs)}.")
    return logs[self.monitor]

  def _improves(self, value: float) -> bool:
    if self.mode == "min":
      return value < self.best - self.min_delta
    return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
  """Stops when `monitor` has not improved by `min_delta` for `patience` epochs, as Keras's `EarlyStopping`.

  With `restore_best_weights=True`, a stopped run returns the parameters and
  batch statistics of its best epoch (kept as a copy on the device, as Keras
  keeps them); a run that was not stopped keeps its last weights, as in Keras.

  Example:
    >>> stop = EarlyStopping("val_accuracy", patience=2, restore_best_weights=True)
  """

  def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0, mode: str = "auto",
               restore_best_weights: bool = False):
    check_positive_int("patience", patience, allow_zero=True)
    super().__init__(monitor, mode, min_delta)
    self.patience, self.restore_best_weights, self.wait = patience, restore_best_weights, 0
    self.best_weights, self.best_epoch, self.stopped = None, None, False

  def on_epoch_end(self, epoch, logs, state):
    value = self._value(logs)
    if self._improves(value):
      self.best, self.wait, self.best_epoch = value, 0, epoch
      if self.restore_best_weights:  # a copy: the step donates the state it is given
        self.best_weights = jax.tree.map(lambda a: a.copy(), (state.params, state.batch_stats))
      return False
    self.wait += 1
    self.stopped = self.wait >= self.patience
    return self.stopped

  def final_state(self, state):
    if self.restore_best_weights and self.stopped and self.best_weights is not None:
      params, batch_stats = self.best_weights
      return state.replace(params=params, batch_stats=batch_stats)
    return state


class ReduceLROnPlateau(_Monitor):
  """Multiplies the learning rate by `factor` when `monitor` stalls for `patience` epochs, as Keras's.

  After a reduction, `cooldown` epochs pass before stalls count again; the
  rate never goes below `min_lr`. The optimizer must hold a constant learning
  rate in its state, as `jaxcomponents.optimizers.get`'s do (checked before
  the first step); the rate is saved in checkpoints with the optimizer state,
  while the callback's own counters start afresh on resume, as in Keras.

  Example:
    >>> reduce = ReduceLROnPlateau("val_loss", factor=0.5, patience=2, min_lr=1e-5)
  """

  def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
               mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
    check_rate("factor", factor)
    check_positive_int("patience", patience, allow_zero=True)
    check_positive_int("cooldown", cooldown, allow_zero=True)
    check_choice("verbose", verbose, (0, 1))
    if isinstance(min_lr, bool) or not isinstance(min_lr, (int, float)) or not 0.0 <= min_lr < math.inf:
      raise ValueError(f"min_lr={min_lr!r} is not allowed; expected a finite float >= 0.")
    super().__init__(monitor, mode, min_delta)
    self.factor, self.patience, self.verbose, self.cooldown, self.min_lr = factor, patience, verbose, cooldown, min_lr
    self.wait, self.cooldown_left, self.reduce, self.epoch = 0, 0, False, 0

  def on_train_begin(self, state):
    optimizers.set_learning_rate(state.opt_state, lambda old: old)  # raises if the rate cannot be set
    self._forget_best()
    self.wait, self.cooldown_left = 0, 0

  def on_epoch_end(self, epoch, logs, state):
    value, self.epoch = self._value(logs), epoch
    if self.cooldown_left > 0:
      self.cooldown_left -= 1
      self.wait = 0
    if self._improves(value):
      self.best, self.wait = value, 0
    elif self.cooldown_left == 0:
      self.wait += 1
      self.reduce = self.wait >= self.patience
    return False

  def next_epoch_state(self, state):
    if not self.reduce:
      return state
    self.reduce, changed = False, []

    def lower(old):
      if old <= float(np.float32(self.min_lr)):
        return old
      new = max(old * self.factor, self.min_lr)
      changed.append(new)
      return new

    state = state.replace(opt_state=optimizers.set_learning_rate(state.opt_state, lower))
    if changed:
      self.cooldown_left, self.wait = self.cooldown, 0
      if self.verbose:
        print(f"Epoch {self.epoch + 1}: ReduceLROnPlateau reducing learning rate to {changed[0]}.", flush=True)
    return state


class CSVLogger(Callback):
  """Writes one row per epoch to `path` (`epoch` first, then every log).

  As Keras's `CSVLogger`, a new run replaces the file unless `append=True`
  (what `fit` passes when it resumes).
  """

  def __init__(self, path: str | os.PathLike, append: bool = False):
    self.path, self.append = os.fspath(path), append

  def on_train_begin(self, state):
    if not self.append and os.path.exists(self.path):
      os.remove(self.path)

  def on_epoch_end(self, epoch, logs, state):
    new = not os.path.exists(self.path)
    with open(self.path, "a", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=["epoch", *logs])
      if new:
        writer.writeheader()
      writer.writerow({"epoch": epoch, **logs})


class TensorBoard(Callback):
  """Writes every epoch's logs as TensorBoard scalars under `log_dir` (needs `tensorboardX`).

  As `CSVLogger`, a new run replaces the event files an earlier run left in
  `log_dir` unless `append=True` (what `fit` passes when it resumes).
  """

  def __init__(self, log_dir: str | os.PathLike, append: bool = False):
    self.tensorboardx = extras.require("tensorboardX", "tensorboard", "the TensorBoard callback")
    self.log_dir, self.append, self.writer = os.fspath(log_dir), append, None

  def on_train_begin(self, state):
    if not self.append and os.path.isdir(self.log_dir):
      for name in os.listdir(self.log_dir):
        if name.startswith("events.out.tfevents."):
          os.remove(os.path.join(self.log_dir, name))
    self.writer = self.tensorboardx.SummaryWriter(self.log_dir)

  def on_epoch_end(self, epoch, logs, state):
    for key, value in logs.items():
      self.writer.add_scalar(key, value, epoch)
    self.writer.flush()

  def on_train_end(self, history):
    self.writer.close()


class LearningCurves(Callback):
  """Plots every metric (and its `val_` twin) per epoch into one PNG at the end of training."""

  def __init__(self, path: str | os.PathLike):
    self.path = os.fspath(path)

  def on_train_end(self, history):
    from jaxcomponents.training.plots import plot_history  # pylint: disable=import-outside-toplevel

    plot_history(history, self.path)
