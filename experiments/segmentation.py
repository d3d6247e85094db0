"""segmentation: a keras-unet-collection model (attention U-Net by default) segmenting images or volumes.

Models (`--model`): every keras-unet-collection twin, 2-D (unet_2d,
att_unet_2d, unet_plus_2d, r2_unet_2d, resunet_a_2d, u2net_2d, unet_3plus_2d,
vnet_2d, transunet_2d, swin_unet_2d) and 3-D (unet_3d, att_unet_3d,
unet_plus_3d, resunet_a_3d, vnet_3d), built from `--filter-num` with small
settings for the rest (`MODEL_ARGUMENTS`).

Data: synthetic shapes by default (offline: circles and squares on noisy
backgrounds, three classes), synthetic volumes for the 3-D models
(`--dataset volumes`: balls and cubes in noisy one-channel volumes of
`--volume-size` voxels a side), or the Oxford-IIIT Pet dataset through TFDS
(`--dataset oxford_iiit_pet`: pet, background, border; prepared with
`tfds build oxford_iiit_pet --file_format=array_record`). The Keras twin
(`--framework keras`) builds the same network with keras-unet-collection
itself, which needs TensorFlow and keras-unet-collection installed (2-D
models only: kuc has no 3-D models).

Run:
  python -m experiments.segmentation
  python -m experiments.segmentation --dataset oxford_iiit_pet --image-size 128 --backbone VGG16
  python -m experiments.segmentation --model unet_plus_2d --filter-num 8,16,32
  python -m experiments.segmentation --model vnet_3d --dataset volumes --volume-size 16
Each epoch ends with the test images' loss and mean IoU (`val_mean_iou`, the
learning curves' validation). Writes runs/<name>/metrics.json (test mean IoU
and pixel accuracy), history.csv, learning_curves.png and overlays.png (masks
over the images, a legend, the wrong pixels).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from experiments.common import Timer, option, parse_config, print_table, run_dir, run_name, run_script, write_results
from jaxcomponents.models import backbones

MODELS_2D = ("unet_2d", "att_unet_2d", "unet_plus_2d", "r2_unet_2d", "resunet_a_2d", "u2net_2d", "unet_3plus_2d",
             "vnet_2d", "transunet_2d", "swin_unet_2d")
MODELS_3D = ("unet_3d", "att_unet_3d", "unet_plus_3d", "resunet_a_3d", "vnet_3d")
WITH_BACKBONE = ("unet_2d", "att_unet_2d", "unet_plus_2d", "unet_3plus_2d", "transunet_2d")


@dataclasses.dataclass
class Config:
  model: str = option("att_unet_2d", "the keras-unet-collection model (a 3-D one needs --dataset volumes)",
                      choices=MODELS_2D + MODELS_3D)
  dataset: str = option("shapes", "synthetic shapes (offline), synthetic volumes (offline, 3-D models) or the "
                        "Oxford-IIIT Pet dataset through TFDS", choices=("shapes", "volumes", "oxford_iiit_pet"))
  framework: str = option("jax", "jaxcomponents, or keras-unet-collection's twin", choices=("jax", "keras"))
  image_size: int = option(64, "height and width of the images", at_least=1)
  volume_size: int = option(24, "depth, height and width of the synthetic volumes", at_least=4)
  filter_num: str = option("16,32,64", "filters of each U-Net level", each=int, at_least=1)
  attention: str = option("add", "how att_unet's attention gate combines its inputs", choices=("add", "multiply"))
  backbone: str = option("none", f"an ImageNet encoder ({', '.join(WITH_BACKBONE)}), or none",
                         choices=("none", *backbones.NAMES))
  weights: str = option("imagenet", "the backbone's weights", choices=("imagenet", "none"))
  batch_norm: bool = option(False, "batch norm after each convolution (keras-unet-collection's default: off)")
  epochs: int = option(8, "passes over the training images", at_least=1)
  batch_size: int = option(16, "images per step", at_least=1)
  learning_rate: float = option(1e-3, "Adam's learning rate", above=0)
  examples: int = option(512, "synthetic training images (a quarter more for testing)", at_least=4)
  limit: int = option(0, "at most this many TFDS examples per split (0: all)", at_least=0)
  seed: int = option(0, "seed of the data, the initial weights and the shuffling", at_least=0)
  name: str = option("", "the run folder's name ('': the experiment, then each setting that differs from its default)")
  runs_dir: str = option("runs", "where run folders go")

  def check(self) -> None:
    """The model's own checks of these settings (image size against depth and backbone), before any data."""
    three_d = self.model in MODELS_3D
    if three_d != (self.dataset == "volumes"):
      raise ValueError(f"--model {self.model} is not allowed with --dataset {self.dataset}: the 3-D models "
                       f"({', '.join(MODELS_3D)}) take --dataset volumes, the 2-D ones shapes or oxford_iiit_pet.")
    if self.backbone != "none" and self.model not in WITH_BACKBONE:
      raise ValueError(f"--backbone {self.backbone} is not allowed with --model {self.model}; the models with a "
                       f"backbone: {', '.join(WITH_BACKBONE)}.")
    try:
      build_model(self)
    except ValueError as e:
      size = f"--volume-size {self.volume_size}" if three_d else f"--image-size {self.image_size}"
      raise ValueError(f"{size}, --filter-num {self.filter_num}, --backbone {self.backbone}: {e}") from e


