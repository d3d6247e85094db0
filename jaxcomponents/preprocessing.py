"""Keras's ImageNet input preprocessing and prediction decoding."""

from __future__ import annotations

import functools
import json

import jax.numpy as jnp
import numpy as np

from jaxcomponents.errors import check_choice

MODES = ("caffe", "tf", "torch")
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN, _TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def preprocess_input(x, mode: str = "caffe"):
  """Scales RGB images in [0, 255] as Keras's `preprocess_input` does for `mode`.

  - "caffe" (VGG, ResNet v1): RGB -> BGR, minus the ImageNet mean per channel.
  - "tf" (InceptionV3, MobileNet, MobileNetV2, ResNet v2): to [-1, 1].
  - "torch" (DenseNet): to [0, 1], minus mean, over std per channel.

  Each backbone's mode is `models.backbones.get(name).preprocessing` (None
  for EfficientNet, which scales its input itself).

  Example:
    >>> preprocess_input(jnp.full((1, 1, 1, 3), 255.0), "tf").ravel().tolist()
    [1.0, 1.0, 1.0]
  """
  check_choice("mode", mode, MODES)
  x = jnp.asarray(x, jnp.float32)
  if mode == "tf":
    return x / 127.5 - 1.0
  if mode == "torch":
    return (x / 255.0 - jnp.asarray(_TORCH_MEAN)) / jnp.asarray(_TORCH_STD)
  return x[..., ::-1] - jnp.asarray(_CAFFE_MEAN_BGR)


@functools.lru_cache(maxsize=1)
def _class_index(path: str) -> dict[str, list[str]]:
  with open(path) as f:
    return json.load(f)


def decode_predictions(preds, top: int = 5, *, download: bool = True):
  """The `top` (wordnet id, class name, score) triples per row of ImageNet predictions.

  The class index is Keras's `imagenet_class_index.json`, found in Keras's
  cache or jaxcomponents' cache, or downloaded once and verified.

  Raises:
    ValueError: if `preds` is not of shape (batch, 1000).
  """
  from jaxcomponents.weights import hub

  preds = np.asarray(preds)
  if preds.ndim != 2 or preds.shape[1] != 1000:
    raise ValueError(f"preds has shape {preds.shape}; decode_predictions expects (batch, 1000) ImageNet scores.")
  index = _class_index(hub.fetch(hub.IMAGENET_CLASS_INDEX, download=download))
  results = []
  for row in preds:
    best = row.argsort()[-top:][::-1]
    results.append([(*index[str(i)], float(row[i])) for i in best])
  return results
