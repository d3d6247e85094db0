"""Background prefetch of batches onto the device (or sharded across a mesh)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import jax

from jaxcomponents.sharding import shard_batch

_DONE = object()


def prefetch(batches: Iterable[Any], size: int = 2, mesh=None) -> Iterator[Any]:
  """Yields `batches` already on the device, preparing up to `size` ahead in a background thread.

  With `size=0` there is no thread, and without a mesh the batches pass as they are (a jitted call
  transfers its arguments itself, at less cost than `jax.device_put`).

  With a `mesh`, each batch is split along its leading axis across the mesh
  (`jaxcomponents.sharding.shard_batch`). Errors in the producer re-raise here.

  Example:
    >>> import numpy as np
    >>> [b["x"].shape for b in prefetch([{"x": np.zeros(2)}, {"x": np.ones(2)}])]
    [(2,), (2,)]
  """
  place = (lambda b: shard_batch(b, mesh)) if mesh is not None else jax.device_put
  if size == 0:  # no thread (cheap batches, e.g. slices of arrays): on one device, jit takes them as they are
    yield from batches if mesh is None else map(place, batches)
    return
  buffer: queue.Queue = queue.Queue(maxsize=max(size, 1))
  stop = threading.Event()

  def put(item) -> bool:
    while not stop.is_set():
      try:
        buffer.put(item, timeout=0.05)
        return True
      except queue.Full:
        pass
    return False

  def produce():
    try:
      for batch in batches:
        if stop.is_set() or not put(place(batch)):
          return
      put(_DONE)
    except BaseException as e:  # handed to the consumer
      put(e)

  thread = threading.Thread(target=produce, daemon=True)
  thread.start()
  try:
    while True:
      item = buffer.get()
      if item is _DONE:
        return
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()
    # A producer blocked inside the data source cannot be stopped: wait a little, then leave it (a daemon) to
    # end when its read returns, rather than hang the consumer.
    thread.join(timeout=0.25)
