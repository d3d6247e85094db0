"""ResUNet-a, the numerical twin of keras-unet-collection's `resunet_a_2d`, and its 3-D form `resunet_a_3d`.

`resunet_a_2d(...)` takes keras-unet-collection's arguments (names, values,
defaults) and returns a `ResUNetA` module that computes what
keras-unet-collection 0.1.13's Keras model computes given the same weights;
its weighted layers carry keras-unet-collection's layer names
(`resunet_res0_stack0_0`, `resunet_aspp_bottom_sepconv_r6_0_depthwise`,
`resunet_output` ...), so `jaxcomponents.weights.load_keras(model, "kuc.h5",
x, match="name")` reads a keras-unet-collection weight file.

Architecture (keras-unet-collection's, Diakogiannis et al. 2020), depth =
`len(filter_num)`: input mapping (Conv 1x1 with bias -> activation, no batch
norm) -> `{name}_res0` block; per deeper level an encode layer (`pool`,
factor 2) `{name}_down{i}` -> `{name}_resblock_{i + 1}`; `{name}_aspp_bottom`
(ASPP, `aspp_num_down` filters per branch); per decoder level `{name}_up{i}`:
decode layer (`unpool`; a transposed conv 3x3 stride 2) -> concatenation
(decoded first, then the skip) -> block; then the input mapping and the
decoder's output concatenated (the skip first), `{name}_aspp_out` (ASPP,
`aspp_num_up`) and Conv 1x1 (`n_labels`) -> `output_activation`.

keras-unet-collection's arithmetic, quirks included:

* The "residual" block (`ResUNET_a_block`) adds no shortcut: it sums one
  conv stack (2 x Conv 3x3 -> [BN] -> activation) per dilation rate of its
  level, all reading the block's input.
* ASPP (`ASPP_conv`): five branches concatenated in the order pooled, 1x1,
  separable with dilation 6, 9 and 12 (`5 * channel` channels). The pooled
  branch averages over the whole map, applies Conv 1x1 -> [BN] -> activation,
  and is resized back with TensorFlow 1's bilinear `align_corners=True`
  resize, which from one pixel is a broadcast. The three separable branches
  (`Sep_CONV_stack`: depthwise 3x3 -> BN -> ReLU -> pointwise 1x1 -> BN ->
  ReLU, no biases) always have batch norm and ReLU, whatever `batch_norm` and
  `activation` say.
* `dilation_num` as one list of rates is spread over the levels by
  keras-unet-collection's rule: levels 0 and 1 take the list, levels 2 to
  `(depth - 2) // 2 + 1` the list without its last rate, deeper levels [1].
  Given per level (a list of lists), encoder level `j` takes entry `j` and
  decoder level `i` entry `L - 2 - i`, `L` the number of entries: entries
  beyond the depth shift the decoder's rates, as in keras-unet-collection.
* Depth 1 has no encode or decode levels: the bottom ASPP reads the `res0`
  block and is concatenated after the input mapping.
* Inputs need a fixed size, divisible by `2 ** (depth - 1)` along every axis.

Volumes: `resunet_a_3d` takes (depth, height, width, channels) inputs and
builds the same network from 3-D layers (the blocks read the rank from their
input). `unpool=True` is Keras's `UpSampling3D` (nearest; "bilinear" is
refused). Keras has no `DepthwiseConv3D`: in 3-D the depthwise step is a
grouped convolution with one group per channel, Keras's
`Conv3D(channels, 3, groups=channels)`, whose `kernel` of shape
`(3, 3, 3, 1, channels)` loads by name from that Keras layer; in 2-D it is
`DepthwiseConv2D`'s `depthwise_kernel`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcomponents.deprecation import keyword_only
from jaxcomponents.errors import check_positive_int, is_int
from jaxcomponents.layers.conv_core import Conv, DepthwiseConv
from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.models.unet_blocks import (ConvOutput, ConvStack, DecodeLayer, EncodeLayer, activation_layer,
                                              batch_norm, check_activation, conv, glorot_uniform, spatial_rank)
from jaxcomponents.models.unet_fields import SegmentationFields, check_filter_num

__all__ = ["ASPPConv", "ResUNetA", "SepConvStack", "dilation_per_level", "resunet_a_2d", "resunet_a_3d"]

ASPP_DILATIONS = (6, 9, 12)


def _rates(value: Any) -> tuple[int, ...] | None:
  """`value` as a tuple of positive integer rates, or None where it is not a non-empty sequence of them."""
  if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)) or len(value) == 0:
    return None
  if not all(is_int(v) and v > 0 for v in value):
    return None
  return tuple(int(v) for v in value)


def dilation_per_level(dilation_num: Any, depth: int) -> tuple[tuple[int, ...], ...]:
  """keras-unet-collection's dilation rates of each level: given per level, or spread from one list.

  Returns one tuple of rates per given level (at least `depth`). A flat list is
  spread as `resunet_a_2d` spreads it: levels 0 and 1 take it, levels 2 to
  `(depth - 2) // 2 + 1` take it without its last rate, the others [1].

  Example:
    >>> dilation_per_level([1, 3, 15, 31], 4)
    ((1, 3, 15, 31), (1, 3, 15, 31), (1, 3, 15), (1,))
  """
  allowed = ("expected a list of positive integer rates, e.g. [1, 3, 15, 31], or one such list per level, "
             "e.g. [[1, 3, 15, 31], [1, 3, 15], [1], [1]]")
  ok = not isinstance(dilation_num, (str, bytes)) and isinstance(dilation_num, (Sequence, np.ndarray))
  if not ok or len(dilation_num) == 0:
    raise ValueError(f"dilation_num={dilation_num!r} is not allowed; {allowed}.")
  if is_int(dilation_num[0]):
    rates = _rates(dilation_num)
    if rates is None:
      raise ValueError(f"dilation_num={dilation_num!r} is not allowed; {allowed}.")
    middle = (depth - 2) // 2 + 1
    levels = tuple(rates if i <= 1 else rates[:-1] if i <= middle else (1,) for i in range(depth))
    if any(not level for level in levels):
      raise ValueError(f"dilation_num={dilation_num!r} is not allowed with depth {depth}: levels 2 to {middle} take "
                       "the list without its last rate, which leaves them none; give at least two rates.")
    return levels
  levels = tuple(_rates(level) for level in dilation_num)
  if any(level is None for level in levels):
    raise ValueError(f"dilation_num={dilation_num!r} is not allowed; {allowed}.")
  if len(levels) < depth:
    raise ValueError(f"dilation_num={dilation_num!r} is not allowed: it gives {len(levels)} levels, the model has "
                     f"depth {depth} (len(filter_num)); give one list of rates per level.")
  return levels


class SepConvStack(ConvStack):
  """keras-unet-collection's `Sep_CONV_stack`: `stack_num` x (depthwise -> [BN] -> act -> Conv 1x1 -> [BN] -> act).

  `ConvStack`'s fields (`channel`, `kernel_size`, `stack_num` (here 1 by
  default), `dilation_rate` of the depthwise step, `activation`,
  `batch_norm`). Both convolutions have a bias only without batch norm.
  Layers: `{name}_{i}_depthwise`, `{name}_{i}_depthwise_BN`,
  `{name}_{i}_pointwise`, `{name}_{i}_pointwise_BN` and their
  `_activation`s. The depthwise step is Keras's `DepthwiseConv2D`
  (`depthwise_kernel`) in 2-D and, in 3-D, the grouped
  `Conv3D(channels, groups=channels)` (`kernel`), Keras having no
  `DepthwiseConv3D`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> stack = SepConvStack(8, dilation_rate=2, batch_norm=True, name="sep")
    >>> variables = jax.eval_shape(stack.init, jax.random.key(0), jnp.ones((1, 8, 8, 3)))
    >>> variables["params"]["sep_0_depthwise"]["depthwise_kernel"].shape
    (3, 3, 3, 1)
  """

  stack_num: int = 1

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    prefix = self.name if isinstance(self.name, str) else "sep_conv"
    for param in ("channel", "stack_num"):
      check_positive_int(param, getattr(self, param))
    check_activation("activation", self.activation)
    for i in range(self.stack_num):
      layer = f"{prefix}_{i}_depthwise"
      x = self._normalized(self._depthwise(x, layer), layer, train)
      layer = f"{prefix}_{i}_pointwise"
      x = self._normalized(conv(self, self.channel, 1, layer, rank=spatial_rank(x), use_bias=not self.batch_norm)(x),
                           layer, train)
    return x

  def _depthwise(self, x: jax.Array, name: str) -> jax.Array:
    """Keras's `DepthwiseConv2D`, or in 3-D `Conv3D(channels, groups=channels)` (Keras has no DepthwiseConv3D)."""
    rank, channels = spatial_rank(x), x.shape[-1]
    kernel, dilation = (self.kernel_size,) * rank, (self.dilation_rate,) * rank
    if rank == 2:
      return DepthwiseConv(kernel, (1, 1), "SAME", dilation, use_bias=not self.batch_norm, name=name,
                           **self.precision_options)(x)
    return Conv(channels, kernel, padding="SAME", feature_group_count=channels, kernel_dilation=dilation,
                use_bias=not self.batch_norm, kernel_init=glorot_uniform, name=name, **self.precision_options)(x)

  def _normalized(self, x: jax.Array, layer: str, train: bool) -> jax.Array:
    """[BN `{layer}_BN`] -> activation `{layer}_activation`."""
    if self.batch_norm:
      x = batch_norm(self, f"{layer}_BN", train)(x)
    return activation_layer(self.activation, f"{layer}_activation", **self.dtype_options)(x)


