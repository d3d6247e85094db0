"""ConvLSTM1D/2D/3D, RNN(cell) with StackedRNNCells, Bidirectional(backward_layer), stateful layers: against Keras."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from jaxcomponents.layers.cells import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells, dropout_masks, state_shapes
from jaxcomponents.layers.conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D, ConvLSTMCell
from jaxcomponents.layers.recurrent import RNN, Bidirectional, Recurrent, reset_states, scan_cell
from jaxcomponents import Model
from jaxcomponents.weights import from_keras, to_keras
from tests.helpers import assert_close, random_input
from tests.keras_model_zoo import randomize

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)
L = keras.layers
TOL = 1e-5


def as_list(y):
  """Outputs flat (Keras nests a stacked RNN's states by cell)."""
  return [v for part in y for v in as_list(part)] if isinstance(y, (tuple, list)) else [y]


def all_close(ours, theirs, tol=TOL):
  ours, theirs = as_list(ours), as_list(theirs)
  assert len(ours) == len(theirs)
  for a, b in zip(ours, theirs):
    assert_close(a, np.asarray(b), tol)


def keras_params(layer):
  """A Keras layer's weights as params nested by their path below the layer."""
  params = {}
  for w in layer.weights:
    node = params
    *parents, leaf = w.path.split("/")[1:]
    for part in parents:
      node = node.setdefault(part, {})
    node[leaf] = np.asarray(w)
  return params


def random_weights(layer, seed=0):
  rng = np.random.default_rng(seed)
  for w in layer.weights:
    w.assign(rng.normal(0.0, 0.4, tuple(w.shape)).astype(np.float32))


def sequence_mask(batch, time, seed=3):
  mask = np.random.default_rng(seed).uniform(size=(batch, time)) < 0.6
  mask[0, 0], mask[1] = False, True
  mask[-1, :] = False  # a fully masked sequence
  return mask


# ConvLSTM1D/2D/3D.

CONV_CASES = [
    # (keras class, ours, input shape, options, masked)
    (L.ConvLSTM2D, ConvLSTM2D, (2, 4, 6, 5, 3), dict(filters=3, kernel_size=3, padding="same", return_sequences=True,
                                                     return_state=True), False),
    (L.ConvLSTM2D, ConvLSTM2D, (2, 4, 7, 6, 3), dict(filters=2, kernel_size=(3, 2), strides=2, go_backwards=True),
     False),
    (L.ConvLSTM1D, ConvLSTM1D, (2, 4, 9, 3), dict(filters=2, kernel_size=3, dilation_rate=2, activation="relu",
                                                  recurrent_activation="hard_sigmoid", return_sequences=True), False),
    (L.ConvLSTM3D, ConvLSTM3D, (2, 3, 4, 5, 4, 2), dict(filters=2, kernel_size=2, padding="same", use_bias=False,
                                                        return_state=True), False),
    # Keras on JAX applies a mask to ConvLSTM only in its unrolled loop (see jaxcomponents.layers.conv_lstm).
    (L.ConvLSTM2D, ConvLSTM2D, (3, 4, 6, 5, 3), dict(filters=3, kernel_size=3, padding="same", return_sequences=True,
                                                     return_state=True, unroll=True), True),
    (L.ConvLSTM1D, ConvLSTM1D, (3, 5, 7, 2), dict(filters=2, kernel_size=3, go_backwards=True, return_state=True,
                                                  unroll=True), True),
]


@pytest.mark.parametrize("keras_class,ours,shape,options,masked", CONV_CASES)
def test_conv_lstm_matches_keras(keras_class, ours, shape, options, masked):
  layer = keras_class(**options)
  x = random_input(shape)
  kwargs = {"mask": sequence_mask(*shape[:2])} if masked else {}
  layer(x, **kwargs)
  random_weights(layer)
  params = keras_params(layer)
  assert set(params) == {"conv_lstm_cell"}
  ours_options = {("features" if k == "filters" else k): v for k, v in options.items()}  # one name: features
  all_close(ours(**ours_options).apply({"params": params}, x, **kwargs), layer(x, **kwargs))


def test_conv_lstm_initial_state_and_weight_layout():
  layer = L.ConvLSTM2D(3, 3, padding="valid", return_sequences=True)
  x = random_input((2, 4, 6, 5, 2))
  states = [random_input((2, 4, 3, 3), seed=10 + i) for i in range(2)]
  layer(x, initial_state=states)
  random_weights(layer)
  ours = ConvLSTM2D(3, 3, padding="valid", return_sequences=True)
  shapes = jax.eval_shape(ours.init, jax.random.key(0), x)["params"]["conv_lstm_cell"]
  assert {k: v.shape for k, v in shapes.items()} == {k: tuple(v.shape) for k, v in
                                                   keras_params(layer)["conv_lstm_cell"].items()}
  all_close(ours.apply({"params": keras_params(layer)}, x, initial_state=states), layer(x, initial_state=states))


class _ScanConvLSTM(nn.Module):
  """A ConvLSTM2D cell scanned with given dropout masks."""

  @nn.compact
  def __call__(self, x, masks):
    cell = ConvLSTMCell(2, (3, 3), padding="same", dropout=0.3, recurrent_dropout=0.4, name="conv_lstm_cell")
    states = tuple(jnp.zeros(s) for s in state_shapes(cell, (x.shape[0], *x.shape[2:])))
    return scan_cell(cell, states, x, None, masks, go_backwards=False, zero_output=False, return_sequences=True)[0]


def test_conv_lstm_dropout_matches_keras_given_the_same_masks():
  layer = L.ConvLSTM2D(2, 3, padding="same", dropout=0.3, recurrent_dropout=0.4, return_sequences=True)
  x = random_input((2, 3, 5, 4, 2))
  layer(x)
  random_weights(layer)
  cell = ConvLSTMCell(2, (3, 3), padding="same", dropout=0.3, recurrent_dropout=0.4)
  masks = dropout_masks(cell, jax.random.key(0), (2, 5, 4, 2), jnp.float32)
  assert masks[0].shape == (4, 2, 5, 4, 2) and masks[1].shape == (4, 2, 5, 4, 2)  # Keras: one per gate
  layer.cell._dropout_mask = list(masks[0])  # Keras keeps its masks for every step of the call
  layer.cell._recurrent_dropout_mask = list(masks[1])
  expected = layer(x, training=True)
  all_close(_ScanConvLSTM().apply({"params": keras_params(layer)}, x, masks), expected)
  ours = ConvLSTM2D(2, 3, padding="same", dropout=0.3, recurrent_dropout=0.4, return_sequences=True)
  params = {"params": keras_params(layer)}
  a, b = (ours.apply(params, x, train=True, rngs={"dropout": jax.random.key(1)}) for _ in range(2))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, ours.apply(params, x))


