"""What every experiment script shares: arguments from a config dataclass, run folders, result files."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np


def run_script(main) -> None:
  """The entry point of an experiment script: `jaxcomponents.cpu.tune()` first, then `main()`.

  `tune()` changes the whole process (an XLA flag, glibc's malloc, JAX's CPU
  dispatch), the Keras twins' runs in it included; `metrics.json` records what
  it applied. `main(argv)` called from Python (the tests) leaves the process alone.
  """
  import jaxcomponents.cpu

  jaxcomponents.cpu.tune()
  main()


def option(default: Any, help: str, *, choices: Sequence[Any] | None = None, at_least: float | None = None,
           above: float | None = None, below: float | None = None, each: Sequence[Any] | type | None = None,
           names_run: bool = True):
  """A config field: its default, its `--help` line, its allowed values, and whether it names the run folder.

  Allowed values: `choices`; bounds on a number (`at_least`, `above`, `below`); or for a comma-separated text,
  `each`: the values each item may take, or `int` (each item a whole number, within the bounds). A flag outside
  them is refused when the arguments are parsed, before anything runs, naming the flag, the value and what is allowed.

  Example:
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Config:
    ...   epochs: int = option(5, "passes over the training data", at_least=1)
    ...   cells: str = option("lstm,gru", "the cells, comma-separated", each=("lstm", "gru", "rnn"))
  """
  return dataclasses.field(default=default, metadata={
      "help": help, "choices": choices, "at_least": at_least, "above": above, "below": below, "each": each,
      "names_run": names_run})


def _metadata(config_cls, name: str) -> dict[str, Any]:
  """A field's `option` metadata, from the nearest class that declares it (a subclass may only change defaults)."""
  for cls in config_cls.__mro__:
    field = getattr(cls, "__dataclass_fields__", {}).get(name)
    if field is not None and field.metadata:
      return dict(field.metadata)
  return {}


def _boolean(text: str) -> bool:
  if text.lower() in ("1", "true", "yes"):
    return True
  if text.lower() in ("0", "false", "no"):
    return False
  raise argparse.ArgumentTypeError(f"{text!r} is not allowed; expected true or false")


def _bounds(meta: dict[str, Any]) -> str:
  """The bounds of `meta` in words ("" when none): ">= 1", "> 0 and < 1"."""
  parts = [f"{sign} {meta[key]:g}" for key, sign in (("at_least", ">="), ("above", ">"), ("below", "<"))
           if meta.get(key) is not None]
  return " and ".join(parts)


def _within(value: float, meta: dict[str, Any]) -> bool:
  return ((meta.get("at_least") is None or value >= meta["at_least"])
          and (meta.get("above") is None or value > meta["above"])
          and (meta.get("below") is None or value < meta["below"]))


def _allowed(default: Any, meta: dict[str, Any]) -> str:
  """What a flag allows, in words, for `--help` and the refusals (choices are argparse's own: "")."""
  each, bounds = meta.get("each"), _bounds(meta)
  if each is int:
    return f"comma-separated whole numbers {bounds}".rstrip()
  if each is not None:
    return f"comma-separated, each one of {', '.join(map(str, each))}, none twice"
  kind = {int: "a whole number", float: "a finite number"}.get(type(default))
  return f"{kind} {bounds}" if kind and bounds else ""


def _parser_type(default: Any, meta: dict[str, Any]):
  """argparse's `type=` for a field: converts the text and refuses what `option` does not allow."""
  if isinstance(default, bool):
    return _boolean
  base, each, what = type(default), meta.get("each"), _allowed(default, meta)

  def convert(text: str):
    if each is not None:
      items = [item.strip() for item in text.split(",")]
      if each is int:
        if not all(re.fullmatch(r"[+-]?\d+", item) and _within(int(item), meta) for item in items):
          raise argparse.ArgumentTypeError(f"{text!r} is not allowed; expected {what}")
      elif any(item not in each for item in items) or len(set(items)) < len(items):
        wrong = [item for item in items if item not in each]
        reason = f"{wrong[0]!r} is not one of them" if wrong else "one is named twice"
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed ({reason}); expected {what}")
      return ",".join(items)
    value = base(text)  # a ValueError: argparse's "invalid int value: 'x'"
    if base is float and not math.isfinite(value) or what and not _within(value, meta):
      raise argparse.ArgumentTypeError(f"{text!r} is not allowed; expected {what or 'a finite number'}")
    return value

  convert.__name__ = base.__name__  # argparse names the type in "invalid int value"
  return convert


def parse_config(config_cls, argv=None, description: str | None = None):
  """Builds a `--flag` per config field (type from the default, help and allowed values from `option`); returns
  the config.

  `--help` lists every flag with its default and allowed values. A value outside them, or settings the config's
  `check()` refuses together (a `ValueError`), exits with a usage error (status 2) naming the flag, the value and
  what is allowed, before anything runs.
  """
  module = config_cls.__module__
  if module == "__main__":  # run with `python -m experiments.NAME`
    module = getattr(sys.modules["__main__"].__spec__, "name", module)
  parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  for field in dataclasses.fields(config_cls):
    default, meta = field.default, _metadata(config_cls, field.name)
    flag = f"--{field.name.replace('_', '-')}"
    boolean = isinstance(default, bool)
    what = _allowed(default, meta)  # beside the default (argparse %-formats help: a "%" of the text is doubled)
    text = meta.get("help", " ").replace("%", "%%") + (f" (default: %(default)s; {what})" if what else "")
    parser.add_argument(flag, type=_parser_type(default, meta), default=default, choices=meta.get("choices"),
                        metavar="{true,false}" if boolean else None, help=text)
  config = config_cls(**vars(parser.parse_args(argv)))
  check = getattr(config, "check", None)
  if check is not None:
    try:
      check()
    except ValueError as e:
      parser.error(str(e))
  return config


