"""Callbacks with Keras's hooks and arguments (`keras.callbacks`), for `Model.fit` and `fit`.

A callback sees the model it trains as `self.model` (a `jaxcomponents.Model`:
`.state`, `.stop_training`, `.optimizer.learning_rate`, `get_weights()`, ...)
and the run's `self.params` (`verbose`, `epochs`, `steps`). Hooks receive
Keras's logs: epoch logs are a dict of floats, sorted by name as Keras sorts
them; batch logs are the running results since the epoch began, read from the
device only when a callback looks at them, and only callbacks that override a
batch hook are called per batch at all.
"""

from __future__ import annotations

import collections.abc
import csv
import http.client
import json
import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxcomponents import extras, optimizers
from jaxcomponents.errors import check_choice, check_positive_int, check_rate, is_int, is_real


class Callback:
  """Keras's `Callback`: override the hooks you need; `self.model` is the model being trained.

  `self.model.stop_training = True` ends training after the current batch or
  epoch; `self.model.state` is the live `TrainState` (assign a new one to
  change it).

  Example:
    >>> class Count(Callback):
    ...   def on_epoch_end(self, epoch, logs=None):
    ...     print(f"epoch {epoch}: loss {logs['loss']:.2f}")
  """

  params: dict[str, Any] | None = None
  _model: Any = None
  # The library's own callbacks take a batch's logs as a lazy mapping (`BatchLogs`), read from the device only
  # when they look; every other callback gets a plain dict, as Keras hands it.
  _lazy_batch_logs: bool = False

  def __init__(self):
    self.params = None
    self._model = None

  def set_params(self, params: dict[str, Any]) -> None:
    self.params = params

  def set_model(self, model: Any) -> None:
    self._model = model

  @property
  def model(self) -> Any:
    return self._model

  def on_batch_begin(self, batch, logs=None):
    """A backwards-compatible alias of `on_train_batch_begin`."""

  def on_batch_end(self, batch, logs=None):
    """A backwards-compatible alias of `on_train_batch_end`."""

  def on_epoch_begin(self, epoch, logs=None):
    pass

  def on_epoch_end(self, epoch, logs=None):
    pass

  def on_train_batch_begin(self, batch, logs=None):
    self.on_batch_begin(batch, logs=logs)

  def on_train_batch_end(self, batch, logs=None):
    self.on_batch_end(batch, logs=logs)

  def on_test_batch_begin(self, batch, logs=None):
    pass

  def on_test_batch_end(self, batch, logs=None):
    pass

  def on_predict_batch_begin(self, batch, logs=None):
    pass

  def on_predict_batch_end(self, batch, logs=None):
    pass

  def on_train_begin(self, logs=None):
    pass

  def on_train_end(self, logs=None):
    pass

  def on_test_begin(self, logs=None):
    pass

  def on_test_end(self, logs=None):
    pass

  def on_predict_begin(self, logs=None):
    pass

  def on_predict_end(self, logs=None):
    pass


HOOKS = tuple(name for name in vars(Callback) if name.startswith("on_"))
_ALIASED = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}


def _overrides(callback: Callback, hook: str) -> bool:
  """Whether `callback` does anything in `hook` (its class overrides it, or an instance attribute replaces it)."""
  names = (hook, _ALIASED[hook]) if hook in _ALIASED else (hook,)
  return any(name in vars(callback) or getattr(type(callback), name, None) is not getattr(Callback, name)
             for name in names)


def _check_protocol(callback: Any) -> None:
  if not isinstance(callback, Callback):
    raise TypeError(f"callbacks holds {callback!r}; expected jaxcomponents.callbacks.Callback instances.")
  for legacy in ("next_epoch_state", "final_state"):
    if legacy in type(callback).__dict__:
      raise TypeError(
          f"{type(callback).__name__} overrides {legacy}(), a hook of jaxcomponents 0.1 that no longer exists; "
          "callbacks now follow Keras: change the model with `self.model.state = ...` in on_epoch_end or "
          "on_train_end.")
  for hook in ("on_epoch_end", "on_train_begin"):
    parameters = getattr(getattr(type(callback), hook), "__code__", None)
    if parameters is not None and "state" in parameters.co_varnames[:parameters.co_argcount]:
      raise TypeError(
          f"{type(callback).__name__}.{hook} takes `state`, as jaxcomponents 0.1's callbacks did; callbacks now "
          f"follow Keras: `def {hook}(self, {'epoch, ' if hook == 'on_epoch_end' else ''}logs=None)`, with the "
          "state as `self.model.state`.")


class BatchLogs(collections.abc.Mapping):
  """A batch's logs, read from the device at the first look (so an unread batch never waits for it).

  Keys are sorted as Keras sorts logs; values are Python floats.
  """

  def __init__(self, results: Mapping[str, Any]):
    self._results, self._values = results, None

  def _read(self) -> dict[str, float]:
    if self._values is None:
      self._values = {k: float(v) for k, v in sorted(jax.device_get(dict(self._results)).items())}
    return self._values

  def __getitem__(self, key):
    return self._read()[key]

  def __iter__(self):
    return iter(self._read())

  def __len__(self):
    return len(self._results)

  def __repr__(self):
    return repr(self._read())


def pythonify(logs: Mapping[str, Any] | None) -> dict[str, Any]:
  """Logs as Keras hands them to callbacks: sorted by name, numbers as Python floats."""
  result = {}
  for key, value in sorted((logs or {}).items()):
    try:
      result[key] = float(jax.device_get(value))
    except (TypeError, ValueError):
      result[key] = value
  return result


