"""EinsumDense, MultiHeadAttention, Attention and AdditiveAttention against the Keras layers, with random weights."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras.src import backend as keras_backend  # noqa: E402

from jaxcomponents.layers.attention import AdditiveAttention, Attention, MultiHeadAttention  # noqa: E402
from jaxcomponents.layers.einsum_dense import EinsumDense, einsum_dense_shapes  # noqa: E402
from tests.helpers import assert_close  # noqa: E402

L = keras.layers
TOL = 1e-5


def _randomized(layer, seed=0):
  """The Keras layer's weights set to random values, and the same as Flax params (by Keras's weight paths)."""
  rng = np.random.default_rng(seed)
  params = {}
  for w in layer.weights:
    value = rng.normal(0.0, 0.5, tuple(w.shape)).astype(np.float32)
    w.assign(value)
    *scopes, name = w.path.split("/")[1:]
    node = params
    for scope in scopes:
      node = node.setdefault(scope, {})
    node[name] = value
  return {"params": params}


def _x(shape, seed=1):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _masked(x, mask):
  """`x` as a backend tensor carrying a Keras mask, as `Embedding(mask_zero=True)` leaves it."""
  x = jnp.asarray(x)
  if mask is not None:
    keras_backend.set_keras_mask(x, jnp.asarray(mask))
  return x


# EinsumDense.

@pytest.mark.parametrize("equation,output_shape,bias_axes,shape,activation", [
    ("ab,bc->ac", 4, "c", (3, 5), "relu"),
    ("abc,cd->abd", (None, 4), "d", (2, 3, 5), None),
    ("abc,cde->abde", (None, 2, 4), "de", (2, 3, 5), "tanh"),
    ("abc,cde->abde", (None, 2, 4), "e", (2, 3, 5), None),
    ("...b,bc->...c", 6, "c", (2, 3, 4, 5), "gelu"),
    ("abc...,cd->abd...", (3, 4), "d", (2, 3, 5, 2), None),
    ("abcd,cde->abe", (None, 3), None, (2, 4, 2, 5), None),
    ("abcd,cde->abe", (4, 3), "b", (2, 4, 2, 5), None),
])
def test_einsum_dense_equals_keras(equation, output_shape, bias_axes, shape, activation):
  layer = L.EinsumDense(equation, output_shape, activation=activation, bias_axes=bias_axes)
  x = _x(shape)
  layer(x)
  variables = _randomized(layer)
  ours = EinsumDense(equation, output_shape, activation, bias_axes, precision="highest")
  shapes = jax.eval_shape(ours.init, jax.random.key(0), x)["params"]
  assert {k: v.shape for k, v in shapes.items()} == {k: v.shape for k, v in variables["params"].items()}
  assert_close(ours.apply(variables, x), layer(x), TOL)


def test_einsum_dense_refuses_bad_equations_and_shapes():
  with pytest.raises(ValueError, match="equation='ab->b'"):
    einsum_dense_shapes("ab->b", None, (2, 3), 4)
  with pytest.raises(ValueError, match="bias_axes='z'"):
    einsum_dense_shapes("ab,bc->ac", "z", (2, 3), 4)
  with pytest.raises(ValueError, match="output_shape"):
    einsum_dense_shapes("abc,cd->abd", "d", (2, 3, 5), (7, 4))
  with pytest.raises(ValueError, match="kernel axis 'd'"):
    einsum_dense_shapes("abc,cd->abd", None, (2, 3, 5), (None, None))


# MultiHeadAttention.

def _mha_pair(config, q, v, k=None, seed=0):
  layer = L.MultiHeadAttention(**config)
  layer(q, v, k)
  variables = _randomized(layer, seed)
  return layer, MultiHeadAttention(**config, precision="highest"), variables


def _compare_mha(config, q, v, k=None, call=None, masks=None, seed=0):
  """Our layer and Keras's on the same inputs; `masks` are the (query, value, key) masks Keras finds on them."""
  call, masks = call or {}, masks or (None, None, None)
  layer, ours, variables = _mha_pair(config, q, v, k, seed)
  kq, kv = _masked(q, masks[0]), _masked(v, masks[1])
  kk = None if k is None else _masked(k, masks[2])
  theirs = layer(kq, kv, kk, **call)
  mine = ours.apply(variables, q, v, k, query_mask=masks[0], value_mask=masks[1], key_mask=masks[2], **call)
  theirs, mine = (list(t) if isinstance(t, tuple) else [t] for t in (theirs, mine))
  assert len(mine) == len(theirs)
  for a, b in zip(mine, theirs):
    assert_close(a, b, TOL)
  return mine


