"""Normalization, noise, activity regularization and adaptive pooling: each layer against Keras, their records."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.keras_model_zoo import randomize

import keras  # noqa: E402  (after keras_model_zoo chose the JAX backend)
from keras.src import backend as keras_backend  # noqa: E402

from jaxcomponents import optimizers  # noqa: E402
from jaxcomponents.keras.records import RECORDS  # noqa: E402
from jaxcomponents.layers.activity import (LOSSES, ActivityRegularization, activity_loss,  # noqa: E402
                                           activity_regularizer_problems, total_loss, with_activity_regularizer)
from jaxcomponents.layers.adaptive_pooling import (AdaptiveAveragePooling2D, adaptive_pool, bins)  # noqa: E402
from jaxcomponents.layers.noise import (AlphaDropout, GaussianDropout, GaussianNoise, alpha_dropout,  # noqa: E402
                                        gaussian_dropout, gaussian_noise)
from jaxcomponents.layers.normalization import (BatchNorm, GroupNormalization, LayerNormalization,  # noqa: E402
                                                RMSNormalization, UnitNormalization)
from jaxcomponents.training import TrainState, make_eval_step, make_train_step  # noqa: E402
from jaxcomponents.weights import from_keras, to_keras  # noqa: E402

L = keras.layers
RTOL = 1e-5


def close(ours, theirs, tol=RTOL):
  """max |ours - Keras| <= tol x max |Keras|."""
  ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
  assert ours.shape == theirs.shape, f"shape {ours.shape} != Keras {theirs.shape}"
  scale = max(float(np.max(np.abs(theirs), initial=0.0)), 1e-12)
  err = float(np.max(np.abs(ours - theirs), initial=0.0))
  assert err <= tol * scale, f"max error {err:.3g} > {tol} x {scale:.3g}"


def normal(shape, seed=1, loc=0.0, scale=1.0):
  return np.random.default_rng(seed).normal(loc, scale, shape).astype(np.float32)


def keras_layer(layer, shape, seed=0):
  """A built Keras layer with random weights (variances positive)."""
  layer.build((None, *shape[1:]))
  rng = np.random.default_rng(seed)
  for w in layer.weights:
    value = rng.uniform(0.5, 1.5, w.shape) if "variance" in w.path else rng.normal(0.0, 0.7, w.shape)
    w.assign(value.astype(np.float32))
  return layer


def keras_params(layer, table):
  """The Keras layer's weights as our variables, renamed by `table` (Keras name -> (collection, name))."""
  variables = {}
  for w in layer.weights:
    collection, name = table[w.path.split("/")[-1]]
    variables.setdefault(collection, {})[name] = jnp.asarray(np.asarray(w))
  return variables


GAMMA_BETA = {"gamma": ("params", "gamma"), "beta": ("params", "beta")}
BN = {"gamma": ("params", "scale"), "beta": ("params", "bias"), "moving_mean": ("batch_stats", "mean"),
      "moving_variance": ("batch_stats", "var")}


# Normalization.

@pytest.mark.parametrize("groups, axis, center, scale, shape", [
    (4, -1, True, True, (3, 5, 6, 8)), (2, 1, True, True, (3, 6, 5, 4)), (-1, -1, True, False, (2, 7, 6)),
    (1, -1, False, True, (2, 4, 4, 3, 6)), (3, 2, False, False, (2, 4, 6, 5))])
def test_group_normalization_equals_keras(groups, axis, center, scale, shape):
  theirs = keras_layer(L.GroupNormalization(groups, axis=axis, epsilon=1e-2, center=center, scale=scale), shape)
  ours = GroupNormalization(groups, axis=axis, epsilon=1e-2, use_bias=center, use_scale=scale)
  x = normal(shape, loc=0.5, scale=2.0)
  close(ours.apply(keras_params(theirs, GAMMA_BETA), x), theirs(x))


