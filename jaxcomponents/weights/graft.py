"""Put pretrained variables (a backbone's) into a bigger model's variables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax


def graft(variables: Mapping[str, Any], path: str, pretrained: Mapping[str, Any]) -> dict[str, Any]:
  """Returns `variables` with `pretrained` placed at submodule `path` ("backbone" or "encoder/backbone").

  Every collection of `pretrained` must land on a subtree of exactly the same
  structure and shapes; anything else is an error listing the differences.

  Example:
    >>> import jax.numpy as jnp
    >>> v = {"params": {"backbone": {"w": jnp.zeros(2)}, "head": {"w": jnp.zeros(3)}}}
    >>> graft(v, "backbone", {"params": {"w": jnp.ones(2)}})["params"]["backbone"]["w"].tolist()
    [1.0, 1.0]
  """
  keys = path.split("/")
  out = {c: dict(tree) for c, tree in variables.items()}
  for collection, subtree in pretrained.items():
    if collection not in out:
      raise ValueError(f"pretrained collection {collection!r} has no counterpart; the model has {sorted(out)}.")
    node = out[collection]
    for key in keys[:-1]:
      if key not in node:
        raise ValueError(f"path={path!r} is not a submodule of the model's {collection!r}; it has {sorted(node)}.")
      node[key] = dict(node[key])
      node = node[key]
    if keys[-1] not in node:
      raise ValueError(f"path={path!r} is not a submodule of the model's {collection!r}; it has {sorted(node)}.")
    old = node[keys[-1]]
    shape = lambda t: jax.tree.map(lambda a: tuple(a.shape), t)
    if jax.tree.structure(old) != jax.tree.structure(subtree) or shape(old) != shape(subtree):
      raise ValueError(f"pretrained {collection!r} does not fit {path!r}: expected {shape(old)}, got {shape(subtree)}.")
    node[keys[-1]] = subtree
  return out