class CallbackList(Callback):
  """Calls each hook of many callbacks in order, as Keras's `CallbackList`.

  `History` (and a `ProgbarLogger` when `add_progbar`, or the one it is) are
  appended unless the list has one. A callback that does not override a batch hook is not called
  for it, so a run nobody watches per batch never waits for the device.
  """

  def __init__(self, callbacks: Iterable[Callback] | None = None, *, add_history: bool = False,
               add_progbar: bool | "ProgbarLogger" = False, model: Any = None, **params: Any):
    super().__init__()
    self.callbacks = [callbacks] if isinstance(callbacks, Callback) else list(callbacks or [])  # one, as Keras
    for callback in self.callbacks:
      _check_protocol(callback)
    self.history = next((c for c in self.callbacks if isinstance(c, History)), None)
    if self.history is None and add_history:
      self.history = History()
      self.callbacks.append(self.history)
    if add_progbar and not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
      self.callbacks.append(add_progbar if isinstance(add_progbar, ProgbarLogger) else ProgbarLogger())
    self._listeners = {hook: [c for c in self.callbacks if _overrides(c, hook)] for hook in HOOKS}
    self.set_model(model)
    self.set_params(params)

  def listens(self, hook: str) -> bool:
    """Whether some callback does anything in `hook`."""
    return bool(self._listeners[hook])

  def set_params(self, params):
    self.params = params
    if params:
      for callback in self.callbacks:
        callback.set_params(params)

  def set_model(self, model):
    if model is None:
      return
    super().set_model(model)
    if self.history is not None:
      model.history = self.history
    for callback in self.callbacks:
      callback.set_model(model)

  def _call(self, hook: str, *args, logs=None):
    for callback in self._listeners[hook]:
      getattr(callback, hook)(*args, logs)

  def on_epoch_begin(self, epoch, logs=None):
    self._call("on_epoch_begin", epoch, logs=pythonify(logs))

  def on_epoch_end(self, epoch, logs=None):
    self._call("on_epoch_end", epoch, logs=pythonify(logs))  # a copy: what callbacks add stays in this epoch's

  def on_train_batch_begin(self, batch, logs=None):
    self._call("on_train_batch_begin", batch, logs={} if logs is None else logs)

  def _call_batch_end(self, hook: str, batch: int, logs: Mapping[str, Any] | None):
    plain = None
    for callback in self._listeners[hook]:
      if not callback._lazy_batch_logs:
        plain = pythonify(logs) if plain is None else plain  # one dict for them all, as Keras shares it
      getattr(callback, hook)(batch, logs if callback._lazy_batch_logs else plain)

  def on_train_batch_end(self, batch, logs=None):
    self._call_batch_end("on_train_batch_end", batch, logs)

  def on_test_batch_begin(self, batch, logs=None):
    self._call("on_test_batch_begin", batch, logs={} if logs is None else logs)

  def on_test_batch_end(self, batch, logs=None):
    self._call_batch_end("on_test_batch_end", batch, logs)

  def on_predict_batch_begin(self, batch, logs=None):
    self._call("on_predict_batch_begin", batch, logs={} if logs is None else logs)

  def on_predict_batch_end(self, batch, logs=None):
    self._call("on_predict_batch_end", batch, logs=logs)

  def on_train_begin(self, logs=None):
    self._call("on_train_begin", logs=pythonify(logs))

  def on_train_end(self, logs=None):
    self._call("on_train_end", logs=pythonify(logs))

  def on_test_begin(self, logs=None):
    self._call("on_test_begin", logs=pythonify(logs))

  def on_test_end(self, logs=None):
    self._call("on_test_end", logs=pythonify(logs))

  def on_predict_begin(self, logs=None):
    self._call("on_predict_begin", logs=pythonify(logs))

  def on_predict_end(self, logs=None):
    self._call("on_predict_end", logs=pythonify(logs))


class History(Callback):
  """Every epoch's logs, as Keras's `History`: `history.history["val_loss"]` is a list.

  `fit` returns it; `.epoch` lists the epochs run (0-based), `.params` the
  run's settings, `.model` the model. `.stopped_by` says why a run ended
  early: `"SIGINT"`/`"SIGTERM"`, or `"callback"` when a callback set
  `model.stop_training`.
  """

  def __init__(self):
    super().__init__()
    self.history: dict[str, list[float]] = {}
    self.epoch: list[int] = []
    self.stopped_by: str | None = None

  def on_train_begin(self, logs=None):
    self.epoch = []

  def on_epoch_end(self, epoch, logs=None):
    self.append(epoch, logs or {})
    self.model.history = self

  def append(self, epoch: int, logs: Mapping[str, float]) -> None:
    self.epoch.append(epoch)
    for key, value in logs.items():
      self.history.setdefault(key, []).append(value)

  @property
  def epochs(self) -> list[int]:
    """The same list as `.epoch` (jaxcomponents 0.1's name)."""
    return self.epoch

  @property
  def last(self) -> dict[str, float]:
    return {k: v[-1] for k, v in self.history.items()}


def _format(value: float) -> str:
  """A log value as Keras's progress bar prints it."""
  return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def format_logs(logs: Mapping[str, Any]) -> str:
  """`" - name: value"` for each numeric log, as Keras's progress bar lists them.

  Example:
    >>> format_logs({"accuracy": 0.5, "loss": 0.00012})
    ' - accuracy: 0.5000 - loss: 1.2000e-04'
  """
  return "".join(f" - {k}: {_format(v)}" for k, v in logs.items() if isinstance(v, (int, float)))


