"""Recurrent against keras LSTM / GRU / SimpleRNN / Bidirectional; cells, scan, dropout, errors."""

import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from jaxcomponents.layers.cells import GRUCell, LSTMCell, SimpleRNNCell
from jaxcomponents.layers.recurrent import RNN, Recurrent
from jaxcomponents.weights import load_keras
from tests.helpers import assert_close, random_input, randomize_keras

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)

B, T, F, U = 3, 6, 5, 4
KERAS_LAYERS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}
KERAS_NAMES = {"lstm": "lstm", "gru": "gru", "rnn": "simple_rnn"}
CELLS = {"lstm": LSTMCell, "gru": GRUCell, "rnn": SimpleRNNCell}
STATES = {"lstm": 2, "gru": 1, "rnn": 1}


def keras_model(cell, bidirectional=None, masking=None, initial_state=False, **options):
  """A functional model: Input(s) -> [Masking] -> [Bidirectional(]LSTM/GRU/SimpleRNN[)], randomized."""
  layer = KERAS_LAYERS[cell](U, **options)
  if bidirectional:
    layer = keras.layers.Bidirectional(layer, merge_mode=bidirectional)
  x_in = keras.Input((T, F))
  inputs, kwargs, h = [x_in], {}, x_in
  if masking == "layer":
    h = keras.layers.Masking(0.0)(x_in)
  elif masking in ("mask", "lengths"):
    kwargs["mask"] = keras.Input((T,), dtype="bool")
    inputs.append(kwargs["mask"])
  if initial_state:
    kwargs["initial_state"] = [keras.Input((U,)) for _ in range(STATES[cell] * (2 if bidirectional else 1))]
    inputs.extend(kwargs["initial_state"])
  model = keras.Model(inputs if len(inputs) > 1 else x_in, layer(h, **kwargs))
  randomize_keras(model)
  return model


def sequence_input(masking):
  """(x, our call kwargs, Keras's extra inputs) for a masking mode."""
  x = random_input((B, T, F))
  if masking == "layer":
    x[0, 4:] = 0.0
    x[1, :2] = 0.0
    x[2, 2] = 0.0
    return x, {"mask": np.any(x != 0.0, axis=-1)}, []
  if masking == "mask":
    mask = np.random.default_rng(3).uniform(size=(B, T)) < 0.6
    mask[0, 0], mask[1] = False, True
    mask[2] = False  # a fully masked sequence
    return x, {"mask": mask}, [mask]
  if masking == "lengths":
    lengths = np.array([T, 3, 0], np.int32)
    return x, {"lengths": lengths}, [np.arange(T)[None, :] < lengths[:, None]]
  return x, {}, []


def as_list(y):
  return list(y) if isinstance(y, (tuple, list)) else [y]


PARITY_CASES = [
    # (cell, bidirectional, masking, options)
    ("lstm", None, None, {}),
    ("lstm", None, None, dict(return_sequences=True, return_state=True, go_backwards=True)),
    ("lstm", None, None, dict(activation="relu", recurrent_activation="hard_sigmoid", use_bias=False,
                              return_sequences=True)),
    ("gru", None, None, dict(return_sequences=True, return_state=True)),
    ("gru", None, None, dict(reset_after=False, go_backwards=True, return_state=True)),
    ("gru", None, None, dict(reset_after=False, use_bias=False, activation="selu",
                             recurrent_activation="hard_sigmoid", return_sequences=True)),
    ("gru", None, None, dict(use_bias=False, activation="softsign", go_backwards=True,
                             return_sequences=True)),
    ("rnn", None, None, dict(return_sequences=True, return_state=True)),
    ("rnn", None, None, dict(activation="relu", use_bias=False, go_backwards=True)),
    ("lstm", "concat", None, dict(return_sequences=True)),
    ("lstm", "ave", None, dict(return_sequences=True, return_state=True)),
    ("gru", "sum", None, dict(return_state=True)),
    ("gru", "concat", None, dict(reset_after=False, return_sequences=True)),
    ("rnn", "mul", None, dict(return_sequences=True, return_state=True)),
    ("lstm", None, "layer", dict(return_sequences=True, return_state=True)),
    ("lstm", None, "mask", dict(go_backwards=True, return_sequences=True)),
    ("lstm", None, "lengths", dict(return_state=True, zero_output_for_mask=True)),
    ("lstm", None, "mask", dict(return_sequences=True, zero_output_for_mask=True)),
    ("gru", None, "mask", dict(return_sequences=True, return_state=True)),
    ("gru", None, "layer", dict(reset_after=False, go_backwards=True, return_state=True)),
    ("rnn", None, "lengths", dict(return_sequences=True, go_backwards=True, return_state=True)),
    ("lstm", "concat", "mask", dict(return_sequences=True, return_state=True)),
    ("lstm", "sum", "lengths", dict(return_state=True)),
    ("gru", "ave", "layer", dict(return_sequences=True)),
    ("rnn", "mul", "mask", dict(return_state=True)),
    # Keras's unroll=True: a masked step outputs the previous step's output (zeros before the first)
    ("lstm", "concat", "mask", dict(return_sequences=True, unroll=True)),
    ("gru", None, "layer", dict(return_sequences=True, go_backwards=True, return_state=True, unroll=True)),
    ("rnn", None, "mask", dict(return_sequences=True, unroll=True)),
]


