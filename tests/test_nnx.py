"""jaxcomponents.nnx: an NNX model trains and infers as the Linen module does, and its variables go back."""

import functools
import importlib
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxcomponents import losses, optimizers
from jaxcomponents import nnx as jnnx
from jaxcomponents.layers import Convolution, Dense
from jaxcomponents.models import MobileNetV2
from jaxcomponents.training import TrainState, make_train_step
from jaxcomponents.weights import load_npz, save_npz


class SmallNet(nn.Module):
  """Convolution with batch norm -> Dense with batch norm (and dropout) -> softmax."""

  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, *, train=False):
    x = Convolution(4, 3, activation="relu", batch_norm=True, pool="max")(x, train=train)
    x = x.reshape((x.shape[0], -1))
    x = Dense(8, activation="relu", batch_norm=True, dropout=self.dropout)(x, train=train)
    return Dense(3, activation="softmax", name="predictions")(x, train=train)


def batches(n=4, size=8):
  rng = np.random.default_rng(0)
  return [(rng.normal(size=(size, 8, 8, 1)).astype(np.float32), rng.integers(0, 3, size).astype(np.int32))
          for _ in range(n)]


def assert_trees(actual, expected, atol=0.0):
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
    assert a.dtype == e.dtype and a.shape == e.shape
    np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=0, atol=atol)


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_nnx_training_matches_the_linen_step(dropout, tmp_path):
  net, data = SmallNet(dropout), batches()
  variables = net.init(jax.random.key(7), data[0][0])
  state = TrainState.create(net, optimizers.get("adam", learning_rate=1e-2), variables=variables, seed=0)
  step = make_train_step("sparse_categorical_crossentropy", donate=False)

  model = jnnx.from_variables(net, variables, data[0][0], rngs=0)  # rngs=0: the dropout keys of seed=0
  optimizer = nnx.Optimizer(model, optimizers.get("adam", learning_rate=1e-2), wrt=nnx.Param)
  loss_fn = losses.get("sparse_categorical_crossentropy")

  @nnx.jit
  def nnx_step(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(lambda model: loss_fn(y, model(x, train=True)))(model)
    optimizer.update(model, grads)
    return loss

  linen_losses, nnx_losses = [], []
  for x, y in data:
    state, logs = step(step.reset(state), {"x": x, "y": y})  # reset: each step's own loss, not a running mean
    linen_losses.append(float(logs["loss"]))
    nnx_losses.append(float(nnx_step(model, optimizer, x, y)))
  np.testing.assert_allclose(nnx_losses, linen_losses, rtol=0, atol=1e-5)
  trained = jnnx.to_variables(model)
  assert_trees(trained, state.variables, atol=1e-5)
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), trained["batch_stats"], variables["batch_stats"])
  assert min(jax.tree.leaves(moved)) > 0  # every batch statistic was updated in training mode

  save_npz(tmp_path / "trained.npz", trained)  # NNX-trained weights leave through the library's own files
  assert_trees(load_npz(tmp_path / "trained.npz", net, data[0][0]), trained)


def test_from_linen_seed_gives_the_train_state_of_the_same_seed():
  net, x = SmallNet(), batches(1)[0][0]
  state = TrainState.create(net, optimizers.get("sgd"), x, seed=3)
  assert_trees(jnnx.to_variables(jnnx.from_linen(net, x, rngs=3)), state.variables)


def test_backbone_from_variables_infers_as_apply_and_round_trips():
  net = MobileNetV2(alpha=0.35, classes=7)
  x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
  rng = np.random.default_rng(2)  # given weights, as from load_imagenet: random, statistics away from 0 and 1
  draw = {"bias": lambda s: rng.normal(0.0, 0.1, s), "scale": lambda s: rng.uniform(0.5, 1.5, s),
          "mean": lambda s: rng.normal(0.0, 0.1, s), "var": lambda s: rng.uniform(0.5, 1.5, s)}
  kernel = lambda s: rng.normal(0.0, 1.0, s) * np.sqrt(2 / np.prod(s[:-1]))  # kernel, depthwise_kernel
  variables = jax.tree_util.tree_map_with_path(
      lambda p, a: jnp.asarray(draw.get(p[-1].key, kernel)(a.shape), a.dtype),
      jax.eval_shape(net.init, jax.random.key(0), x))

  model = jnnx.from_variables(net, variables, x)
  # The feature maps too (keyword inputs pass through): the early ones depend on x more than the logits do.
  expected = jax.jit(functools.partial(net.apply, train=False, return_features=True))(variables, x)
  got = nnx.jit(lambda model, x: model(x, train=False, return_features=True))(model, x)
  assert sorted(got[1]) == sorted(expected[1]) and len(expected[1]) == 5
  assert_trees(got, expected, atol=1e-6)
  assert_trees(jnnx.to_variables(model), variables)  # exactly, and inference changed nothing
  assert isinstance(model.Conv1["kernel"], nnx.Param) and isinstance(model.bn_Conv1["mean"], nnx.BatchStat)


