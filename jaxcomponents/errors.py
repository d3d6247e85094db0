"""Argument checks that fail with one clear message.

Every message names the parameter, the value given and what is allowed, so a
bad configuration is caught where it is written, not deep inside a trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


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


def check_positive_int(param: str, value: Any, *, allow_zero: bool = False) -> int:
  """Returns `value` if it is a positive int (or zero when allowed)."""
  ok = isinstance(value, int) and not isinstance(value, bool)
  ok = ok and (value >= 0 if allow_zero else value > 0)
  if not ok:
    bound = "a non-negative" if allow_zero else "a positive"
    raise ValueError(f"{param}={value!r} is not allowed; expected {bound} integer.")
  return value


def check_rate(param: str, value: Any) -> float:
  """Returns `value` if it is a probability in [0, 1)."""
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
    raise ValueError(f"{param}={value!r} is not allowed; expected a float in [0, 1).")
  return float(value)


def as_tuple(param: str, value: Any, n: int, *, allow_zero: bool = False) -> tuple[int, ...]:
  """Expands an int or a length-`n` sequence of ints into an `n`-tuple.

  Example:
    >>> as_tuple("kernel_size", 3, 2)
    (3, 3)
  """
  values = (value,) * n if isinstance(value, int) and not isinstance(value, bool) else value
  kind = "non-negative" if allow_zero else "positive"
  ok = isinstance(values, Sequence) and len(values) == n and all(
      isinstance(v, int) and not isinstance(v, bool) and (v >= 0 if allow_zero else v > 0) for v in values)
  if not ok:
    raise ValueError(
        f"{param}={value!r} is not allowed; expected a {kind} integer or a sequence of {n} {kind} integers."
    )
  return tuple(values)


def check_rank(param: str, shape: Sequence[int], allowed_ranks: Iterable[int], meaning: str) -> None:
  """Raises if an input's rank is not one of `allowed_ranks`."""
  allowed_ranks = tuple(allowed_ranks)
  if len(shape) not in allowed_ranks:
    raise ValueError(
        f"{param} has shape {tuple(shape)} (rank {len(shape)}); expected rank "
        f"{' or '.join(str(r) for r in allowed_ranks)}: {meaning}."
    )
