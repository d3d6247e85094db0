"""Regenerates the keras-unet-collection reference files that tests/test_unet.py compares against.

keras-unet-collection needs TensorFlow, which stays out of the project's install,
so this script runs in a throwaway environment of its own:

  python3.11 -m venv /tmp/kuc-venv
  /tmp/kuc-venv/bin/pip install "tensorflow-cpu==2.15.1" "keras-unet-collection==0.1.13" "numpy<2" h5py pillow
  /tmp/kuc-venv/bin/python tests/reference/make_unet_references.py [NAME ...]

(TensorFlow 2.15 is the last release whose `tf.keras` is Keras 2, the Keras
keras-unet-collection was written for.) For every configuration in `CONFIGS`
it builds the keras-unet-collection model, gives every weight a random value
(batch-norm moving statistics, PReLU slopes and Snake's `beta_factor` too),
saves the weights with Keras's legacy `.h5` writer (`model.save_weights`) and
writes `<name>.npz` with the input, Keras's outputs in inference mode (`y`,
or `y_0`, `y_1` ... and `output_names` for a model with several) and the
configuration. The U-Net's configurations are below; every other model's sit
in `kuc_configs/<model>.py` (a `CONFIGS` dict like this one, and `TRAIN`: the
configurations that also record one training step, see `train_reference`); `kuc_losses.npz` holds keras-unet-collection's segmentation
losses on fixed maps, and `kuc_backbone_taps.json` the layers its U-Net taps
in each backbone it offers. Pass names to regenerate only some files. The `.h5` files are then rewritten with gzip compression
(same groups, datasets and attributes); the large backbone kernels are sparse
(values -s, 0, +s), so that the compressed files stay small.
"""

from __future__ import annotations

import json
import os
import sys
import zlib

import numpy as np

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unet")

# name -> (keras_unet_collection.models function, keyword arguments, batch size). Covers: attention add and
# multiply; pool True/'max'/'ave'/False; unpool True/'bilinear'/'nearest'/False; batch norm on and off; stack
# numbers 1 and 2; depths 3 and 4; every activation; outputs Softmax/Sigmoid/None/PReLU/Snake; a backbone of every
# family keras-unet-collection offers (VGG16/19, ResNet50, ResNet50V2, DenseNet121, EfficientNetB0).
CONFIGS = {
    "unet_d3_defaults": ("unet_2d", dict(input_size=(32, 32, 1), filter_num=[4, 8, 16], n_labels=2), 2),
    "unet_d4_ave_nearest_bn_stack1": ("unet_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 8, 16, 32], n_labels=3, stack_num_down=1, stack_num_up=1,
        activation="LeakyReLU", output_activation="Sigmoid", batch_norm=True, pool="ave", unpool="nearest"), 2),
    "unet_d3_strided_transpose_bn": ("unet_2d", dict(
        input_size=(32, 32, 2), filter_num=[4, 8, 16], n_labels=2, stack_num_up=1, activation="ELU",
        output_activation=None, batch_norm=True, pool=False, unpool=False), 2),
    "unet_d3_strided_transpose": ("unet_2d", dict(
        input_size=(32, 32, 1), filter_num=[4, 8, 16], n_labels=1, activation="GELU", output_activation="Sigmoid",
        pool=False, unpool=False), 2),
    "unet_d4_max_bilinear_snake": ("unet_2d", dict(
        input_size=(32, 32, 2), filter_num=[4, 8, 16, 32], n_labels=2, activation="Snake",
        output_activation="PReLU", batch_norm=True, pool="max", unpool="bilinear"), 2),
    "unet_d3_prelu_softmax": ("unet_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 8, 16], n_labels=3, stack_num_down=1, activation="PReLU",
        output_activation="Softmax", batch_norm=False), 2),
    "attunet_d3_defaults": ("att_unet_2d", dict(input_size=(32, 32, 3), filter_num=[4, 8, 16], n_labels=2), 2),
    "attunet_d4_multiply_prelu_strided": ("att_unet_2d", dict(
        input_size=(32, 32, 2), filter_num=[4, 8, 16, 32], n_labels=3, stack_num_down=1, stack_num_up=2,
        activation="Snake", atten_activation="PReLU", attention="multiply", output_activation="Sigmoid",
        batch_norm=True, pool=False, unpool=False), 2),
    "attunet_d3_add_gelu_ave_nearest": ("att_unet_2d", dict(
        input_size=(32, 32, 1), filter_num=[4, 8, 16], n_labels=2, stack_num_up=1, activation="LeakyReLU",
        atten_activation="GELU", attention="add", output_activation="Softmax", pool="ave", unpool="nearest"), 2),
    "attunet_d3_multiply_elu_snake_out": ("att_unet_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 8, 16], n_labels=2, activation="ELU", atten_activation="Snake",
        attention="multiply", output_activation="Snake", batch_norm=True, pool="max", unpool="bilinear"), 2),
    "unet_vgg16_d3": ("unet_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 8, 16], n_labels=2, backbone="VGG16", weights=None,
        batch_norm=False), 1),
    "unet_resnet50_d3": ("unet_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 8, 16], n_labels=2, backbone="ResNet50", weights=None,
        batch_norm=True, freeze_backbone=False), 1),
    "attunet_resnet50_d4": ("att_unet_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 8, 16, 32], n_labels=2, backbone="ResNet50", weights=None,
        batch_norm=True, pool=False, unpool=False), 1),
    "unet_vgg19_d3": ("unet_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 8, 16], n_labels=2, backbone="VGG19", weights=None), 1),
    "unet_resnet50v2_d4": ("unet_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 8, 16, 32], n_labels=2, backbone="ResNet50V2", weights=None,
        batch_norm=True, freeze_backbone=False), 1),
    "attunet_densenet121_d4": ("att_unet_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 8, 16, 32], n_labels=2, backbone="DenseNet121", weights=None,
        batch_norm=True), 1),
    "unet_efficientnetb0_d4": ("unet_2d", dict(
        input_size=(32, 32, 3), filter_num=[4, 8, 16, 32], n_labels=3, backbone="EfficientNetB0", weights=None,
        batch_norm=True, output_activation="Sigmoid"), 1),
}

