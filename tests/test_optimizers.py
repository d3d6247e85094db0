"""Each optimizer by name moves parameters as Keras's `apply_gradients` does, step by step."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import optax
import pytest

from jaxcomponents import optimizers

STEPS = 6
SHAPES = {"bias": (4,), "kernel": (3, 4)}  # two variables of different shapes


class _KerasSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """Hands Keras the same step -> learning rate function (Keras calls a schedule with `iterations`)."""

  def __init__(self, fn):
    self.fn = fn

  def __call__(self, step):
    return self.fn(jnp.asarray(keras.ops.convert_to_tensor(step)))


def _cosine(step):
  return optax.cosine_decay_schedule(0.05, decay_steps=4, alpha=0.1)(step)


def _warmup(step):
  return optax.linear_schedule(0.001, 0.02, transition_steps=3)(step)


def _problem(seed, grad_scale=1.0):
  rng = np.random.default_rng(seed)
  params = {k: rng.normal(0, 0.1, s).astype(np.float32) for k, s in SHAPES.items()}
  grads = [{k: (rng.normal(0, grad_scale, s)).astype(np.float32) for k, s in SHAPES.items()} for _ in range(STEPS)]
  for step, g in enumerate(grads):
    g["kernel"][0, :2] *= 1e-7  # gradients of the size of epsilon: where Keras's epsilon placement shows
    if step in (2, 3):
      g["bias"][0] = 0.0
  return params, grads


def _keras_run(optimizer, params, grads, lr_changes=None):
  variables = [keras.Variable(params[k], name=k) for k in sorted(params)]
  history = []
  for step, g in enumerate(grads):
    if lr_changes and step in lr_changes:
      optimizer.learning_rate = lr_changes[step]
    optimizer.apply_gradients(zip([g[k] for k in sorted(params)], variables))
    history.append({k: np.asarray(v.value) for k, v in zip(sorted(params), variables)})
  return history


def _optax_run(tx, params, grads, update=None):
  update = update or tx.update
  state = tx.init(params)
  params = jax.tree.map(jnp.asarray, params)
  history = []
  for g in grads:
    updates, state = update(g, state, params)
    params = optax.apply_updates(params, updates)
    history.append(params)
  return history


def _assert_same_trajectory(ours, theirs, start):
  """After every step, every parameter is within 1e-5 of Keras's relative to the parameter's scale,
  and within 1e-4 of Keras's total move (float32 rounding of the stored parameters aside), so a
  wrong update shows even where the parameters move little."""
  for step, (a, b) in enumerate(zip(ours, theirs)):
    for k in sorted(b):
      moved = np.max(np.abs(b[k] - start[k]))
      err = np.max(np.abs(np.asarray(a[k]) - b[k]))
      assert moved > 0, f"Keras did not move {k} at step {step}"
      assert err <= 1e-5 * np.max(np.abs(b[k])), f"step {step} {k}: max error {err:.3g} vs scale"
      assert err <= 1e-4 * moved, f"step {step} {k}: max error {err:.3g} vs Keras's move {moved:.3g}"


def _keras_kwargs(name, kwargs):
  kwargs = dict(kwargs)
  exclude = kwargs.pop("exclude_from_weight_decay", None)
  lr = kwargs.get("learning_rate")
  if callable(lr):
    kwargs["learning_rate"] = _KerasSchedule(lr)
  decay = kwargs.pop("decay", None)
  if decay is not None:  # Keras 2's legacy decay is Keras 3's InverseTimeDecay with decay_steps=1.
    base = kwargs.get("learning_rate", 0.01 if name == "sgd" else 0.001)
    kwargs["learning_rate"] = keras.optimizers.schedules.InverseTimeDecay(base, decay_steps=1, decay_rate=decay)
  return kwargs, exclude


KERAS = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
         "rmsprop": keras.optimizers.RMSprop, "adagrad": keras.optimizers.Adagrad,
         "adadelta": keras.optimizers.Adadelta, "adamax": keras.optimizers.Adamax, "nadam": keras.optimizers.Nadam,
         "lion": keras.optimizers.Lion, "lamb": keras.optimizers.Lamb, "adafactor": keras.optimizers.Adafactor,
         "ftrl": keras.optimizers.Ftrl, "muon": keras.optimizers.Muon}

CASES = [
    ("sgd", {}),
    ("sgd", {"momentum": 0.9}),
    ("sgd", {"momentum": 0.9, "nesterov": True, "learning_rate": _cosine, "weight_decay": 0.05}),
    ("adam", {}),
    ("adam", {"amsgrad": True, "beta_1": 0.8, "epsilon": 1e-3, "clipnorm": 0.5}),
    ("adamw", {}),
    ("adamw", {"weight_decay": 0.1, "learning_rate": _warmup, "exclude_from_weight_decay": ["bias"]}),
    ("rmsprop", {}),
    ("rmsprop", {"momentum": 0.9, "centered": True, "rho": 0.8, "global_clipnorm": 1.0}),
    ("rmsprop", {"momentum": 0.5, "learning_rate": _cosine, "weight_decay": 0.1}),
    ("adagrad", {}),
    ("adagrad", {"initial_accumulator_value": 0.5, "clipvalue": 0.3, "weight_decay": 0.2}),
    ("adadelta", {}),
    ("adadelta", {"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-5, "decay": 0.5}),
    ("adamax", {}),
    ("adamax", {"beta_2": 0.9, "learning_rate": _warmup, "global_clipnorm": 2.0, "weight_decay": 0.3}),
    ("nadam", {}),
    ("nadam", {"beta_1": 0.8, "learning_rate": 0.01, "decay": 0.2, "clipnorm": 1.0, "weight_decay": 0.05}),
    ("SGD", {"momentum": 0.5, "decay": 0.3, "clipvalue": 0.5}),
    ("lion", {}),
    ("Lion", {"beta_1": 0.8, "beta_2": 0.9, "learning_rate": _cosine, "weight_decay": 0.1, "clipnorm": 1.0}),
    ("lamb", {}),
    ("lamb", {"beta_1": 0.8, "epsilon": 1e-3, "learning_rate": _warmup, "global_clipnorm": 1.0}),
    ("lamb", {"weight_decay": 0.2, "learning_rate": 0.05}),
    ("adafactor", {}),
    ("Adafactor", {"learning_rate": 0.5, "beta_2_decay": -0.5, "epsilon_2": 0.01, "clip_threshold": 0.5,
                   "weight_decay": 0.1}),
    ("adafactor", {"learning_rate": _cosine, "relative_step": False, "clipnorm": 1.0}),
    ("ftrl", {"learning_rate": 0.05}),
    ("Ftrl", {"learning_rate": _warmup, "learning_rate_power": -0.7, "initial_accumulator_value": 0.5,
              "l1_regularization_strength": 0.001, "l2_regularization_strength": 0.01,
              "l2_shrinkage_regularization_strength": 0.02, "beta": 0.1}),
    ("ftrl", {"learning_rate": 0.1, "weight_decay": 0.3, "global_clipnorm": 1.0}),
    ("muon", {"learning_rate": 0.02}),
    ("Muon", {"learning_rate": _cosine, "nesterov": False, "rms_rate": None, "weight_decay": 0.1,
              "adam_weight_decay": None, "adam_lr_ratio": 0.5, "momentum": 0.8, "ns_steps": 3, "clipnorm": 1.0}),
    ("muon", {"learning_rate": 0.05, "exclude_layers": ["kern"], "adam_beta_1": 0.8}),
]


def _case_id(case):
  name, kwargs = case
  return "-".join([name] + [f"{k}={getattr(v, '__name__', v)}" for k, v in kwargs.items()])


@pytest.mark.parametrize("index", range(len(CASES)), ids=[_case_id(c) for c in CASES])
def test_matches_keras_apply_gradients_step_by_step(index):
  name, kwargs = CASES[index]
  params, grads = _problem(seed=index, grad_scale=2.0)
  keras_kwargs, exclude = _keras_kwargs(name.lower(), kwargs)
  keras_opt = KERAS[name.lower()](**keras_kwargs)
  if exclude:
    keras_opt.exclude_from_weight_decay(var_names=exclude)
  theirs = _keras_run(keras_opt, params, grads)
  ours = _optax_run(optimizers.get(name, **kwargs), params, grads)
  _assert_same_trajectory(ours, theirs, params)


def test_nadam_rounds_its_betas_to_float32_as_keras():
  """Keras computes `1 - beta_2` from the float32 beta; in double, each step's second moment is off by 6e-6."""
  params, grads = _problem(seed=3, grad_scale=2.0)
  theirs = _keras_run(keras.optimizers.Nadam(learning_rate=0.1), params, grads)
  ours = _optax_run(optimizers.get("nadam", learning_rate=0.1), params, grads)
  for a, b in zip(ours, theirs):
    for k in b:
      np.testing.assert_allclose(np.asarray(a[k]), b[k], rtol=1e-6, atol=5e-7)


