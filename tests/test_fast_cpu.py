"""The CPU fast paths compute what the plain XLA path computes: forward and both gradients."""

import json
import os
import platform
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomponents import fast_cpu, native
from jaxcomponents.layers import Convolution, conv_core, onednn_conv
from jaxcomponents.layers.pooling import max_pool
from tests import fast_cpu_cases

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def plain_xla(tmp_path_factory):
  """Every convolution case computed in a process with the fast paths off."""
  out = tmp_path_factory.mktemp("plain") / "plain.npz"
  env = dict(fast_cpu.user_environment(), JAXCOMPONENTS_FAST_CPU="0", JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  done = subprocess.run([sys.executable, "-m", "tests.fast_cpu_cases", str(out)], cwd=ROOT, env=env,
                        capture_output=True, text=True, check=True)
  return json.loads(done.stdout.strip().splitlines()[-1]), dict(np.load(out))


def test_the_two_processes_take_different_paths(plain_xla):
  info, _ = plain_xla
  assert info["status"]["enabled"] is False and info["status"]["xla_flags"].startswith("off")
  assert info["ynnpack"] is True, "the plain path should hand convolutions to YNNPACK on this jaxlib"
  assert fast_cpu.xla_flags_applied(), fast_cpu.XLA_STATUS
  assert not fast_cpu_cases.convolution_uses_ynnpack()


@pytest.mark.parametrize("name", sorted(fast_cpu_cases.CASES))
def test_convolution_fast_path_equals_plain_xla(name, plain_xla):
  _, plain = plain_xla
  fast = fast_cpu_cases.compute(name)
  expected = {key.split("|", 1)[1]: value for key, value in plain.items() if key.startswith(name + "|")}
  assert sorted(fast) == sorted(expected) and {"y", "dx"} < set(fast)
  assert not fast.pop("ynnpack")
  plain_uses_ynnpack = expected.pop("ynnpack")
  if name.startswith(("conv_2d_SAME", "conv_2d_VALID", "transpose_2d")):
    assert plain_uses_ynnpack, "the plain path should use YNNPACK here, else this compares nothing new"
  fast_convolutions, plain_convolutions = fast.pop("convolutions"), expected.pop("convolutions")
  if "small" in name or name.startswith("depthwise"):
    assert fast_convolutions == 0 < plain_convolutions, "the fast path should compute these without convolutions"
  assert fast.pop("onednn") == expected.pop("onednn") == 0, "these cases are below oneDNN's size threshold"
  _assert_same(fast, expected)


def _compiled(fn, *args):
  """`fn` traced afresh and compiled: the fast paths are chosen when tracing, and JAX reuses a function's traces."""
  return jax.jit(lambda *a: fn(*a)).lower(*args).compile()


def _assert_same(fast, expected):
  for key, value in expected.items():
    np.testing.assert_allclose(fast[key], value, rtol=2e-5, atol=2e-5 * np.abs(value).max(), err_msg=key)


@pytest.mark.parametrize("pool_size, strides, padding, spatial", [
    (2, None, "VALID", (7, 8)),  # windows that tile the input; the odd row is left out
    (2, None, "SAME", (7, 8)),  # the same with a -inf row added
    ((2, 3), None, "VALID", (6, 9)),
    (3, None, "SAME", (10,)),
    (2, None, "VALID", (5, 4, 4)),
    (3, 2, "SAME", (7, 7)),  # overlapping windows (ResNet50's stem)
    ((2, 3), (1, 2), "VALID", (6, 7)),
])
def test_max_pool_fast_path_equals_xla_with_ties(pool_size, strides, padding, spatial, monkeypatch):
  """The fast path's max pooling and its gradient equal XLA's `reduce_window` and its gradient.

  Inputs are small integers, so most windows hold their maximum more than once:
  the first one in row-major order takes the whole gradient, as in XLA and TensorFlow.
  """
  x = jax.random.randint(jax.random.key(0), (2, *spatial, 3), 0, 3).astype(jnp.float32)

  def forward_and_gradient(x):
    y, vjp = jax.vjp(lambda x: max_pool(x, pool_size, strides, padding), x)
    return y, vjp(jax.random.normal(jax.random.key(1), y.shape))[0]

  fast = _compiled(forward_and_gradient, x)
  monkeypatch.setenv(fast_cpu.ENV, "0")
  plain = _compiled(forward_and_gradient, x)
  assert "reduce-window" in plain.as_text() and "reduce-window" not in fast.as_text()
  assert "jc_fusion_barrier" in fast.as_text(), "the pooled gradient should be computed once, into memory"
  for fast_value, plain_value in zip(fast(x), plain(x)):  # overlapping windows sum gradients in another order
    np.testing.assert_allclose(fast_value, plain_value, rtol=1e-6, atol=0)


def test_materialized_is_the_identity_under_jit_grad_and_vmap():
  x = jax.random.normal(jax.random.key(0), (4, 3))

  def f(x):
    return fast_cpu.on_cpu(lambda x: fast_cpu.materialized(jnp.sin(x)) ** 2, lambda x: jnp.sin(x) ** 2, x)

  def plain(x):
    return jnp.sin(x) ** 2

  assert "jc_fusion_barrier" in jax.jit(f).lower(x).compile().as_text()
  for transform in (jax.jit, jax.vmap, lambda g: jax.jit(jax.grad(lambda x: g(x).sum())),
                    lambda g: jax.jit(jax.hessian(lambda x: g(x[0]).sum()))):
    np.testing.assert_allclose(transform(f)(x), transform(plain)(x), rtol=1e-6)


def test_threefry_bits_are_the_same_without_the_loop(monkeypatch):
  """Dropout masks and other random draws are bit for bit those of JAX's looped Threefry lowering."""
  def draws(key):
    key, dropout = jax.random.split(jax.random.fold_in(key, 7))
    return (jax.random.bernoulli(dropout, 0.75, (4, 5, 3)), jax.random.uniform(key, (3, 33)),
            jax.random.normal(key, (1000,)), jax.random.randint(key, (17,), 0, 10))

  key = jax.random.key(0)
  assert fast_cpu.THREEFRY_STATUS == "applied"
  unrolled = _compiled(draws, key)
  monkeypatch.setenv(fast_cpu.ENV, "0")
  looped = _compiled(draws, key)
  assert " while(" in looped.as_text() and " while(" not in unrolled.as_text()
  for fast, plain in zip(unrolled(key), looped(key)):
    np.testing.assert_array_equal(fast, plain)


def test_onednn_is_built_here():
  """The test extra installs oneDNN on Linux x86-64, so the oneDNN tests below compare something there."""
  if sys.platform.startswith("linux") and platform.machine() == "x86_64":
    assert native.load().available, native.load().reason
  else:
    assert native.load().reason.startswith("oneDNN is not installed")


@pytest.mark.parametrize("name", fast_cpu_cases.ONEDNN_CASES)
def test_onednn_convolution_equals_plain_xla(name, plain_xla, monkeypatch):
  _, plain = plain_xla
  monkeypatch.setattr(conv_core, "ONEDNN_MIN_POSITIONS", 0)
  fast = fast_cpu_cases.compute(name)
  expected = {key.split("|", 1)[1]: value for key, value in plain.items() if key.startswith(name + "|")}
  for key in ("ynnpack", "convolutions"):
    fast.pop(key), expected.pop(key)
  assert fast.pop("onednn") >= 1 and expected.pop("onednn") == 0
  assert sorted(fast) == sorted(expected)
  _assert_same(fast, expected)


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

  def onednn(x, kernel, bias):
    return onednn_conv.convolve(x, kernel, bias, (2, 1), pads, (1, 2), relu)

  def gradients(f):
    return jax.grad(lambda *args: jnp.sum(jnp.sin(f(*args))), argnums=(0, 1, 2))

  assert native.load().available, native.load().reason
  pairs = [(jax.jit(onednn)(x, kernel, bias), xla(x, kernel, bias)),
           *zip(jax.jit(gradients(onednn))(x, kernel, bias), gradients(xla)(x, kernel, bias))]
  for fast, plain in pairs:
    np.testing.assert_allclose(fast, plain, rtol=2e-5, atol=2e-5 * float(jnp.abs(plain).max()))
  assert "jc_onednn_conv_forward" in jax.jit(onednn).lower(x, kernel, bias).compile().as_text()


@pytest.mark.parametrize("padding, use_bias", [("VALID", True), ("SAME", False), ("CAUSAL", True)])
def test_convolution_with_relu_fuses_it_into_onednn(padding, use_bias, monkeypatch):
  """`Convolution(..., activation="relu")`: bias and ReLU inside oneDNN's call, the plain path's numbers."""
  dims = 1 if padding == "CAUSAL" else 2
  layer = Convolution(16, 3, padding=padding, dims=dims, activation="relu", use_bias=use_bias)
  x = jax.random.normal(jax.random.key(0), (3, *(9,) * dims, 4))
  variables = layer.init(jax.random.key(1), x)
  variables = jax.tree.map(lambda v: v + 0.1, variables)  # a bias that is not zero

  def loss(variables, x):
    return jnp.sum(jnp.sin(layer.apply(variables, x)))

  step = jax.value_and_grad(loss, argnums=(0, 1))
  monkeypatch.setattr(conv_core, "ONEDNN_MIN_POSITIONS", 0)
  fused = _compiled(step, variables, x)
  assert re.search(r'jc_onednn_conv_forward".*relu = true', fused.as_text())
  monkeypatch.setenv(fast_cpu.ENV, "0")
  plain = _compiled(step, variables, x)
  assert "jc_onednn" not in plain.as_text()
  for fast, expected in zip(jax.tree.leaves(fused(variables, x)), jax.tree.leaves(plain(variables, x))):
    np.testing.assert_allclose(fast, expected, rtol=2e-5, atol=2e-5 * float(jnp.abs(expected).max()))


def test_onednn_build_failure_falls_back_to_xla(tmp_path):
  """A compiler that fails: one warning, the reason in the status, and XLA's convolution computes."""
  script = """
import warnings, jax, jax.numpy as jnp
from jaxcomponents import native
from jaxcomponents.layers import conv_core
with warnings.catch_warnings(record=True) as caught:
  warnings.simplefilter("always")
  y = conv_core.conv_general_dilated(jnp.ones((128, 18, 18, 2)), jnp.ones((3, 3, 2, 4)), (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
print(native.load().reason.split(":")[0], float(y[0, 0, 0, 0]), y.shape, len(caught))
"""
  env = dict(os.environ, CXX="false", JAXCOMPONENTS_HOME=str(tmp_path), JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
  assert done.stdout.split() == ["build", "or", "load", "failed", "18.0", "(128,", "16,", "16,", "4)", "1"], done.stdout


def test_malloc_keeps_pages_between_steps():
  """A repeated training step no longer faults its buffers in afresh: glibc keeps them, the calling thread allocates."""
  script = """
import resource, jax, jax.numpy as jnp
import flax.linen as nn
from jaxcomponents import fast_cpu
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
print(fast_cpu.MALLOC_STATUS.split()[0], fast_cpu.DISPATCH_STATUS.split()[0],
      (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 10)
"""
  faults = {}
  for malloc_env in ({}, {"MALLOC_PERTURB_": "0"}):  # any MALLOC_* variable: jaxcomponents leaves malloc alone
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, **malloc_env)
    env.pop("GLIBC_TUNABLES", None)
    malloc, dispatch, count = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                                             text=True, check=True).stdout.split()
    assert malloc == dispatch, "synchronous dispatch comes with the malloc settings"
    faults[malloc] = int(count)
  # The step's temporary buffers take about 90 MiB: a worker thread's arena maps and unmaps them every step unless
  # the main thread allocates them and glibc keeps them. Runs here: 0 to 15 faults per step against 16,600-25,600.
  assert faults["not"] > 15_000 and faults["applied"] * 10 < faults["not"], faults
