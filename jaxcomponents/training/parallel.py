"""Many devices the JAX way: one `Mesh`, replicated parameters, the batch split along `data`.

The mesh helpers live in `jaxcomponents.sharding` and are re-exported here.
Multi-host: call `initialize_distributed()` first in every process; each
process then passes its own slice of the global batch to `shard_batch`.
"""

from __future__ import annotations

import os

import jax

from jaxcomponents.sharding import DATA_AXIS, data_mesh, replicate, shard_batch

__all__ = ["DATA_AXIS", "data_mesh", "initialize_distributed", "replicate", "shard_batch"]


def initialize_distributed() -> None:
  """`jax.distributed.initialize()` when launched as one of several processes.

  Does nothing for a single process, so scripts can call it unconditionally.
  Cluster environments (SLURM, TPU pods, `JAX_COORDINATOR_ADDRESS`) are
  detected by JAX itself.
  """
  multi = any(k in os.environ for k in ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "TPU_WORKER_HOSTNAMES"))
  if multi and not jax.distributed.is_initialized():
    jax.distributed.initialize()