class ProgbarLogger(Callback):
  """Prints progress as Keras's `ProgbarLogger`: `Epoch i/n`, a live bar (verbose 1), and each epoch's line.

  The epoch line reads `steps/steps - 3s - 12ms/step - accuracy: ... - loss: ...`:
  timing lives here, not in the logs. With verbose 2 only that line is printed
  (for log files). The bar reads the device every `log_every` steps only.

  Args:
    log_every: steps between updates of the bar's metrics.
  """

  _lazy_batch_logs = True

  def __init__(self, log_every: int = 10):
    super().__init__()
    check_positive_int("log_every", log_every)
    self.log_every, self.verbose, self.epochs, self.target = log_every, 1, 1, None
    self._in_fit, self._bar, self._start, self._seen = False, None, 0.0, 0

  def set_params(self, params):
    super().set_params(params)
    verbose = params.get("verbose", 1)
    self.verbose = (1 if sys.stdout.isatty() else 2) if verbose == "auto" else verbose
    self.epochs, self.target = params.get("epochs", 1), params.get("steps")

  def _open(self) -> None:
    self._close()
    self._start, self._seen = time.perf_counter(), 0
    if self.verbose == 1:
      self._bar = tqdm(total=self.target, dynamic_ncols=True, leave=False,
                       bar_format="{n_fmt}/{total_fmt} {bar} {elapsed}{postfix}")

  def _close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None

  def _update(self, batch: int, logs) -> None:
    steps = batch + 1 - self._seen
    self._seen = batch + 1
    if self._bar is not None:
      self._bar.update(steps)
      crossed = self._seen // self.log_every != (self._seen - steps) // self.log_every  # steps may come N at a time
      if logs and (crossed or (self.target is not None and self._seen >= self.target)):
        self._bar.set_postfix_str(format_logs(logs).lstrip(" -"), refresh=False)

  def _finish(self, logs) -> None:
    self._close()
    if not self.verbose:
      return
    seconds = time.perf_counter() - self._start
    steps = self.target or self._seen
    per_step = seconds / max(self._seen, 1)
    rate = f"{per_step * 1e3:.0f}ms/step" if per_step >= 1e-3 else f"{per_step * 1e6:.0f}us/step"
    print(f"{steps}/{steps} - {seconds:.0f}s - {rate}{format_logs(logs or {})}", flush=True)

  def on_train_begin(self, logs=None):
    self._in_fit = True

  def on_epoch_begin(self, epoch, logs=None):
    if self.verbose and self.epochs > 1:
      print(f"Epoch {epoch + 1}/{self.epochs}", flush=True)
    self._open()

  def on_train_batch_end(self, batch, logs=None):
    self._update(batch, logs)

  def on_epoch_end(self, epoch, logs=None):
    self._finish(logs)

  def on_train_end(self, logs=None):
    self._close()

  def on_test_begin(self, logs=None):
    if not self._in_fit:
      self._open()

  def on_test_batch_end(self, batch, logs=None):
    if not self._in_fit:
      self._update(batch, logs)

  def on_test_end(self, logs=None):
    if not self._in_fit:
      self._finish(logs)

  def on_predict_begin(self, logs=None):
    self._open()

  def on_predict_batch_end(self, batch, logs=None):
    self._update(batch, None)

  def on_predict_end(self, logs=None):
    self._finish(None)


# Words in a log's name that tell which way it improves (Keras's metrics carry `_direction` "up" or "down").
_DOWN = ("loss", "error", "crossentropy", "hinge", "divergence", "kld", "poisson", "log_cosh", "logcosh", "mse",
         "mae", "mape", "msle", "false_positives", "false_negatives")
_UP = ("acc", "auc", "precision", "recall", "iou", "io_u", "dice", "f1", "fbeta", "f_beta", "r2", "sensitivity",
       "specificity", "true_positives", "true_negatives", "cosine_similarity", "correlation", "ssim")


def _direction(name: str) -> str | None:
  """"min" or "max" for a log named `name` in "auto" mode, or None where the name tells neither."""
  name = name.removeprefix("val_")
  if any(word in name for word in _DOWN):
    return "min"
  if any(word in name for word in _UP):
    return "max"
  return None


class _Monitor(Callback):
  """A callback watching one log for improvement, as Keras's `MonitorCallback`.

  In "auto" mode the direction comes from the name, as Keras reads it from the
  metric's own direction: a loss or an error is minimised, an accuracy-like
  score (accuracy, AUC, precision, recall, IoU, Dice, F1, R2, ...)
  maximised. A name that tells neither takes the direction of the metric
  logged under it (a metric object given its own name, `AUC(name="roc")`),
  read when `fit` begins; where that tells neither, `fit` refuses to start
  (pass mode="min" or "max"), as Keras refuses. An improvement must beat the
  best value by more than `min_delta`.
  """

  def __init__(self, monitor: str, mode: str, min_delta: float, baseline: float | None = None):
    super().__init__()
    check_choice("mode", mode, ("auto", "min", "max"))
    if mode == "auto":
      mode = _direction(monitor) or "auto"
    self.monitor, self.mode, self.min_delta, self.baseline = monitor, mode, abs(min_delta), baseline
    self.best: float | None = None

  def resolve_mode(self, metrics: Mapping[str, Any]) -> None:
    """Settles "auto" mode from the metric logged under `monitor` (`metrics`: log name -> metric object).

    Raises:
      ValueError: neither the monitor's name nor its metric's tells which way it improves.
    """
    if self.mode == "auto":
      self.mode = _direction(getattr(metrics.get(self.monitor.removeprefix("val_")), "name", "")) or "auto"
    if self.mode == "auto":
      raise ValueError(f"{type(self).__name__}(monitor={self.monitor!r}, mode='auto') cannot tell whether "
                       f"{self.monitor!r} should be minimised or maximised; pass mode='min' or mode='max'.")

  def _value(self, logs: Mapping[str, float] | None) -> float | None:
    value = (logs or {}).get(self.monitor)
    if value is None:
      warnings.warn(f"{type(self).__name__} monitors `{self.monitor}`, which is not available. Available metrics "
                    f"are: {','.join(logs or {})}", stacklevel=3)
    return value

  def _improves(self, value: float, reference: float | None) -> bool:
    self.resolve_mode({})  # fit settles it before its first step; this for a callback driven otherwise
    if reference is None:
      return True
    if self.mode == "min":
      return value + self.min_delta < reference
    return value - self.min_delta > reference