def synthetic_shapes(n: int, size: int, seed: int):
  """Noisy RGB images with a circle (class 1) and a square (class 2) each; masks of class ids."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:size, :size]
  images = rng.normal(110, 25, (n, size, size, 3))
  masks = np.zeros((n, size, size), np.int32)
  for i in range(n):
    r = rng.uniform(0.1, 0.2) * size
    cy, cx = rng.uniform(r, size - r, 2)
    masks[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    h = int(rng.uniform(0.15, 0.3) * size)
    top, left = rng.integers(0, size - h, 2)
    masks[i, top:top + h, left:left + h] = 2
  images += np.array([[0, 0, 0], [90, -40, -40], [-40, 60, -40]])[masks]
  return np.clip(images, 0, 255).astype(np.uint8), masks


def synthetic_volumes(n: int, size: int, seed: int):
  """Noisy one-channel volumes with a ball (class 1) and a cube (class 2) each; masks of class ids."""
  rng = np.random.default_rng(seed)
  zz, yy, xx = np.mgrid[:size, :size, :size]
  volumes = rng.normal(100, 20, (n, size, size, size))
  masks = np.zeros((n, size, size, size), np.int32)
  for i in range(n):
    r = rng.uniform(0.15, 0.25) * size
    cz, cy, cx = rng.uniform(r, size - r, 3)
    masks[i][(zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    h = max(2, int(rng.uniform(0.2, 0.35) * size))
    front, top, left = rng.integers(0, size - h, 3)
    masks[i, front:front + h, top:top + h, left:left + h] = 2
  volumes += np.array([0.0, 80.0, -60.0])[masks]
  return np.clip(volumes, 0, 255).astype(np.uint8)[..., None], masks


def datasets(config: Config):
  """(x_train, y_train, x_test, y_test) as uint8 images (or volumes) and int32 class maps."""
  if config.dataset in ("shapes", "volumes"):
    make, size = ((synthetic_shapes, config.image_size) if config.dataset == "shapes"
                  else (synthetic_volumes, config.volume_size))
    x, y = make(config.examples + config.examples // 4, size, config.seed)
    return x[:config.examples], y[:config.examples], x[config.examples:], y[config.examples:]
  if config.dataset != "oxford_iiit_pet":
    raise ValueError(f"dataset={config.dataset!r} is not allowed; expected 'shapes', 'volumes' or "
                     "'oxford_iiit_pet'.")
  from jaxcomponents.data import tfds_dataset
  from jaxcomponents.data import resize_image

  def arrays(split):
    data = tfds_dataset("oxford_iiit_pet", split, 64, shuffle=False, limit=config.limit, label_key="segmentation_mask")
    data.to_example = lambda record: (
        resize_image(np.asarray(record["image"]), (config.image_size,) * 2),
        resize_image(np.asarray(record["segmentation_mask"])[..., 0], (config.image_size,) * 2, "nearest") - 1)
    batches = list(data.epoch(0))
    keep = np.concatenate([b["mask"] > 0 for b in batches])
    return np.concatenate([b["x"] for b in batches])[keep], np.concatenate([b["y"] for b in batches])[keep]

  (x, y), (xt, yt) = arrays("train"), arrays("test")
  return x, y.astype(np.int32), xt, yt.astype(np.int32)


def _filters(config: Config) -> list[int]:
  return [int(f) for f in config.filter_num.split(",")]


# Each model's arguments beyond input_size, n_labels and output_activation, from --filter-num (and the flags that
# apply to it); small settings where the model has more (ResUNet-a's ASPP, the transformers); V-Net decodes by
# transposed convolutions, as in its paper (keras-unet-collection's upsampling needs equal filter numbers there).
MODEL_ARGUMENTS = {
    "filter_num": lambda c: {"filter_num": _filters(c), "batch_norm": c.batch_norm},
    "filter_num_down": lambda c: {"filter_num_down": _filters(c), "batch_norm": c.batch_norm},
    "att_unet": lambda c: {"filter_num": _filters(c), "batch_norm": c.batch_norm, "attention": c.attention},
    "resunet_a": lambda c: {"filter_num": _filters(c), "batch_norm": c.batch_norm, "dilation_num": [1, 3, 15, 31],
                            "aspp_num_down": 2 * _filters(c)[-1], "aspp_num_up": _filters(c)[-1]},
    "vnet": lambda c: {"filter_num": _filters(c), "batch_norm": c.batch_norm, "unpool": False},
    "transunet": lambda c: {"filter_num": _filters(c), "batch_norm": c.batch_norm, "embed_dim": 64, "num_mlp": 128,
                            "num_heads": 4, "num_transformer": 2},
    "swin_unet": lambda c: {"filter_num_begin": _filters(c)[0], "depth": len(_filters(c)), "stack_num_down": 2,
                            "stack_num_up": 2, "patch_size": (2, 2), "num_heads": [2] * len(_filters(c)),
                            "window_size": [4] + [2] * (len(_filters(c)) - 1), "num_mlp": 2 * _filters(c)[0]},
}
_ARGUMENT_KIND = {"att_unet_2d": "att_unet", "att_unet_3d": "att_unet", "u2net_2d": "filter_num_down",
                  "unet_3plus_2d": "filter_num_down", "resunet_a_2d": "resunet_a", "resunet_a_3d": "resunet_a",
                  "transunet_2d": "transunet", "swin_unet_2d": "swin_unet", "vnet_2d": "vnet", "vnet_3d": "vnet"}


def _model_args(config: Config):
  channels, side = (1, config.volume_size) if config.model in MODELS_3D else (3, config.image_size)
  input_size = (side,) * (3 if config.model in MODELS_3D else 2) + (channels,)
  args = dict(input_size=input_size, n_labels=3, output_activation="Softmax",
              **MODEL_ARGUMENTS[_ARGUMENT_KIND.get(config.model, "filter_num")](config))
  if config.model in WITH_BACKBONE:
    args.update(backbone=None if config.backbone == "none" else config.backbone,
                weights=None if config.weights == "none" else config.weights)
  return args


def build_model(config: Config):
  """The jaxcomponents model `--model` names, from the settings."""
  from jaxcomponents import models

  return getattr(models, config.model)(**_model_args(config))


def run_jax(config: Config, x, y, xt, yt):
  from jaxcomponents import metrics, optimizers
  from jaxcomponents.data import ArrayDataset
  from jaxcomponents.models.unet_backbone import frozen_patterns
  from jaxcomponents.training import TrainState, fit, freeze, make_eval_step, make_train_step, predict
  from jaxcomponents.weights import init_unet

  model = build_model(config)
  prep = lambda images: images.astype(np.float32) / 255.0
  test_images = prep(xt)
  variables = init_unet(model, prep(x[:1]), seed=config.seed)
  tx = optimizers.get("adam", learning_rate=config.learning_rate)
  frozen = frozen_patterns(model, variables["params"])
  state = TrainState.create(model, freeze(tx, frozen) if frozen else tx, variables=variables, seed=config.seed)
  with Timer() as timer:
    iou = {"mean_iou": metrics.get("mean_iou", num_classes=3, sparse_y_pred=False)}
    state, history = fit(state, make_train_step("sparse_categorical_crossentropy", iou),
                         ArrayDataset(prep(x), y, config.batch_size, seed=config.seed, num_classes=3),
                         epochs=config.epochs, log_dir=run_dir(config), verbose="auto",
                         eval_step=make_eval_step("sparse_categorical_crossentropy", iou),
                         validation_data=ArrayDataset(test_images, yt, 64, shuffle=False, num_classes=3))
  preds = predict(state, test_images, batch_size=64).argmax(-1)
  return preds, timer.seconds, history.history


def run_keras(config: Config, x, y, xt, yt):
  try:
    from keras_unet_collection import models
  except ImportError as e:
    raise ImportError(f"--framework keras runs keras-unet-collection's {config.model}: install tensorflow and "
                      "keras-unet-collection (not part of jaxcomponents' install).") from e
  import tensorflow as tf

  if config.model in MODELS_3D:
    raise ValueError(f"--framework keras is not allowed with --model {config.model}: keras-unet-collection has no "
                     "3-D models.")
  tf.keras.utils.set_random_seed(config.seed)
  model = getattr(models, config.model)(**_model_args(config))
  model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate), loss="sparse_categorical_crossentropy",
                metrics=[tf.keras.metrics.MeanIoU(num_classes=3, sparse_y_pred=False, name="mean_iou")])
  with Timer() as timer:
    history = model.fit(x.astype(np.float32) / 255.0, y, batch_size=config.batch_size, epochs=config.epochs,
                        validation_data=(xt.astype(np.float32) / 255.0, yt), validation_batch_size=64, verbose=2)
  preds = model.predict(xt.astype(np.float32) / 255.0, batch_size=64, verbose=0).argmax(-1)
  return preds, timer.seconds, {k: [float(v) for v in vs] for k, vs in history.history.items()}


def mean_iou(y_true: np.ndarray, y_pred: np.ndarray, classes: int = 3) -> float:
  ious = []
  for c in range(classes):
    union = np.sum((y_true == c) | (y_pred == c))
    if union:
      ious.append(np.sum((y_true == c) & (y_pred == c)) / union)
  return float(np.mean(ious))


CLASSES = {"shapes": ("background", "circle", "square"), "volumes": ("background", "ball", "cube"),
           "oxford_iiit_pet": ("pet", "background", "border")}
_COLOURS = np.array([[0.12, 0.47, 0.71], [1.0, 0.5, 0.05], [0.17, 0.63, 0.17]])  # one per class


def _blend(image: np.ndarray, mask: np.ndarray, class_names, alpha: float = 0.5) -> np.ndarray:
  """The image (uint8 RGB) with each pixel tinted by its class's colour (the background class left as it is)."""
  tinted = np.array([alpha * (name != "background") for name in class_names])[mask][..., None]
  return (1 - tinted) * image / 255.0 + tinted * _COLOURS[mask]


