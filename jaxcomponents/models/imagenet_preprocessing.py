"""Keras's ImageNet input preprocessing (`preprocess_input`), which `BackboneClassifier` runs inside the model.

Public as `jaxcomponents.preprocessing.preprocess_input`, beside `decode_predictions`.
"""

from __future__ import annotations

import jax.numpy as jnp

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