@pytest.mark.parametrize("cell,bidirectional,masking,options", PARITY_CASES)
def test_matches_keras(cell, bidirectional, masking, options):
  model = keras_model(cell, bidirectional, masking, **options)
  layer = Recurrent(U, cell=cell, bidirectional=bidirectional, **options)
  x, kwargs, keras_extra = sequence_input(masking)
  variables = load_keras(layer, model, x)
  expected = as_list(model([x, *keras_extra] if keras_extra else x))
  actual = as_list(layer.apply(variables, x, **kwargs))
  assert len(actual) == len(expected)
  for a, e in zip(actual, expected):
    assert_close(a, e)


@pytest.mark.parametrize("cell,bidirectional,masking", [("lstm", None, "mask"), ("gru", "concat", None),
                                                        ("rnn", "sum", "lengths")])
def test_initial_state_matches_keras(cell, bidirectional, masking):
  options = dict(return_sequences=True, return_state=True)
  model = keras_model(cell, bidirectional, masking, initial_state=True, **options)
  layer = Recurrent(U, cell=cell, bidirectional=bidirectional, **options)
  x, kwargs, keras_extra = sequence_input(masking)
  states = [random_input((B, U), seed=10 + i) for i in range(STATES[cell] * (2 if bidirectional else 1))]
  variables = load_keras(layer, model, x)
  expected = as_list(model([x, *keras_extra, *states]))
  actual = as_list(layer.apply(variables, x, initial_state=states, **kwargs))
  for a, e in zip(actual, expected):
    assert_close(a, e)


def init_params(layer, x):
  return jax.jit(layer.init)(jax.random.key(0), x)["params"]


def test_weight_names_and_default_initializers():
  x = jnp.ones((2, T, F))
  params = init_params(Recurrent(U, bidirectional="concat"), x)
  assert sorted(params) == ["backward_lstm", "forward_lstm"]
  lstm = params["forward_lstm"]
  assert {k: v.shape for k, v in lstm.items()} == {
      "kernel": (F, 4 * U), "recurrent_kernel": (U, 4 * U), "bias": (4 * U,)}
  np.testing.assert_array_equal(lstm["bias"], np.repeat([0.0, 1.0, 0.0, 0.0], U))  # unit_forget_bias
  # orthogonal recurrent kernel (orthonormal rows), glorot-uniform kernel
  np.testing.assert_allclose(lstm["recurrent_kernel"] @ lstm["recurrent_kernel"].T, np.eye(U), atol=1e-5)
  assert np.abs(lstm["kernel"]).max() <= np.sqrt(6.0 / (F + 4 * U))
  assert not np.array_equal(params["forward_lstm"]["kernel"], params["backward_lstm"]["kernel"])
  no_forget = init_params(Recurrent(U, unit_forget_bias=False), x)["lstm"]["bias"]
  np.testing.assert_array_equal(no_forget, np.zeros(4 * U))
  shapes = lambda layer: jax.tree.map(lambda a: a.shape,
                                      jax.eval_shape(layer.init, jax.random.key(0), x)["params"])
  assert shapes(Recurrent(U, cell="gru"))["gru"]["bias"] == (2, 3 * U)
  assert shapes(Recurrent(U, cell="gru", reset_after=False))["gru"]["bias"] == (3 * U,)
  assert shapes(Recurrent(U, cell="rnn", use_bias=False)) == {
      "simple_rnn": {"kernel": (F, U), "recurrent_kernel": (U, U)}}