UNET_NAMES = tuple(CONFIGS)  # seeded by position (1000 + index); every later configuration by its name
TRAIN: dict[str, dict] = {"unet_d4_ave_nearest_bn_stack1": {}, "attunet_d3_multiply_elu_snake_out": {}}


def _model_configs() -> None:
  """Adds every `kuc_configs/<model>.py`'s CONFIGS and TRAIN to this module's."""
  import importlib.util

  folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kuc_configs")
  for file in sorted(os.listdir(folder)):
    if file.endswith(".py") and not file.startswith("_"):
      spec = importlib.util.spec_from_file_location(f"kuc_configs.{file[:-3]}", os.path.join(folder, file))
      module = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(module)
      for name in module.CONFIGS:
        if name in CONFIGS:
          raise ValueError(f"configuration {name!r} of kuc_configs/{file} is defined twice")
      CONFIGS.update(module.CONFIGS)
      TRAIN.update(getattr(module, "TRAIN", {}))


TERNARY_ABOVE = 4_096  # kernels with more entries are sparse: -s, 0, +s with probabilities 1/8, 3/4, 1/8
COMPRESS_ABOVE = 4_096  # datasets with more entries are stored compressed


def randomize(model, rng: np.random.Generator) -> None:
  """Every weight random: LeCun-scaled kernels, BN statistics with positive variances, PReLU and Snake, position
  embeddings and biases too; Swin's constants (position index, attention mask) stay as kuc builds them."""
  for w in model.weights:
    shape, short = tuple(w.shape), w.name.split("/")[-1].split(":")[0]
    if short in ("kernel", "depthwise_kernel"):
      fan_in = int(np.prod(shape[:-1] if short == "kernel" else shape[:-2]))
      std = np.sqrt(1.0 / fan_in)
      if np.prod(shape) > TERNARY_ABOVE:
        value = rng.choice([-1.0, 0.0, 1.0], shape, p=[0.125, 0.75, 0.125]) * std * 2.0  # variance std**2
      else:
        value = rng.normal(0.0, std, shape)
    elif short in ("bias", "beta", "moving_mean", "mean"):
      value = rng.normal(0.0, 0.2, shape)
    elif short in ("gamma", "moving_variance", "variance"):
      value = rng.uniform(0.5, 1.5, shape)
    elif short == "count":  # Normalization's sample count (EfficientNet), not used by its call
      value = np.zeros(shape)
    elif short == "alpha":  # PReLU
      value = rng.normal(0.2, 0.2, shape)
    elif short == "beta_factor":  # keras-unet-collection's Snake
      value = rng.uniform(0.4, 1.2, shape)
    elif short.endswith(("_attn_pos_ind", "_attn_mask")):  # Swin's relative position index and window mask: as built
      continue
    elif short == "embeddings" or short.endswith("_attn_pos"):  # position embeddings, relative position biases
      value = rng.normal(0.0, 0.5, shape)
    else:
      raise ValueError(f"no random rule for weight {w.name}")
    w.assign(value.astype(np.float32))


def compress_h5(path: str) -> None:
  """Rewrites a Keras .h5 file with gzip-compressed datasets; groups, names and attributes unchanged."""
  import h5py

  tmp = path + ".tmp"
  with h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
    def copy(group_in, group_out):
      for key, value in group_in.attrs.items():
        group_out.attrs[key] = value
      for name, item in group_in.items():
        if isinstance(item, h5py.Group):
          copy(item, group_out.create_group(name))
        elif item.size < COMPRESS_ABOVE:
          group_out.create_dataset(name, data=item[()])
        else:
          group_out.create_dataset(name, data=item[()], compression="gzip", compression_opts=9)
    copy(src, dst)
  os.replace(tmp, path)


