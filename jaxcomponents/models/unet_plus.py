"""U-Net++, the numerical twin of keras-unet-collection's `unet_plus_2d`, and its 3-D version `unet_plus_3d`.

`unet_plus_2d(...)` takes keras-unet-collection's arguments (names, values,
defaults) and returns a `UNetPlus` module that computes what
keras-unet-collection 0.1.13's Keras model computes, with its layer names
(`xnet_down0_0`, `xnet_up1_from0_conv_after_concat_0`, `xnet_sup0_up_trans_conv`,
`xnet_output_final`, the nested `VGG16_backbone/block1_conv1` ...), so
`jaxcomponents.weights.load_keras(model, "kuc_model.h5", x, match="name")` loads
a keras-unet-collection weight file.

Architecture (keras-unet-collection's): `depth = len(filter_num)`. The encoder
is the U-Net's (`{name}_down0` = `stack_num_down` x (Conv 3x3 -> [BN] -> act),
then per level pool -> conv stack), or a backbone cut at its U-Net taps
(`models/unet_backbone.py`). The nested grid: row 0 holds the encoder's maps
`X[0][k]`; row `n` (1 ... depth - 1) holds `depth - n` nodes
`X[n][k] = UNET_right(X[n - 1][k + 1], filter_num[k])`, named
`{name}_up{n - 1}_from{k}`: decode (unpool) -> a conv stack of 1 -> a conv
stack of `stack_num_up`. Where row 0 is one map short (a backbone whose first
tap is at half resolution), the row-1 node past its end decodes row 0's
deepest map as well. The output is `X[depth - 1][0]` -> Conv 1x1 (`n_labels`)
-> `output_activation`, named `{name}_output`.

What keras-unet-collection computes, reproduced here (so its weight files load):

* No skip connection: its U-Net++ calls `UNET_right(..., concat=False)`, so a
  node never concatenates the maps of its row's left; each node only decodes
  the node below-right of it. Without deep supervision the output depends only
  on the chain `X[0][depth - 1] -> X[1][depth - 2] -> ... -> X[depth - 1][0]`;
  the other nodes feed nothing, are absent from keras-unet-collection's model
  and weight file, and are not built here either.
* Deep supervision (`deep_supervision=True`): one output per row, the first
  row's `X[n][0]` each, in keras-unet-collection's order and names. Without a
  backbone or with VGG: `{name}_output_sup{n}` for rows 0 ... depth - 2 (row 0
  is the encoder's first level itself), then `{name}_output_final`. With
  another backbone the first nodes of rows 1 ... depth - 2 are at half
  resolution: each is decoded once more (`decode_layer` with
  `filter_num[n]` filters, `{name}_sup{n - 1}_up`) before its head
  `{name}_output_sup{n - 1}`; row 0 gets no head. `output_names` lists the
  output layers' names, as Keras's `model.output_names` does.
* With a backbone, the encoder levels it lacks are named from one level deeper
  than without one (`{name}_down{level + 1}`).

`freeze_batch_norm` applies under `freeze_backbone`, as keras-unet-collection's
`freeze_model` applies it (`models.unet_backbone`); `weights` is loaded by
`jaxcomponents.weights.init_unet`. Backbones whose taps are not exact halvings
(InceptionV3, not offered by keras-unet-collection) get each output resized to
the input size (bilinear) before its head.

Volumes: `unet_plus_3d` takes (depth, height, width, channels) inputs and
builds the same network from 3-D layers (the blocks read the rank from their
input); no backbone, and `unpool=True` is Keras's `UpSampling3D` (nearest).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.deprecation import keyword_only
from jaxcomponents.models import backbones
from jaxcomponents.errors import check_bool, check_positive_int
from jaxcomponents.models.unet_backbone import BackboneFields, backbone_encoder
from jaxcomponents.models.unet_blocks import ConvOutput, ConvStack, DecodeLayer, resize_to, unet_left, unet_right
from jaxcomponents.models.unet_fields import SegmentationFields

__all__ = ["UNetPlus", "unet_plus_2d", "unet_plus_3d"]


class UNetPlus(SegmentationFields, BackboneFields):
  """U-Net++ computing what keras-unet-collection's `unet_plus_2d` computes (see the module doc).

  Attributes:
    filter_num: filters per level, e.g. [64, 128, 256, 512]; depth = len(filter_num).
    n_labels: output channels (classes).
    stack_num_down: convolutions per encoder level.
    stack_num_up: convolutions per nested node after its first one.
    activation: "ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "Snake" or "Softmax".
    output_activation: one of those, "Sigmoid", or None (linear).
    batch_norm: batch normalization after every convolution (Keras defaults).
    pool: True or "max", "ave", or False (strided convolution).
    unpool: True or "bilinear" ("nearest" in 3-D), "nearest", or False (transposed convolution).
    deep_supervision: one output per nested row (a list, in `output_names`' order) instead of one (with a
      single row, that output alone, as Keras hands back a one-output model's).
    backbone: None or a backbone's name (`models.backbones.NAMES`).
    weights: the backbone's weights for `weights.init_unet`: "imagenet", None or a Keras `.h5` path.
    freeze_backbone: no gradient for the backbone's convolutions.
    freeze_batch_norm: under `freeze_backbone`, no gradient for the backbone's batch norm either, and inference
      mode (as keras-unet-collection's `freeze_model`).
    input_size: optional (height, width, channels) or (depth, height, width, channels), None entries meaning any.
    prefix: the layer-name prefix (keras-unet-collection's `name`); default "xnet".
    dtype, param_dtype, precision: keyword-only, passed to every layer and the backbone
      (see `jaxcomponents.layers.precision`).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = UNetPlus(filter_num=(4, 8), n_labels=2, deep_supervision=True)
    >>> x = jnp.zeros((1, 16, 16, 3))
    >>> [y.shape for y in model.apply(model.init(jax.random.key(0), x), x)]
    [(1, 16, 16, 2), (1, 16, 16, 2)]
    >>> model.output_names
    ['xnet_output_sup0_activation', 'xnet_output_final_activation']
  """

  stack_num_down: int = 2
  stack_num_up: int = 2
  deep_supervision: bool = False
  prefix: str | None = None

  @property
  def layer_prefix(self) -> str:
    return self.prefix or "xnet"

  def check_config(self) -> None:
    super().check_config()
    check_positive_int("stack_num_down", self.stack_num_down)
    check_positive_int("stack_num_up", self.stack_num_up)
    check_bool("deep_supervision", self.deep_supervision)

  @property
  def full_resolution_encoder(self) -> bool:
    """Whether the encoder's first map is at the input's resolution (no backbone, or VGG)."""
    return self.backbone is None or backbones.get(self.backbone).full_resolution_first_tap

  @property
  def output_names(self) -> list[str]:
    """The output layers' names in output order, as keras-unet-collection's Keras `model.output_names`."""
    p, activated = self.layer_prefix, "_activation" if self.output_activation else ""
    if not self.deep_supervision:
      return super().output_names
    supervised = self.depth - 1 if self.full_resolution_encoder else max(self.depth - 2, 0)
    return [f"{p}_output_sup{i}{activated}" for i in range(supervised)] + [f"{p}_output_final{activated}"]

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array | list[jax.Array]:
    self.check_input(x)
    p, filter_num, input_size = self.layer_prefix, tuple(self.filter_num), x.shape[1:-1]
    if self.backbone is None:
      encoded = [ConvStack(filter_num[0], stack_num=self.stack_num_down, activation=self.activation,
                           batch_norm=self.batch_norm, name=f"{p}_down0", **self.precision_options)(x, train=train)]
      depth_encode, name_shift = 1, 0
    else:
      encoded, depth_encode = backbone_encoder(self, x, train)
      name_shift = 1
    for level in range(depth_encode, self.depth):
      encoded.append(unet_left(self, encoded[-1], filter_num[level], f"{p}_down{level + name_shift}", train=train,
                               stack_num=self.stack_num_down, activation=self.activation, pool=self.pool,
                               batch_norm=self.batch_norm))
    nodes = {(0, k): encoded_map for k, encoded_map in enumerate(encoded)}

    def node(row: int, k: int) -> jax.Array:
      """`X[row][k]`, built on first use (the nodes no output reads are not built, as in keras-unet-collection)."""
      if (row, k) not in nodes:
        source = node(row - 1, k + 1) if row > 1 else encoded[min(k + 1, len(encoded) - 1)]
        nodes[row, k] = unet_right(self, source, [], filter_num[k], f"{p}_up{row - 1}_from{k}", train=train,
                                   stack_num=self.stack_num_up, activation=self.activation, unpool=self.unpool,
                                   batch_norm=self.batch_norm, concat=False)
      return nodes[row, k]

    if not self.deep_supervision:
      return self._head(node(self.depth - 1, 0), input_size, f"{p}_output")
    outputs = []
    if self.full_resolution_encoder:
      for row in range(self.depth - 1):
        outputs.append(self._head(node(row, 0), input_size, f"{p}_output_sup{row}"))
    else:
      for row in range(1, self.depth - 1):
        upsampled = DecodeLayer(filter_num[row], self.unpool, activation=self.activation, batch_norm=self.batch_norm,
                                name=f"{p}_sup{row - 1}_up", **self.precision_options)(node(row, 0), train=train)
        outputs.append(self._head(upsampled, input_size, f"{p}_output_sup{row - 1}"))
    outputs.append(self._head(node(self.depth - 1, 0), input_size, f"{p}_output_final"))
    return outputs if len(outputs) > 1 else outputs[0]  # Keras hands a one-output model's output back alone

  def _head(self, x: jax.Array, input_size: Sequence[int], name: str) -> jax.Array:
    """keras-unet-collection's `CONV_output`, after resizing to the input size (only for uneven backbone taps)."""
    return ConvOutput(self.n_labels, activation=self.output_activation, name=name, **self.precision_options)(
        resize_to(x, input_size))


def unet_plus_2d(input_size, filter_num, n_labels, stack_num_down=2, stack_num_up=2, activation="ReLU",
                 output_activation="Softmax", batch_norm=False, pool=True, unpool=True, deep_supervision=False,
                 backbone=None, weights="imagenet", freeze_backbone=True, freeze_batch_norm=True, name="xnet", *,
                 dtype=None, param_dtype=jnp.float32, precision=None) -> UNetPlus:
  """keras-unet-collection's `unet_plus_2d`: the same arguments and defaults; returns a `UNetPlus` module.

  Arguments are checked here (`ValueError` naming the argument, the value and
  what is allowed). `input_size` is (height, width, channels), None entries
  meaning any size; `name` prefixes the layer names. With `deep_supervision`
  the module returns a list (see `UNetPlus.output_names`). The keyword-only
  `dtype`, `param_dtype` and `precision` are `UNetPlus`'s.

  Example:
    >>> model = unet_plus_2d((64, 64, 3), [16, 32, 64], n_labels=2, deep_supervision=True)
    >>> model.output_names[-1]
    'xnet_output_final_activation'
  """
  return UNetPlus.from_arguments(input_size, 2, filter_num, n_labels=n_labels, stack_num_down=stack_num_down,
                stack_num_up=stack_num_up, activation=activation, output_activation=output_activation,
                batch_norm=batch_norm, pool=pool, unpool=unpool, deep_supervision=deep_supervision,
                backbone=backbone, weights=weights, freeze_backbone=freeze_backbone,
                freeze_batch_norm=freeze_batch_norm, prefix=name, dtype=dtype, param_dtype=param_dtype,
                precision=precision)


def unet_plus_3d(input_size, filter_num, n_labels, stack_num_down=2, stack_num_up=2, activation="ReLU",
                 output_activation="Softmax", batch_norm=False, pool=True, unpool=True, deep_supervision=False,
                 name="xnet", *, dtype=None, param_dtype=jnp.float32, precision=None) -> UNetPlus:
  """`unet_plus_2d` for volumes: `input_size` is (depth, height, width, channels), with 3-D layers.

  No backbone (they are 2-D). `unpool`: True or "nearest" (Keras's
  `UpSampling3D`, which repeats voxels) or False (`Conv3DTranspose`).

  Example:
    >>> model = unet_plus_3d((8, 8, 8, 1), [2, 4], n_labels=2)
    >>> import jax, jax.numpy as jnp
    >>> x = jnp.zeros((1, 8, 8, 8, 1))
    >>> model.apply(model.init(jax.random.key(0), x), x).shape
    (1, 8, 8, 8, 2)
  """
  return UNetPlus.from_arguments(input_size, 3, filter_num, n_labels=n_labels, stack_num_down=stack_num_down,
                stack_num_up=stack_num_up, activation=activation, output_activation=output_activation,
                batch_norm=batch_norm, pool=pool, unpool=unpool, deep_supervision=deep_supervision, backbone=None,
                weights=None, prefix=name, dtype=dtype, param_dtype=param_dtype, precision=precision)
