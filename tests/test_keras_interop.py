"""The Keras interop package: one record per Keras class, channels-first layers, custom layers, writing back."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.keras_model_zoo import randomize

import keras  # noqa: E402  (after keras_model_zoo chose the JAX backend)

from jaxcomponents.keras import records  # noqa: E402
from jaxcomponents.keras.record import KerasClass  # noqa: E402
from jaxcomponents.keras.renaming import weight_tables  # noqa: E402
from jaxcomponents.weights import from_keras, to_keras  # noqa: E402

L = keras.layers


def _close(module, variables, model, x):
  ours, theirs = np.asarray(module.apply(variables, x)), np.asarray(model(x))
  assert ours.shape == theirs.shape
  np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(theirs).max())))


def _fresh_copy(model, build=None):
  copy = keras.Model.from_config(model.get_config()) if build is None else build()
  for variable in copy.weights:
    variable.assign(np.zeros(variable.shape, variable.dtype))
  return copy


def _round_trips(module, variables, model, x, build=None):
  """`to_keras` writes the variables into a fresh copy of the model, which then computes what the model does."""
  copy = to_keras(module, variables, _fresh_copy(model, build))
  np.testing.assert_allclose(np.asarray(copy(x)), np.asarray(model(x)), rtol=1e-6, atol=1e-6)


def test_every_record_is_a_keras_class_record_and_weighted_ones_name_their_weights():
  assert len(records.RECORDS) >= 70
  for name, record in records.RECORDS.items():
    assert isinstance(record, KerasClass), name
    for table in record.weights:
      assert all(isinstance(k, str) and len(target) == 2 for k, target in table.items()), name
  classes = {c for names, _ in weight_tables() for c in names.split(", ")}
  for name in ("Dense", "Conv2D", "SeparableConv2D", "DepthwiseConv2D", "BatchNormalization", "Embedding", "LSTM"):
    assert name in classes


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_channels_first_layers_equal_keras(dims):
  spatial = (7, 6, 5)[:dims]
  conv, pool, pad, up, gpool = (getattr(L, f"{kind}{dims}D") for kind in
                                ("Conv", "MaxPooling", "ZeroPadding", "UpSampling", "GlobalAveragePooling"))
  cf = {"data_format": "channels_first"}
  inputs = keras.Input((3, *spatial))
  x = conv(4, 3, padding="same", activation="relu", **cf)(inputs)
  x = pool(2, **cf)(x)
  x = pad(1, **cf)(x)
  x = conv(2, 2, strides=1, **cf)(x)
  branch = L.Flatten(**cf)(x)
  pooled = gpool(**cf)(x if dims > 1 else up(2)(x))
  if dims == 2:
    pooled = L.Flatten()(L.GlobalMaxPooling2D(keepdims=True, **cf)(L.UpSampling2D(2, **cf)(x)))
    branch = L.Concatenate()([branch, L.Flatten(**cf)(L.DepthwiseConv2D(2, **cf)(x))])
  model = keras.Model(inputs, L.Concatenate()([branch, pooled]))
  randomize(model, dims)
  x = np.random.default_rng(dims).normal(size=(2, 3, *spatial)).astype("float32")
  module, variables = from_keras(model, check=x)
  _close(module, variables, model, x)
  _round_trips(module, variables, model, x)


@keras.saving.register_keras_serializable(package="tests")
class ScaleShift(L.Layer):
  """A user's Keras layer with two weights of its own names."""

  def __init__(self, offset=0.0, **kwargs):
    super().__init__(**kwargs)
    self.offset = offset

  def build(self, shape):
    self.scale = self.add_weight(shape=(shape[-1],), initializer="ones", name="scale")
    self.shift = self.add_weight(shape=(shape[-1],), initializer="zeros", name="shift")

  def call(self, x):
    return x * self.scale + self.shift + self.offset

  def get_config(self):
    return {**super().get_config(), "offset": self.offset}


