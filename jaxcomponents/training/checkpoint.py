"""Checkpoints with orbax: keep the last N and the best by a metric, save asynchronously, verify, resume.

Each checkpoint stores, beside the arrays, a SHA-256 digest of them; a restore
recomputes it, so a damaged or truncated checkpoint is found instead of
loaded. Resuming restores the newest intact checkpoint and warns about each
damaged one it passes over.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint._src.checkpoint_managers import preservation_policy as policies

from jaxcomponents.errors import check_choice, check_positive_int
from jaxcomponents.training.state import TrainState

_SAVED_FIELDS = ("step", "params", "batch_stats", "opt_state", "rng")


class CheckpointError(RuntimeError):
  """A checkpoint cannot be written or restored; the message names the directory, the step and what to do."""


def check_writable(directory: str | os.PathLike) -> str:
  """Creates `directory` if needed and proves a file can be written there; returns its absolute path."""
  path = os.path.abspath(os.fspath(directory))
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as e:
    raise CheckpointError(f"checkpoint_dir={os.fspath(directory)!r} cannot be written ({e.strerror or e}); give a "
                          "directory this process can create and write.") from e
  return path


def _host_bytes(leaf) -> np.ndarray:
  """A leaf's values on the host; for arrays spread over processes, this process's first replica."""
  if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
    return np.asarray(leaf.addressable_shards[0].data)
  return np.asarray(leaf)


def digest(tree) -> str:
  """SHA-256 over every leaf's path, dtype, shape and bytes (what a restore must give back)."""
  sha = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    values = np.ascontiguousarray(_host_bytes(leaf))
    sha.update(f"{jax.tree_util.keystr(path)}|{values.dtype}|{values.shape}|".encode())
    sha.update(values.view(np.uint8).reshape(-1) if values.size else b"")
  return sha.hexdigest()


