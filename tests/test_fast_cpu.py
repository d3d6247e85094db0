"""The CPU fast paths compute what the plain XLA path computes: forward and both gradients."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomponents import fast_cpu
from jaxcomponents.layers.pooling import max_pool
from tests import fast_cpu_cases

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def plain_xla(tmp_path_factory):
  """Every convolution case computed in a process with the fast paths off."""
  out = tmp_path_factory.mktemp("plain") / "plain.npz"
  env = dict(os.environ, JAXCOMPONENTS_FAST_CPU="0", JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  if fast_cpu.USER_XLA_FLAGS is None:
    env.pop("XLA_FLAGS", None)
  else:
    env["XLA_FLAGS"] = fast_cpu.USER_XLA_FLAGS
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
  for key, value in expected.items():
    np.testing.assert_allclose(fast[key], value, rtol=2e-5, atol=2e-5 * np.abs(value).max(), err_msg=key)


@pytest.mark.parametrize("shape, pool_size, strides, padding", [
    ((2, 24, 24, 4), 2, None, "VALID"),
    ((2, 17, 17, 4), 3, 2, "VALID"),
    ((2, 16, 15, 4), 3, 2, "SAME"),
    ((2, 9, 3), 2, 1, "SAME"),
    ((2, 7, 3), 3, 2, "valid"),
    ((1, 6, 5, 7, 2), (2, 3, 2), (1, 2, 2), "SAME"),
])
def test_max_pool_fast_gradient_equals_xla(shape, pool_size, strides, padding, monkeypatch):
  """Bit-equal outputs and gradients, ties included: the first maximum of a window takes the gradient."""
  x = jnp.round(jax.random.normal(jax.random.key(0), shape) * 2) / 2
  g = jax.random.normal(jax.random.key(1), max_pool(x, pool_size, strides, padding).shape)

  def forward_and_gradient(x):
    y, vjp = jax.vjp(lambda x: max_pool(x, pool_size, strides, padding), x)
    return y, vjp(g)[0]

  fast = jax.jit(forward_and_gradient)(x)
  assert "select-and-scatter" not in jax.jit(forward_and_gradient).lower(x).compile().as_text()
  monkeypatch.setenv(fast_cpu.ENV, "0")
  plain = jax.jit(forward_and_gradient)(x)
  np.testing.assert_array_equal(fast[0], plain[0])
  np.testing.assert_array_equal(fast[1], plain[1])
  assert float(jnp.abs(fast[1]).sum()) > 0


def test_switch_values(monkeypatch):
  for value, on in (("0", False), ("off", False), ("No", False), ("1", True), ("", True)):
    monkeypatch.setenv(fast_cpu.ENV, value)
    assert fast_cpu.enabled() is on
