"""Pure, jit-compiled train and eval steps: `(state, batch) -> (state, metrics)`.

A batch is a dict with `x` (inputs), `y` (targets) and optionally `mask`
(1 for real examples, 0 for padding of a short last batch, so the shapes stay
static and nothing recompiles) and `sample_weight` (Keras's per-example
weights). The loss is Keras's per-example loss averaged over the real
examples, or, for a jaxcomponents `Loss` with its own reduction or
`ignore_class`, that loss reduced over the real examples as Keras's compiled
loss reduces it; metrics stream over the batches since the step's last `reset`.

Losses a model sows into the `"losses"` collection (Keras's `model.losses`: activity
regularization, `jaxcomponents.layers.activity`) are added to the loss, as Keras's
`compute_loss` adds them, in the train step (where they are differentiated) and the
eval step; the logged `loss` includes them. The sown values are never kept in the state.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxcomponents import losses as losses_lib
from jaxcomponents import metrics as metrics_lib
from jaxcomponents.errors import is_int
from jaxcomponents.layers.activity import LOSSES, total_loss
from jaxcomponents.layers.precision import cast_floats
from jaxcomponents.ops import compiler
from jaxcomponents.registry import built
from jaxcomponents.training.freeze import frozen_mask
from jaxcomponents.training.state import TrainState

Batch = Mapping[str, jax.Array]
LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def compile_loss(loss: Any) -> Any:
  """A loss as `compile(loss=...)` reads it: a name (`"crossentropy"` and `"ce"` in any case: the cross-entropy
  the shapes call for, as Keras's compile chooses it), a Keras loss object or class (built with its defaults) as
  a `losses.Loss`; anything else as it is."""
  loss = built(loss)
  if isinstance(loss, str) and loss.lower() in ("crossentropy", "ce"):
    loss = "crossentropy"
  if isinstance(loss, str) or losses_lib.is_keras_object(loss):
    return losses_lib.get(loss, param="loss")
  return loss


def resolve_loss(loss: str | LossFn) -> LossFn:
  """A Keras loss (name, Keras loss object or `Loss`) as the step takes it: with Keras's default reduction, as a
  per-example loss fn the step averages; with another reduction, or one that masks entries out of the mean
  (`ignore_class`, Circle), kept whole (`reduces_as_keras`). Any other callable must return per-example losses."""
  loss = compile_loss(loss)
  if isinstance(loss, losses_lib.Loss) and loss.reduction in ("sum_over_batch_size", "mean") and \
      not loss.masks_entries:
    return dataclasses.replace(loss, reduction="none")
  if callable(loss):
    return loss
  raise ValueError(f"loss={loss!r} is not allowed; expected a Keras loss name or object, or a callable.")


def resolve_metrics(metrics: Sequence[str] | Mapping[str, Any] | None, taken: Sequence[str] = ()) -> dict[str, Any]:
  """Metric names (or a name -> metric mapping) -> {name: streaming metric}.

  A name already `taken` (by the unweighted metrics) gets Keras's `weighted_` prefix.
  """
  if not metrics:
    return {}
  if isinstance(metrics, str):
    raise ValueError(f"metrics={metrics!r} is not allowed; expected a list, tuple or dict of metrics, e.g. "
                     f"[{metrics!r}] (as Keras's compile).")
  if not isinstance(metrics, Mapping):
    metrics = dict(named_metric(metric) for metric in metrics)
  else:  # log name -> a metric, or a metric's name or Keras object
    metrics = {name: named_metric(metric)[1] for name, metric in metrics.items()}
  return {(f"weighted_{name}" if name in taken else name): metric for name, metric in metrics.items()}


def named_metric(metric: Any) -> tuple[str, Any]:
  """A `compile(metrics=[...])` entry and its log's name, as Keras names it: a name as given, a metric (ours, or
  a Keras metric object, converted by its class and config) by its `name`, a function
  `(y_true, y_pred) -> per-example values` by its `__name__` (averaged, Keras's `MeanMetricWrapper`)."""
  metric = built(metric)
  if isinstance(metric, str):
    return metric, metrics_lib.compile_metric(metric)
  if metrics_lib.is_keras_object(metric):  # ours of the same class and arguments, logged by its name
    return metric.name, metrics_lib.get(metric)
  if all(hasattr(metric, attr) for attr in ("init", "update", "result", "name")):
    return metric.name, metric
  if callable(metric) and getattr(metric, "__name__", "<lambda>") != "<lambda>":
    return metric.__name__, metrics_lib.Mean(metric.__name__, metric)
  raise ValueError(f"metrics entry {metric!r} is not allowed; expected a metric name, a jaxcomponents metric "
                   "(jaxcomponents.metrics.get(...)), a Keras metric object, a named function (y_true, y_pred) -> "
                   "per-example values, or a dict from log names to metrics.")


def _alike(batches: Sequence[Batch]) -> bool:
  """Whether the batches have one structure and one shape and dtype per array (so they stack)."""
  specs = [jax.tree.map(lambda a: (jnp.shape(a), jnp.result_type(a)), dict(b)) for b in batches]
  return all(spec == specs[0] for spec in specs[1:])


def scanned(step_fn: Callable[[TrainState, Batch], tuple[TrainState, Any]]):
  """`(state, [batch, ...]) -> (state, last metrics)`: `step_fn` over the batches in order, as one `lax.scan`."""

  def steps(state: TrainState, batches: list[Batch]):
    stacked = jax.tree.map(lambda *arrays: jnp.stack(arrays), *[dict(b) for b in batches])
    state, results = jax.lax.scan(step_fn, state, stacked)
    return state, jax.tree.map(lambda r: r[-1], results)

  return steps


class _Mean:
  """A weighted running mean; the stream behind the `loss` entry."""

  def init(self):
    return {"total": jnp.zeros((), jnp.float32), "count": jnp.zeros((), jnp.float32)}

  def update(self, state, total, count):
    return {"total": state["total"] + total, "count": state["count"] + count}

  def result(self, state):
    return state["total"] / jnp.maximum(state["count"], 1.0)


def init_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
  """Fresh streaming-metric states, the loss first; `nonfinite_step` is the first step whose loss was not finite."""
  return {"loss": _Mean().init(), "nonfinite_step": jnp.array(-1, jnp.int32),
          **{name: m.init() for name, m in metrics.items()}}


def per_example_losses(losses: jax.Array, n: int) -> jax.Array:
  """Per-example losses: a loss over pixels or time steps is averaged within each example."""
  return losses.reshape((n, -1)).mean(axis=1) if losses.ndim > 1 else losses


def reduces_as_keras(loss_fn: Any) -> bool:
  """Whether `loss_fn` is a jaxcomponents `Loss` the step reduces with its own reduction (not per example)."""
  return isinstance(loss_fn, losses_lib.Loss) and loss_fn.reduction not in (None, "none")


def _zero_padding(tree: Any, mask: jax.Array) -> Any:
  """Every array of `tree` with its padding examples (`mask` 0) set to zero."""
  return jax.tree.map(lambda a: a * mask.reshape(mask.shape + (1,) * (a.ndim - 1)).astype(a.dtype), tree)


class SumOfLosses:
  """Losses summed with weights (a multi-output model's compiled loss): per-example losses when called; the steps
  weigh and reduce each term as they would that loss alone (`loss_total`), then sum them.

  Example:
    >>> total = SumOfLosses([(0.5, lambda y, p: (y - p) ** 2), (2.0, lambda y, p: abs(y - p))])
    >>> total(jnp.zeros(2), jnp.ones(2)).tolist()
    [2.5, 2.5]
  """

  def __init__(self, terms: Sequence[tuple[float, LossFn]]):
    self.terms = tuple(terms)

  def __call__(self, y_true, y_pred):
    n = batch_size_of(y_pred)
    return sum(weight * per_example_losses(fn(y_true, y_pred), n) for weight, fn in self.terms)


def loss_total(loss_fn: Any, y_true: Any, y_pred: Any, weight: jax.Array, mask: jax.Array) -> jax.Array:
  """The batch's loss times its number of real examples (what Keras's loss tracker adds for the batch).

  A `Loss` that `reduces_as_keras` is reduced over the real examples' entries as Keras's compiled loss reduces
  it (its reduction, its `ignore_class` entries left out); any other function gives per-example losses,
  averaged within each example and weighed by `weight`.
  """
  if isinstance(loss_fn, SumOfLosses):
    return sum(term_weight * loss_total(fn, y_true, y_pred, weight, mask) for term_weight, fn in loss_fn.terms)
  keras_loss = reduces_as_keras(loss_fn)
  compute = (functools.partial(loss_fn.per_sample, rows=mask > 0) if keras_loss
             else lambda y_true, y_pred: (loss_fn(y_true, y_pred), None))
  values, valid = compute(y_true, y_pred)
  if jnp.ndim(values) == 0:
    # A loss over the whole batch (Dice or Tversky with axis=None): computed with padding rows zeroed (which
    # leaves those sums as they are without them), weighed as Keras weighs a scalar loss, by the mean sample
    # weight of the real examples.
    values, _ = compute(_zero_padding(y_true, mask), _zero_padding(y_pred, mask))
    if keras_loss and loss_fn.reduction == "mean_with_sample_weight":
      return values * jnp.sum(mask)
    return values * jnp.sum(per_example_losses(weight, mask.shape[0]))
  if not keras_loss:
    values, weight = losses_lib.broadcast_weight(weight, values)
    return jnp.sum(per_example_losses(values * weight, mask.shape[0]))
  keep = (mask > 0).reshape(mask.shape + (1,) * (values.ndim - 1))
  keep = jnp.broadcast_to(keep if valid is None else keep & valid, values.shape)
  if valid is None and loss_fn.reduction == "mean_with_sample_weight":
    # The weights hold the padding (0) already; Keras, given no mask, divides by the weights as given ((n, 1)
    # weights of a sequence's losses count once per example, not once per step).
    keep = None
  return losses_lib.reduce_weighted(values, weight, keep, loss_fn.reduction) * jnp.sum(mask)


def batch_size_of(y_pred: Any) -> int:
  """The number of examples in a model's output (the first axis of its first array)."""
  return jax.tree.leaves(y_pred)[0].shape[0]


def _masks(batch: Batch, n: int) -> tuple[jax.Array, jax.Array]:
  """The batch's real-example mask `(n,)` and its weights: the mask times `sample_weight` as given (`(n,)`,
  `(n, 1)` or one per entry of an example's loss, Keras's per-timestep weights `(n, T)`)."""
  mask = jnp.asarray(batch["mask"], jnp.float32) if "mask" in batch else jnp.ones((n,), jnp.float32)
  if "sample_weight" not in batch:
    return mask, mask
  weight = jnp.asarray(batch["sample_weight"], jnp.float32)
  return mask, mask.reshape(mask.shape + (1,) * (weight.ndim - 1)) * weight


class OutputLoss:
  """One output's loss as its own log (Keras's `<output>_loss`): unweighted by `loss_weights`, averaged over examples.

  `fn(y_true, y_pred)` takes the whole targets and outputs and picks its own.
  """

  def __init__(self, fn: LossFn):
    self.fn = fn

  def init(self):
    return _Mean().init()

  def update(self, state, y_true, y_pred, weight, mask):
    return _Mean().update(state, loss_total(self.fn, y_true, y_pred, weight, mask), jnp.sum(mask))

  def result(self, state):
    return _Mean().result(state)


def _update_metrics(step: "Step", states, batch, y_pred, loss_sum, sown_loss=0.0):
  """As Keras: `metrics` ignore sample and class weights (padding aside), `weighted` metrics and the loss use them.

  `loss_sum` is the batch's `loss_total`; `sown_loss` (the batch's sown losses) counts once per real example in
  the logged loss, as Keras's loss tracker weighs each batch's total loss by its size.
  """
  mask, weight = _masks(batch, batch_size_of(y_pred))
  new = {"loss": _Mean().update(states["loss"], loss_sum + sown_loss * jnp.sum(mask), jnp.sum(mask)),
         "nonfinite_step": states["nonfinite_step"]}
  for name, output_loss in step.output_losses.items():
    new[name] = output_loss.update(states[name], batch["y"], y_pred, weight, mask)
  for group, sample_weight in ((step.metrics, mask), (step.weighted, weight)):
    for name, metric in group.items():
      new[name] = metric.update(states[name], batch["y"], y_pred, sample_weight=sample_weight)
  results = {name: stream.result(new[name]) for name, stream in step.streams().items()}
  return new, results


@dataclasses.dataclass(frozen=True)
class Step:
  """A compiled step `(state, batch) -> (state, metrics)` that knows its metrics.

  Calling it on a state without metric streams starts fresh ones.
  """

  fn: Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]
  metrics: Mapping[str, Any]
  loss: LossFn | None = None
  weighted: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  output_losses: Mapping[str, OutputLoss] = dataclasses.field(default_factory=dict)
  scan: Callable[[TrainState, list[Batch]], tuple[TrainState, dict[str, jax.Array]]] | None = None

  def __call__(self, state: TrainState, batch: Batch):
    return self.fn(self._ready(state, batch), batch)

  def run(self, state: TrainState, batches: Sequence[Batch]):
    """The steps of `batches` in order; returns the last state and the last step's metrics.

    A train step runs several batches of one shape as one compiled call (a scan over them: Keras's
    `steps_per_execution`): the same updates as one call each, with one call's overhead and one set of
    temporary buffers for them all. Other batches run one call each.

    Example (needs a state and batches)::

      state, logs = train_step.run(state, [batch_1, batch_2])  # two steps, one compiled call
    """
    state = self._ready(state, batches[0]) if batches else state
    if self.scan is not None and len(batches) > 1 and _alike(batches):
      return self.scan(state, list(batches))
    results = {}
    for batch in batches:
      state, results = self.fn(state, batch)
    return state, results

  def streams(self) -> dict[str, Any]:
    """Every log this step reports, in order: the loss, each output's loss, the metrics, the weighted metrics."""
    return {"loss": _Mean(), **self.output_losses, **self.metrics, **self.weighted}

  def _ready(self, state: TrainState, batch: Batch) -> TrainState:
    """`state` with its metric streams started, and built where a metric's state takes its shape from the first
    batch (its `init()` is `{}`, as Keras builds such metrics at their first update): zeros of the shapes one step
    of `batch` gives them, so every compiled call sees one state shape."""
    if not state.metrics:
      state = self.reset(state)
    unbuilt = [name for name, value in state.metrics.items() if isinstance(value, dict) and not value]
    if not unbuilt:
      return state
    shapes = jax.eval_shape(self.fn, state, batch)[0].metrics
    built = {name: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes[name]) for name in unbuilt}
    return state.replace(metrics={**state.metrics, **built})

  def reset(self, state: TrainState) -> TrainState:
    """The state with fresh streaming metrics (the loss and this step's metrics)."""
    return state.replace(metrics=init_metrics({**self.output_losses, **self.metrics, **self.weighted}))


