"""`fit`: epochs of jitted steps with a progress bar, validation, logs, checkpoints and resume."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import jax
import numpy as np

from jaxcomponents import deprecation, optimizers
from jaxcomponents.data.dataset import ArrayDataset
from jaxcomponents.data.pipeline import BatchPipeline, check_labels
from jaxcomponents.data.prefetch import prefetch
from jaxcomponents.errors import check_choice, check_positive_int, is_int, is_real
from jaxcomponents.training.callbacks import (BackupAndRestore, BatchLogs, Callback, CallbackList, CSVLogger, History,
                                             LearningCurves, LearningRateScheduler, ProgbarLogger, ReduceLROnPlateau,
                                             TensorBoard, _check_protocol, _Monitor, pythonify)
from jaxcomponents.training.checkpoint import Checkpointer
from jaxcomponents.training.orbax_checkpoint import OrbaxCheckpoint
from jaxcomponents.training.parallel import data_mesh, replicate
from jaxcomponents.training.state import TrainState
from jaxcomponents.training.step import Step, make_eval_step


class Dataset(Protocol):
  """What `fit`, `evaluate` and `Model.fit/evaluate/predict` read: `len(data)` batches a pass, `data.epoch(e)`.

  `data.epoch(e)` yields pass `e`'s batches: dicts with `x` (a pytree of
  arrays), `y`, and optionally `mask` (1 real, 0 padding) and `sample_weight`.
  A subclass that overrides `epoch` is read through it. A `BatchPipeline` that
  keeps `BatchPipeline.epoch` is read as one stream for the whole run
  (`stream(start, stop)`: the same batches, with Grain's workers started
  once), so a resumed run starts at its next batch.
  """

  def __len__(self) -> int: ...

  def epoch(self, index: int): ...


def is_dataset(data: Any) -> bool:
  """Whether `data` follows the `Dataset` protocol (`len(data)` and `data.epoch(index)`)."""
  return hasattr(data, "epoch") and hasattr(data, "__len__")


def batch_stream(data: Dataset, start: int, stop: int):
  """Batches `start ... stop - 1` counted across passes (batch `k` is batch `k % len` of pass `k // len`)."""
  if isinstance(data, BatchPipeline) and type(data).epoch is BatchPipeline.epoch:
    return data.stream(start, stop)
  if not is_dataset(data):
    raise TypeError(f"{type(data).__name__} is not a dataset: expected len(data) and data.epoch(index) (see "
                    "jaxcomponents.training.loop.Dataset), arrays, or a jaxcomponents/Grain dataset.")
  per_pass = len(data)

  def chained():
    for index in range(start // per_pass, -(-stop // per_pass)):
      first = max(start - index * per_pass, 0)
      yield from itertools.islice(data.epoch(index), first, min(stop - index * per_pass, per_pass))

  return chained()


class _Batches:
  """The training batches from step `start` to `stop`, one stream for the run, taken an epoch at a time."""

  def __init__(self, data: Dataset, start: int, stop: int):
    self.stream = batch_stream(data, start, stop)

  def take(self, count: int):
    return itertools.islice(self.stream, count)

  def close(self) -> None:
    """Stops the stream; a jaxcomponents pipeline's reader threads stop after the record each is reading."""
    close = getattr(self.stream, "close", None)
    if close is not None:
      try:
        close()
      except ValueError:  # a generator the prefetch thread is still inside: abandoned with that daemon thread
        pass


def _dataset_record(data: Dataset, step: int, run_start: int, steps_per_epoch: int) -> dict[str, Any]:
  """What a checkpoint says about the input: where the next batch is, what fixes the batches, where the run began."""
  record = {"next_step": step, "steps_per_epoch": steps_per_epoch, "run_start_step": run_start}
  if isinstance(data, BatchPipeline):
    record["spec"] = data.spec()
  return record