class FlaxScaleShift(nn.Module):
  """Its Flax twin: fields named as the Keras config entries, parameters as the Keras weights."""

  offset: float = 0.0

  @nn.compact
  def __call__(self, x):
    scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
    return x * scale + self.param("shift", nn.initializers.zeros, (x.shape[-1],)) + self.offset


def _custom_model():
  inputs = keras.Input((5,))
  x = ScaleShift(offset=0.5, name="scale_shift")(L.Dense(4, name="hidden")(inputs))
  x = L.Lambda(lambda t: t * 3.0, name="triple")(x)
  model = keras.Model(inputs, L.Dense(2, name="head")(x))
  randomize(model, 3)
  return model


@pytest.mark.parametrize("form", ["module class", "factory", "record"])
def test_custom_layers_by_class_and_lambdas_by_layer_name(form):
  model = _custom_model()
  x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
  triple = lambda config, name: (lambda t: t * 3.0)  # noqa: E731
  if form == "module class":
    scale_shift = FlaxScaleShift
  elif form == "factory":
    scale_shift = lambda config, name: FlaxScaleShift(config["offset"], name=name)  # noqa: E731
  else:  # a record naming the weights differently, with its own renaming table
    class Renamed(nn.Module):
      offset: float

      @nn.compact
      def __call__(self, x):
        return x * self.param("gain", nn.initializers.ones, (4,)) + self.param("bias", nn.initializers.zeros, (4,)) \
            + self.offset

    def build(config, name, options):
      layer = Renamed(config["offset"], name=name)
      return lambda x, train: layer(x)
    scale_shift = KerasClass(build, creates_module=True,
                             weights=({"scale": ("params", "gain"), "shift": ("params", "bias")},))
  module, variables = from_keras(model, check=x, custom_layers={"ScaleShift": scale_shift, "triple": triple})
  _close(module, variables, model, x)
  _round_trips(module, variables, model, x, _custom_model)


def test_custom_layers_errors():
  model = _custom_model()
  with pytest.raises(ValueError, match=r"custom_layers\['ScaleShift'\]=3 is not allowed"):
    from_keras(model, custom_layers={"ScaleShift": 3, "triple": lambda c, n: jnp.negative})
  with pytest.raises(ValueError, match=r"triple \(Lambda\): a Lambda layer runs Python code"):
    from_keras(model, custom_layers={"ScaleShift": FlaxScaleShift})


def test_a_class_is_recorded_once():
  assert set(records.RECORDS) >= {"Dense", "Conv2D", "LSTM", "InputLayer"}
  assert records.rule_for("Add", "keras.src.ops.numpy") is records.OPS["Add"]
  assert records.rule_for("Add", "keras.layers") is records.RECORDS["Add"]
  mine = KerasClass(lambda c, n, o: lambda x, train: x)
  assert records.rule_for("Dense", "keras.layers", "head", (("head", mine),)) is mine


def test_the_old_table_name_warns_and_lists_the_records_tables():
  import jaxcomponents.weights as weights  # pylint: disable=import-outside-toplevel
  with pytest.warns(DeprecationWarning, match="CONVERSION_RULES is deprecated"):
    tables = weights.CONVERSION_RULES
  assert tables == weight_tables()


# One Keras layer (and input shape) per record whose Keras class holds weights, besides those whose weights live in
# sub-layers of Keras's own (MultiHeadAttention's EinsumDense, TimeDistributed's layer). keras-unet-collection's
# Snake is left to tests/test_unet.py, where its class exists.
def _layer_scale():
  from keras.src.applications.convnext import LayerScale  # pylint: disable=import-outside-toplevel
  return LayerScale(init_values=0.5, projection_dim=3)


