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


def assert_drawn_as(values, keras_initializer) -> None:
  """`values` look drawn by `keras_initializer` (a Keras config): the same spread, bound and shape of
  distribution (kurtosis: 1.8 uniform, about 2.5 truncated normal, 3 normal) as Keras's own draw of that shape."""
  import keras

  ours = np.asarray(values, np.float64).ravel()
  config = {"class_name": keras_initializer["class_name"], "config": {**keras_initializer["config"], "seed": 0}}
  theirs = np.asarray(keras.initializers.get(config)(values.shape), np.float64).ravel()

  def kurtosis(a):
    return np.mean((a - a.mean()) ** 4) / np.var(a) ** 2

  np.testing.assert_allclose(ours.mean(), theirs.mean(), atol=0.05 * theirs.std())
  np.testing.assert_allclose(ours.std(), theirs.std(), rtol=0.05)
  if kurtosis(theirs) < 2.8:  # a bounded draw (uniform, truncated normal): the same bound
    np.testing.assert_allclose(np.abs(ours - ours.mean()).max(), np.abs(theirs - theirs.mean()).max(), rtol=0.05)
  np.testing.assert_allclose(kurtosis(ours), kurtosis(theirs), atol=0.15)


def randomize_keras(model, seed: int = 0, scale: float = 0.5) -> None:
  """Gives every Keras weight a random value; variances (moving_variance, Normalization's variance) stay
  positive."""
  rng = np.random.default_rng(seed)
  for w in model.weights:
    shape = tuple(w.shape)
    if w.path.endswith("variance"):
      value = rng.uniform(0.5, 1.5, shape)
    else:
      value = rng.normal(0.0, scale, shape)
    w.assign(value.astype(np.float32))


def random_variables(model, input_shape, seed: int = 0):
  """Variables of a Flax `model` with random values, without compiling its `init`.

  Kernels are scaled by their fan-in, variances and scales lie in [0.5, 1.5],
  the rest (biases, means) is small, so deep models stay finite and no output is trivial.
  """
  import jax
  import jax.numpy as jnp

  shapes = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32))
  rng = np.random.default_rng(seed)

  def value(path, leaf):
    name = str(getattr(path[-1], "key", path[-1]))
    if name.endswith("kernel"):
      return rng.normal(0.0, 1.0 / np.sqrt(np.prod(leaf.shape[:-1])), leaf.shape).astype(leaf.dtype)
    if name in ("var", "scale"):
      return rng.uniform(0.5, 1.5, leaf.shape).astype(leaf.dtype)
    return rng.normal(0.0, 0.1, leaf.shape).astype(leaf.dtype)

  return jax.tree_util.tree_map_with_path(value, shapes)


def random_input(shape, seed: int = 1) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def write_legacy_h5(path, model) -> None:
  """Saves `model`'s weights through Keras 3's own legacy `.h5` writer."""
  import h5py
  from keras.src.legacy.saving import legacy_h5_format

  with h5py.File(path, "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, model)


_OLD_NAMES = {"kernel": "W", "bias": "b", "gamma": "gamma", "beta": "beta", "moving_mean": "running_mean",
              "moving_variance": "running_std"}


def write_keras2_h5(path, model, flat_names: bool = False, keras2_names=None) -> None:
  """Writes `model`'s weights in the Keras 2 layout: groups `layer/layer/kernel:0`.

  With `flat_names`, the 2016 layout of the VGG16 files instead: `layer/layer_W_1:0`. `keras2_names` renames
  layers as Keras 2 named them (DenseNet's `conv1_conv` was `conv1/conv`, a nested group in the file).
  """
  import h5py

  layers = [layer for layer in model.layers if layer.weights]
  name_of = lambda layer: (keras2_names or {}).get(layer.name, layer.name)
  with h5py.File(path, "w") as f:
    f.attrs["layer_names"] = np.array([name_of(layer).encode() for layer in model.layers])
    f.attrs["keras_version"] = b"2.2.4"
    f.attrs["backend"] = b"tensorflow"
    for layer in model.layers:
      group = f.create_group(name_of(layer))
      names = []
      if layer in layers:
        for w in list(layer.trainable_weights) + list(layer.non_trainable_weights):
          short = w.path.split("/")[-1]
          if type(layer).__name__.startswith("DepthwiseConv") and short == "kernel":
            short = "depthwise_kernel"  # Keras 2's name; Keras 3 calls it `kernel`
          name = f"{layer.name}_{_OLD_NAMES[short]}_1:0" if flat_names else f"{name_of(layer)}/{short}:0"
          group.create_dataset(name, data=np.asarray(w))
          names.append(name.encode())
      group.attrs["weight_names"] = np.array(names, dtype="S")