def main(names: list[str]) -> None:
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import tensorflow as tf
  import keras_unet_collection
  from keras_unet_collection import models

  os.makedirs(OUT_DIR, exist_ok=True)
  for index, (name, (function, kwargs, batch)) in enumerate(CONFIGS.items()):
    if names and name not in names:
      continue
    tf.keras.backend.clear_session()
    model = getattr(models, function)(**kwargs)
    rng = np.random.default_rng(1000 + index if name in UNET_NAMES else zlib.crc32(name.encode()))
    randomize(model, rng)
    x = rng.normal(size=(batch, *kwargs["input_size"])).astype(np.float32)
    h5_path = os.path.join(OUT_DIR, f"{name}.h5")
    model.save_weights(h5_path)
    compress_h5(h5_path)
    # The output is the reloaded file's: Keras 2's Normalization (EfficientNet) uses assigned statistics only
    # once `load_weights` (or `adapt`) finalizes them.
    model.load_weights(h5_path)
    outputs = _outputs(model(x, training=False))
    config = {"function": function, "kwargs": kwargs, "keras_unet_collection": keras_unet_collection.__version__
              if hasattr(keras_unet_collection, "__version__") else "0.1.13", "tensorflow": tf.__version__,
              "params": int(model.count_params()), "output_names": list(model.output_names)}
    arrays = {"y": outputs[0]} if len(outputs) == 1 else {f"y_{i}": y for i, y in enumerate(outputs)}
    if name in TRAIN:
      arrays.update(train_reference(model, x, rng, **TRAIN[name]))
      config["train"] = {"optimizer": "sgd", "learning_rate": TRAIN_LEARNING_RATE, "loss": "mean_squared_error",
                         "loss_weights": _loss_weights(len(outputs))}
    np.savez_compressed(os.path.join(OUT_DIR, f"{name}.npz"), x=x, config=json.dumps(config), **arrays)
    print(f"{name}: {function} outputs {[y.shape for y in outputs]}, {config['params']} parameters, "
          f"{os.path.getsize(h5_path) / 1e3:.0f} kB weights")
  if not names or "kuc_losses" in names:
    loss_references()
  if not names or "kuc_backbone_taps" in names:
    backbone_taps()


TRAIN_LEARNING_RATE = 0.05


def _outputs(y) -> list[np.ndarray]:
  return [np.asarray(t) for t in y] if isinstance(y, (list, tuple)) else [np.asarray(y)]


def _loss_weights(n: int) -> list[float]:
  """One weight per output: the deep-supervision outputs 0.5 each, the final (last) output 1."""
  return [0.5] * (n - 1) + [1.0]


def train_reference(model, x: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
  """One `train_on_batch` step of SGD on the mean squared error towards random targets (weighted per output by
  `_loss_weights`), then the outputs in inference mode: `target_{i}`, `train_loss`, `y_after_{i}`."""
  import tensorflow as tf

  targets = [rng.uniform(size=y.shape).astype(np.float32) for y in _outputs(model(x, training=False))]
  model.compile(optimizer=tf.keras.optimizers.SGD(TRAIN_LEARNING_RATE), loss="mean_squared_error",
                loss_weights=_loss_weights(len(targets)))
  loss = model.train_on_batch(x, targets if len(targets) > 1 else targets[0])
  after = _outputs(model(x, training=False))
  loss = loss[0] if isinstance(loss, (list, tuple)) else loss
  return {"train_loss": np.asarray(loss, np.float32), **{f"target_{i}": t for i, t in enumerate(targets)},
          **{f"y_after_{i}": y for i, y in enumerate(after)}}


def loss_references() -> None:
  """keras-unet-collection's dice, iou_seg, tversky and focal_tversky on fixed maps -> kuc_losses.npz."""
  from keras_unet_collection import losses

  rng = np.random.default_rng(7)
  y_true = (rng.uniform(size=(3, 8, 8, 1)) < 0.3).astype(np.float32)
  y_pred = rng.uniform(size=(3, 8, 8, 1)).astype(np.float32)
  values = {
      "dice": losses.dice(y_true, y_pred), "iou_seg": losses.iou_seg(y_true, y_pred),
      "tversky": losses.tversky(y_true, y_pred, alpha=0.7),
      "focal_tversky": losses.focal_tversky(y_true, y_pred, alpha=0.7, gamma=4 / 3),
  }
  np.savez_compressed(os.path.join(OUT_DIR, "kuc_losses.npz"), y_true=y_true, y_pred=y_pred,
                      **{k: np.asarray(v) for k, v in values.items()})
  print("kuc_losses:", {k: float(v) for k, v in values.items()})


def backbone_taps() -> None:
  """keras-unet-collection's U-Net tap layers of every backbone it offers -> kuc_backbone_taps.json."""
  from keras_unet_collection import _backbone_zoo

  with open(os.path.join(OUT_DIR, "kuc_backbone_taps.json"), "w") as f:
    json.dump(_backbone_zoo.layer_cadidates, f, indent=1)
  print("kuc_backbone_taps:", sorted(_backbone_zoo.layer_cadidates))


_model_configs()

if __name__ == "__main__":
  main(sys.argv[1:])