class ASPPConv(PrecisionFields):
  """keras-unet-collection's `ASPP_conv`: atrous spatial pyramid pooling, `5 * channel` output channels.

  Branches, concatenated in this order: the map's average -> Conv 1x1 -> [BN]
  -> activation, broadcast back over the map (`{name}_conv_b4`); Conv 1x1 ->
  [BN] -> activation (`{name}_conv_b0`); `SepConvStack`s with dilation 6, 9
  and 12 (`{name}_sepconv_r6` ...), always with batch norm and ReLU, as
  keras-unet-collection fixes them. The 1x1 convs have a bias only without
  batch norm; batch norms are `{branch}_BN`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> aspp = ASPPConv(4, name="aspp")
    >>> x = jnp.ones((1, 8, 8, 3))
    >>> jax.eval_shape(lambda: aspp.apply(aspp.init(jax.random.key(0), x), x)).shape
    (1, 8, 8, 20)
  """

  channel: int
  activation: str = "ReLU"
  batch_norm: bool = True

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    prefix, rank = self.name if isinstance(self.name, str) else "aspp", spatial_rank(x)
    check_positive_int("channel", self.channel)
    check_activation("activation", self.activation)
    branches = []
    for branch, inputs in (("b4", jnp.mean(x, axis=tuple(range(1, rank + 1)), keepdims=True)), ("b0", x)):
      y = conv(self, self.channel, 1, f"{prefix}_conv_{branch}", rank=rank, use_bias=not self.batch_norm)(inputs)
      if self.batch_norm:
        y = batch_norm(self, f"{prefix}_conv_{branch}_BN", train)(y)
      y = activation_layer(self.activation, f"{prefix}_conv_{branch}_activation", **self.dtype_options)(y)
      branches.append(jnp.broadcast_to(y, (*x.shape[:-1], y.shape[-1])))
    for rate in ASPP_DILATIONS:
      branches.append(SepConvStack(self.channel, dilation_rate=rate, activation="ReLU", batch_norm=True,
                                   name=f"{prefix}_sepconv_r{rate}", **self.precision_options)(x, train=train))
    return jnp.concatenate(branches, axis=-1)


