"""Keras's ImageNet input preprocessing and prediction decoding (`keras.applications.imagenet_utils`).

`preprocess_input` is numerics, kept with the models that run it
(`jaxcomponents.models.imagenet_preprocessing`); `decode_predictions` reads
Keras's class index file, kept with the weight files
(`jaxcomponents.weights.imagenet`).

Example:
  >>> import jax.numpy as jnp
  >>> preprocess_input(jnp.full((1, 1, 1, 3), 255.0), mode="tf").ravel().tolist()
  [1.0, 1.0, 1.0]
"""

from jaxcomponents.models.imagenet_preprocessing import MODES, preprocess_input
from jaxcomponents.weights.imagenet import decode_predictions

__all__ = ["MODES", "decode_predictions", "preprocess_input"]
