"""The CPU formulations of `jaxcomponents.ops` compute what their plain XLA references compute.

Each comparison traces the same computation twice in this process: once as
the library lowers it for the CPU, once with `JAXCOMPONENTS_FAST_CPU=0` (the
plain XLA operations), and checks the forward values and every gradient.
"""

import os
import platform
import re
import shutil
import subprocess
import sys
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomponents.layers import Convolution, Dropout
from jaxcomponents.layers.pooling import max_pool
from jaxcomponents.ops import barrier, conv, native, onednn, platform as ops_platform, random
from tests import cpu_cases

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _compiled(fn, *args):
  """`fn` traced afresh and compiled: the formulations are chosen when tracing, and JAX reuses a function's traces."""
  return jax.jit(lambda *a: fn(*a)).lower(*args).compile()


def _assert_same(fast, expected, name="", float32_reference=False):
  """Within float32 rounding, or a few bfloat16 roundings for a bfloat16 case.

  `float32_reference`: a bfloat16 case is compared with the same case computed
  in float32 instead of the plain path: XLA:CPU sums a bfloat16 bias gradient
  in bfloat16, so its own result can be 10% off where oneDNN's (summed in
  float32) is exact to bfloat16's precision.
  """
  tolerance = 3e-2 if name.endswith("bf16") else 2e-5
  if name.endswith("bf16") and float32_reference:
    expected = cpu_cases.compute(name, float32_reference=True)
  for key, value in expected.items():
    if key in fast:
      np.testing.assert_allclose(fast[key], value, rtol=tolerance, atol=tolerance * np.abs(value).max(), err_msg=key)


def _onednn_everywhere(monkeypatch):
  monkeypatch.setattr(conv, "ONEDNN_MIN_POSITIONS", 0)
  monkeypatch.setattr(conv, "ONEDNN_MIN_POSITIONS_POINTWISE", 0)


def _plain(name, monkeypatch):
  with monkeypatch.context() as patch:
    patch.setenv(ops_platform.ENV, "0")
    return cpu_cases.compute(name)


@pytest.mark.parametrize("name", sorted(cpu_cases.CASES))
def test_convolution_cpu_formulations_equal_plain_xla(name, monkeypatch):
  """The formulations in XLA operations (oneDNN out of the way: it has its own test below)."""
  monkeypatch.setattr(conv, "ONEDNN_MIN_POSITIONS", 2**62)
  monkeypatch.setattr(conv, "ONEDNN_MIN_POSITIONS_POINTWISE", 2**62)
  fast, plain = cpu_cases.compute(name), _plain(name, monkeypatch)
  assert sorted(fast) == sorted(plain) and {"y", "dx"} < set(fast)
  fast_convolutions, plain_convolutions = fast.pop("convolutions"), plain.pop("convolutions")
  if "small" in name or name.startswith("depthwise"):
    assert fast_convolutions == 0 < plain_convolutions, "the CPU path should compute these without convolutions"
  assert fast.pop("onednn") == plain.pop("onednn") == 0
  _assert_same(fast, plain, name)


@pytest.mark.parametrize("pool_size, strides, padding, spatial", [
    (2, None, "VALID", (7, 8)),  # windows that tile the input; the odd row is left out
    (2, None, "SAME", (7, 8)),  # the same with a -inf row added
    ((2, 3), None, "VALID", (6, 9)),
    (3, None, "SAME", (10,)),
    (2, None, "VALID", (5, 4, 4)),
    (3, 2, "SAME", (7, 7)),  # overlapping windows (ResNet50's stem)
    ((2, 3), (1, 2), "VALID", (6, 7)),
])
def test_max_pool_cpu_formulation_equals_xla_with_ties(pool_size, strides, padding, spatial, monkeypatch):
  """The CPU path's max pooling and its gradient equal XLA's `reduce_window` and its gradient.

  Inputs are small integers, so most windows hold their maximum more than once:
  the first one in row-major order takes the whole gradient, as in XLA and TensorFlow.
  """
  x = jax.random.randint(jax.random.key(0), (2, *spatial, 3), 0, 3).astype(jnp.float32)

  def forward_and_gradient(x):
    y, vjp = jax.vjp(lambda x: max_pool(x, pool_size, strides, padding), x)
    return y, vjp(jax.random.normal(jax.random.key(1), y.shape))[0]

  fast = _compiled(forward_and_gradient, x)
  monkeypatch.setenv(ops_platform.ENV, "0")
  plain = _compiled(forward_and_gradient, x)
  assert "reduce-window" in plain.as_text() and "reduce-window" not in fast.as_text()
  assert "jc_fusion_barrier" in fast.as_text(), "the pooled gradient should be computed once, into memory"
  for fast_value, plain_value in zip(fast(x), plain(x)):  # overlapping windows sum gradients in another order
    np.testing.assert_allclose(fast_value, plain_value, rtol=1e-6, atol=0)