@pytest.mark.parametrize("cell,go_backwards,zero_output", [("lstm", True, False), ("gru", False, True),
                                                           ("rnn", False, False)])
def test_scan_equals_python_loop_of_cell(cell, go_backwards, zero_output):
  layer = Recurrent(U, cell=cell, return_sequences=True, return_state=True, go_backwards=go_backwards,
                    zero_output_for_mask=zero_output)
  x = random_input((B, T, F))
  lengths = np.array([T, 2, 4])
  variables = layer.init(jax.random.key(0), x)
  y, *states = layer.apply(variables, x, lengths=lengths)

  step = CELLS[cell](U)
  cell_vars = {"params": variables["params"][KERAS_NAMES[cell]]}
  carry = tuple(jnp.zeros((B, U)) for _ in range(STATES[cell]))
  outputs = []
  for t in (reversed(range(T)) if go_backwards else range(T)):
    new_carry, out = step.apply(cell_vars, carry, x[:, t])
    keep = (t < lengths)[:, None]
    out = jnp.where(keep, out, 0.0 if zero_output else carry[0])
    carry = tuple(jnp.where(keep, n, o) for n, o in zip(new_carry, carry))
    outputs.append(out)
  assert_close(y, jnp.stack(outputs, axis=1), tol=1e-6)
  for s, c in zip(states, carry):
    assert_close(s, c, tol=1e-6)