class EarlyStopping(_Monitor):
  """Stops when `monitor` has not improved by `min_delta` for `patience` epochs, as Keras's `EarlyStopping`.

  With `restore_best_weights=True`, the model ends with the parameters and
  batch statistics of its best epoch (kept as a copy on the device), as Keras
  3 restores them at the end of training. `baseline` and `start_from_epoch`
  as in Keras.

  Example:
    >>> stop = EarlyStopping("val_accuracy", patience=2, restore_best_weights=True)
  """

  def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
               mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
               start_from_epoch: int = 0):
    check_positive_int("patience", patience, allow_zero=True)
    check_positive_int("start_from_epoch", start_from_epoch, allow_zero=True)
    super().__init__(monitor, mode, min_delta, baseline)
    self.patience, self.verbose, self.restore_best_weights = patience, verbose, restore_best_weights
    self.start_from_epoch = start_from_epoch
    self.wait, self.stopped_epoch, self.best_weights, self.best_epoch = 0, 0, None, 0

  @property
  def stopped(self) -> bool:
    return self.stopped_epoch > 0

  def on_train_begin(self, logs=None):
    self.wait, self.stopped_epoch, self.best, self.best_weights, self.best_epoch = 0, 0, None, None, 0

  def on_epoch_end(self, epoch, logs=None):
    value = self._value(logs)
    if value is None or epoch < self.start_from_epoch:
      return
    if self.restore_best_weights and self.best_weights is None:
      self._keep(epoch)
    self.wait += 1
    if self._improves(value, self.best):
      self.best, self.best_epoch = value, epoch
      if self.restore_best_weights:
        self._keep(epoch)
      if self.baseline is None or self._improves(value, self.baseline):
        self.wait = 0
      return
    if self.wait >= self.patience and epoch > 0:
      self.stopped_epoch = epoch
      self.model.stop_training = True

  def _keep(self, epoch: int) -> None:
    state = self.model.state  # a copy: the next step donates the state it is given
    self.best_weights = jax.tree.map(lambda a: a.copy(), (state.params, state.batch_stats))
    self.best_epoch = epoch

  def on_train_end(self, logs=None):
    if self.stopped_epoch > 0 and self.verbose > 0:
      print(f"Epoch {self.stopped_epoch + 1}: early stopping", flush=True)
    if self.restore_best_weights and self.best_weights is not None:
      if self.verbose > 0:
        print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.", flush=True)
      params, batch_stats = self.best_weights
      self.model.state = self.model.state.replace(params=params, batch_stats=batch_stats)


class ReduceLROnPlateau(_Monitor):
  """Multiplies the learning rate by `factor` when `monitor` stalls for `patience` epochs, as Keras's.

  After a reduction, `cooldown` epochs pass before stalls count again; the
  rate never goes below `min_lr`. Each epoch's logs get `learning_rate` (the
  rate the epoch trained with). The optimizer must hold a constant learning
  rate in its state, as `jaxcomponents.optimizers.get`'s do; the rate is saved
  in checkpoints with the optimizer state.

  Example:
    >>> reduce = ReduceLROnPlateau("val_loss", factor=0.5, patience=2, min_lr=1e-5)
  """

  def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
               mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
    check_rate("factor", factor)
    check_positive_int("patience", patience, allow_zero=True)
    check_positive_int("cooldown", cooldown, allow_zero=True)
    check_positive_int("verbose", verbose, allow_zero=True)  # Keras prints at any verbose above 0
    if not is_real(min_lr) or not 0.0 <= min_lr < math.inf:
      raise ValueError(f"min_lr={min_lr!r} is not allowed; expected a finite float >= 0.")
    super().__init__(monitor, mode, min_delta)
    self.factor, self.patience, self.verbose, self.cooldown, self.min_lr = factor, patience, verbose, cooldown, min_lr
    self.wait, self.cooldown_counter = 0, 0

  def on_train_begin(self, logs=None):
    optimizers.set_learning_rate(self.model.state.opt_state, lambda old: old)  # raises if the rate cannot be set
    self.best, self.wait, self.cooldown_counter = None, 0, 0

  def on_epoch_end(self, epoch, logs=None):
    optimizer = self.model.optimizer
    logs["learning_rate"] = optimizer.learning_rate
    value = self._value(logs)
    if value is None:
      return
    if self.cooldown_counter > 0:
      self.cooldown_counter -= 1
      self.wait = 0
    if self._improves(value, self.best):
      self.best, self.wait = value, 0
    elif self.cooldown_counter == 0:
      self.wait += 1
      old = optimizer.learning_rate
      if self.wait >= self.patience and old > float(np.float32(self.min_lr)):
        new = max(old * self.factor, self.min_lr)
        optimizer.learning_rate = new
        if self.verbose:
          print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.", flush=True)
        self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
  """Sets the learning rate at each epoch's start to `schedule(epoch, lr)`, as Keras's.

  `schedule(epoch)` (one argument) is accepted too. Each epoch's logs get
  `learning_rate`.

  Example:
    >>> halve = LearningRateScheduler(lambda epoch, lr: lr if epoch < 2 else lr / 2)
  """

  def __init__(self, schedule: Callable[..., float], verbose: int = 0):
    super().__init__()
    if not callable(schedule):
      raise ValueError(f"schedule={schedule!r} is not allowed; expected a function (epoch, lr) -> lr.")
    self.schedule, self.verbose = schedule, verbose

  def on_epoch_begin(self, epoch, logs=None):
    optimizer = self.model.optimizer
    try:
      rate = self.schedule(epoch, optimizer.learning_rate)
    except TypeError:  # Keras's older one-argument schedules
      rate = self.schedule(epoch)
    if not isinstance(rate, (float, np.float32, np.float64)):
      raise ValueError(f"The output of the `schedule` function should be a float. Got: {rate!r}")
    optimizer.learning_rate = float(rate)
    if self.verbose > 0:
      print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {rate}.", flush=True)

  def on_epoch_end(self, epoch, logs=None):
    logs["learning_rate"] = self.model.optimizer.learning_rate