def make_train_step(
    loss: str | LossFn,
    metrics: Sequence[str] | Mapping[str, Any] = (),
    *,
    weighted_metrics: Sequence[str] | Mapping[str, Any] = (),
    output_losses: Mapping[str, OutputLoss] | None = None,
    regularizer: Callable[[Any], jax.Array] | None = None,
    compute_dtype: Any = None,
    accumulate_steps: int = 1,
    frozen_batch_stats: Sequence[str] = (),
    jit: bool = True,
    donate: bool = True,
) -> Step:
  """Returns `train_step(state, batch) -> (state, metrics)`, jit-compiled with the state donated.

  Args:
    loss: a Keras loss name (`"sparse_categorical_crossentropy"`) or a callable
      `(y_true, y_pred) -> per-example losses`.
    metrics: Keras metric names, or a mapping name -> streaming metric. As Keras's `compile(metrics=...)`,
      they ignore sample and class weights.
    weighted_metrics: metrics weighed by the batch's `sample_weight` (Keras's `weighted_metrics`).
    output_losses: extra logs, one `OutputLoss` per output of a multi-output model (`Model.compile` builds them).
    regularizer: `params -> penalty`, added to the loss (see `jaxcomponents.regularizers`).
    compute_dtype: e.g. `jnp.bfloat16` for mixed precision: the forward and
      backward pass run in this dtype; parameters, batch statistics and the
      optimizer state stay float32.
    accumulate_steps: split each batch into this many micro-batches and apply
      one update with their averaged gradients.
    frozen_batch_stats: patterns of batch-statistics paths that never change
      (pair with `freeze` for a frozen feature extractor).
    jit: compile with `jax.jit` (turn off to debug).
    donate: donate the input state's buffers to the output.

  Example:
    >>> step = make_train_step("sparse_categorical_crossentropy", ["accuracy"])
  """
  loss_fn = resolve_loss(loss)
  metric_fns = resolve_metrics(metrics)
  weighted_fns = resolve_metrics(weighted_metrics, taken=metric_fns)
  if not is_int(accumulate_steps) or accumulate_steps < 1:
    raise ValueError(f"accumulate_steps={accumulate_steps!r} is not allowed; expected a positive integer.")

  def forward(params, batch_stats, apply_fn, batch, rng):
    variables = {"params": params, "batch_stats": batch_stats}
    x = batch["x"]
    if compute_dtype is not None:
      variables["params"] = cast_floats(params, compute_dtype)
      x = cast_floats(x, compute_dtype)
    y_pred, updates = apply_fn(variables, x, train=True, mutable=["batch_stats", LOSSES], rngs={"dropout": rng})
    y_pred = cast_floats(y_pred, jnp.float32)
    mask, weight = _masks(batch, batch_size_of(y_pred))
    loss_sum = loss_total(loss_fn, batch["y"], y_pred, weight, mask)
    sown = total_loss(updates.get(LOSSES, {}))
    penalty = regularizer(params) if regularizer is not None else 0.0
    total = loss_sum / jnp.maximum(jnp.sum(mask), 1.0) + sown + penalty
    return total, (y_pred, loss_sum, updates.get("batch_stats", batch_stats), sown)

  grad_fn = jax.value_and_grad(forward, has_aux=True)

  def micro_batches(batch):
    def split(a):
      if a.shape[0] % accumulate_steps:
        raise ValueError(f"batch size {a.shape[0]} is not divisible by accumulate_steps={accumulate_steps}.")
      return a.reshape((accumulate_steps, a.shape[0] // accumulate_steps) + a.shape[1:])
    return jax.tree.map(split, dict(batch))

  def train_step(state: TrainState, batch: Batch):
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    if accumulate_steps == 1:
      (_, (y_pred, loss_sum, batch_stats, sown)), grads = grad_fn(
          state.params, state.batch_stats, state.apply_fn, batch, rng)
    else:
      def body(carry, micro):
        grads_sum, stats, index = carry
        (_, (pred, per, stats, sown)), grads = grad_fn(
            state.params, stats, state.apply_fn, micro, jax.random.fold_in(rng, index))
        return (jax.tree.map(jnp.add, grads_sum, grads), stats, index + 1), (pred, per, sown)

      zeros = jax.tree.map(jnp.zeros_like, state.params)
      (grads, batch_stats, _), (y_pred, loss_sum, sown) = jax.lax.scan(
          body, (zeros, state.batch_stats, 0), micro_batches(batch))
      sown = jnp.mean(sown)
      grads = jax.tree.map(lambda g: g / accumulate_steps, grads)
      y_pred = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), y_pred)
      loss_sum = jnp.sum(loss_sum)
    if frozen_batch_stats:
      keep = frozen_mask(state.batch_stats, frozen_batch_stats)
      batch_stats = jax.tree.map(lambda k, old, new: old if k else new, keep, state.batch_stats, batch_stats)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metric_states, results = _update_metrics(step, state.metrics, batch, y_pred, loss_sum, sown)
    first_bad = metric_states["nonfinite_step"]
    metric_states["nonfinite_step"] = jnp.where(
        (first_bad < 0) & ~jnp.isfinite(results["loss"]), state.step, first_bad)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state, metrics=metric_states)
    return new_state, results

  donated = (0,) if donate else ()
  step = Step(compiler.jit(train_step, donate_argnums=donated) if jit else train_step, metric_fns, loss_fn,
              weighted_fns, dict(output_losses or {}),
              compiler.jit(scanned(train_step), donate_argnums=donated) if jit else scanned(train_step))
  return step


