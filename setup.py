"""jaxcomponents' build: the package, with its native CPU library compiled into the wheel on Linux x86-64.

The library (`jaxcomponents/ops/native/onednn_conv.cc`) is compiled by the
recipe `jaxcomponents build-native` uses (`jaxcomponents/ops/native/build.py`),
against jaxlib's XLA FFI headers and oneDNN's development files, both build
requirements (pyproject.toml). It needs no Python: the wheel is tagged for the
stable ABI (abi3) and the platform. Elsewhere the package is pure Python.
Without a C++ compiler the build says why and leaves the library out.
"""

import importlib.util
import os
import platform
import sys

import setuptools
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
NATIVE = "jaxcomponents.ops.native._jc_native"
# Not an extension module's name (no `.so` at the end), so that nothing walking the package tries to import it.
LIBRARY, MANIFEST = "_jc_native.so.1", "_jc_native.json"
# From the installed library (site-packages/jaxcomponents/ops/native) to the environment's lib folder, where
# oneDNN's wheel puts libdnnl.so.3. jaxcomponents also loads oneDNN itself first, wherever it lies.
RPATH = "$ORIGIN/../../../../.."


def _recipe():
  path = os.path.join(ROOT, "jaxcomponents", "ops", "native", "build.py")
  spec = importlib.util.spec_from_file_location("_jaxcomponents_native_build", path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module
  spec.loader.exec_module(module)
  return module


class BuildNative(build_ext):
  """Compiles the native library by the shared recipe and writes its manifest beside it."""

  def build_extension(self, ext):
    build = _recipe().compilation()
    if build is None:
      self.warn("jaxcomponents' native library not built: oneDNN's development files are missing")
      return
    output = self.get_ext_fullpath(ext.name)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    try:
      self.spawn(build.command(os.environ.get("CXX", "c++"), output, RPATH))
    except Exception as error:  # pylint: disable=broad-except
      self.warn(f"jaxcomponents' native library not built ({error}); CPU convolutions will use XLA's operations")
      return
    build.write_manifest(os.path.join(os.path.dirname(output), MANIFEST), output)

  def get_ext_filename(self, fullname):
    filename = super().get_ext_filename(fullname)
    if fullname.split(".")[-1] == NATIVE.split(".")[-1]:
      return os.path.join(os.path.dirname(filename), LIBRARY)
    return filename

  def _manifests(self):
    """(built, in the source tree) pairs of the manifest paths, as setuptools pairs the libraries."""
    build_py = self.get_finalized_command("build_py")
    for ext in self.extensions:
      inplace, regular = self._get_inplace_equivalent(build_py, ext)
      yield os.path.join(os.path.dirname(regular), MANIFEST), os.path.join(os.path.dirname(inplace), MANIFEST)

  def copy_extensions_to_source(self):
    super().copy_extensions_to_source()
    for regular, inplace in self._manifests():
      if os.path.exists(regular):
        self.copy_file(regular, inplace, level=self.verbose)

  def get_outputs(self):
    return super().get_outputs() + [regular for regular, _ in self._manifests()]

  def _get_output_mapping(self):
    yield from super()._get_output_mapping()
    if self.inplace:
      yield from self._manifests()


def _native_extensions():
  if not (sys.platform.startswith("linux") and platform.machine() == "x86_64"):
    return []
  source = os.path.join("jaxcomponents", "ops", "native", "onednn_conv.cc")
  return [setuptools.Extension(NATIVE, sources=[source], py_limited_api=True, optional=True)]


setuptools.setup(ext_modules=_native_extensions(), cmdclass={"build_ext": BuildNative},
                 options={"bdist_wheel": {"py_limited_api": "cp311"}})
