"""jaxcomponents' native CPU library: oneDNN convolutions and a fusion barrier, called through the XLA FFI.

It comes with the package. On Linux x86-64, installing jaxcomponents compiles
`onednn_conv.cc` into the wheel (the build backend, `setup.py`, with jaxlib's
FFI headers and oneDNN's development files as build requirements) and
installs oneDNN's runtime beside it, a dependency for that platform. Nothing
else is needed: no command, no compiler at run time. Elsewhere the package is
pure Python and CPU convolutions are XLA's; jaxcomponents says so once, when it
first traces a CPU convolution (a `NativeLibraryWarning`), never at import.

`jaxcomponents build-native` compiles the same source into jaxcomponents' cache
(`$JAXCOMPONENTS_HOME/native`, default `~/.cache/jaxcomponents/native`), with
the C++ compiler (`$CXX`, else `c++`) and oneDNN's headers
(`pip install "jaxcomponents[onednn]"`): for a source tree edited after it was
installed, or a jaxlib whose XLA FFI API the packaged build does not serve.

`load()`, called the first time a computation that could use the library is
traced, loads the first build it can verify, the packaged one, then the
cache's: its manifest (`build.Manifest`) must name this source's SHA-256, the
oneDNN release installed now and an FFI API version the installed jaxlib
serves (same major, same or older minor); the library file must have the
SHA-256 the manifest records, and the loaded library must report the
manifest's key. Then its handlers are registered for the CPU under their own
names (`jc_...`). Anything else, and jaxcomponents computes with XLA's
operations; `load().reason` says why. `JAXCOMPONENTS_ONEDNN=0` (or
`JAXCOMPONENTS_FAST_CPU=0`) leaves the library alone.

Example:
  >>> status = load()
  >>> isinstance(status.available, bool) and isinstance(status.reason, str)
  True
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import glob
import json
import os
import platform as python_platform
import shutil
import subprocess
import sys
import tempfile
import warnings

from jaxcomponents import settings
from jaxcomponents.ops import platform
from jaxcomponents.ops.native import build as recipe

ENV = "JAXCOMPONENTS_ONEDNN"
SOURCE = recipe.SOURCE
TARGETS = ("jc_onednn_conv_forward", "jc_onednn_conv_backward_data", "jc_onednn_conv_backward_weights",
           "jc_onednn_conv_transpose", "jc_fusion_barrier")
BUILD_COMMAND = "jaxcomponents build-native"
# The packaged build beside this file, `_jc_native.so.1` (not an extension module's name), and its manifest.
PACKAGED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_jc_native")


class NativeLibraryWarning(UserWarning):
  """CPU convolutions use XLA's operations because the native library is not available; said once."""


@dataclasses.dataclass(frozen=True)
class Native:
  """Whether the native handlers are registered, and why (not)."""

  available: bool
  reason: str
  library: str | None = None


def enabled() -> bool:
  """`JAXCOMPONENTS_ONEDNN` unset or not 0/false/off/no, and the CPU fast paths on."""
  return platform.enabled() and not platform.switched_off(ENV)


def shipped_here() -> bool:
  """Whether the package ships the native library on this platform (Linux x86-64)."""
  return sys.platform.startswith("linux") and python_platform.machine() == "x86_64"


def build_dir() -> str:
  """Where `build-native` puts builds and their manifests: `$JAXCOMPONENTS_HOME/native`."""
  return settings.cache_dir("native")


def installed() -> recipe.Manifest:
  """The manifest a build for what is installed now would have (raises OSError when oneDNN is missing)."""
  library = recipe.onednn_library()
  if library is None:
    raise OSError("oneDNN's library is not installed")
  jaxlib, include = recipe.jaxlib_include_dir()
  return recipe.manifest_for(library, jaxlib, include)


def _write_atomically(path: str, write) -> None:
  handle, partial = tempfile.mkstemp(prefix=".jc_native_", dir=os.path.dirname(path))
  os.close(handle)
  try:
    write(partial)
    os.replace(partial, path)  # processes building at once all end with one complete file
  finally:
    if os.path.exists(partial):
      os.remove(partial)


