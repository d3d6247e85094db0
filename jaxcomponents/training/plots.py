"""Learning curves: one panel per metric, every run on the same axes, drawn without touching pyplot.

In each panel a run (an RNN cell, a training phase, or the one run of a plain
history) has its own colour; its training curve is solid and its validation
curve dashed. A history's keys name the run, the split and the metric:
`"loss"`, `"val_loss"` (one unnamed run), `"lstm/val_loss"` (run `lstm`), or
`"lstm_val_loss"`, `"lstm_loss"` (run `lstm`, found from its `val_` or `loss`
keys).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from jaxcomponents import extras

_TIMING = ("time_s", "wall_s", "seconds")  # and every name ending in "_per_s" or "time_s"


@dataclasses.dataclass(frozen=True)
class Curve:
  """One line of a panel: the history `key` it draws, its `run` ("" for an unnamed one), and its split."""

  key: str
  run: str
  validation: bool


@dataclasses.dataclass(frozen=True)
class Panel:
  """One axes: a metric and its curves, training before validation within each run."""

  metric: str
  curves: tuple[Curve, ...]

  @property
  def runs(self) -> list[str]:
    return list(dict.fromkeys(curve.run for curve in self.curves))


def _is_timing(metric: str) -> bool:
  return metric in _TIMING or metric.endswith(("_per_s", "time_s"))


def _is_rate(metric: str) -> bool:
  return metric.startswith(("learning_rate", "lr"))


def split_key(key: str, prefixes: Sequence[str] = ()) -> tuple[str, bool, str]:
  """`(run, validation, metric)` of one history key; `prefixes` are the run prefixes that end in "_".

  Example:
    >>> split_key("val_loss"), split_key("gru/val_accuracy"), split_key("lstm_loss", ["lstm_"])
    (('', True, 'loss'), ('gru', True, 'accuracy'), ('lstm', False, 'loss'))
  """
  run, slash, name = key.rpartition("/")
  if not slash:
    run = next((p for p in sorted(prefixes, key=len, reverse=True) if p and key.startswith(p) and key != p), "")
    name = key[len(run):]
    run = run[:-1]
  if name.startswith("val_") and len(name) > 4:
    return run, True, name[4:]
  return run, False, name


def _run_prefixes(keys: Sequence[str]) -> list[str]:
  """The run prefixes of keys without "/": what precedes "val_" (`"lstm_val_loss"` -> `"lstm_"`) and, in a
  history without a plain "loss", what precedes "_loss" (`"lstm_loss"` -> `"lstm_"`)."""
  prefixes = set()
  for key in keys:
    if "/" in key:
      continue
    at = key.find("_val_")
    if at > 0:
      prefixes.add(key[:at + 1])
    if "loss" not in keys and key.endswith("_loss") and not key.endswith("_val_loss") and len(key) > 5:
      prefixes.add(key[:-4])
  return sorted(prefixes)


def _as_series(history) -> dict[str, tuple[list[int], list[float]]]:
  """`key -> (epochs counted from 1, values)` of a History (`.history`, `.epoch` or `.epochs`) or a dict."""
  logs = history.history if hasattr(history, "history") else history
  if not isinstance(logs, Mapping):
    raise TypeError(f"plot_history takes a History (with .history) or a dict of lists; got {type(history).__name__}.")
  epochs = getattr(history, "epoch", None)
  if epochs is None:
    epochs = getattr(history, "epochs", None)
  series = {}
  for key, values in logs.items():
    values = [float(v) for v in values]
    shared = list(epochs) if epochs is not None else []
    x = [int(e) + 1 for e in shared[-len(values):]] if len(shared) >= len(values) else list(range(1, len(values) + 1))
    series[key] = (x, values)
  return series


def _constant(values: list[float]) -> bool:
  return len({v for v in values if v == v}) <= 1


def curve_panels(history) -> list[Panel]:
  """The panels `plot_history` draws: one per metric, loss first and learning rates last.

  Every run's curves of a metric share its panel. Timing (`time_s`,
  `images_per_s`, ...) is no curve, and a panel whose every curve is flat is
  left out (a fixed learning rate; one epoch's points are kept, rates excepted).

  Example:
    >>> panels = curve_panels({"lstm_loss": [2, 1], "lstm_val_loss": [2, 1.5], "gru_loss": [3, 2],
    ...                        "gru_val_loss": [3, 2.5], "lstm_learning_rate": [1e-3, 1e-3], "lstm_time_s": [4, 3]})
    >>> [(p.metric, p.runs, [c.key for c in p.curves]) for p in panels]
    [('loss', ['lstm', 'gru'], ['lstm_loss', 'lstm_val_loss', 'gru_loss', 'gru_val_loss'])]
  """
  series = _as_series(history)
  prefixes = _run_prefixes(list(series))
  by_metric: dict[str, list[Curve]] = {}
  for key in series:
    run, validation, metric = split_key(key, prefixes)
    if not _is_timing(metric) and series[key][1]:
      by_metric.setdefault(metric, []).append(Curve(key, run, validation))
  runs = list(dict.fromkeys(curve.run for curves in by_metric.values() for curve in curves))
  panels = []
  for metric, curves in by_metric.items():
    flat = all(_constant(series[c.key][1]) for c in curves)
    one_epoch = all(len(series[c.key][1]) == 1 for c in curves)
    if flat and (_is_rate(metric) or not one_epoch):
      continue
    curves.sort(key=lambda c: (runs.index(c.run), c.validation))
    panels.append(Panel(metric, tuple(curves)))
  order = lambda panel: (0 if panel.metric == "loss" else 2 if _is_rate(panel.metric) else 1)
  return sorted(panels, key=order)  # stable: metrics otherwise in the history's order


def plot_history(history, path: str, columns: int = 3, title: str | None = None) -> None:
  """Saves learning curves as a PNG: the `curve_panels`, at most `columns` a row, one legend for the figure.

  `history`: a History (`.history`, a dict of lists, and `.epoch`, Keras's
  epoch indices, or `.epochs`) or a plain `{key: [values]}` dict (epochs 1, 2,
  ... per key). Drawn on a `matplotlib.figure.Figure` of its own, so the
  process's matplotlib backend and pyplot state are left as they are. Nothing
  is written when there is nothing to draw.
  """
  figure = extras.require("matplotlib.figure", "plots", "plotting learning curves")
  ticker = extras.require("matplotlib.ticker", "plots", "plotting learning curves")
  lines = extras.require("matplotlib.lines", "plots", "plotting learning curves")
  panels = curve_panels(history)
  if not panels:
    return
  series = _as_series(history)
  runs = list(dict.fromkeys(run for panel in panels for run in panel.runs))
  colour = {run: f"C{i % 10}" for i, run in enumerate(runs)}
  has_validation = any(c.validation for panel in panels for c in panel.curves)
  named = runs != [""]
  handles = [lines.Line2D([], [], color=colour[run], linewidth=2.5, label=run) for run in runs if named]
  grey = "0.3" if named else colour[""]
  handles.append(lines.Line2D([], [], color=grey, linestyle="-", label="training"))
  if has_validation:
    handles.append(lines.Line2D([], [], color=grey, linestyle="--", label="validation"))
  rows, cols = math.ceil(len(panels) / columns), min(columns, len(panels))
  legend_width = sum(0.8 + 0.085 * len(handle.get_label()) for handle in handles) + 0.4
  fig = figure.Figure(figsize=(max(4.6 * cols, legend_width), 3.3 * rows + (0.75 if title else 0.4)),
                      layout="constrained")
  axes = fig.subplots(rows, cols, squeeze=False).ravel()
  for ax, panel in zip(axes, panels):
    for curve in panel.curves:
      x, values = series[curve.key]
      ax.plot(x, values, color=colour[curve.run], linestyle="--" if curve.validation else "-",
              marker="o" if len(values) <= 20 else None, markersize=3, linewidth=1.5)
    if _is_rate(panel.metric):
      ax.set_yscale("log")  # reductions by a factor are equal steps
    ax.set_title(panel.metric)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
  for ax in axes[len(panels):]:
    ax.set_visible(False)
  legend = fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), frameon=False, title=title)
  legend.get_title().set_fontsize("large")  # the figure's title, above the legend (a suptitle would overlap it)
  fig.savefig(path, dpi=100)
