"""Keras's attention layers: `MultiHeadAttention`, `Attention` (Luong) and `AdditiveAttention` (Bahdanau).

Each computes what its Keras 3 class computes, with Keras's weights:
`MultiHeadAttention` holds four `EinsumDense` sub-layers named `query`, `key`,
`value` and `attention_output` (and `gate` with `use_gate`), each with
`kernel` and `bias`; `Attention` holds `scale` and `concat_score_weight`
(scalars), `AdditiveAttention` holds `scale` (one per feature).

Keras attaches masks to tensors; here they are arguments. `query_mask` and
`value_mask` (and `key_mask`) are the masks Keras would find on the query,
value (and key) tensors, e.g. from `Embedding(mask_zero=True)`: `(batch, T)`
and `(batch, S)` booleans, True where a position is kept.

Example:
  >>> import jax, jax.numpy as jnp
  >>> layer = MultiHeadAttention(num_heads=2, key_dim=4)
  >>> x = jnp.ones((1, 5, 8))
  >>> variables = layer.init(jax.random.key(0), x, x)
  >>> layer.apply(variables, x, x, use_causal_mask=True).shape
  (1, 5, 8)
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.errors import check_choice, check_positive_int, check_rate
from jaxcomponents.layers.dropout import Dropout
from jaxcomponents.layers.einsum_dense import EinsumDense
from jaxcomponents.layers.init_fields import InitializerLike, freeze_configs
from jaxcomponents.layers.precision import PrecisionFields

_LETTERS = string.ascii_lowercase


def _projection(free: int, bound: int, out: int) -> tuple[str, str]:
  """The equation and bias axes of a projection inside multi-head attention: `free` axes kept, `bound` contracted."""
  inputs = _LETTERS[:free] + _LETTERS[free:free + bound]
  kernel = _LETTERS[free:free + bound + out]
  outputs = _LETTERS[:free] + _LETTERS[free + bound:free + bound + out]
  return f"{inputs},{kernel}->{outputs}", _LETTERS[free + bound:free + bound + out]


def _attention_equations(rank: int, axes: tuple[int, ...]) -> tuple[str, str, int]:
  """(key . query -> scores, scores . value -> output) equations and the scores' rank.

  The projected tensors are `(batch, <other axes>, <attention axes>, heads, channels)`; every axis but the
  attention axes and the channels is a batch axis of the product.
  """
  target = _LETTERS[:rank]
  batch = [i for i in range(rank) if i not in axes and i != rank - 1]
  source, extra = list(target), iter(_LETTERS[rank:])
  for i in range(rank - 1):
    if i not in batch:
      source[i] = next(extra)
  source = "".join(source)
  product = "".join([target[i] for i in batch] + [target[i] for i in axes] + [source[i] for i in axes])
  return f"{source},{target}->{product}", f"{product},{source}->{target}", len(product)


def _softmax_masked(scores: jax.Array, mask: jax.Array | None, axes: tuple[int, ...]) -> jax.Array:
  """Keras's `Softmax` layer with a mask: masked scores set to -1e9 (-3e4 in float16), masked outputs zeroed."""
  if mask is not None:
    if mask.dtype != jnp.bool_:
      mask = mask > 0.5
    scores = jnp.where(mask, scores, -3e4 if scores.dtype == jnp.float16 else -1e9)
  if len(axes) > 1:
    out = jnp.exp(scores - jax.scipy.special.logsumexp(scores, axis=axes, keepdims=True))
  else:
    out = jax.nn.softmax(scores, axis=axes[0])
  return out if mask is None else jnp.where(mask, out, 0.0)


def _causal(t: int, s: int) -> jax.Array:
  return (jnp.arange(t)[:, None] >= jnp.arange(s)[None, :])[None]


