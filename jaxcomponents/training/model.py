"""`Model`: Keras's `Model` API (compile, fit, evaluate, predict, ...) over any Flax Linen module.

Functional underneath: `model.state` is the `TrainState` the jitted steps of
`make_train_step` and `make_eval_step` carry, and `fit` runs the same loop as
the functional `fit(state, step, data)`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import optax

from jaxcomponents import files
from jaxcomponents import losses as losses_lib
from jaxcomponents import optimizers
from jaxcomponents.data.dataset import ArrayDataset
from jaxcomponents.data.pipeline import array_leaves, map_arrays
from jaxcomponents.errors import check_choice, check_positive_int, is_int, is_real
from jaxcomponents.inference import apply_inference
from jaxcomponents.keras.graph import OPEN_SIZE, KerasGraph
from jaxcomponents.keras.write import keras_order
from jaxcomponents.ops import compiler
from jaxcomponents.training.callbacks import Callback, CallbackList, History, pythonify
from jaxcomponents.training.loop import (_class_weigher, batch_stream, check_validation_freq, execution_groups,
                                         is_dataset, run_evaluate, run_fit)
from jaxcomponents.training.freeze import freeze, frozen_mask
from jaxcomponents.training.keras_callbacks import from_keras_callback, is_keras_callback
from jaxcomponents.training.model_layer import ModelLayer
from jaxcomponents.training.predict import padded
from jaxcomponents.training.state import TrainState
from jaxcomponents.models.unet_backbone import loads_backbone_weights
from jaxcomponents.variable_trees import flatten_variables, unflatten_variables
from jaxcomponents.weights.imagenet import init_unet
from jaxcomponents.training.step import (OutputLoss, Step, SumOfLosses, compile_loss, make_eval_step,
                                         make_train_step, named_metric, reduces_as_keras, resolve_loss)


class _Optimizer:
  """`model.optimizer`: the compiled optax transformation, with Keras's settable `learning_rate`."""

  def __init__(self, model: "Model", tx: optax.GradientTransformation, name: str):
    self._model, self.tx, self.name = model, tx, name
    self._set_before_build: float | None = None

  def _opt_state(self) -> Any:
    """The optimizer state; before the model is built, that of no variables, which holds the rate."""
    state = self._model.state
    if state is not None:
      return state.opt_state
    opt_state = self.tx.init({})
    if self._set_before_build is None:
      return opt_state
    return optimizers.set_learning_rate(opt_state, lambda old: self._set_before_build)

  def started(self, state: TrainState) -> TrainState:
    """`state` (just created) with the learning rate set before the model was built, as Keras keeps it."""
    rate, self._set_before_build = self._set_before_build, None
    if rate is None:
      return state
    return state.replace(opt_state=optimizers.set_learning_rate(state.opt_state, lambda old: rate))

  @property
  def learning_rate(self) -> float:
    """The learning rate (the first one, when `freeze` partitions hold several).

    A constant rate is the one the next update uses, as in Keras (before the
    model is built too). With a schedule it is the rate of the last update
    taken (the schedule at the step before), where Keras evaluates the
    schedule at the next step.
    """
    logs = optimizers.learning_rate_logs(self._opt_state())
    if not logs:
      raise ValueError("the optimizer's learning rate cannot be read: its state holds none; build the optimizer "
                       "with jaxcomponents.optimizers.get(...) or optax.inject_hyperparams(...).")
    return next(iter(logs.values()))

  @property
  def iterations(self) -> int:
    """The number of updates taken so far (Keras's `optimizer.iterations`)."""
    state = self._model.state
    return 0 if state is None else state.iterations

  @learning_rate.setter
  def learning_rate(self, value: float) -> None:
    number = is_real(value) or (np.ndim(value) == 0 and np.issubdtype(np.asarray(value).dtype, np.number)
                                and not np.issubdtype(np.asarray(value).dtype, np.complexfloating))
    if not number or not 0.0 <= float(value) < float("inf"):
      raise ValueError(f"learning_rate={value!r} is not allowed; expected a finite float >= 0 (a schedule is "
                       "given to compile: optimizer=jaxcomponents.optimizers.get(name, learning_rate=schedule)).")
    value = float(value)
    state = self._model.state
    if state is None:
      optimizers.set_learning_rate(self.tx.init({}), lambda old: value)  # refuses a schedule, as when built
      self._set_before_build = value
    else:
      self._model.state = state.replace(
          opt_state=optimizers.set_learning_rate(state.opt_state, lambda old: float(value)))

  def __repr__(self):
    return f"<optimizer {self.name}>"


def _snake_case(name: str) -> str:
  """Keras's `to_snake_case`: "RMSprop" -> "rm_sprop", "AdamW" -> "adam_w"."""
  name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", re.sub(r"\W+", "", name))
  return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class _GrainBatches:
  """A Grain `MapDataset` or `IterDataset` of batches, read as a jaxcomponents dataset.

  Each element is a dict with `x` and `y` (and optionally `sample_weight`,
  `mask`), or a tuple `(x, y)` / `(x, y, sample_weight)` as Keras reads them.
  """

  def __init__(self, dataset: Any, steps: int | None):
    self.dataset = dataset
    try:
      self.length = len(dataset) if steps is None else steps
    except TypeError:
      raise ValueError("an IterDataset has no length: pass steps_per_epoch= (steps= for evaluate and predict), as "
                       "Keras asks for an infinite dataset.") from None

  def __len__(self) -> int:
    return self.length

  def epoch(self, index: int):
    for element in self.dataset:
      if isinstance(element, Mapping):
        yield dict(element)
      elif isinstance(element, tuple) and len(element) in (1, 2, 3):
        yield dict(zip(("x", "y", "sample_weight"), element))
      else:
        yield {"x": element}


def _grain_dataset(x: Any) -> bool:
  module = type(x).__module__
  return module.startswith("grain") and hasattr(x, "__iter__")


def _check_weights(class_weight, sample_weight) -> None:
  if class_weight is not None and sample_weight is not None:
    raise ValueError("class_weight and sample_weight are both given; as in Keras, give at most one of them.")


class NotCompiledError(ValueError, RuntimeError):
  """Training or evaluating a model before `compile()`: a `ValueError`, as Keras raises it (and a `RuntimeError`,
  as jaxcomponents raised it before)."""


@dataclasses.dataclass
class _Compiled:
  train_step: Step
  eval_step: Step
  metric_names: list[str]
  optimizer: _Optimizer | None
  steps_per_execution: int = 1
  module: Any = None  # the module compiled (its layers' trainable flags as they were then)