def test_conv_lstm_errors():
  x = jnp.ones((1, 3, 5, 5, 2))
  with pytest.raises(ValueError, match="padding='causal'"):
    ConvLSTM2D(2, 3, padding="causal").init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="strides=2 with dilation_rate=2"):
    ConvLSTM2D(2, 3, strides=2, dilation_rate=2).init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="expected rank 5"):
    ConvLSTM2D(2, 3).init(jax.random.key(0), jnp.ones((1, 3, 5, 2)))
  with pytest.raises(ValueError, match="kernel_size"):
    ConvLSTM2D(2, (3, 3, 3)).init(jax.random.key(0), x)


# RNN(cell) and StackedRNNCells.

def keras_cell(kind, units, name, **options):
  return {"lstm": L.LSTMCell, "gru": L.GRUCell, "rnn": L.SimpleRNNCell}[kind](units, name=name, **options)


def our_cell(kind, units, **options):
  return {"lstm": LSTMCell, "gru": GRUCell, "rnn": SimpleRNNCell}[kind](units, **options)


RNN_CASES = [
    # (cells [(kind, units, options)], layer options, masked, initial state)
    ([("lstm", 4, {})], dict(return_sequences=True, return_state=True), False, False),
    ([("gru", 3, dict(reset_after=False))], dict(go_backwards=True, return_state=True), True, False),
    ([("rnn", 3, dict(activation="relu"))], dict(return_sequences=True), True, True),
    ([("lstm", 4, {}), ("gru", 3, {})], dict(return_sequences=True, return_state=True), False, True),
    ([("gru", 3, {}), ("lstm", 4, dict(recurrent_activation="hard_sigmoid")), ("rnn", 2, {})],
     dict(return_sequences=True, return_state=True, go_backwards=True), True, False),
    ([("lstm", 3, {}), ("lstm", 3, {})], dict(return_state=True, zero_output_for_mask=True), True, True),
    ([("lstm", 3, {}), ("gru", 2, {})], dict(return_sequences=True, unroll=True), True, True),
]