def test_materialized_is_the_identity_under_jit_grad_and_vmap():
  x = jax.random.normal(jax.random.key(0), (4, 3))

  def f(x):
    return ops_platform.on_cpu(lambda x: barrier.materialized(jnp.sin(x)) ** 2, lambda x: jnp.sin(x) ** 2, x)

  def plain(x):
    return jnp.sin(x) ** 2

  assert "jc_fusion_barrier" in jax.jit(f).lower(x).compile().as_text()
  for transform in (jax.jit, jax.vmap, lambda g: jax.jit(jax.grad(lambda x: g(x).sum())),
                    lambda g: jax.jit(jax.hessian(lambda x: g(x[0]).sum()))):
    np.testing.assert_allclose(transform(f)(x), transform(plain)(x), rtol=1e-6)


@pytest.mark.parametrize("partitionable", [True, False])
@pytest.mark.parametrize("shape", [(4, 5, 3), (7,), (1, 1), (2, 33)])
def test_bernoulli_bits_are_jax_bits_without_the_loop(partitionable, shape):
  """Dropout masks are bit for bit `jax.random.bernoulli`'s, for typed and raw keys, odd and even sizes."""
  keys = [jax.random.fold_in(jax.random.key(3), 7), jax.random.PRNGKey(11)]
  with jax.threefry_partitionable(partitionable):
    for key in keys:
      for p in (0.75, 0.5, 0.1):
        ours = _compiled(lambda k: random.bernoulli(k, p, shape), key)
        theirs = _compiled(lambda k: jax.random.bernoulli(k, p, shape), key)
        np.testing.assert_array_equal(ours(key), theirs(key))
    assert " while(" not in ours.as_text() and " while(" in theirs.as_text()


def test_bernoulli_defers_to_jax_for_other_generators():
  key = jax.random.key(0, impl="rbg")
  np.testing.assert_array_equal(random.bernoulli(key, 0.5, (6,)), jax.random.bernoulli(key, 0.5, (6,)))


@pytest.mark.parametrize("broadcast_dims", [(), (1,), (-1,), (-3, 1)])
def test_dropout_layer_equals_flax_dropout(broadcast_dims):
  x = jax.random.normal(jax.random.key(0), (4, 6, 5))
  rngs = {"dropout": jax.random.key(1)}
  ours = Dropout(0.3, broadcast_dims=broadcast_dims).apply({}, x, train=True, rngs=rngs)
  flax_dropout = nn.Dropout(0.3, broadcast_dims=broadcast_dims, deterministic=False).apply({}, x, rngs=rngs)
  np.testing.assert_array_equal(ours, flax_dropout)
  np.testing.assert_array_equal(Dropout(0.3).apply({}, x, train=False), x)
  with pytest.raises(ValueError, match=r"broadcast_dims=\(3,\) is not allowed for an input of rank 3; "
                                       r"expected axes in \[-3, 2\]"):
    Dropout(0.3, broadcast_dims=(3,)).apply({}, x, train=True, rngs=rngs)
  with pytest.raises(ValueError, match=r"broadcast_dims=\(-4,\) is not allowed"):
    Dropout(0.3, broadcast_dims=(-4,)).apply({}, x)


