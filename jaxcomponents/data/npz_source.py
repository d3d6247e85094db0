"""Arrays from `.npz` files: Keras's dataset caches or your own."""

from __future__ import annotations

import os

from jaxcomponents import limits


def load_npz_dataset(path: str | os.PathLike, x_key: str = "x", y_key: str = "y"):
  """Reads `((x_train, y_train), (x_test, y_test))` from Keras-style keys, or `(x, y)` from `x_key`/`y_key`.

  Each array is checked against `jaxcomponents.limits` before it is read.

  Raises:
    FileNotFoundError: if `path` does not exist.
    ValueError: naming the file, if it is not an npz archive or lacks the keys (a `limits.LimitExceededError`
      if it declares more than the limits allow).

  Example:
    (x, y), (xt, yt) = load_npz_dataset("mnist.npz")
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"npz file {path!r} does not exist.")
  arrays = limits.load_npz_arrays(path)
  if {"x_train", "y_train", "x_test", "y_test"} <= set(arrays):
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
  if {x_key, y_key} <= set(arrays):
    if len(arrays[x_key]) != len(arrays[y_key]):
      raise ValueError(f"{path}: {x_key!r} has {len(arrays[x_key])} examples but {y_key!r} {len(arrays[y_key])}.")
    return arrays[x_key], arrays[y_key]
  raise ValueError(f"{path} has arrays {sorted(arrays)}; expected x_train, y_train, x_test, y_test or "
                   f"{x_key!r} and {y_key!r}.")
