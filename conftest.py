"""Test settings for tests/ and the docstring examples: JAX on the CPU, Keras 3 on the JAX backend."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jaxcomponents  # noqa: E402,F401  (first, so its CPU fast paths apply before JAX starts)