class Model:
  """Keras's `Model` API over a Flax Linen module called as `module(x, train=...)`.

  Args:
    module: any Linen module (a jaxcomponents model, a `from_keras` graph, your own).
    variables: its variables (`{"params": ..., "batch_stats": ...}`); without them,
      the first `fit` (or `build(sample)`) initialises them from `seed`.
    name: the model's name in summaries (default: a `from_keras` model's Keras name, else the module's name or
      class name).
    seed: seeds initialisation, dropout and the shuffling of arrays.
    mesh: a `data_mesh()`: the state is replicated and each batch sharded across it.

  Example:
    >>> import numpy as np
    >>> from jaxcomponents.layers import Dense
    >>> model = Model(Dense(3, activation="softmax"))
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> history = model.fit(np.ones((40, 4), np.float32), np.arange(40) % 3, epochs=2, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'loss']
    >>> model.predict(np.ones((5, 4), np.float32), verbose=0).shape
    (5, 3)
  """

  def __init__(self, module: nn.Module, variables: Mapping[str, Any] | None = None, *, name: str | None = None,
               seed: int = 0, mesh=None):
    if not isinstance(module, nn.Module):
      raise TypeError(f"module={type(module).__name__} is not allowed; expected a flax.linen.Module.")
    check_positive_int("seed", seed, allow_zero=True)
    self.module, self.seed, self.mesh = module, seed, mesh
    self._name = name
    # A copy: training donates the state's buffers, and the caller's variables stay theirs.
    self._variables = jax.tree.map(np.array, jax.device_get(dict(variables))) if variables is not None else None
    self._state: TrainState | None = None
    self._compiled: _Compiled | None = None
    self._sample = None
    self._weight_order: list[tuple[str, ...]] | None = None
    self._forward = None
    self._output_specs: dict[Any, Any] = {}
    self.stop_training = False
    self.history: History | None = None

  @classmethod
  def from_state(cls, state: TrainState, *, train_step: Step | None = None, eval_step: Step | None = None,
                 module: nn.Module | None = None) -> "Model":
    """A model around a functional `TrainState` and its steps (what the functional `fit` hands its callbacks)."""
    module = module or getattr(state.apply_fn, "__self__", None)
    model = cls.__new__(cls)
    model.module, model.seed, model.mesh = module, 0, None
    model._name = None
    model._variables, model._state, model._sample, model._forward = None, state, None, None
    model._weight_order, model._output_specs = None, {}
    model._compiled = _Compiled(train_step, eval_step, [], _Optimizer(model, state.tx, type(state.tx).__name__),
                                module=module)
    model.stop_training, model.history = False, None
    return model

  @property
  def name(self) -> str:
    """`name=` if given, else the Keras model's name (a `from_keras` model), the module's name or its class name."""
    if self._name:
      return self._name
    config = getattr(self.module, "config", None)
    if isinstance(config, str) and type(self.module).__name__ == "KerasGraph":
      return json.loads(config).get("name") or "KerasGraph"
    own = getattr(self.module, "name", None)
    return own if isinstance(own, str) else type(self.module).__name__

  # ------------------------------------------------------------------------------------------------ state

  @property
  def state(self) -> TrainState | None:
    """The `TrainState` (parameters, batch statistics, optimizer state, step, rng, metrics); None before compile."""
    return self._state

  @state.setter
  def state(self, state: TrainState) -> None:
    self._state = state

  @property
  def built(self) -> bool:
    return self._state is not None or self._variables is not None

  @property
  def variables(self) -> dict[str, Any]:
    """The module's variables, ready for `module.apply`."""
    if self._state is not None:
      return self._state.variables
    if self._variables is None:
      raise ValueError(f"{self.name} has no variables yet: call fit(...) or build(sample) first, or pass variables=.")
    return self._variables

  @property
  def optimizer(self) -> _Optimizer:
    """The compiled optimizer; `model.optimizer.learning_rate` reads and sets the rate, as in Keras."""
    return self._require_compiled("optimizer").optimizer

  @property
  def metrics_names(self) -> list[str]:
    """`["loss", *metrics]`, the order `evaluate` returns its values in."""
    return ["loss", *self._require_compiled("metrics_names").metric_names]

  def build(self, sample: Any) -> None:
    """Initialises the variables (unless given) from an input batch, and the optimizer state if compiled.

    A U-Net's backbone starts from its `weights` (`jaxcomponents.weights.init_unet`), as kuc's model is built
    with them.
    """
    self._sample = map_arrays(lambda a: np.asarray(a)[:1], sample)
    if self._variables is None and self._state is None:
      if loads_backbone_weights(self.module):
        variables = init_unet(self.module, self._sample, seed=jax.random.split(jax.random.key(self.seed))[0])
      else:
        variables = self.module.init(jax.random.split(jax.random.key(self.seed))[0], self._sample)
      self._variables = jax.device_get(variables)
    if self._compiled is not None and self._state is None:
      self._state = self._compiled.optimizer.started(
          TrainState.create(self.module, self._compiled.optimizer.tx, variables=self._variables, seed=self.seed))
      self._variables = None

  # ---------------------------------------------------------------------------------------------- compile

  def compile(self, optimizer: Any = "rmsprop", loss: Any = None, loss_weights: Any = None, metrics: Any = None,
              weighted_metrics: Any = None, run_eagerly: bool = False, steps_per_execution: int = 1,
              jit_compile: Any = "auto", auto_scale_loss: bool = True) -> None:
    """Configures training as Keras's `compile`.

    Args:
      optimizer: a Keras optimizer name (`"adam"`, built with Keras's defaults by
        `jaxcomponents.optimizers.get`), or an optax `GradientTransformation`.
      loss: a Keras loss name, a `jaxcomponents.losses.get(...)` loss, or a
        function `(y_true, y_pred) -> per-example losses`; for a model with
        several outputs, a list (by position) or a dict (by output name) of them.
        Each output's loss is logged as `<output>_loss`, their weighted sum as `loss`. A single output takes a
        one-entry list or dict too (its name: the module's `output_names`), logged as one loss.
      loss_weights: a float scaling the loss; with several outputs, a list or dict of them.
      metrics: Keras metric names, Keras metric objects (`keras.metrics.F1Score(average="macro")`, read from
        their config), jaxcomponents metrics, or a name -> metric mapping; they ignore sample and class
        weights. With several outputs, a list of lists or a dict of lists, logged as `<output>_<metric>`.
      weighted_metrics: metrics weighed by sample and class weights (the same forms).
      run_eagerly: run the steps without `jax.jit` (for debugging).
      steps_per_execution: as Keras's: this many batches run as one compiled call in `fit` (a scan over
        them: the same updates as one call each, with one call's overhead and, on the CPU, one set of
        temporary buffers), and `fit`, `evaluate` and `predict` call the batch hooks once for them, with the
        first batch's index at the beginning and the last one's at the end.
      jit_compile: "auto" or True compile the steps; False is `run_eagerly`.
      auto_scale_loss: accepted for Keras's signature; float32 training scales nothing.
    """
    if loss is None:
      raise ValueError("loss=None is not allowed; expected a Keras loss name, a jaxcomponents loss or a function "
                       "(y_true, y_pred) -> per-example losses.")
    check_positive_int("steps_per_execution", steps_per_execution)
    check_choice("jit_compile", jit_compile, ("auto", True, False))
    jit = not run_eagerly and jit_compile is not False
    if isinstance(optimizer, str):  # named as Keras names the optimizer it builds: its class name, snake-cased
      entry = optimizers.OPTIMIZERS.entry(optimizer, "optimizer")
      name, tx = _snake_case(entry.keras_class or entry.name), optimizers.get(entry.name)
    elif isinstance(optimizer, optax.GradientTransformation):
      name, tx = type(optimizer).__name__, optimizer
    elif optimizers.is_keras_object(optimizer):
      name, tx = optimizer.name, optimizers.get(optimizer)
    elif isinstance(optimizer, Mapping) and "class_name" in optimizer:  # a Keras config, as keras.optimizers.get
      entry = optimizers.OPTIMIZERS.entry(optimizer["class_name"], "optimizer")
      config = optimizer.get("config") or {}
      name = config.get("name") if isinstance(config, Mapping) and config.get("name") else _snake_case(
          entry.keras_class or entry.name)
      tx = optimizers.get(optimizer)
    else:
      raise ValueError(f"optimizer={optimizer!r} is not allowed; expected a Keras optimizer name (e.g. 'adam') or "
                       "object (keras.optimizers.Adam(1e-3)), or an optax.GradientTransformation (e.g. "
                       "jaxcomponents.optimizers.get('adam', learning_rate=1e-3)).")
    tx = self._keras_frozen(tx)
    if isinstance(loss, (Mapping, list, tuple)):
      loss_fn, output_losses, metrics, weighted_metrics = _outputs(
          loss, loss_weights, metrics, weighted_metrics, getattr(self.module, "output_names", None))
    else:
      loss_fn, output_losses = _per_example_loss(loss, None if loss_weights is None else "loss_weights"), {}
      if loss_weights is not None:
        if not is_real(loss_weights):
          raise ValueError(f"loss_weights={loss_weights!r} is not allowed with one loss; expected a float (give "
                           "loss as a list or dict to weigh several outputs).")
        unweighted, scale = loss_fn, float(loss_weights)
        loss_fn = lambda y_true, y_pred: scale * unweighted(y_true, y_pred)
    options = dict(weighted_metrics=weighted_metrics or (), output_losses=output_losses, jit=jit)
    train_step = make_train_step(loss_fn, metrics or (), **options)
    eval_step = make_eval_step(loss_fn, metrics or (), **options)
    metric_names = [*train_step.metrics, *train_step.weighted]
    # Keras lists a multi-output model's metrics by name (evaluate's results: its logs it cannot place, sorted).
    names = [*train_step.output_losses, *(sorted(metric_names) if train_step.output_losses else metric_names)]
    self._compiled = _Compiled(train_step, eval_step, names, _Optimizer(self, tx, name), steps_per_execution,
                               self.module)
    if self._state is not None:  # recompiling keeps the weights, with a fresh optimizer state
      variables = self._state.variables
      self._state = None
      self._variables = variables
    if self._variables is not None:
      self._state = TrainState.create(self.module, tx, variables=self._variables, seed=self.seed)
      self._variables = None

  def _keras_frozen(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """`tx` leaving alone the layers a converted Keras model marks `trainable=False`, as Keras's `fit` does."""
    variables = self._state.variables if self._state is not None else self._variables
    if not isinstance(self.module, KerasGraph) or variables is None:
      return tx
    patterns = self.module.frozen(variables.get("params", {}))
    return freeze(tx, patterns) if patterns else tx

  @property
  def compiled(self) -> bool:
    return self._compiled is not None

  @property
  def steps_per_execution(self) -> int:
    """Batches per compiled call and per call of the batch hooks (`compile`'s argument; 1 before it)."""
    return self._compiled.steps_per_execution if self._compiled is not None else 1

  @property
  def train_step(self) -> Step:
    return self._require_compiled("fit").train_step

  @property
  def eval_step(self) -> Step:
    return self._require_compiled("evaluate").eval_step

  def _require_compiled(self, what: str) -> _Compiled:
    if self._compiled is None:
      raise NotCompiledError(f"You must call `compile()` before using the model ({what}).")
    return self._compiled

  def _require_trainable_compiled(self, what: str) -> _Compiled:
    """The compiled steps, for training: refused where a layer's `trainable` changed since `compile` (Keras's
    `fit` fails then too: its optimizer was built for the old trainable weights)."""
    compiled = self._require_compiled(what)
    if compiled.module is not self.module:
      raise RuntimeError(f"a layer's trainable flag changed since compile(): call compile() again before {what}, "
                         "as in Keras.")
    return compiled

  # -------------------------------------------------------------------------------------------------- data

  def _dataset(self, what: str, x, y, sample_weight, batch_size, shuffle: bool, steps: int | None,
               pad: bool = True):
    """`x` (arrays or a dataset) as a dataset of batches; returns `(dataset, number of batches)`."""
    if x is None:
      raise ValueError(f"{what}: x=None is not allowed; expected arrays (or a tuple/list/dict of arrays), a "
                       "jaxcomponents dataset or a Grain dataset.")
    if is_dataset(x) or _grain_dataset(x):
      for key, value in (("y", y), ("sample_weight", sample_weight), ("batch_size", batch_size)):
        if value is not None:
          raise ValueError(f"{what}: {key}= is not allowed when x is a dataset ({type(x).__name__}); the dataset "
                           "supplies its own batches.")
      data = x if is_dataset(x) else _GrainBatches(x, steps)
      return data, len(data) if steps is None else steps
    if y is None and what != "predict":
      raise ValueError(f"{what}: y=None is not allowed with x as arrays; expected the targets of x (or a dataset "
                       "of (x, y) batches as x).")
    if batch_size is None:
      batch_size = 32
    check_positive_int("batch_size", batch_size)
    if not array_leaves(x) or not all(hasattr(a, "shape") or isinstance(a, (list, np.ndarray))
                                      for a in array_leaves(x)):
      raise TypeError(f"{what}: x={type(x).__name__} is not something the model can read; expected arrays (or a "
                      "tuple/list/dict of arrays), a jaxcomponents dataset (len(data) and data.epoch(index)) or a "
                      "Grain dataset.")
    pad = pad or jax.process_count() > 1
    data = ArrayDataset(x, y, batch_size, sample_weight=sample_weight, shuffle=bool(shuffle), seed=self.seed, pad=pad,
                        threads=0)  # in memory: gathered by the prefetch thread itself
    return data, len(data) if steps is None else steps

  def _first_inputs(self, data) -> Any:
    if isinstance(data, ArrayDataset):
      return data.x
    return next(iter(batch_stream(data, 0, 1)))["x"]

  def _ensure_built(self, data) -> None:
    if self._state is None:
      self.build(self._first_inputs(data))
    elif self._sample is None:
      self._sample = map_arrays(lambda a: np.asarray(a)[:1], self._first_inputs(data))

  # --------------------------------------------------------------------------------------------- training

  def fit(self, x=None, y=None, batch_size: int | None = None, epochs: int = 1, verbose: Any = "auto",
          callbacks: Sequence[Any] | None = None, validation_split: float = 0.0, validation_data: Any = None,
          shuffle: bool = True, class_weight: Mapping[int, float] | None = None, sample_weight=None,
          initial_epoch: int = 0, steps_per_epoch: int | None = None, validation_steps: int | None = None,
          validation_batch_size: int | None = None, validation_freq: Any = 1) -> History:
    """Trains as Keras's `fit`; returns the `History` (`.history`, `.epoch`, `.params`, `.model`).

    `x` may be arrays (or a tuple/list/dict of arrays for several inputs) with
    `y`, a jaxcomponents dataset, or a Grain dataset of `(x, y)` batches.
    Arrays are read in batches of `batch_size` (32 by default), the last one
    shorter as in Keras (one more compile; on several processes it is padded
    and masked instead), reshuffled each epoch when `shuffle`. `validation_split` holds out
    the last fraction of the arrays (before shuffling); `validation_data` is a
    tuple `(x, y)` / `(x, y, sample_weight)` or a dataset, evaluated every
    `validation_freq` epochs. Callbacks get Keras's hooks and logs.
    """
    self._require_trainable_compiled("fit")
    _check_weights(class_weight, sample_weight)
    check_validation_freq(validation_freq)
    callbacks = _read_keras_callbacks(callbacks)
    steps_per_epoch, validation_steps = _steps("steps_per_epoch", steps_per_epoch), _steps("validation_steps",
                                                                                             validation_steps)
    if not isinstance(shuffle, (bool, np.bool_)):
      raise ValueError(f"shuffle={shuffle!r} is not allowed; expected True or False (Keras's 'batch', shuffling "
                       "within each batch, is not supported; shuffle=False keeps the same batches).")
    if not is_int(epochs) or epochs < 0:
      raise ValueError(f"epochs={epochs!r} is not allowed; expected an integer >= 0.")
    epochs = int(epochs)
    initial_epoch = int(initial_epoch) if is_int(initial_epoch) else initial_epoch
    data, steps = self._dataset("fit", x, y, sample_weight, batch_size, shuffle, steps_per_epoch, pad=False)
    if validation_split and validation_data is None:
      if not isinstance(data, ArrayDataset):
        raise ValueError(f"validation_split is only supported for arrays, not {type(x).__name__}; pass "
                         "validation_data instead.")
      data, held_out = data.split(validation_split)
      validation_data = (held_out.x, held_out.y, held_out.sample_weight)  # batched below, as validation_data is
      steps = len(data) if steps_per_epoch is None else steps_per_epoch
    if isinstance(data, ArrayDataset) and steps_per_epoch is not None:
      steps = _keras_epoch_steps(steps_per_epoch, len(data))
    self._ensure_built(data)
    if validation_data is not None:
      validation_data = self._validation(validation_data, validation_batch_size or batch_size, validation_steps)
    if epochs <= initial_epoch:  # no epoch to run: Keras still brackets the run with on_train_begin/end
      hooks = CallbackList(callbacks, add_history=True, model=self, verbose=verbose, epochs=epochs, steps=steps)
      hooks.on_train_begin()
      hooks.on_train_end()
      self.history = hooks.history
      return self.history
    history = run_fit(self, data, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
                      validation_data=validation_data, validation_steps=validation_steps,
                      validation_freq=validation_freq, class_weight=class_weight, callbacks=callbacks,
                      mesh=self.mesh, verbose=verbose, data_from_run_start=True, told_steps=steps_per_epoch,
                      steps_per_execution=self.steps_per_execution)
    return history

  def _validation(self, validation_data, batch_size, steps):
    if is_dataset(validation_data) or _grain_dataset(validation_data):
      return self._dataset("validation_data", validation_data, None, None, None, False, steps)[0]
    if isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):  # a list too, as Keras
      vx, vy, *vw = validation_data
      return self._dataset("validation_data", vx, vy, vw[0] if vw else None, batch_size, False, None,
                           pad=not self._batch_pooled_loss(vx, vy))[0]
    raise ValueError(f"validation_data={type(validation_data).__name__} is not allowed; expected a tuple (x, y) or "
                     "(x, y, sample_weight) (or such a list), or a dataset.")

  def evaluate(self, x=None, y=None, batch_size: int | None = None, verbose: Any = "auto", sample_weight=None,
               steps: int | None = None, callbacks: Sequence[Any] | None = None, return_dict: bool = False):
    """The loss and metrics over `x`, as Keras's `evaluate`: a scalar, a list in `metrics_names` order, or a dict."""
    self._require_compiled("evaluate")
    check_choice("verbose", verbose, ("auto", 0, 1, 2))
    steps = _steps("steps", steps)
    data, count = self._dataset("evaluate", x, y, sample_weight, batch_size, False, steps)
    self._ensure_built(data)
    if not (is_dataset(x) or _grain_dataset(x)) and self._batch_pooled_loss(x, y):
      data, count = self._dataset("evaluate", x, y, sample_weight, batch_size, False, steps, pad=False)
    hooks = CallbackList(_read_keras_callbacks(callbacks), add_progbar=verbose != 0, model=self, verbose=verbose,
                         epochs=1, steps=count)
    logs = run_evaluate(self, data, hooks, steps=count, mesh=self.mesh, steps_per_execution=self.steps_per_execution)
    return logs if return_dict else self._in_order(logs)

  def _batch_pooled_loss(self, x, y) -> bool:
    """Whether a compiled loss reduces a whole batch to one value (kuc's scores with `per_example=False`): a
    padded last batch would count its padding rows there, so evaluation gives that batch at its own size, as
    Keras does (one more compilation)."""
    loss = self._compiled.eval_step.loss
    terms = [fn for _, fn in loss.terms] if isinstance(loss, SumOfLosses) else [loss]
    terms = [fn for fn in terms if not reduces_as_keras(fn)]
    if not terms or y is None or not self.built:
      return False
    head = lambda tree: map_arrays(lambda a: np.asarray(a)[:2], tree)
    try:
      y_pred = self.output_spec(head(x))
      return any(jax.tree.leaves(jax.eval_shape(fn, head(y), y_pred))[0].shape == () for fn in terms)
    except Exception:  # pylint: disable=broad-except  # the evaluation itself reports what does not fit
      return False

  def _in_order(self, logs: Mapping[str, float]):
    names = [n for n in self.metrics_names if n in logs]
    values = [logs[n] for n in names] + [logs[k] for k in sorted(logs) if k not in names]
    return values[0] if len(values) == 1 else values

  def predict(self, x, batch_size: int | None = None, verbose: Any = "auto", steps: int | None = None,
              callbacks: Sequence[Any] | None = None):
    """The model's outputs (inference mode) for every example of `x`, as NumPy arrays (Keras's `predict`).

    Batches have a fixed size (the last padded, its padding dropped), so the
    model compiles once.
    """
    check_choice("verbose", verbose, ("auto", 0, 1, 2))
    steps = _steps("steps", steps)
    if is_dataset(x) or _grain_dataset(x):
      data, count = self._dataset("predict", x, None, None, batch_size, False, steps)
      batches = ((batch["x"], batch.get("mask")) for batch in batch_stream(data, 0, count))
      self._ensure_built(data)
    else:
      if batch_size is None:
        batch_size = 32
      check_positive_int("batch_size", batch_size)
      leaves = array_leaves(x)
      if not leaves:
        raise ValueError("predict: x holds no arrays.")
      total = len(leaves[0])
      count = -(-total // batch_size) if steps is None else min(steps, -(-total // batch_size))
      if self._state is None and self._variables is None:
        self.build(x)
      batches = ((map_arrays(lambda a, s=s: padded(np.asarray(a[s:s + batch_size]), batch_size), x),
                  (np.arange(s, s + batch_size) < total).astype(np.float32))
                 for s in range(0, count * batch_size, batch_size))
    hooks = CallbackList(_read_keras_callbacks(callbacks), add_progbar=verbose != 0, model=self, verbose=verbose,
                         epochs=1, steps=count)
    hooks.on_predict_begin()  # before the weights are read: a callback may set them (SwapEMAWeights)
    forward, variables, outputs, index = self._forward_fn(), self.variables, [], 0
    for group in execution_groups(batches, self.steps_per_execution):
      hooks.on_predict_batch_begin(index)
      done = []
      for inputs, mask in group:
        out = jax.device_get(forward(variables, inputs))
        if mask is not None:
          keep = np.asarray(mask) > 0
          out = jax.tree.map(lambda a, keep=keep: a[keep], out)
        done.append(out)
      outputs += done
      out = done[0] if len(done) == 1 else jax.tree.map(lambda *parts: np.concatenate(parts), *done)
      hooks.on_predict_batch_end(index + self.steps_per_execution - 1, {"outputs": out})
      index += len(group)
    hooks.on_predict_end()
    if not outputs:
      raise ValueError("predict: x gave no batch.")
    return _as_keras_outputs(jax.tree.map(lambda *parts: np.concatenate(parts), *outputs))

  def output_spec(self, x) -> Any:
    """The outputs' shapes and dtypes (`jax.ShapeDtypeStruct`s) for inputs like `x`, traced once per input shape."""
    key = tuple((np.shape(a)[1:], str(np.asarray(a).dtype)) for a in array_leaves(x))
    if key not in self._output_specs:
      apply = self._state.apply_fn if self._state is not None else self.module.apply
      self._output_specs[key] = jax.eval_shape(lambda v, x: apply_inference(apply, v, x), self.variables, x)
    return self._output_specs[key]

  def _forward_fn(self) -> Callable[..., Any]:
    if self._forward is None:
      apply = self.module.apply
      self._forward = compiler.jit(lambda variables, x: apply_inference(apply, variables, x))
    return self._forward

  def __call__(self, x, training: bool = False):
    """The model's outputs for one batch (`training=True`: dropout and batch statistics as in training)."""
    if training:
      return self.module.apply(self.variables, x, train=True, mutable=["batch_stats"],
                               rngs={"dropout": jax.random.key(self.seed)})[0]
    return apply_inference(self.module.apply, self.variables, x)

  def _batch(self, x, y, sample_weight, class_weight) -> dict[str, Any]:
    if y is None:
      raise ValueError("y=None is not allowed; expected the targets of x.")
    _check_weights(class_weight, sample_weight)
    batch = {"x": map_arrays(np.asarray, x), "y": map_arrays(np.asarray, y)}
    if sample_weight is not None:
      batch["sample_weight"] = np.asarray(sample_weight, np.float32)
    if class_weight is not None:
      batch = _class_weigher(class_weight)(batch)
    if self._state is None:
      self.build(batch["x"])
    return batch

  def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict: bool = False):
    """One training step on one batch; returns its loss and metrics (as `evaluate` returns them)."""
    compiled = self._require_trainable_compiled("train_on_batch")
    batch = self._batch(x, y, sample_weight, class_weight)
    self._state, results = compiled.train_step(compiled.train_step.reset(self._state), batch)
    logs = pythonify(results)
    return logs if return_dict else self._in_order(logs)

  def test_on_batch(self, x, y=None, sample_weight=None, return_dict: bool = False):
    """The loss and metrics of one batch (inference mode)."""
    compiled = self._require_compiled("test_on_batch")
    batch = self._batch(x, y, sample_weight, None)
    _, results = compiled.eval_step(compiled.eval_step.reset(self._state), batch)
    logs = pythonify(results)
    return logs if return_dict else self._in_order(logs)

  def predict_on_batch(self, x):
    """The outputs for one batch, as NumPy arrays."""
    if self._state is None and self._variables is None:
      self.build(x)
    return _as_keras_outputs(jax.device_get(self._forward_fn()(self.variables, map_arrays(np.asarray, x))))

  # --------------------------------------------------------------------------------------------- weights

  def count_params(self) -> int:
    """Every variable's size, batch statistics included, as Keras counts them."""
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(self.variables)))

  def weight_keys(self) -> list[tuple[str, ...]]:
    """The variables' keys, `(collection, layer, ..., name)`, in `get_weights`'s order: Keras's weight order for
    a `from_keras` model (its layers in order, each layer's weights as Keras lists them), else
    `jax.tree.leaves`'s."""
    if self._weight_order is None:
      variables = self.variables
      if isinstance(self.module, KerasGraph):  # Keras lists its layers in its config's order, not in call order
        rank = {name: i for i, name in enumerate(self.module.layer_names())}
        self._weight_order = sorted(keras_order(self.module, variables, self.module.sample_inputs(OPEN_SIZE)),
                                    key=lambda key: rank.get(key[1], len(rank)))
      else:
        self._weight_order = list(flatten_variables(variables))
    return self._weight_order

  def trainable_flags(self) -> list[bool]:
    """Per variable, in `get_weights()`'s order, whether `fit` trains it: Keras trains the parameters outside the
    layers a Keras model marks `trainable=False` (what `compile` freezes), and never batch statistics."""
    params = self.variables.get("params", {})
    frozen = flatten_variables({"params": frozen_mask(
        params, self.module.frozen(params) if isinstance(self.module, KerasGraph) else [])})
    return [key[0] == "params" and not frozen[key] for key in self.weight_keys()]

  def _weights_where(self, trainable: bool) -> list[np.ndarray]:
    return [weight for flag, weight in zip(self.trainable_flags(), self.get_weights()) if flag == trainable]

  # ------------------------------------------------------------------------------------------------ layers

  @property
  def layers(self) -> list[ModelLayer]:
    """The model's layers, as Keras's `model.layers`: a `from_keras` model's Keras layers (a Functional's input
    layers too, as Keras lists them), else the module's top-level submodules that hold variables."""
    if isinstance(self.module, KerasGraph):
      names = self.module.layer_names()
    else:
      names = list(dict.fromkeys(key[1] for key in self.weight_keys() if len(key) > 2))
    return [ModelLayer(self, name) for name in names]

  def get_layer(self, name: str | None = None, index: int | None = None) -> ModelLayer:
    """The layer named `name`, or at `index` in `layers`, as Keras's `get_layer`.

    Example (needs a model)::

      model.get_layer("conv1").trainable = False  # then compile again, as in Keras
    """
    if index is not None and name is not None:
      raise ValueError(f"Provide only a layer name or a layer index. Received: index={index}, name={name}.")
    layers = self.layers
    if index is not None:
      if len(layers) <= index:
        raise ValueError(f"Was asked to retrieve layer at index {index} but model only has {len(layers)} layers.")
      return layers[index]
    if name is not None:
      for layer in layers:
        if layer.name == name:
          return layer
      raise ValueError(f"No such layer: {name}. Existing layers are: {[layer.name for layer in layers]}.")
    raise ValueError("Provide either a layer name or layer index at `get_layer`.")

  @property
  def trainable(self) -> bool:
    """Keras's `model.trainable`: setting it sets every layer's; compile again for `fit` to follow it."""
    return self.layer_trainable(None)

  @trainable.setter
  def trainable(self, value: bool) -> None:
    self.set_layer_trainable(None, value)

  def layer_trainable(self, name: str | None) -> bool:
    """Keras's `trainable` flag of the layer `name` (of the model when None); True for a module not from Keras."""
    return self.module.is_trainable(name) if isinstance(self.module, KerasGraph) else True

  def set_layer_trainable(self, name: str | None, value: bool) -> None:
    """Sets Keras's `trainable` flag of the layer `name` (of the model and every layer when None).

    As in Keras, `fit` follows it once the model is compiled again; until then `fit` refuses to run.
    """
    if not isinstance(value, bool):
      raise ValueError(f"trainable={value!r} is not allowed; expected True or False.")
    if not isinstance(self.module, KerasGraph):
      raise ValueError(f"setting trainable needs a model converted from Keras (from_keras, load_model); "
                       f"{type(self.module).__name__} has no Keras flags: freeze its parameters with "
                       "compile(optimizer=jaxcomponents.training.freeze(tx, patterns)).")
    module = self.module.with_trainable(value, name)
    if module.config != self.module.config:
      self.module = module

  @property
  def weights(self) -> list[np.ndarray]:
    """`get_weights()`: every variable, as NumPy arrays (Keras's `model.weights` holds its variables)."""
    return self.get_weights()

  @property
  def trainable_weights(self) -> list[np.ndarray]:
    """The weights `fit` trains, in `get_weights()`'s order (Keras's `model.trainable_weights`)."""
    return self._weights_where(True)

  @property
  def non_trainable_weights(self) -> list[np.ndarray]:
    """The others (batch statistics, frozen layers' parameters), in `get_weights()`'s order."""
    return self._weights_where(False)

  trainable_variables = trainable_weights  # Keras's other names for them (`variables` is the Flax tree here)
  non_trainable_variables = non_trainable_weights

  def get_weights(self) -> list[np.ndarray]:
    """Every variable as a NumPy array: for a `from_keras` model in Keras's order (`keras_model.get_weights()`'s),
    else in the order of `jax.tree.leaves(model.variables)`."""
    flat = flatten_variables(jax.device_get(self.variables))
    return [np.asarray(flat[key]) for key in self.weight_keys()]

  def set_weights(self, weights: Sequence[Any]) -> None:
    """Sets every variable from a list like `get_weights()`'s (same order and shapes)."""
    self.set_weights_at(self.weight_keys(), weights, "the model has", "variables")

  def set_weights_at(self, keys: Sequence[tuple[str, ...]], weights: Sequence[Any], owner: str = "the model has",
                     noun: str = "variables") -> None:
    """Sets the variables at `keys` (`weight_keys()`'s) from `weights`, one array of the same shape each; errors
    name `owner` and its `noun` (a layer's weights)."""
    flat = flatten_variables(self.variables)
    if len(weights) != len(keys):
      raise ValueError(f"set_weights got {len(weights)} arrays; {owner} {len(keys)} {noun}.")
    for i, (new, key) in enumerate(zip(weights, keys)):
      if np.shape(new) != np.shape(flat[key]):
        raise ValueError(f"set_weights: array {i} has shape {np.shape(new)}; the variable {'/'.join(key)} has "
                         f"shape {np.shape(flat[key])}.")
    self._set_variables(unflatten_variables({**flat, **{key: np.asarray(w, np.asarray(flat[key]).dtype)
                                                         for w, key in zip(weights, keys)}}))

  def _set_variables(self, variables: Mapping[str, Any]) -> None:
    if self._state is None:
      self._variables = dict(variables)
      return
    put = lambda new, old: jax.device_put(new, old.sharding) if isinstance(old, jax.Array) else new
    self._state = self._state.replace(params=jax.tree.map(put, variables["params"], self._state.params),
                                      batch_stats=jax.tree.map(put, variables.get("batch_stats", {}),
                                                               self._state.batch_stats))

  def save_weights(self, filepath: str | os.PathLike, overwrite: bool = True) -> None:
    """Writes the variables: `.npz` (portable), `.weights.h5` (Keras 3's layout, for a `from_keras` model;
    needs Keras) or `.h5` (Keras's legacy layout, which Keras loads into the twin architecture)."""
    from jaxcomponents.weights import save_keras_h5, save_npz  # pylint: disable=import-outside-toplevel

    path = os.fspath(filepath)
    if path.endswith(".npz"):
      save_npz(path, self.variables, overwrite=overwrite)
    elif path.endswith(".weights.h5"):
      twin = self._keras_twin(path)
      files.write_beside(path, twin.save_weights, overwrite=overwrite)
    elif path.endswith(".h5"):
      save_keras_h5(path, self.module, self.variables, self._require_sample("save_weights"), overwrite=overwrite)
    else:
      raise ValueError(f"filepath={path!r} is not allowed; expected a name ending in .npz, .weights.h5 or .h5.")

  def check_writable(self, filepath: str | os.PathLike, whole: bool = False) -> None:
    """Raises unless `save_weights` (or with `whole`, `save`) can write this model to `filepath` (its format, by
    suffix)."""
    path = os.fspath(filepath)
    keras_only = (".keras", ".weights.h5", *((".h5",) if whole else ()))
    if path.endswith(keras_only) and not (
        type(self.module).__name__ == "KerasGraph" and isinstance(getattr(self.module, "config", None), str)):
      what = next(ending for ending in keras_only if path.endswith(ending))
      raise ValueError(f"{type(self.module).__name__} has no Keras architecture to write as {what} ({path}): that "
                       "format is for models converted by from_keras; save its weights as .npz (or .h5, Keras's "
                       "legacy weights layout), or the whole model in a folder (Model.save('name')).")
    if not os.path.splitext(path)[1]:  # a folder: the architecture must be one load_model can build
      from jaxcomponents.training.saving import SAVED_MODEL, encode_module  # pylint: disable=import-outside-toplevel

      encode_module(self.module)
      files.check_target(path, SAVED_MODEL, overwrite=True)  # a user's folder is never replaced

  def _keras_twin(self, path: str, whole: bool = False):
    """The Keras model a `from_keras` module came from, holding this model's weights, to write to `path` (needs
    Keras)."""
    self.check_writable(path, whole)
    config = self.module.config
    import keras  # pylint: disable=import-outside-toplevel

    from jaxcomponents.weights import to_keras  # pylint: disable=import-outside-toplevel

    return to_keras(self.module, self.variables, keras.Model.from_config(json.loads(config)))

  def load_weights(self, filepath: str | os.PathLike) -> None:
    """Reads variables written by `save_weights` (or Keras's `.h5` weights for the same architecture), or the
    newest intact checkpoint of a folder `callbacks.OrbaxCheckpoint` wrote (or the one of a step folder in it)."""
    from jaxcomponents.training.checkpoint import (  # pylint: disable=import-outside-toplevel
        Checkpointer, checkpoint_location)
    from jaxcomponents.weights import load_keras, load_npz  # pylint: disable=import-outside-toplevel

    path = os.fspath(filepath)
    sample = self._require_sample("load_weights")
    location = checkpoint_location(path)
    if location is not None:
      template = jax.device_get(self.variables)
      with Checkpointer(location[0]) as reader:
        params, batch_stats = reader.restore_weights(template["params"], template.get("batch_stats", {}),
                                                     step=location[1])
      variables = {**template, "params": params, **({"batch_stats": batch_stats} if batch_stats else {})}
    elif path.endswith(".npz"):
      variables = load_npz(path, self.module, sample)
    elif path.endswith(".h5"):
      variables = load_keras(self.module, path, sample)
    else:
      raise ValueError(f"filepath={path!r} is not allowed; expected a name ending in .npz, .weights.h5 or .h5, or a "
                       "folder of checkpoints (OrbaxCheckpoint's).")
    self._set_variables(variables)

  def save(self, filepath: str | os.PathLike, overwrite: bool = True) -> None:
    """Writes the whole model (architecture and weights), read back by `jaxcomponents.load_model`.

    A name ending in `.keras` writes Keras's format (`.h5`: Keras's legacy
    whole-model file), for models converted by `from_keras` (Keras reads the
    file too; needs Keras). Any other name is a folder: the module's architecture as JSON (jaxcomponents' own modules,
    whose fields are numbers, strings, lists and modules) and its variables as
    an orbax checkpoint, written beside and renamed into place when complete.
    """
    path = os.fspath(filepath)
    if path.endswith((".keras", ".h5")):
      files.write_beside(path, self._keras_twin(path, whole=True).save, overwrite=overwrite)
      return
    from jaxcomponents.training.saving import save_model  # pylint: disable=import-outside-toplevel

    save_model(path, self.module, self.variables, overwrite=overwrite)

  def _require_sample(self, what: str):
    if self._sample is None and isinstance(self.module, KerasGraph):  # a Keras model knows its input shapes
      sample = self.module.sample_inputs()
      if sample is not None:
        self._sample = sample[0] if len(sample) == 1 else sample
    if self._sample is None:
      raise ValueError(f"{what} needs the model built: call fit(...) or build(sample) first.")
    return self._sample

  def summary(self, print_fn: Callable[[str], Any] | None = print, **options: Any) -> str:
    """Prints the layers, output shapes and parameter counts, as Keras's `model.summary()`."""
    from jaxcomponents.summary import summary  # pylint: disable=import-outside-toplevel

    return summary(self.module, self._require_sample("summary"), name=self._name, print_fn=print_fn, **options)

  def __repr__(self):
    return f"<Model {self.name!r}: {type(self.module).__name__}{', compiled' if self.compiled else ''}>"


