"""Shared helpers for parity tests against Keras."""

from __future__ import annotations

import numpy as np


def assert_close(actual, expected, tol: float = 1e-4) -> None:
  """Asserts max |actual - expected| <= tol x the output scale (max |expected|)."""
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape, f"shape {actual.shape} != Keras {expected.shape}"
  scale = max(float(np.max(np.abs(expected))), 1e-6) if expected.size else 1.0
  err = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
  assert err <= tol * scale, f"max error {err:.3g} exceeds {tol} x output scale {scale:.3g}"


def randomize_keras(model, seed: int = 0, scale: float = 0.5) -> None:
  """Gives every Keras weight a random value; variances (moving_variance) stay positive."""
  rng = np.random.default_rng(seed)
  for w in model.weights:
    shape = tuple(w.shape)
    if w.path.endswith("moving_variance"):
      value = rng.uniform(0.5, 1.5, shape)
    else:
      value = rng.normal(0.0, scale, shape)
    w.assign(value.astype(np.float32))


def random_input(shape, seed: int = 1) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)
