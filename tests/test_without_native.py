"""Without the native library (a platform it is not shipped for, or `JAXCOMPONENTS_ONEDNN=0`), jaxcomponents
computes with XLA's operations alone, and whole models give the numbers the native path gives: the forward pass
and the gradients of a MobileNetV2 (depthwise and pointwise convolutions) and of an attention U-Net (transposed
convolutions), and one training step of the U-Net (batch norm on batch statistics), across two processes."""

import os
import subprocess
import sys

import numpy as np
import pytest

from jaxcomponents.ops import native

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = """
import sys
import jax, jax.numpy as jnp, numpy as np
from jaxcomponents import optimizers
from jaxcomponents.models import MobileNetV2, att_unet_2d
from jaxcomponents.ops import conv, native
from jaxcomponents.training import TrainState, make_train_step
conv.ONEDNN_MIN_POSITIONS = conv.ONEDNN_MIN_POSITIONS_POINTWISE = 0  # every convolution native, where it can be
x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
models = {"mobilenet_v2": (MobileNetV2(alpha=0.35, classes=4), jnp.array([1, 3])),
          "att_unet_2d": (att_unet_2d((32, 32, 3), [8, 16], n_labels=2, batch_norm=True),
                          (x[..., :1] > 0.5).astype(jnp.int32)[..., 0])}
out = {"native": np.array(native.load().available)}
for name, (model, y) in models.items():
  state = TrainState.create(model, optimizers.get("sgd"), x, seed=0)
  out[name + "/y"] = model.apply(state.variables, x, train=False)
  # Gradients through the frozen statistics: batch statistics of a few samples deep in a network amplify
  # float32 rounding differences beyond what a comparison can tell from a fault.
  loss = lambda params: jnp.mean(model.apply({**state.variables, "params": params}, x, train=False) ** 2)
  for path, leaf in jax.tree_util.tree_flatten_with_path(jax.grad(loss)(state.params))[0]:
    out[name + "/grad" + jax.tree_util.keystr(path)] = leaf
state = TrainState.create(models["att_unet_2d"][0], optimizers.get("sgd"), x, seed=0)
state, metrics = make_train_step("sparse_categorical_crossentropy")(state, {"x": x, "y": models["att_unet_2d"][1]})
out["att_unet_2d/step/loss"] = metrics["loss"]
for path, leaf in jax.tree_util.tree_flatten_with_path(state.variables)[0]:
  out["att_unet_2d/step" + jax.tree_util.keystr(path)] = leaf
np.savez(sys.argv[1], **{k: np.asarray(v) for k, v in out.items()})
"""


def _run(path, **env):
  done = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], cwd=ROOT, capture_output=True, text=True,
                        timeout=600, env=dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", **env))
  assert done.returncode == 0, done.stderr[-3000:]
  return dict(np.load(path))


@pytest.mark.skipif(not native.load().available, reason="compares with the native path, where it exists")
def test_models_compute_the_same_without_the_native_library(tmp_path):
  with_native = _run(tmp_path / "native.npz")
  without = _run(tmp_path / "xla.npz", JAXCOMPONENTS_ONEDNN="0")
  assert with_native.pop("native") and not without.pop("native")
  assert sorted(with_native) == sorted(without) and len(with_native) > 20
  for key, value in with_native.items():
    np.testing.assert_allclose(without[key], value, rtol=1e-3, atol=1e-4 * np.abs(value).max(), err_msg=key)
