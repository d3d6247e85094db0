"""Variables to and from portable `.npz` files (one array per `collection/module/.../name`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from jaxcomponents import files, limits
from jaxcomponents.keras.convert import init_shapes
from jaxcomponents.variable_trees import fit_to, flatten_variables, unflatten_variables


def save_npz(path: str | os.PathLike, variables: Mapping[str, Any], *, overwrite: bool = True) -> None:
  """Writes every variable as an array named by its '/'-joined path.

  The file is written beside `path` and renamed into place (`files.write_beside`): a failed write leaves an
  existing file as it was. `overwrite=False` refuses an existing file (Keras's `save_weights` default is True).

  Example:
    >>> save_npz("/tmp/dense.npz", {"params": {"dense": {"kernel": np.ones((2, 3))}}})
    >>> sorted(np.load("/tmp/dense.npz"))
    ['params/dense/kernel']
  """
  flat = {"/".join(k): np.asarray(jax.device_get(v)) for k, v in flatten_variables(variables).items()}

  def write(staged: str) -> None:
    with open(staged, "wb") as f:
      np.savez(f, **flat)

  files.write_beside(path, write, overwrite=overwrite)


def load_npz(path: str | os.PathLike, module: nn.Module | None = None, sample_input=None) -> dict[str, Any]:
  """Reads variables saved by `save_npz`, checked against `module` when given.

  Every array's header is checked against `jaxcomponents.limits`, and with
  `module` its shape against the module's, before it is read.

  Raises:
    FileNotFoundError: if `path` does not exist.
    ValueError: if the file is not an npz archive, or its arrays do not fit
      `module` (listing missing, unexpected and mis-shaped variables); a
      `limits.LimitExceededError` if it declares more than the limits allow.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"weights file {path!r} does not exist.")
  try:
    with open(path, "rb") as f:
      single_array = f.read(6) == b"\x93NUMPY"
  except OSError as e:
    raise ValueError(f"{path!r} is not a readable .npz archive ({e}).") from e
  if single_array:
    raise ValueError(f"{path!r} holds a single array, not an .npz archive of variables (as save_npz writes).")
  try:
    with limits.open_npz(path) as arrays:  # each array is read only once its header passes every check
      flat = {tuple(name.split("/")): (member, f"{path}:{name}") for name, member in arrays.items()}
      bad = [f"{'/'.join(k)} ({member.dtype})" for k, (member, _) in flat.items()
             if not (np.issubdtype(member.dtype, np.number) or member.dtype == np.bool_)]
      if bad:
        raise ValueError(f"{path!r} has arrays that are not numbers: {', '.join(bad[:5])}; weights are numeric "
                         f"arrays.")
      if module is None:
        return unflatten_variables({k: np.asarray(member) for k, (member, _) in flat.items()})
      shapes, _ = init_shapes(module, sample_input)
      return fit_to(shapes, flat, f"{path} does not fit the module")
  except limits.UnreadableFileError as e:
    raise ValueError(f"{path!r} is not a readable .npz archive ({e.reason}); if it was cut short, save it "
                     "again.") from e
