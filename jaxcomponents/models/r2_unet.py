"""R2U-Net (recurrent residual U-Net), the numerical twin of keras-unet-collection's `r2_unet_2d`.

`r2_unet_2d(...)` takes keras-unet-collection's arguments (names, values,
defaults) and returns an `R2UNet` module computing what keras-unet-collection
0.1.13's Keras model computes, with its layer names (`r2_unet_down0_conv`,
`r2_unet_down1_conv0_1`, `r2_unet_up1_bn0`, `r2_unet_output` ...), so
`jaxcomponents.weights.load_keras(model, "kuc.h5", x, match="name")` loads a
keras-unet-collection weight file.

Architecture (Alom et al. 2018, as keras-unet-collection builds it):
`depth = len(filter_num)`. Encoder: `{name}_down0` is a recurrent residual
block (`RecurrentResidualConv`, kuc's `RR_CONV`) of `stack_num_down` units,
then per level: pool (`pool`) -> recurrent residual block. Decoder level
`{name}_up{i}` (i from 1): unpool (`unpool`) -> one Conv 3x3 -> [BN] -> act
-> concatenate with the skip (decoded first) -> recurrent residual block of
`stack_num_up` units. Head: Conv 1x1 (`n_labels`) -> `output_activation`.

keras-unet-collection's quirks, kept: the recurrent block's convolutions have
a bias even with batch norm (the encoder's strided and the decoder's
pre-concatenation convolutions have one only without); its residual sum is
named after the last unit (`{name}_add{stack_num - 1}`, no weights); kernels
are 3x3 everywhere (kuc's `kernel_size` never reaches the blocks); the
decoder levels count from 1 (`_up1`), the encoder's from 0.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.deprecation import keyword_only
from jaxcomponents.errors import check_positive_int
from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.models.unet_blocks import (ConvOutput, ConvStack, DecodeLayer, EncodeLayer, activation_layer,
                                              batch_norm, check_activation, conv, spatial_rank)
from jaxcomponents.models.unet_fields import SegmentationFields

__all__ = ["R2UNet", "RecurrentResidualConv", "r2_unet_2d"]


class RecurrentResidualConv(PrecisionFields):
  """keras-unet-collection's `RR_CONV`: recurrent convolution units around a residual 1x1 projection.

  `skip = Conv1x1(x)`; `main = skip`; per unit `i` of `stack_num`:
  `r = act(BN(Conv_i(main)))`, then `recur_num` times `r = act(BN(Conv_i_j(r + main)))`,
  and `main = r`; returns `main + skip`. Every convolution has a bias, batch
  norm or not (kuc's). Layers: `{name}_conv` (1x1), `{name}_conv{i}`,
  `{name}_bn{i}`, `{name}_activation{i}`, `{name}_conv{i}_{j}`,
  `{name}_bn{i}_{j}`, `{name}_activation{i}_{j}`.

  Attributes:
    channel: the filters of every convolution.
    kernel_size: the units' kernel size (kuc's models always use 3).
    stack_num: the number of units (at least 1, as kuc needs).
    recur_num: the recurrent iterations per unit (0: one plain convolution per unit).
    activation: a keras-unet-collection activation name (`unet_blocks.ACTIVATIONS`).
    batch_norm: batch normalization after every 3x3 convolution.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> block = RecurrentResidualConv(4, stack_num=1, recur_num=1, name="rr")
    >>> sorted(jax.eval_shape(block.init, jax.random.key(0), jnp.ones((1, 8, 8, 2)))["params"])
    ['rr_conv', 'rr_conv0', 'rr_conv0_0']
  """

  channel: int
  kernel_size: int = 3
  stack_num: int = 2
  recur_num: int = 2
  activation: str = "ReLU"
  batch_norm: bool = False

  @property
  def layer_prefix(self) -> str:
    return self.name if isinstance(self.name, str) else "rr"

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    check_positive_int("channel", self.channel)
    check_positive_int("stack_num", self.stack_num)
    check_positive_int("recur_num", self.recur_num, allow_zero=True)
    check_activation("activation", self.activation)
    skip = conv(self, self.channel, 1, f"{self.layer_prefix}_conv", rank=spatial_rank(x))(x)
    main = skip
    for i in range(self.stack_num):
      unit = self._unit(main, f"{i}", train)
      for j in range(self.recur_num):
        unit = self._unit(unit + main, f"{i}_{j}", train)
      main = unit
    return main + skip

  def _unit(self, x: jax.Array, suffix: str, train: bool) -> jax.Array:
    """Conv (with bias) -> [BN] -> activation, named `{name}_conv{suffix}`, `_bn{suffix}`, `_activation{suffix}`."""
    prefix = self.layer_prefix
    x = conv(self, self.channel, self.kernel_size, f"{prefix}_conv{suffix}", rank=x.ndim - 2)(x)
    if self.batch_norm:
      x = batch_norm(self, f"{prefix}_bn{suffix}", train)(x)
    return activation_layer(self.activation, f"{prefix}_activation{suffix}", **self.dtype_options)(x)


class R2UNet(SegmentationFields):
  """R2U-Net computing what keras-unet-collection's `r2_unet_2d` computes; `r2_unet_2d` builds it.

  Attributes (besides `SegmentationFields`'s; `batch_norm` follows every 3x3 convolution):
    stack_num_down: recurrent units per encoder block (at least 1).
    stack_num_up: recurrent units per decoder block (at least 1).
    recur_num: recurrent iterations per unit (0 or more).
    prefix: the layer-name prefix, "r2_unet" by default.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = R2UNet(filter_num=(4, 8), n_labels=2, stack_num_down=1, stack_num_up=1, recur_num=1)
    >>> x = jnp.zeros((1, 16, 16, 3))
    >>> jax.eval_shape(model.init_with_output, jax.random.key(0), x)[0].shape
    (1, 16, 16, 2)
  """

  stack_num_down: int = 2
  stack_num_up: int = 2
  recur_num: int = 2
  prefix: str = "r2_unet"

  def check_config(self) -> None:
    super().check_config()
    check_positive_int("stack_num_down", self.stack_num_down)
    check_positive_int("stack_num_up", self.stack_num_up)
    check_positive_int("recur_num", self.recur_num, allow_zero=True)

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    self.check_input(x)
    p, filter_num = self.prefix, tuple(self.filter_num)
    x = self._recurrent(x, filter_num[0], self.stack_num_down, f"{p}_down0", train)
    skips = [x]
    for level, channel in enumerate(filter_num[1:], start=1):
      x = EncodeLayer(channel, self.pool, self.activation, self.batch_norm, name=f"{p}_down{level}_encode",
                      **self.precision_options)(x, train=train)
      x = self._recurrent(x, channel, self.stack_num_down, f"{p}_down{level}", train)
      skips.append(x)
    for level, (channel, skip) in enumerate(zip(filter_num[-2::-1], skips[-2::-1]), start=1):
      name = f"{p}_up{level}"
      x = DecodeLayer(channel, self.unpool, activation=self.activation, batch_norm=self.batch_norm,
                      name=f"{name}_decode", **self.precision_options)(x, train=train)
      x = ConvStack(channel, stack_num=1, activation=self.activation, batch_norm=self.batch_norm,
                    name=f"{name}_conv_before_concat", **self.precision_options)(x, train=train)
      x = self._recurrent(jnp.concatenate([x, skip], axis=-1), channel, self.stack_num_up, name, train)
    return ConvOutput(self.n_labels, activation=self.output_activation, name=f"{p}_output",
                      **self.precision_options)(x)

  def _recurrent(self, x, channel, stack_num, name, train):
    return RecurrentResidualConv(channel, stack_num=stack_num, recur_num=self.recur_num, activation=self.activation,
                                 batch_norm=self.batch_norm, name=name, **self.precision_options)(x, train=train)


def r2_unet_2d(input_size, filter_num, n_labels, stack_num_down=2, stack_num_up=2, recur_num=2, activation="ReLU",
               output_activation="Softmax", batch_norm=False, pool=True, unpool=True, name="r2_unet", *,
               dtype=None, param_dtype=jnp.float32, precision=None) -> R2UNet:
  """keras-unet-collection's `r2_unet_2d`: the same arguments and defaults; returns an `R2UNet` module.

  Arguments are checked here (`ValueError` naming the argument, the value and
  what is allowed). `input_size` is (height, width, channels), None entries
  meaning any size; `name` prefixes the layer names; the keyword-only `dtype`,
  `param_dtype` and `precision` are `R2UNet`'s.

  Example:
    >>> model = r2_unet_2d((64, 64, 3), [16, 32, 64], n_labels=2, recur_num=1)
    >>> model.prefix, model.depth
    ('r2_unet', 3)
  """
  return R2UNet.from_arguments(input_size, 2, filter_num, n_labels=n_labels, stack_num_down=stack_num_down,
                               stack_num_up=stack_num_up, recur_num=recur_num, activation=activation,
                               output_activation=output_activation, batch_norm=batch_norm, pool=pool, unpool=unpool,
                               prefix=name, dtype=dtype, param_dtype=param_dtype, precision=precision)
