"""Importing jaxcomponents and tracing its layers change nothing outside it.

A fresh process imports JAX and the other dependencies first (their own import
effects are theirs), takes a snapshot, imports every module of jaxcomponents,
traces, compiles and runs the layers, a backbone and a training step, and
takes the snapshot again: the environment, `jax.config`, JAX's lowering rules
and glibc's return of freed memory must be unchanged, no process may have
been started (no compiler), and no file written. The same script with
`jaxcomponents.cpu.tune()` called first shows that the checks see each of
tuning's changes.
"""

import json
import os
import subprocess
import sys

import pytest

from jaxcomponents import settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r'''
import ctypes, importlib, json, os, pkgutil, subprocess, sys

import flax.linen as nn
import h5py, numpy as np, optax, orbax.checkpoint
import jax, jax.numpy as jnp
from jax._src.interpreters import mlir  # the test's own look at JAX's lowering tables

started = []
_popen_init = subprocess.Popen.__init__
def _recording_init(self, *args, **kwargs):
  started.append(str(args[0] if args else kwargs.get("args")))
  _popen_init(self, *args, **kwargs)
subprocess.Popen.__init__ = _recording_init


def snapshot():
  rules = lambda table: {str(p): id(rule) for p, rule in table.items()}
  return {"environ": dict(os.environ), "config": {k: repr(v) for k, v in jax.config.values.items()},
          "lowerings": rules(mlir._lowerings),
          "platform_lowerings": {k: rules(v) for k, v in mlir._platform_specific_lowerings.items()}}


def rss():
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def freed_memory_returned():
  libc = ctypes.CDLL(None)
  libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
  size = 200 << 20
  start = rss()
  block = libc.malloc(size)
  ctypes.memset(block, 1, size)
  held = rss() - start
  libc.free(block)
  return held > size // 2 and rss() - start < size // 4


before = snapshot()
import jaxcomponents
import jaxcomponents.cpu
tuned = jaxcomponents.cpu.tune() if sys.argv[1] == "tune" else None
modules = sorted(m.name for m in pkgutil.walk_packages(jaxcomponents.__path__, "jaxcomponents."))
for name in modules:
  importlib.import_module(name)

from jaxcomponents import losses, optimizers
from jaxcomponents.layers import Convolution, Dense, Dropout, Recurrent
from jaxcomponents.models import MobileNetV2
from jaxcomponents.training import TrainState, make_train_step


class Net(nn.Module):
  @nn.compact
  def __call__(self, x, *, train=False):
    x = Convolution(8, 3, activation="relu", pool="max", dropout=0.2)(x, train=train)
    x = Convolution(8, 3, kind="separable", batch_norm=True, pool="avg", pool_padding="same")(x, train=train)
    x = Convolution(None, 3, kind="depthwise", strides=2)(x, train=train)
    x = Convolution(4, 3, kind="transpose", strides=2, activation="relu")(x, train=train)
    x = Dropout(0.3)(x, train=train)
    sequence = Recurrent(6, cell="lstm", dropout=0.1)(x.reshape((x.shape[0], -1, x.shape[-1])), train=train)
    return Dense(3, activation="softmax", dropout=0.1)(sequence, train=train)


x = jnp.ones((4, 16, 16, 1))
state = TrainState.create(Net(), optimizers.get("adam"), x)
step = make_train_step("sparse_categorical_crossentropy")
state, metrics = step(state, {"x": x, "y": jnp.zeros((4,), jnp.int32)})
backbone = MobileNetV2(alpha=0.35, include_top=False)
variables = jax.jit(backbone.init)(jax.random.key(0), jnp.ones((1, 32, 32, 3)))
features = jax.jit(backbone.apply)(variables, jnp.ones((1, 32, 32, 3)))
jax.block_until_ready((metrics, features))
for dims in (1, 3):
  layer = Convolution(32, 3, dims=dims, padding="VALID", activation="relu")
  xs = jnp.ones((64,) + (24,) * dims + (8,))
  jax.block_until_ready(jax.jit(layer.init)(jax.random.key(0), xs))

after = snapshot()
changed = {part: sorted(k for k in set(before[part]) | set(after[part]) if before[part].get(k) != after[part].get(k))
           for part in before}
print(json.dumps({"modules": len(modules), "changed": changed, "started": started, "tuned": tuned,
                  "freed_memory_returned": freed_memory_returned(),
                  "native": jaxcomponents.cpu.status()["native"]}))
'''


def _listing(folder):
  return sorted((os.path.relpath(os.path.join(path, name), folder), os.stat(os.path.join(path, name)).st_mtime_ns)
                for path, _, names in os.walk(folder) for name in names)


def _run(tmp_path, mode):
  folders = {name: tmp_path / mode / name for name in ("home", "tmp", "cwd", "cache")}
  for folder in folders.values():
    folder.mkdir(parents=True)
  home = settings.jaxcomponents_home()  # the real one, so the native library loads; it must stay as it is
  before = _listing(home) if os.path.isdir(home) else []
  env = dict(os.environ, HOME=str(folders["home"]), TMPDIR=str(folders["tmp"]), XDG_CACHE_HOME=str(folders["cache"]),
             JAXCOMPONENTS_HOME=home, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  for key in ("GLIBC_TUNABLES", "JAX_CPU_ENABLE_ASYNC_DISPATCH", *[k for k in os.environ if k.startswith("MALLOC_")]):
    env.pop(key, None)
  done = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=folders["cwd"], env=env, capture_output=True,
                        text=True, timeout=600, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  report = json.loads(done.stdout.strip().splitlines()[-1])
  written = {name: _listing(folder) for name, folder in folders.items()}
  return report, written, before == (_listing(home) if os.path.isdir(home) else [])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp("citizen")
  return {mode: _run(tmp_path, mode) for mode in ("plain", "tune")}


def test_import_and_tracing_change_nothing_outside_jaxcomponents(runs):
  report, written, home_unchanged = runs["plain"]
  assert report["modules"] > 40, "every module of the package should have been imported"
  assert report["changed"] == {"environ": [], "config": [], "lowerings": [], "platform_lowerings": []}
  assert report["started"] == [], "no process (no compiler) may be started while importing or tracing"
  assert report["freed_memory_returned"], "glibc should still return a freed 200 MB block to the system"
  assert written == {"home": [], "tmp": [], "cwd": [], "cache": []} and home_unchanged, written


def test_the_checks_see_what_tune_changes(runs):
  """The same script with `jaxcomponents.cpu.tune()` called first: each of its changes is seen."""
  report, written, _ = runs["tune"]
  assert report["tuned"] == {"xla_flags": "applied", "malloc": "applied", "dispatch": "applied"}
  assert report["changed"]["environ"] == ["XLA_FLAGS"]
  assert report["changed"]["config"] == ["jax_cpu_enable_async_dispatch"]
  assert not report["freed_memory_returned"]
  assert report["started"] == [] and written == {"home": [], "tmp": [], "cwd": [], "cache": []}
  assert report["native"].startswith("oneDNN")
