"""One `Mesh` with a `data` axis: parameters replicated, batches split along it.

The same jitted step runs on one CPU, eight GPUs or a TPU pod slice: place the
state with `replicate` and every batch with `shard_batch`, and XLA inserts the
collectives (batch-norm statistics under jit are already global means). Each
process passes its own slice of the global batch to `shard_batch`. Below both
`data` (which places batches) and `training` (which places the state).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A one-axis mesh named `data` over `devices` (default: every device of every process).

  Example:
    >>> mesh = data_mesh()
    >>> mesh.axis_names
    ('data',)
  """
  devices = list(devices) if devices is not None else jax.devices()
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places every array of `tree` on every device of `mesh`."""
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """Splits this process's part of a batch along the leading axis across the mesh.

  Each process passes its local examples; the global batch is their
  concatenation. The global batch size must divide by the number of devices.
  """
  sharding = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
  n = mesh.devices.size

  def put(local):
    local = np.asarray(local)
    global_size = local.shape[0] * jax.process_count()
    if global_size % n:
      raise ValueError(
          f"batch size {global_size} is not allowed on {n} devices; it must be a multiple of {n}."
      )
    return jax.make_array_from_process_local_data(sharding, local)

  return jax.tree.map(put, batch)