def _keras_epoch_steps(steps_per_epoch: int, batches: int) -> int:
  """The steps of each epoch of arrays read `steps_per_epoch` at a time, where Keras's match ours.

  Keras never runs an epoch past the end of the data: with more steps than batches each epoch is one pass (it
  warns); with a number that does not divide the batches, the epoch reaching the end is shorter, which these
  fixed-length epochs do not reproduce (said with a warning).
  """
  if steps_per_epoch >= batches:
    if steps_per_epoch > batches:
      warnings.warn(f"steps_per_epoch={steps_per_epoch} is more than the {batches} batches of the data: as in Keras, "
                    f"each epoch reads the data once ({batches} steps).", stacklevel=3)
    return batches
  if batches % steps_per_epoch:
    warnings.warn(f"steps_per_epoch={steps_per_epoch} does not divide the {batches} batches of the data: Keras ends "
                  "the epoch that reaches the end of the data early and starts the next at the first batch; here "
                  "every epoch has steps_per_epoch steps and reads on into the next pass.", stacklevel=3)
  return steps_per_epoch


def _as_keras_outputs(outputs: Any) -> Any:
  """Several outputs as Keras's `predict` returns them: a list (a dict stays a dict)."""
  return list(outputs) if isinstance(outputs, tuple) else outputs


