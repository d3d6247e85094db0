"""Variables to and from portable `.npz` files (one array per `collection/module/.../name`)."""

from __future__ import annotations

import os
import zipfile
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
  unreadable = (OSError, EOFError, ValueError, zipfile.BadZipFile)
  try:
    archive = np.load(path)
  except unreadable as e:
    raise ValueError(f"{path!r} is not a readable .npz archive ({e}); if it was cut short, save it again.") from e
  if not isinstance(archive, np.lib.npyio.NpzFile):
    raise ValueError(f"{path!r} holds a single array, not an .npz archive of variables (as save_npz writes).")
  try:
    with archive:
      flat = {tuple(name.split("/")): (archive[name], f"{path}:{name}") for name in archive.files}
  except unreadable as e:
    raise ValueError(f"{path!r} has a damaged array ({e}); save it again.") from e
  bad = [f"{'/'.join(k)} ({value.dtype})" for k, (value, _) in flat.items()
         if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_)]
  if bad:
    raise ValueError(f"{path!r} has arrays that are not numbers: {', '.join(bad[:5])}; weights are numeric arrays.")
  if module is None:
    return unflatten_variables({k: value for k, (value, _) in flat.items()})
  shapes, _ = init_shapes(module, sample_input)
  return fit_to(shapes, flat, f"{path} does not fit the module")