def test_jitted_and_injected_learning_rate_changes_like_keras():
  params, grads = _problem(seed=11)
  theirs = _keras_run(keras.optimizers.Adam(learning_rate=0.01, weight_decay=0.1), params, grads,
                      lr_changes={3: 0.002})
  tx = optax.inject_hyperparams(optimizers.adam)(learning_rate=0.01, weight_decay=0.1)
  update = jax.jit(tx.update)
  state = tx.init(params)
  p = jax.tree.map(jnp.asarray, params)
  ours = []
  for step, g in enumerate(grads):
    if step == 3:
      state.hyperparams["learning_rate"] = jnp.asarray(0.002)
    updates, state = update(g, state, p)
    p = optax.apply_updates(p, updates)
    ours.append(p)
  _assert_same_trajectory(ours, theirs, params)


@pytest.mark.parametrize("name", sorted(optimizers.OPTIMIZERS))
def test_state_buffers_are_distinct_so_a_train_step_can_donate_the_state(name):
  params, _ = _problem(seed=0)
  kwargs = {"momentum": 0.9} if name in ("sgd", "rmsprop") else {}
  leaves = jax.tree.leaves(optimizers.get(name, weight_decay=0.1, learning_rate=_cosine, **kwargs).init(params))
  pointers = [leaf.unsafe_buffer_pointer() for leaf in leaves]
  assert len(set(pointers)) == len(pointers)


