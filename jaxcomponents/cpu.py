"""The one explicit, process-wide CPU tuning call, and what is in effect.

Importing jaxcomponents changes nothing outside it: its layers choose their
own CPU formulations and native calls (`jaxcomponents.ops`). `tune()` is
different: call it first in a script, before any JAX computation, and it
changes the whole process, every JAX program in it included:

* XLA flag `--xla_cpu_experimental_ynn_fusion_type=-individual_convolution`
  (added to `XLA_FLAGS`, so child processes inherit it): jaxlib 0.10 hands
  2-D float32 convolutions to YNNPACK, which is 6-10x slower than XLA's own
  (Eigen) convolution for unpadded convolutions and kernel gradients; the
  flag keeps YNNPACK for matrix products and reductions only. The library's
  own steps and forward passes already compile with it, per computation
  (`jaxcomponents.ops.compiler`); the flag extends it to every other JAX
  program in the process. Applied only on the jaxlib releases where the flag
  exists (XLA aborts on unknown flags) and only before JAX starts its backends.
* glibc keeps freed memory (`mallopt`: no memory maps, no trimming): XLA:CPU
  allocates each step's buffers afresh and glibc maps and unmaps the large
  ones, so every step faults its memory in again (13,500 page faults per step
  of the seed CNN). The process keeps its peak memory, as with TensorFlow's
  allocator. Linux with glibc, when JAX runs on the CPU, unless the user set
  `GLIBC_TUNABLES` or `MALLOC_*`.
* synchronous CPU dispatch (`jax_cpu_enable_async_dispatch=False`), with the
  malloc setting: a worker thread's glibc arena does not keep the memory
  (blocks over 64 MiB are always mapped afresh: ResNet50 at batch 8 took
  21,000 page faults per step); the calling thread's does. Tiny steps lose a
  little overlap. Not applied when `JAX_CPU_ENABLE_ASYNC_DISPATCH` is set.

What it buys is in the README's Benchmarks section (jaxcomponents with the
default import and tuned, side by side with Keras).

Example:
  >>> report = status()
  >>> sorted(report) == ["fast_paths", "native", "tuned"]
  True
"""

from __future__ import annotations

import ctypes
import os
import platform as python_platform
import sys
from typing import Any

from jaxcomponents.ops import compiler

XLA_CPU_FLAGS = (f"--{compiler.YNN_OPTION}=-individual_convolution",)
DISPATCH_ENV = "JAX_CPU_ENABLE_ASYNC_DISPATCH"
# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_MALLOC_SETTINGS = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))

_TUNED: dict[str, str] = {}


def _backends_started() -> bool:
  """Whether JAX has created its backends (then XLA flags no longer apply); True when it cannot tell."""
  try:
    from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
    return xla_bridge.backends_are_initialized()
  except (ImportError, AttributeError):
    return True


def _accelerator_expected() -> bool:
  """Whether JAX will pick a GPU or TPU: `JAX_PLATFORMS` says so, or a plugin for one is installed."""
  import importlib.metadata  # pylint: disable=import-outside-toplevel
  import importlib.util  # pylint: disable=import-outside-toplevel
  platforms = os.environ.get("JAX_PLATFORMS", "").strip().lower()
  if platforms:
    return platforms.split(",")[0] != "cpu"
  if importlib.metadata.entry_points(group="jax_plugins"):
    return True
  return any(importlib.util.find_spec(name) is not None for name in ("jax_plugins", "libtpu"))


def _tune_xla_flags() -> str:
  if not compiler.verified_release():
    version = ".".join(map(str, compiler.jaxlib_version()))
    return f"not applied: jaxlib {version} does not have the flag or does not need it"
  flags = os.environ.get("XLA_FLAGS", "")
  missing = [flag for flag in XLA_CPU_FLAGS if flag.split("=")[0] not in flags]
  if not missing:
    return "applied" if all(flag in flags for flag in XLA_CPU_FLAGS) else "not applied: XLA_FLAGS sets it"
  if _backends_started():
    return "not applied: JAX had started its backends; call tune() first in the script"
  os.environ["XLA_FLAGS"] = " ".join([flags, *missing]).strip()
  return "applied"


def _tune_malloc() -> str:
  if not sys.platform.startswith("linux") or python_platform.libc_ver()[0] != "glibc":
    return "not applied: not Linux with glibc"
  if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "") or any(k.startswith("MALLOC_") for k in os.environ):
    return "not applied: GLIBC_TUNABLES or MALLOC_* set malloc already"
  if _accelerator_expected():
    return "not applied: JAX will run on an accelerator"
  mallopt = ctypes.CDLL(None).mallopt
  if not all(mallopt(parameter, value) for parameter, value in _MALLOC_SETTINGS):
    return "not applied: mallopt refused"
  return "applied"


def _tune_dispatch(malloc: str) -> str:
  import jax  # pylint: disable=import-outside-toplevel
  if malloc != "applied":
    return f"not applied: malloc {malloc}"
  if DISPATCH_ENV in os.environ:
    return f"not applied: {DISPATCH_ENV} is set"
  if _backends_started():
    return "not applied: JAX had started its backends; call tune() first in the script"
  jax.config.update("jax_cpu_enable_async_dispatch", False)
  return "applied"


def tune() -> dict[str, str]:
  """Tunes this whole process for JAX on the CPU; returns, per setting, "applied" or why not.

  Call it first in a script (before any JAX computation). It changes the
  process, not only jaxcomponents: an XLA flag in `XLA_FLAGS` (inherited by
  child processes), glibc's malloc (freed memory is kept), and JAX's CPU
  dispatch (synchronous); the module docstring says why and what each buys.
  Calling it again returns the first call's report.

  Example:
    >>> import jaxcomponents.cpu
    >>> report = jaxcomponents.cpu.tune()  # doctest: +SKIP
    >>> report  # doctest: +SKIP
    {'xla_flags': 'applied', 'malloc': 'applied', 'dispatch': 'applied'}
  """
  if not _TUNED:
    _TUNED["xla_flags"] = _tune_xla_flags()
    _TUNED["malloc"] = _tune_malloc()
    _TUNED["dispatch"] = _tune_dispatch(_TUNED["malloc"])
  return dict(_TUNED)


def status() -> dict[str, Any]:
  """What is in effect, for logs and benchmark records: the fast paths, the native library, `tune()`'s report."""
  from jaxcomponents.ops import native, platform  # pylint: disable=import-outside-toplevel
  return {"fast_paths": "on" if platform.enabled() else f"off ({platform.ENV})", "native": native.load().reason,
          "tuned": dict(_TUNED) or "no (jaxcomponents.cpu.tune() was not called)"}
