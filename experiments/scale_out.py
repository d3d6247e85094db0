"""scale_out: a backbone classifier trained from the start, on one CPU, one GPU, many devices or many hosts.

The same script everywhere: data from an image folder (`<root>/<class>/<image>`,
random resized crops and flips decoded in Grain worker processes) or a TFDS
name; the global batch split over every device of every process (`--mesh
data`); bfloat16 computation with float32 parameters (`--dtype bfloat16`);
checkpoints every epoch, `--resume` to continue. On many hosts, start one
process per host with the same arguments plus `--coordinator-address`,
`--num-processes` and `--process-id` (or none of them under SLURM, Open MPI or
on a TPU pod, where JAX finds them itself).

Run:
  python -m experiments.scale_out --dataset PetImages --backbone resnet50 --image-size 160 --workers 4
  python -m experiments.scale_out --dataset cifar10 --backbone mobilenet_v2 --dtype bfloat16 --mesh data
  python -m experiments.scale_out --dataset PetImages --coordinator-address 10.0.0.1:1234 --num-processes 2 \\
      --process-id 0      # and --process-id 1 on the second host
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from experiments.common import Timer, option, parse_config, print_table, run_dir, run_name, run_script, write_results
from experiments.image_transfer import BACKBONES, check_image_size


@dataclasses.dataclass
class Config:
  dataset: str = option("cats_vs_dogs", "an image folder or a TFDS name (prepared as array_record)")
  backbone: str = option("mobilenet_v2", "the architecture, trained from the start", choices=tuple(BACKBONES))
  image_size: int = option(160, "height and width of the random resized crops", at_least=1)
  epochs: int = option(3, "the run's total epochs (a resumed run continues to it)", at_least=1, names_run=False)
  batch_size: int = option(64, "the global batch, over all devices of all processes", at_least=1)
  learning_rate: float = option(1e-3, "Adam's learning rate", above=0)
  dtype: str = option("float32", "the computation's type (parameters stay float32)", choices=("float32", "bfloat16"))
  mesh: str = option("data", "data: split each batch over every device; none: the default device",
                     choices=("data", "none"))
  workers: int = option(0, "Grain worker processes decoding images (0: threads of this process)", at_least=0,
                       names_run=False)
  threads: int = option(4, "decoding threads per process", at_least=1, names_run=False)
  seed: int = option(0, "seed of the initial weights, the crops and the shuffling", at_least=0)
  limit: int = option(0, "at most this many training examples (0: all)", at_least=0)
  checkpoint_dir: str = option("", "where checkpoints go (default: <run folder>/checkpoints)", names_run=False)
  resume: bool = option(False, "continue from the newest intact checkpoint", names_run=False)
  coordinator_address: str = option("", "host:port of process 0, for many hosts", names_run=False)
  num_processes: int = option(0, "processes in all, for many hosts (0: found by JAX or 1)", at_least=0,
                              names_run=False)
  process_id: int = option(-1, "this process's index, for many hosts (-1: found by JAX or 0)", at_least=-1,
                           names_run=False)
  name: str = option("", "the run folder's name ('': the experiment, then each setting that differs from its default)")
  runs_dir: str = option("runs", "where run folders go")

  def check(self) -> None:
    """Settings refused together (`parse_config` reports them as usage errors)."""
    check_image_size(self.image_size, self.backbone)
    if 0 < self.num_processes <= self.process_id:
      raise ValueError(f"argument --process-id: {self.process_id} is not allowed with --num-processes "
                       f"{self.num_processes}; expected 0 to {self.num_processes - 1}")


class TrainCrop:
  """(path, rng) -> a random resized crop, maybe mirrored, uint8 (the model normalises, like Keras's preprocess_input)."""

  def __init__(self, size: int):
    self.size = (size, size)

  def __call__(self, path: str, rng: np.random.Generator) -> np.ndarray:
    from jaxcomponents.data import decode_random_resized_crop, flip_left_right

    return flip_left_right(decode_random_resized_crop(path, self.size, rng), rng)


def path_and_label(record):
  return record[0], np.int32(record[1])


def training_data(config: Config):
  from jaxcomponents.data import RecordDataset, list_image_folder, tfds_dataset

  if os.path.isdir(config.dataset):
    files, classes = list_image_folder(config.dataset)
    chosen = [files[i] for i in np.random.default_rng(0).permutation(len(files))[:config.limit or None]]
    data = RecordDataset(chosen, path_and_label, config.batch_size, seed=config.seed, num_classes=len(classes),
                         augment=TrainCrop(config.image_size), threads=config.threads, workers=config.workers,
                         drop_remainder=True)
    return data, len(classes)
  data = tfds_dataset(config.dataset, "train", config.batch_size, image_size=(config.image_size,) * 2,
                      seed=config.seed, limit=config.limit)
  return data, data.num_classes


def main(argv=None) -> dict:
  config = parse_config(Config, argv, __doc__.splitlines()[0])
  from jaxcomponents.training import initialize_distributed

  initialize_distributed(config.coordinator_address or None, config.num_processes or None,
                         None if config.process_id < 0 else config.process_id)

  import jax
  import jax.numpy as jnp

  from jaxcomponents import models, optimizers
  from jaxcomponents.training import TrainState, data_mesh, fit, make_train_step

  config.name = config.name or run_name("scale_out", config, leading=("dataset", "backbone"))
  path = run_dir(config)
  data, classes = training_data(config)
  dtype = jnp.bfloat16 if config.dtype == "bfloat16" else None
  cls_name, mode = BACKBONES[config.backbone]
  backbone = getattr(models, cls_name)(include_top=False, pooling="avg", dtype=dtype)
  model = models.BackboneClassifier(backbone, classes, preprocess=mode, activation=None, dtype=dtype)
  sample = jnp.zeros((1, config.image_size, config.image_size, 3), jnp.uint8)
  state = TrainState.create(model, optimizers.get("adam", learning_rate=config.learning_rate), sample,
                            seed=config.seed)
  mesh = data_mesh() if config.mesh == "data" else None
  step = make_train_step("sparse_categorical_crossentropy", ["sparse_categorical_accuracy"])
  with Timer() as timer:
    state, history = fit(state, step, data, epochs=config.epochs, mesh=mesh,
                         checkpoint_dir=config.checkpoint_dir or os.path.join(path, "checkpoints"),
                         resume=config.resume, overwrite=not config.resume,
                         log_dir=path if jax.process_index() == 0 else None,
                         verbose="auto" if jax.process_index() == 0 else 0)
  losses = history.history.get("loss", [])  # one per epoch run in this call
  metrics = {"experiment": "scale_out", "dataset": config.dataset, "backbone": config.backbone,
             "dtype": config.dtype, "processes": jax.process_count(), "devices": jax.device_count(),
             "steps": int(state.step), "final_loss": losses[-1] if losses else None,
             "wall_time_s": timer.seconds, "images_per_s": len(data) * config.batch_size * len(losses)
             / timer.seconds, "config": dataclasses.asdict(config)}
  if jax.process_index() == 0:
    write_results(path, metrics, history.history)
    print_table([{k: metrics[k] for k in ("backbone", "dtype", "processes", "devices", "final_loss",
                                          "images_per_s")}])
  return metrics


if __name__ == "__main__":
  run_script(main)