def test_defaults_are_keras_defaults_where_optax_differs():
  # Keras: Adagrad starts its accumulators at 0.1; Adadelta rho 0.95, eps 1e-7; RMSprop eps 1e-7 inside the sqrt.
  g = {"w": jnp.array([0.5])}
  p = {"w": jnp.array([0.0])}
  tx = optimizers.get("adagrad")
  assert np.isclose(float(tx.update(g, tx.init(p), p)[0]["w"][0]), -0.001 * 0.5 / np.sqrt(0.1 + 0.25 + 1e-7))
  tx = optimizers.get("rmsprop")
  assert np.isclose(float(tx.update(g, tx.init(p), p)[0]["w"][0]), -0.001 * 0.5 / np.sqrt(0.1 * 0.25 + 1e-7))


def test_errors_name_the_parameter_value_and_allowed_values():
  with pytest.raises(ValueError, match=r"name='adamm' is not allowed; expected one of 'sgd', 'adam'"):
    optimizers.get("adamm")
  with pytest.raises(ValueError, match=r"beta1=0.9 is not an argument of optimizer 'adam'; "
                                       r"expected one of: learning_rate, beta_1, beta_2, epsilon, amsgrad"):
    optimizers.get("adam", beta1=0.9)
  with pytest.raises(ValueError, match=r"loss_scale_factor=128.0 is not an argument of optimizer 'sgd'; .* scale "
                                       r"the loss"):
    optimizers.get("sgd", loss_scale_factor=128.0)
  with pytest.raises(ValueError, match=r"clipnorm=1.0, clipvalue=0.5 are not allowed together"):
    optimizers.get("sgd", clipnorm=1.0, clipvalue=0.5)
  with pytest.raises(ValueError, match=r"momentum=1.5 is not allowed; expected a finite float in \[0.0, 1.0\]"):
    optimizers.get("sgd", momentum=1.5)
  with pytest.raises(ValueError, match=r"clipnorm=-1.0 is not allowed; expected a finite float in \(0.0, inf\)"):
    optimizers.get("adam", clipnorm=-1.0)
  with pytest.raises(ValueError, match=r"learning_rate=nan is not allowed; expected a finite float in \[0.0, inf\)"):
    optimizers.get("adam", learning_rate=float("nan"))
  with pytest.raises(ValueError, match=r"epsilon=inf is not allowed; expected a finite float"):
    optimizers.get("adam", epsilon=float("inf"))
  with pytest.raises(ValueError, match=r"weight_decay=None is not allowed for 'adamw'"):
    optimizers.get("adamw", weight_decay=None)
  with pytest.raises(ValueError, match=r"learning_rate='fast' is not allowed"):
    optimizers.get("adam", learning_rate="fast")
  with pytest.raises(ValueError, match=r"nesterov=1 is not allowed; expected True or False"):
    optimizers.get("sgd", momentum=0.9, nesterov=1)