class TerminateOnNaN(Callback):
  """Stops training when a batch's loss is NaN or infinite, as Keras's (or raises with `raise_error=True`).

  It reads every batch's loss from the device; `fit` itself also stops on a
  non-finite loss (`NonFiniteLossError`), checking every few steps at no cost.
  """

  def __init__(self, raise_error: bool = False):
    super().__init__()
    self.raise_error = raise_error

  def on_batch_end(self, batch, logs=None):
    loss = (logs or {}).get("loss")
    if loss is not None and not math.isfinite(loss):
      if self.raise_error:
        raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. Terminating training "
                           "immediately.")
      print(f"Batch {batch}: Invalid loss, terminating training", flush=True)
      self.model.stop_training = True


class SwapEMAWeights(Callback):
  """Keras's `SwapEMAWeights`: with an optimizer of `use_ema=True`, evaluation and prediction (in `fit` too) run
  on the weights' moving average, swapped back after; with `swap_on_epoch=True`, each epoch's end (and the
  callbacks after this one, such as `ModelCheckpoint`) sees the averaged weights too, and `fit` ends on them.

  Unlike Keras's, whose `on_predict_end` leaves the average in the model, prediction swaps back as evaluation
  does.

  Example:
    >>> from jaxcomponents import optimizers
    >>> swap = SwapEMAWeights(swap_on_epoch=True)  # with compile(optimizer=optimizers.get("adam", use_ema=True))
  """

  def __init__(self, swap_on_epoch: bool = False):
    super().__init__()
    if not isinstance(swap_on_epoch, bool):
      raise ValueError(f"swap_on_epoch={swap_on_epoch!r} is not allowed; expected True or False.")
    self.swap_on_epoch = swap_on_epoch
    self._ema_weights_in_model = False

  def _swap(self, into_model: bool) -> None:
    if self._ema_weights_in_model != into_model:
      state = self.model.state
      opt_state, params = optimizers.swap_ema(state.opt_state, state.params)
      self.model.state = state.replace(params=params, opt_state=opt_state)
      self._ema_weights_in_model = into_model

  def on_epoch_begin(self, epoch, logs=None):
    if self.swap_on_epoch:
      self._swap(False)

  def on_epoch_end(self, epoch, logs=None):
    if self.swap_on_epoch:
      self._swap(True)
      if epoch == self.params["epochs"] - 1:  # fit ends by setting the weights to the average: keep these
        state = self.model.state
        self.model.state = state.replace(opt_state=optimizers.set_ema(state.opt_state, state.params))

  def on_test_begin(self, logs=None):
    self._swap(True)

  def on_test_end(self, logs=None):
    self._swap(False)

  def on_predict_begin(self, logs=None):
    self._swap(True)

  def on_predict_end(self, logs=None):
    self._swap(False)


class RemoteMonitor(Callback):
  """Keras's `RemoteMonitor`: POSTs each epoch's logs (and `"epoch"`) to `root + path`, as the form field
  `field` holding JSON, or as a JSON body with `send_as_json=True`; a server that cannot be reached is warned
  about, as Keras does, and training goes on. Each post waits at most `timeout` seconds.

  Example:
    >>> monitor = RemoteMonitor(root="http://127.0.0.1:9000", send_as_json=True)
  """

  def __init__(self, root: str = "http://localhost:9000", path: str = "/publish/epoch/end/", field: str = "data",
               headers: Mapping[str, str] | None = None, send_as_json: bool = False, timeout: float = 10.0):
    super().__init__()
    if not isinstance(send_as_json, bool):
      raise ValueError(f"send_as_json={send_as_json!r} is not allowed; expected True or False.")
    if not is_real(timeout) or not timeout > 0:
      raise ValueError(f"timeout={timeout!r} is not allowed; expected a positive number of seconds.")
    self.root, self.path, self.field, self.headers = root, path, field, dict(headers or {})
    self.send_as_json, self.timeout = send_as_json, timeout

  def on_epoch_end(self, epoch, logs=None):
    send = {"epoch": epoch, **{k: v.item() if isinstance(v, (np.ndarray, np.generic)) else v
                               for k, v in (logs or {}).items()}}
    if self.send_as_json:
      body, kind = json.dumps(send).encode(), "application/json"
    else:
      body, kind = urllib.parse.urlencode({self.field: json.dumps(send)}).encode(), "application/x-www-form-urlencoded"
    request = urllib.request.Request(self.root + self.path, data=body, method="POST",
                                     headers={"Content-Type": kind, **self.headers})
    try:
      with urllib.request.urlopen(request, timeout=self.timeout):
        pass
    except urllib.error.HTTPError:  # reached, and it answered with an error status: Keras's post says nothing
      pass
    except (OSError, ValueError, http.client.HTTPException):  # unreachable, timed out, a bad URL or reply
      warnings.warn(f"Could not reach RemoteMonitor root server at {self.root}", stacklevel=2)


