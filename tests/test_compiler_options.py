"""The library's own jitted functions compile with per-computation XLA options (`jaxcomponents.ops.compiler`):
the same programs as the process-wide XLA flag `tune()` sets, and nothing outside them changes."""

import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcomponents.ops import compiler
from jaxcomponents.training import TrainState, make_train_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(not compiler.verified_release(), reason="the option was verified on jaxlib 0.10")


def _conv_and_dot(x, w, m):
  y = jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return jnp.tanh(y.reshape(8, -1)[:, :64] @ m).sum()


ARGS = (jnp.ones((8, 28, 28, 16)), jnp.ones((3, 3, 16, 32)), jnp.ones((64, 16)))


def _ynn_fusions(text):
  """(convolutions, matrix products) among the YNNPACK fusions of a compiled program's text."""
  lines = [line for line in text.splitlines() if "__ynn_fusion" in line]
  return sum("conv_general_dilated" in line for line in lines), sum("dot_general" in line for line in lines)


def test_convolutions_leave_ynnpack_and_matrix_products_stay():
  gradient = jax.grad(_conv_and_dot, argnums=(1, 2))
  default = _ynn_fusions(jax.jit(gradient).lower(*ARGS).compile().as_text())
  ours = _ynn_fusions(compiler.jit(gradient).lower(*ARGS).compile().as_text())
  assert default[0] >= 1 and ours == (0, default[1]), (default, ours)
  np.testing.assert_allclose(compiler.jit(gradient)(*ARGS)[0], jax.jit(gradient)(*ARGS)[0], rtol=1e-5)


_PROGRAM = """
import re, sys
import jax, jax.numpy as jnp
from jaxcomponents.ops import compiler
from tests.test_compiler_options import ARGS, _conv_and_dot
options = {compiler.YNN_OPTION: compiler.YNN_FUSIONS} if sys.argv[1] == "option" else None
text = jax.jit(jax.grad(_conv_and_dot, argnums=(1, 2)), compiler_options=options).lower(*ARGS).compile().as_text()
print(re.sub(r"[.]\\d+", "", text))
"""


def test_the_option_compiles_what_the_process_wide_flag_compiles():
  def compiled(how, xla_flags):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags)
    return subprocess.run([sys.executable, "-c", _PROGRAM, how], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True, timeout=300).stdout

  flag = f"--{compiler.YNN_OPTION}=-individual_convolution"
  assert compiled("option", "") == compiled("flag", flag)
  assert compiled("option", "") != compiled("flag", "")


def test_the_users_xla_flag_and_the_fast_path_switch_are_honoured(monkeypatch):
  assert compiler.options() == {compiler.YNN_OPTION: compiler.YNN_FUSIONS}
  monkeypatch.setenv("XLA_FLAGS", f"--{compiler.YNN_OPTION}=+individual_convolution")
  assert compiler.options() is None
  monkeypatch.delenv("XLA_FLAGS")
  monkeypatch.setenv("JAXCOMPONENTS_FAST_CPU", "0")
  assert compiler.options() is None


class _Net(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    x = nn.relu(nn.Conv(32, (3, 3), padding="VALID")(x))
    return nn.softmax(nn.Dense(5)(x.reshape(x.shape[0], -1)))


def test_the_train_step_compiles_with_the_options():
  x, y = jnp.ones((8, 28, 28, 16)), jnp.zeros((8,), jnp.int32)
  state = TrainState.create(_Net(), optax.sgd(0.1), x)
  step = make_train_step("sparse_categorical_crossentropy")
  state, _ = step(state, {"x": x, "y": y})
  batch = {"x": x, "y": y}
  unjitted = make_train_step("sparse_categorical_crossentropy", jit=False).fn
  assert _ynn_fusions(jax.jit(unjitted).lower(state, batch).compile().as_text())[0] >= 1
  assert _ynn_fusions(step.fn.lower(state, batch).compile().as_text())[0] == 0

