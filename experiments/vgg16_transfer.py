"""vgg16_transfer: the seed notes' VGG16 transfer recipe on CIFAR-10 (any image dataset works).

VGG16's ImageNet convolutional base is frozen and a new top (dense 256 ReLU,
dropout 0.5, dense 10 softmax) is trained on CIFAR-10 through TFDS at 32x32.
The seed kept VGG16's fc1/fc2 too, which forces 224x224 inputs: pass
`--image-size 224` for that scale (the new top then sees the same 512 x 7 x 7
features the fc layers saw).

Run:
  python -m experiments.vgg16_transfer                     # needs CIFAR-10 prepared for TFDS and the VGG16 file
  python -m experiments.vgg16_transfer --dataset path/to/folders --framework keras
"""

import dataclasses

from experiments import image_transfer
from experiments.common import run_script


@dataclasses.dataclass
class Config(image_transfer.Config):
  backbone: str = "vgg16"
  dataset: str = "cifar10"
  image_size: int = 32


def main(argv=None):
  return image_transfer.main(argv, Config, "vgg16_transfer")


if __name__ == "__main__":
  run_script(main)