def resunet_a_block(block: PrecisionFields, x: jax.Array, channel: int, dilation_num: Sequence[int], name: str, *,
                    train: bool, activation: str = "ReLU", batch_norm: bool = False,
                    kernel_size: int = 3) -> jax.Array:
  """keras-unet-collection's `ResUNET_a_block`, called inside `block`'s compact call: the sum of one conv stack of
  two per dilation rate, each reading `x` (no shortcut). Layers: `{name}_stack{i}_*`."""
  total = None
  for i, rate in enumerate(dilation_num):
    y = ConvStack(channel, kernel_size, 2, dilation_rate=rate, activation=activation, batch_norm=batch_norm,
                  name=f"{name}_stack{i}", **block.precision_options)(x, train=train)
    total = y if total is None else total + y
  return total


class ResUNetA(SegmentationFields):
  """ResUNet-a computing what keras-unet-collection's `resunet_a_2d` computes (see the module doc); in 3-D too.

  `resunet_a_2d` and `resunet_a_3d` build it from keras-unet-collection's
  arguments. Fields as `SegmentationFields`' (`filter_num`, `n_labels`,
  `activation`, `output_activation`, `batch_norm`, `pool`, `unpool`,
  `input_size`, `prefix`), with ResUNet-a's defaults (batch norm on, prefix
  "resunet"), and:

  Attributes:
    dilation_num: dilation rates, one list for every level (spread by keras-unet-collection's rule) or one list
      per level, e.g. [[1, 3, 15, 31], [1, 3, 15], [1], [1]] (see `dilation_per_level`); default: the rates
      Diakogiannis et al. (2020) suggest.
    aspp_num_down: filters of each branch of the ASPP after the encoder.
    aspp_num_up: filters of each branch of the ASPP after the decoder.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = ResUNetA(filter_num=(4, 8), n_labels=2, dilation_num=(1, 3), aspp_num_down=4, aspp_num_up=4)
    >>> x = jnp.zeros((1, 16, 16, 3))
    >>> jax.eval_shape(lambda: model.apply(model.init(jax.random.key(0), x), x)).shape
    (1, 16, 16, 2)
  """

  batch_norm: bool = True
  prefix: str | None = "resunet"
  dilation_num: Sequence[Any] = (1, 3, 15, 31)
  aspp_num_down: int = 256
  aspp_num_up: int = 128

  @property
  def layer_prefix(self) -> str:
    return self.prefix or "resunet"

  def check_config(self) -> None:
    """`SegmentationFields`' checks, the dilation rates and ASPP widths, and a fixed `input_size`."""
    super().check_config()
    dilation_per_level(self.dilation_num, self.depth)
    check_positive_int("aspp_num_down", self.aspp_num_down)
    check_positive_int("aspp_num_up", self.aspp_num_up)
    if self.input_size is not None and any(n is None for n in self.input_size):
      raise ValueError(f"input_size={tuple(self.input_size)} is not allowed; ResUNet-a needs a fixed size (its ASPP "
                       "resizes the pooled branch to the map's size, as keras-unet-collection does).")

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    self.check_input(x)
    rank = spatial_rank(x)
    p, filter_num, options = self.layer_prefix, tuple(self.filter_num), self.precision_options
    dilation = dilation_per_level(self.dilation_num, len(filter_num))
    block = dict(train=train, activation=self.activation, batch_norm=self.batch_norm)

    x = conv(self, filter_num[0], 1, f"{p}_input_mapping", rank=rank)(x)
    x = activation_layer(self.activation, f"{p}_input_activation", **self.dtype_options)(x)
    skips = [x]
    x = resunet_a_block(self, x, filter_num[0], dilation[0], f"{p}_res0", **block)
    skips.append(x)
    for i, f in enumerate(filter_num[1:]):
      x = EncodeLayer(f, self.pool, self.activation, self.batch_norm, name=f"{p}_down{i}", **options)(x, train=train)
      x = resunet_a_block(self, x, f, dilation[i + 1], f"{p}_resblock_{i + 1}", **block)
      skips.append(x)
    x = ASPPConv(self.aspp_num_down, self.activation, self.batch_norm, name=f"{p}_aspp_bottom", **options)(
        x, train=train)

    skips, decoder_dilation = skips[:-1][::-1], dilation[:-1][::-1]
    for i, f in enumerate(filter_num[:-1][::-1]):
      x = DecodeLayer(f, self.unpool, activation=self.activation, batch_norm=self.batch_norm, name=f"{p}_up{i}_decode",
                      **options)(x, train=train)
      x = jnp.concatenate([x, skips[i]], axis=-1)
      x = resunet_a_block(self, x, f, decoder_dilation[i], f"{p}_up{i}_resblock", **block)
    x = jnp.concatenate([skips[-1], x], axis=-1)
    x = ASPPConv(self.aspp_num_up, self.activation, self.batch_norm, name=f"{p}_aspp_out", **options)(x, train=train)
    return ConvOutput(self.n_labels, activation=self.output_activation, name=f"{p}_output", **options)(x)