def _check_same_dataset(saved: dict[str, Any], data: Dataset, checkpoint_dir, steps_per_epoch: int) -> None:
  current = _dataset_record(data, 0, 0, steps_per_epoch)
  for key in ("steps_per_epoch", "spec"):
    if key in saved and key in current and saved[key] != current[key]:
      raise ValueError(
          f"the checkpoint in {checkpoint_dir} was written while reading a dataset with {key} {saved[key]}, but "
          f"train_data has {key} {current[key]}; resume with the same dataset, or start a new checkpoint_dir.")


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or infinite; training stopped without saving the broken state."""


def _log_names(train_step: Step, eval_step: Step | None, callbacks: Sequence[Callback]) -> list[str]:
  """The logs each epoch will have (known before the first step): Keras's, sorted by name."""
  names = list(train_step.streams())
  if eval_step is not None:
    names += [f"val_{name}" for name in eval_step.streams()]
  if any(isinstance(c, (ReduceLROnPlateau, LearningRateScheduler)) for c in callbacks):
    names.append("learning_rate")
  return sorted(names + [name for callback in callbacks for name in getattr(callback, "adds_logs", ())])


def _check_monitors(callbacks: Sequence[Callback], best_metric: str | None, names: list[str],
                    metrics: Mapping[str, Any]) -> None:
  """Before the first step: `best_metric` must name a log; each monitoring callback's "auto" mode is settled from
  `metrics` (log name -> metric object); a monitor naming no log is warned about, and the callback goes on as
  Keras's does without its log (each epoch warns again; a checkpoint saves anyway)."""
  if best_metric is not None and best_metric not in names:
    raise ValueError(f"best_metric={best_metric!r} names no log of this run; the logs will be {names}.")
  for c in callbacks:
    if isinstance(c, _Monitor) and getattr(c, "monitoring", True):
      c.resolve_mode(metrics)
  for c in callbacks:
    if isinstance(getattr(c, "monitor", None), str) and getattr(c, "monitoring", True) and c.monitor not in names:
      warnings.warn(f"{type(c).__name__} monitor={c.monitor!r} names no log of this run; the logs will be {names}.",
                    stacklevel=4)


def _class_weigher(class_weight: Mapping[int, float] | None):
  """batch -> batch with `sample_weight` multiplied by each example's class weight (identity without weights)."""
  if class_weight is None:
    return lambda batch: batch
  if not isinstance(class_weight, Mapping) or not all(
      is_real(k) and float(k).is_integer() for k in class_weight) or not all(
      is_real(w) and math.isfinite(w) and w >= 0 for w in class_weight.values()):
    raise ValueError(f"class_weight={class_weight!r} is not allowed; expected a dict from class indices (integers, "
                     "or floats with integer values as np.unique gives them) to finite weights >= 0 (a class it "
                     "leaves out weighs 1.0, as in Keras).")
  table = {int(k): float(w) for k, w in class_weight.items()}

  def weigh(batch):
    if isinstance(batch["y"], (list, tuple, Mapping)):
      raise ValueError("class_weight is only supported for models with a single output, as in Keras; give each "
                       "output's sample weights instead (sample_weight=[...] or {name: ...}).")
    y = np.asarray(batch["y"])
    if y.ndim == 2 and y.shape[1] > 1:
      y = y.argmax(-1)  # one-hot labels, as Keras reads them
    y = y.reshape(len(y), -1)
    if y.shape[1] != 1:
      raise ValueError(f"class_weight weighs one label per example; these labels have shape {np.shape(batch['y'])}. "
                       "Use sample weights for per-pixel or per-step labels.")
    classes = np.round(y[:, 0]).astype(np.int64)  # as Keras: a soft binary label of 0.5 or more is class 1
    if "sample_weight" in batch:
      raise ValueError("class_weight is given and the data's batches carry their own sample_weight; as in Keras, "
                       "give at most one of them.")
    return {**batch, "sample_weight": np.asarray([table.get(c, 1.0) for c in classes.tolist()], np.float32)}

  return weigh


def _check_sparse_labels(model, step: Step, x, y, where: str) -> None:
  """Labels `y` against the model's classes (for inputs like `x`), for a sparse categorical loss given by name."""
  loss = step.loss
  if getattr(loss, "name", None) != "sparse_categorical_crossentropy" or not isinstance(y, np.ndarray):
    return
  output = model.output_spec(x)
  if not hasattr(output, "shape"):
    return
  classes = output.shape[-1]
  ignored = dict(loss.options).get("ignore_class")
  if np.issubdtype(y.dtype, np.floating) and not np.array_equal(y, np.round(y)):
    raise ValueError(f"{where} has labels like {y[y != np.round(y)][:3].tolist()}; sparse_categorical_crossentropy "
                     "takes integer class indices.")
  y = y.astype(np.int64)
  check_labels(y[y != ignored] if ignored is not None else y, classes,
               where=f"{where} (for the model's {classes} outputs)")


