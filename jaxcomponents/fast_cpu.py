"""CPU fast paths, selected automatically on CPU and switched off with `JAXCOMPONENTS_FAST_CPU=0`.

Measured causes of slow convolutional nets on XLA:CPU (benchmarks/fast_cpu.md)
and what jaxcomponents does about each:

* jaxlib 0.10 hands convolutions to YNNPACK, 5-10x slower than XLA's own
  (Eigen) convolution for unpadded convolutions and kernel gradients.
  Importing jaxcomponents before JAX starts its backend adds `XLA_CPU_FLAGS`
  to `XLA_FLAGS`, which keeps YNNPACK for matrix products only. The flag acts
  on the CPU backend alone.
* XLA:CPU allocates every step's buffers afresh and glibc maps and unmaps the
  large ones, so each step faults its memory in again; `configure_malloc`
  makes glibc keep freed memory and `configure_dispatch` runs computations on
  the calling thread, whose arena keeps it (when JAX will run on the CPU).
* Max-pool gradients (`select_and_scatter`), grouped (depthwise), input-dilated
  (transposed) convolutions and windows larger than their input run with slow
  generic code on XLA:CPU. `on_cpu` picks the layers' CPU formulations instead
  (strided slices, kernel-tap sums, written-out zeros, im2col) when a
  computation is lowered for the CPU; other platforms keep XLA's operations.
* JAX lowers Threefry random bits (dropout masks) as a loop on the CPU;
  `configure_threefry` lowers them unrolled, as on other platforms.
* Large float32 convolutions go to oneDNN through the XLA FFI where it is
  installed (`jaxcomponents.native`; `JAXCOMPONENTS_ONEDNN=0` alone turns that off).

The flag is set in this process's environment, so child processes inherit it;
`USER_XLA_FLAGS` keeps what the user had (None: unset) and `user_environment`
gives launchers the plain setting for their children. With
`JAXCOMPONENTS_FAST_CPU=0` (or `false`, `off`, `no`) nothing changes: the plain
XLA path. A user's own `XLA_FLAGS` entry for the same flag, or own malloc
settings (`GLIBC_TUNABLES`, `MALLOC_*`), win.

Example:
  >>> import jax.numpy as jnp
  >>> on_cpu(lambda x: x + 1, lambda x: x - 1, jnp.zeros(2)).tolist()
  [1.0, 1.0]
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

import jax
from jax import lax
from jax.interpreters import mlir

ENV = "JAXCOMPONENTS_FAST_CPU"
XLA_CPU_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",)
# The flag exists in these jaxlib releases; XLA aborts on a flag it does not know, so others are left alone.
TESTED_JAXLIB = ((0, 10), (0, 10))
USER_XLA_FLAGS = os.environ.get("XLA_FLAGS")


def enabled() -> bool:
  """Whether the CPU fast paths are on (`JAXCOMPONENTS_FAST_CPU` unset, or not 0/false/off/no)."""
  return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "off", "no")


def _jaxlib_version() -> tuple[int, int]:
  import jaxlib  # pylint: disable=import-outside-toplevel
  return tuple(int(part) for part in re.findall(r"\d+", jaxlib.__version__)[:2])


def _backends_started() -> bool:
  try:
    from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
    return xla_bridge.backends_are_initialized()
  except (ImportError, AttributeError):
    return True  # cannot tell: assume it is too late to change XLA_FLAGS


def configure_xla() -> str:
  """Adds `XLA_CPU_FLAGS` to `XLA_FLAGS` when it can; returns what happened, in words.

  Called when jaxcomponents is imported. It has effect only before JAX starts
  its backends (the first computation), so import jaxcomponents first.
  """
  if not enabled():
    return f"off ({ENV}={os.environ.get(ENV)!r})"
  low, high = TESTED_JAXLIB
  if not low <= _jaxlib_version() <= high:
    return f"not applied: jaxlib {'.'.join(map(str, _jaxlib_version()))} is outside the tested releases"
  flags = os.environ.get("XLA_FLAGS", "")
  missing = [flag for flag in XLA_CPU_FLAGS if flag.split("=")[0] not in flags]
  if not missing:
    return "applied" if all(flag in flags for flag in XLA_CPU_FLAGS) else "not applied: XLA_FLAGS sets it"
  if _backends_started():
    return "not applied: JAX had started its backends before jaxcomponents was imported"
  os.environ["XLA_FLAGS"] = " ".join([flags, *missing]).strip()
  return "applied"


XLA_STATUS = configure_xla()

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_MALLOC_SETTINGS = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))


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


def configure_malloc() -> str:
  """Makes glibc keep freed memory for reuse; returns what happened, in words.

  XLA:CPU allocates its buffers afresh for every execution; glibc serves large
  ones with new memory maps and returns them on free, so each training step
  pays a page fault for every 4 KiB it touches (13,500 per step of the seed
  CNN: a fifth of its time). No memory maps and no trimming keep the pages in
  the process for the next step, as TensorFlow's allocator does (the process
  keeps its peak memory). Applied on Linux with glibc when JAX will run on the
  CPU and the user has no malloc settings of their own (`GLIBC_TUNABLES`,
  `MALLOC_*`).
  """
  if not enabled():
    return f"off ({ENV}={os.environ.get(ENV)!r})"
  if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
    return "not applied: not Linux with glibc"
  if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "") or any(k.startswith("MALLOC_") for k in os.environ):
    return "not applied: GLIBC_TUNABLES or MALLOC_* set malloc already"
  if _accelerator_expected():
    return "not applied: JAX will run on an accelerator"
  mallopt = ctypes.CDLL(None).mallopt
  if not all(mallopt(parameter, value) for parameter, value in _MALLOC_SETTINGS):
    return "not applied: mallopt refused"
  return "applied"


MALLOC_STATUS = configure_malloc()
DISPATCH_ENV = "JAX_CPU_ENABLE_ASYNC_DISPATCH"


def configure_dispatch() -> str:
  """Runs CPU computations on the thread that calls them; returns what happened, in words.

  With JAX's asynchronous CPU dispatch, a worker thread allocates each
  execution's buffers from its own glibc arena, where `configure_malloc`'s
  settings do not hold: blocks over 64 MiB are always memory-mapped and
  unmapped again (ResNet50 at batch 8: 21,000 page faults per step), and
  smaller ones come and go with the arena's extra heaps. On the calling
  thread they come from the main arena, which keeps them. Applied with
  `configure_malloc`, before JAX starts its backends, unless the user sets
  `JAX_CPU_ENABLE_ASYNC_DISPATCH`.
  """
  if MALLOC_STATUS != "applied":
    return f"not applied: malloc {MALLOC_STATUS}"
  if DISPATCH_ENV in os.environ:
    return f"not applied: {DISPATCH_ENV} is set"
  if _backends_started():
    return "not applied: JAX had started its backends before jaxcomponents was imported"
  jax.config.update("jax_cpu_enable_async_dispatch", False)
  return "applied"


DISPATCH_STATUS = configure_dispatch()


def configure_threefry() -> str:
  """Lowers JAX's Threefry-2x32 random bits without a loop on the CPU; returns what happened, in words.

  For the CPU, JAX writes Threefry's 20 rounds as a loop over five groups,
  which XLA:CPU runs as a few small kernels per group (the seed CNN's dropout
  bits: 2.5 ms of a 26 ms step). The unrolled form JAX lowers for other
  platforms fuses into one pass (0.3 ms) and gives the same bits. Chosen
  when a computation is lowered, so `JAXCOMPONENTS_FAST_CPU=0` restores the loop.
  """
  try:
    from jax._src.random import threefry2x32  # pylint: disable=import-outside-toplevel
    looped, unrolled = threefry2x32._threefry2x32_cpu_lowering_rule, threefry2x32._threefry2x32_lowering_rule
  except (ImportError, AttributeError):
    return "not applied: this JAX lowers Threefry another way"

  def lowering(ctx, *args, **params):
    return (unrolled if enabled() else looped)(ctx, *args, **params)

  mlir.register_lowering(threefry2x32.threefry2x32_p, lowering, platform="cpu")
  return "applied"


THREEFRY_STATUS = configure_threefry()


def user_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
  """A copy of `env` (default: this process's) with the user's own `XLA_FLAGS` back.

  For child processes meant to run JAX without jaxcomponents' settings (a
  child that imports jaxcomponents applies them again itself).
  """
  env = dict(os.environ if env is None else env)
  env.pop("XLA_FLAGS", None)
  if USER_XLA_FLAGS is not None:
    env["XLA_FLAGS"] = USER_XLA_FLAGS
  return env


def xla_flags_applied() -> bool:
  """Whether this process runs with `XLA_CPU_FLAGS` (set by jaxcomponents or by the user)."""
  return XLA_STATUS == "applied"


def on_cpu(fast: Callable[..., Any], plain: Callable[..., Any], *args: Any) -> Any:
  """`fast(*args)` where the computation is lowered for the CPU and the fast paths are on, else `plain(*args)`.

  The choice is made when the computation is lowered for a platform, so one
  jitted function is right on every platform it runs on.
  """
  if not enabled():
    return plain(*args)
  return lax.platform_dependent(*args, cpu=fast, default=plain)


@jax.custom_jvp
def materialized(x: jax.Array) -> jax.Array:
  """`x`, computed into memory once, for code on the CPU path (inside `on_cpu`'s `fast`).

  XLA:CPU fuses a cheap producer into every consumer and recomputes it there.
  When a consumer reads each value several times (a pooling gradient hands each
  window's value to all its inputs), the whole producer (a dropout mask's random
  bits, say) is recomputed for every read. Where `jaxcomponents.native` is
  built, `x` goes through its `jc_fusion_barrier` call, which returns its input
  buffer and makes XLA compute `x` first; elsewhere `x` is returned as it is.
  Differentiates as the identity.

  Example:
    >>> import jax.numpy as jnp
    >>> on_cpu(lambda x: materialized(x * 2), lambda x: x * 2, jnp.ones(3)).tolist()
    [2.0, 2.0, 2.0]
  """
  from jaxcomponents import native  # pylint: disable=import-outside-toplevel
  if not native.load().available:
    return x
  return jax.ffi.ffi_call("jc_fusion_barrier", jax.ShapeDtypeStruct(x.shape, x.dtype), input_output_aliases={0: 0},
                          vmap_method="broadcast_all")(x)


@materialized.defjvp
def _materialized_jvp(primals, tangents):
  return materialized(primals[0]), tangents[0]


def status() -> dict[str, Any]:
  """What is in effect, for logs and benchmark records."""
  from jaxcomponents import native  # pylint: disable=import-outside-toplevel
  return {"enabled": enabled(), "xla_flags": XLA_STATUS, "malloc": MALLOC_STATUS, "dispatch": DISPATCH_STATUS,
          "threefry": THREEFRY_STATUS, "onednn": native.load().reason,
          "backend": jax.default_backend()}