def _build(input_size, rank: int, filter_num, dilation_num, **fields) -> ResUNetA:
  levels = dilation_per_level(dilation_num, len(check_filter_num(filter_num)))
  dilation_num = _rates(dilation_num) if is_int(dilation_num[0]) else levels  # checked, as tuples
  return ResUNetA.from_arguments(input_size, rank, filter_num, dilation_num=dilation_num, **fields)


def resunet_a_2d(input_size, filter_num, dilation_num, n_labels, aspp_num_down=256, aspp_num_up=128,
                 activation="ReLU", output_activation="Softmax", batch_norm=True, pool=True, unpool=True,
                 name="resunet", *, dtype=None, param_dtype=jnp.float32, precision=None) -> ResUNetA:
  """keras-unet-collection's `resunet_a_2d`: the same arguments and defaults; returns a `ResUNetA` module.

  Arguments are checked here (`ValueError` naming the argument, the value and
  what is allowed). `input_size` is (height, width, channels), no size None;
  `name` prefixes the layer names. The keyword-only `dtype`, `param_dtype`
  and `precision` are `ResUNetA`'s.

  Example:
    >>> model = resunet_a_2d((64, 64, 3), [16, 32, 64], [1, 3, 15], n_labels=2)
    >>> dilation_per_level(model.dilation_num, model.depth)
    ((1, 3, 15), (1, 3, 15), (1,))
  """
  return _build(input_size, 2, filter_num, dilation_num, n_labels=n_labels, aspp_num_down=aspp_num_down,
                aspp_num_up=aspp_num_up, activation=activation, output_activation=output_activation,
                batch_norm=batch_norm, pool=pool, unpool=unpool, prefix=name, dtype=dtype, param_dtype=param_dtype,
                precision=precision)