class LambdaCallback(Callback):
  """A callback from functions, as Keras's `LambdaCallback`.

  Example:
    >>> log = LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["loss"]))
  """

  def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
               on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
    super().__init__()
    unknown = sorted(set(kwargs) - set(HOOKS))
    if unknown:
      raise ValueError(f"{unknown[0]}=... is not a hook; expected some of {', '.join(HOOKS)}.")
    hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                 on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                 on_train_batch_end=on_train_batch_end, **kwargs)
    for name, fn in hooks.items():
      if fn is not None:
        setattr(self, name, fn)


class CSVLogger(Callback):
  """Writes one row per epoch to `filename` (`epoch`, then the logs sorted by name), as Keras's `CSVLogger`.

  A new run replaces the file unless `append=True` (what `fit` passes when it
  resumes); the header is written once.
  """

  def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False):
    super().__init__()
    self.filename, self.sep, self.append = os.fspath(filename), separator, append
    self._file, self._writer, self._keys = None, None, None

  def on_train_begin(self, logs=None):
    header = not (self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0)
    self._file = open(self.filename, "a" if self.append else "w", newline="")  # pylint: disable=consider-using-with
    self._writer, self._keys, self._header = None, None, header

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    if self._keys is None:
      self._keys = sorted(logs)
      if not any(k.startswith("val_") for k in self._keys):
        self._keys += [f"val_{k}" for k in self._keys]
      self._writer = csv.DictWriter(self._file, fieldnames=["epoch", *self._keys], delimiter=self.sep)
      if self._header:
        self._writer.writeheader()
    self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self._keys}})
    self._file.flush()

  def on_train_end(self, logs=None):
    if self._file is not None:
      self._file.close()
      self._file = None


class TensorBoard(Callback):
  """Writes TensorBoard summaries in Keras's layout (needs `tensorboardX`): `log_dir/train` and
  `log_dir/validation` runs, each epoch's logs as `epoch_<name>` (the validation logs without their `val_`,
  so TensorBoard overlays them with the training ones), and the learning rate as `epoch_learning_rate`.

  As Keras's: `update_freq` (an integer, or `"batch"` for 1) also writes `batch_<name>` every that many
  training batches; after each evaluation in `fit`, `evaluation_<name>_vs_iterations` at the optimizer
  step; `write_steps_per_second` adds `epoch_steps_per_second` and `batch_steps_per_second`;
  `histogram_freq` writes a histogram of every parameter (`<path>/histogram`) every that many epochs;
  `profile_batch` (a batch number, or a `(start, stop)` pair counted from 1 over the whole run) records
  those batches with `jax.profiler` into `log_dir/train`. A JAX program has no Keras graph to write:
  `write_graph` writes none. Weight images and embeddings are not written
  (`write_images=True` and `embeddings_freq` above 0 are refused).

  As `CSVLogger`, a new run replaces the event files an earlier run left in
  `log_dir` unless `append=True` (what `fit` passes when it resumes).

  Example:
    >>> board = TensorBoard("logs/run1", histogram_freq=1, update_freq="batch")  # writes from the first epoch on
    >>> board.update_freq
    1
  """

  _lazy_batch_logs = True

  def __init__(self, log_dir: str | os.PathLike = "logs", histogram_freq: int = 0, write_graph: bool = True,
               write_images: bool = False, write_steps_per_second: bool = False, update_freq: str | int = "epoch",
               profile_batch: int | tuple[int, int] = 0, embeddings_freq: int = 0, embeddings_metadata: Any = None,
               append: bool = False):
    super().__init__()
    if not is_int(histogram_freq) or histogram_freq < 0:
      raise ValueError(f"histogram_freq={histogram_freq!r} is not allowed; expected an integer >= 0.")
    for param, value in (("write_graph", write_graph), ("write_steps_per_second", write_steps_per_second),
                         ("append", append)):
      if not isinstance(value, bool):
        raise ValueError(f"{param}={value!r} is not allowed; expected True or False.")
    if write_images is not False:
      raise ValueError(f"write_images={write_images!r} is not supported; expected False (weight images are not "
                       "written).")
    if embeddings_freq != 0 or embeddings_metadata is not None:
      raise ValueError(f"embeddings_freq={embeddings_freq!r}, embeddings_metadata={embeddings_metadata!r} is not "
                       "supported; expected 0 and None (the embedding projector is not written).")
    if update_freq == "batch":
      update_freq = 1
    if update_freq != "epoch" and (not is_int(update_freq)
                                   or update_freq < 1):
      raise ValueError(f"update_freq={update_freq!r} is not allowed; expected 'epoch', 'batch' or a positive "
                       "number of batches.")
    profile = (profile_batch, profile_batch) if isinstance(profile_batch, int) else tuple(profile_batch)
    if (len(profile) != 2 or any(not is_int(b) or b < 0 for b in profile)
        or profile[0] > profile[1] or (profile[0] == 0) != (profile[1] == 0)):
      raise ValueError(f"profile_batch={profile_batch!r} is not allowed; expected 0 (none), a batch number or a "
                       "(start, stop) pair of them, start <= stop.")
    self.tensorboardx = extras.require("tensorboardX", "tensorboard", "the TensorBoard callback")
    self.log_dir, self.append = os.fspath(log_dir), append
    self.histogram_freq, self.write_graph, self.write_steps_per_second = histogram_freq, write_graph, \
        write_steps_per_second
    self.update_freq, self.profile_batch = update_freq, profile
    self.writers: dict[str, Any] = {}
    self._batch, self._profiling, self._batch_start, self._epoch_start, self._epoch_step = 0, False, 0.0, 0.0, 0
    if update_freq != "epoch" or write_steps_per_second or profile[0]:  # else nothing listens per batch
      self.on_train_batch_begin, self.on_train_batch_end = self._train_batch_begin, self._train_batch_end

  def _writer(self, run: str):
    if run not in self.writers:
      self.writers[run] = self.tensorboardx.SummaryWriter(os.path.join(self.log_dir, run))
    return self.writers[run]

  def _step(self) -> int:
    """Keras's `optimizer.iterations`: the updates taken (fewer than the batches under gradient accumulation)."""
    state = getattr(self.model, "state", None)
    return self._batch if state is None else state.iterations

  def on_train_begin(self, logs=None):
    if not self.append:
      for run in ("train", "validation"):
        folder = os.path.join(self.log_dir, run)
        for name in os.listdir(folder) if os.path.isdir(folder) else ():
          if name.startswith("events.out.tfevents."):
            os.remove(os.path.join(folder, name))
    self._batch = 0

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch_start, self._epoch_step = time.perf_counter(), self._step()

  def _train_batch_begin(self, batch, logs=None):
    self._batch += 1
    self._batch_start = time.perf_counter()
    if self.profile_batch[0] and self._batch == self.profile_batch[0]:
      jax.profiler.start_trace(os.path.join(self.log_dir, "train"))
      self._profiling = True

  def _train_batch_end(self, batch, logs=None):
    writer = self._writer("train")
    if self.write_steps_per_second:
      writer.add_scalar("batch_steps_per_second", 1.0 / max(time.perf_counter() - self._batch_start, 1e-9),
                        self._batch)
    if self.update_freq != "epoch" and self._batch % self.update_freq == 0:
      for name, value in (logs or {}).items():
        writer.add_scalar(f"batch_{name}", value, self._batch)
    if self._profiling and self._batch >= self.profile_batch[1]:
      self._stop_profiling()

  def _stop_profiling(self):
    if self._profiling:
      jax.profiler.stop_trace()
      self._profiling = False

  def on_test_end(self, logs=None):
    if getattr(self.model, "state", None) is not None and logs:
      step = self._step()
      for name, value in logs.items():
        self._writer("validation").add_scalar(f"evaluation_{name}_vs_iterations", value, step)

  def on_epoch_end(self, epoch, logs=None):
    logs = dict(logs or {})
    train = {k: v for k, v in logs.items() if not k.startswith("val_")}
    if "learning_rate" not in train:
      try:
        train["learning_rate"] = float(self.model.optimizer.learning_rate)
      except (AttributeError, ValueError, RuntimeError):  # no optimizer, or one whose state holds no rate
        pass
    if self.write_steps_per_second:
      train["steps_per_second"] = (self._step() - self._epoch_step) / max(time.perf_counter() - self._epoch_start,
                                                                          1e-9)
    for run, values in (("train", train), ("validation", {k[4:]: v for k, v in logs.items() if k.startswith("val_")})):
      for name, value in values.items():
        self._writer(run).add_scalar(f"epoch_{name}", value, epoch)
    if self.histogram_freq and epoch % self.histogram_freq == 0:
      params = getattr(getattr(self.model, "state", None), "params", None)
      for path, value in jax.tree_util.tree_leaves_with_path(params or {}):
        tag = "/".join(str(getattr(key, "key", getattr(key, "idx", key))) for key in path)
        self._writer("train").add_histogram(f"{tag}/histogram", np.asarray(jax.device_get(value)), epoch)
    for writer in self.writers.values():
      writer.flush()

  def on_train_end(self, logs=None):
    self._stop_profiling()
    for writer in self.writers.values():
      writer.close()
    self.writers = {}