def _steps(param: str, value: Any) -> int | None:
  """A step count as Keras reads it: None or 0 for every batch of the data, else a positive integer."""
  if value is None or (is_int(value) and value == 0):
    return None
  return check_positive_int(param, value)


def _per_example_loss(loss: Any, where: str | None = None) -> Callable[[Any, Any], Any]:
  """A Keras loss (name, `losses.get` loss or function) as the train step takes it.

  A `Loss` with Keras's default reduction becomes `(y_true, y_pred) -> per-example losses`, which the step
  averages over the batch as that reduction does; one with another reduction, or that masks entries out of the
  mean (`ignore_class`, Circle), is kept whole, and the step reduces each batch with it as Keras's compiled loss
  does (`step.loss_total`). `where` names
  the compile arguments that cannot take such a loss yet (several outputs, `loss_weights`).
  """
  loss = compile_loss(loss)  # a Keras loss, then reduced as Keras reduces it
  if isinstance(loss, losses_lib.Loss):
    if loss.reduction in (None, "none"):
      raise ValueError(f"loss={loss!r} is not allowed: its reduction={loss.reduction!r} leaves a loss per entry, "
                       "and a training step needs one number per batch (as Keras's compile does); give it "
                       "Keras's default reduction 'sum_over_batch_size', or 'sum' or 'mean_with_sample_weight'.")
    resolved = resolve_loss(loss)
    if resolved is loss and where is not None:
      raise ValueError(f"loss={loss!r} is not allowed with {where}: a loss with reduction={loss.reduction!r}, or "
                       "that masks entries out of the mean (ignore_class, Circle), is reduced over the whole batch, "
                       "which compile does for one unweighted loss only so far.")
    return resolved
  if callable(loss):
    return loss
  raise ValueError(f"loss={loss!r} is not allowed; expected a Keras loss name or object, a jaxcomponents loss or a "
                   "function (y_true, y_pred) -> per-example losses.")


