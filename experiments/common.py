"""What every experiment script shares: arguments from a config dataclass, run folders, result files."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
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


def option(default: Any, help: str, *, choices: Sequence[Any] | None = None, names_run: bool = True):
  """A config field: its default, its `--help` line, its allowed values, and whether it names the run folder.

  Example:
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Config:
    ...   epochs: int = option(5, "passes over the training data")
  """
  return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "names_run": names_run})


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


def parse_config(config_cls, argv=None, description: str | None = None):
  """Builds a `--flag` per config field (type from the default, help and choices from `option`); returns the config.

  `--help` lists every flag with its default and allowed values; a value outside them exits with argparse's
  message naming the flag, the value and the choices.
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
    parser.add_argument(flag, type=_boolean if boolean else type(default), default=default,
                        choices=meta.get("choices"), metavar="{true,false}" if boolean else None,
                        help=meta.get("help", " "))
  return config_cls(**vars(parser.parse_args(argv)))


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

  `metrics.json` also records `jaxcomponents.cpu.status()`: the CPU formulations, the native library, tuning.
  """
  import jaxcomponents.cpu

  with open(os.path.join(path, "metrics.json"), "w") as f:
    json.dump({**metrics, "jaxcomponents_cpu": jaxcomponents.cpu.status()}, f, indent=2)
  if history:
    keys = list(history)
    with open(os.path.join(path, "history.csv"), "w", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(["epoch", *keys])
      for epoch, row in enumerate(zip(*(history[k] for k in keys))):
        writer.writerow([epoch, *row])
    from jaxcomponents.training.callbacks import History
    from jaxcomponents.training.plots import plot_history

    curves = History()
    for epoch, row in enumerate(zip(*(history[k] for k in keys))):
      curves.append(epoch, dict(zip(keys, row)))
    plot_history(curves, os.path.join(path, "learning_curves.png"))


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
