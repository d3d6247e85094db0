"""Regenerates `applications.json`: every backbone's Keras layers and weight shapes, for tests/test_backbones.py.

Building the larger `keras.applications` models takes Keras tens of seconds
each, too long to repeat in every test run, so their architecture (layer
names and classes, weight names and shapes, parameter count; without the top,
as a fresh Keras session names the layers) is recorded here once:

  KERAS_BACKEND=jax python tests/reference/make_application_layers.py

The smallest member of each family is also compared with Keras live, numbers
included (`test_new_backbones_match_keras_with_their_taps`).
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402

from jaxcomponents.models import backbones  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "applications.json")


def describe(name: str, size: int) -> dict:
  keras.backend.clear_session()
  model = getattr(keras.applications, name)(weights=None, include_top=False, input_shape=(size, size, 3))
  layers = [[layer.name, type(layer).__name__, [[w.path.split("/")[-1], list(w.shape)] for w in layer.weights]]
            for layer in model.layers if layer.weights]
  return {"keras_version": keras.__version__, "input_size": size, "count_params": model.count_params(),
          "layers": layers}


def main() -> None:
  table = {}
  for name in backbones.NAMES:
    table[name] = describe(name, max(backbones.get(name).min_size, 32))
    print(name, table[name]["count_params"], flush=True)
  with open(OUT, "w") as f:
    json.dump(table, f, separators=(",", ":"))
    f.write("\n")


if __name__ == "__main__":
  main()
