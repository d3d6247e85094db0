"""Keras's `OrbaxCheckpoint` callback: the training state saved with orbax as `fit` goes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax

from jaxcomponents.errors import check_positive_int
from jaxcomponents.training.callbacks import _Checkpointing
from jaxcomponents.training.checkpoint import Checkpointer, CheckpointError
from jaxcomponents.training.saving import architecture


class OrbaxCheckpoint(_Checkpointing):
  """Saves the model's state with orbax as training goes, as Keras's `OrbaxCheckpoint`.

  Each save is a numbered folder in `directory`, numbered as Keras numbers it: the epoch (from 0) with
  `save_freq="epoch"`, else the batches trained (the optimizer's step count when `fit` began, plus the batches
  since). The newest `max_to_keep` are kept (None: all); a number already saved is refused, as in Keras.
  `save_best_only`, `monitor`, `mode` and `initial_value_threshold` are `ModelCheckpoint`'s. With
  `save_on_background`, writes run in the background: `fit` waits for them at its end, `wait_until_finished()`
  now.

  A checkpoint holds the whole training state (weights, optimizer state, step, random key) and the model's
  architecture: `jaxcomponents.load_model(directory)` builds the model of the newest intact one. With
  `save_weights_only=True` it holds the weights only, which `Model.load_weights(directory)` reads into a model
  built in code (either also takes one step's folder, `directory/3`). Each is verified against checksums saved
  with it, and a folder is written by one run at a time.

  Unlike Keras's: the files are jaxcomponents' layout (one state tree beside its checksums), which Keras does
  not read, nor jaxcomponents Keras's; `verbose=1` prints a line per save, as `ModelCheckpoint` does (Keras's
  takes `verbose` and prints nothing).

  Example:
    >>> best = OrbaxCheckpoint("runs/orbax", monitor="val_loss", save_best_only=True, max_to_keep=2)
  """

  def __init__(self, directory: str | os.PathLike, monitor: str = "val_loss", verbose: int = 0,
               save_best_only: bool = False, mode: str = "auto", save_freq: str | int = "epoch",
               initial_value_threshold: float | None = None, max_to_keep: int | None = 1,
               save_on_background: bool = True, save_weights_only: bool = False):
    super().__init__(monitor, verbose, save_best_only, mode, save_freq, initial_value_threshold)
    if not directory:
      raise ValueError(f"directory={directory!r} is not allowed; expected a folder path.")
    if max_to_keep is not None:
      check_positive_int("max_to_keep", max_to_keep)
    for name, value in (("save_on_background", save_on_background), ("save_weights_only", save_weights_only)):
      if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not allowed; expected True or False.")
    self.directory, self.max_to_keep = os.fspath(directory), max_to_keep
    self.save_on_background, self.save_weights_only = save_on_background, save_weights_only
    self._checkpointer: Checkpointer | None = None
    self._architecture: dict[str, Any] | None = None

  def is_multihost_enabled(self) -> bool:
    """Whether training runs in several processes (`jax.distributed`), each saving its part."""
    return jax.process_count() > 1

  def is_primary_host(self) -> bool:
    """Whether this is process 0, the one that holds the folder's lock."""
    return jax.process_index() == 0

  def on_train_begin(self, logs=None):
    super().on_train_begin(logs)
    # Refused before the first step: an architecture that cannot be saved, a folder that cannot be written.
    if not self.save_weights_only:
      try:
        self._architecture = architecture(self.model.module)
      except ValueError as e:
        raise ValueError(f"OrbaxCheckpoint saves the model's architecture with save_weights_only=False: {e} Or "
                         "pass save_weights_only=True.") from None
    if self._checkpointer is None:
      self._checkpointer = Checkpointer(self.directory, keep=self.max_to_keep, async_save=self.save_on_background)
    self._checkpointer.lock()

  def on_train_batch_end(self, batch, logs=None):
    if self._batch_due(batch):
      self._save(self.model.state.iterations, self._epoch, dict(logs or {}), f"at batch {batch}")

  def on_epoch_end(self, epoch, logs=None):
    if self.save_freq == "epoch":
      self._save(epoch, epoch, logs or {}, f"at epoch {epoch}")

  def on_train_end(self, logs=None):
    self._release()

  def wait_until_finished(self) -> None:
    """Blocks until the checkpoints being written in the background are written.

    Raises:
      CheckpointError: a write failed or stalled, naming the folder.
    """
    if self._checkpointer is not None:
      self._checkpointer.wait()

  def _save(self, step: int, epoch: int, logs: Mapping[str, Any], skipping: str) -> None:
    if not self._decides_to_save(epoch, logs, f"saving checkpoint {step} to {self.directory}", skipping):
      return
    if not self._checkpointer.save(self.model.state, step=step, weights_only=self.save_weights_only,
                                   architecture=self._architecture):
      raise CheckpointError(
          f"OrbaxCheckpoint cannot save checkpoint {step} in {self.directory}, which holds checkpoints "
          f"{self._checkpointer.all_steps()}: a number is saved once, and in increasing order. Give this run "
          "another directory (epochs are numbered from 0 in each fit, unless initial_epoch says otherwise).")

  def _release(self) -> None:
    """Finishes the writes under way and gives the folder's lock back (also when `fit` ends in an error)."""
    if self._checkpointer is not None:
      checkpointer, self._checkpointer = self._checkpointer, None
      checkpointer.close()