@pytest.mark.parametrize("cells,options,masked,initial", RNN_CASES)
def test_rnn_of_cells_matches_keras(cells, options, masked, initial):
  names = [f"cell_{i}" for i in range(len(cells))]
  stacked = len(cells) > 1
  k_cells = [keras_cell(kind, units, name, **o) for (kind, units, o), name in zip(cells, names)]
  k_layer = L.RNN(L.StackedRNNCells(k_cells, name="stack") if stacked else k_cells[0], **options)
  x = random_input((3, 5, 4))
  kwargs = {"mask": sequence_mask(3, 5)} if masked else {}
  flat_states = []
  if initial:
    keras_states = []
    for i, (kind, units, _) in enumerate(cells):
      own = [random_input((3, units), seed=20 + 2 * i + j) for j in range(2 if kind == "lstm" else 1)]
      keras_states.append(own)
      flat_states.extend(own)
    kwargs["initial_state"] = keras_states if stacked else keras_states[0]
  k_layer(x, **kwargs)
  random_weights(k_layer)
  cell = (StackedRNNCells([our_cell(k, u, **o) for k, u, o in cells], names=names) if stacked
          else our_cell(*cells[0][:2], **cells[0][2]))
  layer = RNN(cell, **options, cell_name="stack" if stacked else names[0])
  ours = layer.apply({"params": keras_params(k_layer)}, x, **kwargs)
  all_close(ours, k_layer(x, **kwargs))
  if initial:  # the states may also come flat, in return_state's order
    all_close(layer.apply({"params": keras_params(k_layer)}, x, **{**kwargs, "initial_state": flat_states}), ours)


def test_a_stack_of_cells_returning_its_nested_states_converts_whole_in_kerass_weight_order():
  inputs = keras.Input((5, 4))
  outputs = L.RNN([L.LSTMCell(3), L.GRUCell(2, reset_after=False)], return_sequences=True, return_state=True)(inputs)
  model = keras.Model(inputs, outputs)  # the output (sequence, [h, c], h): the LSTM cell's states as one list
  randomize(model, 2)
  x = random_input((3, 5, 4))
  module, variables = from_keras(model, check=x)
  ours = module.apply(variables, x)
  assert jax.tree.structure(ours) == jax.tree.structure((0, (0, 0), 0))
  all_close(jax.tree.leaves(ours), keras.tree.flatten(model(x)))
  twin = Model(module, variables)  # the cells' weights in the stack's order, as Keras lists them
  assert [w.shape for w in twin.get_weights()] == [w.shape for w in model.get_weights()]
  twin.set_weights(model.get_weights())
  all_close(jax.tree.leaves(twin.predict(x, verbose=0)), keras.tree.flatten(model(x)))


def test_stacked_cells_default_names_are_keras_automatic_names():
  stack = StackedRNNCells([LSTMCell(2), LSTMCell(2), GRUCell(2)])
  assert stack.cell_names() == ["lstm_cell", "lstm_cell_1", "gru_cell"]
  with pytest.raises(ValueError, match="names="):
    StackedRNNCells([LSTMCell(2), GRUCell(2)], names=["a", "a"]).cell_names()


# Bidirectional with its own backward layer.