def test_group_normalization_refuses_groups_that_do_not_divide():
  with pytest.raises(ValueError, match="num_groups=3 is not allowed for 8 channels"):
    GroupNormalization(3).init(jax.random.key(0), jnp.ones((1, 2, 8)))
  with pytest.raises(ValueError, match="axis=0"):
    GroupNormalization(1, axis=0).init(jax.random.key(0), jnp.ones((1, 2, 8)))


@pytest.mark.parametrize("axis, center, scale, rms", [
    (-1, True, True, True), (-1, False, False, True), ((1, 2), True, True, True), (-1, True, True, False),
    ((1, 3), False, True, False), (1, True, False, False), ((-1, 1), True, True, False)])
def test_layer_normalization_equals_keras(axis, center, scale, rms):
  shape = (3, 4, 5, 6)
  theirs = keras_layer(L.LayerNormalization(axis=axis, epsilon=0.05, center=center, scale=scale, rms_scaling=rms),
                       shape)
  ours = LayerNormalization(axis=axis, epsilon=0.05, use_bias=center, use_scale=scale, rms_scaling=rms)
  x = normal(shape, loc=1.0, scale=0.3)  # an offset, so the variance (Keras's rms_scaling) is not the mean square
  variables = keras_params(theirs, GAMMA_BETA)
  assert set(variables.get("params", {})) == {w.path.split("/")[-1] for w in theirs.weights}
  close(ours.apply(variables, x), theirs(x))


@pytest.mark.parametrize("axis, epsilon, shape", [(-1, 1e-6, (3, 4, 5)), ([2, 1], 0.05, (3, 4, 5)),
                                                  (1, 1e-6, (3, 4, 4))])  # scale lined up with the last axis
def test_rms_normalization_equals_keras(axis, epsilon, shape):
  theirs = keras_layer(L.RMSNormalization(axis=axis, epsilon=epsilon), shape)
  ours = RMSNormalization(axis=axis, epsilon=epsilon)
  variables = keras_params(theirs, {"scale": ("params", "scale")})
  x = normal(shape, loc=1.0, scale=0.3)  # an offset: the mean square, not the variance
  close(ours.apply(variables, x), theirs(x))


def test_rms_normalization_under_a_mixed_policy_is_kerass_to_the_bit():
  """Keras autocasts the scale to bfloat16 before its float32 arithmetic; a float32 scale was a rounding off."""
  theirs = keras_layer(L.RMSNormalization(dtype="mixed_bfloat16"), (64, 8))
  variables = keras_params(theirs, {"scale": ("params", "scale")})
  x = normal((64, 8), loc=1.0, scale=2.0)
  want = theirs(x)
  got = RMSNormalization().apply(variables, jnp.asarray(x, jnp.bfloat16))
  assert got.dtype == jnp.bfloat16 and want.dtype == "bfloat16"
  np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))


@pytest.mark.parametrize("axis", [-1, 1, (1, 2)])
def test_unit_normalization_equals_keras(axis):
  x = normal((4, 3, 5))
  x[0] = 0.0  # Keras clamps 1/norm at 1e12, so zeros stay zeros
  close(UnitNormalization(axis).apply({}, x), L.UnitNormalization(axis)(x))


@pytest.mark.parametrize("axis, shape", [(1, (4, 3, 5, 5)), (-1, (4, 5, 3)), (2, (6, 3, 4))])
def test_batch_normalization_on_any_axis_equals_keras(axis, shape):
  theirs = keras_layer(L.BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-2), shape)
  ours = BatchNorm(axis=axis, momentum=0.9, epsilon=1e-2)
  variables = keras_params(theirs, BN)
  x = normal(shape, loc=0.3, scale=2.0)
  close(ours.apply(variables, x, use_running_average=True), theirs(x, training=False))
  y, updates = ours.apply(variables, x, use_running_average=False, mutable=["batch_stats"])
  close(y, theirs(x, training=True))  # Keras updates its moving statistics in this call
  moving = {w.path.split("/")[-1]: np.asarray(w) for w in theirs.weights}
  close(updates["batch_stats"]["mean"], moving["moving_mean"])
  close(updates["batch_stats"]["var"], moving["moving_variance"])