def _nested(history, layer="Dense_0"):
  """A trajectory of `{layer: params}` trees as flat `{name: value}` dicts, Keras's variable names."""
  return [dict(step[layer]) for step in history]


def test_exclude_from_weight_decay_matches_parameter_names_as_keras_matches_variable_names():
  params, grads = _problem(seed=21, grad_scale=2.0)
  keras_opt = keras.optimizers.AdamW(learning_rate=0.05, weight_decay=0.5)
  keras_opt.exclude_from_weight_decay(var_names=["^kernel$"])  # Keras searches `variable.name`, not its path
  theirs = _keras_run(keras_opt, params, grads)
  tx = optimizers.get("adamw", learning_rate=0.05, weight_decay=0.5, exclude_from_weight_decay=["^kernel$"])
  ours = _optax_run(tx, {"Dense_0": params}, [{"Dense_0": g} for g in grads])
  _assert_same_trajectory(_nested(ours), theirs, params)
  with pytest.raises(ValueError, match=r"exclude_from_weight_decay=\['gamma'\].*match no parameter's name.*bias"):
    optimizers.get("adamw", weight_decay=0.5, exclude_from_weight_decay=["gamma"]).init({"Dense_0": params})


class _HalvingSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """A schedule of the user's own: Keras calls it with the step count."""

  def __call__(self, step):
    return 0.1 / (1.0 + keras.ops.cast(step, "float32"))

  def get_config(self):
    return {}


