"""Argument checks that fail with one clear message.

Every message names the parameter, the value given and what is allowed, so a
bad configuration is caught where it is written, not deep inside a trace.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

# `jax.lax.Precision`'s names (JAX also takes the aliases 'fastest', 'bfloat16', 'bfloat16_3x', 'tensorfloat32'
# and 'float32').
PRECISIONS = ("default", "high", "highest")
_PRECISION_ALIASES = ("fastest", "bfloat16", "bfloat16_3x", "tensorfloat32", "float32")


def check_choice(param: str, value: Any, allowed: Iterable[Any]) -> Any:
  """Returns `value` if it is one of `allowed`, else raises `ValueError`.

  Example:
    >>> check_choice("padding", "SAME", ("SAME", "VALID"))
    'SAME'
  """
  allowed = tuple(allowed)
  if value not in allowed:
    raise ValueError(
        f"{param}={value!r} is not allowed; expected one of "
        f"{', '.join(repr(a) for a in allowed)}."
    )
  return value


def is_int(value: Any) -> bool:
  """Whether `value` is an integer as Keras takes one: a Python or NumPy integer, not a bool.

  Example:
    >>> is_int(3), is_int(np.int64(3)), is_int(True), is_int(3.0)
    (True, True, False, False)
  """
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
  """Whether `value` is a real number: a Python or NumPy integer or float, not a bool."""
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_int(param: str, value: Any, *, allow_zero: bool = False) -> int:
  """Returns `value` as an int if it is a positive integer (or zero when allowed); NumPy integers count."""
  ok = is_int(value) and (value >= 0 if allow_zero else value > 0)
  if not ok:
    bound = "a non-negative" if allow_zero else "a positive"
    raise ValueError(f"{param}={value!r} is not allowed; expected {bound} integer.")
  return int(value)


def check_bool(param: str, value: Any) -> bool:
  """`value` as a bool if it is True or False (NumPy's too), else `ValueError` naming `param`.

  Example:
    >>> check_bool("return_sequences", np.True_)
    True
  """
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{param}={value!r} is not allowed; expected True or False.")
  return bool(value)


def check_rate(param: str, value: Any) -> float:
  """Returns `value` if it is a probability in [0, 1)."""
  if not is_real(value) or not 0.0 <= value < 1.0:
    raise ValueError(f"{param}={value!r} is not allowed; expected a float in [0, 1).")
  return float(value)


def as_tuple(param: str, value: Any, n: int, *, allow_zero: bool = False) -> tuple[int, ...]:
  """Expands an int or a length-`n` sequence of ints into an `n`-tuple.

  Example:
    >>> as_tuple("kernel_size", 3, 2)
    (3, 3)
  """
  values = (value,) * n if is_int(value) else value
  kind = "non-negative" if allow_zero else "positive"
  ok = (isinstance(values, Sequence) or np.ndim(values) == 1) and len(values) == n and all(
      is_int(v) and (v >= 0 if allow_zero else v > 0) for v in values)
  if not ok:
    raise ValueError(
        f"{param}={value!r} is not allowed; expected a {kind} integer or a sequence of {n} {kind} integers."
    )
  return tuple(int(v) for v in values)


def check_rank(param: str, shape: Sequence[int], allowed_ranks: Iterable[int], meaning: str) -> None:
  """Raises if an input's rank is not one of `allowed_ranks`."""
  allowed_ranks = tuple(allowed_ranks)
  if len(shape) not in allowed_ranks:
    raise ValueError(
        f"{param} has shape {tuple(shape)} (rank {len(shape)}); expected rank "
        f"{' or '.join(str(r) for r in allowed_ranks)}: {meaning}."
    )


def check_dtype(param: str, value: Any, *, allow_none: bool = False) -> Any:
  """Returns `value` if it names a floating-point dtype (or is None when allowed), else raises `ValueError`.

  Example:
    >>> import jax.numpy as jnp
    >>> check_dtype("dtype", jnp.bfloat16) is jnp.bfloat16
    True
  """
  if value is None and allow_none:
    return value
  import jax.numpy as jnp

  try:
    ok = value is not None and jnp.issubdtype(jnp.dtype(value), jnp.floating)
  except TypeError:
    ok = False
  if not ok:
    none = "None or " if allow_none else ""
    raise ValueError(f"{param}={value!r} is not allowed; expected {none}a floating-point dtype such as jnp.float32, "
                     "jnp.bfloat16, jnp.float16 or its name ('bfloat16').")
  return value


def check_precision(param: str, value: Any) -> Any:
  """Returns `value` if JAX takes it as a matmul/convolution precision, else raises `ValueError`.

  Allowed: None (JAX's default, see `jax.default_matmul_precision`), a
  `jax.lax.Precision`, one of its names ('default', 'high', 'highest', or
  JAX's aliases such as 'float32' and 'tensorfloat32'), or a pair of those,
  one per operand.

  Example:
    >>> check_precision("precision", "highest")
    'highest'
  """
  from jax import lax

  def one(v):
    return isinstance(v, lax.Precision) or (isinstance(v, str) and v in (*PRECISIONS, *_PRECISION_ALIASES))

  pair = isinstance(value, (tuple, list)) and len(value) == 2 and all(one(v) for v in value)
  if not (value is None or one(value) or pair):
    raise ValueError(f"{param}={value!r} is not allowed; expected None, a jax.lax.Precision, one of "
                     f"{', '.join(map(repr, PRECISIONS))} (or JAX's aliases "
                     f"{', '.join(map(repr, _PRECISION_ALIASES))}), or a pair of them (one per operand).")
  return value


def changed_fields(obj: Any, names: Iterable[str], unset: Any = None) -> list[str]:
  """`name=value` for each dataclass field of `obj` in `names` not at its default (`unset` for a field without one).

  Example:
    >>> @dataclasses.dataclass
    ... class Layer:
    ...   units: int | None
    ...   use_bias: bool = True
    >>> changed_fields(Layer(4, use_bias=False), ("units", "use_bias"))
    ['units=4', 'use_bias=False']
  """
  defaults = {f.name: unset if f.default is dataclasses.MISSING else f.default for f in dataclasses.fields(obj)}
  return [f"{name}={getattr(obj, name)!r}" for name in names if getattr(obj, name) != defaults[name]]
