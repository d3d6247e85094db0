"""A whole model in a folder: the module's architecture as JSON beside its variables as an orbax checkpoint.

The architecture names a `flax.linen.Module` class of jaxcomponents and its
fields (numbers, strings, lists, dtypes, precisions, nested jaxcomponents modules), so reading a
folder only ever builds jaxcomponents' own classes: a stranger's folder
cannot make it import or run anything else.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from jaxcomponents import files

ARCHITECTURE = "architecture.json"
VARIABLES = "variables"
_MAX_ARCHITECTURE_BYTES = 64 * 2**20  # a KerasGraph's JSON config is the largest: far below this
_FORMAT = "jaxcomponents.model/1"
_DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint32", "bool")


def _encode(value: Any, where: str) -> Any:
  if isinstance(value, nn.Module):
    return encode_module(value, where)
  if value is None or isinstance(value, (bool, int, float, str)):
    return value
  if isinstance(value, (np.bool_, np.integer, np.floating)):
    return value.item()
  if isinstance(value, (list, tuple)):
    return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
  if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
    return {"__dict__": {k: _encode(v, f"{where}[{k!r}]") for k, v in value.items()}}
  if isinstance(value, jax.lax.Precision):
    return {"__precision__": value.name}
  try:
    return {"__dtype__": np.dtype(value).name}
  except TypeError:
    pass
  raise ValueError(f"{where}={value!r} cannot be saved as an architecture: only numbers, strings, lists, dicts and "
                   "jaxcomponents modules can; save the variables with save_weights and build the module in code.")


def encode_module(module: nn.Module, where: str = "module") -> dict[str, Any]:
  """`module` as JSON-ready data: its class (a jaxcomponents one) and its fields."""
  cls = type(module)
  if not cls.__module__.startswith("jaxcomponents."):
    raise ValueError(f"{where} is a {cls.__module__}.{cls.__qualname__}, not a jaxcomponents module: Model.save "
                     "writes jaxcomponents' modules (and from_keras graphs); save this one's variables with "
                     "save_weights and build the module in code.")
  fields = {f.name: _encode(getattr(module, f.name), f"{where}.{f.name}") for f in dataclasses.fields(module)
            if f.init and f.name not in ("parent", "name") and getattr(module, f.name) is not None}
  return {"__module__": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}


def _decode(value: Any, where: str) -> Any:
  if isinstance(value, list):
    return tuple(_decode(v, f"{where}[{i}]") for i, v in enumerate(value))
  if isinstance(value, dict):
    if "__module__" in value:
      return decode_module(value, where)
    if set(value) == {"__dict__"} and isinstance(value["__dict__"], dict):
      return {k: _decode(v, f"{where}[{k!r}]") for k, v in value["__dict__"].items()}
    if set(value) == {"__dtype__"} and value["__dtype__"] in _DTYPES:
      return jax.numpy.dtype(value["__dtype__"])
    if set(value) == {"__precision__"} and value["__precision__"] in jax.lax.Precision.__members__:
      return jax.lax.Precision[value["__precision__"]]
    raise ValueError(f"{where} holds {sorted(value)}, which is not part of a saved architecture.")
  return value


def decode_module(data: Mapping[str, Any], where: str = "module") -> nn.Module:
  """The module `encode_module` described; only jaxcomponents' own module classes are built."""
  path = data.get("__module__")
  if not isinstance(path, str) or ":" not in path or not path.startswith("jaxcomponents."):
    raise ValueError(f"{where} names {path!r}; a saved architecture may only name jaxcomponents' module classes.")
  module_name, qualname = path.split(":", 1)
  try:
    cls = importlib.import_module(module_name)
    for part in qualname.split("."):
      cls = getattr(cls, part)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"{where} names {path}, which this version of jaxcomponents does not have ({e}).") from None
  if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
    raise ValueError(f"{where} names {path}, which is not a module class.")
  fields = data.get("fields")
  if not isinstance(fields, dict):
    raise ValueError(f"{where} has no fields mapping.")
  allowed = {f.name for f in dataclasses.fields(cls) if f.init}
  unknown = sorted(set(fields) - allowed)
  if unknown:
    raise ValueError(f"{where} ({path}) has fields {unknown} that the class does not take.")
  return cls(**{k: _decode(v, f"{where}.{k}") for k, v in fields.items()})


def architecture(module: nn.Module) -> dict[str, Any]:
  """`module`'s architecture as saved (JSON-ready), read back by `from_architecture`."""
  return {"format": _FORMAT, "module": encode_module(module)}


def from_architecture(data: Any, where: str) -> nn.Module:
  """The module an `architecture` record describes (`where` names the record in errors)."""
  if not isinstance(data, dict) or data.get("format") != _FORMAT:
    raise ValueError(f"{where} is not a jaxcomponents architecture (format {_FORMAT}).")
  return decode_module(data.get("module") or {})


SAVED_MODEL = files.folder_with(ARCHITECTURE, "a saved model", (VARIABLES,))


def save_model(path: str | os.PathLike, module: nn.Module, variables: Mapping[str, Any], *,
               overwrite: bool = True) -> None:
  """Writes `module`'s architecture and `variables` into the folder `path`, read back by `load_saved`.

  The folder is written beside `path` and renamed into place when complete
  (`jaxcomponents.files.write_beside`): a failed save leaves `path` as it was.

  Args:
    path: the folder to write.
    module: a jaxcomponents module (its class and fields are saved, not code).
    variables: its variables, `{"params": ..., "batch_stats": ...}`.
    overwrite: replace an existing saved model at `path` (Keras's default,
      True); a folder that is not a saved model is never replaced.

  Raises:
    FileExistsError: `path` exists and `overwrite` is False, or it is not a saved model.
    ValueError: the module cannot be saved as an architecture, naming the field.
    OSError: the variables cannot be written (a full disk); `path` is as it was.

  Example:
    save_model("classifier", module, variables)
    module, variables = load_saved("classifier")
  """
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

  description = json.dumps(architecture(module))
  variables = jax.device_get(dict(variables))

  def write(folder: str) -> None:
    os.makedirs(folder)
    with open(os.path.join(folder, ARCHITECTURE), "w") as f:
      f.write(description)
    try:
      with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(os.path.join(folder, VARIABLES), variables)
    except (ValueError, RuntimeError) as e:  # tensorstore reports a full disk as ValueError
      raise OSError(f"writing the variables of {path} failed ({type(e).__name__}: {str(e)[:400]}); nothing was "
                    "written. Free space or fix the folder, then save again.") from e

  files.write_beside(path, write, SAVED_MODEL, overwrite=overwrite)


def load_saved(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
  """`(module, variables)` from a folder `save_model` wrote; its variables are read within the read limits."""
  from jaxcomponents.training.checkpoint import read_arrays  # pylint: disable=import-outside-toplevel

  path = os.path.abspath(os.fspath(path))
  file = os.path.join(path, ARCHITECTURE)
  if not os.path.isfile(file):
    raise FileNotFoundError(f"{path} is not a saved model: it has no {ARCHITECTURE}.")
  if os.path.getsize(file) > _MAX_ARCHITECTURE_BYTES:
    raise ValueError(f"{file} is {os.path.getsize(file)} bytes, above the {_MAX_ARCHITECTURE_BYTES} an architecture "
                     "can have; it is not one jaxcomponents wrote.")
  try:
    with open(file) as f:
      data = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"{file} is not readable JSON ({e}); save the model again.") from e
  return from_architecture(data, file), dict(read_arrays(os.path.join(path, VARIABLES)))
