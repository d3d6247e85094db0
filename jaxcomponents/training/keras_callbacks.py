"""Keras's own callback objects in `Model.fit`: each built-in one read into its jaxcomponents twin.

A script ported from Keras keeps its `callbacks=[keras.callbacks.EarlyStopping(...)]` line: the object's
arguments (Keras keeps them as attributes) build `jaxcomponents.callbacks.EarlyStopping` with the same ones. A
Keras callback of one's own (a subclass) runs against a Keras model, so it is refused, naming what to subclass.

Example:
  >>> import keras
  >>> from_keras_callback(keras.callbacks.EarlyStopping(monitor="loss", patience=2)).patience
  2
"""

from __future__ import annotations

import inspect
from typing import Any

from jaxcomponents.training import callbacks as ours

# Keras's class name -> (the twin, {our argument: Keras's attribute} where they differ).
_TWINS: dict[str, tuple[type[ours.Callback], dict[str, str]]] = {
    "EarlyStopping": (ours.EarlyStopping, {}),
    "ReduceLROnPlateau": (ours.ReduceLROnPlateau, {}),
    "LearningRateScheduler": (ours.LearningRateScheduler, {}),
    "TerminateOnNaN": (ours.TerminateOnNaN, {}),
    "CSVLogger": (ours.CSVLogger, {"separator": "sep"}),
    "ModelCheckpoint": (ours.ModelCheckpoint, {"initial_value_threshold": "best"}),
    "SwapEMAWeights": (ours.SwapEMAWeights, {}),
    "RemoteMonitor": (ours.RemoteMonitor, {}),
    "LambdaCallback": (ours.LambdaCallback, {}),
}


def is_keras_callback(value: Any) -> bool:
  """Whether `value` is a Keras callback object (`keras.callbacks.Callback`'s instance)."""
  return any(f"{cls.__module__}.{cls.__qualname__}" == "keras.src.callbacks.callback.Callback"
             for cls in type(value).__mro__)


def from_keras_callback(callback: Any) -> ours.Callback:
  """The jaxcomponents callback that does what the Keras callback object `callback` does, with its arguments.

  Raises:
    ValueError: `callback` is a Keras callback of one's own, or one without a jaxcomponents twin.
  """
  cls = type(callback)
  name = cls.__name__
  if name not in _TWINS or not cls.__module__.startswith("keras.src.callbacks."):
    if not cls.__module__.startswith("keras."):
      raise ValueError(f"callbacks holds {name}, a keras.callbacks.Callback subclass: it would run against a Keras "
                       "model; subclass jaxcomponents.callbacks.Callback instead (the same hooks, with self.model "
                       "the jaxcomponents Model).")
    raise ValueError(f"callbacks holds keras.callbacks.{name}, which has no jaxcomponents twin to read it into; "
                     f"Keras's built-in callbacks taken: {', '.join(sorted(_TWINS))} (or use "
                     "jaxcomponents.callbacks).")
  twin, renamed = _TWINS[name]
  if twin is ours.LambdaCallback:  # Keras keeps the given hooks as instance attributes
    return twin(**{hook: fn for hook, fn in vars(callback).items() if hook in ours.HOOKS and callable(fn)})
  arguments = {}
  for parameter in inspect.signature(twin.__init__).parameters.values():
    attribute = renamed.get(parameter.name, parameter.name)
    if parameter.name != "self" and hasattr(callback, attribute):
      arguments[parameter.name] = getattr(callback, attribute)
  return twin(**arguments)


__all__ = ["from_keras_callback", "is_keras_callback"]