def build(compiler: str | None = None) -> str:
  """Compiles the library into the cache for the oneDNN and jaxlib installed now; returns its path.

  Raises:
    RuntimeError: oneDNN's library or headers or a C++ compiler is missing, or the compiler failed (its message
      included).
  """
  found = recipe.compilation()
  if found is None:
    raise RuntimeError('oneDNN\'s headers are not installed: pip install "jaxcomponents[onednn]" (Linux x86-64).')
  compiler = compiler or os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
  if compiler is None:
    raise RuntimeError("no C++ compiler found: install g++ or set CXX.")
  os.makedirs(build_dir(), exist_ok=True)
  output = os.path.join(build_dir(), f"jc_native_{found.manifest.key}.so")

  def command(path: str) -> list[str]:
    return found.command(compiler, path, rpath=os.path.dirname(found.library))

  def compile_into(partial: str) -> None:
    result = subprocess.run(command(partial), capture_output=True, text=True, check=False)
    if result.returncode:
      raise RuntimeError(f"`{' '.join(command(output))}` failed:\n{result.stderr[-2000:]}")
    os.chmod(partial, 0o755)

  _write_atomically(output, compile_into)
  _write_atomically(os.path.splitext(output)[0] + ".json",
                    lambda partial: found.write_manifest(partial, output, command=command(output)))
  load.cache_clear()
  return output


def _candidates() -> list[tuple[str, str]]:
  """(library, manifest) pairs to try: the packaged build, then the cache's, newest first."""
  found = [(PACKAGED + ".so.1", PACKAGED + ".json")] if os.path.exists(PACKAGED + ".so.1") else []
  manifests = sorted(glob.glob(os.path.join(build_dir(), "jc_native_*.json")), key=os.path.getmtime, reverse=True)
  return found + [(os.path.splitext(m)[0] + ".so", m) for m in manifests]


def _verified(library: str, manifest: str, now: recipe.Manifest) -> tuple[str, str]:
  """(why the build `library`, `manifest` does not serve what is installed `now`, or "", its key)."""
  if not os.path.exists(manifest) or not os.path.exists(library):
    return "its manifest or library file is missing", ""
  with open(manifest, encoding="utf-8") as f:
    record = json.load(f)
  for field in ("source_sha256", "onednn_version", "ffi_api"):
    if not record.get(field) or field != "ffi_api" and record[field] != getattr(now, field):
      return f"the build's manifest does not match ({field})", ""
  built = recipe.Manifest(**{field: str(record.get(field, "")) for field in recipe.Manifest.__dataclass_fields__})
  if not built.serves_ffi_api(now.ffi_api):
    return f"it was built for XLA FFI API {built.ffi_api}, jaxlib {now.jaxlib} has {now.ffi_api}", ""
  if record.get("key") != built.key or recipe.sha256(library) != record.get("library_sha256"):
    return "the built library's SHA-256 does not match its manifest", ""
  return "", built.key


def _register(library: str, key: str) -> str:
  """Loads `library` and registers its handlers; "" when done, else why not."""
  import jax  # pylint: disable=import-outside-toplevel
  ctypes.CDLL(recipe.onednn_library(), mode=ctypes.RTLD_GLOBAL)  # the soname the library needs, wherever it lies
  handlers = ctypes.cdll.LoadLibrary(library)
  handlers.jc_build_key.restype = ctypes.c_char_p
  if handlers.jc_build_key().decode() != key:
    return "the loaded library reports another build key"
  for name in TARGETS:
    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(handlers, name)), platform="cpu")
  return ""


@functools.cache
def load() -> Native:
  """Loads and registers the first verified build of the native library; what happened, as a `Native`."""
  if not enabled():
    return Native(False, f"off ({ENV} or {platform.ENV})")
  if not shipped_here():
    return Native(False, "not shipped for this platform (Linux x86-64 only)")
  try:
    now = installed()
  except (OSError, AttributeError, ValueError, ImportError) as error:
    return Native(False, f"oneDNN is not installed ({error}; it comes with jaxcomponents on Linux x86-64)")
  reasons = []
  for library, manifest in _candidates():
    try:
      reason, key = _verified(library, manifest, now)
      reason = reason or _register(library, key)
    except (OSError, AttributeError, ValueError, TypeError) as error:
      reason = f"load failed: {error}"
    if not reason:
      kind = "the packaged build" if library.startswith(PACKAGED) else f"built by `{BUILD_COMMAND}`"
      return Native(True, f"oneDNN {now.onednn_version} convolutions ({kind})", library)
    reasons.append(f"{'packaged' if library.startswith(PACKAGED) else 'cached'} build: {reason}")
  if not reasons:
    reasons.append(f"no build for this source, oneDNN {now.onednn_version} and XLA FFI API {now.ffi_api}")
  return Native(False, "; ".join(reasons) + f"; run `{BUILD_COMMAND}`")


@functools.cache
def _announce(reason: str) -> None:
  warnings.warn(f"jaxcomponents computes CPU convolutions with XLA's operations, without its native library: "
                f"{reason}", NativeLibraryWarning, stacklevel=4)


def available() -> bool:
  """Whether the native handlers are registered; the first time they are not, says why once (a warning)."""
  status = load()
  if not status.available and enabled():
    _announce(status.reason)
  return status.available
