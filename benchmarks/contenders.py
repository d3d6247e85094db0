"""The contenders: one synchronised train or inference step per framework, run inside a worker.

Every runner builds its model from the family's builder, puts the same
synthetic batch on the device once, and exposes `step()`, which runs one
optimizer step (`train`) or one forward pass (`infer`) and returns when its
results are ready:

- `jaxcomponents`: `TrainState.create` + `make_train_step` with the loss and
  optimizer by Keras name (`jaxcomponents.losses`, `jaxcomponents.optimizers`):
  the library's own jitted step; inference is `jax.jit(model.apply)` with
  `train=False`. `jaxcomponents-tuned` is the same after
  `jaxcomponents.cpu.tune()` (the worker calls it first);
  `jaxcomponents-pip` and `jaxcomponents-pip-tuned` are the same two in a
  virtualenv made by `pip install .` (the harness builds it).
- `flax`: the plain-Flax twin with a hand-written jitted Optax step, the way
  a Flax user writes it.
- `keras-jax`: the first call goes through `train_on_batch` /
  `predict_on_batch` (Keras builds and compiles there); later calls run
  Keras's compiled `train_function` / `predict_function` on the carried
  state, exactly the hot loop of `fit` / `predict`, without callbacks.
- `keras-tf`: `train_on_batch` / `predict_on_batch` (graph function; on a
  CPU-only machine Keras's `jit_compile="auto"` means no XLA, i.e. oneDNN).

Optimizers are Keras's defaults (jaxcomponents' by Keras name, Optax's own for
plain Flax); the loss is sparse categorical cross-entropy on softmax outputs
for everyone.
"""

from __future__ import annotations

import functools
from typing import Any

from benchmarks.families import Family, Size, resolve, synthetic_batch
from benchmarks.machine import slug

DTYPES = ("float32", "mixed_bfloat16")


def optax_optimizer(name: str):
  """Keras's optimizer `name` with Keras's default hyperparameters, in plain Optax (the Flax twin's)."""
  import optax
  makers = {
      "adam": lambda: optax.adam(1e-3, b1=0.9, b2=0.999, eps=1e-7),
      "adadelta": lambda: optax.adadelta(1e-3, rho=0.95, eps=1e-7),
      "sgd": lambda: optax.sgd(1e-2),
      "rmsprop": lambda: optax.rmsprop(1e-3, decay=0.9, eps=1e-7),
  }
  if name not in makers:
    raise ValueError(f"optimizer={name!r} is not allowed; expected one of {', '.join(makers)}.")
  return makers[name]()


def sparse_categorical_crossentropy(y_true, y_pred):
  """Keras's sparse categorical cross-entropy on probabilities, one value per example (the Flax twin's)."""
  import jax.numpy as jnp
  probs = y_pred / jnp.sum(y_pred, axis=-1, keepdims=True)
  log_probs = jnp.log(jnp.clip(probs, 1e-7, 1.0 - 1e-7))
  nll = -jnp.take_along_axis(log_probs, y_true[..., None].astype(jnp.int32), axis=-1)[..., 0]
  return nll.reshape((nll.shape[0], -1)).mean(axis=-1)


def _jax_device() -> str:
  import jax
  device = jax.devices()[0]
  return "cpu" if device.platform == "cpu" else slug(device.device_kind)


def _jax_peak_device_mb() -> float | None:
  import jax
  device = jax.devices()[0]
  if device.platform == "cpu":
    return None
  stats = device.memory_stats() or {}
  peak = stats.get("peak_bytes_in_use")
  return None if peak is None else peak / 2**20


def _flops(compiled) -> float | None:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  flops = (cost or {}).get("flops")
  return float(flops) if flops and flops > 0 else None


def _cast_floats(tree, dtype):
  import jax
  import jax.numpy as jnp
  if dtype is None:
    return tree
  return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def _compute_dtype(dtype: str):
  import jax.numpy as jnp
  return jnp.bfloat16 if dtype == "mixed_bfloat16" else None


def _infer(model, compute_dtype, variables, x):
  import jax.numpy as jnp
  y = model.apply(_cast_floats(variables, compute_dtype), _cast_floats(x, compute_dtype), train=False)
  return y.astype(jnp.float32)


