"""Learning curves: one panel per metric, training and validation overlaid, drawn without touching pyplot."""

from __future__ import annotations

import math

from jaxcomponents import extras

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


def plot_history(history, path: str, columns: int = 3) -> None:
  """Saves learning curves: one panel per metric (at most `columns` a row), training and validation overlaid.

  Drawn on a `matplotlib.figure.Figure` of its own, so the process's matplotlib
  backend and pyplot state are left as they are.
  """
  figure = extras.require("matplotlib.figure", "plots", "plotting learning curves")
  ticker = extras.require("matplotlib.ticker", "plots", "plotting learning curves")
  is_rate = lambda title: title.rpartition("/")[2].startswith("learning_rate")
  constant = lambda key: key is not None and len(set(history.history[key])) == 1
  panels = [(title, train, val) for title, train, val in curve_panels(history.history)  # a fixed rate: no panel
            if not (is_rate(title) and constant(train))]
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
    if is_rate(title):
      ax.set_yscale("log")  # reductions by a factor are equal steps
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train is not None and val is not None:
      ax.legend()
  for ax in axes[len(panels):]:
    ax.set_visible(False)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