def test_batch_normalization_is_bit_exact_to_kerass_arithmetic():
  """Keras's `x * inv + (beta - mean * inv)`, not Flax's `(x - mean) * inv + beta`: not one bit apart, at
  inference and in training (Flax's form left a third of the values one rounding away)."""
  theirs = keras_layer(L.BatchNormalization(), (64, 32))
  variables = keras_params(theirs, BN)
  x = normal((64, 32), loc=0.5, scale=2.0)
  np.testing.assert_array_equal(BatchNorm().apply(variables, x, use_running_average=True), theirs(x, training=False))
  y, _ = BatchNorm().apply(variables, x, use_running_average=False, mutable=["batch_stats"])
  np.testing.assert_array_equal(y, theirs(x, training=True))


def test_batch_norm_runs_per_example_under_vmap_with_an_axis_name_as_flaxs():
  """Rank-1 inputs under `nn.vmap(..., axis_name=...)`: the statistics come from the mapped axis."""
  per_example = nn.vmap(BatchNorm, variable_axes={"params": None, "batch_stats": None},
                        split_rngs={"params": False}, axis_name="batch")
  layer = per_example(use_running_average=False, axis_name="batch")
  x = normal((6, 4), loc=0.3, scale=2.0)
  y, _ = layer.apply(layer.init(jax.random.key(0), x), x, mutable=["batch_stats"])
  whole = BatchNorm(use_running_average=False)
  reference, _ = whole.apply(whole.init(jax.random.key(0), x), x, mutable=["batch_stats"])
  close(y, reference)


# Noise: exact at inference; in training Keras's formula on the same draw, and the draws' statistics.

@pytest.fixture
def fixed_draws(monkeypatch):
  """Keras's normal and uniform draws replaced by fixed ones (standard normal `z`, uniform `u`)."""
  draws = {}

  def fake_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    draws["z"] = normal(tuple(shape), seed=7)
    return jnp.asarray(mean + stddev * draws["z"], dtype)

  def fake_uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    draws["u"] = np.random.default_rng(8).uniform(size=tuple(shape)).astype(np.float32)
    return jnp.asarray(minval + (maxval - minval) * draws["u"], dtype)

  monkeypatch.setattr(keras_backend.random, "normal", fake_normal)
  monkeypatch.setattr(keras_backend.random, "uniform", fake_uniform)
  return draws


def test_noise_layers_apply_keras_formulas_to_the_same_draw(fixed_draws):
  x = normal((3, 4, 5))
  theirs = L.GaussianNoise(0.3)(x, training=True)
  close(gaussian_noise(x, 0.3, fixed_draws["z"]), theirs)
  theirs = L.GaussianDropout(0.4)(x, training=True)
  close(gaussian_dropout(x, 0.4, fixed_draws["z"]), theirs)
  theirs = L.AlphaDropout(0.35, noise_shape=(None, 1, 5))(x, training=True)
  assert fixed_draws["u"].shape == (3, 1, 5)
  close(alpha_dropout(x, 0.35, fixed_draws["u"]), theirs)
  theirs = L.AlphaDropout(0.2)(x, training=True)
  close(alpha_dropout(x, 0.2, fixed_draws["u"]), theirs)


@pytest.mark.parametrize("layer, keras_class", [
    (GaussianNoise(0.3, seed=3), L.GaussianNoise(0.3, seed=3)), (GaussianDropout(0.4), L.GaussianDropout(0.4)),
    (AlphaDropout(0.35, noise_shape=(None, 1, 5)), L.AlphaDropout(0.35, noise_shape=(None, 1, 5)))])
def test_noise_layers_are_the_identity_at_inference(layer, keras_class):
  x = normal((3, 4, 5))
  np.testing.assert_array_equal(layer.apply({}, x, train=False), keras_class(x, training=False))
  np.testing.assert_array_equal(layer.apply({}, x, train=False), x)


