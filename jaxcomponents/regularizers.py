"""Weight penalties as Keras computes them, over a whole params pytree or a selection of it.

A regularizer is a function `params -> scalar`: the sum over the leaves of
Keras's penalty of each leaf (`l1 * sum(|w|)`, `l2 * sum(w**2)`), which is what
Keras adds to the loss when every selected variable carries that regularizer.
`select` restricts one to the parameters whose path matches, e.g. kernels only.

Example:
  >>> import jax.numpy as jnp
  >>> params = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}}
  >>> round(float(select(l2(), "kernel$")(params)), 4)
  0.04
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxcomponents.errors import is_real
from jaxcomponents.registry import Registry
from jaxcomponents.tree_paths import path_string

Regularizer = Callable[[Any], jax.Array]


def _check_factor(param: str, value: Any) -> float:
  if not is_real(value) or not value >= 0 or value == float("inf"):
    raise ValueError(f"{param}={value!r} is not allowed; expected a finite float >= 0.")
  return float(value)


@dataclasses.dataclass(frozen=True)
class L1L2:
  """`l1 * sum(|w|) + l2 * sum(w**2)` summed over every leaf of a params pytree.

  Example:
    >>> import jax.numpy as jnp
    >>> float(L1L2(l1=0.5)({"w": jnp.array([-1.0, 2.0])}))
    1.5
  """

  l1: float = 0.0
  l2: float = 0.0

  def __post_init__(self):
    object.__setattr__(self, "l1", _check_factor("l1", self.l1))
    object.__setattr__(self, "l2", _check_factor("l2", self.l2))

  def __call__(self, params: Any) -> jax.Array:
    total = jnp.zeros((), jnp.float32)
    for leaf in jax.tree.leaves(params):
      leaf = jnp.asarray(leaf)
      if self.l1:
        total = total + jnp.asarray(self.l1, leaf.dtype) * jnp.sum(jnp.abs(leaf))
      if self.l2:
        total = total + jnp.asarray(self.l2, leaf.dtype) * jnp.sum(jnp.square(leaf))
    return total


def l1(l1: float = 0.01) -> L1L2:
  """Keras's `L1` (default factor 0.01): `l1 * sum(|w|)` over every leaf.

  Example:
    >>> import jax.numpy as jnp
    >>> round(float(l1()({"w": jnp.array([-1.0, 3.0])})), 4)
    0.04
  """
  return L1L2(l1=l1)


def l2(l2: float = 0.01) -> L1L2:
  """Keras's `L2` (default factor 0.01): `l2 * sum(w**2)` over every leaf.

  Example:
    >>> import jax.numpy as jnp
    >>> float(l2(0.5)({"w": jnp.array([2.0])}))
    2.0
  """
  return L1L2(l2=l2)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
  """L1 plus L2 with the defaults Keras documents for the string `'l1_l2'` (0.01 each).

  Keras 3's `L1L2()` class itself defaults to 0.0 and 0.0; pass the factors to match it.

  Example:
    >>> import jax.numpy as jnp
    >>> round(float(l1_l2()({"w": jnp.array([2.0])})), 4)
    0.06
  """
  return L1L2(l1=l1, l2=l2)


@dataclasses.dataclass(frozen=True)
class Selected:
  """A regularizer applied only to the leaves whose path `include` selects (see `select`)."""

  regularizer: Regularizer
  include: str | Callable[[str, Any], bool]

  def __call__(self, params: Any) -> jax.Array:
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    if callable(self.include):
      chosen = [leaf for path, leaf in flat if self.include(path_string(path), leaf)]
    else:
      pattern = re.compile(self.include)
      chosen = [leaf for path, leaf in flat if pattern.search(path_string(path))]
    if not chosen:
      paths = [path_string(path) for path, _ in flat[:5]]
      raise ValueError(f"include={self.include!r} selects no parameter; parameter paths are e.g. {paths}.")
    return self.regularizer(chosen)


def select(regularizer: Regularizer, include: str | Callable[[str, Any], bool]) -> Selected:
  """Restricts `regularizer` to the parameters `include` selects.

  Args:
    regularizer: e.g. `l2(1e-4)`.
    include: a regular expression searched (`re.search`) in each parameter's
      path, its keys joined by "/" (`"Dense_0/dense/kernel"`); anchor it
      (`"kernel$"`) for an exact end. Or a predicate `(path, leaf) -> bool`.

  Returns:
    `params -> penalty`; selecting nothing raises `ValueError` (a typo never silently regularizes nothing).

  Example:
    >>> import jax.numpy as jnp
    >>> params = {"conv": {"kernel": jnp.ones(3), "bias": jnp.ones(3)}}
    >>> float(select(l1(1.0), lambda path, leaf: leaf.ndim == 1 and "bias" in path)(params))
    3.0
  """
  if not (callable(include) or isinstance(include, str)):
    raise ValueError(f"include={include!r} is not allowed; expected a regular expression or a predicate.")
  if isinstance(include, str):
    try:
      re.compile(include)
    except re.error as e:
      raise ValueError(f"include={include!r} is not allowed; it is not a regular expression ({e}).") from None
  return Selected(regularizer, include)


# Keras 3's class names and their snake_case (`keras.regularizers.ALL_OBJECTS_DICT`), and Keras 2's `l1_l2`. Keras 3's
# `L1L2` class defaults to 0.0 and 0.0; Keras 2's `l1_l2` function to 0.01 and 0.01.
REGULARIZERS = Registry("regularizer", snake_case_classes=True, passes_what="a callable params -> penalty")
REGULARIZERS.register("l1", l1, keras_class="L1")
REGULARIZERS.register("l2", l2, keras_class="L2")
REGULARIZERS.register("l1_l2", l1_l2)
REGULARIZERS.register("l1l2", L1L2, keras_class="L1L2")
ALIASES = REGULARIZERS.aliases  # every accepted spelling -> its canonical name


def get(name: str | Mapping[str, Any] | Regularizer, /, **factors: float) -> Regularizer:
  """Returns the regularizer `name` with its factors, as `keras.regularizers.get`.

  Args:
    name: `"l1"`, `"l2"`, `"l1_l2"` (Keras 2's, 0.01 each by default), Keras 3's class names `"L1"`, `"L2"`,
      `"L1L2"` (0.0 each by default, as the class) and their snake_case; or a Keras config dict
      (`keras.regularizers.serialize(...)`); or a callable, returned as is.
    **factors: `l1` and/or `l2`, as the regularizer takes them.

  Raises:
    ValueError: for an unknown name or a factor the regularizer does not have.

  Example:
    >>> get("l2", l2=1e-4).l2
    0.0001
    >>> get({"class_name": "L1L2", "config": {"l1": 0.0, "l2": 0.5}}) == L1L2(l2=0.5)
    True
  """
  return REGULARIZERS.get(name, **factors)
