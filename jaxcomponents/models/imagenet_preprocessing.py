"""Keras's ImageNet input preprocessing (`preprocess_input`), which `BackboneClassifier` runs inside the model.

Public as `jaxcomponents.preprocessing.preprocess_input`, beside `decode_predictions`.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxcomponents.errors import check_choice

MODES = ("caffe", "tf", "torch")
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN, _TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def preprocess_input(x, data_format: str | None = None, mode: str = "caffe"):
  """Scales RGB images in [0, 255] as Keras's `imagenet_utils.preprocess_input(x, data_format, mode)` does.

  - "caffe" (VGG, ResNet v1): RGB -> BGR, minus the ImageNet mean per channel.
  - "tf" (InceptionV3, MobileNet, MobileNetV2, ResNet v2): to [-1, 1].
  - "torch" (DenseNet): to [0, 1], minus mean, over std per channel.

  `data_format` is "channels_last" (None) or "channels_first"; a batch or
  one image. As in Keras, "caffe" and "torch" adjust the first three channels
  and need at least three. Each backbone's mode is
  `models.backbones.get(name).preprocessing` (None for EfficientNet, which
  scales its input itself).

  Example:
    >>> preprocess_input(jnp.full((1, 1, 1, 3), 255.0), mode="tf").ravel().tolist()
    [1.0, 1.0, 1.0]
  """
  check_choice("mode", mode, MODES)
  check_choice("data_format", data_format, (None, "channels_last", "channels_first"))
  x = jnp.asarray(x, jnp.float32)
  if mode == "tf":
    return x / 127.5 - 1.0
  axis = (0 if x.ndim == 3 else 1) if data_format == "channels_first" else x.ndim - 1
  channels = x.shape[axis]
  if channels < 3:
    raise ValueError(f"x has {channels} channel(s) on axis {axis}; preprocess_input(mode={mode!r}) adjusts three "
                     "(RGB), as Keras's does.")
  shape = [1] * x.ndim
  shape[axis] = channels

  def per_channel(values, fill):
    return jnp.asarray(list(values) + [fill] * (channels - 3), jnp.float32).reshape(shape)

  if mode == "torch":
    return (x / 255.0 - per_channel(_TORCH_MEAN, 0.0)) / per_channel(_TORCH_STD, 1.0)
  return jnp.flip(x, axis) - per_channel(_CAFFE_MEAN_BGR, 0.0)