def test_noise_statistics_in_training():
  x = normal((200, 500), loc=0.0, scale=1.0)
  key = {"dropout": jax.random.key(4)}
  noise = np.asarray(GaussianNoise(0.3).apply({}, x, train=True, rngs=key)) - x
  assert abs(noise.mean()) < 0.005 and abs(noise.std() - 0.3) < 0.005
  ratio = np.asarray(GaussianDropout(0.2).apply({}, np.ones_like(x), train=True, rngs=key))
  assert abs(ratio.mean() - 1.0) < 0.005 and abs(ratio.std() - 0.5) < 0.005  # sqrt(0.2 / 0.8)
  y = np.asarray(AlphaDropout(0.1).apply({}, x, train=True, rngs=key))
  assert abs(y.mean()) < 0.01 and abs(y.std() - 1.0) < 0.01  # SELU's self-normalization is kept
  dropped = alpha_dropout(jnp.zeros(()), 0.1, jnp.zeros(()))  # the value a dropped entry takes
  assert abs(np.isclose(y, dropped).mean() - 0.1) < 0.005
  shared = np.asarray(AlphaDropout(0.5, noise_shape=(None, 1)).apply({}, np.ones((50, 7), np.float32), train=True,
                                                                     rngs=key))
  assert (shared == shared[:, :1]).all() and len(np.unique(shared)) == 2  # one draw per example
  other = GaussianNoise(0.3, seed=4).apply({}, x, train=True, rngs=key)
  assert not np.allclose(other, GaussianNoise(0.3, seed=3).apply({}, x, train=True, rngs=key))


def test_noise_arguments_are_checked():
  with pytest.raises(ValueError, match="rate=1.5 is not allowed"):
    GaussianDropout(1.5).apply({}, jnp.ones(2), train=False)
  with pytest.raises(ValueError, match="noise_shape=\\(2, 3\\) is not allowed"):
    AlphaDropout(0.1, noise_shape=(2, 3)).apply({}, jnp.ones((2, 4)), train=False)
  assert RECORDS["GaussianNoise"].check({"stddev": 2.0, "seed": None}) == ["stddev=2.0 (only a float between 0 and 1)"]


# Activity regularization.

def test_activity_loss_equals_keras_layer_losses():
  x = normal((4, 3, 2))
  for l1, l2 in ((0.03, 0.0), (0.0, 0.2), (0.1, 0.05)):
    keras_reg = L.ActivityRegularization(l1=l1, l2=l2)
    keras_reg(x)
    close(activity_loss(x, l1, l2), keras_reg.losses[0])
    y, sown = ActivityRegularization(l1, l2).apply({}, x, mutable=[LOSSES])
    close(total_loss(sown), keras_reg.losses[0])
  assert ActivityRegularization(0.1).init(jax.random.key(0), x) == {}  # nothing sown while initializing
  np.testing.assert_array_equal(ActivityRegularization(0.1).apply({}, x), x)  # and nothing without `mutable`


class _Dense(nn.Module):
  """A graph-like parent: a Keras Dense layer's computation with its activity regularizer wired by the wrapper."""

  regularizer: object

  @nn.compact
  def __call__(self, x, *, train=False):
    dense = nn.Dense(3, name="dense")
    return with_activity_regularizer(lambda v, train: dense(v), self.regularizer, "dense")(x, train=train)


@pytest.mark.parametrize("regularizer", ["l1", "l2", keras.regularizers.L1L2(l1=0.2, l2=0.3)])
def test_with_activity_regularizer_sows_what_keras_adds(regularizer):
  layer = L.Dense(3, activity_regularizer=regularizer)
  x = normal((5, 4))
  y = layer(x)
  config = layer.get_config()["activity_regularizer"]
  kernel, bias = (jnp.asarray(np.asarray(w)) for w in layer.weights)
  ours, sown = _Dense(config).apply({"params": {"dense": {"kernel": kernel, "bias": bias}}}, x, mutable=[LOSSES])
  close(ours, y)
  assert list(sown[LOSSES]) == ["dense_activity_regularizer"]
  close(total_loss(sown), layer.losses[0])
  assert activity_regularizer_problems({"activity_regularizer": config}) == []
  orthogonal = keras.regularizers.serialize(keras.regularizers.OrthogonalRegularizer())
  assert "is not allowed" in activity_regularizer_problems({"activity_regularizer": orthogonal})[0]