def test_modes_keys_and_positional_train():
  layer, x = Dense(3, batch_norm=True, dropout=0.5), jnp.arange(8.0).reshape(2, 4)
  model = jnnx.from_linen(layer, x)
  before = jnnx.to_variables(model)
  model(x)  # inference by default: nothing changes
  assert_trees(jnnx.to_variables(model), before)
  key = jax.random.key(5)
  expected, updates = layer.apply(before, x, train=True, mutable=["batch_stats"], rngs={"dropout": key})
  with pytest.warns(DeprecationWarning, match="passing train positionally"):  # train positionally, for a release
    np.testing.assert_array_equal(model(x, True, rngs={"dropout": key}), expected)
  assert_trees(jnnx.to_variables(model)["batch_stats"], updates["batch_stats"])
  model.train()
  assert not model.deterministic
  np.testing.assert_array_equal(model(x, rngs=key), layer.apply(
      jnnx.to_variables(model), x, train=True, mutable=["batch_stats"], rngs={"dropout": key})[0])
  model.eval()
  frozen = jnnx.to_variables(model)
  np.testing.assert_array_equal(model(x), layer.apply(frozen, x))
  assert_trees(jnnx.to_variables(model), frozen)


class NamedTrain(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(2, name="train")(x)  # would shadow the NNX module's train()


X = jnp.ones((2, 4))
DENSE3 = Dense(3, batch_norm=True).init(jax.random.key(0), X)


@pytest.mark.parametrize("call,match", [
    (lambda: jnnx.from_linen(Dense, X), r"module=Dense is not allowed; expected an instance .* Dense\(\.\.\.\)"),
    (lambda: jnnx.from_linen("dense", X), r"module='dense' is not allowed; expected a flax.linen Module"),
    (lambda: jnnx.from_linen(Dense(3)), r"sample_inputs=\(\) is not allowed; expected at least one input"),
    (lambda: jnnx.from_linen(Dense(3), X, rngs="a"), r"rngs='a' is not allowed; expected an int seed or an nnx"),
    (lambda: jnnx.from_linen(Dense(3), X, rngs=True), r"rngs=True is not allowed"),
    (lambda: jnnx.from_variables(Dense(3), {"params": 3}), r"variables=\{'params': 3\} is not allowed; expected a "
     "Linen variables dict"),
    (lambda: jnnx.from_variables(Dense(3), {"params": {"dense": {"kernel": "k"}}}),
     r"variables\[params/dense/kernel\]='k' is not allowed; expected an array"),
    (lambda: jnnx.from_variables(Dense(5, batch_norm=True), DENSE3, X),
     r"variables do not fit Dense:\nmis-shaped:\n  batch_stats/batch_normalization/mean: module expects \(5,\)"),
    (lambda: jnnx.from_variables(Dense(3, batch_norm=True), {"params": DENSE3["params"]}, X),
     r"variables do not fit Dense:\nmissing:\n  batch_stats/batch_normalization/mean \(3,\)"),
    (lambda: jnnx.from_linen(NamedTrain(), X), r"variables named \['train'\] cannot be NNX attributes"),
    (lambda: jnnx.to_variables(nnx.Linear(2, 3, rngs=nnx.Rngs(0))), r"model=Linear\(\.\.\.\) is not allowed"),
    (lambda: jnnx.from_variables(Dense(3, batch_norm=True), DENSE3)(X, train="yes"),
     r"train='yes' is not allowed; expected True, False or None"),
    (lambda: jnnx.from_variables(Dense(3, batch_norm=True), DENSE3)(X, True, train=False),
     r"train=False is not allowed with train also given as positional argument 2 \(True\); give it once"),
    (lambda: jnnx.from_variables(Dense(3, batch_norm=True), DENSE3)(X, rngs=7),
     r"rngs=7 is not allowed; expected None, nnx.Rngs, a key"),
])
def test_bad_inputs_name_the_parameter_and_what_is_allowed(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_import_changes_nothing_process_wide():
  before = dict(os.environ), {k: repr(v) for k, v in jax.config.values.items()}
  importlib.reload(jnnx)
  assert (dict(os.environ), {k: repr(v) for k, v in jax.config.values.items()}) == before
