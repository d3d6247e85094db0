"""Records of Keras's attention layers: see `jaxcomponents.keras.record`.

`EinsumDense`, `MultiHeadAttention`, `GroupQueryAttention`, `Attention` and `AdditiveAttention`,
computed by `jaxcomponents.layers.einsum_dense` and `jaxcomponents.layers.attention`
with Keras's weights (`MultiHeadAttention`'s sub-layers `query`, `key`, `value`,
`attention_output`, `gate` are modules of those names below the layer's).
A layer's `flash_attention` argument is not in its config; Keras's process-wide
switch is None (automatic: the XLA computation for float32 and on the CPU) or
False, never True, so the XLA computation is what these records build.

Example:
  >>> sorted(RECORDS["Attention"].weights[0])
  ['concat_score_weight', 'scale']
"""

from __future__ import annotations

from jaxcomponents.keras.config import activation_name, all_checks, known_activation
from jaxcomponents.keras.record import KerasClass
from jaxcomponents.layers.attention import AdditiveAttention, Attention, MultiHeadAttention
from jaxcomponents.layers.einsum_dense import EinsumDense


def _einsum_dense(config, name, options):
  layer = EinsumDense(config["equation"], _shape(config["output_shape"]), activation_name(config),
                      config.get("bias_axes"), name=name, **options)
  return lambda x, train: layer(x)


def _shape(value):
  return value if isinstance(value, int) else tuple(value)


def _quantization(config) -> list[str]:
  """GPTQ's packed kernel (LoRA and quantized layers in general are refused for every class)."""
  return ["gptq_unpacked_column_size (only a float layer)"] if config.get("gptq_unpacked_column_size") else []


def _positive_ints(*keys: str):
  def check(config) -> list[str]:
    return [f"{key}={config.get(key)!r} (only a positive int)" for key in keys
            if not isinstance(config.get(key), int) or isinstance(config.get(key), bool) or config.get(key) <= 0]
  return check


def _multi_head_attention(config, name, options):
  output_shape = config.get("output_shape")
  axes = config.get("attention_axes")
  return _attention_call(MultiHeadAttention(
      config["num_heads"], config["key_dim"], config.get("value_dim"), config.get("dropout", 0.0),
      config.get("use_bias", True), None if not output_shape else _shape(output_shape),
      None if axes is None else _shape(axes), config.get("sliding_window"), config.get("use_gate", False),
      name=name, **options))


def _grouped_query_attention(config, name, options):
  """Keras's `GroupQueryAttention` (class `GroupedQueryAttention`): `MultiHeadAttention` with shared key and
  value heads."""
  return _attention_call(MultiHeadAttention(
      config["num_query_heads"], config["head_dim"], dropout=config.get("dropout", 0.0),
      use_bias=config.get("use_bias", True), sliding_window=config.get("sliding_window"),
      use_gate=config.get("use_gate", False), num_key_value_heads=config["num_key_value_heads"], name=name,
      **options))


def _attention_call(layer: MultiHeadAttention):
  def call(query=None, value=None, key=None, *, train, query_mask=None, value_mask=None, key_mask=None,
           attention_mask=None, use_causal_mask=False, return_attention_scores=False):
    return layer(query, value, key, query_mask=query_mask, value_mask=value_mask, key_mask=key_mask,
                 attention_mask=attention_mask,
                 use_causal_mask=use_causal_mask, return_attention_scores=return_attention_scores, train=train)
  return call


def _attention(cls):
  def build(config, name, options):
    settings = {"use_scale": config.get("use_scale", cls is AdditiveAttention), "dropout": config.get("dropout", 0.0)}
    if cls is Attention:
      settings["score_mode"] = config.get("score_mode", "dot")
    layer = cls(**settings, name=name, **options)

    def call(inputs, *, train, mask=None, use_causal_mask=False, return_attention_scores=False):
      return layer(list(inputs), mask=None if mask is None else list(mask), use_causal_mask=use_causal_mask,
                   return_attention_scores=return_attention_scores, train=train)
    return call
  return build


def _score_mode(config) -> list[str]:
  mode = config.get("score_mode", "dot")
  return [] if mode in ("dot", "concat") else [f"score_mode={mode!r} (only 'dot' or 'concat')"]


# The masks Keras attaches to the query, value and key arrive as `query_mask`, `value_mask`, `key_mask`
# (`from_keras` writes them into the graph); the options given at a call arrive with them.
_MHA_KWARGS = ("query", "value", "key", "query_mask", "value_mask", "key_mask", "attention_mask", "use_causal_mask",
               "return_attention_scores")
_ATTENTION_KWARGS = ("mask", "use_causal_mask", "return_attention_scores")
_ATTENTION_WEIGHTS = ({"scale": ("params", "scale"), "concat_score_weight": ("params", "concat_score_weight")},
                      {"concat_score_weight": ("params", "concat_score_weight")})

RECORDS: dict[str, KerasClass] = {
    "EinsumDense": KerasClass(_einsum_dense, check=all_checks(known_activation(), _quantization),
                              creates_module=True, shape_checked=True),
    "MultiHeadAttention": KerasClass(_multi_head_attention, kwargs=_MHA_KWARGS,
                                     check=_positive_ints("num_heads", "key_dim"), creates_module=True),
    "GroupQueryAttention": KerasClass(
        _grouped_query_attention, kwargs=_MHA_KWARGS,
        check=_positive_ints("head_dim", "num_query_heads", "num_key_value_heads"), creates_module=True),
    "Attention": KerasClass(_attention(Attention), kwargs=_ATTENTION_KWARGS, check=_score_mode, creates_module=True,
                            weights=_ATTENTION_WEIGHTS),
    "AdditiveAttention": KerasClass(_attention(AdditiveAttention), kwargs=_ATTENTION_KWARGS, creates_module=True),
}