BIDIRECTIONAL_CASES = [
    (lambda: L.LSTM(4, return_sequences=True), lambda: L.GRU(3, return_sequences=True, go_backwards=True), "concat",
     False),
    (lambda: L.GRU(3, return_state=True), lambda: L.GRU(3, reset_after=False, go_backwards=True, return_state=True,
                                                      activation="relu"), "sum", True),
    (lambda: L.SimpleRNN(3, return_sequences=True), lambda: L.SimpleRNN(3, return_sequences=True, go_backwards=True,
                                                                       use_bias=False), None, True),
    (lambda: L.ConvLSTM1D(2, 3, padding="same", return_sequences=True),
     lambda: L.ConvLSTM1D(2, 1, padding="same", return_sequences=True, go_backwards=True), "ave", False),
    # the forward layer's mirror, but named apart: each direction keeps its own weights
    (lambda: L.LSTM(3, return_sequences=True, name="enc"),
     lambda: L.LSTM(3, return_sequences=True, go_backwards=True, name="zz"), "concat", True),
    # the roles swapped: Keras runs its forward layer backwards
    (lambda: L.GRU(3, return_sequences=True, go_backwards=True), lambda: L.GRU(3, return_sequences=True), None,
     False),
]


@pytest.mark.parametrize("forward,backward,merge_mode,masked", BIDIRECTIONAL_CASES)
def test_bidirectional_backward_layer_matches_keras(forward, backward, merge_mode, masked):
  forward, backward = forward(), backward()
  conv = isinstance(forward, L.ConvLSTM1D)
  shape = (3, 5, 6, 2) if conv else (3, 5, 4)
  inputs = keras.Input(shape[1:])
  kwargs = {}
  if masked:
    kwargs["mask"] = keras.Input(shape[1:2], dtype="bool")
  y = L.Bidirectional(forward, merge_mode=merge_mode, backward_layer=backward)(inputs, **kwargs)
  if isinstance(y, (list, tuple)):  # a layer with one output after it, for from_keras's layer-by-layer check
    y = L.Concatenate()(list(y))
  model = keras.Model([inputs, *kwargs.values()], y)
  randomize(model, 1)
  x = [random_input(shape)] + ([sequence_mask(3, 5)] if masked else [])
  module, variables = from_keras(model, check=x)
  all_close(module.apply(variables, *x), model(x))
  assert_round_trip(model, module, variables, x)


def test_bidirectional_layer_checks():
  x = jnp.ones((2, 3, 4))
  with pytest.raises(ValueError, match="go_backwards"):
    Bidirectional(Recurrent(2), backward_layer=Recurrent(2)).init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="return_sequences"):
    Bidirectional(Recurrent(2), backward_layer=Recurrent(2, go_backwards=True, return_sequences=True)).init(
        jax.random.key(0), x)
  with pytest.raises(ValueError, match="merge_mode"):
    Bidirectional(Recurrent(2), merge_mode="max").init(jax.random.key(0), x)
  with pytest.raises(ValueError, match=r"backward_layer with go_backwards=True is not allowed"):  # as Keras
    Bidirectional(Recurrent(2, go_backwards=True)).init(jax.random.key(0), x)


def test_conv_lstm_padding_in_any_case_as_keras():
  x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 3, 6, 2)), jnp.float32)
  for padding in ("SAME", "Valid"):
    layer = ConvLSTM1D(2, 3, padding=padding)
    variables = layer.init(jax.random.key(0), x)
    expected = ConvLSTM1D(2, 3, padding=padding.lower()).apply(variables, x)
    np.testing.assert_array_equal(layer.apply(variables, x), expected)


# Stateful layers.

def stateful_model(kind):
  inputs = keras.Input(batch_shape=(2, 4, 3))
  if kind == "lstm":
    y = L.LSTM(3, stateful=True, return_sequences=True)(inputs)
  elif kind == "stack":
    cells = [L.GRUCell(3, name="first"), L.SimpleRNNCell(2, name="second")]
    y = L.RNN(L.StackedRNNCells(cells), stateful=True, return_state=True)(inputs)
  elif kind == "bidirectional":
    y = L.Bidirectional(L.GRU(3, stateful=True))(inputs)
  else:
    y = L.ConvLSTM1D(2, 2, stateful=True)(L.Reshape((4, 3, 1))(inputs))
  return keras.Model(inputs, y)


