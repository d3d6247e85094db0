"""Test settings for tests/ and the docstring examples: JAX on the CPU, Keras 3 on the JAX backend."""

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The suite compiles hundreds of small programs once each: XLA:CPU's LLVM optimisations cost more time than
# they save there (about a quarter of the suite). Numerics are IEEE either way (no fast math).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()


@pytest.fixture
def highest_precision():
  """Full float32 matrix products and convolutions on both sides of a Keras parity test.

  JAX's default precision computes float32 products in TensorFloat-32 on recent
  GPUs (bfloat16 passes on TPUs), so parity at 1e-4 holds there only at
  "highest"; `jax.default_matmul_precision` sets it for jaxcomponents' layers
  (precision=None) and for Keras on the JAX backend alike. On the CPU it changes
  nothing. Parity modules take it with `pytestmark = pytest.mark.usefixtures("highest_precision")`.
  """
  import jax

  with jax.default_matmul_precision("highest"):
    yield
