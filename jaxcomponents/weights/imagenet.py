"""`load_imagenet`: Keras's ImageNet weights for the backbones, checked like Keras checks them."""

from __future__ import annotations

import warnings
from typing import Any

import flax.linen as nn
import numpy as np

from jaxcomponents.weights import hub
from jaxcomponents.weights.convert import load_keras

_DEFAULT_SIZE = {"vgg16": 224, "resnet50": 224, "inception_v3": 299, "mobilenet_v2": 224}
_MODEL_NAMES = {"VGG16": "vgg16", "ResNet50": "resnet50", "InceptionV3": "inception_v3", "MobileNetV2": "mobilenet_v2"}


def load_imagenet(module: nn.Module, input_shape: tuple[int, int, int] | None = None, *, download: bool = True,
                  progress: bool = True) -> dict[str, Any]:
  """Returns the module's variables holding Keras's ImageNet weights.

  Args:
    module: a `VGG16`, `ResNet50`, `InceptionV3` or `MobileNetV2`.
    input_shape: (height, width, channels); default: the model's ImageNet
      size. With the top, Keras requires the default size; MobileNetV2's file
      is chosen by `alpha` and the input size (96, 128, 160, 192 or 224;
      other sizes get the 224 file with a warning, as in Keras).
    download: fetch the file when no cache has it.
    progress: show a download progress bar.

  Raises:
    ValueError: a top with `classes != 1000`, not 3 channels, a wrong size
      with the top, or a MobileNetV2 alpha Keras has no weights for.
    FileNotFoundError: the file is not cached and cannot be downloaded.

  Example:
    model = ResNet50(include_top=False, pooling="avg")
    variables = load_imagenet(model, (160, 160, 3))
  """
  name = _MODEL_NAMES.get(type(module).__name__)
  if name is None:
    raise ValueError(
        f"module={type(module).__name__} is not allowed; ImageNet weights exist for {sorted(_MODEL_NAMES)}.")
  size = _DEFAULT_SIZE[name]
  input_shape = tuple(input_shape) if input_shape is not None else (size, size, 3)
  if len(input_shape) != 3:
    raise ValueError(f"input_shape={input_shape} is not allowed; expected (height, width, channels).")
  if input_shape[-1] != 3:
    raise ValueError(f"input_shape={input_shape} is not allowed with ImageNet weights: they need 3 channels.")
  if module.include_top:
    if module.classes != 1000:
      raise ValueError(f"classes={module.classes} is not allowed with ImageNet weights and include_top=True; "
                       "they need classes=1000.")
    if name != "mobilenet_v2" and input_shape[:2] != (size, size):
      raise ValueError(f"input_shape={input_shape} is not allowed with ImageNet weights and include_top=True; "
                       f"{type(module).__name__} needs {(size, size, 3)}.")
  options = {}
  if name == "mobilenet_v2":
    rows = input_shape[0]
    if input_shape[0] != input_shape[1] or rows not in hub.MOBILENET_V2_SIZES:
      warnings.warn(f"input_shape={input_shape} is non-square or its size is not one of {hub.MOBILENET_V2_SIZES}; "
                    "loading the weights for 224 x 224, as Keras does.", stacklevel=2)
      rows = 224
    options = {"alpha": module.alpha, "size": rows}
  path = hub.fetch(hub.imagenet_weights_file(name, module.include_top, **options), download=download,
                   progress=progress)
  return load_keras(module, path, np.zeros((1, *input_shape), np.float32))
