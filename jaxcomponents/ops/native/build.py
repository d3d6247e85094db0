"""How the native library is compiled: one recipe for the wheel's build step and for `jaxcomponents build-native`.

Standard library only: the package's build backend (`setup.py`) loads this
file by its path, in a build environment that holds jaxlib's FFI headers and
oneDNN's development files but neither JAX nor jaxcomponents.

A build is described by its `Manifest`: the SHA-256 of the source, the oneDNN
release it was linked against and the XLA FFI API version of the headers it
was compiled with. XLA keeps older FFI API versions working in newer jaxlib
releases (`xla/ffi/api/c_api.h`), so one build serves every jaxlib whose FFI
API has the same major version and the same or a later minor version.

Example:
  >>> ffi_api_version("/nowhere")
  Traceback (most recent call last):
  ...
  FileNotFoundError: jaxlib's XLA FFI header is not under /nowhere (xla/ffi/api/c_api.h)
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import re
import sys

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onednn_conv.cc")
ONEDNN_HEADER = ("include", "oneapi", "dnnl", "dnnl.hpp")
ONEDNN_LIBRARIES = ("libdnnl.so.3", "libdnnl.so")
# The distributions that hold oneDNN's shared library and its headers (Linux x86-64, GNU OpenMP runtime).
ONEDNN_RUNTIME = "onednn-cpu-gomp"
ONEDNN_DEVEL = "onednn-devel-cpu-gomp"
_FFI_HEADER = ("xla", "ffi", "api", "c_api.h")


@dataclasses.dataclass(frozen=True)
class Manifest:
  """What a build was made from; its `key` is compiled into the library, which reports it back."""

  source_sha256: str
  onednn_version: str
  ffi_api: str
  jaxlib: str

  @property
  def key(self) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:16]

  def serves_ffi_api(self, version: str) -> bool:
    """Whether a jaxlib with this FFI API version ("major.minor") runs this build."""
    built, found = (tuple(int(part) for part in v.split(".")) for v in (self.ffi_api, version))
    return found[0] == built[0] and found[1] >= built[1]


def sha256(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def ffi_api_version(include_dir: str) -> str:
  """The XLA FFI API version ("major.minor") declared by the headers under `include_dir`."""
  header = os.path.join(include_dir, *_FFI_HEADER)
  if not os.path.exists(header):
    raise FileNotFoundError(f"jaxlib's XLA FFI header is not under {include_dir} ({'/'.join(_FFI_HEADER)})")
  with open(header, encoding="utf-8") as f:
    text = f.read()
  major, minor = (re.search(rf"#define XLA_FFI_API_{part}\s+(\d+)", text).group(1) for part in ("MAJOR", "MINOR"))
  return f"{major}.{minor}"


def jaxlib_include_dir() -> tuple[str, str]:
  """(jaxlib's release, its FFI header folder), found without importing JAX."""
  dist = importlib.metadata.distribution("jaxlib")
  return dist.version, str(dist.locate_file(os.path.join("jaxlib", "include")))


def _distribution_file(name: str, parts: tuple[str, ...]) -> str | None:
  """The installed file of distribution `name` whose path ends with `parts`, if any."""
  try:
    files = importlib.metadata.distribution(name).files or ()
  except importlib.metadata.PackageNotFoundError:
    return None
  for file in files:
    if tuple(file.parts[-len(parts):]) == parts:
      return os.path.abspath(str(file.locate()))
  return None


def onednn_library() -> str | None:
  """The installed oneDNN shared library: from its distribution's file list, else under a known prefix."""
  for name in ONEDNN_LIBRARIES:
    found = _distribution_file(ONEDNN_RUNTIME, (name,))
    if found and os.path.exists(found):
      return found
  for root in _prefixes():
    for name in ONEDNN_LIBRARIES:
      if os.path.exists(os.path.join(root, "lib", name)):
        return os.path.join(root, "lib", name)
  return None


def onednn_include_dir() -> str | None:
  """The folder holding oneDNN's C++ headers (`oneapi/dnnl/dnnl.hpp`), if they are installed."""
  found = _distribution_file(ONEDNN_DEVEL, ONEDNN_HEADER[1:])
  if found:
    return os.path.dirname(os.path.dirname(os.path.dirname(found)))
  for root in _prefixes():
    if os.path.exists(os.path.join(root, *ONEDNN_HEADER)):
      return os.path.join(root, "include")
  return None


def _prefixes() -> list[str]:
  import site  # pylint: disable=import-outside-toplevel
  return [p for p in (os.environ.get("JAXCOMPONENTS_ONEDNN_ROOT"), sys.prefix, sys.base_prefix, site.USER_BASE) if p]


@dataclasses.dataclass(frozen=True)
class Compilation:
  """A build of this source for what is installed: oneDNN's library and headers, jaxlib's FFI headers."""

  library: str
  onednn_include: str
  jaxlib_include: str
  manifest: Manifest

  def command(self, compiler: str, output: str, rpath: str) -> list[str]:
    """The compiler's command line: the source, optimised, into a shared library linked to oneDNN's library."""
    return [compiler, "-O3", "-std=c++17", "-shared", "-fPIC", "-w", f"-DJC_BUILD_KEY=\"{self.manifest.key}\"",
            f"-I{self.jaxlib_include}", f"-I{self.onednn_include}", SOURCE, f"-L{os.path.dirname(self.library)}",
            f"-l:{os.path.basename(self.library)}", f"-Wl,-rpath,{rpath}", "-o", output]

  def write_manifest(self, path: str, output: str, **extra) -> None:
    """Writes the manifest, its key and the SHA-256 of the built `output` (plus `extra`) to the JSON file `path`."""
    record = dict(dataclasses.asdict(self.manifest), key=self.manifest.key, library=os.path.basename(output),
                  library_sha256=sha256(output), **extra)
    with open(path, "w", encoding="utf-8") as f:
      json.dump(record, f, indent=1)


def compilation() -> Compilation | None:
  """The build of this source for the oneDNN and jaxlib installed now; None without oneDNN's library or headers."""
  library, include = onednn_library(), onednn_include_dir()
  if library is None or include is None:
    return None
  jaxlib, jaxlib_include = jaxlib_include_dir()
  return Compilation(library, include, jaxlib_include, manifest_for(library, jaxlib, jaxlib_include))


def runtime_version(library: str) -> str:
  """The release oneDNN's shared library reports (e.g. '3.2.0'), read by loading it."""
  import ctypes  # pylint: disable=import-outside-toplevel

  class Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int),
                ("hash", ctypes.c_char_p), ("cpu_runtime", ctypes.c_uint), ("gpu_runtime", ctypes.c_uint)]

  version = ctypes.CDLL(library).dnnl_version
  version.restype = ctypes.POINTER(Version)
  found = version().contents
  return f"{found.major}.{found.minor}.{found.patch}"


def manifest_for(library: str, jaxlib: str, jaxlib_include: str) -> Manifest:
  """The manifest of a build of this source against oneDNN's `library` and jaxlib's headers."""
  return Manifest(sha256(SOURCE), runtime_version(library), ffi_api_version(jaxlib_include), jaxlib)
