"""Regenerates `summary_counts.json`: every backbone's Keras parameter counts, for tests/test_summary.py.

Building the larger `keras.applications` models takes Keras tens of seconds
each, so their totals (`count_params()`, trainable and non-trainable; with and
without the top, at the smallest input size `applications.json` uses) are
recorded here once:

  KERAS_BACKEND=jax python tests/reference/make_summary_counts.py

`tests/test_summary.py` also compares a few backbones with Keras live.
"""

from __future__ import annotations

import json
import math
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402

from jaxcomponents.models import backbones  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "summary_counts.json")


def input_size(name: str) -> int:
  return max(backbones.get(name).min_size, 32)


def counts(name: str, size: int, include_top: bool) -> dict:
  keras.backend.clear_session()
  model = getattr(keras.applications, name)(weights=None, include_top=include_top, input_shape=(size, size, 3))
  trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
  non_trainable = sum(math.prod(w.shape) for w in model.non_trainable_weights)
  assert trainable + non_trainable == model.count_params(), name
  return {"count_params": model.count_params(), "trainable": trainable, "non_trainable": non_trainable}


def main() -> None:
  table = {}
  for name in backbones.NAMES:
    size = input_size(name)
    table[name] = {"keras_version": keras.__version__, "input_size": size,
                   "no_top": counts(name, size, False), "top": counts(name, size, True)}
    print(name, table[name], flush=True)
  with open(OUT, "w") as f:
    json.dump(table, f, indent=1)
    f.write("\n")


if __name__ == "__main__":
  main()
