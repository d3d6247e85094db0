"""Data parallelism: steps on 8 (emulated CPU) devices equal steps on 1 device, one call a step or several.

SGD, not Adam: Adam turns the float noise of a zero gradient (the bias before batch
norm) into full-size updates, which would hide real differences behind noise.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np

SCRIPT = textwrap.dedent("""
    import os, sys
    import jax, numpy as np, optax
    from jaxcomponents.training import TrainState, data_mesh, make_train_step, replicate, shard_batch
    from tests.training_problem import MLP, blobs, xent

    x, y = blobs(64)
    batch = {"x": x, "y": y}
    mesh = data_mesh()
    state = TrainState.create(MLP(), optax.sgd(0.1, momentum=0.9), x[:2])
    state = replicate(state, mesh)
    step = make_train_step(xent)
    state, metrics = step(state, shard_batch(batch, mesh))
    state, metrics = step.run(state, [shard_batch(batch, mesh)] * 2)  # two more steps as one call (a scan)
    assert int(state.step) == 3
    assert state.params["Dense_0"]["dense"]["kernel"].sharding.is_fully_replicated
    leaves = jax.tree.leaves((state.params, state.batch_stats, metrics))
    np.savez(sys.argv[1], n=len(jax.devices()), *[np.asarray(a) for a in leaves])
""")


def run(devices, out):
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  subprocess.run([sys.executable, "-c", SCRIPT, str(out)], check=True, env=env, cwd=root, timeout=600)
  with np.load(out) as f:
    return int(f["n"]), [f[f"arr_{i}"] for i in range(len(f.files) - 1)]


def test_eight_devices_equal_one(tmp_path):
  n1, one = run(1, tmp_path / "one.npz")
  n8, eight = run(8, tmp_path / "eight.npz")
  assert (n1, n8) == (1, 8)
  assert len(one) == len(eight) > 5
  for a, b in zip(one, eight):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
