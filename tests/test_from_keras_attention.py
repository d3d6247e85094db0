"""from_keras on transformer models (keras.io's ViT and text classifier, small) and on Attention/AdditiveAttention."""

import numpy as np
import pytest

from tests.helpers import assert_close
from tests.keras_model_zoo import randomize

import keras  # noqa: E402  (after keras_model_zoo chose the JAX backend)
from keras import ops  # noqa: E402

from jaxcomponents.weights import compare_with_keras, from_keras, to_keras  # noqa: E402

L = keras.layers
TOL = 1e-5


def _round_trip(model, x, seed=0):
  """from_keras with its layer-by-layer check, the outputs, and to_keras into a fresh copy of the model."""
  randomize(model, seed)
  module, variables = from_keras(model, check=x)
  inputs = x if isinstance(x, list) else [x]
  assert_close(module.apply(variables, *inputs), model(x), TOL)
  report = compare_with_keras(module, variables, model, x)
  assert report.first_divergent is None, str(report)
  fresh = keras.Model.from_config(model.get_config())
  assert not np.allclose(np.asarray(fresh(x)), np.asarray(model(x)))
  to_keras(module, variables, fresh)
  assert_close(fresh(x), model(x), TOL)
  return module, variables


def _encoder_block(x, heads, dim, dropout, name):
  """keras.io's ViT block: LayerNormalization, MultiHeadAttention, residual Add, an MLP of Dense(gelu) + Dropout."""
  y = L.LayerNormalization(epsilon=1e-6, name=f"{name}_ln1")(x)
  y = L.MultiHeadAttention(num_heads=heads, key_dim=dim, dropout=dropout, name=f"{name}_mha")(y, y)
  x = L.Add(name=f"{name}_add1")([y, x])
  y = L.LayerNormalization(epsilon=1e-6, name=f"{name}_ln2")(x)
  for i, units in enumerate((2 * dim, dim)):
    y = L.Dropout(0.1)(L.Dense(units, activation="gelu", name=f"{name}_mlp{i}")(y))
  return L.Add(name=f"{name}_add2")([y, x])


@pytest.mark.parametrize("patches", ["conv", "reshape"])
def test_vision_transformer_classifier(patches):
  images = keras.Input((8, 8, 3), name="images")
  positions = keras.Input((4,), dtype="int32", name="positions")
  dim = 8
  if patches == "conv":
    x = L.Reshape((4, dim))(L.Conv2D(dim, 4, strides=4, name="patches")(images))
  else:  # patches cut by Reshape/Permute, projected by Dense
    x = L.Reshape((2, 4, 2, 4, 3))(images)
    x = L.Reshape((4, 48))(L.Permute((1, 3, 2, 4, 5))(x))
    x = L.Dense(dim, name="projection")(x)
  x = L.Add()([x, L.Embedding(4, dim, name="position_embedding")(positions)])
  x = _encoder_block(x, heads=2, dim=dim, dropout=0.1, name="block1")  # Keras's explicit-softmax path
  x = _encoder_block(x, heads=4, dim=dim, dropout=0.0, name="block2")  # Keras's fused dot-product attention
  x = L.Dropout(0.5)(L.Flatten()(L.LayerNormalization(epsilon=1e-6)(x)))
  x = L.Dense(16, activation="gelu")(x)
  model = keras.Model([images, positions], L.Dense(3, name="head")(x))
  rng = np.random.default_rng(0)
  data = [rng.normal(size=(2, 8, 8, 3)).astype(np.float32), np.tile(np.arange(4, dtype=np.int32), (2, 1))]
  module, variables = _round_trip(model, data)
  assert set(variables["params"]["block1_mha"]) == {"query", "key", "value", "attention_output"}
  assert variables["params"]["block1_mha"]["query"]["kernel"].shape == (dim, 2, dim)
  assert variables["params"]["block2_mha"]["attention_output"]["kernel"].shape == (4, dim, dim)