class JaxcomponentsRunner:
  """The library as a user runs it: `TrainState`, `make_train_step`, `model.apply`."""

  def __init__(self, family: Family, size: Size, mode: str, dtype: str, seed: int):
    import jax
    from jaxcomponents import optimizers
    from jaxcomponents.ops import compiler
    from jaxcomponents.training import TrainState, make_train_step

    model = resolve(family.jaxcomponents)(size)
    x, y = synthetic_batch(family, size, seed)
    self.x, self.y = jax.device_put(x), jax.device_put(y)
    variables = jax.jit(model.init)(jax.random.key(seed), self.x)
    self.mode = mode
    self.device = _jax_device()
    if mode == "train":
      self.state = TrainState.create(model, optimizers.get(family.optimizer), variables=variables, seed=seed)
      self.fn = make_train_step("sparse_categorical_crossentropy", compute_dtype=_compute_dtype(dtype))
      self.batch = {"x": self.x, "y": self.y}
    else:
      self.variables = variables
      self.fn = compiler.jit(functools.partial(_infer, model, _compute_dtype(dtype)))

  def step(self) -> None:
    import jax
    if self.mode == "train":
      self.state, metrics = self.fn(self.state, self.batch)
      jax.block_until_ready(metrics)
    else:
      jax.block_until_ready(self.fn(self.variables, self.x))

  def flops(self) -> float | None:
    if self.mode == "train":
      return _flops(self.fn.fn.lower(self.state, self.batch).compile())
    return _flops(self.fn.lower(self.variables, self.x).compile())

  def peak_device_mb(self) -> float | None:
    return _jax_peak_device_mb()


class FlaxRunner:
  """The plain-Flax twin with the step a Flax user writes: value_and_grad, Optax, jit with donation."""

  def __init__(self, family: Family, size: Size, mode: str, dtype: str, seed: int):
    import jax
    import jax.numpy as jnp
    import optax

    model = resolve(family.flax)(size)
    x, y = synthetic_batch(family, size, seed)
    self.x, self.y = jax.device_put(x), jax.device_put(y)
    variables = jax.jit(model.init)(jax.random.key(seed), self.x)
    self.mode = mode
    self.device = _jax_device()
    compute_dtype = _compute_dtype(dtype)
    if mode == "infer":
      self.variables = variables
      self.fn = jax.jit(functools.partial(_infer, model, compute_dtype))
      return
    tx = optax_optimizer(family.optimizer)
    dropout_key = jax.random.key(seed + 1)

    def train_step(params, batch_stats, opt_state, step, x, y):
      def loss_fn(params):
        variables = {"params": _cast_floats(params, compute_dtype)}
        if batch_stats:
          variables["batch_stats"] = batch_stats
        out, updates = model.apply(variables, _cast_floats(x, compute_dtype), train=True, mutable=["batch_stats"],
                                   rngs={"dropout": jax.random.fold_in(dropout_key, step)})
        loss = jnp.mean(sparse_categorical_crossentropy(y, out.astype(jnp.float32)))
        return loss, updates.get("batch_stats", batch_stats)

      (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), batch_stats, opt_state, step + 1, loss

    self.fn = jax.jit(train_step, donate_argnums=(0, 1, 2))
    params = variables["params"]
    self.carry = (params, variables.get("batch_stats", {}), tx.init(params), jnp.zeros((), jnp.int32))

  def step(self) -> None:
    import jax
    if self.mode == "train":
      *carry, loss = self.fn(*self.carry, self.x, self.y)
      self.carry = tuple(carry)
      jax.block_until_ready(loss)
    else:
      jax.block_until_ready(self.fn(self.variables, self.x))

  def flops(self) -> float | None:
    if self.mode == "train":
      return _flops(self.fn.lower(*self.carry, self.x, self.y).compile())
    return _flops(self.fn.lower(self.variables, self.x).compile())

  def peak_device_mb(self) -> float | None:
    return _jax_peak_device_mb()