def load_model(filepath: str | os.PathLike) -> Model:
  """A whole model saved by `Model.save` (a folder) or by `callbacks.OrbaxCheckpoint` (its folder: the newest
  intact checkpoint; or one step's folder in it), or a Keras `.keras` / full-model `.h5` file (needs Keras).

  Example (needs a file)::

    model = load_model("classifier.keras")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
  """
  path = os.fspath(filepath)
  if os.path.isdir(path):
    from jaxcomponents.training.checkpoint import (  # pylint: disable=import-outside-toplevel
        Checkpointer, checkpoint_location)
    from jaxcomponents.training.saving import load_saved  # pylint: disable=import-outside-toplevel

    location = checkpoint_location(path)
    if location is None:
      module, variables = load_saved(path)
    else:
      with Checkpointer(location[0]) as reader:
        module, variables = reader.restore_model(location[1])
  else:
    from jaxcomponents.weights import from_keras  # pylint: disable=import-outside-toplevel

    module, variables = from_keras(path)
  return Model(module, variables)


def _pick(tree: Any, index: int, name: str) -> Any:
  """Output `index` (named `name`) of a model's outputs or targets: a dict by name, a list or tuple by position;
  a single array is the only output (Keras's one-entry loss list or dict of a single-output model)."""
  if isinstance(tree, Mapping):
    return tree[name]
  if isinstance(tree, (list, tuple)):
    return tree[index]
  if index:
    raise ValueError(f"output {name!r} (position {index}) is not allowed: the model gives one output, not a list "
                     "or dict of them.")
  return tree


