"""Old spellings, still accepted for one release with a `DeprecationWarning` that names the new one.

Two kinds of rename:

* A module field: the old name is declared with `renamed_to("new")`, and
  `move_renamed_fields` (which every component's `__post_init__` calls) moves
  a value given under it to the new field.
* Call arguments after the input that became keyword-only (`train`, ...):
  `keyword_only("train", ...)` on `__call__` still takes them positionally, in
  their old order.

The warning points at the first caller outside jaxcomponents, Flax and JAX,
so it shows where the old spelling is written.

Example:
  >>> import warnings
  >>> from jaxcomponents.layers import Dense
  >>> with warnings.catch_warnings(record=True) as caught:
  ...   warnings.simplefilter("always")
  ...   layer = Dense(units=4)
  >>> layer.features, str(caught[0].message)[:60]
  (4, 'Dense(units=...) is a deprecated alias of features=...; the ')
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import warnings
from collections.abc import Callable
from typing import Any

_RENAMED_TO = "renamed_to"
_INTERNAL_PACKAGES = ("jaxcomponents", "flax", "jax")


def renamed_to(new: str) -> Any:
  """A dataclass field holding a deprecated old name of the field `new` (keyword-only, default None)."""
  return dataclasses.field(default=None, kw_only=True, repr=False, metadata={_RENAMED_TO: new})


@functools.cache
def _renamed_fields(cls: type) -> tuple[tuple[str, str, Any], ...]:
  """`(old, new, new's default)` for each field of `cls` declared with `renamed_to`."""
  fields = {f.name: f for f in dataclasses.fields(cls)}
  return tuple((f.name, f.metadata[_RENAMED_TO], fields[f.metadata[_RENAMED_TO]].default)
               for f in fields.values() if _RENAMED_TO in f.metadata)


def move_renamed_fields(module: Any) -> None:
  """Moves each value given under an old field name to its new field, warning once per construction.

  Raises:
    ValueError: the old and the new name are both given.
  """
  for old, new, default in _renamed_fields(type(module)):
    value = getattr(module, old)
    if value is None:
      continue
    owner = type(module).__name__
    current = getattr(module, new)
    if current is not None and current != default:
      raise ValueError(f"{old}={value!r} is not allowed with {new}={current!r} in {owner}; {old} is the "
                       f"deprecated name of {new}: pass {new} only.")
    warn(f"{owner}({old}=...) is a deprecated alias of {new}=...; the old name goes in the next release.")
    object.__setattr__(module, new, value)
    object.__setattr__(module, old, None)


def keyword_only(*old_order: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
  """Makes a `__call__`'s arguments after the input keyword-only, still taking `old_order` positionally (deprecated).

  Example:
    >>> import flax.linen as nn
    >>> class Layer(nn.Module):
    ...   @nn.compact
    ...   @keyword_only("train")
    ...   def __call__(self, x, *, train=False):
    ...     return x if train else -x
  """
  def decorate(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def wrapper(self, x, *args, **kwargs):
      if args:
        owner = type(self).__name__
        if len(args) > len(old_order):
          raise TypeError(f"{owner} takes the input and at most {len(old_order)} more positional arguments "
                          f"({', '.join(old_order)}); {1 + len(args)} were given.")
        names = old_order[:len(args)]
        repeated = [name for name in names if name in kwargs]
        if repeated:
          raise TypeError(f"{owner} got {', '.join(repeated)} both positionally and by keyword.")
        warn(f"{owner}: passing {', '.join(names)} positionally after the input is a deprecated alias of "
             f"{', '.join(f'{name}=...' for name in names)}; positional use goes in the next release.")
        kwargs.update(zip(names, args))
      return call(self, x, **kwargs)
    wrapper.deprecated_positional = old_order  # read by `jaxcomponents.nnx` to find `train` among them
    return wrapper
  return decorate


def warn(message: str) -> None:
  """Warns with a `DeprecationWarning`, attributed to the first caller outside jaxcomponents, Flax and JAX."""
  frame, level = sys._getframe(1), 2
  while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in _INTERNAL_PACKAGES:
    frame, level = frame.f_back, level + 1
  warnings.warn(message, DeprecationWarning, stacklevel=level)
