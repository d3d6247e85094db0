"""Choosing how one of jaxcomponents' own computations lowers: a CPU formulation or XLA's operation.

`on_cpu(fast, plain, *args)` picks `fast` where the computation is lowered for
the CPU and `plain` (XLA's own operation, the reference) everywhere else, with
`lax.platform_dependent`: one jitted function is right on every platform it
runs on, and nothing outside jaxcomponents' computations changes.

`JAXCOMPONENTS_FAST_CPU=0` (or `false`, `off`, `no`), read when a computation
is traced, makes every choice the plain one. Calls into jaxcomponents' native
library (`jaxcomponents.ops.native`) are left out where a computation must be
portable: inside `portable()`, and for arrays with symbolic shapes
(`jax.export` with a symbolic batch), since a serialised computation may run
where that library is absent. The same goes for cuDNN's LSTM
(`jaxcomponents.ops.cudnn_rnn`), whose custom call `jax.export` does not serialise.
Inside `plain()` every choice is the plain one and nothing calls the native
library: no `lax.platform_dependent` is traced, for converters that read the
computation's operations (ONNX) rather than lower it for a platform.

Example:
  >>> import jax.numpy as jnp
  >>> on_cpu(lambda x: x + 1, lambda x: x - 1, jnp.zeros(2)).tolist()
  [1.0, 1.0]
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

import jax
from jax import lax

ENV = "JAXCOMPONENTS_FAST_CPU"
_OFF = ("0", "false", "off", "no")
_PORTABLE = contextvars.ContextVar("jaxcomponents_portable", default=False)
_PLAIN = contextvars.ContextVar("jaxcomponents_plain", default=False)


def switched_off(variable: str) -> bool:
  """Whether the environment variable `variable` is set to 0, false, off or no."""
  return os.environ.get(variable, "1").strip().lower() in _OFF


def enabled() -> bool:
  """Whether the CPU formulations are on (`JAXCOMPONENTS_FAST_CPU` unset, or not 0/false/off/no)."""
  return not switched_off(ENV)


@contextlib.contextmanager
def portable() -> Iterator[None]:
  """Within it, jaxcomponents traces XLA operations only: no calls into its native library.

  For computations that are serialised and run elsewhere (`jax.export` with
  static shapes, an XLA dump to share). Symbolic shapes are portable without it.

  Example:
    >>> with portable():
    ...   native_calls_allowed()
    False
  """
  token = _PORTABLE.set(True)
  try:
    yield
  finally:
    _PORTABLE.reset(token)


@contextlib.contextmanager
def plain() -> Iterator[None]:
  """Within it, jaxcomponents traces XLA's own operations only: every `on_cpu` choice is the plain one.

  `portable()` as well, and no `lax.platform_dependent` in the computation:
  for converters that translate its operations one by one (ONNX through
  jax2onnx), which have no platform to choose for. Numerically what
  `JAXCOMPONENTS_FAST_CPU=0` computes, for the computations traced within.

  Example:
    >>> import jax.numpy as jnp
    >>> with plain():
    ...   on_cpu(lambda x: x + 1, lambda x: x - 1, jnp.zeros(2)).tolist()
    [-1.0, -1.0]
  """
  plain_token, portable_token = _PLAIN.set(True), _PORTABLE.set(True)
  try:
    yield
  finally:
    _PORTABLE.reset(portable_token)
    _PLAIN.reset(plain_token)


def is_portable() -> bool:
  """Whether the computation being traced is inside `portable()`."""
  return _PORTABLE.get()


def static_shape(shape: tuple[Any, ...]) -> bool:
  """Whether every dimension is a plain integer (not a `jax.export` symbolic dimension)."""
  return all(isinstance(d, int) for d in shape)


def native_calls_allowed(*arrays: Any) -> bool:
  """Whether a CPU formulation may call the native library for `arrays`.

  Fast paths on, not `portable()`, static shapes, and one CPU device in the
  process: the library's oneDNN runs its own OpenMP threads, and several CPU
  devices (`--xla_force_host_platform_device_count`) run their computations at
  once, each on all cores, which starves them all; XLA's operations share one pool.
  """
  return (enabled() and not _PORTABLE.get() and all(static_shape(tuple(a.shape)) for a in arrays)
          and _one_cpu_device())


@functools.cache
def _one_cpu_device() -> bool:
  return len(jax.devices("cpu")) == 1


def on_cpu(fast: Callable[..., Any], plain: Callable[..., Any], *args: Any) -> Any:
  """`fast(*args)` where the computation is lowered for the CPU and the fast paths are on, else `plain(*args)`.

  Outside the fast paths (`JAXCOMPONENTS_FAST_CPU=0`) and inside `plain()`, `plain(*args)` is traced alone.
  """
  if not enabled() or _PLAIN.get():
    return plain(*args)
  return lax.platform_dependent(*args, cpu=fast, default=plain)