def test_a_keras_optimizer_object_keeps_what_lies_outside_its_config_as_keras():
  """Its `exclude_from_weight_decay(var_names=...)` and a schedule of the user's own (neither is in its config)."""
  params, grads = _problem(seed=25, grad_scale=2.0)

  def keras_optimizer():
    optimizer = keras.optimizers.AdamW(learning_rate=_HalvingSchedule(), weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_names=["bias", "^ker$"])
    return optimizer

  theirs = _keras_run(keras_optimizer(), params, grads)
  ours = _optax_run(optimizers.get(keras_optimizer()), {"Dense_0": params}, [{"Dense_0": g} for g in grads])
  _assert_same_trajectory(_nested(ours), theirs, params)
  by_list = keras.optimizers.AdamW(weight_decay=0.5)
  by_list.exclude_from_weight_decay(var_list=[keras.Variable(np.zeros(2))])
  with pytest.raises(ValueError, match=r"exclude_from_weight_decay\(var_list=...\) is not allowed.*var_names"):
    optimizers.get(by_list)
  undecayed = keras.optimizers.Adam()
  undecayed.exclude_from_weight_decay(var_names=["bias"])  # no weight decay: Keras's exclusion changes nothing
  _assert_same_trajectory(_optax_run(optimizers.get(undecayed), params, grads),
                          _keras_run(keras.optimizers.Adam(), params, grads), params)

  def muon():  # no weight_decay, but its Adam part decays by adam_weight_decay: the exclusions still count
    optimizer = keras.optimizers.Muon(learning_rate=0.1, weight_decay=None, adam_weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    return optimizer

  ours = _optax_run(optimizers.get(muon()), {"Dense_0": params}, [{"Dense_0": g} for g in grads])
  _assert_same_trajectory(_nested(ours), _keras_run(muon(), params, grads), params)


def test_a_misspelled_keras_optimizer_argument_is_named_with_the_arguments_taken():
  for given, meant in (("use_emma", "use_ema"), ("gradient_accumulation_step", "gradient_accumulation_steps"),
                       ("ema_momentun", "ema_momentum")):
    with pytest.raises(ValueError, match=rf"{given}=1 is not an argument of optimizer 'adam'; expected one of: "
                                         rf"learning_rate, .*, use_ema, .* Did you mean {meant}\?"):
      optimizers.get("adam", **{given: 1})
  with pytest.raises(ValueError, match=r"use_ema=True is not an argument of optimizer 'adam' itself; it is taken "
                                       r"before the lookup \(for optimizers: optimizers.get\('adam', use_ema=...\)\)"):
    optimizers.OPTIMIZERS.get("adam", use_ema=True)


def test_a_callable_of_no_argument_is_a_learning_rate_as_keras_calls_it():
  params, grads = _problem(seed=22)
  theirs = _keras_run(keras.optimizers.SGD(learning_rate=lambda: 0.05, momentum=0.5), params, grads)
  for tx in (optimizers.get("sgd", learning_rate=lambda: 0.05, momentum=0.5),
             optimizers.sgd(learning_rate=lambda: 0.05, momentum=0.5)):
    _assert_same_trajectory(_optax_run(tx, params, grads), theirs, params)


def test_a_serialised_keras_optimizer_with_a_schedule_loads_and_moves_as_keras():
  params, grads = _problem(seed=23)
  schedule = keras.optimizers.schedules.CosineDecay(0.05, decay_steps=4, alpha=0.1, warmup_target=0.1,
                                                    warmup_steps=2)
  config = keras.optimizers.serialize(keras.optimizers.Adam(learning_rate=schedule, weight_decay=0.1))
  theirs = _keras_run(keras.optimizers.deserialize(dict(config, config=dict(config["config"]))), params, grads)
  assert isinstance(config["config"]["learning_rate"], dict)
  _assert_same_trajectory(_optax_run(optimizers.get(config), params, grads), theirs, params)


def test_global_clipnorm_makes_every_gradient_nan_when_one_is_not_finite_as_keras():
  params, grads = _problem(seed=24)
  grads[0]["bias"][1] = np.inf
  theirs = _keras_run(keras.optimizers.SGD(learning_rate=0.1, global_clipnorm=1.0), params, grads[:1])
  ours = _optax_run(optimizers.get("sgd", learning_rate=0.1, global_clipnorm=1.0), params, grads[:1])
  for k in SHAPES:
    assert np.isnan(theirs[0][k]).all() and np.isnan(np.asarray(ours[0][k])).all()


def test_bad_learning_rates_and_keras_only_arguments_are_named():
  for bad in ("fast", None):
    with pytest.raises(ValueError, match=r"learning_rate=.* is not allowed; expected a finite float >= 0, a schedule"):
      optimizers.get("adam", learning_rate=bad)
  with pytest.raises(ValueError, match=r"a schedule in a config must be one of Keras's ExponentialDecay"):
    optimizers.get("adam", learning_rate={"class_name": "MySchedule", "config": {}})
  with pytest.raises(ValueError, match=r"name='my_adam' is not an argument of optimizer 'adam'.*carry no name"):
    optimizers.get("adam", name="my_adam")


def test_adafactor_and_ftrl_options_are_checked_as_keras():
  with pytest.raises(ValueError, match=r"learning_rate_power=0.5 is not allowed; expected a finite float in "
                                       r"\[-inf, 0.0\]"):
    optimizers.get("ftrl", learning_rate_power=0.5)
  with pytest.raises(ValueError, match=r"initial_accumulator_value=-0.1 is not allowed"):
    optimizers.get("ftrl", initial_accumulator_value=-0.1)
  with pytest.raises(ValueError, match=r"l1_regularization_strength=-1 is not allowed"):
    optimizers.get("ftrl", l1_regularization_strength=-1)
  with pytest.raises(ValueError, match=r"clip_threshold=0 is not allowed"):
    optimizers.get("adafactor", clip_threshold=0)
  with pytest.raises(ValueError, match=r"relative_step='yes' is not allowed; expected True or False"):
    optimizers.get("adafactor", relative_step="yes")


@pytest.mark.parametrize("name,kwargs", [
    ("adam", {"learning_rate": _warmup, "gradient_accumulation_steps": 3}),
    ("sgd", {"momentum": 0.9, "weight_decay": 0.1, "clipnorm": 0.5, "gradient_accumulation_steps": 2}),
    ("lamb", {"gradient_accumulation_steps": 4}),
])
def test_gradient_accumulation_steps_as_keras(name, kwargs):
  """Keras applies the mean of `steps` batches' gradients at the last of them (a schedule read at that batch's
  count, Adam's bias correction at the count of applied updates) and leaves the weights alone in between."""
  params, grads = _problem(seed=51, grad_scale=2.0)
  grads = grads + _problem(seed=52, grad_scale=2.0)[1]  # 12 batches
  keras_kwargs, _ = _keras_kwargs(name, kwargs)
  theirs = _keras_run(KERAS[name](**keras_kwargs), params, grads)
  ours = _optax_run(optimizers.get(name, **kwargs), params, grads)
  steps = kwargs["gradient_accumulation_steps"]
  applied = [i for i in range(len(grads)) if (i + 1) % steps == 0]
  _assert_same_trajectory([ours[i] for i in applied], [theirs[i] for i in applied], params)
  for i in range(len(grads)):  # between applied updates nothing moves, in Keras as here
    for k in SHAPES:
      np.testing.assert_allclose(ours[i][k], theirs[i][k], rtol=1e-5, atol=1e-7)


def test_gradient_accumulation_steps_from_a_keras_config_and_its_errors():
  config = keras.optimizers.serialize(keras.optimizers.Adam(0.01, gradient_accumulation_steps=2))
  params, grads = _problem(seed=53)
  theirs = _keras_run(keras.optimizers.deserialize(config), params, grads)
  _assert_same_trajectory(_optax_run(optimizers.get(config), params, grads)[1::2], theirs[1::2], params)
  assert optimizers.learning_rate_logs(optimizers.get(config).init(params)) == {"learning_rate": pytest.approx(0.01)}
  for bad in (1, -2, 2.0, True):
    with pytest.raises(ValueError, match=rf"gradient_accumulation_steps={bad!r} is not allowed; expected None or an "
                                         r"integer >= 2"):
      optimizers.get("adam", gradient_accumulation_steps=bad)


@pytest.mark.parametrize("kwargs", [{"use_ema": True}, {"use_ema": True, "ema_momentum": 0.5,
                                                         "ema_overwrite_frequency": 3}])
def test_use_ema_moves_and_overwrites_as_keras(kwargs):
  params, grads = _problem(seed=54, grad_scale=2.0)
  keras_opt = keras.optimizers.Adam(0.05, **kwargs)
  theirs = _keras_run(keras_opt, params, grads)
  tx = optimizers.get("adam", learning_rate=0.05, **kwargs)
  state, current, ours = tx.init(params), jax.tree.map(jnp.asarray, params), []
  for g in grads:
    updates, state = tx.update(g, state, current)
    current = optax.apply_updates(current, updates)
    ours.append(current)
  _assert_same_trajectory(ours, theirs, params)
  averages = {v.name.removesuffix("_average"): np.asarray(v) for v in keras_opt._model_variables_moving_average}
  final = optimizers.ema_params(state, current)
  for k in SHAPES:
    np.testing.assert_allclose(final[k], averages[k], rtol=1e-5, atol=1e-7)


def test_use_ema_options_are_checked_and_read_from_a_keras_config():
  config = keras.optimizers.serialize(keras.optimizers.SGD(0.1, use_ema=True, ema_overwrite_frequency=2))
  state = optimizers.get(config).init({"w": jnp.ones(2)})
  assert isinstance(state, optimizers.KerasEmaState)
  with pytest.raises(ValueError, match=r"ema_momentum=1.5 is not allowed; expected a finite float in \[0.0, 1.0\]"):
    optimizers.get("adam", use_ema=True, ema_momentum=1.5)
  with pytest.raises(ValueError, match=r"ema_overwrite_frequency=0 is not allowed"):
    optimizers.get("adam", use_ema=True, ema_overwrite_frequency=0)
  with pytest.raises(ValueError, match=r"use_ema='yes' is not allowed; expected True or False"):
    optimizers.get("adam", use_ema="yes")


@pytest.mark.parametrize("clip", ["clipnorm", "global_clipnorm", "clipvalue"])
def test_a_clip_of_zero_is_no_clipping_as_keras_reads_it(clip):
  """Keras clips only with a value above 0, so 0 is accepted and changes nothing (two of them at 0 too)."""
  params, grads = {"w": jnp.arange(6.0).reshape(2, 3)}, {"w": jnp.full((2, 3), 50.0)}
  plain, zero = optimizers.get("sgd", learning_rate=0.1), optimizers.get("sgd", learning_rate=0.1, **{clip: 0.0})
  expected, _ = plain.update(grads, plain.init(params), params)
  got, _ = zero.update(grads, zero.init(params), params)
  np.testing.assert_array_equal(got["w"], expected["w"])
  with pytest.raises(ValueError, match=r"are not allowed together"):  # Keras counts the ones given, zeros too
    optimizers.get("sgd", clipnorm=0.0, global_clipnorm=1.0)


def test_a_learning_rate_callable_with_only_defaults_is_called_with_none_as_keras_calls_it():
  params, grads = _problem(seed=23)
  rate = lambda step=0: 0.1 / (1.0 + step)  # Keras calls it with no argument: always 0.1
  theirs = _keras_run(keras.optimizers.SGD(learning_rate=rate), params, grads)
  _assert_same_trajectory(_optax_run(optimizers.get("sgd", learning_rate=rate), params, grads), theirs, params)