def make_eval_step(
    loss: str | LossFn,
    metrics: Sequence[str] | Mapping[str, Any] = (),
    *,
    weighted_metrics: Sequence[str] | Mapping[str, Any] = (),
    output_losses: Mapping[str, OutputLoss] | None = None,
    compute_dtype: Any = None,
    jit: bool = True,
) -> Step:
  """Returns `eval_step(state, batch) -> (state, metrics)`: inference mode, streaming metrics.

  Only `state.metrics` changes; start an evaluation with `eval_step.reset(state)`.
  """
  loss_fn = resolve_loss(loss)
  metric_fns = resolve_metrics(metrics)
  weighted_fns = resolve_metrics(weighted_metrics, taken=metric_fns)

  def eval_step(state: TrainState, batch: Batch):
    variables = state.variables
    x = batch["x"]
    if compute_dtype is not None:
      variables = {**variables, "params": cast_floats(variables["params"], compute_dtype)}
      x = cast_floats(x, compute_dtype)
    y_pred, sown = state.apply_fn(variables, x, train=False, mutable=[LOSSES])
    y_pred = cast_floats(y_pred, jnp.float32)
    mask, weight = _masks(batch, batch_size_of(y_pred))
    metric_states, results = _update_metrics(step, state.metrics, batch, y_pred,
                                             loss_total(loss_fn, batch["y"], y_pred, weight, mask),
                                             total_loss(sown.get(LOSSES, {})))
    return state.replace(metrics=metric_states), results

  step = Step(compiler.jit(eval_step) if jit else eval_step, metric_fns, loss_fn, weighted_fns, dict(output_losses or {}))
  return step