def count_equations(jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    total += 1
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      total += count_equations(sub)
  return total


@pytest.mark.parametrize("bidirectional", [None, "concat"])
def test_trace_does_not_unroll_time(bidirectional):
  layer = Recurrent(U, cell="lstm", bidirectional=bidirectional, return_sequences=True, dropout=0.2,
                    recurrent_dropout=0.2)
  variables = layer.init(jax.random.key(0), jnp.ones((B, 5, F)))

  def size(time):
    fn = lambda x, m: layer.apply(variables, x, mask=m, train=True, rngs={"dropout": jax.random.key(1)})
    jaxpr = jax.make_jaxpr(fn)(jnp.ones((B, time, F)), jnp.ones((B, time), bool))
    assert "scan" in str(jaxpr)
    return count_equations(jaxpr.jaxpr)

  assert size(5) == size(50)


def test_kerass_unroll_true_never_equals_the_speed_setting_1():
  """True == 1 in Python: kept as "keras", so a jit keyed on the module compiles each of them."""
  keras_unrolled, scanned = Recurrent(U, unroll=True), Recurrent(U, unroll=1)
  assert keras_unrolled.unroll == "keras" and keras_unrolled.clone().unroll == "keras"
  assert keras_unrolled != scanned and hash(keras_unrolled) != hash(scanned)
  with pytest.raises(ValueError, match=r"unroll=2 is not allowed; expected one of False, True"):
    RNN(LSTMCell(U), unroll=2).init(jax.random.key(0), random_input((B, T, F)))


def test_unroll_changes_nothing_but_speed():
  x = random_input((B, 7, F))
  ref = Recurrent(U, cell="gru", return_sequences=True)
  variables = ref.init(jax.random.key(0), x)
  expected = ref.apply(variables, x, lengths=np.array([7, 3, 5]))
  unrolled = Recurrent(U, cell="gru", return_sequences=True, unroll=3)
  assert_close(unrolled.apply(variables, x, lengths=np.array([7, 3, 5])), expected, tol=1e-6)


# Dropout: Keras 3's cell math with given masks (Keras caches a cell's masks; we set them), then the layer.

@pytest.mark.parametrize("cell,reset_after,recurrent_dropout", [
    ("lstm", True, 0.0), ("lstm", True, 0.3), ("gru", True, 0.0), ("gru", True, 0.3), ("gru", False, 0.3),
    ("rnn", True, 0.3),
])
def test_cell_dropout_matches_keras(cell, reset_after, recurrent_dropout):
  options = {"reset_after": reset_after} if cell == "gru" else {}
  model = keras_model(cell, dropout=0.4, recurrent_dropout=recurrent_dropout, **options)
  variables = load_keras(Recurrent(U, cell=cell, **options), model, random_input((B, T, F)))
  keras_cell = model.layers[-1].cell
  rng = np.random.default_rng(5)
  gates = {"lstm": 4, "gru": 3}.get(cell) if recurrent_dropout else None

  def masks(n, rate):
    shape = (gates, B, n) if gates else (B, n)
    return (rng.uniform(size=shape) > rate).astype(np.float32) / (1.0 - rate)

  input_mask = masks(F, 0.4)
  recurrent_mask = masks(U, recurrent_dropout) if recurrent_dropout else None
  keras_cell._dropout_mask = list(input_mask) if gates else input_mask
  keras_cell._recurrent_dropout_mask = None if recurrent_mask is None else (
      list(recurrent_mask) if gates else recurrent_mask)
  x = random_input((B, F), seed=7)
  carry = tuple(random_input((B, U), seed=8 + i) for i in range(STATES[cell]))
  expected, _ = keras_cell(x, list(carry), training=True)
  _, actual = CELLS[cell](U, **options).apply({"params": variables["params"][KERAS_NAMES[cell]]}, carry, x,
                                              input_mask, recurrent_mask)
  assert_close(actual, expected)


def identity_rnn(dropout=0.0, recurrent_dropout=0.0, recurrent_kernel=0.0):
  """A linear SimpleRNN with kernel I and recurrent kernel r*I: h_t = x_t*m + r * h_{t-1}*m_rec."""
  layer = Recurrent(F, cell="rnn", activation="linear", use_bias=False, return_sequences=True,
                    dropout=dropout, recurrent_dropout=recurrent_dropout)
  params = {"simple_rnn": {"kernel": jnp.eye(F), "recurrent_kernel": recurrent_kernel * jnp.eye(F)}}
  return layer, {"params": params}


def test_input_dropout_mask_is_fixed_across_time():
  layer, variables = identity_rnn(dropout=0.5)
  x = jnp.ones((8, 10, F))
  np.testing.assert_array_equal(layer.apply(variables, x), x)  # no dropout at inference
  without_dropout, _ = identity_rnn()
  np.testing.assert_array_equal(without_dropout.apply(variables, x, train=True), x)  # needs no rng
  y = np.asarray(layer.apply(variables, x, train=True, rngs={"dropout": jax.random.key(0)}))
  np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1], y.shape))  # same mask at every step
  assert set(np.unique(y)) == {0.0, 2.0}  # Keras's inverted dropout: kept / (1 - rate)


def test_recurrent_dropout_mask_is_fixed_across_time():
  layer, variables = identity_rnn(recurrent_dropout=0.5, recurrent_kernel=1.0)
  x = jnp.ones((8, 6, F))
  y = np.asarray(layer.apply(variables, x, train=True, rngs={"dropout": jax.random.key(0)}))
  m = y[:, 1] - 1.0  # h_1 = 1, h_2 = 1 + m; with a fixed mask m: h_t = 1 + m * h_{t-1}
  assert set(np.unique(m)) == {0.0, 2.0}
  for t in range(1, y.shape[1]):
    np.testing.assert_array_equal(y[:, t], 1.0 + m * y[:, t - 1])


@pytest.mark.parametrize("cell,bidirectional", [("lstm", None), ("gru", "concat")])
def test_dropout_only_in_training_and_deterministic(cell, bidirectional):
  layer = Recurrent(U, cell=cell, bidirectional=bidirectional, return_sequences=True, dropout=0.3,
                    recurrent_dropout=0.3)
  x = random_input((B, T, F))
  variables = {"params": init_params(layer, x)}
  apply = jax.jit(
      lambda seed, train: layer.apply(variables, x, train=train, rngs={"dropout": jax.random.key(seed)}),
      static_argnums=1)
  infer = apply(1, False)
  np.testing.assert_array_equal(apply(2, False), infer)
  np.testing.assert_array_equal(apply(1, True), apply(1, True))
  assert not np.allclose(apply(1, True), apply(2, True))
  assert not np.allclose(apply(1, True), infer)


