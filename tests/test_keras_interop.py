"""The Keras interop package: one record per Keras class, channels-first layers, custom layers, writing back."""

import flax.linen as nn
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
