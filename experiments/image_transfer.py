"""Transfer learning on an image dataset: a frozen ImageNet backbone and a new head (shared by two experiments).

`vgg16_transfer.py` and `cats_vs_dogs.py` are configs of this; run them, or
this file directly with any backbone and any TFDS name or image folder.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from experiments.common import (Timer, option, parse_config, plot_confusion, print_table, run_dir, run_name,
                                run_script, write_results)
from jaxcomponents.models import backbones

# flag value -> (model name, its ImageNet preprocessing mode, None where the model scales its input itself)
BACKBONES = {backbones.snake_name(name): (name, backbones.get(name).preprocessing) for name in backbones.NAMES}


@dataclasses.dataclass
class Config:
  backbone: str = option("vgg16", "the frozen ImageNet backbone", choices=tuple(BACKBONES))
  dataset: str = option("cifar10", "a TFDS name (prepared as array_record) or a folder <root>/<class>/<image>")
  train_split: str = option("train", "the TFDS split to train on")
  test_split: str = option("test", "the TFDS split to test on")
  data_dir: str = option("", "TFDS's data_dir ('' for TFDS's default)", names_run=False)
  image_size: int = option(32, "height and width the images are resized to", at_least=1)
  weights: str = option("imagenet", "the backbone's weights", choices=("imagenet", "none"))
  hidden: int = option(256, "width of the new head's ReLU layer (0: none)", at_least=0)
  dropout: float = option(0.5, "dropout before the new head's output", at_least=0, below=1)
  epochs: int = option(5, "passes over the training data", at_least=1)
  batch_size: int = option(64, "images per step", at_least=1)
  learning_rate: float = option(1e-3, "Adam's learning rate", above=0)
  framework: str = option("jax", "jaxcomponents, or the Keras twin", choices=("jax", "keras"))
  seed: int = option(0, "seed of the new head's weights and the shuffling", at_least=0)
  limit: int = option(0, "at most this many training (and test) examples (0: all)", at_least=0)
  name: str = option("", "the run folder's name ('': the experiment, then each setting that differs from its default)")
  runs_dir: str = option("runs", "where run folders go")

  def check(self) -> None:
    """Settings refused together (`parse_config` reports them as usage errors)."""
    check_image_size(self.image_size, self.backbone)


def check_image_size(image_size: int, backbone: str) -> None:
  """Raises unless `backbone` (a flag value) takes `image_size` x `image_size` images, as Keras would."""
  minimum = backbones.get(BACKBONES[backbone][0]).min_size
  if image_size < minimum:
    raise ValueError(f"argument --image-size: {image_size} is not allowed with --backbone {backbone}; "
                     f"expected at least {minimum}")


def datasets(config: Config):
  """(train, test, class names) as fixed-shape `RecordDataset`s of uint8 images and labels."""
  from jaxcomponents.data import RecordDataset, list_image_folder, tfds_dataset
  from jaxcomponents.data.folders import read_image

  size = (config.image_size, config.image_size)
  if os.path.isdir(config.dataset):
    files, classes = list_image_folder(config.dataset)
    order = np.random.default_rng(config.seed).permutation(len(files))
    cut = int(0.8 * len(files))
    split = {"train": [files[i] for i in order[:cut]], "test": [files[i] for i in order[cut:]]}
    to_example = lambda record: (read_image(record[0], size), np.int32(record[1]))
    make = lambda name, shuffle: RecordDataset(split[name][:config.limit or None], to_example, config.batch_size,
                                               shuffle=shuffle, seed=config.seed, num_classes=len(classes))
    return make("train", True), make("test", False), classes
  options = dict(data_dir=config.data_dir or None, image_size=size, seed=config.seed, limit=config.limit)
  train = tfds_dataset(config.dataset, config.train_split, config.batch_size, **options)
  test = tfds_dataset(config.dataset, config.test_split, config.batch_size, shuffle=False, **options)
  if train.num_classes is None:
    raise ValueError(f"dataset={config.dataset!r} has no class count in its TFDS info; use a class-label dataset.")
  return train, test, [str(i) for i in range(train.num_classes)]


def run_jax(config: Config, train, test, classes):
  import jax
  import jax.numpy as jnp

  from jaxcomponents import models, optimizers
  from jaxcomponents.training import TrainState, fit, freeze, make_eval_step, make_train_step
  from jaxcomponents.weights import graft, load_imagenet

  cls_name, mode = BACKBONES[config.backbone]
  backbone = lambda **kw: getattr(models, cls_name)(include_top=False, pooling="avg", **kw)
  model = models.BackboneClassifier(backbone(trainable=False), len(classes), preprocess=mode,
                                    hidden=(config.hidden,) if config.hidden else (), dropout=config.dropout)
  shape = (config.image_size, config.image_size, 3)
  variables = model.init(jax.random.key(config.seed), jnp.zeros((1, *shape)))
  if config.weights == "imagenet":
    variables = graft(variables, "backbone", load_imagenet(backbone(), shape))
  state = TrainState.create(model, freeze(optimizers.get("adam", learning_rate=config.learning_rate),
                                          ["backbone/.*"]), variables=variables, seed=config.seed)
  metrics = ["sparse_categorical_accuracy"]
  with Timer() as timer:
    state, history = fit(state, make_train_step("sparse_categorical_crossentropy", metrics), train,
                         epochs=config.epochs, eval_step=make_eval_step("sparse_categorical_crossentropy", metrics),
                         validation_data=test, log_dir=run_dir(config), verbose="auto")
  predict = jax.jit(lambda x: state.apply_fn(state.variables, x).argmax(-1))
  return history.history, timer.seconds, _predictions(test, lambda x: np.asarray(predict(x)))


def run_keras(config: Config, train, test, classes):
  os.environ.setdefault("KERAS_BACKEND", "jax")
  import keras

  keras.utils.set_random_seed(config.seed)
  cls_name, mode = BACKBONES[config.backbone]
  base = getattr(keras.applications, cls_name)(include_top=False, pooling="avg",
                                               weights="imagenet" if config.weights == "imagenet" else None,
                                               input_shape=(config.image_size, config.image_size, 3))
  base.trainable = False
  head = [keras.layers.Dense(config.hidden, activation="relu"), keras.layers.Dropout(config.dropout)] \
      if config.hidden else []
  model = keras.Sequential([keras.Input(base.input_shape[1:]), base, *head,
                            keras.layers.Dense(len(classes), activation="softmax")])
  model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="sparse_categorical_crossentropy",
                metrics=["sparse_categorical_accuracy"])
  prep = lambda x: (x.astype(np.float32) if mode is None else
                    keras.applications.imagenet_utils.preprocess_input(x.astype(np.float32), mode=mode))
  history = {"loss": [], "val_sparse_categorical_accuracy": []}
  with Timer() as timer:
    for epoch in range(config.epochs):
      model.reset_metrics()
      for batch in train.epoch(epoch):
        logs = model.train_on_batch(prep(batch["x"]), batch["y"], sample_weight=batch["mask"], return_dict=True)
      preds, labels = _predictions(test, lambda x: model.predict_on_batch(prep(x)).argmax(-1))
      history["loss"].append(float(logs["loss"]))
      history["val_sparse_categorical_accuracy"].append(float((preds == labels).mean()))
      print(f"epoch {epoch + 1}: loss {logs['loss']:.4f}  val accuracy {history['val_sparse_categorical_accuracy'][-1]:.4f}")
  return history, timer.seconds, _predictions(test, lambda x: model.predict_on_batch(prep(x)).argmax(-1))


def _predictions(data, predict):
  """(predictions, labels) over the real (unmasked) examples of one pass of `data`."""
  preds, labels = [], []
  for batch in data.epoch(0):
    keep = batch["mask"] > 0
    preds.append(np.asarray(predict(batch["x"]))[keep])
    labels.append(batch["y"][keep])
  return np.concatenate(preds), np.concatenate(labels)


def main(argv=None, config_cls=Config, experiment: str = "image_transfer") -> dict:
  config = parse_config(config_cls, argv, __doc__.splitlines()[0])
  config.name = config.name or run_name(experiment, config)
  train, test, classes = datasets(config)
  run = run_jax if config.framework == "jax" else run_keras
  history, seconds, (preds, labels) = run(config, train, test, classes)
  path = run_dir(config)
  plot_confusion(labels, preds, classes, os.path.join(path, "confusion.png"), f"{experiment} ({config.framework})")
  metrics = {"experiment": experiment, "dataset": config.dataset, "framework": config.framework,
             "backbone": config.backbone, "test_accuracy": float((preds == labels).mean()), "wall_time_s": seconds,
             "images_per_s": len(train) * config.batch_size * config.epochs / seconds,
             "config": dataclasses.asdict(config)}
  write_results(path, metrics, history)
  print_table([{k: metrics[k] for k in ("backbone", "framework", "test_accuracy", "wall_time_s", "images_per_s")}])
  print(f"-> {os.path.join(path, 'metrics.json')}")
  return metrics


if __name__ == "__main__":
  run_script(main)
