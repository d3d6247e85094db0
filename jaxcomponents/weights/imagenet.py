"""`load_imagenet`: Keras's ImageNet weights for the backbones, checked like Keras checks them."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import numpy as np

from jaxcomponents.models import backbones
from jaxcomponents.weights import hub
from jaxcomponents.weights.convert import load_keras


def load_imagenet(module: nn.Module, input_shape: tuple[int, int, int] | None = None, *, download: bool = True,
                  progress: bool = True) -> dict[str, Any]:
  """Returns the module's variables holding Keras's ImageNet weights.

  Args:
    module: a backbone of `jaxcomponents.models` (see `models.backbones.NAMES`), with its top, without, or
      cut at its `taps` (as the U-Net's encoder is: the layers it has are paired with the file's by name).
    input_shape: (height, width, channels); default: the model's ImageNet
      size. With the top, Keras requires the default size; MobileNetV2's file
      is chosen by `alpha` and the input size (96, 128, 160, 192 or 224;
      other sizes get the 224 file with a warning, as in Keras).
    download: fetch the file when no cache has it.
    progress: show a download progress bar.

  Raises:
    ValueError: a module without ImageNet weights, a top with `classes != 1000`, not 3 channels, a wrong size
      with the top, or a MobileNetV2 alpha Keras has no weights for.
    FileNotFoundError: the file is not cached and cannot be downloaded.

  Example:
    model = ResNet50(include_top=False, pooling="avg")
    variables = load_imagenet(model, (160, 160, 3))
  """
  try:
    record = backbones.get(module)
  except ValueError:
    raise ValueError(f"module={type(module).__name__} is not allowed; ImageNet weights exist for "
                     f"{', '.join(backbones.NAMES)}.") from None
  size = record.default_size
  input_shape = tuple(input_shape) if input_shape is not None else (size, size, 3)
  if len(input_shape) != 3:
    raise ValueError(f"input_shape={input_shape} is not allowed; expected (height, width, channels).")
  if input_shape[-1] != 3:
    raise ValueError(f"input_shape={input_shape} is not allowed with ImageNet weights: they need 3 channels.")
  if module.include_top:
    if module.classes != 1000:
      raise ValueError(f"classes={module.classes} is not allowed with ImageNet weights and include_top=True; "
                       "they need classes=1000.")
    if record.fixed_top_size and input_shape[:2] != (size, size):
      raise ValueError(f"input_shape={input_shape} is not allowed with ImageNet weights and include_top=True; "
                       f"{record.name} needs {(size, size, 3)}.")
  path = hub.fetch(record.weights_file(module, input_shape), download=download, progress=progress)
  return load_keras(module, path, np.zeros((1, *input_shape), np.float32))