def run_name(experiment: str, config, leading: Sequence[str] = ("dataset", "framework")) -> str:
  """The run folder's name: the experiment, the `leading` fields' values, then every other field set otherwise than
  its default (`name=value`), except the fields whose `option` says they do not name the run.

  Example:
    >>> @dataclasses.dataclass
    ... class Config:
    ...   dataset: str = option("digits", "data")
    ...   epochs: int = option(5, "passes")
    ...   workers: int = option(0, "processes", names_run=False)
    >>> run_name("demo", Config(epochs=2, workers=4), leading=("dataset",))
    'demo-digits-epochs=2'
  """
  parts = [experiment] + [os.path.basename(str(getattr(config, key)).rstrip("/")) for key in leading]
  for field in dataclasses.fields(config):
    if field.name in (*leading, "name", "runs_dir") or not _metadata(type(config), field.name).get("names_run", True):
      continue
    value = getattr(config, field.name)
    if value != field.default:
      parts.append(f"{field.name}={os.path.basename(str(value).rstrip('/'))}")
  return re.sub(r"[^\w.,=+-]+", "_", "-".join(parts))


def load_digit_images(dataset: str, seed: int = 0):
  """Grey images as float32 (N, H, W, 1) in [0, 1] with integer labels, the official train/test split.

  `dataset`: "digits" (embedded, 8x8), "mnist" or "fashion_mnist" (28x28, local files).
  """
  from jaxcomponents.data import load_digits, load_idx_dataset

  if dataset == "digits":
    (x, y), (xt, yt) = load_digits(seed=seed)
  elif dataset in ("mnist", "fashion_mnist"):
    (x, y), (xt, yt) = load_idx_dataset(dataset)
  else:
    raise ValueError(f"dataset={dataset!r} is not allowed; expected one of 'digits', 'mnist', 'fashion_mnist'.")
  prep = lambda a: (a.astype(np.float32) / 255.0)[..., None]
  return prep(x), y.astype(np.int32), prep(xt), yt.astype(np.int32)


def run_dir(config) -> str:
  path = os.path.join(config.runs_dir, config.name)
  os.makedirs(path, exist_ok=True)
  return path


def write_results(path: str, metrics: dict[str, Any], history: dict[str, list[float]] | None = None) -> None:
  """`metrics.json` and, with a history, `history.csv` (one row per epoch) and `learning_curves.png`.

  History keys may name a run before a "/" (`"lstm/val_loss"`, `"0-4/loss"`): the curves of every run then share
  each metric's panel, one colour per run (`jaxcomponents.training.plots`). `metrics.json` also records
  `jaxcomponents.cpu.status()`: the CPU formulations, the native library, tuning.
  """
  import jaxcomponents.cpu

  with open(os.path.join(path, "metrics.json"), "w") as f:
    json.dump({**metrics, "jaxcomponents_cpu": jaxcomponents.cpu.status()}, f, indent=2)
  if history:
    keys = list(history)
    with open(os.path.join(path, "history.csv"), "w", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(["epoch", *keys])
      for epoch, row in enumerate(itertools.zip_longest(*(history[k] for k in keys), fillvalue="")):
        writer.writerow([epoch, *row])
    from jaxcomponents.training.plots import plot_history

    about = [os.path.basename(str(metrics[k]).rstrip("/")) for k in ("dataset", "framework") if metrics.get(k)]
    title = str(metrics.get("experiment", os.path.basename(path))) + (f" ({', '.join(about)})" if about else "")
    plot_history(history, os.path.join(path, "learning_curves.png"), title=title)


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str], path: str, title: str) -> None:
  """Saves a confusion-matrix PNG: colours are each true class's fractions (rows sum to 1), cells show counts too."""
  from matplotlib.figure import Figure

  n = len(labels)
  matrix = np.zeros((n, n), int)
  np.add.at(matrix, (y_true, y_pred), 1)
  fractions = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
  fig = Figure(figsize=(1.6 + 0.75 * n, 1.0 + 0.7 * n))
  ax = fig.subplots()
  image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
  fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
  for i in range(n):
    for j in range(n):
      ax.text(j, i, f"{matrix[i, j]}\n{fractions[i, j]:.0%}", ha="center", va="center", fontsize=7,
              color="white" if fractions[i, j] > 0.5 else "black")
  ax.set_xticks(range(n), labels)
  ax.set_yticks(range(n), labels)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def print_table(rows: list[dict[str, Any]]) -> None:
  """A plain aligned table."""
  if not rows:
    return
  keys = list(rows[0])
  cells = [[f"{r[k]:.4f}" if isinstance(r[k], float) else str(r[k]) for k in keys] for r in rows]
  widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
  print("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
  for c in cells:
    print("  ".join(v.ljust(w) for v, w in zip(c, widths)))


class Timer:
  def __enter__(self):
    self.start = time.perf_counter()
    return self

  def __exit__(self, *exc):
    self.seconds = time.perf_counter() - self.start
