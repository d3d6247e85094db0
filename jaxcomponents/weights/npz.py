"""Variables to and from portable `.npz` files (one array per `collection/module/.../name`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from jaxcomponents.weights.convert import fit_to, flatten_variables, init_shapes, unflatten_variables


def save_npz(path: str | os.PathLike, variables: Mapping[str, Any]) -> None:
  """Writes every variable as an array named by its '/'-joined path.

  Example:
    >>> save_npz("/tmp/dense.npz", {"params": {"dense": {"kernel": np.ones((2, 3))}}})
    >>> sorted(np.load("/tmp/dense.npz"))
    ['params/dense/kernel']
  """
  flat = {"/".join(k): np.asarray(jax.device_get(v)) for k, v in flatten_variables(variables).items()}
  with open(path, "wb") as f:
    np.savez(f, **flat)


def load_npz(path: str | os.PathLike, module: nn.Module | None = None, sample_input=None) -> dict[str, Any]:
  """Reads variables saved by `save_npz`, checked against `module` when given.

  Raises:
    FileNotFoundError: if `path` does not exist.
    ValueError: if the file is not an npz archive, or its arrays do not fit
      `module` (listing missing, unexpected and mis-shaped variables).
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"weights file {path!r} does not exist.")
  try:
    with np.load(path) as archive:
      flat = {tuple(name.split("/")): (archive[name], f"{path}:{name}") for name in archive.files}
  except (OSError, ValueError) as e:
    raise ValueError(f"{path!r} is not a readable .npz archive ({e}).") from e
  if module is None:
    return unflatten_variables({k: value for k, (value, _) in flat.items()})
  shapes, _ = init_shapes(module, sample_input)
  return fit_to(shapes, flat, f"{path} does not fit the module")