# Errors

@pytest.mark.parametrize("kwargs,match", [
    (dict(cell="lstmx"), r"cell='lstmx'.*'lstm', 'gru', 'rnn'"),
    (dict(bidirectional="max"), r"bidirectional='max'.*'concat', 'sum', 'mul', 'ave'"),
    (dict(activation="nope"), r"activation='nope'.*'tanh'"),
    (dict(recurrent_activation="nope"), r"recurrent_activation='nope'.*'sigmoid'"),
    (dict(features=0), r"features=0.*positive integer"),
    (dict(features=-2), r"features=-2.*positive integer"),
    (dict(dropout=1.0), r"dropout=1.0.*\[0, 1\)"),
    (dict(recurrent_dropout=-0.1), r"recurrent_dropout=-0.1.*\[0, 1\)"),
    (dict(unroll=0), r"unroll=0.*positive integer"),
    (dict(bidirectional="concat", go_backwards=True), r"go_backwards=True.*bidirectional='concat'"),
    (dict(cell="lstm", reset_after=False), r"reset_after=False.*cell='lstm'.*'gru'"),
    (dict(cell="rnn", recurrent_activation="relu"), r"recurrent_activation='relu'.*cell='rnn'"),
    (dict(cell="gru", unit_forget_bias=False), r"unit_forget_bias=False.*cell='gru'.*'lstm'"),
])
def test_bad_configuration_raises(kwargs, match):
  kwargs = {"features": U, **kwargs}
  with pytest.raises(ValueError, match=match):
    Recurrent(**kwargs).init(jax.random.key(0), jnp.ones((B, T, F)))


@pytest.mark.parametrize("shape,kwargs,match", [
    ((B, F), {}, r"x has shape \(3, 5\) \(rank 2\); expected rank 3"),
    ((B, T, F, 1), {}, r"x has shape .*\(rank 4\); expected rank 3"),
    ((B, 0, F), {}, r"x has shape \(3, 0, 5\); expected at least one time step"),
    ((B, T, F), dict(mask=np.ones((B, T + 1), bool)), r"mask has shape \(3, 7\); expected .* \(3, 6\)"),
    ((B, T, F), dict(mask=np.ones((B,), bool)), r"mask has shape \(3,\); expected"),
    ((B, T, F), dict(lengths=np.ones((B, 1), np.int32)), r"lengths has shape \(3, 1\).*\(batch,\) = \(3,\)"),
    ((B, T, F), dict(lengths=np.ones((B,), np.float32)), r"lengths .* dtype float32; expected integers"),
    ((B, T, F), dict(lengths=np.array([3, -1, 2])), r"lengths \[-1\] \(batch rows \[1\]\) are not allowed; expected "
                                                   r"lengths in \[0, 6\]"),
    ((B, T, F), dict(lengths=np.array([7, 6, 9])), r"lengths \[7, 9\] \(batch rows \[0, 2\]\) are not allowed"),
    ((B, T, F), dict(mask=np.ones((B, T), bool), lengths=np.ones((B,), np.int32)), r"mask and lengths"),
    ((B, T, F), dict(initial_state=[np.zeros((B, U))]), r"initial_state has 1 arrays.*expected 2"),
    ((B, T, F), dict(initial_state=[np.zeros((B, U)), np.zeros((B, U + 1))]),
     r"initial_state .*\(3, 5\).*expected 2 .*\(3, 4\)"),
])
def test_bad_call_raises(shape, kwargs, match):
  layer = Recurrent(U)
  with pytest.raises(ValueError, match=match):
    layer.init(jax.random.key(0), jnp.ones(shape), **kwargs)


# A cell module passed in (issue 18): configured built-in cells, and a cell of the user's own.