def _padding(batch, length, kept):
  return np.arange(length)[None, :] < np.asarray(kept)[:, None]


@pytest.mark.parametrize("config", [
    {"num_heads": 2, "key_dim": 3},
    {"num_heads": 3, "key_dim": 4, "value_dim": 4, "use_bias": False},
    {"num_heads": 3, "key_dim": 2, "value_dim": 4, "dropout": 0.1},  # Keras's fused path fails on key_dim != value_dim
    {"num_heads": 1, "key_dim": 5, "output_shape": 7},
    {"num_heads": 2, "key_dim": 3, "output_shape": (2, 3)},
    {"num_heads": 2, "key_dim": 3, "dropout": 0.3},  # Keras's explicit-softmax path, dropout off at inference
])
def test_multi_head_attention_configurations(config):
  q, v, k = _x((2, 4, 6), 1), _x((2, 5, 3), 2), _x((2, 5, 4), 3)
  _compare_mha(config, q, q)
  _compare_mha(config, q, v, k, seed=1)
  _compare_mha(config, q, v, k, call={"return_attention_scores": True}, seed=2)


@pytest.mark.parametrize("scores", [False, True])
def test_multi_head_attention_masks(scores):
  """Query, value and key masks and attention_mask combine as Keras combines them, fully masked queries included
  (the fused path then averages every value, the explicit path gives zeros)."""
  config = {"num_heads": 2, "key_dim": 3}
  q, v, k = _x((3, 4, 6), 1), _x((3, 5, 6), 2), _x((3, 5, 6), 3)
  query_mask, value_mask = _padding(3, 4, [4, 2, 3]), _padding(3, 5, [5, 3, 1])
  key_mask = _padding(3, 5, [4, 5, 5])
  attention_mask = np.random.default_rng(0).uniform(size=(3, 4, 5)) > 0.3
  call = {"return_attention_scores": scores}
  _compare_mha(config, q, v, call=call, masks=(query_mask, value_mask, None))
  _compare_mha(config, q, v, k, call=call, masks=(query_mask, value_mask, key_mask))
  _compare_mha(config, q, v, k, call={**call, "attention_mask": attention_mask}, masks=(None, value_mask, None))
  none_kept = attention_mask.copy()
  none_kept[1, 2] = False  # one query attends to nothing
  _compare_mha(config, q, v, k, call={**call, "attention_mask": none_kept}, masks=(query_mask, None, key_mask))


def test_a_key_mask_given_without_a_key_masks_as_in_keras():
  """Keras keys on the value then and still applies the `key_mask` argument (it had been dropped)."""
  config = {"num_heads": 2, "key_dim": 3}
  q, v = _x((2, 4, 6), 1), _x((2, 5, 6), 2)
  layer, ours, variables = _mha_pair(config, q, v)
  key_mask = _padding(2, 5, [3, 5])
  assert_close(ours.apply(variables, q, v, key_mask=key_mask), layer(q, v, key_mask=key_mask), TOL)


def test_keras_ignores_a_query_mask_argument():
  config = {"num_heads": 2, "key_dim": 3}
  q = _x((2, 4, 6))
  layer, ours, variables = _mha_pair(config, q, q)
  mask = _padding(2, 4, [2, 3])
  assert_close(layer(q, q, query_mask=mask), ours.apply(variables, q, q), TOL)


