"""One name registry for everything looked up by a Keras name.

A `Registry` maps Keras names to factories (losses, metrics, optimizers,
regularizers) or to values (activations). Each entry is declared once, with
its Keras class name and aliases; the keyword arguments a name takes are read
from its factory's signature. Every lookup takes Keras's `get(identifier)`
forms: a name, a config dict `{"class_name": ..., "config": {...}}` (what
`keras.<module>.serialize` writes; `{"class_name": "function", "config":
name}` for a function), or an object that passes through as is (a callable,
unless the registry says otherwise). Every lookup fails in one form, naming
the parameter, the value and what is allowed:

* an unknown name: `name='adamm' is not allowed; expected one of 'sgd', 'adam', ... Did you mean 'adam'?`
* an unknown or misspelled argument: `beta1=0.9 is not an argument of optimizer 'adam'; expected one of:
  learning_rate, beta_1, ... Did you mean beta_1?`
* a missing one: `metric 'mean_iou' needs the argument num_classes; it has no default.`

Example:
  >>> def scaled(factor=1.0):
  ...   return lambda x: factor * x
  >>> SCALES = Registry("scale")
  >>> _ = SCALES.register("scaled", scaled, keras_class="Scaled", aliases=("sc",))
  >>> SCALES.get("Scaled", factor=2.0)(3.0)
  6.0
  >>> SCALES.get({"class_name": "sc", "config": {"factor": 0.5}})(3.0)
  1.5
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

REQUIRED = inspect.Parameter.empty  # the default of an argument that has none


class _AnyValue:
  def __repr__(self):
    return "ANY"


ANY = _AnyValue()  # in `config_keys`: a config key accepted with any value (Keras's `name` label)
_UNSET = object()


def snake_case(name: str) -> str:
  """Keras's `to_snake_case` of a class name: `"MeanIoU"` -> `"mean_io_u"`, `"L1L2"` -> `"l1l2"`.

  An underscore goes before each capital that follows a lower-case letter or
  starts a capitalized word (`"TopKCategoricalAccuracy"`); characters other
  than letters, digits and `_` are dropped.

  Example:
    >>> snake_case("TopKCategoricalAccuracy"), snake_case("AUC")
    ('top_k_categorical_accuracy', 'auc')
  """
  chars = [c for c in name if c.isalnum() or c == "_"]
  out = []
  for i, c in enumerate(chars):
    if i and c.isupper() and (chars[i - 1].islower() or (i + 1 < len(chars) and chars[i + 1].islower())):
      out.append("_")
    out.append(c)
  return "".join(out).lower()


@dataclasses.dataclass(frozen=True)
class Entry:
  """One registered name.

  Attributes:
    name: the canonical name (Keras's function name where there is one).
    obj: the factory (or, in a registry of values, the value).
    keras_class: Keras's class name, or None.
    aliases: the other spellings declared for it (Keras's short names, older names).
    arguments: keyword -> default (`REQUIRED` where there is none), in the factory's order.
  """

  name: str
  obj: Any
  keras_class: str | None
  aliases: tuple[str, ...]
  arguments: Mapping[str, Any]


def keras_config(obj: Any) -> dict[str, Any]:
  """A Keras object (a loss, metric or optimizer) as the config dict `Registry.get` reads: its class and config,
  with the arguments a Keras function wrapper holds (`_fn_kwargs`), which some classes leave out of their config
  (`Huber`'s `delta`, `CosineSimilarity`'s `axis`).

  Example:
    >>> class Huber:
    ...   _fn_kwargs = {"delta": 2.0}
    ...   def get_config(self):
    ...     return {"name": "huber_loss"}
    >>> keras_config(Huber())
    {'class_name': 'Huber', 'config': {'name': 'huber_loss', 'delta': 2.0}}
  """
  return {"class_name": type(obj).__name__, "config": {**obj.get_config(), **dict(getattr(obj, "_fn_kwargs", {}))}}


def built(identifier: Any) -> Any:
  """A Keras class (a loss, metric, initializer, ... class) built with its defaults, as Keras's `get` builds one;
  anything else as it is.

  Example:
    >>> class Huber:
    ...   def get_config(self):
    ...     return {"delta": 1.0}
    >>> type(built(Huber)).__name__, built("huber")
    ('Huber', 'huber')
  """
  if isinstance(identifier, type) and hasattr(identifier, "get_config"):
    return identifier()
  return identifier


def keras_identifier(identifier: Any) -> Any:
  """A Keras object as the config dict `Registry.get` reads (`keras_config`), a Keras class first built with its
  defaults (as Keras's `get` builds one); a name, a config dict or anything else as it is.

  Example:
    >>> class L2:
    ...   def get_config(self):
    ...     return {"l2": 0.01}
    >>> keras_identifier(L2), keras_identifier("l2")
    ({'class_name': 'L2', 'config': {'l2': 0.01}}, 'l2')
  """
  identifier = built(identifier)
  if hasattr(identifier, "get_config") and not isinstance(identifier, (str, Mapping)):
    return keras_config(identifier)
  return identifier


def _suggestion(value: str, candidates: Iterable[str]) -> str | None:
  candidates = list(candidates)
  folded = [c for c in candidates if c.lower() == value.lower()]
  if folded:
    return folded[0]
  close = difflib.get_close_matches(value, candidates, n=1, cutoff=0.75)
  return close[0] if close else None



def _python_scalar(value: Any) -> Any:
  """A NumPy scalar (`np.int64(3)`, `np.float32(0.1)`, `np.bool_(True)`) as the Python number Keras reads it as."""
  return value.item() if isinstance(value, np.generic) and not isinstance(value, (np.str_, np.bytes_)) else value

class Registry(Mapping[str, Any]):
  """Keras names -> factories (or values), with aliases, signature-checked arguments and one error form.

  As a mapping, its keys are every spelling it lists (canonical names,
  aliases, Keras class names and their snake_case) and its values the
  registered objects; `registry[name]` also takes the spellings the lookup
  rules accept (any case, where `any_case`).

  Args:
    kind: what an entry is, for messages: "loss", "metric", "optimizer", ...
    param: the parameter named in an unknown-name error (callers may override it per lookup).
    values: entries are values returned as they are (activations), taking no arguments.
    inputs: the factory's leading call inputs, not arguments (`("y_true", "y_pred")` for a loss function).
    common: arguments every entry takes besides its own, with their defaults (a loss's `reduction`).
    make: `(name, obj, arguments) -> object`, how a lookup builds its result; default `obj(**arguments)`
      (`obj` itself with `values`).
    any_case: names match in any case, as Keras's optimizer names.
    snake_case_classes: each Keras class name's snake_case is a name too (Keras's metrics and
      regularizers), unless that spelling names another entry.
    passes: which non-name identifiers pass through as they are; default `callable`.
    passes_what: how to describe them in errors.
    none: what `None` resolves to (a name), or unset: `None` is an error.
    config_keys: keys a Keras config dict may hold beyond the arguments, with the values that change
      nothing here (`ANY`: any value): e.g. an optimizer's `use_ema: False`.
    argument_notes: argument -> a note added when it is given but not taken (what to use instead).
    name_notes: unknown name -> a note added to its error (where that spelling is taken instead).
    taken_before: arguments the caller takes off before a lookup (an optimizer's `use_ema`), listed with
      each entry's own in errors and suggestions.
  """

  def __init__(self, kind: str, *, param: str = "name", values: bool = False, inputs: Iterable[str] = (),
               common: Mapping[str, Any] | None = None, make: Callable[[str, Any, dict[str, Any]], Any] | None = None,
               any_case: bool = False, snake_case_classes: bool = False,
               passes: Callable[[Any], bool] = callable, passes_what: str = "a callable", none: Any = _UNSET,
               config_keys: Mapping[str, Iterable[Any] | _AnyValue] | None = None,
               argument_notes: Mapping[str, str] | None = None, name_notes: Mapping[str, str] | None = None,
               taken_before: Iterable[str] = ()):
    self.kind, self.param, self.values = kind, param, values
    self.inputs = tuple(inputs)
    self.common = dict(common or {})
    self.any_case, self.snake_case_classes = any_case, snake_case_classes
    self.passes, self.passes_what, self.none = passes, passes_what, none
    self.config_keys = {k: v if v is ANY else tuple(v) for k, v in (config_keys or {}).items()}
    self.argument_notes = dict(argument_notes or {})
    self.name_notes = dict(name_notes or {})
    self.taken_before = tuple(taken_before)
    self._make = make
    self._entries: dict[str, Entry] = {}
    self._spellings: dict[str, str] = {}  # every listed spelling -> canonical name
    self._derived: set[str] = set()  # spellings derived from class names, which a declared one replaces

  # ------------------------------------------------------------------ declaring

  def register(self, name: str, obj: Any = _UNSET, *, keras_class: str | None = None,
               aliases: Iterable[str] = ()) -> Any:
    """Declares `name` -> `obj` (or, without `obj`, decorates the factory that follows); returns `obj`.

    Raises:
      ValueError: a spelling already declared for another entry.
    """
    if obj is _UNSET:
      return lambda factory: self.register(name, factory, keras_class=keras_class, aliases=aliases)
    aliases = tuple(aliases)
    declared = [name, *aliases] + ([keras_class] if keras_class else [])
    if self.any_case:  # one listed spelling per word: the others match it anyway
      declared = list({spelling.lower(): spelling for spelling in reversed(declared)}.values())[::-1]
    for spelling in declared:
      if spelling in self._spellings and spelling not in self._derived and self._spellings[spelling] != name:
        raise ValueError(f"{self.kind} name {spelling!r} is declared twice: for {self._spellings[spelling]!r} "
                         f"and {name!r}.")
    self._entries[name] = Entry(name, obj, keras_class, aliases, self._signature(obj))
    for spelling in declared:
      self._spellings[spelling] = name
      self._derived.discard(spelling)
    if keras_class and self.snake_case_classes:
      derived = snake_case(keras_class)
      if derived not in self._spellings:
        self._spellings[derived] = name
        self._derived.add(derived)
    return obj

  def _signature(self, obj: Any) -> dict[str, Any]:
    if self.values:
      return {}
    params = inspect.signature(obj).parameters.values()
    own = {p.name: p.default for p in params
           if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in self.inputs}
    return {**own, **{k: v for k, v in self.common.items() if k not in own}}

  # ------------------------------------------------------------------ reading

  @property
  def names(self) -> tuple[str, ...]:
    """The canonical names, in declaration order."""
    return tuple(self._entries)

  @property
  def aliases(self) -> Mapping[str, str]:
    """Every listed spelling -> its canonical name (a live, read-only view)."""
    return types.MappingProxyType(self._spellings)

  def __getitem__(self, name: str) -> Any:
    canonical = self._match(name)
    if canonical is None:
      raise KeyError(name)
    return self._entries[canonical].obj

  def __iter__(self) -> Iterator[str]:
    return iter(self._spellings)

  def __len__(self) -> int:
    return len(self._spellings)

  def __repr__(self) -> str:
    return f"Registry({self.kind!r}: {', '.join(self.names)})"

  def _match(self, name: Any) -> str | None:
    if not isinstance(name, str):
      return None
    if name in self._spellings:
      return self._spellings[name]
    if self.any_case:
      for spelling, canonical in self._spellings.items():
        if spelling.lower() == name.lower():
          return canonical
    return None

  def entry(self, name: str, param: str | None = None) -> Entry:
    """The entry a name resolves to, else the unknown-name `ValueError`."""
    return self._entries[self.canonical(name, param)]

  def arguments(self, name: str) -> dict[str, Any]:
    """The arguments `name` takes -> their defaults (`REQUIRED` where none)."""
    return dict(self.entry(name).arguments)

  def canonical(self, name: str, param: str | None = None) -> str:
    """The canonical name of a spelling, else the unknown-name `ValueError`.

    Example:
      >>> r = Registry("thing")
      >>> _ = r.register("mean_squared_error", lambda: None, aliases=("mse",))
      >>> r.canonical("mse")
      'mean_squared_error'
    """
    canonical = self._match(name)
    if canonical is None:
      raise ValueError(self._unknown_name(param or self.param, name))
    return canonical

  def _known(self) -> str:
    known = ", ".join(repr(s) for s in self._spellings)
    return known + (" (in any case)" if self.any_case else "")

  def _unknown_name(self, param: str, value: Any) -> str:
    message = f"{param}={value!r} is not allowed; expected one of {self._known()}."
    if isinstance(value, str):
      note = self.name_notes.get(value)
      suggestion = None if note else _suggestion(value, self._spellings)
      if note:
        message += f" {note}"
      elif suggestion:
        message += f" Did you mean {suggestion!r}?"
    return message

  # ------------------------------------------------------------------ looking up

  def resolve(self, identifier: Any, kwargs: Mapping[str, Any] | None = None,
              param: str | None = None) -> tuple[str, dict[str, Any]]:
    """A name or Keras config dict, and keyword arguments -> (canonical name, checked arguments).

    The arguments are those given (a config dict's, then `kwargs` over them),
    each checked against the entry's signature; defaults are not filled in.

    Raises:
      ValueError: an unknown name, an argument the entry does not take, or a required one missing.

    Example:
      >>> r = Registry("thing")
      >>> _ = r.register("huber", lambda delta=1.0: delta, keras_class="Huber")
      >>> r.resolve({"class_name": "Huber", "config": {"delta": 2.0}})
      ('huber', {'delta': 2.0})
    """
    param = param or self.param
    given = dict(kwargs or {})
    if isinstance(identifier, Mapping):
      name, config = self._from_config(identifier, param)
      canonical = self.canonical(name, param)
      arguments = self._entries[canonical].arguments
      for key, allowed in self.config_keys.items():
        if key in config and key not in arguments and (allowed is ANY or config[key] in allowed):
          del config[key]
      given = {**config, **given}
    elif isinstance(identifier, str):
      canonical = self.canonical(identifier, param)
    else:
      raise ValueError(self._bad_identifier(param, identifier))
    given = {key: _python_scalar(value) for key, value in given.items()}
    self.check_arguments(canonical, given)
    return canonical, given

  def _from_config(self, identifier: Mapping[str, Any], param: str) -> tuple[str, dict[str, Any]]:
    class_name, config = identifier.get("class_name"), identifier.get("config")
    if class_name == "function" and isinstance(config, str):  # a serialized Keras function: its name
      return config, {}
    if not isinstance(class_name, str) or not (config is None or isinstance(config, Mapping)):
      raise ValueError(self._bad_identifier(param, identifier))
    return class_name, dict(config or {})

  def _bad_identifier(self, param: str, value: Any) -> str:
    article = "an" if self.kind[:1] in "aeiou" else "a"
    return (f"{param}={value!r} is not allowed; expected {article} {self.kind} name (one of {self._known()}), a Keras "
            f"config dict {{'class_name': ..., 'config': {{...}}}}" +
            (f" or {self.passes_what}." if self.passes_what else "."))

  def check_arguments(self, name: str, kwargs: Mapping[str, Any]) -> None:
    """Raises the one `ValueError` form for an argument `name` does not take, or a required one missing.

    Example:
      >>> r = Registry("thing")
      >>> _ = r.register("huber", lambda delta=1.0: delta)
      >>> r.check_arguments("huber", {"delta": 2.0})
    """
    entry = self.entry(name)
    allowed = list(entry.arguments) + [key for key in self.taken_before if key not in entry.arguments]
    for key, value in kwargs.items():
      if key in entry.arguments:
        continue
      if key in self.taken_before:
        raise ValueError(f"{key}={value!r} is not an argument of {self.kind} {entry.name!r} itself; it is taken "
                         f"before the lookup (for {self.kind}s: {self.kind}s.get({entry.name!r}, {key}=...)).")
      expected = f"expected one of: {', '.join(allowed)}." if allowed else "expected no arguments."
      message = f"{key}={value!r} is not an argument of {self.kind} {entry.name!r}; {expected}"
      suggestion = _suggestion(key, allowed) if isinstance(key, str) else None
      if key in self.argument_notes:
        message += f" {self.argument_notes[key]}"
      elif suggestion:
        message += f" Did you mean {suggestion}?"
      raise ValueError(message)
    for key, default in entry.arguments.items():
      if default is REQUIRED and key not in kwargs:
        raise ValueError(f"{self.kind} {entry.name!r} needs the argument {key}; it has no default.")

  def get(self, identifier: Any, param: str | None = None, **kwargs: Any) -> Any:
    """Keras's `get(identifier)`: a name or config dict (with `kwargs`) -> the built object.

    `None` resolves to the registry's `none` name where it has one; an object
    that `passes` is returned as it is.

    Raises:
      ValueError: see `resolve`; also `kwargs` given with an object that passes through.
    """
    param = param or self.param
    if identifier is None and self.none is not _UNSET:
      identifier = self.none
    elif not isinstance(identifier, (str, Mapping)) and identifier is not None and self.passes(identifier):
      if kwargs:
        key = next(iter(kwargs))
        raise ValueError(f"{key}={kwargs[key]!r} is not allowed with {param}={identifier!r}; arguments go with a "
                         f"{self.kind} name or config dict, not with {self.passes_what}.")
      return identifier
    canonical, arguments = self.resolve(identifier, kwargs, param)
    return self.build(canonical, arguments)

  def build(self, name: str, arguments: Mapping[str, Any] | None = None) -> Any:
    """The entry `name` built with checked `arguments` (see `resolve`)."""
    entry = self.entry(name)
    arguments = dict(arguments or {})
    if self._make is not None:
      return self._make(entry.name, entry.obj, arguments)
    return entry.obj if self.values else entry.obj(**arguments)


__all__ = ["ANY", "REQUIRED", "Entry", "Registry", "snake_case"]
