"""sequence: LSTM vs GRU vs simple RNN classifying images read row by row.

Each image is a sequence: one row per time step (28 steps x 28 features on
MNIST/Fashion-MNIST, 8 x 8 on the embedded digits). The same Recurrent(64)
-> Dense(10, softmax) model is trained with each cell (Adam, 1e-3), and a
table compares test accuracy, wall time and throughput.

Run:
  python -m experiments.sequence                          # embedded digits, offline
  python -m experiments.sequence --dataset fashion_mnist --framework keras
Writes runs/<name>/metrics.json (one entry per cell), history.csv and learning curves (every cell on each panel).
"""

from __future__ import annotations

import dataclasses
import os


from experiments.common import (Timer, load_digit_images, option, parse_config, print_table, run_dir, run_name,
                                run_script, write_results)

CELLS = ("lstm", "gru", "rnn")


@dataclasses.dataclass
class Config:
  dataset: str = option("digits", "the embedded digits (offline), or MNIST / Fashion-MNIST IDX files",
                        choices=("digits", "mnist", "fashion_mnist"))
  framework: str = option("jax", "jaxcomponents, or the Keras twin", choices=("jax", "keras"))
  cells: str = option("lstm,gru,rnn", "the recurrent cells to compare", each=CELLS)
  units: int = option(64, "units of the recurrent layer", at_least=1)
  epochs: int = option(0, "passes over the training data (0: 3 on MNIST-size data, 30 on the embedded digits)",
                      at_least=0)
  batch_size: int = option(128, "sequences per step", at_least=1)
  learning_rate: float = option(1e-3, "Adam's learning rate", above=0)
  seed: int = option(0, "seed of the initial weights and the shuffling", at_least=0)
  limit: int = option(0, "at most this many training examples (0: all)", at_least=0)
  name: str = option("", "the run folder's name ('': the experiment, then each setting that differs from its default)")
  runs_dir: str = option("runs", "where run folders go")


def run_jax(config, cell, x, y, xt, yt, path):
  import flax.linen as nn

  from jaxcomponents import optimizers
  from jaxcomponents.data import ArrayDataset
  from jaxcomponents.layers import Dense, Recurrent
  from jaxcomponents.training import TrainState, fit, make_eval_step, make_train_step

  class RowReader(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=False):
      return Dense(10, activation="softmax")(Recurrent(config.units, cell=cell)(x, train=train), train=train)

  metrics = ["sparse_categorical_accuracy"]
  state = TrainState.create(RowReader(), optimizers.get("adam", learning_rate=config.learning_rate), x[:1],
                            seed=config.seed)
  with Timer() as timer:
    state, history = fit(state, make_train_step("sparse_categorical_crossentropy", metrics),
                         ArrayDataset(x, y, config.batch_size, seed=config.seed, num_classes=10),
                         epochs=config.epochs, eval_step=make_eval_step("sparse_categorical_crossentropy", metrics),
                         validation_data=ArrayDataset(xt, yt, 512, shuffle=False),
                         log_dir=os.path.join(path, cell), verbose="auto")
  return history.history["val_sparse_categorical_accuracy"][-1], timer.seconds, history.history


def run_keras(config, cell, x, y, xt, yt, path):
  os.environ.setdefault("KERAS_BACKEND", "jax")
  import keras

  keras.utils.set_random_seed(config.seed)
  layer = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}[cell]
  model = keras.Sequential([keras.Input(x.shape[1:]), layer(config.units), keras.layers.Dense(10, activation="softmax")])
  model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="sparse_categorical_crossentropy",
                metrics=["sparse_categorical_accuracy"])
  with Timer() as timer:
    history = model.fit(x, y, batch_size=config.batch_size, epochs=config.epochs, validation_data=(xt, yt),
                        verbose=2)
  return (float(history.history["val_sparse_categorical_accuracy"][-1]), timer.seconds,
          {k: [float(v) for v in vs] for k, vs in history.history.items()})


def main(argv=None) -> dict:
  config = parse_config(Config, argv, __doc__.splitlines()[0])
  cells = config.cells.split(",")
  config.name = config.name or run_name("sequence", config)
  config.epochs = config.epochs or (30 if config.dataset == "digits" else 3)
  x, y, xt, yt = load_digit_images(config.dataset, config.seed)
  x, xt = x[..., 0], xt[..., 0]  # (N, rows, cols): rows are the time steps
  if config.limit:
    x, y = x[:config.limit], y[:config.limit]
  path = run_dir(config)
  run = run_jax if config.framework == "jax" else run_keras
  rows, history = [], {}
  for cell in cells:
    accuracy, seconds, cell_history = run(config, cell, x, y, xt, yt, path)
    rows.append({"cell": cell, "test_accuracy": float(accuracy), "wall_s": seconds,
                 "images_per_s": len(x) * config.epochs / seconds})
    history.update({f"{cell}/{k}": v for k, v in cell_history.items()})
  metrics = {"experiment": "sequence", "dataset": config.dataset, "framework": config.framework, "cells": rows,
             "test_accuracy": max(r["test_accuracy"] for r in rows), "config": dataclasses.asdict(config)}
  write_results(path, metrics, history)
  print_table(rows)
  print(f"-> {os.path.join(path, 'metrics.json')}")
  return metrics


if __name__ == "__main__":
  run_script(main)