class LearningCurves(Callback):
  """Plots every metric (training and validation overlaid) per epoch into one PNG at the end of training."""

  def __init__(self, path: str | os.PathLike):
    super().__init__()
    self.path = os.fspath(path)

  def on_train_end(self, logs=None):
    from jaxcomponents.training.plots import plot_history  # pylint: disable=import-outside-toplevel

    plot_history(self.model.history, self.path)


class _Checkpointing(_Monitor):
  """What Keras's two checkpoint callbacks share: `save_best_only` by `monitor`, `save_freq`, `verbose` lines."""

  _lazy_batch_logs = True

  def __init__(self, monitor: str, verbose: int, save_best_only: bool, mode: str, save_freq: str | int,
               initial_value_threshold: float | None):
    super().__init__(monitor, mode, 0.0)
    if save_freq != "epoch" and (not is_int(save_freq) or save_freq < 1):
      raise ValueError(f"save_freq={save_freq!r} is not allowed; expected 'epoch' or a positive number of batches.")
    self.best, self.verbose, self.save_best_only, self.save_freq = (initial_value_threshold, verbose,
                                                                    save_best_only, save_freq)
    self._epoch, self._since_saving, self._last_batch, self._run_start = 0, 0, None, None

  @property
  def monitoring(self) -> bool:
    """Whether `monitor` decides anything (only with `save_best_only`)."""
    return self.save_best_only

  def on_train_begin(self, logs=None):
    state = getattr(self.model, "state", None)
    self._run_start = None if state is None else int(jax.device_get(state.step))
    self._last_batch = None

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch

  def _batch_due(self, batch: int) -> bool:
    """Whether a save is due after batch `batch` of the epoch; counts the batches since the last save, across epochs.

    As Keras counts them, from the batch indices; a run's first count is read from the state's step, as a
    resumed run begins inside an epoch.
    """
    if self.save_freq == "epoch":
      return False
    if self._last_batch is None and self._run_start is not None:
      added = int(jax.device_get(self.model.state.step)) - self._run_start
    elif self._last_batch is None or batch <= self._last_batch:  # a new epoch counts its batches from 0
      added = batch + 1
    else:
      added = batch - self._last_batch
    self._since_saving, self._last_batch = self._since_saving + added, batch
    if self._since_saving < self.save_freq:
      return False
    self._since_saving = 0
    return True

  def _decides_to_save(self, epoch: int, logs: Mapping[str, Any], saving: str, skipping: str | None) -> bool:
    """Whether to save now, printing what is done with `verbose`, as Keras's checkpoint callbacks print it.

    Without `save_best_only`, always; with it, when `monitor` improves on the best so far (then the new best).
    A missing `monitor` warns, then saves (`skipping` None, as `ModelCheckpoint`) or not (as `OrbaxCheckpoint`).
    """
    if not self.save_best_only:
      if self.verbose:
        print(f"\nEpoch {epoch + 1}: {saving}", flush=True)
      return True
    value = logs.get(self.monitor)
    if value is None:
      warnings.warn(f"Can save best model only with {self.monitor} available"
                    f"{'' if skipping is None else f', skipping save {skipping}'}.", stacklevel=3)
      return skipping is None
    best = "None" if self.best is None else f"{self.best:.5f}"
    if not self._improves(value, self.best):
      if self.verbose:
        print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}", flush=True)
      return False
    if self.verbose:
      print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {value:.5f}, {saving}", flush=True)
    self.best = value
    return True