WEIGHTED = {
    "Dense": (lambda: L.Dense(3, activation="tanh"), (4,)),
    "EinsumDense": (lambda: L.EinsumDense("abc,cd->abd", output_shape=(None, 3), bias_axes="d"), (2, 4)),
    "Conv1D": (lambda: L.Conv1D(3, 2, dilation_rate=2), (7, 2)),
    "Conv2D": (lambda: L.Conv2D(3, 2, strides=2, padding="same"), (5, 5, 2)),
    "Conv3D": (lambda: L.Conv3D(2, 2), (3, 3, 3, 2)),
    "Conv1DTranspose": (lambda: L.Conv1DTranspose(3, 3, strides=2), (4, 2)),
    "Conv2DTranspose": (lambda: L.Conv2DTranspose(3, 2, strides=2, padding="same"), (3, 3, 2)),
    "Conv3DTranspose": (lambda: L.Conv3DTranspose(2, 2), (2, 2, 2, 2)),
    "SeparableConv1D": (lambda: L.SeparableConv1D(3, 2, depth_multiplier=2), (5, 2)),
    "SeparableConv2D": (lambda: L.SeparableConv2D(3, 2), (4, 4, 2)),
    "DepthwiseConv1D": (lambda: L.DepthwiseConv1D(2, depth_multiplier=2), (5, 2)),
    "DepthwiseConv2D": (lambda: L.DepthwiseConv2D(2), (4, 4, 2)),
    "BatchNormalization": (lambda: L.BatchNormalization(axis=1), (3, 4)),
    "LayerNormalization": (lambda: L.LayerNormalization(), (3, 4)),
    "GroupNormalization": (lambda: L.GroupNormalization(groups=2), (3, 4)),
    "RMSNormalization": (lambda: L.RMSNormalization(), (3, 4)),
    "Embedding": (lambda: L.Embedding(7, 3), None),
    "PReLU": (lambda: L.PReLU(), (3, 4)),
    "LayerScale": (_layer_scale, (2, 3)),
    "LSTM": (lambda: L.LSTM(3, return_sequences=True), (4, 2)),
    "GRU": (lambda: L.GRU(3, reset_after=False), (4, 2)),
    "SimpleRNN": (lambda: L.SimpleRNN(3), (4, 2)),
    "RNN": (lambda: L.RNN(L.StackedRNNCells([L.LSTMCell(3), L.GRUCell(2)])), (4, 2)),
    "LSTMCell": (lambda: L.RNN(L.LSTMCell(3)), (4, 2)),
    "GRUCell": (lambda: L.RNN(L.GRUCell(3)), (4, 2)),
    "SimpleRNNCell": (lambda: L.RNN(L.SimpleRNNCell(3)), (4, 2)),
    "ConvLSTM1D": (lambda: L.ConvLSTM1D(2, 2), (3, 4, 2)),
    "ConvLSTM2D": (lambda: L.ConvLSTM2D(2, 2, padding="same"), (3, 3, 3, 1)),
    "ConvLSTM3D": (lambda: L.ConvLSTM3D(2, 2), (2, 3, 3, 3, 1)),
    "Bidirectional": (lambda: L.Bidirectional(L.GRU(2), backward_layer=L.LSTM(2, go_backwards=True)), (4, 2)),
    "TimeDistributed": (lambda: L.TimeDistributed(L.Dense(2)), (3, 4)),
    "MultiHeadAttention": (lambda: L.MultiHeadAttention(2, 3), "self"),
    "GroupQueryAttention": (lambda: L.GroupQueryAttention(head_dim=2, num_query_heads=4, num_key_value_heads=2),
                            "self"),
    "Attention": (lambda: L.Attention(score_mode="concat"), "pair"),
    "AdditiveAttention": (lambda: L.AdditiveAttention(), "pair"),
    "Normalization": (lambda: L.Normalization(mean=[0.5, 1.0], variance=[2.0, 3.0]), (2,)),
}


def test_every_record_with_weights_has_a_round_trip_below():
  with_weights = {name for name, record in records.RECORDS.items() if record.weights} - {"Snake"}
  assert with_weights <= set(WEIGHTED), sorted(with_weights - set(WEIGHTED))


