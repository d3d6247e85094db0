"""Keras's ImageNet files: the backbones' weights (`load_imagenet`, `init_unet`) and the class index.

- `load_imagenet(backbone, input_shape)`: Keras's ImageNet weights, checked like Keras checks them.
- `init_unet(model, x)`: a U-Net's variables with its backbone's weights ("imagenet" or a Keras `.h5` path).
- `decode_predictions(preds)`: Keras's `decode_predictions`, through Keras's class index file.

Flax modules do no I/O; these functions read the files for them, which `hub` finds, downloads and verifies.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcomponents import activations
from jaxcomponents.errors import check_positive_int
from jaxcomponents.models import backbones
from jaxcomponents.models.unet_backbone import (backbone_arguments, backbone_path, check_backbone_input,
                                                loads_backbone_weights, weights_loaded_elsewhere)
from jaxcomponents.weights import hub
from jaxcomponents.weights.convert import load_keras
from jaxcomponents.weights.graft import graft


def load_imagenet(module: nn.Module, input_shape: tuple[int, int, int] | None = None, *, download: bool = True,
                  progress: bool = True) -> dict[str, Any]:
  """Returns the module's variables holding Keras's ImageNet weights.

  Args:
    module: a backbone of `jaxcomponents.models` (see `models.backbones.NAMES`), with its top, without, or
      cut at its `taps` (as the U-Net's encoder is: the layers it has are paired with the file's by name).
    input_shape: (height, width, channels); default: the model's ImageNet
      size. With the top, Keras requires the default size (MobileNet's and
      MobileNetV2's: a square size they have a file for) and a softmax or no
      classifier activation; MobileNetV2's file is chosen by `alpha` and the
      input size (96, 128, 160, 192 or 224; without the top, other sizes get
      the 224 file with a warning, as in Keras).
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
  if any(n is not None and n < record.min_size for n in input_shape[:2]):
    raise ValueError(f"input_shape={input_shape} is not allowed: {record.name} takes images of at least "
                     f"{record.min_size} x {record.min_size}.")
  if module.include_top:
    if module.classes != 1000:
      raise ValueError(f"classes={module.classes} is not allowed with ImageNet weights and include_top=True; "
                       "they need classes=1000.")
    sizes = (size,) if record.fixed_top_size else record.top_sizes
    if input_shape[0] != input_shape[1] or input_shape[0] not in sizes:
      needs = f"{(size, size, 3)}" if len(sizes) == 1 else f"a square size of {sizes}"
      raise ValueError(f"input_shape={input_shape} is not allowed with ImageNet weights and include_top=True; "
                       f"{record.name} needs {needs}.")
    classifier = getattr(module, "classifier_activation", None)
    if classifier is not None and activations.get(classifier, "classifier_activation") not in (
        activations.get("softmax"), activations.get("linear")):
      raise ValueError(f"classifier_activation={classifier!r} is not allowed with ImageNet weights and "
                       "include_top=True; expected None or 'softmax' (as Keras).")
  if None in input_shape[:2]:  # any size, as Keras's no-top model built without an input shape
    if module.include_top:
      raise ValueError(f"input_shape={input_shape} is not allowed with include_top=True; the top needs a size.")
    input_shape = (size, size, 3)  # the weights are the same for every size; the file is the default size's
  path = hub.fetch(record.weights_file(module, input_shape), download=download, progress=progress)
  return load_keras(module, path, np.zeros((1, *input_shape), np.float32))


def init_unet(model: nn.Module, sample_input: jax.Array, *, seed: int | jax.Array = 0, download: bool = True,
              progress: bool = True) -> dict[str, Any]:
  """Initialises a keras-unet-collection twin (`unet_2d`, `unet_plus_2d` ...) and loads its backbone's `weights`.

  ImageNet weights are Keras's no-top files, through `load_imagenet`
  (fetched and verified by `jaxcomponents.weights.hub`; MobileNetV2's by input
  size, as Keras picks it). `seed` is the seed (or PRNG key) of the other layers' initial weights.

  Raises:
    ValueError: ImageNet weights with an input that does not have 3 channels.
    FileNotFoundError: the weights file is not cached and cannot be downloaded.

  Example:
    >>> from jaxcomponents.models import unet_2d
    >>> model = unet_2d((32, 32, 3), [4, 8], n_labels=2)
    >>> sorted(init_unet(model, jnp.zeros((1, 32, 32, 3))))
    ['params']
  """
  sample_input = jnp.asarray(sample_input)
  with weights_loaded_elsewhere():  # below
    variables = jax.jit(model.init)(jax.random.key(seed) if isinstance(seed, int) else seed, sample_input)
  if not loads_backbone_weights(model):
    return variables  # no backbone (some kuc models take none), or no weights to load
  check_backbone_input(model, sample_input.shape[1:])
  encoder = backbones.get(model.backbone).module(**backbone_arguments(model), **model.precision_options)
  if model.weights == "imagenet":
    pretrained = load_imagenet(encoder, sample_input.shape[1:], download=download, progress=progress)
  else:
    pretrained = load_keras(encoder, os.fspath(model.weights), sample_input[:1], match="name")
  return graft(variables, backbone_path(model), pretrained)


@functools.lru_cache(maxsize=1)
def _class_index(path: str) -> dict[str, list[str]]:
  with open(path) as f:
    return json.load(f)


def decode_predictions(preds, top: int = 5, *, download: bool = True):
  """The `top` (wordnet id, class name, score) triples per row of ImageNet predictions.

  The class index is Keras's `imagenet_class_index.json`, found in Keras's
  cache or jaxcomponents' cache, or downloaded once and verified.

  Raises:
    ValueError: if `preds` is not of shape (batch, 1000), or `top` is not a positive integer.
  """
  preds = np.asarray(preds)
  if preds.ndim != 2 or preds.shape[1] != 1000:
    raise ValueError(f"preds has shape {preds.shape}; decode_predictions expects (batch, 1000) ImageNet scores.")
  check_positive_int("top", top)
  index = _class_index(hub.fetch(hub.IMAGENET_CLASS_INDEX, download=download))
  results = []
  for row in preds:
    best = row.argsort()[-top:][::-1]
    results.append([(*index[str(i)], float(row[i])) for i in best])
  return results
