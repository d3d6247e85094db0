"""Flax variable trees as flat paths, grouped by module, and fitted to a module's shapes.

Example:
  >>> flat = flatten_variables({"params": {"dense": {"kernel": 1}}})
  >>> flat
  {('params', 'dense', 'kernel'): 1}
  >>> unflatten_variables(flat)
  {'params': {'dense': {'kernel': 1}}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcomponents.tree_paths import path_parts

Path = tuple[str, ...]
Target = tuple[str, str]  # (collection, variable name)


def flatten_variables(variables: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
  """`{"params": {"dense": {"kernel": a}}}` -> `{("params", "dense", "kernel"): a}`."""
  return {
      path_parts(key_path): leaf
      for key_path, leaf in jax.tree_util.tree_flatten_with_path(dict(variables))[0]
  }


def unflatten_variables(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
  """The inverse of `flatten_variables`."""
  tree: dict[str, Any] = {}
  for path, value in flat.items():
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return tree


def leaf_layers(variables: Mapping[str, Any]) -> dict[Path, dict[Target, Any]]:
  """Groups variables by the module that owns them (its path), in creation order, "params" first."""
  leaves: dict[Path, dict[Target, Any]] = {}

  def walk(collection, node, path):
    for key, value in node.items():
      if isinstance(value, Mapping):
        walk(collection, value, path + (key,))
      else:
        leaves.setdefault(path, {})[(collection, key)] = value

  for collection in ("params", *[c for c in variables if c != "params"]):
    if collection in variables:
      walk(collection, variables[collection], ())
  return leaves


def describe_leaf(leaf: Mapping[Target, Any]) -> str:
  """`params/kernel(3, 4), params/bias(4,)`."""
  return ", ".join(f"{c}/{n}{tuple(v.shape)}" for (c, n), v in leaf.items())


def fit_to(expected: Mapping[str, Any], produced: Mapping[tuple[str, ...], tuple[Any, str]],
           what: str) -> dict[str, Any]:
  """Returns `produced` (flat path -> (value, origin)) nested like `expected`, with its dtypes.

  Every shape is compared before any value is read, so a file's array of the
  wrong shape is refused without reading it.

  Raises:
    ValueError: `what`, then every missing, unexpected and mis-shaped variable.
  """
  wanted = flatten_variables(expected)
  missing = [f"{'/'.join(k)} {tuple(wanted[k].shape)}" for k in wanted if k not in produced]
  unexpected = [f"{'/'.join(k)} {produced[k][0].shape} (from {produced[k][1]})"
                for k in produced if k not in wanted]
  misshaped = [
      f"{'/'.join(k)}: module expects {tuple(wanted[k].shape)}, {produced[k][1]} has {produced[k][0].shape}"
      for k in wanted if k in produced and tuple(produced[k][0].shape) != tuple(wanted[k].shape)
  ]
  if missing or unexpected or misshaped:
    sections = [(t, items) for t, items in
                (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if items]
    raise ValueError(
        f"{what}:\n"
        + "\n".join(f"{title}:\n" + "\n".join(f"  {i}" for i in items) for title, items in sections)
    )
  return unflatten_variables({k: jnp.asarray(np.asarray(produced[k][0]), dtype=wanted[k].dtype) for k in wanted})


__all__ = ["Path", "Target", "describe_leaf", "fit_to", "flatten_variables", "leaf_layers", "unflatten_variables"]