@pytest.mark.parametrize("class_name", sorted(WEIGHTED))
def test_every_weighted_record_converts_and_goes_back(class_name):
  """Keras's layer with random weights: from_keras computes what it computes; to_keras restores its weights."""
  make, shape = WEIGHTED[class_name]

  def build():
    if shape == "self" or shape == "pair":
      query, value = keras.Input((3, 4)), keras.Input((5, 4))
      layer = make()
      out = layer(query, value) if shape == "self" else layer([query, value])
      return keras.Model([query, value], out)
    inputs = keras.Input((5,), dtype="int32") if shape is None else keras.Input(shape)
    return keras.Model(inputs, make()(inputs))

  model = build()
  randomize(model, 1)
  rng = np.random.default_rng(2)
  if shape is None:
    x = rng.integers(0, 7, (2, 5)).astype("int32")
  elif shape in ("self", "pair"):
    x = [rng.normal(size=(2, 3, 4)).astype("float32"), rng.normal(size=(2, 5, 4)).astype("float32")]
  else:
    x = rng.normal(size=(2, *shape)).astype("float32")
  module, variables = from_keras(model, check=x)
  copy = to_keras(module, variables, _fresh_copy(model))
  for original, restored in zip(model.weights, copy.weights):
    np.testing.assert_array_equal(np.asarray(restored), np.asarray(original), err_msg=original.path)