@pytest.mark.parametrize("call", [{}, {"return_attention_scores": True}])
def test_multi_head_attention_causal_masks(call):
  config = {"num_heads": 2, "key_dim": 3}
  q, v = _x((2, 5, 6), 1), _x((2, 5, 4), 2)
  _compare_mha(config, q, q, call={**call, "use_causal_mask": True})
  _compare_mha(config, q, v, call={**call, "use_causal_mask": True}, masks=(_padding(2, 5, [5, 3]), None, None))
  _compare_mha({**config, "dropout": 0.2}, q, v, call={**call, "use_causal_mask": True},
               masks=(None, _padding(2, 5, [4, 2]), None))
  _compare_mha(config, _x((2, 3, 6)), v, call={**call, "use_causal_mask": True})  # T < S


@pytest.mark.parametrize("axes,shape", [((1, 2), (2, 3, 4, 5)), ((2,), (2, 3, 4, 5)), (None, (2, 3, 4, 5)),
                                        ((-2,), (2, 3, 4, 5)), ((1, 3), (2, 2, 3, 2, 4))])
def test_multi_head_attention_axes(axes, shape):
  config = {"num_heads": 2, "key_dim": 3, "attention_axes": axes}
  q, v = _x(shape, 1), _x(shape, 2)
  _compare_mha(config, q, v)
  _compare_mha(config, q, v, call={"return_attention_scores": True})


def test_multi_head_attention_mask_over_two_axes():
  config = {"num_heads": 2, "key_dim": 3, "attention_axes": (1, 2)}
  q, v = _x((2, 3, 4, 5), 1), _x((2, 3, 4, 5), 2)
  mask = np.random.default_rng(0).uniform(size=(2, 3, 4, 3, 4)) > 0.4
  _compare_mha(config, q, v, call={"attention_mask": mask})
  _compare_mha(config, q, v, call={"attention_mask": mask, "return_attention_scores": True})


def test_multi_head_attention_sliding_window_and_gate():
  q, v = _x((2, 6, 4), 1), _x((2, 6, 4), 2)
  for config in ({"num_heads": 2, "key_dim": 3, "sliding_window": 2},
                 {"num_heads": 2, "key_dim": 3, "use_gate": True}):
    _compare_mha(config, q, v)
    _compare_mha(config, q, v, call={"use_causal_mask": True, "return_attention_scores": True})
    _compare_mha(config, q, v, masks=(_padding(2, 6, [6, 4]), _padding(2, 6, [5, 6]), None))


def test_multi_head_attention_value_dim_apart_from_key_dim_without_dropout():
  """Keras 3.15 raises here (its fused attention reshapes to the key's head size); the result is the explicit one."""
  layer = MultiHeadAttention(num_heads=2, key_dim=3, value_dim=5, precision="highest")
  q, v = _x((2, 4, 6), 1), _x((2, 5, 6), 2)
  variables = layer.init(jax.random.key(0), q, v)
  fused = layer.apply(variables, q, v, value_mask=_padding(2, 5, [5, 2]))
  explicit, _ = layer.apply(variables, q, v, value_mask=_padding(2, 5, [5, 2]), return_attention_scores=True)
  assert fused.shape == (2, 4, 6)
  assert_close(fused, explicit, TOL)


def test_multi_head_attention_dropout_in_training():
  layer = MultiHeadAttention(num_heads=2, key_dim=3, dropout=0.5)
  q = _x((2, 4, 6))
  variables = layer.init(jax.random.key(0), q, q)
  rest = layer.apply(variables, q, q)
  _, weights = layer.apply(variables, q, q, train=True, rngs={"dropout": jax.random.key(1)},
                           return_attention_scores=True)
  first = layer.apply(variables, q, q, train=True, rngs={"dropout": jax.random.key(1)})
  again = layer.apply(variables, q, q, train=True, rngs={"dropout": jax.random.key(1)})
  np.testing.assert_array_equal(first, again)
  assert not np.allclose(first, rest)
  np.testing.assert_allclose(np.sum(weights, -1), 1.0, rtol=1e-5)  # the returned scores are before dropout


