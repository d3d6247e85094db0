"""Records of keras-unet-collection's own Keras layer classes (its activations as layers).

See `jaxcomponents.keras.record` for what a record holds.
"""

from __future__ import annotations

import jax

from jaxcomponents.keras.record import KerasClass
from jaxcomponents.models.unet_blocks import Snake


def _snake(config, name, options):
  layer = Snake(beta=config.get("beta", 0.5), trainable=config.get("trainable", False), name=name,
                dtype=options.get("dtype"), param_dtype=options.get("param_dtype", jax.numpy.float32))
  return lambda x, train: layer(x)


RECORDS: dict[str, KerasClass] = {
    "Snake": KerasClass(_snake, creates_module=True, weights=({"beta_factor": ("params", "beta_factor")},)),
}