def _checked_whole(data: Dataset) -> bool:
  return isinstance(data, ArrayDataset) and isinstance(data.x, np.ndarray) and isinstance(data.y, np.ndarray)


def _check_class_labels(model, step: Step, data: Dataset, where: str) -> None:
  """In-memory labels, all of them before the first step."""
  if _checked_whole(data):
    _check_sparse_labels(model, step, data.x[:1], data.y, where)


def _batch_label_checker(model, step: Step, data: Dataset, where: str):
  """batch -> batch raising on labels outside the model's classes, for data read batch by batch (records, files)."""
  if _checked_whole(data) or getattr(step.loss, "name", None) != "sparse_categorical_crossentropy":
    return lambda batch: batch

  def check(batch):
    _check_sparse_labels(model, step, batch["x"], batch["y"], f"a batch of {where}")
    return batch

  return check


def _alive(state: TrainState) -> bool:
  """False when a step failed after its input state was donated: then there is no state to hand back."""
  return not any(isinstance(leaf, jax.Array) and leaf.is_deleted() for leaf in jax.tree.leaves(state))


def _keep_state(error: BaseException, state: TrainState, checkpointer: Checkpointer | None) -> None:
  """Puts the latest good state on `error` (as `.state`) and says so in a note."""
  if not _alive(state):
    return
  error.state = state
  note = f"fit: the latest good state (step {int(jax.device_get(state.step))}) is this exception's .state"
  if checkpointer is not None and checkpointer.all_steps():
    note += f"; the checkpoints in {checkpointer.directory} are intact (latest step {checkpointer.all_steps()[-1]})"
  error.add_note(note + ".")


class _Interrupted(Exception):
  """SIGINT/SIGTERM arrived while the loop waited for data (raised out of the wait)."""


class _Signals(list):
  """The signals received; `waiting` is set while the loop waits for its next batch."""

  waiting = False


def _interruptible(batches, signals: _Signals):
  """Yields `batches`; a signal arriving while the next one is awaited interrupts the wait."""
  iterator = iter(batches)
  while True:
    signals.waiting = True
    try:
      batch = next(iterator)
    except StopIteration:
      return
    finally:
      signals.waiting = False
    yield batch


@contextlib.contextmanager
def _stop_on_signals():
  """Turns SIGINT/SIGTERM into a flag the loop checks after each step, or `_Interrupted` during a data wait."""
  received = _Signals()
  if threading.current_thread() is not threading.main_thread():
    yield received
    return
  previous = {}

  def handler(signum, frame):
    received.append(signal.Signals(signum).name)
    if received.waiting:  # a data source may block for long: stop waiting (no step is under way)
      raise _Interrupted(received[-1])

  for sig in (signal.SIGINT, signal.SIGTERM):
    previous[sig] = signal.signal(sig, handler)
  try:
    yield received
  finally:
    for sig, old in previous.items():
      signal.signal(sig, old)


def _in_memory(data: Dataset) -> bool:
  """Whether `data`'s batches are slices of arrays gathered in the reading thread (no reader threads, no augment)."""
  return (isinstance(data, ArrayDataset) and type(data).epoch is BatchPipeline.epoch and data.threads == 0
          and data.workers == 0 and data.augment is None)


def _should_validate(epoch: int, validation_freq: int | Sequence[int]) -> bool:
  """Keras's rule: every `validation_freq`-th epoch, or the (1-based) epochs listed."""
  if is_int(validation_freq):
    return (epoch + 1) % validation_freq == 0
  return epoch + 1 in validation_freq


def check_validation_freq(validation_freq: Any) -> Any:
  if isinstance(validation_freq, bool) or not (
      (is_int(validation_freq) and validation_freq >= 1)
      or (isinstance(validation_freq, (list, tuple)) and all(is_int(e) for e in validation_freq))):
    raise ValueError(f"validation_freq={validation_freq!r} is not allowed; expected a positive integer or a list "
                     "of epochs (counted from 1).")
  return validation_freq


def execution_groups(batches: Iterable[Any], size: int) -> Iterator[list[Any]]:
  """Consecutive lists of `size` batches, the last one shorter where the batches run out (Keras's
  `steps_per_execution`: one group per compiled call and per call of the batch hooks)."""
  group = []
  for batch in batches:
    group.append(batch)
    if len(group) == size:
      yield group
      group = []
  if group:
    yield group


