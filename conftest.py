"""Test settings for tests/ and the docstring examples: JAX on the CPU, Keras 3 on the JAX backend."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The suite compiles hundreds of small programs once each: XLA:CPU's LLVM optimisations cost more time than
# they save there (about a quarter of the suite). Numerics are IEEE either way (no fast math).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()
