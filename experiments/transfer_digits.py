"""transfer_digits: the seed notes' Keras transfer example, with jaxcomponents or its Keras twin.

Train a small CNN on classes 0-4, freeze the convolutional layers, fine-tune
the dense layers on classes 5-9 (Adadelta, batch 128, 5 epochs each, as the
seed notes; Adadelta's learning rate is 1.0, the Keras 1 default the seed ran
with). The seed claims 99.8% and 99.2% on MNIST. The embedded digits have 1,797
images in all, so there the defaults are batch 32 and 20 epochs (about as many
steps as one MNIST epoch).

Run:
  python -m experiments.transfer_digits                       # embedded digits, offline (make demo)
  python -m experiments.transfer_digits --dataset fashion_mnist --framework keras
Writes runs/<name>/metrics.json (test_accuracy = phase 2), history.csv, learning curves (both phases on each
panel) and confusion matrices.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from experiments.common import (Timer, load_digit_images, option, parse_config, plot_confusion, print_table, run_dir,
                                run_name, run_script, write_results)


@dataclasses.dataclass
class Config:
  dataset: str = option("digits", "the embedded digits (offline), or MNIST / Fashion-MNIST IDX files",
                        choices=("digits", "mnist", "fashion_mnist"))
  framework: str = option("jax", "jaxcomponents, or the Keras twin (any Keras 3 backend)", choices=("jax", "keras"))
  epochs: int = option(0, "epochs per phase (0: the seed's 5, or 20 on the 1,797 embedded digits)",
                      at_least=0)
  batch_size: int = option(0, "images per step (0: the seed's 128, or 32 on the embedded digits)",
                          at_least=0)
  learning_rate: float = option(1.0, "Adadelta's learning rate (1.0: the Keras 1 default the seed ran with)",
                                above=0)
  filters: int = option(32, "filters of each convolution", at_least=1)
  seed: int = option(0, "seed of the initial weights and the shuffling", at_least=0)
  limit: int = option(0, "at most this many training examples per phase (0: all)", at_least=0)
  name: str = option("", "the run folder's name ('': the experiment, then each setting that differs from its default)")
  runs_dir: str = option("runs", "where run folders go")


def phases(config: Config, x, y, xt, yt):
  """(name, train x, train y, test x, test y) for classes 0-4 and 5-9 (labels 0-4 in both)."""
  out = []
  for name, low in (("0-4", 0), ("5-9", 5)):
    train, test = (y >= low) & (y < low + 5), (yt >= low) & (yt < low + 5)
    xs, ys = x[train], y[train] - low
    if config.limit:
      xs, ys = xs[:config.limit], ys[:config.limit]
    out.append((name, xs, ys, xt[test], yt[test] - low))
  return out


def run_jax(config: Config, data):
  import flax.linen as nn

  from jaxcomponents import optimizers
  from jaxcomponents.data import ArrayDataset
  from jaxcomponents.layers import Convolution, Dense, Dropout
  from jaxcomponents.training import TrainState, fit, freeze, make_eval_step, make_train_step

  class SeedCNN(nn.Module):
    """conv-relu, conv-relu, max pool, dropout .25 | dense 128 relu, dropout .5, dense 5 softmax."""

    @nn.compact
    def __call__(self, x, *, train=False):
      x = Convolution(config.filters, 3, padding="VALID", activation="relu")(x, train=train)
      x = Convolution(config.filters, 3, padding="VALID", activation="relu", pool="max")(x, train=train)
      x = Dropout(0.25)(x, train=train)
      x = x.reshape((x.shape[0], -1))
      x = Dense(128, activation="relu", dropout=0.5)(x, train=train)
      return Dense(5, activation="softmax")(x, train=train)

  metrics = ["sparse_categorical_accuracy"]
  eval_step = make_eval_step("sparse_categorical_crossentropy", metrics)
  state, results = None, []
  for phase, (name, xs, ys, xts, yts) in enumerate(data):
    tx = optimizers.get("adadelta", learning_rate=config.learning_rate)
    if phase == 0:
      state = TrainState.create(SeedCNN(), tx, xs[:1], seed=config.seed)
    else:  # freeze the feature layers, fine-tune the classifier from where phase 1 left it
      tx = freeze(tx, ["Convolution_.*"])
      state = TrainState.create(SeedCNN(), tx, variables=state.variables, seed=config.seed + phase)
    train_data = ArrayDataset(xs, ys, config.batch_size, seed=config.seed + phase, num_classes=5)
    test_data = ArrayDataset(xts, yts, 512, shuffle=False, num_classes=5)
    with Timer() as timer:
      state, history = fit(state, make_train_step("sparse_categorical_crossentropy", metrics), train_data,
                           epochs=config.epochs, eval_step=eval_step, validation_data=test_data,
                           log_dir=os.path.join(run_dir(config), f"phase_{name}"), verbose="auto")
    predict = lambda xb: np.asarray(state.apply_fn(state.variables, xb)).argmax(-1)
    preds = np.concatenate([predict(xts[i:i + 512]) for i in range(0, len(xts), 512)])
    results.append(dict(phase=name, test_accuracy=float((preds == yts).mean()), wall_s=timer.seconds,
                        images_per_s=len(xs) * config.epochs / timer.seconds, history=history.history,
                        predictions=preds))
  return results


def run_keras(config: Config, data):
  os.environ.setdefault("KERAS_BACKEND", "jax")  # KERAS_BACKEND=tensorflow picks the TensorFlow backend
  import keras

  keras.utils.set_random_seed(config.seed)
  feature_layers = [keras.layers.Conv2D(config.filters, 3, activation="relu"),
                    keras.layers.Conv2D(config.filters, 3, activation="relu"),
                    keras.layers.MaxPooling2D(2), keras.layers.Dropout(0.25), keras.layers.Flatten()]
  classifier_layers = [keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(0.5),
                       keras.layers.Dense(5, activation="softmax")]
  model = keras.Sequential([keras.Input(data[0][1].shape[1:]), *feature_layers, *classifier_layers])
  results = []
  for phase, (name, xs, ys, xts, yts) in enumerate(data):
    if phase == 1:
      for layer in feature_layers:
        layer.trainable = False
    model.compile(optimizer=keras.optimizers.Adadelta(learning_rate=config.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    with Timer() as timer:
      history = model.fit(xs, ys, batch_size=config.batch_size, epochs=config.epochs, verbose=2,
                          validation_data=(xts, yts))
    preds = model.predict(xts, batch_size=512, verbose=0).argmax(-1)
    results.append(dict(phase=name, test_accuracy=float((preds == yts).mean()), wall_s=timer.seconds,
                        images_per_s=len(xs) * config.epochs / timer.seconds,
                        history={k: [float(v) for v in vs] for k, vs in history.history.items()},
                        predictions=preds))
  return results


def main(argv=None) -> dict:
  config = parse_config(Config, argv, __doc__.splitlines()[0])
  config.name = config.name or run_name("transfer_digits", config)
  small = config.dataset == "digits"
  config.epochs = config.epochs or (20 if small else 5)
  config.batch_size = config.batch_size or (32 if small else 128)
  x, y, xt, yt = load_digit_images(config.dataset, config.seed)
  data = phases(config, x, y, xt, yt)
  results = (run_jax if config.framework == "jax" else run_keras)(config, data)
  path = run_dir(config)
  for r, (name, *_, yts) in zip(results, data):
    labels = [str(i + (0 if name == "0-4" else 5)) for i in range(5)]
    plot_confusion(yts, r.pop("predictions"), labels, os.path.join(path, f"confusion_{name}.png"),
                   f"{config.framework}, classes {name}")
  history = {f"classes {r['phase']}/{k}": v for r in results for k, v in r.pop("history").items()}
  backend = os.environ.get("KERAS_BACKEND", "jax") if config.framework == "keras" else None
  metrics = {"experiment": "transfer_digits", "dataset": config.dataset, "framework": config.framework,
             "keras_backend": backend,
             "phase1_test_accuracy": results[0]["test_accuracy"], "test_accuracy": results[1]["test_accuracy"],
             "wall_time_s": sum(r["wall_s"] for r in results),
             "images_per_s": float(np.mean([r["images_per_s"] for r in results])), "phases": results,
             "config": dataclasses.asdict(config)}
  write_results(path, metrics, history)
  print_table([{"phase": r["phase"], "test_accuracy": r["test_accuracy"], "wall_s": r["wall_s"],
                "images/s": r["images_per_s"]} for r in results])
  print(f"-> {os.path.join(path, 'metrics.json')}")
  return metrics


if __name__ == "__main__":
  run_script(main)