def resunet_a_3d(input_size, filter_num, dilation_num, n_labels, aspp_num_down=256, aspp_num_up=128,
                 activation="ReLU", output_activation="Softmax", batch_norm=True, pool=True, unpool=True,
                 name="resunet", *, dtype=None, param_dtype=jnp.float32, precision=None) -> ResUNetA:
  """`resunet_a_2d` for volumes: `input_size` is (depth, height, width, channels), with 3-D layers.

  `unpool`: True or "nearest" (Keras's `UpSampling3D`, which repeats voxels)
  or False (`Conv3DTranspose`); the depthwise steps are grouped convolutions
  (see the module doc).

  Example:
    >>> model = resunet_a_3d((8, 8, 8, 1), [4, 8], [1, 2], n_labels=2, aspp_num_down=4, aspp_num_up=4)
    >>> import jax, jax.numpy as jnp
    >>> x = jnp.zeros((1, 8, 8, 8, 1))
    >>> jax.eval_shape(lambda: model.apply(model.init(jax.random.key(0), x), x)).shape
    (1, 8, 8, 8, 2)
  """
  return _build(input_size, 3, filter_num, dilation_num, n_labels=n_labels, aspp_num_down=aspp_num_down,
                aspp_num_up=aspp_num_up, activation=activation, output_activation=output_activation,
                batch_norm=batch_norm, pool=pool, unpool=unpool, prefix=name, dtype=dtype, param_dtype=param_dtype,
                precision=precision)