def test_multi_head_attention_refuses_flash_attention_and_bad_arguments():
  q = jnp.ones((1, 3, 4))
  with pytest.raises(ValueError, match="flash_attention=True"):
    MultiHeadAttention(num_heads=2, key_dim=2, flash_attention=True).init(jax.random.key(0), q, q)
  with pytest.raises(ValueError, match="num_heads=0"):
    MultiHeadAttention(num_heads=0, key_dim=2).init(jax.random.key(0), q, q)
  with pytest.raises(ValueError, match="all their axes but the last"):
    MultiHeadAttention(num_heads=1, key_dim=2).init(jax.random.key(0), q, q, jnp.ones((1, 4, 4)))


# Attention and AdditiveAttention.

def _compare_attention(keras_cls, ours_cls, config, inputs, mask=None, call=None, seed=0):
  call = call or {}
  layer = keras_cls(**config)
  layer(inputs)
  variables = _randomized(layer, seed)
  if not variables["params"]:
    variables = {}
  theirs = layer(inputs, mask=mask, **call)
  mine = ours_cls(**config, precision="highest").apply(variables, inputs, mask=mask, **call)
  theirs, mine = (list(t) if isinstance(t, tuple) else [t] for t in (theirs, mine))
  assert len(mine) == len(theirs)
  for a, b in zip(mine, theirs):
    assert_close(a, b, TOL)


@pytest.mark.parametrize("config", [
    {}, {"use_scale": True}, {"score_mode": "concat"}, {"score_mode": "concat", "use_scale": True},
    {"dropout": 0.4, "use_scale": True},
])
def test_attention_equals_keras(config):
  q, v, k = _x((2, 4, 3), 1), _x((2, 5, 3), 2), _x((2, 5, 3), 3)
  masks = [_padding(2, 4, [4, 2]), _padding(2, 5, [3, 5])]
  _compare_attention(L.Attention, Attention, config, [q, v])
  _compare_attention(L.Attention, Attention, config, [q, v, k], mask=masks, call={"return_attention_scores": True})
  _compare_attention(L.Attention, Attention, config, [q, v], mask=[None, masks[1]])
  _compare_attention(L.Attention, Attention, config, [q, v, k], mask=masks,
                     call={"use_causal_mask": True, "return_attention_scores": True})
  _compare_attention(L.Attention, Attention, config, [q, q], call={"use_causal_mask": True})


@pytest.mark.parametrize("config", [{}, {"use_scale": False}, {"dropout": 0.3}])
def test_additive_attention_equals_keras(config):
  q, v, k = _x((2, 4, 3), 1), _x((2, 5, 3), 2), _x((2, 5, 3), 3)
  masks = [_padding(2, 4, [4, 2]), _padding(2, 5, [3, 5])]
  _compare_attention(L.AdditiveAttention, AdditiveAttention, config, [q, v])
  _compare_attention(L.AdditiveAttention, AdditiveAttention, config, [q, v, k], mask=masks,
                     call={"return_attention_scores": True})
  _compare_attention(L.AdditiveAttention, AdditiveAttention, config, [q, v], mask=masks,
                     call={"use_causal_mask": True})


def test_attention_refuses_bad_arguments():
  q = jnp.ones((1, 3, 4))
  with pytest.raises(ValueError, match="score_mode='sum'"):
    Attention(score_mode="sum").init(jax.random.key(0), [q, q])
  with pytest.raises(ValueError, match=r"inputs=\[query, value\]"):
    Attention().init(jax.random.key(0), [q])


@pytest.mark.parametrize("layer", [Attention(dropout=0.5), AdditiveAttention(dropout=0.5)])
def test_attention_scores_returned_in_training_are_the_dropped_weights_as_keras_returns_them(layer):
  """Keras returns `(weights @ value, weights)` with the weights after dropout."""
  q, v = _x((2, 3, 4), 1), _x((2, 5, 4), 2)
  variables = layer.init(jax.random.key(0), [q, v])
  out, scores = layer.apply(variables, [q, v], return_attention_scores=True, train=True,
                            rngs={"dropout": jax.random.key(1)})
  assert_close(out, jnp.matmul(scores, v), 1e-6)
  assert not np.allclose(np.asarray(scores).sum(-1), 1.0)  # some weights dropped, the rest scaled by 2
