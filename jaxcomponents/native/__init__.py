"""oneDNN convolutions for XLA:CPU, compiled once per machine and called through the XLA FFI.

The same library holds `jc_fusion_barrier`, the no-op call behind
`fast_cpu.materialized`.

`load()` finds oneDNN (the `onednn-cpu-gomp` and `onednn-devel-cpu-gomp`
wheels: `pip install "jaxcomponents[onednn]"`), compiles `onednn_conv.cc` with
the C++ compiler (`$CXX`, else `c++`) into jaxcomponents' cache the first time
(a few seconds, then reused), loads it and registers its handlers for the CPU.
Where any of that is missing it says why and the convolutions keep XLA's path;
a failed build is reported once as a warning. `JAXCOMPONENTS_ONEDNN=0` (or the
general `JAXCOMPONENTS_FAST_CPU=0`) leaves oneDNN alone.

Example:
  >>> status = load()
  >>> isinstance(status.available, bool) and isinstance(status.reason, str)
  True
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings

ENV = "JAXCOMPONENTS_ONEDNN"
SOURCE = os.path.join(os.path.dirname(__file__), "onednn_conv.cc")
TARGETS = ("jc_onednn_conv_forward", "jc_onednn_conv_backward_data", "jc_onednn_conv_backward_weights",
           "jc_fusion_barrier")
_HEADER = os.path.join("include", "oneapi", "dnnl", "dnnl.hpp")
_LIBRARIES = ("libdnnl.so.3", "libdnnl.so")


@dataclasses.dataclass(frozen=True)
class Native:
  """Whether the oneDNN handlers are registered, and why (not)."""

  available: bool
  reason: str
  library: str | None = None


def enabled() -> bool:
  """`JAXCOMPONENTS_ONEDNN` unset or not 0/false/off/no, and the CPU fast paths on."""
  from jaxcomponents import fast_cpu  # pylint: disable=import-outside-toplevel
  return fast_cpu.enabled() and os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "off", "no")


def onednn_root() -> str | None:
  """The installation prefix holding oneDNN's C++ header and shared library, if any."""
  import site  # pylint: disable=import-outside-toplevel
  candidates = [os.environ.get("JAXCOMPONENTS_ONEDNN_ROOT"), sys.prefix, sys.base_prefix, site.USER_BASE]
  for root in filter(None, candidates):
    if os.path.exists(os.path.join(root, _HEADER)) and _library(root):
      return root
  return None


def _library(root: str) -> str | None:
  for name in _LIBRARIES:
    if os.path.exists(os.path.join(root, "lib", name)):
      return name
  return None


def _version(root: str) -> str:
  """oneDNN's release from its version header, e.g. '3.2.0'."""
  with open(os.path.join(root, "include", "oneapi", "dnnl", "dnnl_version.h"), encoding="utf-8") as f:
    found = dict(re.findall(r"#define DNNL_VERSION_(MAJOR|MINOR|PATCH) (\d+)", f.read()))
  return ".".join(found.get(part, "?") for part in ("MAJOR", "MINOR", "PATCH"))


def _cache_dir() -> str:
  from jaxcomponents.weights.hub import jaxcomponents_home  # pylint: disable=import-outside-toplevel
  return os.path.join(jaxcomponents_home(), "native")


def _build(root: str, compiler: str) -> str:
  """Compiles the handlers once per source, oneDNN and jaxlib; returns the shared library's path."""
  import jax  # pylint: disable=import-outside-toplevel
  import jaxlib  # pylint: disable=import-outside-toplevel
  with open(SOURCE, "rb") as f:
    source = f.read()
  command = [compiler, "-O3", "-std=c++17", "-shared", "-fPIC", "-w", f"-I{jax.ffi.include_dir()}",
             f"-I{os.path.join(root, 'include')}", SOURCE, f"-L{os.path.join(root, 'lib')}",
             f"-l:{_library(root)}", f"-Wl,-rpath,{os.path.join(root, 'lib')}"]
  key = hashlib.sha256(source + " ".join(command).encode() + jaxlib.__version__.encode()).hexdigest()[:16]
  directory = _cache_dir()
  target = os.path.join(directory, f"jc_onednn_{key}.so")
  if os.path.exists(target):
    return target
  os.makedirs(directory, exist_ok=True)
  handle, partial = tempfile.mkstemp(prefix=".jc_onednn_", suffix=".so", dir=directory)
  os.close(handle)
  try:
    result = subprocess.run([*command, "-o", partial], capture_output=True, text=True, check=False)
    if result.returncode:
      raise RuntimeError(f"`{' '.join(command)}` failed:\n{result.stderr[-2000:]}")
    os.chmod(partial, 0o755)
    os.replace(partial, target)  # atomic: processes building at once all end with one complete file
  finally:
    if os.path.exists(partial):
      os.remove(partial)
  return target


@functools.cache
def load() -> Native:
  """Builds (once) and registers the oneDNN handlers; what happened, as a `Native`."""
  if not enabled():
    return Native(False, f"off ({ENV} or JAXCOMPONENTS_FAST_CPU)")
  root = onednn_root()
  if root is None:
    return Native(False, 'oneDNN is not installed (pip install "jaxcomponents[onednn]")')
  compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
  if compiler is None:
    return Native(False, "no C++ compiler found (set CXX or install g++)")
  try:
    import jax  # pylint: disable=import-outside-toplevel
    library = _build(root, compiler)
    handlers = ctypes.cdll.LoadLibrary(library)
    for name in TARGETS:
      jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(handlers, name)), platform="cpu")
  except (OSError, RuntimeError, AttributeError) as error:
    warnings.warn(f"jaxcomponents: the oneDNN convolutions are not available, XLA's are used instead: {error}",
                  stacklevel=2)
    return Native(False, f"build or load failed: {error}")
  return Native(True, f"oneDNN {_version(root)} convolutions", library)