def test_native_library_is_built_here():
  """The package carries the native library on Linux x86-64, so the oneDNN tests below compare something."""
  if sys.platform.startswith("linux") and platform.machine() == "x86_64":
    assert native.load().available, native.load().reason
    assert "packaged build" in native.load().reason
  else:
    assert native.load().reason.startswith("not shipped for this platform")


@pytest.mark.parametrize("name", cpu_cases.ONEDNN_CASES)
def test_onednn_convolution_equals_plain_xla(name, monkeypatch):
  plain = _plain(name, monkeypatch)
  _onednn_everywhere(monkeypatch)
  fast = cpu_cases.compute(name)
  fast.pop("convolutions"), plain.pop("convolutions")
  assert fast.pop("onednn") >= 1 and plain.pop("onednn") == 0
  assert sorted(fast) == sorted(plain)
  _assert_same(fast, plain, name, float32_reference=True)


@pytest.mark.parametrize("relu", [False, True])
def test_onednn_bias_and_fused_relu_equal_xla(relu):
  x = jax.random.normal(jax.random.key(0), (3, 9, 8, 5))
  kernel = jax.random.normal(jax.random.key(1), (3, 2, 5, 6))
  bias = jax.random.normal(jax.random.key(2), (6,))
  pads = ((1, 1), (0, 1))

  def xla(x, kernel, bias):
    y = jax.lax.conv_general_dilated(x, kernel, (2, 1), pads, rhs_dilation=(1, 2),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
    return jax.nn.relu(y) if relu else y

  def with_onednn(x, kernel, bias):
    return onednn.convolve(x, kernel, bias, onednn.Geometry((2, 1), pads, (1, 2)), relu)

  def gradients(f):
    return jax.grad(lambda *args: jnp.sum(jnp.sin(f(*args))), argnums=(0, 1, 2))

  assert native.load().available, native.load().reason
  pairs = [(jax.jit(with_onednn)(x, kernel, bias), xla(x, kernel, bias)),
           *zip(jax.jit(gradients(with_onednn))(x, kernel, bias), gradients(xla)(x, kernel, bias))]
  for fast, plain in pairs:
    np.testing.assert_allclose(fast, plain, rtol=2e-5, atol=2e-5 * float(jnp.abs(plain).max()))
  assert "jc_onednn_conv_forward" in jax.jit(with_onednn).lower(x, kernel, bias).compile().as_text()


@pytest.mark.parametrize("kind, padding, use_bias, strides", [
    ("conv", "VALID", True, 1), ("conv", "SAME", False, 1), ("conv", "CAUSAL", True, 1),
    ("transpose", "SAME", True, 2), ("transpose", "VALID", False, 1)])
def test_convolution_with_relu_fuses_it_into_onednn(kind, padding, use_bias, strides, monkeypatch):
  """`Convolution(..., activation="relu")`: bias and ReLU inside oneDNN's call, the plain path's numbers."""
  dims = 1 if padding == "CAUSAL" else 2
  layer = Convolution(16, 3, strides=strides, padding=padding, kind=kind, dims=dims, activation="relu",
                      use_bias=use_bias)
  x = jax.random.normal(jax.random.key(0), (3, *(9,) * dims, 4))
  variables = layer.init(jax.random.key(1), x)
  variables = jax.tree.map(lambda v: v + 0.1, variables)  # a bias that is not zero

  def loss(variables, x):
    return jnp.sum(jnp.sin(layer.apply(variables, x)))

  step = jax.value_and_grad(loss, argnums=(0, 1))
  _onednn_everywhere(monkeypatch)
  fused = _compiled(step, variables, x)
  target = "jc_onednn_conv_transpose" if kind == "transpose" else "jc_onednn_conv_forward"
  assert re.search(rf'{target}".*relu = true', fused.as_text())
  monkeypatch.setenv(ops_platform.ENV, "0")
  plain = _compiled(step, variables, x)
  assert "jc_onednn" not in plain.as_text()
  for fast, expected in zip(jax.tree.leaves(fused(variables, x)), jax.tree.leaves(plain(variables, x))):
    np.testing.assert_allclose(fast, expected, rtol=2e-5, atol=2e-5 * float(jnp.abs(expected).max()))


def test_portable_and_symbolic_shapes_make_no_native_calls(monkeypatch):
  """Inside `portable()` and with a symbolic batch, the computation has XLA operations only."""
  _onednn_everywhere(monkeypatch)
  layer = Convolution(8, 3, activation="relu", pool="max")
  x = jnp.ones((2, 8, 8, 3))
  variables = layer.init(jax.random.key(0), x)
  apply = lambda v, x: layer.apply(v, x)  # noqa: E731
  assert "jc_" in _compiled(apply, variables, x).as_text()
  with ops_platform.portable():
    assert "jc_" not in jax.jit(apply).lower(variables, x).as_text()
  batch = jax.export.symbolic_shape("b, 8, 8, 3")
  exported = jax.export.export(jax.jit(apply))(variables, jax.ShapeDtypeStruct(batch, jnp.float32))
  assert "jc_" not in exported.mlir_module()
  np.testing.assert_allclose(exported.call(variables, jnp.ones((3, 8, 8, 3))), layer.apply(variables, jnp.ones(
      (3, 8, 8, 3))), rtol=1e-6)


_NATIVE_SCRIPT = """
import jax.numpy as jnp
from jaxcomponents.ops import conv, native
native.PACKAGED = "/nonexistent/_jc_native"  # only the cache's builds
conv.ONEDNN_MIN_POSITIONS = conv.ONEDNN_MIN_POSITIONS_POINTWISE = 0
y = conv.conv_general_dilated(jnp.ones((2, 6, 6, 2)), jnp.ones((3, 3, 2, 4)), (1, 1), "VALID",
                              dimension_numbers=conv.channels_last(2))
print(native.load().available, float(y[0, 0, 0, 0]), y.shape)
print(native.load().reason)
"""


def _run_native_script(home):
  env = dict(os.environ, JAXCOMPONENTS_HOME=str(home), JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  done = subprocess.run([sys.executable, "-c", _NATIVE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                        check=True, timeout=300)
  return done.stdout.splitlines()


def test_only_a_verified_build_is_loaded(tmp_path):
  """No build, a build whose bytes changed, a manifest for other sources: XLA computes, and the status says why."""
  assert native.load().available, native.load().reason
  built = native.load().library
  home = tmp_path / "home"
  (home / "native").mkdir(parents=True)
  out = _run_native_script(home)
  assert out[0] == "False 18.0 (2, 4, 4, 4)" and "no build for this source" in out[1], out
  assert "run `jaxcomponents build-native`" in out[1]

  library = home / "native" / "jc_native_copy.so"
  manifest = library.with_suffix(".json")
  shutil.copy(built, library)
  shutil.copy(native.PACKAGED + ".json", manifest)
  assert _run_native_script(home)[0] == "True 18.0 (2, 4, 4, 4)"

  with open(library, "r+b") as f:  # one byte changed
    f.seek(200)
    byte = f.read(1)
    f.seek(200)
    f.write(bytes([byte[0] ^ 1]))
  out = _run_native_script(home)
  assert out[0] == "False 18.0 (2, 4, 4, 4)" and "SHA-256 does not match" in out[1], out

  shutil.copy(built, library)
  manifest.write_text(manifest.read_text().replace('"onednn_version": "', '"onednn_version": "9.'))
  out = _run_native_script(home)
  assert out[0] == "False 18.0 (2, 4, 4, 4)" and "manifest does not match (onednn_version)" in out[1], out

  shutil.copy(native.PACKAGED + ".json", manifest)  # headers of a newer FFI API than the installed jaxlib serves
  manifest.write_text(manifest.read_text().replace('"ffi_api": "0.', '"ffi_api": "0.99'))
  out = _run_native_script(home)
  assert out[0] == "False 18.0 (2, 4, 4, 4)" and "built for XLA FFI API 0.99" in out[1], out


_THREADS_SCRIPT = """
import threading
import jax
import jax.numpy as jnp
import numpy as np
jax.config.update("jax_cpu_enable_async_dispatch", False)  # each call runs on the thread that makes it
from jaxcomponents.ops import native, onednn
assert native.load().available, native.load().reason
rng = np.random.default_rng(0)
args = [jnp.asarray(rng.normal(size=shape), jnp.float32) for shape in ((16, 8, 8, 4), (3, 3, 4, 8), (8,))]
geometry = onednn.Geometry((1, 1), ((9, 9), (9, 9)), (9, 9))  # oneDNN's im2col path, which needs a scratchpad
def plain(x, kernel, bias):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), geometry.pads, rhs_dilation=geometry.dilation,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
def gradients(convolve):
  return jax.jit(jax.grad(lambda *a: (convolve(*a) ** 2).sum(), (0, 1, 2)))
native_gradients, expected = gradients(lambda *a: onednn.convolve(*a, geometry)), gradients(plain)(*args)
results = []
def run():
  for _ in range(10):
    results.append(native_gradients(*args))
first = threading.Thread(target=run)
first.start()
first.join()  # the primitives were made on a thread that has ended; now four threads run them at once
others = [threading.Thread(target=run) for _ in range(3)]
for thread in others:
  thread.start()
run()
for thread in others:
  thread.join()
print(len(results), max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
                        for result in results for a, b in zip(result, expected)))
"""


def test_a_native_convolution_runs_on_threads_other_than_the_one_that_prepared_it_and_on_several_at_once():
  """XLA runs a custom call on any of its threads: each run takes its scratchpad from the thread running it."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  done = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=300)
  assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr[-2000:]}"
  runs, worst = done.stdout.split()
  assert int(runs) == 50 and float(worst) < 1e-5, done.stdout


def test_a_missing_native_library_is_said_once_when_a_convolution_is_traced(monkeypatch):
  monkeypatch.setattr(native, "load", lambda: native.Native(False, "not shipped for this platform"))
  monkeypatch.setattr(conv, "ONEDNN_MIN_POSITIONS", 0)
  native._announce.cache_clear()  # pylint: disable=protected-access
  x, kernel = jnp.ones((2, 6, 6, 2)), jnp.ones((3, 3, 2, 4))
  with warnings.catch_warnings(record=True) as said:
    warnings.simplefilter("always")
    for _ in range(3):
      jax.jit(lambda x, k: conv.conv_general_dilated(x, k, (1, 1), "VALID",
                                                     dimension_numbers=conv.channels_last(2)))(x, kernel)
  found = [w for w in said if issubclass(w.category, native.NativeLibraryWarning)]
  assert len(found) == 1 and "not shipped for this platform" in str(found[0].message), [str(w.message) for w in said]


def test_build_failure_names_the_compiler_error(tmp_path, monkeypatch):
  monkeypatch.setenv("JAXCOMPONENTS_HOME", str(tmp_path))
  with pytest.raises(RuntimeError, match="failed"):
    native.build(compiler="false")
  assert not list((tmp_path / "native").glob("*.so")), "a failed build leaves no library behind"


def test_tune_keeps_pages_between_steps():
  """`jaxcomponents.cpu.tune()`: a repeated training step no longer faults its buffers in afresh."""
  script = """
import sys, resource
import jaxcomponents.cpu
report = jaxcomponents.cpu.tune() if sys.argv[1] == "tuned" else {"malloc": "none", "dispatch": "none"}
import jax, jax.numpy as jnp
import flax.linen as nn
from jaxcomponents.layers import Convolution, Dense

class Net(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = Convolution(32, 3, padding="VALID", activation="relu")(x)
    x = Convolution(32, 3, padding="VALID", activation="relu", pool="max")(x)
    return Dense(5)(x.reshape((x.shape[0], -1)))

x = jnp.ones((256, 28, 28, 1))
variables = Net().init(jax.random.key(0), x)
step = jax.jit(jax.grad(lambda v, x: jnp.sum(Net().apply(v, x) ** 2)))
for _ in range(3):
  jax.block_until_ready(step(variables, x))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
  jax.block_until_ready(step(variables, x))
print(report["malloc"].split()[0], report["dispatch"].split()[0],
      (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 10)
"""
  faults = {}
  for mode in ("default", "tuned"):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    env.pop("GLIBC_TUNABLES", None)
    env.pop("JAX_CPU_ENABLE_ASYNC_DISPATCH", None)
    malloc, dispatch, count = subprocess.run([sys.executable, "-c", script, mode], cwd=ROOT, env=env,
                                             capture_output=True, text=True, check=True, timeout=300).stdout.split()
    if mode == "tuned":
      assert malloc == dispatch == "applied", (malloc, dispatch)
    faults[mode] = int(count)
  # The step's temporary buffers take tens of MiB: a worker thread's arena maps and unmaps them every step unless
  # the main thread allocates them and glibc keeps them. Runs here: 0 to 1,543 faults per step against 15,430-15,454.
  assert faults["default"] > 5_000 and faults["tuned"] * 4 < faults["default"], faults


def test_several_cpu_devices_in_one_process_make_no_native_calls():
  """oneDNN's OpenMP threads would starve each other with several CPU devices running at once."""
  script = ("import jax, jax.numpy as jnp\n"
            "from jaxcomponents.ops import conv\n"
            "conv.ONEDNN_MIN_POSITIONS = conv.ONEDNN_MIN_POSITIONS_POINTWISE = 0\n"
            "f = lambda x, k: conv.conv_general_dilated(x, k, (1, 1), 'SAME', dimension_numbers=conv.channels_last(2))\n"
            "text = jax.jit(f).lower(jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4))).compile().as_text()\n"
            "print(jax.device_count(), 'jc_onednn' in text)\n")
  outputs = {}
  for devices in (1, 2):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    outputs[devices] = done.stdout.split()
  assert outputs[2] == ["2", "False"]
  if native.load().available:
    assert outputs[1] == ["1", "True"]


def test_a_dilated_window_reaching_across_half_the_input_stays_with_xla():
  """oneDNN's kernels corrupt memory on some convolutions whose dilated window reaches across half the input or
  more (ResUNet-a's rate 31 on a 64x64 map, ASPP's rate 9 on an 8x8 one): those are XLA's, and their training steps
  run (in a child process, which a crash cannot take down, with glibc's heap checks). Undilated windows wider than
  their input (VGG16's last blocks on small images) stay with oneDNN."""
  kernel = jnp.zeros((3, 3, 4, 8))
  assert conv._onednn_geometry(jnp.zeros((16, 8, 8, 4)), kernel, (1, 1), "SAME", (9, 9)) is None
  assert conv._onednn_geometry(jnp.zeros((4, 64, 64, 4)), kernel, (1, 1), "SAME", (31, 31)) is None
  assert conv._onednn_geometry(jnp.zeros((4, 64, 64, 4)), kernel, (1, 1), "SAME", (15, 15)) is not None
  assert conv._onednn_geometry(jnp.zeros((512, 2, 2, 4)), kernel, (1, 1), "SAME", (1, 1)) is not None
  script = (
      "import jax, numpy as np\n"
      "from jaxcomponents.layers.conv_core import Conv, DepthwiseConv\n"
      "for shape, m in (((16, 8, 8, 4), DepthwiseConv((3, 3), (1, 1), 'SAME', (9, 9))),\n"
      "                 ((16, 8, 8, 4), Conv(8, (3, 3), kernel_dilation=(9, 9))),\n"
      "                 ((4, 64, 64, 16), Conv(16, (3, 3), kernel_dilation=(31, 31)))):\n"
      "  x = np.random.default_rng(0).normal(size=shape).astype(np.float32)\n"
      "  v = m.init(jax.random.key(0), x)\n"
      "  for _ in range(3):\n"
      "    jax.block_until_ready(jax.jit(jax.grad(lambda v, x: (m.apply(v, x) ** 2).sum(), (0, 1)))(v, x))\n"
      "print('ok')\n")
  done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                        env={**os.environ, "MALLOC_CHECK_": "3"})
  assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