@pytest.mark.parametrize("name,cell,options", [
    ("lstm", LSTMCell(5, recurrent_activation="hard_sigmoid", unit_forget_bias=False),
     dict(recurrent_activation="hard_sigmoid", unit_forget_bias=False)),
    ("gru", GRUCell(5, reset_after=False), dict(reset_after=False)),
    ("rnn", SimpleRNNCell(5, activation="relu"), dict(activation="relu")),
])
@pytest.mark.parametrize("bidirectional", [None, "concat"])
def test_a_cell_module_computes_what_the_named_cell_computes(name, cell, options, bidirectional):
  x = jnp.asarray(random_input((3, 6, 4)))
  lengths = jnp.array([6, 2, 4])
  by_name = Recurrent(5, cell=name, return_sequences=True, bidirectional=bidirectional, **options)
  by_module = Recurrent(cell=cell, return_sequences=True, bidirectional=bidirectional)
  variables = by_name.init(jax.random.key(0), x)
  assert jax.tree.structure(by_module.init(jax.random.key(1), x)) == jax.tree.structure(variables)
  np.testing.assert_array_equal(by_module.apply(variables, x, lengths=lengths),
                                by_name.apply(variables, x, lengths=lengths))
  dropout = dict(dropout=0.3, recurrent_dropout=0.2)
  rngs = {"dropout": jax.random.key(2)}
  np.testing.assert_array_equal(
      Recurrent(cell=cell, bidirectional=bidirectional, **dropout).apply(variables, x, train=True, rngs=rngs),
      Recurrent(5, cell=name, bidirectional=bidirectional, **options, **dropout).apply(variables, x, train=True,
                                                                                        rngs=rngs))


class MinimalGatedCell(nn.Module):
  """A cell of one's own: h' = (1 - f) * h + f * tanh(W x + U h), f = sigmoid(w_f x) (two gates, one state)."""

  features: int
  num_states = 1
  gates = 2
  keras_name = "minimal_gated"

  @nn.compact
  def __call__(self, carry, x, input_mask=None, recurrent_mask=None):
    (h,) = carry
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], 2 * self.features))
    recurrent = self.param("recurrent_kernel", nn.initializers.orthogonal(), (self.features, self.features))
    xi, xf = jnp.split(x @ kernel, 2, axis=-1)
    f = jax.nn.sigmoid(xf)
    h = (1 - f) * h + f * jnp.tanh(xi + h @ recurrent)
    return (h,), h


def test_a_cell_of_ones_own_is_scanned_like_a_loop_and_trains():
  x = jnp.asarray(random_input((2, 5, 3)))
  layer = Recurrent(cell=MinimalGatedCell(4), return_sequences=True, return_state=True)
  variables = layer.init(jax.random.key(0), x)
  assert list(variables["params"]) == ["minimal_gated"]
  ys, h = layer.apply(variables, x)
  cell, carry, expected = MinimalGatedCell(4), (jnp.zeros((2, 4)),), []
  for t in range(5):
    carry, y = cell.apply({"params": variables["params"]["minimal_gated"]}, carry, x[:, t])
    expected.append(y)
  np.testing.assert_allclose(ys, jnp.stack(expected, axis=1), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(h, carry[0], rtol=1e-6, atol=1e-6)
  grads = jax.grad(lambda v: jnp.sum(layer.apply(v, x)[0] ** 2))(variables)
  assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads))
  both = Recurrent(cell=MinimalGatedCell(4), bidirectional="sum")
  assert sorted(both.init(jax.random.key(0), x)["params"]) == ["backward_minimal_gated", "forward_minimal_gated"]


class NotACell(nn.Module):
  pass


@pytest.mark.parametrize("layer,match", [
    (Recurrent(3, cell=LSTMCell(4)), r"features=3 is not allowed with cell=LSTMCell\(features=4\); expected None "
                                     r"or 4"),
    (Recurrent(cell=LSTMCell(4), activation="relu"),
     r"activation='relu' is not allowed with a cell module; configure the cell itself \(LSTMCell"),
    (Recurrent(cell=nn.Dense(4)), r"cell=Dense is not allowed; a cell module needs \['num_states', 'gates'"),
    (Recurrent(cell=NotACell()), r"cell=NotACell is not allowed; a cell module needs \['features', 'num_states'"),
    (Recurrent(cell="lstm"), r"features=None is not allowed"),
])
def test_cell_module_errors(layer, match):
  with pytest.raises(ValueError, match=match):
    layer.init(jax.random.key(0), jnp.ones((1, 2, 3)))
