"""V-Net, the numerical twin of keras-unet-collection's `vnet_2d`, and `vnet_3d` for volumes.

`vnet_2d(...)` takes keras-unet-collection's arguments (names, values,
defaults) and returns a `VNet` module computing what keras-unet-collection
0.1.13's Keras model computes, with its layer names (`vnet_input_conv_0`,
`vnet_down_1_res_conv_0`, `vnet_up_0_res_conv_add_activation`,
`vnet_output` ...), so `jaxcomponents.weights.load_keras(model, "kuc.h5", x,
match="name")` loads a keras-unet-collection weight file. `vnet_3d` takes
the same arguments for (depth, height, width, channels) inputs and builds the
same network from 3-D layers (the blocks read the rank from their input);
there `unpool=True` is Keras's `UpSampling3D` (nearest) and "bilinear" is
refused.

Architecture (Milletari et al. 2016, in keras-unet-collection's 2-D form with
3x3 kernels): level `i` has `min(res_num_ini + i, res_num_max)` convolutions
on its residual path. Input: Conv 3x3 -> [BN] -> act (`{name}_input_conv`),
then a residual stack (`residual_conv_stack`, kuc's `Res_CONV_stack`):
`act(x + convs(x))` (`{name}_down_0`). Encoder level `{name}_down_{i}`:
pool (`pool`; with pooling, not with the strided convolution, one more Conv
3x3 `_pre_conv`) -> residual stack (`_res_conv`). Decoder level
`{name}_up_{i}` (from 0): unpool (`unpool`) -> concatenate with the skip
(decoded first) -> residual stack whose shortcut is the decoded map alone.
Head: Conv 1x1 (`n_labels`) -> `output_activation`.

keras-unet-collection's quirks, kept: the decoder's shortcut is the decoded
map, so with `unpool` True/"bilinear"/"nearest" (which keep the channels)
the levels need equal filter numbers, or 1 (Keras's `add` broadcasts size-1
channels, and so does this twin); a level with no residual convolution adds
the whole concatenation to the shortcut. Filter numbers keras-unet-collection
cannot add are refused at build time.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.deprecation import keyword_only
from jaxcomponents.errors import check_positive_int
from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.models.unet_fields import SegmentationFields
from jaxcomponents.models.unet_blocks import (ConvOutput, ConvStack, DecodeLayer, EncodeLayer, activation_layer,
                                              check_pool, check_unpool)

__all__ = ["VNet", "res_nums", "residual_conv_stack", "vnet_2d", "vnet_3d"]


def residual_conv_stack(block: PrecisionFields, x: jax.Array, x_skip: jax.Array, channel: int, name: str, *,
                        train: bool, res_num: int, activation: str = "ReLU", batch_norm: bool = False) -> jax.Array:
  """keras-unet-collection's `Res_CONV_stack`, called inside `block`'s compact call: `act(x_skip + convs(x))`.

  `convs` is a conv stack of `res_num` x (Conv 3x3 -> [BN] -> act) with
  `channel` filters (none for `res_num` 0, as in kuc); the sum broadcasts a
  size-1 channel axis as Keras's `add` does. Layers: `{name}_{i}`,
  `{name}_{i}_bn`, `{name}_{i}_activation`, `{name}_add_activation`.
  """
  if res_num > 0:
    x = ConvStack(channel, stack_num=res_num, activation=activation, batch_norm=batch_norm, name=name,
                  **block.precision_options)(x, train=train)
  return activation_layer(activation, f"{name}_add_activation", **block.dtype_options)(x_skip + x)


def res_nums(model: "VNet") -> list[int]:
  """The residual convolutions of each level: `min(res_num_ini + level, res_num_max)`."""
  return [min(model.res_num_ini + level, model.res_num_max) for level in range(model.depth)]


def _added_channels(model: "VNet", level: int, shortcut: int, path: int) -> int:
  """The channels of Keras's `add` of `shortcut` and `path` channels (equal, or one of them 1), else `ValueError`."""
  if shortcut == path or 1 in (shortcut, path):
    return max(shortcut, path)
  raise ValueError(
      f"filter_num={list(model.filter_num)} is not allowed with unpool={model.unpool!r}, "
      f"res_num_ini={model.res_num_ini} and res_num_max={model.res_num_max}: decoder level {model.prefix}_up_{level} "
      f"adds its decoded map ({shortcut} channels) to its residual path ({path} channels), which "
      "keras-unet-collection's V-Net cannot (it needs equal channels or 1). Upsampling keeps the deeper level's "
      "channels and a level without residual convolutions adds the whole concatenation: use unpool=False, equal "
      "filter numbers, or res_num_ini and res_num_max of 1 or more.")


