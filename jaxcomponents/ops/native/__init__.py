"""jaxcomponents' native CPU library: oneDNN convolutions and a fusion barrier, called through the XLA FFI.

It is built once per installation by one explicit command, never at import or
while tracing:

    jaxcomponents build-native        # `make install` runs it

which compiles `onednn_conv.cc` against the installed oneDNN
(`pip install "jaxcomponents[onednn]"`) and jaxlib's FFI headers with the C++
compiler (`$CXX`, else `c++`) into jaxcomponents' cache
(`$JAXCOMPONENTS_HOME/native`, default `~/.cache/jaxcomponents/native`),
beside a manifest of what it was built from.

`load()`, called the first time a computation that could use the library is
traced, loads only a build it can verify: the manifest must name this
source's SHA-256, the release and SHA-256 of the oneDNN library installed
now, and the jaxlib release; the library file must have the SHA-256 the
manifest records, and the loaded library must report the same build key.
Then its handlers are registered for the CPU under their own names
(`jc_...`). Anything else, and jaxcomponents computes with XLA's operations;
`load().reason` says why. `JAXCOMPONENTS_ONEDNN=0` (or
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
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

from jaxcomponents import settings
from jaxcomponents.ops import platform

ENV = "JAXCOMPONENTS_ONEDNN"
SOURCE = os.path.join(os.path.dirname(__file__), "onednn_conv.cc")
TARGETS = ("jc_onednn_conv_forward", "jc_onednn_conv_backward_data", "jc_onednn_conv_backward_weights",
           "jc_onednn_conv_transpose", "jc_fusion_barrier")
BUILD_COMMAND = "jaxcomponents build-native"
_HEADER = os.path.join("include", "oneapi", "dnnl", "dnnl.hpp")
_LIBRARIES = ("libdnnl.so.3", "libdnnl.so")


@dataclasses.dataclass(frozen=True)
class Native:
  """Whether the native handlers are registered, and why (not)."""

  available: bool
  reason: str
  library: str | None = None


@dataclasses.dataclass(frozen=True)
class Fingerprint:
  """What a build depends on: the source, the oneDNN library and the jaxlib release."""

  source_sha256: str
  onednn_version: str
  onednn_sha256: str
  jaxlib: str

  @property
  def key(self) -> str:
    """A short hash of all of it: the build's file name and the key the library reports."""
    return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def enabled() -> bool:
  """`JAXCOMPONENTS_ONEDNN` unset or not 0/false/off/no, and the CPU fast paths on."""
  return platform.enabled() and not platform.switched_off(ENV)


def onednn_root() -> str | None:
  """The installation prefix holding oneDNN's C++ header and shared library, if any."""
  import site  # pylint: disable=import-outside-toplevel
  candidates = [os.environ.get("JAXCOMPONENTS_ONEDNN_ROOT"), sys.prefix, sys.base_prefix, site.USER_BASE]
  for root in filter(None, candidates):
    if os.path.exists(os.path.join(root, _HEADER)) and _onednn_library(root):
      return root
  return None


def _onednn_library(root: str) -> str | None:
  for name in _LIBRARIES:
    path = os.path.join(root, "lib", name)
    if os.path.exists(path):
      return path
  return None


def _sha256(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


class _DnnlVersion(ctypes.Structure):
  _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int),
              ("hash", ctypes.c_char_p), ("cpu_runtime", ctypes.c_uint), ("gpu_runtime", ctypes.c_uint)]


def _onednn_runtime_version(library: str) -> str:
  """The release the oneDNN library itself reports, e.g. '3.2.0'."""
  version = ctypes.CDLL(library).dnnl_version
  version.restype = ctypes.POINTER(_DnnlVersion)
  found = version().contents
  return f"{found.major}.{found.minor}.{found.patch}"


def fingerprint(root: str) -> Fingerprint:
  """The fingerprint of a build against the oneDNN under `root` and the jaxlib installed now."""
  import jaxlib  # pylint: disable=import-outside-toplevel
  library = _onednn_library(root)
  return Fingerprint(_sha256(SOURCE), _onednn_runtime_version(library), _sha256(library), jaxlib.__version__)


