"""Checkpoints with orbax: keep the last N and the best by a metric, save asynchronously, verify, resume.

Each checkpoint stores, beside the arrays, a SHA-256 digest of each field of
the state (params, batch_stats, opt_state, ...) and of its dataset record; a
restore checks the shapes the checkpoint declares against the state it
restores into before reading anything, then recomputes the digests, so a
damaged, truncated or foreign checkpoint is found instead of loaded.
Resuming restores the newest intact checkpoint and warns about each damaged
one it passes over. A `Checkpointer` that writes holds the folder's
lock (`folder_lock.FolderLock`): one writer per folder.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint._src.checkpoint_managers import preservation_policy as policies

from jaxcomponents.errors import check_choice, check_positive_int, is_real
from jaxcomponents.training.folder_lock import FolderInUseError, FolderLock
from jaxcomponents.training.state import TrainState

_SAVED_FIELDS = ("step", "params", "batch_stats", "opt_state", "rng")
_WEIGHT_FIELDS = ("params", "batch_stats")
_ARCHITECTURE = "architecture"


class CheckpointError(OSError):
  """A checkpoint cannot be written or restored; the message names the directory, the step and what to do."""


def _first_line(error: BaseException) -> str:
  """The error's type and first line, its middle cut out when long (the reason is often at the end)."""
  line = (str(error).splitlines() or [""])[0]
  return f"{type(error).__name__}: {line if len(line) <= 400 else line[:200] + ' ... ' + line[-200:]}"


def _key_name(key) -> str:
  for attribute in ("key", "idx", "name"):
    if hasattr(key, attribute):
      return str(getattr(key, attribute))
  return str(key)


def _named_leaves(tree, is_leaf=None) -> dict[str, Any]:
  return {"/".join(_key_name(k) for k in path): leaf
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0]}


def declared_arrays(item_dir: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """`{path: (shape, dtype)}` that an orbax pytree folder declares, read from its metadata (no array is read)."""
  from etils import epath  # pylint: disable=import-outside-toplevel

  metadata = ocp.PyTreeCheckpointHandler().metadata(epath.Path(os.fspath(item_dir))).tree
  leaves = _named_leaves(metadata, is_leaf=lambda leaf: hasattr(leaf, "shape") and hasattr(leaf, "dtype"))
  return {name: (tuple(leaf.shape), np.dtype(leaf.dtype)) for name, leaf in leaves.items()
          if hasattr(leaf, "shape")}


_MAX_METADATA_BYTES = 64 << 20  # orbax's JSON files and jaxcomponents' records: tiny, even for large models
_METADATA_FILES = ("_CHECKPOINT_METADATA", "_METADATA", "_sharding", "metadata")


def check_metadata_sizes(folder: str | os.PathLike, what: str) -> None:
  """Raises `CheckpointError` if a JSON file of an orbax folder is larger than any orbax or jaxcomponents writes.

  Orbax reads them whole; checked first, a forged one allocates nothing.
  """
  for root, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(root, name)
      if name in _METADATA_FILES and os.path.getsize(path) > _MAX_METADATA_BYTES:
        raise CheckpointError(f"{what} is damaged: {path} is {os.path.getsize(path):,} bytes, more than the "
                              f"{_MAX_METADATA_BYTES:,} such a file can have; nothing was read")


def check_declared(item_dir: str | os.PathLike, template, what: str, *, partial: bool = False) -> None:
  """Raises `CheckpointError` unless the arrays `item_dir` declares are `template`'s (names, shapes, dtypes).

  Checked before a restore, so a foreign or forged checkpoint allocates nothing
  (orbax itself reads arrays at the shape the file declares); its metadata
  files' sizes are checked first (`check_metadata_sizes`). With `partial`, the
  folder may hold more arrays than the template names.
  """
  try:
    declared = declared_arrays(item_dir)
  except Exception as e:  # orbax raises many types for an unreadable metadata file
    raise CheckpointError(f"{what} cannot be read: its array metadata is damaged ({_first_line(e)})") from e
  expected = _named_leaves(template)
  missing = sorted(set(expected) - set(declared))
  extra = [] if partial else sorted(set(declared) - set(expected))
  if missing or extra:
    raise CheckpointError(f"{what} does not hold this state's arrays: " + "; ".join(
        f"{label} {names[:3]}{' ...' if len(names) > 3 else ''}" for label, names in
        (("missing", missing), ("unexpected", extra)) if names) + ". Restore it into the model it was saved from.")
  for name, leaf in expected.items():
    shape, dtype = tuple(np.shape(leaf)), np.dtype(getattr(leaf, "dtype", np.asarray(leaf).dtype))
    if declared[name][0] != shape or declared[name][1] != dtype:
      raise CheckpointError(f"{what} declares {name} as {declared[name][1]}{list(declared[name][0])}, but the state "
                            f"has {dtype}{list(shape)}; nothing was read. Restore it into the model it was saved "
                            "from.")


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


def _stored_bytes(folder: str) -> int:
  return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(folder) for name in names)