@pytest.mark.parametrize("kind", ["lstm", "stack", "bidirectional", "conv"])
def test_stateful_states_carry_over_calls_and_reset_like_keras(kind):
  model = stateful_model(kind)
  randomize(model, 2)
  batches = [random_input((2, 4, 3), seed=s) for s in range(3)]
  module, variables = from_keras(model)
  assert "states" not in variables
  for x in batches[:2]:  # consecutive batches: Keras calls its model, we apply with the states mutable
    ours, kept = module.apply(variables, x, mutable=["states"])
    variables = {**variables, **kept}
    all_close(ours, model(x))
  assert not np.allclose(as_list(module.apply(variables, batches[2]))[0],
                         as_list(module.apply(reset_states(variables), batches[2]))[0])
  for layer in model.layers:  # Keras's reset_states(), which fails on a stack's states nested by cell
    for state in keras.tree.flatten(getattr(layer, "states", None) or []):
      state.assign(np.zeros(state.shape, np.float32))
    for half in (getattr(layer, "forward_layer", None), getattr(layer, "backward_layer", None)):
      if half is not None:
        half.reset_states()
  variables = reset_states(variables)
  ours, _ = module.apply(variables, batches[2], mutable=["states"])
  all_close(ours, model(batches[2]))


def test_stateful_batch_size_is_fixed_and_states_are_read_only_when_immutable():
  layer = Recurrent(3, cell="gru", stateful=True)
  x = random_input((2, 4, 3))
  variables = layer.init(jax.random.key(0), x)
  assert "states" not in variables
  y, kept = layer.apply(variables, x, mutable=["states"])
  variables = {**variables, **kept}
  assert kept["states"]["rnn_state"][0].shape == (2, 3)
  np.testing.assert_allclose(layer.apply(variables, x), layer.apply(variables, x))  # not updated: not mutable
  with pytest.raises(ValueError, match="batch size"):
    layer.apply(variables, random_input((3, 4, 3)))
  assert layer.apply(reset_states(variables, drop=True), random_input((3, 4, 3))).shape == (3, 3)


# Whole models through from_keras and back through to_keras.

def assert_round_trip(model, module, variables, x):
  fresh = keras.models.clone_model(model)
  randomize(fresh, 99)
  to_keras(module, variables, fresh)
  all_close(as_list(fresh(x)), as_list(model(x)))


def next_frame_model():
  """The keras.io next-frame prediction model (ConvLSTM2D stack, BatchNormalization, Conv3D head), tiny."""
  inputs = keras.Input((None, 8, 8, 1))
  x = L.ConvLSTM2D(4, (5, 5), padding="same", return_sequences=True, activation="relu")(inputs)
  x = L.BatchNormalization()(x)
  x = L.ConvLSTM2D(4, (3, 3), padding="same", return_sequences=True, activation="relu")(x)
  x = L.BatchNormalization()(x)
  x = L.ConvLSTM2D(4, (1, 1), padding="same", return_sequences=True, activation="relu")(x)
  x = L.Conv3D(1, (3, 3, 3), activation="sigmoid", padding="same")(x)
  return keras.Model(inputs, x), random_input((2, 4, 8, 8, 1))


def seq2seq_model():
  """An LSTM encoder-decoder: the encoder's final states are the decoder's initial_state."""
  encoder_in, decoder_in = keras.Input((6, 5)), keras.Input((4, 3))
  _, h, c = L.LSTM(4, return_state=True, name="encoder")(encoder_in)
  y = L.LSTM(4, return_sequences=True, name="decoder")(decoder_in, initial_state=[h, c])
  return (keras.Model([encoder_in, decoder_in], L.Dense(3, activation="softmax")(y)),
          [random_input((2, 6, 5)), random_input((2, 4, 3), seed=2)])


def stacked_rnn_model():
  """RNN(StackedRNNCells([...])) behind a Masking layer."""
  inputs = keras.Input((6, 4))
  masked = L.Masking(0.0)(inputs)
  cells = [L.LSTMCell(5, name="stack_lstm"), L.GRUCell(4, name="stack_gru"), L.SimpleRNNCell(3, name="stack_rnn")]
  y = L.RNN(L.StackedRNNCells(cells), return_sequences=True)(masked)
  x = random_input((2, 6, 4))
  x[0, 4:] = 0.0
  return keras.Model(inputs, L.GlobalAveragePooling1D()(y)), x