class _OnOutput:
  """A streaming metric of one output of a multi-output model."""

  def __init__(self, metric: Any, index: int, name: str):
    self.metric, self.index, self.name = metric, index, name

  def init(self):
    return self.metric.init()

  def update(self, state, y_true, y_pred, sample_weight=None):
    return self.metric.update(state, _pick(y_true, self.index, self.name), _pick(y_pred, self.index, self.name),
                              sample_weight=sample_weight)

  def result(self, state):
    return self.metric.result(state)


def _read_keras_callbacks(callbacks: Any) -> Any:
  """`callbacks` with each of Keras's own callback objects read into its jaxcomponents twin (one alone too)."""
  if callbacks is None or isinstance(callbacks, Callback):
    return callbacks
  if is_keras_callback(callbacks):
    return from_keras_callback(callbacks)
  if isinstance(callbacks, (list, tuple)):
    return [from_keras_callback(c) if is_keras_callback(c) else c for c in callbacks]
  return callbacks


def _per_output(value: Any, what: str, names: list[str]) -> list[Any]:
  """`value` (a list by position or a dict by output name) as one entry per output (None where not given)."""
  if isinstance(value, Mapping):
    unknown = sorted(set(value) - set(names))
    if unknown:
      raise ValueError(f"{what} names {unknown}, which are not outputs of the model; its outputs are {names}.")
    return [value.get(name) for name in names]
  if isinstance(value, (list, tuple)):
    if len(value) != len(names):
      raise ValueError(f"{what} has {len(value)} entries; the model has {len(names)} outputs ({names}).")
    return list(value)
  raise ValueError(f"{what}={value!r} is not allowed with a loss list or dict; expected a list (by position) or a dict "
                   f"(by output name, one of {names}).")