def _run_group(step: Step, state: TrainState, group: list[Any], size: int):
  """A whole group as one compiled call; a short last group one call per batch (no second compilation)."""
  if len(group) == size:
    return step.run(state, group)
  for batch in group:
    state, results = step.run(state, [batch])
  return state, results


def run_evaluate(model, data: Dataset, callbacks: CallbackList, *, steps: int | None = None, mesh=None,
                 signals: _Signals | None = None, steps_per_execution: int = 1) -> dict[str, float]:
  """One pass of `model.eval_step` over `data` with Keras's test hooks; returns the logs (sorted floats).

  Inside `fit`, a signal (in `signals`) ends the pass with `_Interrupted`, also while it waits for data. The test
  batch hooks are called once per `steps_per_execution` batches, as Keras calls them.
  """
  eval_step = model.eval_step
  count = len(data) if steps is None else min(steps, len(data))
  callbacks.on_test_begin()  # before the state is read: a callback may set the weights to test (SwapEMAWeights)
  eval_state, results = eval_step.reset(model.state), {}
  begin, end = callbacks.listens("on_test_batch_begin"), callbacks.listens("on_test_batch_end")
  source = _Batches(data, 0, count)
  batches = prefetch(source.stream, mesh=mesh)
  try:
    index = 0
    for group in execution_groups(batches if signals is None else _interruptible(batches, signals),
                                  steps_per_execution):
      if begin:
        callbacks.on_test_batch_begin(index)
      eval_state, results = eval_step.run(eval_state, group)
      if end:
        callbacks.on_test_batch_end(index + steps_per_execution - 1, BatchLogs(results))
      index += len(group)
      if signals:
        raise _Interrupted(signals[0])
  finally:
    batches.close()
    source.close()
  logs = pythonify(results)
  callbacks.on_test_end(logs)
  return logs


def evaluate(state: TrainState, eval_step: Step, data: Dataset, mesh=None) -> dict[str, float]:
  """Runs `eval_step` over one pass of `data`; returns the final metric values."""
  from jaxcomponents.training.model import Model  # pylint: disable=import-outside-toplevel

  return run_evaluate(Model.from_state(state, eval_step=eval_step), data, CallbackList(), mesh=mesh)