def save_overlays(images, truth, preds, path, class_names, n=4):
  """Per test image: the image, the true and the predicted masks over it, and the wrong pixels in red.

  Titles give each image's mean IoU; one legend names the classes' colours. Volumes show their middle slice.
  """
  from matplotlib.figure import Figure
  from matplotlib.patches import Patch

  if images.ndim == 5:  # (n, depth, height, width, 1) volumes: the middle slice, grey as RGB
    middle = images.shape[1] // 2
    images, truth, preds = np.repeat(images[:, middle], 3, -1), truth[:, middle], preds[:, middle]
  n = min(n, len(images))
  fig = Figure(figsize=(10, 2.5 * n + 0.6))
  axes = fig.subplots(n, 4, squeeze=False)
  for i in range(n):
    grey = np.repeat(images[i].mean(-1, keepdims=True) / 255.0, 3, -1)
    wrong = truth[i] != preds[i]
    errors = np.where(wrong[..., None], [0.85, 0.1, 0.1], 0.6 * grey)
    panels = ((images[i], "image"), (_blend(images[i], truth[i], class_names), "true mask"),
              (_blend(images[i], preds[i], class_names), f"predicted (IoU {mean_iou(truth[i], preds[i]):.2f})"),
              (errors, f"errors ({wrong.mean():.1%} of pixels)"))
    for ax, (picture, title) in zip(axes[i], panels):
      ax.imshow(picture)
      ax.set_title(title, fontsize=9)
      ax.axis("off")
  handles = [Patch(color=c, label=name) for c, name in zip(_COLOURS, class_names) if name != "background"]
  handles.append(Patch(color=(0.85, 0.1, 0.1), label="wrong pixel"))
  fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
  fig.tight_layout(rect=(0, 0.6 / (2.5 * n + 0.6), 1, 1))
  fig.savefig(path, dpi=80)


def main(argv=None) -> dict:
  config = parse_config(Config, argv, __doc__.splitlines()[0])
  config.name = config.name or run_name("segmentation", config)
  x, y, xt, yt = datasets(config)
  preds, seconds, history = (run_jax if config.framework == "jax" else run_keras)(config, x, y, xt, yt)
  path = run_dir(config)
  save_overlays(xt, yt, preds, os.path.join(path, "overlays.png"), CLASSES[config.dataset])
  metrics = {"experiment": "segmentation", "model": config.model, "dataset": config.dataset,
             "framework": config.framework,
             "test_mean_iou": mean_iou(yt, preds), "test_accuracy": float((preds == yt).mean()),
             "wall_time_s": seconds, "images_per_s": len(x) * config.epochs / seconds,
             "config": dataclasses.asdict(config)}
  write_results(path, metrics, history)
  print_table([{k: metrics[k] for k in ("framework", "test_mean_iou", "test_accuracy", "wall_time_s")}])
  print(f"-> {os.path.join(path, 'metrics.json')}")
  return metrics


if __name__ == "__main__":
  run_script(main)
