"""Records of Keras's random image augmentation layers: see `jaxcomponents.keras.record`.

At inference each of them is the identity, as Keras computes it (`training=False`): in float32, except the
colour layers (`RandomContrast`, `RandomBrightness`, ...), which hand their input on as it is, so a model
trained in Keras with its augmentation inside converts for `predict` and `evaluate`. Their random draws in training are not
computed: a train step through one is refused, naming it (augment in the input
pipeline instead). Layers that change the shape (`RandomCrop`) or that act at
inference too (`AutoContrast`, `Solarization`, ...) are not recorded.

Example:
  >>> import jax.numpy as jnp
  >>> call = RECORDS["RandomFlip"].build({"mode": "horizontal"}, "flip", {})
  >>> call(jnp.ones((1, 2, 2, 3), jnp.uint8), train=False).dtype
  dtype('float32')
  >>> RECORDS["RandomContrast"].build({"factor": 0.1}, "contrast", {})(jnp.ones((1, 2, 2, 3), jnp.uint8), False).dtype
  dtype('uint8')
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxcomponents.keras.record import KerasClass

_RANDOM_AUGMENTATIONS = (
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomShear", "RandomPerspective",
    "RandomElasticTransform", "RandomContrast", "RandomBrightness", "RandomHue", "RandomSaturation",
    "RandomGrayscale", "RandomColorJitter", "RandomColorDegeneration", "RandomSharpness", "RandomPosterization",
    "RandomInvert", "RandomGaussianBlur", "RandomErasing",
)


# The colour layers transform (and cast) only in training: at inference their input passes in its own dtype.
_KEEP_DTYPE = ("RandomContrast", "RandomBrightness", "RandomHue", "RandomSaturation", "RandomGrayscale",
               "RandomColorJitter", "RandomColorDegeneration", "RandomPosterization", "RandomInvert")


def _augmentation(class_name: str) -> KerasClass:
  def build(config, name, options):
    def call(x, train):
      if train:
        raise ValueError(f"{name} ({class_name}) draws a random augmentation in training, which jaxcomponents does "
                         "not compute (at inference it is the identity, as in Keras, so predict and evaluate run); "
                         "train without it and augment in the input pipeline (jaxcomponents.data's transforms).")
      return jnp.asarray(x) if class_name in _KEEP_DTYPE else jnp.asarray(x).astype(jnp.float32)
    return call
  return KerasClass(build)


RECORDS: dict[str, KerasClass] = {name: _augmentation(name) for name in _RANDOM_AUGMENTATIONS}