def _outputs(loss, loss_weights, metrics, weighted_metrics, names: list[str] | None):
  """A multi-output model's compiled loss: the total, each output's loss log, and each output's metrics.

  As Keras logs them: `<output>_loss` where more than one output has a loss; metrics by their own names for a
  model with one output (known from `names`, the module's `output_names`, or a one-entry loss list), else as
  `<output>_<metric>`. One output takes a float `loss_weights` too.
  """
  single = len(names) == 1 if names is not None else isinstance(loss, (list, tuple)) and len(loss) == 1
  if names is None:
    names = list(loss) if isinstance(loss, Mapping) else [f"output_{i}" for i in range(len(loss))]
  losses = _per_output(loss, "loss", names)
  if single and is_real(loss_weights):
    loss_weights = [loss_weights]
  weights = [1.0] * len(names) if loss_weights is None else _per_output(loss_weights, "loss_weights", names)
  terms, per_output = [], {}
  for index, (name, spec, weight) in enumerate(zip(names, losses, weights)):
    if spec is None:
      continue
    fn = _per_example_loss(spec, "several outputs")
    weight = 1.0 if weight is None else weight
    if not is_real(weight):
      raise ValueError(f"loss_weights for output {name!r} is {weight!r}; expected a float.")
    picked = lambda y, p, fn=fn, index=index, name=name: fn(_pick(y, index, name), _pick(p, index, name))
    terms.append((float(weight), picked))
    per_output[f"{name}_loss"] = OutputLoss(picked)
  if not terms:
    raise ValueError(f"loss={loss!r} gives no output a loss.")
  output_losses = per_output if len(terms) > 1 else {}

  total = SumOfLosses(terms)

  def by_output(value, what, taken=()):
    """`{log name: metric}`; a weighted metric named as an unweighted one of its output is `<output>_weighted_<name>`,
    as Keras names it."""
    if not value:
      return {}
    if single and (not isinstance(value, Mapping) or not set(value) <= set(names)):
      # one output: every metric is its, however nested or keyed (Keras flattens them)
      value = list(value.values()) if isinstance(value, Mapping) else value
      value = [[m for m in jax.tree.leaves(value, is_leaf=lambda v: not isinstance(v, (list, tuple)))]]
    result = {}
    for index, (name, entries) in enumerate(zip(names, _per_output(value, what, names))):
      for entry in entries if isinstance(entries, (list, tuple)) else [] if entries is None else [entries]:
        label, metric = named_metric(entry)
        prefix = "" if single else f"{name}_"
        key = f"{prefix}{label}"
        result[f"{prefix}weighted_{label}" if key in taken else key] = _OnOutput(metric, index, name)
    return result

  unweighted = by_output(metrics, "metrics")
  return total, output_losses, unweighted, by_output(weighted_metrics, "weighted_metrics", unweighted)
