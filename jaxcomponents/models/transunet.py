"""TransUNet, the numerical twin of keras-unet-collection's `transunet_2d` (Chen et al. 2021).

`transunet_2d(...)` takes keras-unet-collection's arguments (names, values,
defaults) and returns a `TransUNet` module computing what
keras-unet-collection 0.1.13's Keras model computes, with its layer names, so
`jaxcomponents.weights.load_keras(model, "kuc_model.h5", x)` maps its weight
file by name.

Architecture (keras-unet-collection's): the U-Net's encoder (`{name}_down0`,
`{name}_down{i}`, or a backbone as `unet_2d` takes one), whose deepest map
is replaced by a vision transformer's: Conv 1x1 without bias to
`filter_num[-1]` channels (`{name}_conv_trans_before`), every pixel a token
(1x1 patches, row-major), `patch_embedding` (Dense to `embed_dim` plus a
learned position embedding per token), `num_transformer` ViT blocks
`{name}_ViT_{i}`, the tokens back to the map, Conv 1x1 without bias
(`{name}_conv_trans_after`); then the U-Net's decoder (`{name}_up{i}`) and
head (`{name}_output`). A ViT block is `x + MHA(LN(x))`, then
`x + MLP(LN(x))`: Keras's `LayerNormalization` (epsilon 1e-3),
`MultiHeadAttention` with `num_heads` heads of size `key_dim = embed_dim`, and
an MLP of Dense(`num_mlp`) -> activation -> Dense(`embed_dim`) ->
activation.

keras-unet-collection's quirks, kept: the MLP applies `mlp_activation` after
its last Dense layer too; its "GELU" is the tanh approximation; each head is
`embed_dim` wide (not `embed_dim / num_heads`); the layers `patch_extract`
and `patch_embedding` do not take the `name` prefix (Keras numbers them
`patch_embedding_1` ... in a session that builds several models); the number
of patches, `(height // 2**(depth - 1))**2`, is read from the input's height,
so the input must be square.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.deprecation import keyword_only
from jaxcomponents.errors import check_positive_int
from jaxcomponents.layers.attention import MultiHeadAttention
from jaxcomponents.layers.einsum_dense import EinsumDense
from jaxcomponents.layers.embedding import Embedding
from jaxcomponents.layers.normalization import LayerNormalization
from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.models import backbones
from jaxcomponents.models.unet_backbone import BackboneFields, backbone_encoder
from jaxcomponents.models.unet_blocks import (ACTIVATIONS, ConvOutput, ConvStack, activation_layer, check_activation,
                                              conv, spatial_rank, unet_left, unet_right)
from jaxcomponents.models.unet_fields import SegmentationFields

__all__ = ["PatchEmbedding", "TransUNet", "ViTBlock", "transunet_2d"]


def dense(block: PrecisionFields, units: int, name: str) -> EinsumDense:
  """Keras's `Dense(units)` over the last axis (Glorot-uniform kernel, zero bias), with `block`'s precision fields."""
  return EinsumDense("...a,ab->...b", (units,), bias_axes="b", name=name, **block.precision_options)


class PatchEmbedding(PrecisionFields):
  """keras-unet-collection's `patch_embedding`: `Dense(embed_dim)(patches) + Embedding(num_patch, embed_dim)(range)`.

  Layers: `dense` and `embedding` (the position embedding).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = PatchEmbedding(num_patch=4, embed_dim=8)
    >>> variables = layer.init(jax.random.key(0), jnp.ones((1, 4, 3)))
    >>> variables["params"]["embedding"]["embeddings"].shape
    (4, 8)
  """

  num_patch: int
  embed_dim: int

  @nn.compact
  def __call__(self, patches: jax.Array) -> jax.Array:
    check_positive_int("num_patch", self.num_patch)
    check_positive_int("embed_dim", self.embed_dim)
    if patches.ndim != 3 or patches.shape[1] != self.num_patch:
      raise ValueError(f"patches have shape {patches.shape}; expected (batch, {self.num_patch}, features).")
    positions = Embedding(self.num_patch, self.embed_dim, name="embedding", **self.dtype_options)(
        jnp.arange(self.num_patch))
    return dense(self, self.embed_dim, "dense")(patches) + positions


class ViTBlock(PrecisionFields):
  """keras-unet-collection's `ViT_block`: `x + MHA(LN(x))`, then `x + MLP(LN(x))`.

  The MLP is `Dense(f) -> activation` for each `f` of `filter_num_mlp`, the
  last `f` being the token width. Layers: `{name}_layer_norm_1`,
  `{name}_atten` (Keras's `MultiHeadAttention`), `{name}_layer_norm_2`,
  `{name}_mlp_dense_{i}`, `{name}_mlp_activation_{i}`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> block = ViTBlock(num_heads=2, key_dim=4, filter_num_mlp=(6, 4))
    >>> x = jnp.ones((1, 5, 4))
    >>> block.apply(block.init(jax.random.key(0), x), x).shape
    (1, 5, 4)
  """

  num_heads: int
  key_dim: int
  filter_num_mlp: Sequence[int]
  activation: str = "GELU"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    check_activation("mlp_activation", self.activation)
    prefix = self.name if isinstance(self.name, str) else "ViT"
    tokens = LayerNormalization(name=f"{prefix}_layer_norm_1", **self.dtype_options)(x)
    tokens = MultiHeadAttention(self.num_heads, self.key_dim, name=f"{prefix}_atten", **self.precision_options)(
        tokens, tokens)
    x = tokens + x
    tokens = LayerNormalization(name=f"{prefix}_layer_norm_2", **self.dtype_options)(x)
    for i, units in enumerate(self.filter_num_mlp):
      tokens = dense(self, units, f"{prefix}_mlp_dense_{i}")(tokens)
      tokens = activation_layer(self.activation, f"{prefix}_mlp_activation_{i}", **self.dtype_options)(tokens)
    return tokens + x


class TransUNet(SegmentationFields, BackboneFields):
  """TransUNet computing what keras-unet-collection's `transunet_2d` computes (see the module doc).

  `transunet_2d` builds it from keras-unet-collection's arguments.

  Attributes:
    filter_num: filters per level, e.g. [64, 128, 256, 512]; depth = len(filter_num).
    n_labels: output channels (classes).
    stack_num_down: convolutions per encoder level.
    stack_num_up: convolutions per decoder level after the concatenation.
    embed_dim: the token width, also the size of each attention head.
    num_mlp: the width of the transformers' hidden MLP layer.
    num_heads: attention heads.
    num_transformer: stacked ViT blocks (0: none).
    activation: the convolutions' activation: "ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "Snake" or "Softmax".
    mlp_activation: the MLP's activation, a name as for `activation`.
    output_activation: one of those, "Sigmoid", or None (linear).
    batch_norm: batch normalization after every convolution of the U-Net part.
    pool: True or "max", "ave", or False (strided convolution).
    unpool: True or "bilinear", "nearest", or False (transposed convolution).
    backbone: None or a backbone's name whose taps halve the size (`models.backbones`: "VGG16", "ResNet50" ...).
    weights: the backbone's weights for `weights.init_unet`: "imagenet", None or a Keras `.h5` path.
    freeze_backbone: no gradient for the backbone's convolutions.
    freeze_batch_norm: under `freeze_backbone`, no gradient for the backbone's batch norm either, and inference
      mode (as keras-unet-collection's `freeze_model`).
    input_size: optional (height, width, channels); None channels (or width) meaning any (the width must then
      equal the height when called); checked when called.
    prefix: the layer-name prefix (keras-unet-collection's `name`).
    dtype, param_dtype, precision: keyword-only, passed to every layer; see `jaxcomponents.layers.precision`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = TransUNet(filter_num=(4, 8), n_labels=2, embed_dim=8, num_mlp=16, num_heads=2, num_transformer=1)
    >>> x = jnp.zeros((1, 16, 16, 3))
    >>> model.apply(model.init(jax.random.key(0), x), x).shape
    (1, 16, 16, 2)
  """

  stack_num_down: int = 2
  stack_num_up: int = 2
  embed_dim: int = 768
  num_mlp: int = 3072
  num_heads: int = 12
  num_transformer: int = 12
  mlp_activation: str = "GELU"
  prefix: str = "transunet"

  def check_config(self) -> None:
    super().check_config()
    for param in ("stack_num_down", "stack_num_up", "embed_dim", "num_mlp", "num_heads"):
      check_positive_int(param, getattr(self, param))
    check_positive_int("num_transformer", self.num_transformer, allow_zero=True)
    if self.num_transformer:  # keras-unet-collection reads it only to build the transformers
      check_activation("mlp_activation", self.mlp_activation, ACTIVATIONS)
    if self.backbone is not None and not backbones.get(self.backbone).halving_taps:
      raise ValueError(f"backbone={self.backbone!r} is not allowed in TransUNet: its taps are not at 1/2, 1/4, ... "
                       "of the input size, so its deepest map is not the transformer's grid of "
                       "(size // 2**(depth - 1))**2 patches.")

  def check_input_size(self, input_size: Sequence[int | None]) -> None:
    """Checks `(height, width, channels)`: the height given, a square input, the U-Net's size rules."""
    input_size = tuple(input_size)
    if len(input_size) != 3:
      raise ValueError(f"input_size={input_size} is not allowed; expected (height, width, channels).")
    height, width = input_size[:2]
    if height is None:
      raise ValueError(f"input_size={input_size} is not allowed: the height sets the number of patches, "
                       "(height // 2**(depth - 1))**2, so it must be given.")
    if width is not None and width != height:
      raise ValueError(f"input_size={input_size} is not allowed: the patches form a square grid, so the width "
                       "must equal the height.")
    super().check_input_size(input_size)

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    if spatial_rank(x) != 2 or x.shape[1] != x.shape[2]:
      raise ValueError(f"x has shape {x.shape}; TransUNet takes square images (batch, height, width, channels): "
                       "the patches form a square grid, so the width must equal the height.")
    self.check_input(x)
    p, filter_num = self.prefix, tuple(self.filter_num)
    skips = self._encoder(x, train)
    x, skips = skips[-1], skips[:-1]
    x = self._transformer(x)
    skips = [*skips, x][::-1]
    x, decode = skips[0], skips[1:]
    filter_decode = filter_num[:-1][::-1]
    for i in range(self.depth - 1):
      skip = [decode[i]] if i < len(decode) else []
      x = unet_right(self, x, skip, filter_decode[i], f"{p}_up{i}", train=train, stack_num=self.stack_num_up,
                     activation=self.activation, unpool=self.unpool, batch_norm=self.batch_norm)
    return ConvOutput(self.n_labels, activation=self.output_activation, name=f"{p}_output",
                      **self.precision_options)(x)

  def _encoder(self, x: jax.Array, train: bool) -> list[jax.Array]:
    """The U-Net's encoder maps, shallowest first: conv stacks, or the backbone's taps and further levels."""
    p = self.prefix
    if self.backbone is None:
      skips = [ConvStack(self.filter_num[0], stack_num=self.stack_num_down, activation=self.activation,
                         batch_norm=self.batch_norm, name=f"{p}_down0", **self.precision_options)(x, train=train)]
      levels = [(level, f"{p}_down{level}") for level in range(1, self.depth)]
    else:
      skips, depth_encode = backbone_encoder(self, x, train)
      levels = [(level, f"{p}_down{level + 1}") for level in range(depth_encode, self.depth)]  # kuc's numbers
    for level, name in levels:
      skips.append(unet_left(self, skips[-1], self.filter_num[level], name, train=train, stack_num=self.stack_num_down,
                             activation=self.activation, pool=self.pool, batch_norm=self.batch_norm))
    return skips

  def _transformer(self, x: jax.Array) -> jax.Array:
    """The deepest map through 1x1 patches, their embedding, the ViT blocks and back to a map."""
    p, channels = self.prefix, self.filter_num[-1]
    x = conv(self, channels, 1, f"{p}_conv_trans_before", padding="VALID", use_bias=False)(x)
    batch, height, width, _ = x.shape
    tokens = x.reshape(batch, height * width, channels)  # patch_extract of 1x1 patches
    tokens = PatchEmbedding(height * width, self.embed_dim, name="patch_embedding", **self.precision_options)(tokens)
    for i in range(self.num_transformer):
      tokens = ViTBlock(self.num_heads, self.embed_dim, (self.num_mlp, self.embed_dim), self.mlp_activation,
                        name=f"{p}_ViT_{i}", **self.precision_options)(tokens)
    x = tokens.reshape(batch, height, width, self.embed_dim)
    return conv(self, channels, 1, f"{p}_conv_trans_after", padding="VALID", use_bias=False)(x)


def transunet_2d(input_size, filter_num, n_labels, stack_num_down=2, stack_num_up=2, embed_dim=768, num_mlp=3072,
                 num_heads=12, num_transformer=12, activation="ReLU", mlp_activation="GELU",
                 output_activation="Softmax", batch_norm=False, pool=True, unpool=True, backbone=None,
                 weights="imagenet", freeze_backbone=True, freeze_batch_norm=True, name="transunet", *, dtype=None,
                 param_dtype=jnp.float32, precision=None) -> TransUNet:
  """keras-unet-collection's `transunet_2d`: the same arguments and defaults; returns a `TransUNet` module.

  Arguments are checked here (`ValueError` naming the argument, the value and
  what is allowed). `input_size` is (height, width, channels): the height is
  needed (it sets the number of patches), the width must equal it (None:
  any, then equal to the height when called), and both must be divisible by
  2**(depth - 1). `name` prefixes the layer names.
  `freeze_batch_norm` applies under `freeze_backbone`, as in
  keras-unet-collection. The keyword-only `dtype`, `param_dtype` and `precision`
  are `TransUNet`'s.

  Example:
    >>> model = transunet_2d((64, 64, 3), [16, 32, 64], n_labels=2, embed_dim=32, num_transformer=2)
    >>> model.prefix, model.num_heads, model.num_mlp
    ('transunet', 12, 3072)
  """
  return TransUNet.from_arguments(input_size, 2, filter_num, n_labels=n_labels, stack_num_down=stack_num_down,
                                  stack_num_up=stack_num_up, embed_dim=embed_dim, num_mlp=num_mlp,
                                  num_heads=num_heads, num_transformer=num_transformer, activation=activation,
                                  mlp_activation=mlp_activation, output_activation=output_activation,
                                  batch_norm=batch_norm, pool=pool, unpool=unpool, backbone=backbone, weights=weights,
                                  freeze_backbone=freeze_backbone, freeze_batch_norm=freeze_batch_norm, prefix=name,
                                  dtype=dtype, param_dtype=param_dtype, precision=precision)
