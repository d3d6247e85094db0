"""Callbacks for `fit`: early stopping, CSV and TensorBoard logs, learning-curve plots."""

from __future__ import annotations

import csv
import math
import os
from typing import Any

import jax

from jaxcomponents import extras
from jaxcomponents.errors import check_choice


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


class EarlyStopping(Callback):
  """Stops when `monitor` has not improved by `min_delta` for `patience` epochs, as Keras's `EarlyStopping`.

  With `restore_best_weights=True`, a stopped run returns the parameters and
  batch statistics of its best epoch (kept as a copy on the device, as Keras
  keeps them); a run that was not stopped keeps its last weights, as in Keras.

  Example:
    >>> stop = EarlyStopping("val_accuracy", patience=2, restore_best_weights=True)
  """

  def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0, mode: str = "auto",
               restore_best_weights: bool = False):
    check_choice("mode", mode, ("auto", "min", "max"))
    if mode == "auto":
      mode = "max" if any(w in monitor for w in ("acc", "auc", "precision", "recall", "iou")) else "min"
    self.monitor, self.patience, self.min_delta, self.mode = monitor, patience, abs(min_delta), mode
    self.restore_best_weights = restore_best_weights
    self.best, self.wait = math.inf if mode == "min" else -math.inf, 0
    self.best_weights, self.best_epoch, self.stopped = None, None, False

  def on_epoch_end(self, epoch, logs, state):
    if self.monitor not in logs:
      raise ValueError(f"EarlyStopping monitor={self.monitor!r} is not among the logs {sorted(logs)}.")
    value = logs[self.monitor]
    better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
    if better:
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
  """Writes every epoch's logs as TensorBoard scalars under `log_dir` (needs `tensorboardX`)."""

  def __init__(self, log_dir: str | os.PathLike):
    tensorboardx = extras.require("tensorboardX", "tensorboard", "the TensorBoard callback")
    self.writer = tensorboardx.SummaryWriter(os.fspath(log_dir))

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
    plot_history(history, self.path)


_NOT_CURVES = ("time_s", "images_per_s")


def curve_panels(keys) -> list[tuple[str, str | None, str | None]]:
  """`(title, training key, validation key)` per panel: each metric once, its `val_` twin beside it.

  Keys may carry a prefix (`"phase_1/val_loss"` pairs with `"phase_1/loss"`);
  time and throughput are not curves.

  Example:
    >>> curve_panels(["loss", "accuracy", "time_s", "val_loss", "a/loss", "a/val_loss"])
    [('loss', 'loss', 'val_loss'), ('accuracy', 'accuracy', None), ('a/loss', 'a/loss', 'a/val_loss')]
  """
  keys = list(keys)
  panels, seen = [], set()
  for key in keys:
    prefix, _, name = key.rpartition("/")
    if name in _NOT_CURVES:
      continue
    base = name[4:] if name.startswith("val_") else name
    title = f"{prefix}/{base}" if prefix else base
    if title in seen:
      continue
    seen.add(title)
    train, val = title, f"{prefix}/val_{base}" if prefix else f"val_{base}"
    panels.append((title, train if train in keys else None, val if val in keys else None))
  return panels


def plot_history(history: History, path: str, columns: int = 3) -> None:
  """Saves learning curves: one panel per metric (at most `columns` a row), training and validation overlaid.

  Drawn on a `matplotlib.figure.Figure` of its own, so the process's matplotlib
  backend and pyplot state are left as they are.
  """
  figure = extras.require("matplotlib.figure", "plots", "plotting learning curves")
  ticker = extras.require("matplotlib.ticker", "plots", "plotting learning curves")
  panels = curve_panels(history.history)
  if not panels or not history.epochs:
    return
  rows, cols = math.ceil(len(panels) / columns), min(columns, len(panels))
  fig = figure.Figure(figsize=(4.2 * cols, 3.2 * rows))
  axes = fig.subplots(rows, cols, squeeze=False).ravel()
  epochs = [e + 1 for e in history.epochs]
  for ax, (title, train, val) in zip(axes, panels):
    for key, label in ((train, "training"), (val, "validation")):
      if key is not None:
        values = history.history[key]
        ax.plot(epochs[-len(values):], values, marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
  for ax in axes[len(panels):]:
    ax.set_visible(False)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