class ModelCheckpoint(_Checkpointing):
  """Saves the model as training goes, as Keras's `ModelCheckpoint`.

  `filepath` may hold `{epoch}` (from 1) and any log name (`"ckpt-{epoch:02d}-{val_loss:.2f}.weights.h5"`).
  With `save_weights_only=True` it ends in `.weights.h5` (Keras's layout, through `Model.save_weights`) or
  `.npz`; otherwise it is a whole model through `Model.save`: `.keras` or `.h5` (Keras's legacy file; both for
  models converted by `from_keras`) or a folder name without a suffix (jaxcomponents' own format, any
  jaxcomponents module).
  `save_best_only` saves only when `monitor` improves; `save_freq` is `"epoch"` or a number of batches.

  Example:
    >>> best = ModelCheckpoint("best.weights.h5", monitor="val_loss", save_best_only=True, save_weights_only=True)
  """

  def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", verbose: int = 0,
               save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
               save_freq: str | int = "epoch", initial_value_threshold: float | None = None):
    super().__init__(monitor, verbose, save_best_only, mode, save_freq, initial_value_threshold)
    self.filepath, self.save_weights_only = os.fspath(filepath), save_weights_only
    endings = (".weights.h5", ".npz") if save_weights_only else (".keras", ".h5")
    folder = not save_weights_only and not os.path.splitext(self.filepath)[1]  # Model.save's own format
    if not (self.filepath.endswith(endings) or folder):
      raise ValueError(f"filepath={self.filepath!r} is not allowed with save_weights_only={save_weights_only}; "
                       f"expected a name ending in {' or '.join(endings)}"
                       f"{'' if save_weights_only else ', or a folder name without a suffix'}.")

  def on_train_begin(self, logs=None):
    super().on_train_begin(logs)
    check = getattr(self.model, "check_writable", None)
    if check is not None:  # before the first step, not after an epoch of work
      check(self.filepath, whole=not self.save_weights_only)

  def on_train_batch_end(self, batch, logs=None):
    if self._batch_due(batch):
      self._save(self._epoch, batch, dict(logs or {}))

  def on_epoch_end(self, epoch, logs=None):
    if self.save_freq == "epoch":
      self._save(epoch, None, logs or {})

  def _save(self, epoch: int, batch: int | None, logs: Mapping[str, Any]) -> None:
    try:
      extra = {} if batch is None or "batch" in logs else {"batch": batch + 1}
      path = self.filepath.format(epoch=epoch + 1, **extra, **logs)
    except KeyError as e:
      raise KeyError(f"ModelCheckpoint filepath {self.filepath!r} names {e}, which is not among the logs "
                     f"{sorted(logs)} (or epoch, batch).") from None
    if not self._decides_to_save(epoch, logs, f"saving model to {path}", None):
      return
    if os.path.dirname(path):
      os.makedirs(os.path.dirname(path), exist_ok=True)
    if self.save_weights_only:
      self.model.save_weights(path, overwrite=True)
    else:
      self.model.save(path, overwrite=True)
    if self.verbose:
      print(f"\nEpoch {epoch + 1}: finished saving model to {path}", flush=True)


class BackupAndRestore(Callback):
  """Backs training up in `backup_dir` so an interrupted run resumes where it stopped, as Keras's.

  `fit` writes an orbax checkpoint of the whole training state (optimizer and
  input position included) there after each epoch (`save_freq="epoch"`) or
  every `save_freq` steps (an integer; with `steps_per_execution`, after the
  group that reaches it), and when SIGINT/SIGTERM arrive (`save_freq=False`:
  only then); run the same script again and it resumes from the newest intact
  one, at the same batch, with the same result as an uninterrupted run. With
  `double_checkpoint=True` the backup before the newest is kept too, for when
  the newest cannot be read. With `delete_checkpoint=True` the backup is
  removed when training finishes.

  Example:
    >>> backup = BackupAndRestore("/tmp/backup", save_freq=100)
  """

  def __init__(self, backup_dir: str | os.PathLike, save_freq: str | int | bool = "epoch",
               double_checkpoint: bool = False, delete_checkpoint: bool = True):
    super().__init__()
    if not (save_freq == "epoch" and isinstance(save_freq, str) or save_freq is False
            or is_int(save_freq) and save_freq >= 1):
      raise ValueError(f"save_freq={save_freq!r} is not allowed; expected 'epoch', a positive number of batches, "
                       "or False (only when SIGINT or SIGTERM arrive).")
    if not backup_dir:
      raise ValueError(f"backup_dir={backup_dir!r} is not allowed; expected a folder path.")
    self.double_checkpoint = bool(double_checkpoint)
    self.backup_dir, self.save_freq, self.delete_checkpoint = os.fspath(backup_dir), save_freq, delete_checkpoint