def read_arrays(item_dir: str | os.PathLike, template=None) -> Any:
  """The arrays of an orbax pytree folder (as NumPy), read with bounded memory.

  With `template` (arrays or `jax.ShapeDtypeStruct`s), the folder must declare
  exactly its arrays; without, the sizes it declares are charged to a
  `jaxcomponents.limits.ReadBudget` by its size on disk. Either way nothing
  is read before the check passes (orbax reads whatever shape a file declares).

  Raises:
    CheckpointError: the folder is not a readable orbax pytree, or holds other arrays than `template`.
    jaxcomponents.limits.LimitExceededError: it declares more than the read limits allow.

  Example (needs a folder `orbax.checkpoint.StandardCheckpointer` wrote)::

    variables = read_arrays("run/variables", jax.eval_shape(module.init, key, x))
  """
  from jaxcomponents.limits import ReadBudget  # pylint: disable=import-outside-toplevel

  folder = os.path.abspath(os.fspath(item_dir))
  check_metadata_sizes(folder, folder)
  if template is not None:
    check_declared(folder, template, folder)
  else:
    try:
      declared = declared_arrays(folder)
    except Exception as e:
      raise CheckpointError(f"{folder} is not a readable orbax checkpoint ({_first_line(e)})") from e
    budget = ReadBudget(folder, _stored_bytes(folder))
    for name, (shape, dtype) in declared.items():
      budget.charge(f"array {name}", math.prod(shape) * dtype.itemsize)
  abstract = None if template is None else jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
  try:
    with ocp.StandardCheckpointer() as reader:
      restored = reader.restore(folder, abstract)
  except Exception as e:  # orbax raises many types (JSON, tree structure, tensorstore) for one cause
    raise CheckpointError(f"{folder} cannot be read ({_first_line(e)})") from e
  return jax.tree.map(np.asarray, restored)


def record_digest(record: Any) -> str:
  """SHA-256 of a JSON record (keys sorted), saved beside it to find a damaged one."""
  return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def digest(tree) -> str:
  """SHA-256 over every leaf's path, dtype, shape and bytes (what a restore must give back)."""
  sha = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    values = np.ascontiguousarray(_host_bytes(leaf))
    sha.update(f"{jax.tree_util.keystr(path)}|{values.dtype}|{values.shape}|".encode())
    sha.update(values.view(np.uint8).reshape(-1) if values.size else b"")
  return sha.hexdigest()


def _verify(restored: dict[str, Any], checksum: Any, where: str) -> None:
  """Raises `CheckpointError` unless the restored fields match the digests saved with them.

  A checkpoint has a digest per field (`fields`), or one over the whole state (`sha256`, written by earlier
  versions, checked only when the whole state was restored).
  """
  checksum = checksum if isinstance(checksum, dict) else {}
  if isinstance(checksum.get("fields"), dict):
    bad = [name for name, value in restored.items() if digest({name: value}) != checksum["fields"].get(name)]
  elif "sha256" in checksum and set(restored) == set(_SAVED_FIELDS):
    bad = [] if digest(restored) == checksum["sha256"] else sorted(restored)
  else:
    raise CheckpointError(f"{where} cannot be verified: its checksum record holds no digest of {sorted(restored)}")
  if bad:
    raise CheckpointError(f"{where} is damaged: its {', '.join(bad)} do not match the checksum saved with them")


