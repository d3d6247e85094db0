"""Checkpoints with orbax: keep the last N and the best by a metric, save asynchronously, resume."""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint._src.checkpoint_managers import preservation_policy as policies

from jaxcomponents.errors import check_choice, check_positive_int
from jaxcomponents.training.state import TrainState

_SAVED_FIELDS = ("step", "params", "batch_stats", "opt_state", "rng")


class Checkpointer:
  """Saves and restores a `TrainState` (metrics streams are not saved).

  Args:
    directory: where the step folders go.
    keep: how many of the latest checkpoints to keep.
    best_metric: also keep the checkpoint with the best value of this metric
      (e.g. `"val_loss"`); pass `metrics` to `save`.
    best_mode: `"min"` or `"max"`.
    async_save: write in the background; `wait()` blocks until done.

  Example (needs a training state)::

    ckpt = Checkpointer("/tmp/run/checkpoints", keep=2)
    ckpt.save(state)
    state = ckpt.restore(state)
  """

  def __init__(self, directory: str | os.PathLike, *, keep: int = 3, best_metric: str | None = None,
               best_mode: str = "min", async_save: bool = True):
    check_positive_int("keep", keep)
    check_choice("best_mode", best_mode, ("min", "max"))
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
    self._manager = ocp.CheckpointManager(os.path.abspath(os.fspath(directory)), options=options)

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
    items = {"state": ocp.args.StandardSave(pytree), "dataset": ocp.args.JsonSave(dataset or {})}
    return self._manager.save(step, args=ocp.args.Composite(**items),
                              metrics={k: float(v) for k, v in (metrics or {}).items()}, force=force)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def best_step(self) -> int | None:
    return self._manager.best_step() if self.best_metric is not None else None

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def restore(self, state: TrainState, step: int | None = None) -> TrainState:
    """Returns `state` with the fields of checkpoint `step` (default: the latest)."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint to restore in {self._manager.directory}.")
    template = {name: getattr(state, name) for name in _SAVED_FIELDS}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
    return state.replace(**restored.state)

  def dataset(self, step: int | None = None) -> dict[str, Any]:
    """The input pipeline description saved with checkpoint `step` (default: the latest)."""
    step = self.latest_step() if step is None else step
    return dict(self._manager.restore(step, args=ocp.args.Composite(dataset=ocp.args.JsonRestore())).dataset)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()