def _text_classifier(masked_positions: bool, explicit_masks: bool):
  """keras.io's transformer text classifier: token and position embeddings, one transformer block, average pooling.

  Padding is token 0 (`Embedding(mask_zero=True)`). The positions are an input; with `masked_positions` they are
  0 at padding and their embedding masks them too (Keras's `Add` keeps a mask only when every input has one).
  With `explicit_masks` the padding mask is also given to the attention and the pooling as arguments.
  """
  length, dim = 6, 8
  ids = keras.Input((length,), dtype="int32", name="ids")
  positions = keras.Input((length,), dtype="int32", name="positions")
  tokens = L.Embedding(20, dim, mask_zero=True, name="token_embedding")(ids)
  where = L.Embedding(length + 1, dim, mask_zero=masked_positions, name="position_embedding")(positions)
  x = L.Add()([tokens, where])
  mha = L.MultiHeadAttention(num_heads=2, key_dim=dim, name="attention")
  keep = ops.not_equal(ids, 0)
  if explicit_masks:
    attention = mha(x, x, attention_mask=ops.logical_and(ops.expand_dims(keep, 1), ops.expand_dims(keep, 2)))
  else:
    attention = mha(x, x)
  x = L.LayerNormalization(epsilon=1e-6)(L.Add()([x, L.Dropout(0.1)(attention)]))
  y = L.Dense(dim, name="ffn_out")(L.Dense(16, activation="relu", name="ffn_in")(x))
  x = L.LayerNormalization(epsilon=1e-6)(L.Add()([x, L.Dropout(0.1)(y)]))
  pooling = L.GlobalAveragePooling1D()
  x = pooling(x, mask=keep) if explicit_masks else pooling(x)
  x = L.Dense(16, activation="relu")(L.Dropout(0.1)(x))
  model = keras.Model([ids, positions], L.Dense(2, activation="softmax", name="head")(x))
  token_ids = np.array([[3, 7, 1, 9, 0, 0], [5, 2, 0, 0, 0, 0], [4, 4, 8, 6, 2, 11]], np.int32)
  where = np.where(token_ids != 0, np.arange(1, length + 1), 0).astype(np.int32)
  return model, [token_ids, where]


def test_text_classifier_with_explicit_padding_masks():
  model, data = _text_classifier(masked_positions=False, explicit_masks=True)
  module, variables = _round_trip(model, data)
  padded = [np.where(data[0] == 0, 13, data[0]).astype(np.int32), data[1]]
  assert not np.allclose(module.apply(variables, *data), module.apply(variables, *padded))  # the masks are applied
  assert_close(module.apply(variables, *padded), model(padded), TOL)


def test_text_classifier_whose_padding_mask_keras_drops_at_add():
  """Keras's `Add` of a masked token embedding and an unmasked position embedding has no mask: nothing is masked."""
  model, data = _text_classifier(masked_positions=False, explicit_masks=False)
  _round_trip(model, data, seed=1)


def test_text_classifier_with_padding_masks_reaching_attention():
  """Keras attaches the padding mask to the embedded tokens and hands it to attention unrecorded; from_keras
  writes it into the graph."""
  model, data = _text_classifier(masked_positions=True, explicit_masks=False)
  _round_trip(model, data, seed=2)


def test_causal_self_attention_in_a_graph():
  x_in = keras.Input((5, 4))
  y = L.MultiHeadAttention(num_heads=2, key_dim=3)(x_in, x_in, use_causal_mask=True)
  model = keras.Model(x_in, L.Dense(2)(y))
  _round_trip(model, np.random.default_rng(0).normal(size=(2, 5, 4)).astype(np.float32))