class VNet(SegmentationFields):
  """V-Net computing what keras-unet-collection's `vnet_2d` computes; `vnet_2d` and `vnet_3d` build it.

  Attributes (besides `SegmentationFields`'s; `batch_norm` follows every convolution but the head):
    res_num_ini: residual convolutions of the first level (0 or more).
    res_num_max: the most residual convolutions of a level (0 or more).
    prefix: the layer-name prefix, "vnet" by default.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = VNet(filter_num=(4, 8), n_labels=2, unpool=False)
    >>> x = jnp.zeros((1, 16, 16, 3))
    >>> jax.eval_shape(model.init_with_output, jax.random.key(0), x)[0].shape
    (1, 16, 16, 2)
  """

  res_num_ini: int = 1
  res_num_max: int = 3
  prefix: str = "vnet"

  def check_config(self) -> None:
    super().check_config()
    check_positive_int("res_num_ini", self.res_num_ini, allow_zero=True)
    check_positive_int("res_num_max", self.res_num_max, allow_zero=True)
    filter_num, transposed = tuple(self.filter_num), check_unpool(self.unpool, self.rank) == "trans_conv"
    channels, counts = filter_num[-1], res_nums(self)
    for level, depth_level in enumerate(range(len(filter_num) - 2, -1, -1)):
      decoded = filter_num[depth_level] if transposed else channels
      path = filter_num[depth_level] if counts[depth_level] > 0 else decoded + filter_num[depth_level]
      channels = _added_channels(self, level, decoded, path)

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    self.check_input(x)
    p, filter_num, counts, options = self.prefix, tuple(self.filter_num), res_nums(self), self.precision_options
    x = self._conv(x, filter_num[0], f"{p}_input_conv", train)
    x = self._residual(x, x, filter_num[0], f"{p}_down_0", counts[0], train)
    skips = [x]
    for level, channel in enumerate(filter_num[1:], start=1):
      x = EncodeLayer(channel, self.pool, self.activation, self.batch_norm, name=f"{p}_down_{level}_encode",
                      **options)(x, train=train)
      if check_pool(self.pool) != "stride_conv":
        x = self._conv(x, channel, f"{p}_down_{level}_pre_conv", train)
      x = self._residual(x, x, channel, f"{p}_down_{level}_res_conv", counts[level], train)
      skips.append(x)
    for level, (channel, skip, res_num) in enumerate(zip(filter_num[-2::-1], skips[-2::-1], counts[-2::-1])):
      decoded = DecodeLayer(channel, self.unpool, activation=self.activation, batch_norm=self.batch_norm,
                            name=f"{p}_up_{level}_decode", **options)(x, train=train)
      x = self._residual(jnp.concatenate([decoded, skip], axis=-1), decoded, channel, f"{p}_up_{level}_res_conv",
                         res_num, train)
    return ConvOutput(self.n_labels, activation=self.output_activation, name=f"{p}_output", **options)(x)

  def _conv(self, x, channel, name, train):
    return ConvStack(channel, stack_num=1, activation=self.activation, batch_norm=self.batch_norm, name=name,
                     **self.precision_options)(x, train=train)

  def _residual(self, x, x_skip, channel, name, res_num, train):
    return residual_conv_stack(self, x, x_skip, channel, name, train=train, res_num=res_num,
                               activation=self.activation, batch_norm=self.batch_norm)


def vnet_2d(input_size, filter_num, n_labels, res_num_ini=1, res_num_max=3, activation="ReLU",
            output_activation="Softmax", batch_norm=False, pool=True, unpool=True, name="vnet", *, dtype=None,
            param_dtype=jnp.float32, precision=None) -> VNet:
  """keras-unet-collection's `vnet_2d`: the same arguments and defaults; returns a `VNet` module.

  Arguments are checked here (`ValueError` naming the argument, the value and
  what is allowed). `input_size` is (height, width, channels), None entries
  meaning any size; `name` prefixes the layer names; the keyword-only `dtype`,
  `param_dtype` and `precision` are `VNet`'s. With the default `unpool=True`
  kuc's V-Net needs equal filter numbers (see the module doc).

  Example:
    >>> vnet_2d((64, 64, 1), [8, 16, 32], n_labels=2, unpool=False).res_num_max
    3
  """
  return VNet.from_arguments(input_size, 2, filter_num, n_labels=n_labels, res_num_ini=res_num_ini,
                             res_num_max=res_num_max, activation=activation, output_activation=output_activation,
                             batch_norm=batch_norm, pool=pool, unpool=unpool, prefix=name, dtype=dtype,
                             param_dtype=param_dtype, precision=precision)


def vnet_3d(input_size, filter_num, n_labels, res_num_ini=1, res_num_max=3, activation="ReLU",
            output_activation="Softmax", batch_norm=False, pool=True, unpool=True, name="vnet", *, dtype=None,
            param_dtype=jnp.float32, precision=None) -> VNet:
  """`vnet_2d` for volumes: `input_size` is (depth, height, width, channels), with 3-D convolutions and pooling.

  `unpool`: True or "nearest" (Keras's `UpSampling3D`, which repeats voxels) or False (`Conv3DTranspose`).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = vnet_3d((8, 8, 8, 1), [2, 4], n_labels=2, unpool=False)
    >>> x = jnp.zeros((1, 8, 8, 8, 1))
    >>> jax.eval_shape(model.init_with_output, jax.random.key(0), x)[0].shape
    (1, 8, 8, 8, 2)
  """
  return VNet.from_arguments(input_size, 3, filter_num, n_labels=n_labels, res_num_ini=res_num_ini,
                             res_num_max=res_num_max, activation=activation, output_activation=output_activation,
                             batch_norm=batch_norm, pool=pool, unpool=unpool, prefix=name, dtype=dtype,
                             param_dtype=param_dtype, precision=precision)