def _regularized_model():
  inputs = keras.Input((4,))
  h = L.Dense(5, activation="tanh")(inputs)
  h = L.ActivityRegularization(l1=0.03, l2=0.05)(h)
  model = keras.Model(inputs, L.Dense(2)(h))
  randomize(model, 3)
  return model


def test_activity_regularization_trains_one_step_as_keras():
  model = _regularized_model()
  x, y = normal((6, 4), seed=2), normal((6, 2), seed=3)
  module, variables = from_keras(model)
  plain = float(np.mean((np.asarray(module.apply(variables, x)) - y) ** 2))
  state = TrainState.create(module, optimizers.get("sgd", learning_rate=0.1), variables=variables)
  eval_step = make_eval_step("mse")
  _, evaluated = eval_step(eval_step.reset(state), {"x": x, "y": y})
  model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
  close(evaluated["loss"], model.evaluate(x, y, verbose=0))  # Keras's evaluation loss includes model.losses
  keras_loss = model.train_on_batch(x, y)
  state, metrics = make_train_step("mse")(state, {"x": jnp.asarray(x), "y": jnp.asarray(y)})
  close(metrics["loss"], keras_loss)
  assert set(state.variables) == {"params"}  # the sown loss is not kept
  trained = to_keras(module, state.variables, keras.models.clone_model(model))  # the same layer names
  for ours, theirs in zip(trained.weights, model.weights):
    close(ours, theirs)
  assert float(keras_loss) - plain > 1e-3  # the regularization loss counted


# Adaptive pooling.

def test_bins_are_pytorchs_and_keras():
  assert [b.tolist() for b in bins(10, 4)] == [[0, 2, 5, 7], [3, 3, 3, 3]]
  assert [b.tolist() for b in bins(3, 5)] == [[0, 0, 1, 1, 2], [1, 2, 1, 2, 1]]
  assert [b.tolist() for b in bins(8, 8)] == [list(range(8)), [1] * 8]


@pytest.mark.parametrize("dims, size, output", [(1, (11,), 4), (2, (7, 5), (3, 4)), (2, (3, 4), 5),
                                                 (3, (5, 4, 6), (2, 3, 4))])
