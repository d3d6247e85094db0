"""cats_vs_dogs: a frozen ImageNet MobileNetV2 (or VGG16) and a new head, cats against dogs.

The data are TFDS's `cats_vs_dogs` (train[:80%] / train[80%:]) or any folder
with one sub-folder per class, such as Kaggle's PetImages.

Run:
  python -m experiments.cats_vs_dogs                               # TFDS cats_vs_dogs, MobileNetV2 at 160x160
  python -m experiments.cats_vs_dogs --dataset PetImages --backbone vgg16 --framework keras
"""

import dataclasses

from experiments import image_transfer
from experiments.common import run_script


@dataclasses.dataclass
class Config(image_transfer.Config):
  backbone: str = "mobilenet_v2"
  dataset: str = "cats_vs_dogs"
  train_split: str = "train[:80%]"
  test_split: str = "train[80%:]"
  image_size: int = 160
  hidden: int = 0
  epochs: int = 3
  batch_size: int = 32


def main(argv=None):
  return image_transfer.main(argv, Config, "cats_vs_dogs")


if __name__ == "__main__":
  run_script(main)
