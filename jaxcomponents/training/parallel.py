"""Many devices the JAX way: one `Mesh`, replicated parameters, the batch split along `data`.

The mesh helpers live in `jaxcomponents.sharding` and are re-exported here.
Multi-host: call `initialize_distributed(...)` first in every process; each
process then passes its own slice of the global batch to `shard_batch` (the
datasets in `jaxcomponents.data` load exactly that slice by themselves).
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Sequence

import jax

from jaxcomponents.errors import check_positive_int
from jaxcomponents.sharding import DATA_AXIS, data_mesh, replicate, shard_batch

__all__ = ["DATA_AXIS", "data_mesh", "initialize_distributed", "replicate", "shard_batch"]

# Environment variables by which JAX's cluster detection recognises a multi-process launch.
CLUSTER_VARIABLES = ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES",
                     "MEGASCALE_COORDINATOR_ADDRESS")


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, *, local_device_ids: Sequence[int] | None = None,
                           timeout_s: int = 300) -> bool:
  """Joins this process to a multi-process JAX run; call it first, in every process.

  Passes its arguments to `jax.distributed.initialize` (when omitted, JAX
  detects SLURM, Open MPI, TPU pods and `JAX_COORDINATOR_ADDRESS`), and selects
  gloo for collectives between CPU processes so that CPU-only runs work too.
  Without arguments and outside a cluster it does nothing, so a script can
  call it unconditionally. It changes the whole process, as
  `jax.distributed.initialize` does.

  Args:
    coordinator_address: "host:port" of process 0's coordinator service.
    num_processes: how many processes take part.
    process_id: this process's index in [0, num_processes).
    local_device_ids: the local devices this process uses (default: all).
    timeout_s: how long to wait for every process to join before failing.

  Returns:
    Whether this process is now part of a multi-process run.

  Raises:
    ValueError: for an argument that is not allowed, naming it.
    RuntimeError: if the coordinator cannot be reached within `timeout_s`.

  Example (in each of two processes, with its own `process_id`)::

    initialize_distributed("10.0.0.1:1234", num_processes=2, process_id=0)
  """
  explicit = (coordinator_address, num_processes, process_id)
  if all(v is None for v in explicit) and not any(k in os.environ for k in CLUSTER_VARIABLES):
    return False
  if jax.distributed.is_initialized():
    return True
  if coordinator_address is not None and not re.fullmatch(r"\[?[\w.:-]+\]?:\d+", coordinator_address):
    raise ValueError(f"coordinator_address={coordinator_address!r} is not allowed; expected 'host:port'.")
  if num_processes is not None:
    check_positive_int("num_processes", num_processes)
  if process_id is not None:
    check_positive_int("process_id", process_id, allow_zero=True)
    if num_processes is not None and process_id >= num_processes:
      raise ValueError(f"process_id={process_id} is not allowed with num_processes={num_processes}; expected an "
                       f"integer in [0, {num_processes}).")
  check_positive_int("timeout_s", timeout_s)
  if coordinator_address is not None and process_id not in (None, 0):
    _wait_for_coordinator(coordinator_address, timeout_s)
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id, local_device_ids=local_device_ids,
                               initialization_timeout=timeout_s)
  except Exception as e:  # JAX raises XlaRuntimeError / RuntimeError / ValueError with long C++ messages
    raise RuntimeError(
        f"could not join the multi-process run (coordinator_address={coordinator_address!r}, "
        f"num_processes={num_processes!r}, process_id={process_id!r}) within timeout_s={timeout_s}: "
        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. Check that process 0 runs, that every "
        "process uses the same address and process count, and that the port is reachable.") from e
  return True


def _wait_for_coordinator(address: str, timeout_s: int) -> None:
  """Waits until the coordinator accepts connections: JAX's client would end the whole process instead of raising."""
  host, port = address.rsplit(":", 1)
  deadline = time.monotonic() + timeout_s
  while True:
    try:
      with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
        return
    except OSError as e:
      if time.monotonic() >= deadline:
        raise RuntimeError(
            f"could not join the multi-process run: the coordinator at coordinator_address={address!r} did not "
            f"answer within timeout_s={timeout_s} ({e}). Start process 0 there, or check the address and that "
            "the port is reachable from this host.") from e
      time.sleep(0.2)
