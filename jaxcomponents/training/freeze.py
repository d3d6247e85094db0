"""Freezing by parameter-path patterns, in the optimizer.

Each parameter gets the label of the first rule whose regular expression
matches its path (`"Dense_0/dense/kernel"`); a parameter no rule matches,
or a rule that matches no parameter, is an error, so a typo never silently
trains or freezes the wrong thing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import optax

from jaxcomponents.tree_paths import path_string




def label_params(params: Any, rules: Sequence[tuple[str, str]]) -> Any:
  """Labels every parameter by the first rule (pattern, label) that fully matches its path.

  Raises:
    ValueError: naming the parameters no rule matches, or the rules that match nothing.

  Example:
    >>> import numpy as np
    >>> label_params({"conv": {"kernel": np.ones(2)}, "head": {"kernel": np.ones(2)}},
    ...              [("conv/.*", "frozen"), (".*", "trainable")])
    {'conv': {'kernel': 'frozen'}, 'head': {'kernel': 'trainable'}}
  """
  compiled = [(re.compile(pattern), label) for pattern, label in rules]
  used = [False] * len(compiled)
  unmatched = []

  def label(key_path, _):
    path = path_string(key_path)
    for i, (pattern, name) in enumerate(compiled):
      if pattern.fullmatch(path):
        used[i] = True
        return name
    unmatched.append(path)
    return None

  labels = jax.tree_util.tree_map_with_path(label, params)
  if unmatched:
    raise ValueError(
        f"rules={[p for p, _ in rules]!r} leave parameters {unmatched} without a rule; "
        "every parameter must match one (add a catch-all rule such as '.*')."
    )
  unused = [rules[i][0] for i, u in enumerate(used) if not u]
  if unused:
    raise ValueError(
        f"rule patterns {unused} match no parameter; parameter paths are e.g. "
        f"{[path_string(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0][:5]]}."
    )
  return labels


def partition(transforms: Mapping[str, optax.GradientTransformation], rules: Sequence[tuple[str, str]]):
  """One optimizer per label: `optax.multi_transform` with labels from `rules`."""
  labels = {label for _, label in rules}
  missing = sorted(labels - set(transforms))
  if missing:
    raise ValueError(f"rule labels {missing} have no transform; transforms are given for {sorted(transforms)}.")
  return optax.multi_transform(dict(transforms), lambda params: label_params(params, rules))


def frozen_mask(tree: Any, frozen: Sequence[str]) -> Any:
  """True for every leaf whose path fully matches a `frozen` pattern; each pattern must match one.

  Example:
    >>> import numpy as np
    >>> frozen_mask({"conv": {"kernel": np.ones(2)}, "head": {"kernel": np.ones(2)}}, ["conv/.*"])
    {'conv': {'kernel': True}, 'head': {'kernel': False}}
  """
  if isinstance(frozen, str):
    frozen = [frozen]
  compiled = [re.compile(pattern) for pattern in frozen]
  paths = [path_string(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
  unused = [p.pattern for p in compiled if not any(p.fullmatch(path) for path in paths)]
  if unused:
    raise ValueError(f"frozen patterns {unused} match no path; paths are e.g. {paths[:5]}.")
  return jax.tree_util.tree_map_with_path(
      lambda key_path, _: any(p.fullmatch(path_string(key_path)) for p in compiled), tree)


def freeze(tx: optax.GradientTransformation, frozen: Sequence[str]) -> optax.GradientTransformation:
  """`tx` for every parameter except those matching a `frozen` pattern, which never change.

  Frozen parameters get no optimizer state. A pattern that matches no
  parameter is an error.

  Example:
    >>> tx = freeze(optax.adam(1e-3), ["Convolution_.*"])
  """
  return optax.multi_transform(
      {"frozen": optax.set_to_zero(), "trainable": tx},
      lambda params: jax.tree.map(lambda f: "frozen" if f else "trainable", frozen_mask(params, frozen)))