def _keras_model(family: Family, size: Size, dtype: str, seed: int):
  import keras
  if dtype == "mixed_bfloat16":
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
  keras.utils.set_random_seed(seed)
  model = resolve(family.keras)(size)
  model.compile(optimizer=keras.optimizers.get(family.optimizer), loss="sparse_categorical_crossentropy")
  return model


class KerasJaxRunner:
  """Keras 3 on JAX: Keras builds and compiles on the first call, then `fit`'s own hot loop."""

  def __init__(self, family: Family, size: Size, mode: str, dtype: str, seed: int):
    import jax

    self.model = _keras_model(family, size, dtype, seed)
    x, y = synthetic_batch(family, size, seed)
    self.x, self.y = jax.device_put(x), jax.device_put(y)
    self.mode = mode
    self.device = _jax_device()
    self.state = None

  def step(self) -> None:
    import jax
    model = self.model
    if self.mode == "train":
      if self.state is None:
        model.train_on_batch(self.x, self.y)
        self.state = model._get_jax_state(  # pylint: disable=protected-access
            trainable_variables=True, non_trainable_variables=True, optimizer_variables=True,
            metrics_variables=True)
        return
      logs, self.state = model.train_function(self.state, iter([(self.x, self.y, None)]))
      jax.block_until_ready(logs)
    else:
      if self.state is None:
        model.predict_on_batch(self.x)
        self.state = model._get_jax_state(  # pylint: disable=protected-access
            trainable_variables=True, non_trainable_variables=True)
        return
      outputs, self.state = model.predict_function(self.state, iter([(self.x,)]))
      jax.block_until_ready(outputs)

  def flops(self) -> float | None:
    import jax
    if self.mode == "train":
      return _flops(jax.jit(self.model.train_step).lower(self.state, (self.x, self.y, None)).compile())
    return _flops(jax.jit(self.model.predict_step).lower(self.state, (self.x,)).compile())

  def peak_device_mb(self) -> float | None:
    return _jax_peak_device_mb()


class KerasTFRunner:
  """Keras 3 on TensorFlow: `train_on_batch` / `predict_on_batch` on tensors already on the device."""

  def __init__(self, family: Family, size: Size, mode: str, dtype: str, seed: int):
    import tensorflow as tf

    self.model = _keras_model(family, size, dtype, seed)
    x, y = synthetic_batch(family, size, seed)
    self.x, self.y = tf.constant(x), tf.constant(y)
    self.mode = mode
    gpus = tf.config.list_physical_devices("GPU")
    self.gpu = bool(gpus)
    self.device = "cpu"
    if gpus:
      self.device = slug(tf.config.experimental.get_device_details(gpus[0]).get("device_name", "gpu"))

  def step(self) -> None:
    if self.mode == "train":
      self.model.train_on_batch(self.x, self.y)
    else:
      self.model.predict_on_batch(self.x)

  def flops(self) -> float | None:
    return None

  def peak_device_mb(self) -> float | None:
    if not self.gpu:
      return None
    import tensorflow as tf
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


RUNNERS = {"jaxcomponents": JaxcomponentsRunner, "jaxcomponents-tuned": JaxcomponentsRunner,
           "jaxcomponents-pip": JaxcomponentsRunner, "jaxcomponents-pip-tuned": JaxcomponentsRunner,
           "flax": FlaxRunner, "keras-jax": KerasJaxRunner, "keras-tf": KerasTFRunner}


def make_runner(family: Family, size: Size, framework: str, mode: str, dtype: str = "float32", seed: int = 0) -> Any:
  """The runner of `framework` for one (family, size, mode); raises ValueError for an absent contender."""
  if framework not in RUNNERS:
    raise ValueError(f"framework={framework!r} is not allowed; expected one of {', '.join(RUNNERS)}.")
  if mode not in ("train", "infer"):
    raise ValueError(f"mode={mode!r} is not allowed; expected one of 'train', 'infer'.")
  if dtype not in DTYPES:
    raise ValueError(f"dtype={dtype!r} is not allowed; expected one of {', '.join(DTYPES)}.")
  reason = family.skip_reason(framework)
  if reason:
    raise ValueError(f"{family.name} has no {framework} contender: {reason}.")
  return RUNNERS[framework](family, size, mode, dtype, seed)