def fit(
    state: TrainState,
    train_step: Step,
    train_data: Dataset,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    initial_epoch: int = 0,
    eval_step: Step | None = None,
    validation_data: Dataset | None = None,
    validation_split: float | None = None,
    class_weight: Mapping[int, float] | None = None,
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | os.PathLike | None = None,
    keep_checkpoints: int = 3,
    best_metric: str | None = None,
    best_mode: str = "min",
    resume: bool = False,
    overwrite: bool = False,
    log_dir: str | os.PathLike | None = None,
    mesh=None,
    verbose: str | int = "auto",
    log_every: int = 10,
    progress: bool | None = None,
    steps_per_execution: int = 1,
) -> tuple[TrainState, History]:
  """Trains `state` for `epochs - initial_epoch` epochs (or `steps` steps); returns the new state and the history.

  The functional twin of `Model.fit`, on the same loop. As Keras's `fit`, each
  call trains from the state it is given: calling it again on the returned
  state trains further. Each epoch ends with validation (`val_` logs),
  callbacks (Keras's hooks; `self.model.state` is the live state) and a
  checkpoint. With `resume=True`, training continues from the newest intact
  checkpoint in `checkpoint_dir` to the interrupted run's end, at the same
  batch of the same epoch, so k steps, a restart and n - k more steps give the
  parameters of n uninterrupted steps. SIGINT/SIGTERM save a checkpoint,
  wait until it is written, and return (`history.stopped_by` names the
  signal): after the step under way, or at once while waiting for data (also
  during validation). A non-finite loss raises `NonFiniteLossError` naming
  the step, and saves nothing.

  Nothing is lost to an error: everything that can be checked is checked
  before the first step (arguments, monitored log names, the checkpoint
  directory), and an exception raised while training (a corrupt image, a
  full disk) carries the latest good state as its `.state` (the state passed
  in was donated to the first step), with a note naming its step; the
  checkpoints on disk stay intact.

  Args:
    state: from `TrainState.create`.
    train_step: from `make_train_step`.
    train_data: a `Dataset` (`len()` batches a pass, `.epoch(e)` yielding dict batches), e.g. an
      `ArrayDataset`; `(x, y)` arrays are read as `ArrayDataset(x, y, batch_size=32)`.
    epochs: train until this epoch (or give `steps`).
    steps: number of optimizer steps to take.
    initial_epoch: the epoch this call starts at, as in Keras: `epochs - initial_epoch` epochs are trained.
    eval_step, validation_data: evaluated after each epoch.
    validation_split: as Keras's: the last fraction of an `ArrayDataset`'s examples (before shuffling) is
      held out and evaluated after each epoch (with `eval_step`, by default the training loss and metrics).
    class_weight: as Keras's: `{class: weight}` for classes 0 ... K-1, weighing each training example's
      loss by its class (integer labels, or one-hot ones by their argmax).
    callbacks: `jaxcomponents.callbacks.Callback`s (Keras's hooks).
    checkpoint_dir: where orbax checkpoints go (keep the last `keep_checkpoints`,
      and the best by `best_metric`). A directory holding another run's
      checkpoints is an error unless `resume=True` or `overwrite=True`
      (training further the state its latest checkpoint holds is fine). The
      run holds the directory's lock until it returns: a second run into it
      raises `FolderInUseError` before its first step.
    resume: continue from the newest intact checkpoint in `checkpoint_dir`.
    overwrite: delete the checkpoints already in `checkpoint_dir` and start afresh.
    log_dir: writes `history.csv`, TensorBoard events and `learning_curves.png` there.
    mesh: a `data_mesh()`: the state is replicated and each batch sharded across it.
      When several processes run (`initialize_distributed`), the default is
      `data_mesh()` over every device of every process; each process feeds its
      part of each global batch (jaxcomponents' datasets do this by themselves).
    verbose: as Keras's: 1 shows a progress bar, then each epoch's line; 2 prints one line per epoch (for log
      files); 0 prints nothing; "auto" (default) is 1 on a terminal and 2 otherwise.
    log_every: steps between the progress bar's metric updates (each one waits for the device).
    progress: deprecated; `progress=False` is `verbose=0`, `progress=True` is `verbose="auto"`.
    steps_per_execution: as Keras's `compile` argument: this many batches of one shape train as one compiled
      call (a scan over them, the same updates as one call each), and the batch hooks are called once for them
      (`on_train_batch_begin` with the first batch's index, `on_train_batch_end` with the last one's). On the
      CPU, where XLA allocates each call's temporary buffers afresh, this saves the allocations of all but one
      of the steps (`benchmarks/fast_cpu.md`).

  Example (needs a model and data)::

    state, history = fit(state, train_step, data, epochs=5, checkpoint_dir="run/ckpt")
    state, history = fit(state, train_step, data, epochs=8, initial_epoch=5)  # three more epochs
  """
  from jaxcomponents.training.model import Model  # pylint: disable=import-outside-toplevel

  if progress is not None:
    deprecation.warn("fit(progress=...) is deprecated: use verbose=0 (silent), 1 (a progress bar) or 2 (one line "
                     "per epoch).")
    verbose = "auto" if progress else 0
  train_data = as_dataset(train_data, "train_data")
  if validation_split is not None:
    if validation_data is not None:
      raise ValueError("validation_split and validation_data are both given; expected at most one of them.")
    if not isinstance(train_data, ArrayDataset):
      raise ValueError(f"validation_split needs train_data to be an ArrayDataset (arrays to take the last part of), "
                       f"not {type(train_data).__name__}; pass validation_data instead.")
    train_data, validation_data = train_data.split(validation_split)
    eval_step = eval_step or make_eval_step(train_step.loss, train_step.metrics, weighted_metrics=train_step.weighted)
  if validation_data is not None:
    validation_data = as_dataset(validation_data, "validation_data")
  if (eval_step is None) != (validation_data is None):
    raise ValueError("eval_step and validation_data go together: give both or neither.")
  model = Model.from_state(state, train_step=train_step, eval_step=eval_step)
  history = run_fit(model, train_data, epochs=epochs, steps=steps, initial_epoch=initial_epoch,
                    validation_data=validation_data, class_weight=class_weight, callbacks=callbacks,
                    checkpoint_dir=checkpoint_dir, keep_checkpoints=keep_checkpoints, best_metric=best_metric,
                    best_mode=best_mode, resume=resume, overwrite=overwrite, log_dir=log_dir, mesh=mesh,
                    verbose=verbose, log_every=log_every, steps_per_execution=steps_per_execution)
  return model.state, history