def _one_sgd_step_as_keras(model, x, y, before=lambda state: None):
  """One SGD step (MSE) of `model` and of its `from_keras` twin: the same loss, penalties included, and weights."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel,reimported
  from jaxcomponents import optimizers  # pylint: disable=import-outside-toplevel
  from jaxcomponents.training import TrainState, make_train_step  # pylint: disable=import-outside-toplevel

  module, variables = from_keras(model, check=x)
  state = TrainState.create(module, optimizers.get("sgd", learning_rate=0.1), variables=variables)
  model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
  before(state)
  keras_loss = model.train_on_batch(x, y)
  state, logs = make_train_step("mse")(state, {"x": jnp.asarray(x), "y": jnp.asarray(y)})
  np.testing.assert_allclose(logs["loss"], keras_loss, rtol=1e-5)
  trained = to_keras(module, state.variables, _fresh_copy(model))
  for ours, theirs in zip(trained.weights, model.weights):
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-5, atol=1e-6, err_msg=theirs.path)


def test_weight_regularizers_train_one_step_as_keras_and_constraints_are_refused():
  """`kernel_regularizer=` & co. add Keras's penalty once a step; a constraint, which Keras's optimizer applies, is
  refused rather than ignored."""
  from jaxcomponents.training import make_eval_step  # pylint: disable=import-outside-toplevel

  inputs = keras.Input((4,))
  h = L.Dense(5, activation="tanh", kernel_regularizer=keras.regularizers.L1L2(0.01, 0.02), bias_regularizer="l2")(
      inputs)
  h = L.Conv1D(2, 2, kernel_regularizer="l1")(L.Reshape((5, 1))(h))
  frozen = L.Dense(3, kernel_regularizer="l2", name="frozen")
  model = keras.Model(inputs, L.Dense(2, kernel_regularizer="l2")(L.Flatten()(h)))
  randomize(model, 4)
  rng = np.random.default_rng(5)
  x, y = rng.normal(size=(6, 4)).astype("float32"), rng.normal(size=(6, 2)).astype("float32")

  def evaluate_first(state):
    eval_step = make_eval_step("mse")
    _, evaluated = eval_step(eval_step.reset(state), {"x": x, "y": y})
    np.testing.assert_allclose(evaluated["loss"], model.evaluate(x, y, verbose=0), rtol=1e-5)

  _one_sgd_step_as_keras(model, x, y, before=evaluate_first)
  constrained = keras.Sequential([keras.Input((4,)), L.Dense(2, kernel_constraint="max_norm"), frozen])
  with pytest.raises(ValueError, match=r"kernel_constraint=.* \(constraints are applied by Keras's optimizer step"):
    from_keras(constrained)


@pytest.mark.parametrize("layer", [
    lambda: L.LSTM(3, kernel_regularizer="l2", recurrent_regularizer=keras.regularizers.L1(0.02),
                   bias_regularizer="l1", return_sequences=True),
    lambda: L.GRU(3, kernel_regularizer="l1", recurrent_regularizer="l2", reset_after=False),
    lambda: L.SimpleRNN(3, recurrent_regularizer=keras.regularizers.L1L2(0.01, 0.03), unroll=True),
    lambda: L.ConvLSTM1D(2, 2, kernel_regularizer="l2", bias_regularizer="l2", return_sequences=True),
])
def test_a_recurrent_layers_weight_regularizers_train_one_step_as_keras(layer):
  recurrent = layer()
  shape = (4, 5, 2) if isinstance(recurrent, L.ConvLSTM1D) else (4, 3)
  inputs = keras.Input(shape)
  model = keras.Model(inputs, L.Dense(2)(L.Flatten()(recurrent(inputs))))
  randomize(model, 7)
  rng = np.random.default_rng(8)
  x, y = rng.normal(size=(5, *shape)).astype("float32"), rng.normal(size=(5, 2)).astype("float32")
  _one_sgd_step_as_keras(model, x, y)


def test_weight_regularizers_inside_bidirectional_or_an_rnn_cell_are_refused_by_name():
  for wrapped in (L.Bidirectional(L.LSTM(2, kernel_regularizer="l2")), L.RNN(L.GRUCell(2, bias_regularizer="l1"))):
    inputs = keras.Input((4, 3))
    with pytest.raises(ValueError, match=r"(kernel|bias)_regularizer=.* \(only None inside Bidirectional or RNN; an "
                                         r"LSTM, GRU, SimpleRNN or ConvLSTM layer of its own takes it\)"):
      from_keras(keras.Model(inputs, wrapped(inputs)))


def test_nested_models_as_outputs_dict_inputs_and_outputs_and_check():
  inner_in = keras.Input((3,))
  inner = keras.Model(inner_in, L.Dense(2, name="inner_dense")(inner_in), name="inner")
  a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
  model = keras.Model({"a": a, "b": b}, {"p": inner(a), "q": L.Dense(2, name="q_dense")(L.Add()([a, b]))})
  randomize(model, 6)
  rng = np.random.default_rng(6)
  x = {"a": rng.normal(size=(2, 3)).astype("float32"), "b": rng.normal(size=(2, 3)).astype("float32")}
  module, variables = from_keras(model, check=[x["a"], x["b"]])
  ours, theirs = module.apply(variables, x), model(x)
  assert set(ours) == {"p", "q"}
  for key in ours:
    np.testing.assert_allclose(np.asarray(ours[key]), np.asarray(theirs[key]), rtol=1e-5, atol=1e-6)


def test_masks_crossing_a_nested_model_lora_and_quantized_layers_are_refused():
  ids = keras.Input((6,), dtype="int32")
  embed = keras.Model(ids, L.Embedding(10, 4, mask_zero=True)(ids), name="embed")
  outer = keras.Input((6,), dtype="int32")
  with pytest.raises(ValueError, match=r"embed \(Functional\): a mask enters or leaves this nested model"):
    from_keras(keras.Model(outer, L.LSTM(3)(embed(outer))))
  lora = keras.Sequential([keras.Input((4,)), L.Dense(3, lora_rank=2, name="adapted")])
  with pytest.raises(ValueError, match=r"adapted \(Dense\): lora_rank=2 \(only None: LoRA weights are not converted"):
    from_keras(lora)


def test_frozen_layers_train_as_keras_trains_them():
  """`trainable=False`: Keras's fit leaves the weights alone, and a frozen BatchNormalization normalizes with its
  moving statistics; `Model.compile` on a converted model does the same."""
  from jaxcomponents import Model, optimizers  # pylint: disable=import-outside-toplevel

  inputs = keras.Input((4,))
  norm, dense = L.BatchNormalization(name="norm"), L.Dense(3, activation="tanh", name="frozen_dense")
  model = keras.Model(inputs, L.Dense(2, name="head")(dense(norm(inputs))))
  randomize(model, 7)
  norm.trainable = dense.trainable = False
  rng = np.random.default_rng(7)
  x, y = rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
  module, variables = from_keras(model)
  assert module.frozen(variables["params"]) == [r"norm(/.*)?", r"frozen_dense(/.*)?"]
  ours = Model(module, variables)
  ours.compile(optimizer=optimizers.get("sgd", learning_rate=0.1), loss="mse")
  model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
  np.testing.assert_allclose(ours.train_on_batch(x, y), model.train_on_batch(x, y), rtol=1e-5)
  trained = to_keras(module, ours.variables, _fresh_copy(model))
  for mine, theirs in zip(trained.weights, model.weights):
    np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), rtol=1e-5, atol=1e-6, err_msg=theirs.path)


def test_time_distributed_passes_each_step_its_mask_and_batch_statistics():
  ids = keras.Input((3, 5), dtype="int32")
  pooled = L.TimeDistributed(L.GlobalAveragePooling1D())(L.Embedding(10, 4, mask_zero=True)(ids))
  model = keras.Model(ids, pooled)
  randomize(model, 8)
  x = np.random.default_rng(8).integers(0, 4, (2, 3, 5)).astype("int32")
  module, variables = from_keras(model, check=x)
  _close(module, variables, model, x)

  frames = keras.Input((3, 4))
  model = keras.Model(frames, L.TimeDistributed(L.BatchNormalization())(frames))
  randomize(model, 9)
  x = np.random.default_rng(9).normal(size=(5, 3, 4)).astype("float32")
  module, variables = from_keras(model)
  y, updated = module.apply(variables, x, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(np.asarray(y), np.asarray(model(x, training=True)), rtol=1e-5, atol=1e-5)
  keras_mean = [np.asarray(w) for w in model.weights if w.path.endswith("moving_mean")][0]
  ours_mean = [v for v in jax.tree.leaves(updated) if v.shape == keras_mean.shape]
  np.testing.assert_allclose(np.asarray(ours_mean[0]), keras_mean, rtol=1e-5, atol=1e-6)


def test_names_several_layers_share_pair_by_their_owner_and_never_silently():
  """Every attention layer has a `query`: by name, each pairs with its own owner's; a name that still repeats is an
  error, never the last one found."""
  from jaxcomponents.keras.pairing import pair_layers
  from jaxcomponents.keras.weight_files import KerasLayer

  keras_layers = [KerasLayer(sub, {"kernel": np.full((1,), i)}, "test", path=(owner, sub))
                  for i, (owner, sub) in enumerate([("vit_0_atten", "query"), ("vit_0_atten", "key"),
                                                    ("vit_1_atten", "query"), ("vit_1_atten", "key")])]
  flax_paths = {("block0", "vit_0_atten", "query"): {}, ("block0", "vit_0_atten", "key"): {},
                ("block1", "vit_1_atten", "query"): {}, ("block1", "vit_1_atten", "key"): {}}
  for match in ("name", "auto"):
    pairs = pair_layers(flax_paths, keras_layers, match)
    assert [(path[1], path[2], layer.path) for path, layer in pairs] == [
        (p[1], p[2], (p[1], p[2])) for p in flax_paths]
  same_owner = [KerasLayer("query", {"kernel": np.ones(1)}, "test", path=("a", "query"))] * 2
  with pytest.raises(ValueError, match=r"match='name' but these layer names repeat .*'a_query'"):
    pair_layers({("x", "a", "query"): {}, ("y", "a", "query"): {}}, same_owner, "name")
