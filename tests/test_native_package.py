"""The native library arrives with `pip install`: a wheel built by the build backend, installed into a fresh
virtualenv with a fresh home folder and no C++ compiler on the PATH, takes the native path with no command run.

The wheel is built once (`pip wheel`, the build requirements from pyproject.toml), then installed with
`--no-deps` into a virtualenv that sees this environment's other packages through a path file: the oldest and the
newest pinned jaxlib (the build's XLA FFI API is served by both).
"""

import json
import os
import subprocess
import sys
import sysconfig

import pytest

from jaxcomponents.ops import native

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OLDEST_JAX = "0.10.0"  # the oldest release pyproject.toml admits

pytestmark = pytest.mark.skipif(not native.shipped_here(), reason="the wheel carries the library on Linux x86-64")

CHECK = """
import json, shutil, sys
import jax, jax.numpy as jnp
import jaxcomponents
from jaxcomponents.layers import Convolution
from jaxcomponents.ops import native
layer = Convolution(features=8, kernel_size=(3, 3))
x = jnp.ones((4, 16, 16, 3))
variables = layer.init(jax.random.key(0), x)
text = jax.jit(layer.apply).lower(variables, x).as_text()
status = native.load()
print(json.dumps({"package": jaxcomponents.__file__, "library": status.library, "reason": status.reason,
                  "available": status.available, "compiler": shutil.which("c++") or shutil.which("g++"),
                  "native_call": "jc_onednn_conv_forward" in text, "jaxlib": jax.lib.__version__,
                  "sum": float(layer.apply(variables, x).sum())}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  out = tmp_path_factory.mktemp("wheel")
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), ROOT], check=True,
                 timeout=900, capture_output=True)
  (found,) = out.glob("jaxcomponents-*.whl")
  assert "-abi3-linux_x86_64" in found.name, found.name
  return found


def _fresh_venv(path, wheel, *pins):
  subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
  python = str(path / "bin" / "python")
  site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True,
                        capture_output=True, text=True, timeout=120).stdout.strip()
  # The dependencies this environment has, after the venv's own packages; not the editable source tree.
  with open(os.path.join(site, "zz_dependencies.pth"), "w", encoding="utf-8") as f:
    f.write(sysconfig.get_paths()["purelib"] + "\n")
  pip = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check"]
  if pins:
    subprocess.run([*pip, *pins], check=True, timeout=900, capture_output=True)
  subprocess.run([*pip, str(wheel)], check=True, timeout=300, capture_output=True)
  return python


@pytest.mark.parametrize("jaxlib", ["newest", "oldest"])
def test_the_installed_wheel_takes_the_native_path_without_a_compiler_or_a_command(wheel, tmp_path, jaxlib):
  pins = (f"jax=={OLDEST_JAX}", f"jaxlib=={OLDEST_JAX}") if jaxlib == "oldest" else ()
  python = _fresh_venv(tmp_path / "venv", wheel, *pins)
  home = tmp_path / "home"
  home.mkdir()
  env = {"PATH": os.path.dirname(python), "HOME": str(home), "JAX_PLATFORMS": "cpu", "LANG": "C.UTF-8"}
  done = subprocess.run([python, "-c", CHECK], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  found = json.loads(done.stdout.splitlines()[-1])
  assert found["compiler"] is None
  assert found["package"].startswith(str(tmp_path / "venv")), found
  assert found["available"] and found["library"].startswith(str(tmp_path / "venv")), found
  assert "packaged build" in found["reason"] and found["native_call"], found
  if jaxlib == "oldest":
    assert found["jaxlib"] == OLDEST_JAX
  assert not (home / ".cache").exists() or not list((home / ".cache").rglob("*.so")), "nothing was built"
  plain = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, JAXCOMPONENTS_ONEDNN="0", JAX_PLATFORMS="cpu"), check=True)
  assert json.loads(plain.stdout.splitlines()[-1])["sum"] == pytest.approx(found["sum"], rel=1e-5)