def as_dataset(data: Any, name: str, batch_size: int = 32) -> Dataset:
  """`data` if it is a dataset; `(x, y)` or `(x, y, sample_weight)` arrays as an `ArrayDataset` (Keras's batch 32)."""
  if is_dataset(data):
    return data
  if isinstance(data, tuple) and len(data) in (2, 3) and all(
      hasattr(a, "shape") or isinstance(a, (dict, list, tuple)) for a in data if a is not None):
    return ArrayDataset(data[0], data[1], batch_size=batch_size, shuffle=False,
                        sample_weight=data[2] if len(data) == 3 else None)
  raise TypeError(f"{name}={type(data).__name__} is not something fit can read; expected a dataset (len(data) and "
                  "data.epoch(index), e.g. jaxcomponents.data.ArrayDataset), or a tuple (x, y) or (x, y, "
                  "sample_weight) of arrays.")


def run_fit(
    model,
    train_data: Dataset,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    initial_epoch: int = 0,
    steps_per_epoch: int | None = None,
    validation_data: Dataset | None = None,
    validation_steps: int | None = None,
    validation_freq: int | Sequence[int] = 1,
    class_weight: Mapping[int, float] | None = None,
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | os.PathLike | None = None,
    keep_checkpoints: int = 3,
    best_metric: str | None = None,
    best_mode: str = "min",
    resume: bool = False,
    overwrite: bool = False,
    log_dir: str | os.PathLike | None = None,
    mesh=None,
    verbose: str | int = "auto",
    log_every: int = 10,
    data_from_run_start: bool = False,
    told_steps: int | None = None,
    steps_per_execution: int = 1,
) -> History:
  """The training loop behind `fit` and `Model.fit`: trains `model.state` with `model.train_step`.

  The data is read from the state's step on (`fit`: a returned state trained further sees the batches one longer
  run would), or with `data_from_run_start` from its first batch at the start of each run, as Keras's `fit`
  reads it (`Model.fit`); a resumed run continues where it stopped either way. `told_steps` is the epoch length
  callbacks are told (`params["steps"]`) where it differs from the steps each epoch runs: Keras tells the
  `steps_per_epoch` given even where the data ends first. `steps_per_execution` batches run as one compiled call
  (`Step.run`), and the batch hooks are called once for them, as Keras calls them.
  """
  check_choice("verbose", verbose, ("auto", 0, 1, 2))
  check_validation_freq(validation_freq)
  state, train_step, eval_step = model.state, model.train_step, model.eval_step
  if steps_per_epoch is None:
    steps_per_epoch = len(train_data)
  check_positive_int("steps_per_epoch", steps_per_epoch)
  check_positive_int("steps_per_execution", steps_per_execution)
  if (epochs is None) == (steps is None):
    raise ValueError(f"epochs={epochs!r}, steps={steps!r}: give exactly one of them.")
  if not is_int(initial_epoch) or initial_epoch < 0 or (epochs is not None and initial_epoch >= epochs):
    raise ValueError(f"initial_epoch={initial_epoch!r} is not allowed with epochs={epochs!r}; expected an integer "
                     "in [0, epochs).")
  run_steps = steps if steps is not None else (epochs - initial_epoch) * steps_per_epoch
  if not is_int(run_steps) or run_steps < 1:
    raise ValueError(f"epochs={epochs!r}, steps={steps!r} is not allowed; expected a positive integer.")
  if validation_data is not None and eval_step is None:
    raise ValueError("validation_data needs an eval_step (compile the model, or pass eval_step=).")
  weigh = _class_weigher(class_weight)
  check_labels_of = _batch_label_checker(model, train_step, train_data, "train_data")
  if resume and checkpoint_dir is None:
    raise ValueError("resume=True needs a checkpoint_dir to resume from.")
  if resume and overwrite:
    raise ValueError("resume=True and overwrite=True contradict each other: give one of them.")
  callbacks = [callbacks] if isinstance(callbacks, Callback) else list(callbacks or ())  # one, as Keras takes it
  for callback in callbacks:
    _check_protocol(callback)
  backup = next((c for c in callbacks if isinstance(c, BackupAndRestore)), None)
  backup_every = backup.save_freq if backup is not None and not isinstance(backup.save_freq, (str, bool)) else None
  if backup is not None:
    if checkpoint_dir is not None:
      raise ValueError("BackupAndRestore and checkpoint_dir are both given; expected one place for checkpoints.")
    checkpoint_dir, keep_checkpoints, overwrite = backup.backup_dir, 2 if backup.double_checkpoint else 1, False
    resume = True  # from the newest intact backup, if an interrupted run left one
  _check_monitors(callbacks, best_metric, _log_names(train_step, eval_step if validation_data is not None else None,
                                                     callbacks), train_step.streams())
  _check_class_labels(model, train_step, train_data, "train_data")
  if validation_data is not None:
    _check_class_labels(model, eval_step, validation_data, "validation_data")
  if log_dir is not None:
    os.makedirs(log_dir, exist_ok=True)
    callbacks += [CSVLogger(os.path.join(log_dir, "history.csv"), append=resume),
                  TensorBoard(os.path.join(log_dir, "tensorboard"), append=resume),
                  LearningCurves(os.path.join(log_dir, "learning_curves.png"))]
  checkpointer = (Checkpointer(checkpoint_dir, keep=keep_checkpoints, best_metric=best_metric, best_mode=best_mode)
                  if checkpoint_dir is not None else None)
  source, trained = None, False
  try:
    if checkpointer is not None:
      checkpointer.lock()  # one run writes into a checkpoint folder: taken before anything is written there
    if checkpointer is not None and checkpointer.all_steps() and not resume and not checkpointer.holds(state):
      if not overwrite:
        raise ValueError(f"checkpoint_dir={os.fspath(checkpoint_dir)!r} already holds the checkpoints of a run "
                         f"(steps {checkpointer.all_steps()}); pass resume=True to continue it, overwrite=True to "
                         "replace them, or another directory.")
      checkpointer.delete_all()
    if mesh is None and jax.process_count() > 1:
      mesh = data_mesh()
    if mesh is not None:
      state = replicate(state, mesh)
    run_start = int(jax.device_get(state.step))
    if resume and checkpointer.all_steps():
      state = checkpointer.restore(state)  # the newest intact checkpoint, into the state's shardings
      record = checkpointer.restored_dataset  # verified with it
      _check_same_dataset(record, train_data, checkpoint_dir, steps_per_epoch)
      run_start = record.get("run_start_step", 0)
      initial_epoch = record.get("initial_epoch", initial_epoch)
    # Epochs count from `initial_epoch`, as in Keras (`offset` turns a state step into its epoch).
    offset = initial_epoch * steps_per_epoch - run_start
    total = run_start + run_steps
    step = int(jax.device_get(state.step))
    last_epoch = math.ceil((total + offset) / steps_per_epoch)
    hooks = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0 and ProgbarLogger(log_every),
                         model=model, verbose=verbose, epochs=last_epoch, steps=told_steps or steps_per_epoch)
    history = hooks.history
    batch_begin, batch_end = hooks.listens("on_train_batch_begin"), hooks.listens("on_train_batch_end")
    model.state, model.stop_training = state, False

    def save(metrics=None):
      if checkpointer is not None:
        checkpointer.save(state, metrics, dataset={**_dataset_record(
            train_data, int(jax.device_get(state.step)), run_start, steps_per_epoch), "initial_epoch": initial_epoch})

    def check_finite(state):
      bad = int(jax.device_get(state.metrics["nonfinite_step"]))
      if bad >= 0:
        last = None
        if checkpointer is not None:
          checkpointer.wait()
          last = checkpointer.latest_intact_step(state)  # "good" only once verified
        message = f"the loss became NaN or infinite at step {bad + 1}; training stopped. "
        if checkpointer is None:
          message += "No checkpoint was written."
        elif last is None:
          message += f"{checkpointer.directory} holds no intact checkpoint."
        else:
          message += f"The last good checkpoint (step {last}, verified) is kept in {checkpointer.directory}."
        raise NonFiniteLossError(message)

    def stop_for_signal():
      for callback in hooks.callbacks:
        if isinstance(callback, ProgbarLogger):
          callback.on_train_end()
        if isinstance(callback, OrbaxCheckpoint):  # its writes finished (a failed one raised) before fit returns
          callback.wait_until_finished()
          callback._release()  # pylint: disable=protected-access
      save()
      if checkpointer is not None:
        checkpointer.wait()  # committed before fit returns (bounded by the checkpointer's save_timeout)
      history.stopped_by = signals[0]
      if verbose != 0:
        saved = f"; checkpoint step {step} is in {checkpointer.directory}" if checkpointer is not None else ""
        print(f"fit: stopped by {signals[0]} at step {step}{saved}.", file=sys.stderr, flush=True)

    ahead = 0 if _in_memory(train_data) else 2  # slicing arrays costs less than handing batches between threads
    hooks.on_train_begin()
    state, epoch_logs = model.state, {}
    position = run_start if data_from_run_start else 0  # the state step at which the data's first batch is read
    since_backup = 0
    source = _Batches(train_data, step - position, total - position)
    with _stop_on_signals() as signals:
      for epoch in range((step + offset) // steps_per_epoch, last_epoch):
        if signals:  # arrived during the last epoch's end (validation steps, callbacks, the save)
          stop_for_signal()
          return history
        model.state = train_step.reset(state)
        hooks.on_epoch_begin(epoch)
        state, results, pending = model.state, {}, None
        first = epoch * steps_per_epoch - offset  # the state's step when this epoch began
        batches = source.take(min(steps_per_epoch, total - first) - (step - first))
        try:
          for group in execution_groups(_interruptible(prefetch((weigh(check_labels_of(b)) for b in batches), ahead,
                                                                mesh=mesh), signals), steps_per_execution):
            index = step - first
            if batch_begin:
              model.state = state
              hooks.on_train_batch_begin(index)
              state = model.state
            state, results = _run_group(train_step, state, group, steps_per_execution)
            step, trained = step + len(group), True
            if batch_end:
              model.state = state
              hooks.on_train_batch_end(index + steps_per_execution - 1, BatchLogs(results))
              state = model.state
            if backup_every is not None:
              since_backup += len(group)
              if since_backup >= backup_every:
                since_backup = 0
                save()
            if signals or model.stop_training:
              break
            if step // log_every != (step - len(group)) // log_every:
              # The running loss of `log_every` steps ago, copied to the host meanwhile: read without waiting for
              # the device; only a non-finite one waits, to name the first bad step.
              if pending is not None and not np.isfinite(np.asarray(pending)).all():
                check_finite(state)
              pending = results.get("loss")
              if isinstance(pending, jax.Array):
                pending.copy_to_host_async()
        except _Interrupted:
          pass
        model.state = state
        if not model.stop_training:  # a callback that stopped training (TerminateOnNaN) has had its say
          check_finite(state)
        if signals:
          stop_for_signal()
          return history
        epoch_logs = dict(results)
        if validation_data is not None and _should_validate(epoch, validation_freq):
          try:
            val_logs = run_evaluate(model, validation_data, hooks, steps=validation_steps, mesh=mesh, signals=signals,
                                    steps_per_execution=steps_per_execution)
          except _Interrupted:  # the epoch's training is done, its validation is not: saved, it is not ended
            model.state = state
            stop_for_signal()
            return history
          epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
        epoch_logs = pythonify(epoch_logs)
        hooks.on_epoch_end(epoch, epoch_logs)
        state = model.state
        if backup is None or backup.save_freq == "epoch":
          save(history.last if best_metric is not None else None)
        if model.stop_training:
          history.stopped_by = "callback"
          break
    save(history.last if best_metric is not None and history.epoch else None)
    # Keras's `finalize_variable_values`: an optimizer with `use_ema` leaves the weights at their moving average.
    model.state = state.replace(params=optimizers.ema_params(state.opt_state, state.params))
    hooks.on_train_end(epoch_logs)
    state = model.state
    if checkpointer is not None:
      checkpointer.wait()  # a failed background write surfaces here, inside the error handling
      if backup is not None and backup.delete_checkpoint and not model.stop_training:
        checkpointer.delete_all()
  except BaseException as error:
    if trained and not isinstance(error, NonFiniteLossError):  # before the first step, the caller's state is intact
      _keep_state(error, state, checkpointer)
    if _alive(state):
      model.state = state  # the model holds the latest state it reached (a Keras model keeps its weights)
    raise
  finally:
    if source is not None:
      source.close()
    for callback in callbacks:  # when fit ends in an error, on_train_end has not given their folders back
      if isinstance(callback, OrbaxCheckpoint):
        with contextlib.suppress(Exception):
          callback.wait_until_finished()
        with contextlib.suppress(Exception):
          callback._release()  # pylint: disable=protected-access
    if checkpointer is not None:
      with contextlib.suppress(Exception):  # a failed write was raised above; never mask the error being raised
        checkpointer.wait()
      with contextlib.suppress(Exception):
        checkpointer.close()
  model.state = state
  return history