class Checkpointer:
  """Saves and restores a `TrainState` (metrics streams are not saved).

  Args:
    directory: where the step folders go (created; it must be writable).
    keep: how many of the latest checkpoints to keep.
    best_metric: also keep the checkpoint with the best value of this metric
      (e.g. `"val_loss"`); pass `metrics` to `save`.
    best_mode: `"min"` or `"max"`.
    async_save: write in the background; `wait()` blocks until done.

  Example (needs a training state)::

    with Checkpointer("/tmp/run/checkpoints", keep=2) as ckpt:
      ckpt.save(state)
      state = ckpt.restore(state)   # the newest intact checkpoint, verified
  """

  def __init__(self, directory: str | os.PathLike, *, keep: int = 3, best_metric: str | None = None,
               best_mode: str = "min", async_save: bool = True):
    check_positive_int("keep", keep)
    check_choice("best_mode", best_mode, ("min", "max"))
    self.directory = check_writable(directory)
    self.best_metric = best_metric
    preserve = [policies.LatestN(keep)]
    if best_metric is not None:
      preserve.append(policies.BestN(get_metric_fn=lambda m: m[best_metric], reverse=best_mode == "min", n=1,
                                     keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policies.AnyPreservationPolicy(preserve),
        enable_async_checkpointing=async_save,
        create=True,
    )
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def save(self, state: TrainState, metrics: dict[str, float] | None = None, *, force: bool = False,
           dataset: dict[str, Any] | None = None) -> bool:
    """Saves `state` under its step; returns whether a checkpoint was written.

    `dataset` (JSON) describes the input pipeline's position and settings, saved beside the state.
    """
    pytree = {name: getattr(state, name) for name in _SAVED_FIELDS}
    if self.best_metric is not None and metrics is not None and self.best_metric not in metrics:
      raise ValueError(
          f"best_metric={self.best_metric!r} is not among the saved metrics {sorted(metrics)}."
      )
    step = int(jax.device_get(state.step))
    if step in self._manager.all_steps():
      return False
    items = {"state": ocp.args.StandardSave(pytree), "dataset": ocp.args.JsonSave(dataset or {}),
             "checksum": ocp.args.JsonSave({"sha256": digest(pytree)})}
    try:
      return self._manager.save(step, args=ocp.args.Composite(**items),
                                metrics={k: float(v) for k, v in (metrics or {}).items()}, force=force)
    except OSError as e:
      raise CheckpointError(f"writing the checkpoint of step {step} to {self.directory} failed ({e}); the earlier "
                            "checkpoints there are intact. Free space or fix the directory, then resume.") from e

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def best_step(self) -> int | None:
    return self._manager.best_step() if self.best_metric is not None else None

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def _restore_step(self, template: dict[str, Any], step: int) -> dict[str, Any]:
    """Restores and verifies one step; raises `CheckpointError` saying what is wrong with it."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    items = {"state": ocp.args.StandardRestore(abstract)}
    has_checksum = os.path.isdir(os.path.join(self.directory, str(step), "checksum"))
    if has_checksum:
      items["checksum"] = ocp.args.JsonRestore()
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # orbax raises many types (JSON, tree structure, tensorstore) for one cause
      raise CheckpointError(f"checkpoint step {step} in {self.directory} cannot be read "
                            f"({type(e).__name__}: {str(e).splitlines()[0][:300]})") from e
    if has_checksum and digest(restored.state) != restored.checksum.get("sha256"):
      raise CheckpointError(f"checkpoint step {step} in {self.directory} is damaged: its arrays do not match the "
                            "checksum saved with them")
    return dict(restored.state)

  def restore(self, state: TrainState, step: int | None = None) -> TrainState:
    """Returns `state` with the fields of checkpoint `step`, verified against its checksum.

    Without `step`, the newest intact checkpoint: each damaged newer one is
    passed over with a warning naming it (`restored_step` says which was used).

    Raises:
      CheckpointError: naming the step(s) and what is wrong, if none can be restored.
    """
    template = {name: getattr(state, name) for name in _SAVED_FIELDS}
    restored, self.restored_step = self._restore_intact(template, step)
    return state.replace(**restored)

  def restore_weights(self, params, batch_stats=None, step: int | None = None) -> tuple[Any, Any]:
    """`(params, batch_stats)` of a checkpoint, for inference: no optimizer or training state needed.

    `params` and `batch_stats` are templates (e.g. `model.init(...)`'s) giving
    the structure and shapes. Only these arrays are read, so the checksum
    (which covers the whole state) is not checked; `restore` checks it.
    """
    template = {"params": params, "batch_stats": batch_stats if batch_stats is not None else {}}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    step = self._existing_step(step)
    args = ocp.args.PyTreeRestore(abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
                                  partial_restore=True)
    try:
      with ocp.Checkpointer(ocp.PyTreeCheckpointHandler()) as reader:
        restored = reader.restore(os.path.join(self.directory, str(step), "state"), args=args)
    except Exception as e:
      raise CheckpointError(f"the weights of checkpoint step {step} in {self.directory} cannot be read "
                            f"({type(e).__name__}: {str(e).splitlines()[0][:300]})") from e
    return restored["params"], restored["batch_stats"]

  def _existing_step(self, step: int | None) -> int:
    steps = self.all_steps()
    if not steps:
      raise FileNotFoundError(f"no checkpoint to restore in {self.directory}.")
    if step is None:
      return steps[-1]
    if step not in steps:
      raise FileNotFoundError(f"step={step} has no checkpoint in {self.directory}; it has steps {steps}.")
    return step

  def _restore_intact(self, template: dict[str, Any], step: int | None) -> tuple[dict[str, Any], int]:
    if step is not None:
      return self._restore_step(template, self._existing_step(step)), step
    damaged = []
    for candidate in reversed(self.all_steps()):
      try:
        restored = self._restore_step(template, candidate)
      except CheckpointError as e:
        damaged.append(str(e))
        warnings.warn(f"{e}; trying the checkpoint before it.", stacklevel=3)
        continue
      return restored, candidate
    if not damaged:
      raise FileNotFoundError(f"no checkpoint to restore in {self.directory}.")
    raise CheckpointError("no intact checkpoint to restore: " + "; ".join(damaged) + ". Start again in a new "
                          "checkpoint_dir (or fit with overwrite=True).")

  def holds(self, state: TrainState) -> bool:
    """Whether the latest checkpoint is `state` itself (same step, same arrays): training it further continues."""
    steps = self.all_steps()
    step = int(jax.device_get(state.step))
    if not steps or steps[-1] != step:
      return False
    try:
      saved = self._manager.restore(step, args=ocp.args.Composite(checksum=ocp.args.JsonRestore())).checksum
    except Exception:  # no checksum saved, or unreadable: cannot tell, so not the same
      return False
    return saved.get("sha256") == digest({name: getattr(state, name) for name in _SAVED_FIELDS})

  def dataset(self, step: int | None = None) -> dict[str, Any]:
    """The input pipeline description saved with checkpoint `step` (default: the latest)."""
    step = self._existing_step(step)
    return dict(self._manager.restore(step, args=ocp.args.Composite(dataset=ocp.args.JsonRestore())).dataset)

  def delete_all(self) -> None:
    """Deletes every checkpoint in the directory (what `fit(..., overwrite=True)` does first)."""
    for step in self.all_steps():
      self._manager.delete(step)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()