def checkpoint_location(path: str | os.PathLike) -> tuple[str, int | None] | None:
  """`(directory, step)` when `path` is a folder of numbered checkpoints (`step` None: the newest) or one of
  them (`run/3`), else None.
  """
  path = os.path.abspath(os.fspath(path))
  if not os.path.isdir(path):
    return None
  if any(name.isdigit() and os.path.isdir(os.path.join(path, name)) for name in os.listdir(path)):
    return path, None
  name = os.path.basename(path)
  if name.isdigit() and os.path.isdir(os.path.join(path, "state")):
    return os.path.dirname(path), int(name)
  return None


class Checkpointer:
  """Saves and restores a `TrainState` (metrics streams are not saved).

  Args:
    directory: where the step folders go (created if missing; writing needs it writable, reading does not).
    keep: how many of the latest checkpoints to keep (None: all).
    best_metric: also keep the checkpoint with the best value of this metric
      (e.g. `"val_loss"`); pass `metrics` to `save`.
    best_mode: `"min"` or `"max"`.
    async_save: write in the background; `wait()` blocks until done.
    save_timeout: seconds `wait()` waits for a background write before it
      raises `CheckpointError` saying which checkpoint is not written.

  The first `save` (or `lock()`) takes the folder's lock, so a second run
  writing into the same folder is refused; `close()` gives it back. Reading
  (`restore`, `restore_weights`) takes no lock.

  Example (needs a training state)::

    with Checkpointer("/tmp/run/checkpoints", keep=2) as ckpt:
      ckpt.save(state)
      state = ckpt.restore(state)   # the newest intact checkpoint, verified
  """

  def __init__(self, directory: str | os.PathLike, *, keep: int | None = 3, best_metric: str | None = None,
               best_mode: str = "min", async_save: bool = True, save_timeout: float = 600.0):
    if keep is not None:
      check_positive_int("keep", keep)
    check_choice("best_mode", best_mode, ("min", "max"))
    if not is_real(save_timeout) or not save_timeout > 0:
      raise ValueError(f"save_timeout={save_timeout!r} is not allowed; expected a positive number of seconds.")
    path = os.path.abspath(os.fspath(directory))
    self.directory = path if os.path.isdir(path) else check_writable(directory)  # reading needs no write access
    self.best_metric, self.save_timeout = best_metric, float(save_timeout)
    self._lock, self._locked, self._stalled = FolderLock(self.directory), False, False
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

  def lock(self) -> None:
    """Takes the folder's lock for this run (done by the first `save`; `fit` does it before its first step).

    With several processes, process 0 holds it for the run and every process
    raises if it could not be taken.

    Raises:
      FolderInUseError: another live run holds the folder, naming it.
    """
    if self._locked:
      return
    refusal = None
    if jax.process_index() == 0:
      try:
        check_writable(self.directory)
        self._lock.acquire()
      except OSError as e:
        refusal = e
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

      refused = np.asarray(multihost_utils.process_allgather(np.int32(refusal is not None)))
      if refused.any() and refusal is None:
        raise FolderInUseError(f"{self.directory} is in use by another run: process 0 could not take its lock.")
    if refusal is not None:
      raise refusal
    self._locked = True

  def save(self, state: TrainState, metrics: dict[str, float] | None = None, *, force: bool = False,
           dataset: dict[str, Any] | None = None, step: int | None = None, weights_only: bool = False,
           architecture: dict[str, Any] | None = None) -> bool:
    """Saves `state` under its step (or `step`); returns whether a checkpoint was written.

    A step that is already saved, or older than the newest, is not written (False).

    Args:
      state: the training state.
      metrics: the logs `best_metric` is read from.
      force: save even where orbax's save policy would not.
      dataset: JSON describing the input pipeline's position and settings, saved beside the state.
      step: the checkpoint's number, instead of the state's step.
      weights_only: save only `params` and `batch_stats` (read back by `restore_weights`, not `restore`).
      architecture: JSON describing the model (`saving.architecture`), saved beside, for `restore_model`.

    Raises:
      CheckpointError: the checkpoint cannot be written (a full disk, a vanished folder), naming why.
      FolderInUseError: another run writes into this folder.
    """
    pytree = {name: getattr(state, name) for name in (_WEIGHT_FIELDS if weights_only else _SAVED_FIELDS)}
    if self.best_metric is not None and metrics is not None and self.best_metric not in metrics:
      raise ValueError(
          f"best_metric={self.best_metric!r} is not among the saved metrics {sorted(metrics)}."
      )
    self.lock()
    step = int(jax.device_get(state.step)) if step is None else step
    if step in self._manager.all_steps():
      return False
    dataset = dataset or {}
    records = {"dataset": dataset, **({} if architecture is None else {_ARCHITECTURE: architecture})}
    items = {"state": ocp.args.StandardSave(pytree),
             **{name: ocp.args.JsonSave(record) for name, record in records.items()},
             "checksum": ocp.args.JsonSave({"fields": {name: digest({name: value}) for name, value in pytree.items()},
                                            **{f"{name}_sha256": record_digest(record)
                                               for name, record in records.items()}})}
    self.wait()  # orbax waits for the write before this one too, without a bound
    try:
      return self._manager.save(step, args=ocp.args.Composite(**items),
                                metrics={k: float(v) for k, v in (metrics or {}).items()}, force=force)
    except (OSError, ValueError, RuntimeError) as e:  # tensorstore reports a full disk as ValueError
      raise self._write_failed(e, f"saving the checkpoint of step {step}") from e

  def _write_failed(self, error: BaseException, what: str) -> CheckpointError:
    """The error for a failed write, after removing its unfinished step folders (ours: the folder is locked)."""
    if self._lock.held:
      for partial in glob.glob(os.path.join(glob.escape(self.directory), "*.orbax-checkpoint-tmp*")):
        shutil.rmtree(partial, ignore_errors=True)
    return CheckpointError(f"{what} to {self.directory} failed ({_first_line(error)}); the checkpoints written "
                           "there before are intact. Free space or fix the directory, then resume.")

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def best_step(self) -> int | None:
    return self._manager.best_step() if self.best_metric is not None else None

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def _checked_step(self, template: dict[str, Any], step: int, records: tuple[str, ...], *,
                    partial: bool = False) -> tuple[str, str]:
    """`(how messages name step `step`, its folder)`, once nothing is missing, oversized or foreign in it.

    Raises:
      CheckpointError: a record is missing, a metadata file is too large, or the
        declared arrays are not `template`'s (`check_declared`); nothing is read.
    """
    where = f"checkpoint step {step} in {self.directory}"
    folder = os.path.join(self.directory, str(step))
    for record in records:
      if not os.path.isdir(os.path.join(folder, record)):
        raise CheckpointError(f"{where} is incomplete: its {record} record {os.path.join(folder, record)} is "
                              "missing, so it cannot be verified")
    check_metadata_sizes(folder, where)
    check_declared(os.path.join(folder, "state"), template, where, partial=partial)
    return where, folder

  def _restore_step(self, template: dict[str, Any], step: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Restores and verifies one step's state and dataset record; raises `CheckpointError` saying what is wrong."""
    where, folder = self._checked_step(template, step, ("checksum", "dataset"))
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    items = {"state": ocp.args.StandardRestore(abstract), "checksum": ocp.args.JsonRestore(),
             "dataset": ocp.args.JsonRestore()}
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # orbax raises many types (JSON, tree structure, tensorstore) for one cause
      raise CheckpointError(f"{where} cannot be read ({_first_line(e)})") from e
    checksum = restored.checksum if isinstance(restored.checksum, dict) else {}
    _verify(dict(restored.state), checksum, where)
    dataset = restored.dataset
    if not isinstance(dataset, dict) or ("dataset_sha256" in checksum
                                         and record_digest(dataset) != checksum["dataset_sha256"]):
      raise CheckpointError(f"{where} is damaged: its dataset record {os.path.join(folder, 'dataset')} does not "
                            "match the checksum saved with it")
    return dict(restored.state), dict(dataset)

  def restore(self, state: TrainState, step: int | None = None) -> TrainState:
    """Returns `state` with the fields of checkpoint `step`, verified against its checksum.

    Without `step`, the newest intact checkpoint: each damaged newer one is
    passed over with a warning naming it. `restored_step` says which was used,
    `restored_dataset` holds its (verified) dataset record.

    Raises:
      CheckpointError: naming the step(s) and what is wrong, if none can be restored.
    """
    template = {name: getattr(state, name) for name in _SAVED_FIELDS}
    restored, self.restored_dataset, self.restored_step = self._restore_intact(template, step)
    return state.replace(**restored)

  def latest_intact_step(self, state: TrainState) -> int | None:
    """The newest checkpoint that restores into `state` and matches its checksums, or None (each damaged one warns)."""
    try:
      return self._restore_intact({name: getattr(state, name) for name in _SAVED_FIELDS}, None)[2]
    except (CheckpointError, FileNotFoundError):
      return None

  def restore_weights(self, params, batch_stats=None, step: int | None = None) -> tuple[Any, Any]:
    """`(params, batch_stats)` of a checkpoint, for inference: no optimizer or training state needed.

    `params` and `batch_stats` are templates (e.g. `model.init(...)`'s) giving
    the structure and shapes, checked against what the checkpoint declares
    before anything is read. Only these arrays are read, and verified against
    their checksums; without `step`, a damaged newest checkpoint is passed
    over with a warning, as by `restore`.
    """
    template = {"params": params, "batch_stats": batch_stats if batch_stats is not None else {}}
    restored, _, self.restored_step = self._restore_intact(template, step, self._restore_weights_step)
    return restored["params"], restored["batch_stats"]

  def _restore_weights_step(self, template: dict[str, Any], step: int) -> tuple[dict[str, Any], dict[str, Any]]:
    where, folder = self._checked_step(template, step, ("checksum",), partial=True)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    args = ocp.args.PyTreeRestore(abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
                                  partial_restore=True)
    try:
      checksum = self._manager.restore(step, args=ocp.args.Composite(checksum=ocp.args.JsonRestore())).checksum
      with ocp.Checkpointer(ocp.PyTreeCheckpointHandler()) as reader:
        restored = dict(reader.restore(os.path.join(folder, "state"), args=args))
    except Exception as e:
      raise CheckpointError(f"the weights of {where} cannot be read ({_first_line(e)})") from e
    checked = {name: value for name, value in restored.items() if name == "params" or jax.tree.leaves(value)}
    if isinstance(checksum, dict) and "fields" in checksum:  # earlier versions digested only the whole state
      _verify(checked, checksum, where)
    return restored, {}

  def restore_model(self, step: int | None = None) -> tuple[Any, dict[str, Any]]:
    """`(module, {"params": ..., "batch_stats": ...})` of a checkpoint saved with its `architecture`.

    The module is built from jaxcomponents' own classes only, and the arrays
    are read within the read limits, then verified against their checksums;
    without `step`, a damaged newest checkpoint is passed over with a warning,
    as by `restore`.
    """
    newest = self._existing_step(step)
    if not os.path.isdir(os.path.join(self.directory, str(newest), _ARCHITECTURE)):
      raise ValueError(f"checkpoint step {newest} in {self.directory} holds no architecture (only OrbaxCheckpoint "
                       "saves one, unless save_weights_only=True): build the model in code and read its weights "
                       "with Model.load_weights.")
    restored, _, self.restored_step = self._restore_intact({}, step, self._restore_model_step)
    return restored["module"], {name: restored[name] for name in _WEIGHT_FIELDS}

  def _restore_model_step(self, _, step: int) -> tuple[dict[str, Any], dict[str, Any]]:
    from jaxcomponents.training.saving import from_architecture  # pylint: disable=import-outside-toplevel

    where, folder = f"checkpoint step {step} in {self.directory}", os.path.join(self.directory, str(step))
    if not os.path.isdir(os.path.join(folder, _ARCHITECTURE)):
      raise CheckpointError(f"{where} holds no architecture (saved with save_weights_only=True)")
    check_metadata_sizes(folder, where)
    try:
      records = self._manager.restore(step, args=ocp.args.Composite(
          **{_ARCHITECTURE: ocp.args.JsonRestore(), "checksum": ocp.args.JsonRestore()}))
    except Exception as e:
      raise CheckpointError(f"{where} cannot be read ({_first_line(e)})") from e
    record, checksum = records[_ARCHITECTURE], records.checksum if isinstance(records.checksum, dict) else {}
    if record_digest(record) != checksum.get(f"{_ARCHITECTURE}_sha256"):
      raise CheckpointError(f"{where} is damaged: its architecture record does not match the checksum saved with it")
    try:
      module = from_architecture(record, f"the architecture of {where}")
    except ValueError as e:
      raise CheckpointError(str(e)) from e
    arrays = read_arrays(os.path.join(folder, "state"))
    weights = {name: arrays.get(name, {}) for name in _WEIGHT_FIELDS}
    _verify(weights, checksum, where)
    return {"module": module, **weights}, {}

  def _existing_step(self, step: int | None) -> int:
    steps = self.all_steps()
    if not steps:
      raise FileNotFoundError(f"no checkpoint to restore in {self.directory}.")
    if step is None:
      return steps[-1]
    if step not in steps:
      raise FileNotFoundError(f"step={step} has no checkpoint in {self.directory}; it has steps {steps}.")
    return step

  def _restore_intact(self, template: dict[str, Any], step: int | None, restore_step=None
                      ) -> tuple[dict[str, Any], dict[str, Any], int]:
    restore_step = restore_step or self._restore_step
    if step is not None:
      return (*restore_step(template, self._existing_step(step)), step)
    damaged = []
    for candidate in reversed(self.all_steps()):
      try:
        restored, dataset = restore_step(template, candidate)
      except CheckpointError as e:
        damaged.append(str(e))
        warnings.warn(f"{e}; trying the checkpoint before it.", stacklevel=4)
        continue
      return restored, dataset, candidate
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
      check_metadata_sizes(os.path.join(self.directory, str(step)), "")
      saved = self._manager.restore(step, args=ocp.args.Composite(checksum=ocp.args.JsonRestore())).checksum
    except Exception:  # no checksum saved, or unreadable: cannot tell, so not the same
      return False
    try:
      _verify({name: getattr(state, name) for name in _SAVED_FIELDS}, saved, "")
    except CheckpointError:
      return False
    return True

  def dataset(self, step: int | None = None) -> dict[str, Any]:
    """The input pipeline description saved with checkpoint `step` (default: the latest)."""
    step = self._existing_step(step)
    try:
      check_metadata_sizes(os.path.join(self.directory, str(step)), f"checkpoint step {step} in {self.directory}")
      record = self._manager.restore(step, args=ocp.args.Composite(dataset=ocp.args.JsonRestore())).dataset
    except Exception as e:
      raise CheckpointError(f"the dataset record of checkpoint step {step} in {self.directory} cannot be read "
                            f"({_first_line(e)})") from e
    if not isinstance(record, dict):
      raise CheckpointError(f"the dataset record of checkpoint step {step} in {self.directory} is not a record")
    return dict(record)

  def delete_all(self) -> None:
    """Deletes every checkpoint in the directory (what `fit(..., overwrite=True)` does first)."""
    self.lock()
    for step in self.all_steps():
      self._manager.delete(step)

  def wait(self, timeout: float | None = None) -> None:
    """Blocks until the background writes are done, at most `timeout` seconds (default `save_timeout`).

    Raises:
      CheckpointError: a write failed, or has not finished in time (the earlier checkpoints are intact).
    """
    timeout = self.save_timeout if timeout is None else timeout
    failures: list[BaseException] = []

    def finish():
      try:
        self._manager.wait_until_finished()
      except BaseException as e:  # handed to the waiting thread
        failures.append(e)

    writer = threading.Thread(target=finish, daemon=True)
    writer.start()
    writer.join(timeout)
    if writer.is_alive():
      self._stalled = True
      raise CheckpointError(f"the checkpoint being written to {self.directory} has not finished after {timeout:g} s "
                            "(a stalled disk?); the checkpoints written before it are intact.")
    if failures:
      raise self._write_failed(failures[0], "writing a checkpoint") from failures[0]

  def close(self) -> None:
    """Finishes the writes under way and gives the folder's lock back.

    After a write that did not finish in time, neither is done: the stalled
    write may still change the folder, so its lock stays until this process
    ends (the next run reclaims it with a warning).
    """
    if self._stalled:
      return
    try:
      self._manager.close()
    except (OSError, ValueError, RuntimeError) as e:  # a failed background write
      raise self._write_failed(e, "writing a checkpoint") from e
    finally:
      self._lock.release()
      self._locked = False

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, error_type, error, traceback) -> None:
    if error_type is None:
      self.close()
    else:
      with contextlib.suppress(Exception):  # the error leaving the block is the one to see
        self.close()