def test_attention_and_additive_attention_model():
  queries = keras.Input((4, 3), name="queries")
  values = keras.Input((5, 3), name="values")
  value_ids = keras.Input((5,), dtype="int32", name="value_ids")
  keep = ops.not_equal(value_ids, 0)
  q = L.Dense(6, name="q")(queries)
  v = L.Add()([L.Dense(6, name="v")(values), L.Embedding(7, 6, name="value_embedding")(value_ids)])
  k = L.Dense(6, activation="tanh", name="k")(values)
  dot = L.Attention(use_scale=True, name="dot")([q, v, k], mask=[None, keep])
  concat = L.Attention(score_mode="concat", name="concat")([q, v])
  concat_scaled = L.Attention(score_mode="concat", use_scale=True, name="concat_scaled")([q, k])
  additive = L.AdditiveAttention(name="additive")([q, v, k], mask=[None, keep])
  plain = L.AdditiveAttention(use_scale=False, dropout=0.2, name="plain")([q, v])
  x = L.Concatenate()([dot, concat, concat_scaled, additive, plain])
  model = keras.Model([queries, values, value_ids], L.Dense(2, name="head")(L.GlobalAveragePooling1D()(x)))
  rng = np.random.default_rng(0)
  data = [rng.normal(size=(2, 4, 3)).astype(np.float32), rng.normal(size=(2, 5, 3)).astype(np.float32),
          np.array([[1, 2, 3, 0, 0], [4, 5, 6, 1, 0]], np.int32)]
  module, variables = _round_trip(model, data)
  assert set(variables["params"]["dot"]) == {"scale"}
  assert set(variables["params"]["concat"]) == {"concat_score_weight"}
  assert variables["params"]["additive"]["scale"].shape == (6,)
  assert "plain" not in variables.get("params", {})


def test_einsum_dense_in_a_model():
  x_in = keras.Input((4, 5))
  x = L.EinsumDense("abc,cde->abde", (None, 2, 3), bias_axes="de", activation="relu")(x_in)
  x = L.Reshape((4, 6))(x)
  x = L.EinsumDense("...b,bc->...c", 2, bias_axes="c")(x)
  model = keras.Model(x_in, x)
  _round_trip(model, np.random.default_rng(0).normal(size=(2, 4, 5)).astype(np.float32))



@pytest.mark.parametrize("query_has_mask", [False, True])
def test_a_query_mask_given_to_multi_head_attention_is_replaced_by_the_querys_own_as_keras(query_has_mask):
  """Keras's MultiHeadAttention.call takes the query's attached mask and ignores a `query_mask` argument."""
  ids, values = keras.Input((3,), dtype="int32"), keras.Input((5, 4))
  query_keep, value_keep = keras.Input((3,)), keras.Input((5,))
  query = L.Embedding(7, 4, mask_zero=query_has_mask)(ids)
  y = L.MultiHeadAttention(2, 2)(query, values, query_mask=ops.cast(query_keep, "bool"),
                                 value_mask=ops.cast(value_keep, "bool"))
  model = keras.Model([ids, values, query_keep, value_keep], y)
  rng = np.random.default_rng(3)
  x = [np.array([[1, 2, 0], [3, 0, 4]], np.int32), rng.normal(size=(2, 5, 4)).astype(np.float32),
       np.array([[1, 1, 0], [0, 1, 1]], np.float32), np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]], np.float32)]
  _round_trip(model, x)


@pytest.mark.parametrize("options, call", [
    (dict(head_dim=3, num_query_heads=4, num_key_value_heads=2), dict(use_causal_mask=True)),  # the fused path
    (dict(head_dim=2, num_query_heads=6, num_key_value_heads=3, use_gate=True, sliding_window=2, dropout=0.2),
     dict(return_attention_scores=True)),  # scores through the masked softmax, dropout off at inference
    (dict(head_dim=2, num_query_heads=2, num_key_value_heads=1, use_bias=False), dict(masked=True)),
])
def test_grouped_query_attention_as_keras(options, call):
  ids, values = keras.Input((4,), dtype="int32"), keras.Input((5, 6))
  query = L.Embedding(9, 6, mask_zero=call.pop("masked", False))(ids)  # its mask reaches the layer unrecorded
  y = L.GroupQueryAttention(**options)(query, values, **call)
  model = keras.Model([ids, values], L.Concatenate()([L.Flatten()(t) for t in y]) if isinstance(y, tuple) else y)
  x = [np.array([[1, 2, 0, 3], [4, 0, 0, 5]], np.int32),
       np.random.default_rng(4).normal(size=(2, 5, 6)).astype(np.float32)]
  _round_trip(model, x)