def build_dir() -> str:
  """Where builds and their manifests live: `$JAXCOMPONENTS_HOME/native`."""
  return settings.cache_dir("native")


def _paths(key: str) -> tuple[str, str]:
  base = os.path.join(build_dir(), f"jc_native_{key}")
  return base + ".so", base + ".json"


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
  """Compiles the library for the oneDNN and jaxlib installed now; returns its path. The explicit build step.

  Raises:
    RuntimeError: oneDNN or a C++ compiler is missing, or the compiler failed (its message included).
  """
  import jax  # pylint: disable=import-outside-toplevel
  root = onednn_root()
  if root is None:
    raise RuntimeError('oneDNN is not installed: pip install "jaxcomponents[onednn]" (Linux x86-64).')
  compiler = compiler or os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
  if compiler is None:
    raise RuntimeError("no C++ compiler found: install g++ or set CXX.")
  found = fingerprint(root)
  library, manifest = _paths(found.key)
  os.makedirs(build_dir(), exist_ok=True)
  lib_dir = os.path.join(root, "lib")
  command = [compiler, "-O3", "-std=c++17", "-shared", "-fPIC", "-w", f"-DJC_BUILD_KEY=\"{found.key}\"",
             f"-I{jax.ffi.include_dir()}", f"-I{os.path.join(root, 'include')}", SOURCE, f"-L{lib_dir}",
             f"-l:{os.path.basename(_onednn_library(root))}", f"-Wl,-rpath,{lib_dir}"]

  def compile_into(partial: str) -> None:
    result = subprocess.run([*command, "-o", partial], capture_output=True, text=True, check=False)
    if result.returncode:
      raise RuntimeError(f"`{' '.join(command)}` failed:\n{result.stderr[-2000:]}")
    os.chmod(partial, 0o755)

  _write_atomically(library, compile_into)
  record = dict(dataclasses.asdict(found), key=found.key, library_sha256=_sha256(library), command=command)

  def write_manifest(partial: str) -> None:
    with open(partial, "w", encoding="utf-8") as f:
      json.dump(record, f, indent=1)

  _write_atomically(manifest, write_manifest)
  load.cache_clear()
  return library


def _verified(found: Fingerprint) -> tuple[str | None, str]:
  """The path of a build whose manifest and file match `found`, or None and why not."""
  library, manifest = _paths(found.key)
  if not os.path.exists(manifest) or not os.path.exists(library):
    return None, (f"not built for this source, oneDNN {found.onednn_version} and jaxlib {found.jaxlib}: "
                  f"run `{BUILD_COMMAND}`")
  with open(manifest, encoding="utf-8") as f:
    record = json.load(f)
  for field, value in dataclasses.asdict(found).items():
    if record.get(field) != value:
      return None, f"the build's manifest does not match ({field}): run `{BUILD_COMMAND}` again"
  if _sha256(library) != record.get("library_sha256"):
    return None, f"the built library's SHA-256 does not match its manifest: run `{BUILD_COMMAND}` again"
  return library, ""


@functools.cache
def load() -> Native:
  """Loads and registers a verified build of the native library; what happened, as a `Native`."""
  if not enabled():
    return Native(False, f"off ({ENV} or {platform.ENV})")
  root = onednn_root()
  if root is None:
    return Native(False, 'oneDNN is not installed (pip install "jaxcomponents[onednn]")')
  try:
    found = fingerprint(root)
    library, reason = _verified(found)
    if library is None:
      return Native(False, reason)
    import jax  # pylint: disable=import-outside-toplevel
    handlers = ctypes.cdll.LoadLibrary(library)
    handlers.jc_build_key.restype = ctypes.c_char_p
    if handlers.jc_build_key().decode() != found.key:
      return Native(False, f"the loaded library reports another build key: run `{BUILD_COMMAND}` again")
    for name in TARGETS:
      jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(handlers, name)), platform="cpu")
  except (OSError, AttributeError, ValueError) as error:
    return Native(False, f"load failed: {error}")
  return Native(True, f"oneDNN {found.onednn_version} convolutions", library)