@pytest.mark.parametrize("make", [next_frame_model, seq2seq_model, stacked_rnn_model])
def test_from_keras_models(make):
  model, x = make()
  randomize(model, 0)
  module, variables = from_keras(model, check=x)
  all_close(module.apply(variables, *as_list(x)), model(x))
  assert_round_trip(model, module, variables, x)


def test_stacked_cells_with_keras_automatic_names():
  inputs = keras.Input((4, 3))
  cells = [L.GRUCell(3, name="gru_cell"), L.SimpleRNNCell(2, name="simple_rnn_cell")]
  model = keras.Model(inputs, L.RNN(L.StackedRNNCells(cells))(inputs))
  randomize(model, 0)
  x = random_input((2, 4, 3))
  module, variables = from_keras(model, check=x)
  all_close(module.apply(variables, x), model(x))


def test_a_stateful_layer_is_not_trained_with_its_states_silently_dropped():
  x = np.ones((2, 3, 4), np.float32)
  for layer in (Recurrent(3, stateful=True), RNN(LSTMCell(3), stateful=True)):
    variables = layer.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"is trained without its states kept: apply it with mutable=\['states'\]"):
      layer.apply(variables, x, train=True)
    _, kept = layer.apply(variables, x, train=True, mutable=["states"])
    assert jax.tree.leaves(kept["states"])


def test_a_cell_module_brings_its_own_dtype_and_precision():
  x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 4, 3)), jnp.bfloat16)
  layer, by_name = Recurrent(cell=LSTMCell(3, dtype=jnp.bfloat16)), Recurrent(3, dtype=jnp.bfloat16)
  variables = layer.init(jax.random.key(0), x)
  out = layer.apply(variables, x)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(out, np.float32), np.asarray(by_name.apply(variables, x), np.float32))
  for options in ({"precision": "highest"}, {"dtype": jnp.bfloat16}, {"param_dtype": jnp.bfloat16}):
    with pytest.raises(ValueError, match=r"is not allowed with a cell module; configure the cell itself"):
      Recurrent(cell=LSTMCell(3), **options).init(jax.random.key(0), x)


def test_recurrent_refuses_a_stack_of_cells_and_names_rnn():
  with pytest.raises(ValueError, match=r"cell=StackedRNNCells\(...\) is not allowed in Recurrent.*"
                                       r"RNN\(StackedRNNCells"):
    Recurrent(cell=StackedRNNCells([LSTMCell(3), GRUCell(2)])).init(jax.random.key(0), np.ones((2, 4, 3), np.float32))


def test_an_embeddings_zero_mask_drives_an_lstm_as_keras():
  """Keras's `Embedding(mask_zero=True)` -> `LSTM`: the mask Keras attaches, from `compute_mask`, passed on."""
  from jaxcomponents.layers import Embedding
  from jaxcomponents.weights import load_keras
  from tests.helpers import randomize_keras

  keras_model = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(10, 4, mask_zero=True),
                                  keras.layers.LSTM(3)])
  randomize_keras(keras_model, seed=7)
  ids = np.array([[3, 1, 4, 0, 0, 0], [2, 7, 1, 8, 2, 0]], np.int32)

  class Tagger(nn.Module):
    @nn.compact
    def __call__(self, ids):
      embedding = Embedding(10, 4, mask_zero=True, name="embedding")
      return Recurrent(3, name="lstm")(embedding(ids), mask=embedding.compute_mask(ids))

  variables = load_keras(Tagger(), keras_model, ids)
  np.testing.assert_allclose(Tagger().apply(variables, ids), keras_model(ids), rtol=1e-5, atol=1e-6)
  assert Embedding(10, 4).compute_mask(ids) is None
  with pytest.raises(ValueError, match=r"mask_zero=1 is not allowed; expected True or False"):
    Embedding(10, 4, mask_zero=1).compute_mask(ids)