@pytest.mark.parametrize("kind", ["Average", "Max"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_adaptive_pooling_equals_keras(dims, size, output, kind, data_format):
  shape = (2, *size, 3) if data_format == "channels_last" else (2, 3, *size)
  x = normal(shape)
  theirs = getattr(L, f"Adaptive{kind}Pooling{dims}D")(output, data_format=data_format)(x)
  sizes = output if isinstance(output, tuple) else (output,) * dims
  close(adaptive_pool(x, "avg" if kind == "Average" else "max", sizes, data_format), theirs)


def test_adaptive_pooling_arguments_are_checked():
  with pytest.raises(ValueError, match="output_size"):
    AdaptiveAveragePooling2D((2, 2, 2)).apply({}, jnp.ones((1, 4, 4, 1)))
  with pytest.raises(ValueError, match="data_format='NHWC' is not allowed"):
    adaptive_pool(jnp.ones((1, 4, 1)), "avg", (2,), "NHWC")
  assert RECORDS["AdaptiveMaxPooling2D"].check({"output_size": [2, 2, 2], "data_format": "channels_last"})


# The records, through from_keras and back.

def _every_layer_model():
  inputs = keras.Input((6, 5, 8))
  x = L.GroupNormalization(4, epsilon=1e-2)(inputs)
  x = L.LayerNormalization(rms_scaling=True, name="rms")(x)
  x = L.LayerNormalization(axis=(1, 2), center=False)(x)
  x = L.LayerNormalization(scale=False)(x)
  x = L.BatchNormalization(axis=1)(x)
  x = L.GroupNormalization(3, axis=1, scale=False, name="channels_first_groups")(x)
  x = L.UnitNormalization(axis=(2, 3))(x)
  x = L.GaussianNoise(0.1)(x)
  x = L.GaussianDropout(0.2)(x)
  x = L.AlphaDropout(0.3, noise_shape=(None, 1, 1, 8))(x)
  x = L.ActivityRegularization(0.01, 0.02)(x)
  pooled = L.AdaptiveAveragePooling2D((4, 3))(x)
  first = L.AdaptiveMaxPooling2D(5, data_format="channels_first")(x)
  flat = L.Flatten()(L.AdaptiveMaxPooling1D(3)(L.Reshape((30, 8))(x)))
  model = keras.Model(inputs, [pooled, first, flat])
  randomize(model, 0)
  return model


def test_every_record_through_from_keras_and_back():
  model = _every_layer_model()
  x = normal((2, 6, 5, 8), loc=0.5)
  module, variables = from_keras(model, check=x)
  assert set(variables["params"]["rms"]) == {"gamma"}  # rms_scaling: no beta
  assert set(variables["params"]["channels_first_groups"]) == {"beta"}
  for ours, theirs in zip(module.apply(variables, x), model(x)):
    close(ours, theirs)
  fresh = keras.models.clone_model(model)
  randomize(fresh, 9)
  to_keras(module, variables, fresh)
  for ours, theirs in zip(module.apply(variables, x), fresh(x)):
    close(ours, theirs)
  y, sown = module.apply(variables, x, train=True, rngs={"dropout": jax.random.key(0)},
                         mutable=["batch_stats", LOSSES])
  assert float(total_loss(sown[LOSSES])) > 0


def test_records_list_what_they_do_not_support():
  assert RECORDS["BatchNormalization"].check({"axis": -1, "renorm": True}) == ["renorm=True (only False)"]
  assert RECORDS["GroupNormalization"].check({"groups": 4, "gamma_regularizer": {"class_name": "L2"}}) == [
      "gamma_regularizer={'class_name': 'L2'} (only None)"]
  assert RECORDS["LayerNormalization"].check({"axis": [1, 2], "rms_scaling": True}) == []
  assert RECORDS["BatchNormalization"].check({"axis": -1, "synchronized": True}) == []


# A diffusion model's residual block (keras.io's DDIM/DDPM examples): GroupNormalization, swish, Conv2D, a time
# embedding added through a Dense layer, and the residual Add.

def _residual_block_model():
  image, time = keras.Input((8, 8, 8)), keras.Input((16,))
  x = L.Activation("swish")(L.GroupNormalization(groups=4)(image))
  x = L.Conv2D(16, 3, padding="same")(x)
  embedding = L.Dense(16)(L.Activation("swish")(time))
  x = L.Add()([x, L.Reshape((1, 1, 16))(embedding)])
  x = L.Activation("swish")(L.GroupNormalization(groups=4)(x))
  x = L.Conv2D(16, 3, padding="same")(x)
  residual = L.Conv2D(16, 1)(image)
  model = keras.Model([image, time], L.Add()([x, residual]))
  randomize(model, 4)
  return model


def test_diffusion_residual_block(tmp_path):
  model = _residual_block_model()
  inputs = [normal((2, 8, 8, 8), seed=5), normal((2, 16), seed=6)]
  module, variables = from_keras(model, check=inputs)
  close(module.apply(variables, *inputs), model(inputs))
  fresh = keras.models.clone_model(model)
  randomize(fresh, 11)
  to_keras(module, variables, fresh)
  close(fresh(inputs), model(inputs))
  fresh.save(tmp_path / "block.keras")
  reloaded = keras.saving.load_model(tmp_path / "block.keras")
  close(module.apply(variables, *inputs), reloaded(inputs))
