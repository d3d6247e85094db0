"""Names of pytree leaves: the `a/b/kernel` paths that freezing, regularizers and weight conversion match."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def path_parts(key_path: Sequence[Any]) -> tuple[str, ...]:
  """A `jax.tree_util` key path as strings: dict keys, attribute names and sequence indices."""
  return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in key_path)


def path_string(key_path: Sequence[Any]) -> str:
  """`("Dense_0", "dense", "kernel")` -> `"Dense_0/dense/kernel"`.

  Example:
    >>> import jax
    >>> [path_string(p) for p, _ in jax.tree_util.tree_flatten_with_path({"a": {"b": 1}})[0]]
    ['a/b']
  """
  return "/".join(path_parts(key_path))