class MultiHeadAttention(PrecisionFields):
  """Multi-head attention as Keras's `MultiHeadAttention`.

  Keras takes one of two computations, and so does this layer: without
  dropout, without returned scores and with `(batch, T, features)` inputs, the
  fused dot-product attention (`keras.ops.dot_product_attention`; masked scores
  set to -0.7 x the dtype's largest value, so a query whose every key is masked
  averages all values); otherwise scores through Keras's masked `Softmax`
  (masked scores set to -1e9 and masked weights zeroed, so such a query gets
  zeros). Dropout is applied to the attention weights with `train=True`. (Keras 3.15 raises on the fused path
  when `value_dim` differs from `key_dim`; this layer computes it.)

  Attributes:
    num_heads: the number of heads.
    key_dim: the size of each head of query and key.
    value_dim: the size of each head of value (None: `key_dim`).
    dropout: the dropout rate of the attention weights, in [0, 1).
    use_bias: the projections have biases.
    output_shape: the output's sizes besides batch and attention axes (None: the query's features).
    attention_axes: the axes attention runs over (None: all but batch, heads and features; negative axes count
      from the query's last axis as Keras counts them).
    sliding_window: each query attends only to keys fewer than this many positions away (None: all).
    use_gate: gate the heads' outputs by a sigmoid projection of the query (sub-layer `gate`).
    num_key_value_heads: key and value projected to this many heads, each shared by `num_heads //
      num_key_value_heads` query heads in turn (None: `num_heads`): Keras's `GroupQueryAttention(head_dim,
      num_query_heads, num_key_value_heads)` is this layer with `key_dim=head_dim`, `num_heads=num_query_heads`.
    flash_attention: None or False: the XLA computation above. True is refused: Keras then runs cuDNN's or
      the TPU's fused kernel, whose rounding this layer does not reproduce (Keras refuses it on the CPU).
    kernel_init, bias_init: initializers of the projections, as `EinsumDense` takes them (Keras's defaults:
      `glorot_uniform` over each projection's input and output axes, `zeros`; None: `glorot_uniform`).
    dtype, param_dtype, precision: keyword-only; see `jaxcomponents.layers.precision`.

  Call arguments:
    query: `(batch, T, ..., features)`.
    value: `(batch, S, ..., features)`.
    key: as `value` (None: `value`).
    query_mask, value_mask, key_mask: `(batch, T)` / `(batch, S)` masks, True where kept (the masks Keras
      finds attached to the tensors; Keras ignores a `query_mask` passed as its argument, a `key_mask` is used
      only with `key`).
    attention_mask: `(batch, T, S)` (or broadcastable), True where query i may attend to key j.
    return_attention_scores: also return the attention weights `(batch, heads, T, S)`.
    use_causal_mask: query i attends only to keys j <= i.
    train: dropout on (rng stream `'dropout'`).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4)
    >>> q, v = jnp.ones((2, 4, 6)), jnp.ones((2, 5, 6))
    >>> variables = layer.init(jax.random.key(0), q, v)
    >>> out, scores = layer.apply(variables, q, v, return_attention_scores=True)
    >>> out.shape, scores.shape
    ((2, 4, 6), (2, 2, 4, 5))
  """

  num_heads: int
  key_dim: int
  value_dim: int | None = None
  dropout: float = 0.0
  use_bias: bool = True
  output_shape: int | Sequence[int] | None = None
  attention_axes: int | Sequence[int] | None = None
  sliding_window: int | None = None
  use_gate: bool = False
  num_key_value_heads: int | None = None
  flash_attention: bool | None = None
  kernel_init: InitializerLike | None = "glorot_uniform"
  bias_init: InitializerLike | None = "zeros"

  def __post_init__(self):
    freeze_configs(self, ("kernel_init", "bias_init"))
    super().__post_init__()

  def _check(self) -> None:
    check_positive_int("num_heads", self.num_heads)
    check_positive_int("key_dim", self.key_dim)
    if self.value_dim is not None:
      check_positive_int("value_dim", self.value_dim)
    check_rate("dropout", self.dropout)
    if self.sliding_window is not None:
      check_positive_int("sliding_window", self.sliding_window)
    check_choice("flash_attention", self.flash_attention, (None, False))
    if self.num_key_value_heads is not None:
      check_positive_int("num_key_value_heads", self.num_key_value_heads)
      if self.num_heads % self.num_key_value_heads:
        raise ValueError(f"num_key_value_heads={self.num_key_value_heads} is not allowed with num_heads="
                         f"{self.num_heads}; expected a divisor of num_heads.")

  def _dense(self, equation: str, bias_axes: str, output_shape, name: str, activation=None) -> EinsumDense:
    return EinsumDense(equation, tuple(output_shape), activation, bias_axes if self.use_bias else None,
                       kernel_init=self.kernel_init, bias_init=self.bias_init, name=name, **self.precision_options)

  def _heads(self, x: jax.Array, size: int, name: str, activation=None, shared: bool = False) -> jax.Array:
    """`x` projected to `(..., heads, size)`; `shared`: key or value, each head repeated for its query heads."""
    heads = self.num_key_value_heads if shared and self.num_key_value_heads else self.num_heads
    equation, bias_axes = _projection(x.ndim - 1, 1, 2)
    y = self._dense(equation, bias_axes, [None] * (x.ndim - 2) + [heads, size], name, activation)(x)
    return y if heads == self.num_heads else jnp.repeat(y, self.num_heads // heads, axis=-2)

  def _masks(self, query, value, query_mask, value_mask, key_mask, attention_mask, use_causal_mask):
    """Keras's attention mask: the query, value and key masks, the causal and window masks and attention_mask."""
    t, s = query.shape[1], value.shape[1]
    found = []
    if query_mask is not None:
      found.append(jnp.asarray(query_mask).astype(bool)[..., None])
    for mask in (value_mask, key_mask):
      if mask is not None:
        found.append(jnp.asarray(mask).astype(bool)[..., None, :])
    if use_causal_mask:
      found.append(_causal(t, s))
    if self.sliding_window is not None:
      found.append((jnp.abs(jnp.arange(t)[:, None] - jnp.arange(s)[None, :]) < self.sliding_window)[None])
    if attention_mask is not None:
      found.append(jnp.asarray(attention_mask).astype(bool))
    if not found:
      return None
    combined = found[0]
    for mask in found[1:]:
      combined = combined & mask
    return combined

  @nn.compact
  def __call__(self, query: jax.Array, value: jax.Array, key: jax.Array | None = None, *,
               query_mask: jax.Array | None = None, value_mask: jax.Array | None = None,
               key_mask: jax.Array | None = None, attention_mask: jax.Array | None = None,
               return_attention_scores: bool = False, use_causal_mask: bool = False, train: bool = False):
    self._check()
    if key is None:  # Keras keys on the value, and still applies a key_mask given without a key
      key = value
    if value.shape[1:-1] != key.shape[1:-1]:
      raise ValueError(f"value has shape {value.shape} and key {key.shape}; all their axes but the last must "
                       "be equal.")
    causal_only = (use_causal_mask and self.sliding_window is None
                   and all(m is None for m in (query_mask, value_mask, key_mask, attention_mask)))
    mask = None if causal_only else self._masks(query, value, query_mask, value_mask, key_mask, attention_mask,
                                                use_causal_mask)
    value_dim = self.value_dim or self.key_dim
    gate = self._heads(query, value_dim, "gate", "sigmoid") if self.use_gate else None
    q = self._heads(query, self.key_dim, "query")
    k = self._heads(key, self.key_dim, "key", shared=True)
    v = self._heads(value, value_dim, "value", shared=True)
    rank = v.ndim
    if self.attention_axes is None:
      axes = tuple(range(1, rank - 2))
    else:
      given = (self.attention_axes,) if isinstance(self.attention_axes, int) else tuple(self.attention_axes)
      axes = tuple(a if a >= 0 else rank - 1 + a for a in given)
    fused = not (self.dropout > 0.0 or return_attention_scores or q.ndim != 4)
    if causal_only and not fused:
      mask = _causal(query.shape[1], value.shape[1])
    if mask is not None:  # (batch..., T, S) gains axes before the query axes up to the scores' rank
      scores_rank = 4 if fused else _attention_equations(rank, axes)[2]
      for _ in range(scores_rank - mask.ndim):
        mask = jnp.expand_dims(mask, -2 * len(axes) - 1)
    if fused:
      out, scores = self._fused(q, k, v, mask, causal_only), None
    else:
      out, scores = self._explicit(q, k, v, mask, axes, train)
    if gate is not None:
      out = out * gate
    output_shape = self.output_shape or (query.shape[-1],)
    output_shape = (output_shape,) if isinstance(output_shape, int) else tuple(output_shape)
    equation, bias_axes = _projection(query.ndim - 1, 2, len(output_shape))
    out = self._dense(equation, bias_axes, [None] * (query.ndim - 2) + list(output_shape), "attention_output")(out)
    return (out, scores) if return_attention_scores else out

  def _fused(self, q, k, v, mask, causal):
    """`keras.ops.dot_product_attention`'s XLA computation (`jax.nn.dot_product_attention`'s)."""
    logits = jnp.einsum("BTNH,BSNH->BNTS", q, k, precision=self.precision,
                        preferred_element_type=jnp.promote_types(q.dtype, jnp.float32))
    logits = logits * jnp.asarray(1.0 / math.sqrt(float(self.key_dim)), logits.dtype)
    if causal:
      mask = jnp.tril(jnp.ones(logits.shape[2:], bool))[None, None]
    if mask is not None:
      logits = jnp.where(mask, logits, jnp.asarray(-0.7 * jnp.finfo(logits.dtype).max, logits.dtype))
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(k.dtype)
    return jnp.einsum("BNTS,BSNH->BTNH", probs, v, precision=self.precision)

  def _explicit(self, q, k, v, mask, axes, train):
    """Scores through Keras's masked `Softmax`, then dropout of the weights."""
    dot, combine, scores_rank = _attention_equations(v.ndim, axes)
    q = q * jnp.asarray(1.0 / math.sqrt(float(self.key_dim)), q.dtype)
    scores = jnp.einsum(dot, k, q, precision=self.precision)
    scores = _softmax_masked(scores, mask, tuple(range(scores_rank - len(axes), scores_rank)))
    weights = Dropout(self.dropout, name="dropout")(scores, train=train) if self.dropout > 0.0 else scores
    return jnp.einsum(combine, weights, v, precision=self.precision), scores


class Attention(PrecisionFields):
  """Dot-product (Luong) attention as Keras's `Attention`.

  Scores are `query . key` (times `scale` with `use_scale`), or with
  `score_mode="concat"` `concat_score_weight * sum(tanh(scale * (query + key)))`.
  Masked scores are lowered by 1e9 (65504 in float16), as Keras does; outputs of
  masked queries are zero.

  Attributes:
    use_scale: learn a scalar `scale` of the scores.
    score_mode: "dot" or "concat".
    dropout: the dropout rate of the attention weights, in [0, 1) (with `train=True`).
    dtype, param_dtype, precision: keyword-only; see `jaxcomponents.layers.precision`.

  Call arguments:
    inputs: `[query, value]` or `[query, value, key]`: `(batch, Tq, dim)`, `(batch, Tv, dim)`, `(batch, Tv, dim)`.
    mask: None or `[query_mask, value_mask]` (either may be None): `(batch, Tq)`, `(batch, Tv)`, True where kept.
    return_attention_scores: also return the attention weights `(batch, Tq, Tv)`.
    use_causal_mask: query i attends only to values j <= i.
    train: dropout on (rng stream `'dropout'`).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = Attention(use_scale=True)
    >>> q, v = jnp.ones((2, 3, 4)), jnp.ones((2, 5, 4))
    >>> variables = layer.init(jax.random.key(0), [q, v])
    >>> layer.apply(variables, [q, v], mask=[None, jnp.arange(5) < 3]).shape
    (2, 3, 4)
  """

  use_scale: bool = False
  score_mode: str = "dot"
  dropout: float = 0.0

  def _scores(self, q: jax.Array, k: jax.Array) -> jax.Array:
    scale = self.param("scale", nn.initializers.ones, (), self.param_dtype) if self.use_scale else None
    if self.score_mode == "dot":
      q, k, scale = nn.dtypes.promote_dtype(q, k, scale, dtype=self.dtype)
      scores = jnp.matmul(q, jnp.swapaxes(k, -2, -1), precision=self.precision)
      return scores if scale is None else scores * scale
    weight = self.param("concat_score_weight", nn.initializers.ones, (), self.param_dtype)
    q, k, scale, weight = nn.dtypes.promote_dtype(q, k, scale, weight, dtype=self.dtype)
    summed = q[..., :, None, :] + k[..., None, :, :]
    return weight * jnp.sum(jnp.tanh(summed if scale is None else scale * summed), axis=-1)

  @nn.compact
  def __call__(self, inputs: Sequence[jax.Array], *, mask: Sequence[jax.Array | None] | None = None,
               return_attention_scores: bool = False, use_causal_mask: bool = False, train: bool = False):
    check_choice("score_mode", self.score_mode, ("dot", "concat"))
    check_rate("dropout", self.dropout)
    name = type(self).__name__
    if not isinstance(inputs, (list, tuple)) or len(inputs) not in (2, 3):
      raise ValueError(f"{name} takes inputs=[query, value] or [query, value, key]; got {type(inputs).__name__} "
                       f"of length {len(inputs) if isinstance(inputs, (list, tuple)) else 'none'}.")
    if mask is not None and (not isinstance(mask, (list, tuple)) or len(mask) not in (2, 3)):
      raise ValueError(f"{name} takes mask=None or [query_mask, value_mask]; got {mask!r}.")
    query, value = inputs[0], inputs[1]
    key = inputs[2] if len(inputs) > 2 else value
    query_mask, value_mask = (mask[0], mask[1]) if mask else (None, None)
    scores = self._scores(query, key)
    keep = None if value_mask is None else jnp.asarray(value_mask).astype(bool)
    if use_causal_mask:
      causal = _causal(scores.shape[-2], scores.shape[-1])
      keep = causal if keep is None else keep[..., None, :] & causal
    if keep is not None:
      if keep.ndim == 2:
        keep = keep[..., None, :]
      scores = jnp.where(keep, scores, scores - (65504.0 if scores.dtype == jnp.float16 else 1.0e9))
    weights = jax.nn.softmax(scores, axis=-1)
    dropped = Dropout(self.dropout, name="dropout")(weights, train=train) if self.dropout > 0 else weights
    value = value.astype(dropped.dtype)
    out = jnp.matmul(dropped, value, precision=self.precision)
    if query_mask is not None:
      out = jnp.where(jnp.asarray(query_mask).astype(bool)[..., None], out, 0)
    return (out, dropped) if return_attention_scores else out  # Keras returns the weights after dropout


class AdditiveAttention(Attention):
  """Additive (Bahdanau) attention as Keras's `AdditiveAttention`: scores `sum(scale * tanh(query + key))`.

  Attributes:
    use_scale: learn `scale`, one per feature (Keras's default True; else 1).
    dropout: the dropout rate of the attention weights, in [0, 1) (with `train=True`).
    dtype, param_dtype, precision: keyword-only; see `jaxcomponents.layers.precision`.

  Call arguments: as `Attention`'s.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = AdditiveAttention()
    >>> q, v = jnp.ones((2, 3, 4)), jnp.ones((2, 5, 4))
    >>> variables = layer.init(jax.random.key(0), [q, v])
    >>> variables["params"]["scale"].shape
    (4,)
  """

  use_scale: bool = True

  def _scores(self, q: jax.Array, k: jax.Array) -> jax.Array:
    dim = q.shape[-1]
    limit = math.sqrt(3.0 / dim)  # Keras's Glorot uniform of a vector
    init = lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, -limit, limit)  # noqa: E731
    scale = self.param("scale", init, (dim,), self.param_dtype) if self.use_scale else None
    q, k, scale = nn.dtypes.promote_dtype(q, k, scale, dtype=self.dtype)
    tanh = jnp.tanh(q[..., :, None, :] + k[..., None, :, :])
    return jnp.sum(tanh if scale is None else scale * tanh, axis=-1)


__all__ = ["AdditiveAttention", "Attention", "MultiHeadAttention"]