@pytest.mark.parametrize("layer,x,match", [
    (lambda: Recurrent(3, go_backwards="yes"), (2, 4, 3), r"go_backwards='yes' is not allowed; expected True or False"),
    (lambda: Recurrent(3, return_sequences=2), (2, 4, 3), r"return_sequences=2 is not allowed; expected True or"),
    (lambda: Recurrent(3, cell="gru", reset_after="x"), (2, 4, 3), r"reset_after='x' is not allowed"),
    (lambda: Recurrent(3, use_cudnn="foo"), (2, 4, 3), r"use_cudnn='foo' is not allowed; expected True, False or "
                                                        r"'auto'"),
    (lambda: Recurrent(3, zero_output_for_mask="x"), (2, 4, 3), r"zero_output_for_mask='x' is not allowed"),
    (lambda: RNN(LSTMCell(3), stateful="no"), (2, 4, 3), r"stateful='no' is not allowed; expected True or False"),
    (lambda: RNN(LSTMCell(3, dropout=1.5)), (2, 4, 3), r"dropout=1.5 is not allowed; expected a float in \[0, 1\)"),
    (lambda: RNN(GRUCell(3, recurrent_dropout=-1.0)), (2, 4, 3), r"recurrent_dropout=-1.0 is not allowed"),
    (lambda: RNN(LSTMCell(3, unit_forget_bias="x")), (2, 4, 3), r"unit_forget_bias='x' is not allowed"),
    (lambda: ConvLSTM1D(2, 3, unroll=2), (2, 4, 5, 3), r"unroll=2 is not allowed; expected True or False"),
    (lambda: ConvLSTM1D(2, 3, return_state="x"), (2, 4, 5, 3), r"return_state='x' is not allowed"),
])
def test_flags_and_rates_are_checked_at_inference_too(layer, x, match):
  """Keras refuses (or reads as the bool it is) what these took silently: a flag that is not a bool, a rate out
  of [0, 1) on a cell at inference."""
  with pytest.raises(ValueError, match=match):
    layer().init(jax.random.key(0), jnp.ones(x))


def test_numpy_flags_and_sizes_are_taken():
  x = jnp.ones((2, 4, 3))
  layer = Recurrent(np.int64(3), return_sequences=np.True_, dropout=np.float32(0.25))
  assert layer.apply(layer.init(jax.random.key(0), x), x).shape == (2, 4, 3)


def _cell_called_directly(case):
  x, h, c = keras.Input((3,)), keras.Input((4,)), keras.Input((4,))
  if case == "lstm":
    out, (h_new, c_new) = keras.layers.LSTMCell(4)(x, [h, c])
    return [x, h, c], [keras.layers.Add()([out, h_new]), c_new]
  if case == "gru_bare_state":
    out, h_new = keras.layers.GRUCell(4)(x, h)
    return [x, h], [out, keras.layers.Dense(2)(h_new)]
  if case == "simple_rnn_list":
    out, (h_new,) = keras.layers.SimpleRNNCell(4)(x, [h])
    return [x, h], [keras.layers.Add()([out, h_new])]
  out, ((h1, c1), (h2,)) = keras.layers.StackedRNNCells([keras.layers.LSTMCell(4), keras.layers.GRUCell(4)])(
      x, [[h, c], [h]])
  return [x, h, c], [out, h1, c1, keras.layers.Add()([h2, out])]


@pytest.mark.parametrize("case", ["lstm", "gru_bare_state", "simple_rnn_list", "stacked"])
def test_a_cell_called_directly_hands_on_its_new_states_as_keras_numbers_them(case):
  """Keras numbers `(y, [h, c])` flattened: `h` is output 1, `c` output 2."""
  inputs, outputs = _cell_called_directly(case)
  model = keras.Model(inputs, outputs)
  randomize(model, 3)
  xs = [random_input((2, 3), seed=1)] + [random_input((2, 4), seed=s) for s in range(2, len(inputs) + 1)]
  module, variables = from_keras(model)
  for got, want in zip(module.apply(variables, xs), model(xs)):
    assert_close(got, want, tol=1e-5)
