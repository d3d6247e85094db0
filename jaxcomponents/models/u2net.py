"""U^2-Net (Qin et al. 2020), the numerical twin of keras-unet-collection's `u2net_2d`.

`u2net_2d(...)` takes keras-unet-collection's arguments (names, values,
defaults, the 'auto' filter rules) and returns a `U2Net` module; given the same
weights it computes what keras-unet-collection 0.1.13's Keras model computes,
and its weighted layers carry keras-unet-collection's layer names
(`u2net_in_down_0`, `u2net_down_4f_0_in_0_bn`, `u2net_output_final` ...), so
`jaxcomponents.weights.load_keras(model, "kuc_u2net.h5", x, match="name")`
loads a keras-unet-collection weight file.

Architecture (keras-unet-collection's): `n = len(filter_num_down)` levels of
residual U-blocks (`RSU`, a small U-Net of its own whose depth falls from
`n + 1` at full resolution to 2 at the deepest RSU level), then one level per
`filter_4f_num` entry of dilated `RSU4F` blocks (no resampling inside); every
level but the first starts with an encode layer (`pool`). The decoder mirrors
them (decode layer (`unpool`), concatenation with the skip, the same kind of
block with the encoder level's depth) for the RSU-4F levels but the deepest and
for each `filter_num_up` entry. Each decoder output and the deepest block feed
a side output: Conv 3x3 (`n_labels`), upsampled by 2**i to the shallowest side
output's size (UpSampling2D, or a Conv2DTranspose of kernel 3 and stride 2**i
when `unpool=False`), then `output_activation`; the final output is Conv 1x1 ->
`output_activation` over their concatenation. With `deep_supervision` the model
returns `[sup0, sup1, ..., final]` (the shallowest side output first; names in
`output_names`), else the final output only.

keras-unet-collection's arithmetic is kept where it is surprising:
inside every RSU the encode layers (`pool=False`: strided convolution, kernel 2)
and decode layers (`unpool=False`: transposed convolution, kernel 3) have the
block's intermediate width and the block's `batch_norm` and activation; the
side outputs' transposed convolutions have kernel 3 even for strides 4, 8 ...
(so they fill three positions in four, eight ...); intermediate filter lists
longer than needed are read from their start going down and from their end going
up; a `filter_num_up` shorter than `filter_num_down` ends the decoder early, so
the output is smaller than the input; RSU4F concatenates its third-last skip
before its output convolution. Layer names are keras-unet-collection's; kuc's
printed notes on the 'auto' values and output names are not printed (modules do
no I/O; `U2Net.filters` and `U2Net.output_names` give them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.deprecation import keyword_only
from jaxcomponents.errors import check_bool, check_positive_int, is_int
from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.models.unet_blocks import (ACTIVATIONS, OUTPUT_ACTIVATIONS, ConvOutput, ConvStack, DecodeLayer,
                                              EncodeLayer, activation_layer, check_activation, check_pool,
                                              check_unpool, conv)
from jaxcomponents.models.unet_fields import check_built_for

__all__ = ["RSU", "RSU4F", "U2Net", "U2NetFilters", "check_config", "check_input_size", "resolve_filters",
           "u2net_2d"]

AUTO = "auto"


class U2NetFilters(NamedTuple):
  """The filter lists of a U^2-Net with keras-unet-collection's 'auto' rules applied."""

  num_down: tuple[int, ...]
  num_up: tuple[int, ...]
  mid_num_down: tuple[int, ...]
  mid_num_up: tuple[int, ...]
  num_4f: tuple[int, ...]
  mid_num_4f: tuple[int, ...]


_LEVEL_LIST = "a list of positive integers, one per level, or 'auto'"


def _check_filters(param: str, value: Any, expected: str = _LEVEL_LIST, *, allow_empty: bool = True) -> tuple[int, ...]:
  """`value` as a tuple of positive integers, else `ValueError` naming `param` and saying what is `expected`."""
  ok = not isinstance(value, (str, bytes)) and isinstance(value, Sequence) and (allow_empty or len(value) > 0)
  if not ok or any(not is_int(f) or f < 1 for f in value):
    raise ValueError(f"{param}={value!r} is not allowed; expected {expected}.")
  return tuple(int(f) for f in value)


def _is_auto(value: Any) -> bool:
  return isinstance(value, str) and value == AUTO


def _auto(param: str, value: Any, rule: str, auto_value: list[int]) -> tuple[int, ...]:
  """`value`, or `auto_value` for 'auto', which must be positive (the 'auto' rule `rule` can give 0)."""
  if not _is_auto(value):
    return _check_filters(param, value)
  if any(f < 1 for f in auto_value):
    raise ValueError(f"{param}='auto' is not allowed here: it gives {auto_value} ({rule}) and every block needs at "
                     f"least 1 filter; give {param} explicitly.")
  return tuple(auto_value)


def _check_length(param: str, value: tuple[int, ...], least: int, reason: str) -> None:
  if len(value) < least:
    raise ValueError(f"{param}={list(value)} is not allowed; expected at least {least} entries ({reason}).")


def resolve_filters(filter_num_down, filter_num_up=AUTO, filter_mid_num_down=AUTO, filter_mid_num_up=AUTO,
                    filter_4f_num=AUTO, filter_4f_mid_num=AUTO) -> U2NetFilters:
  """keras-unet-collection's filter lists: its 'auto' rules, and the lengths its indexing needs.

  'auto': `filter_num_up = filter_num_down`, `filter_mid_num_down = filter_num_down // 4`, `filter_mid_num_up =
  filter_mid_num_down` (as resolved), `filter_4f_num = 2 x [filter_num_down[-1]]`, `filter_4f_mid_num =
  filter_4f_num // 2`. Raises `ValueError` naming the first list that does not fit.

  Example:
    >>> resolve_filters([8, 16]).mid_num_down, resolve_filters([8, 16]).num_4f
    ((2, 4), (16, 16))
  """
  down = _check_filters("filter_num_down", filter_num_down, "a non-empty list of positive integers, one per level, "
                        "e.g. [64, 128, 256, 512]", allow_empty=False)
  up = down if _is_auto(filter_num_up) else _check_filters("filter_num_up", filter_num_up)
  mid_down = _auto("filter_mid_num_down", filter_mid_num_down, "filter_num_down // 4", [f // 4 for f in down])
  mid_up = mid_down if _is_auto(filter_mid_num_up) else _check_filters("filter_mid_num_up", filter_mid_num_up)
  num_4f = (down[-1], down[-1]) if _is_auto(filter_4f_num) else _check_filters("filter_4f_num", filter_4f_num)
  mid_4f = _auto("filter_4f_mid_num", filter_4f_mid_num, "filter_4f_num // 2", [f // 2 for f in num_4f])
  most_up = len(down) if num_4f else len(down) - 1  # the RSU levels the decoder can reach
  if len(up) > most_up:
    raise ValueError(f"filter_num_up={list(up)} is not allowed with filter_num_down={list(down)} and filter_4f_num="
                     f"{list(num_4f)}; expected at most {most_up} entries (one per RSU level it decodes to).")
  _check_length("filter_mid_num_down", mid_down, len(down), "one per filter_num_down entry")
  _check_length("filter_mid_num_up", mid_up, len(up), "one per filter_num_up entry")
  _check_length("filter_4f_mid_num", mid_4f, len(num_4f), "one per filter_4f_num entry")
  return U2NetFilters(down, up, mid_down, mid_up, num_4f, mid_4f)


def _prefix(module: nn.Module, default: str) -> str:
  return module.name if isinstance(module.name, str) else default


def _conv_stack(block: PrecisionFields, x: jax.Array, channel: int, name: str, *, train: bool,
                dilation: int = 1) -> jax.Array:
  """keras-unet-collection's `CONV_stack(..., kernel_size=3, stack_num=1)` with `block`'s activation, batch norm
  and precision, called inside `block`'s compact call."""
  return ConvStack(channel, 3, 1, dilation, activation=block.activation, batch_norm=block.batch_norm, name=name,
                   **block.precision_options)(x, train=train)


def _check_widths(block: "RSU | RSU4F") -> None:
  check_positive_int("channel_in", block.channel_in)
  check_positive_int("channel_out", block.channel_out)


def _concat(tensors: Sequence[jax.Array]) -> jax.Array:
  return jnp.concatenate(tensors, axis=-1)


class RSU(PrecisionFields):
  """keras-unet-collection's residual U-block `RSU`: a U-Net of `depth` resolution levels plus a residual.

  `x_in = conv(channel_out)(x)`; `conv(channel_in)`, then `depth` x (encode
  layer -> conv), a dilation-2 conv at the bottom, then `depth` x (concatenate
  the skip -> conv -> decode layer), concatenate the first `channel_in` map,
  `conv(channel_out)`, plus `x_in`. Every conv is 3x3 -> [BN] -> activation;
  the encode and decode layers (`pool`, `unpool`) have `channel_in` filters.
  Layers: `{name}_in_0`, `{name}_down_{i}_0`, `{name}_encode_{i}_*`,
  `{name}_up_{i}_0`, `{name}_decode_{i}_*`, `{name}_out_0` (+ `_bn`, `_activation`).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> block = RSU(2, 4, depth=2, batch_norm=False)
    >>> x = jnp.ones((1, 8, 8, 3))
    >>> jax.eval_shape(block.apply, jax.eval_shape(block.init, jax.random.key(0), x), x).shape
    (1, 8, 8, 4)
  """

  channel_in: int
  channel_out: int
  depth: int = 5
  activation: str = "ReLU"
  batch_norm: bool = True
  pool: bool | str = True
  unpool: bool | str = True

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    _check_widths(self)
    check_positive_int("depth", self.depth)
    prefix, options = _prefix(self, "RSU"), self.precision_options
    x = _conv_stack(self, x, self.channel_out, f"{prefix}_in", train=train)
    skips = [x]
    x = _conv_stack(self, x, self.channel_in, f"{prefix}_down_0", train=train)
    skips.append(x)
    for i in range(self.depth):
      x = EncodeLayer(self.channel_in, self.pool, self.activation, self.batch_norm, name=f"{prefix}_encode_{i}",
                      **options)(x, train=train)
      x = _conv_stack(self, x, self.channel_in, f"{prefix}_down_{i + 1}", train=train)
      skips.append(x)
    x = _conv_stack(self, x, self.channel_in, f"{prefix}_up_0", train=train, dilation=2)
    skips = skips[::-1]
    for i in range(self.depth):
      x = _concat([x, skips[i]])
      x = _conv_stack(self, x, self.channel_in, f"{prefix}_up_{i + 1}", train=train)
      x = DecodeLayer(self.channel_in, self.unpool, activation=self.activation, batch_norm=self.batch_norm,
                      name=f"{prefix}_decode_{i}", **options)(x, train=train)
    x = _concat([x, skips[self.depth]])
    return _conv_stack(self, x, self.channel_out, f"{prefix}_out", train=train) + skips[-1]


class RSU4F(PrecisionFields):
  """keras-unet-collection's `RSU4F`: an RSU of dilated convolutions at one resolution, plus a residual.

  `x_in = conv(channel_out)(x)`; one `conv(channel_in)` per `dilation_num`
  entry; then, for the dilations but the last, reversed, but the last again,
  concatenate the matching skip -> conv at that dilation; concatenate the
  third-last skip (kuc's fixed index: the first `channel_in` map for the
  default `[1, 2, 4, 8]`), `conv(channel_out)`, plus `x_in`. Layers:
  `{name}_in_0`, `{name}_down_{i}_0`, `{name}_up_{i}_0`, `{name}_out_0` (+ `_bn`, `_activation`).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> block = RSU4F(2, 4)
    >>> x = jnp.ones((1, 4, 4, 3))
    >>> sorted(jax.eval_shape(block.init, jax.random.key(0), x)["params"])[:3]
    ['RSU4F_down_0', 'RSU4F_down_1', 'RSU4F_down_2']
  """

  channel_in: int
  channel_out: int
  dilation_num: Sequence[int] = (1, 2, 4, 8)
  activation: str = "ReLU"
  batch_norm: bool = True

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    _check_widths(self)
    dilations = _check_filters("dilation_num", self.dilation_num, "a list of positive dilation rates")
    _check_length("dilation_num", dilations, 3, "RSU4F concatenates its third-last skip")
    prefix = _prefix(self, "RSU4F")
    x = _conv_stack(self, x, self.channel_out, f"{prefix}_in", train=train)
    skips = [x]
    for i, dilation in enumerate(dilations):
      x = _conv_stack(self, x, self.channel_in, f"{prefix}_down_{i}", train=train, dilation=dilation)
      skips.append(x)
    skips = skips[:-1][::-1]
    for i, dilation in enumerate(dilations[:-1][::-1][:-1]):
      x = _concat([x, skips[i]])
      x = _conv_stack(self, x, self.channel_in, f"{prefix}_up_{i}", train=train, dilation=dilation)
    x = _concat([x, skips[2]])
    return _conv_stack(self, x, self.channel_out, f"{prefix}_out", train=train) + skips[-1]


def check_config(model: "U2Net") -> U2NetFilters:
  """Checks every argument that does not depend on the input; returns the resolved filter lists.

  Raises `ValueError` naming the first bad argument, its value and what is allowed.
  """
  filters = resolve_filters(model.filter_num_down, model.filter_num_up, model.filter_mid_num_down,
                            model.filter_mid_num_up, model.filter_4f_num, model.filter_4f_mid_num)
  check_positive_int("n_labels", model.n_labels)
  check_activation("activation", model.activation, ACTIVATIONS)
  check_activation("output_activation", model.output_activation, OUTPUT_ACTIVATIONS)
  check_bool("batch_norm", model.batch_norm)
  check_pool(model.pool)
  check_unpool(model.unpool, 2)
  check_bool("deep_supervision", model.deep_supervision)
  if not isinstance(model.prefix, str) or not model.prefix:
    raise ValueError(f"name={model.prefix!r} is not allowed; expected a non-empty string (the layer-name prefix).")
  return filters


def check_input_size(model: "U2Net", input_size: Sequence[int | None]) -> None:
  """Checks an input shape `(height, width, channels)` (None: any) against the model.

  Every map that is halved must have an even size (kuc's concatenations need the halved and doubled sizes to
  match): the height and width must be divisible by `2**max(n + 1, n - 1 + len(filter_4f_num))`.
  """
  input_size = tuple(input_size)
  if len(input_size) != 3:
    raise ValueError(f"input_size={input_size} is not allowed; expected (height, width, channels), None entries "
                     "meaning any size.")
  filters = check_config(model)
  levels = len(filters.num_down)
  halvings = max(levels + 1, levels - 1 + len(filters.num_4f))
  for axis, n in zip(("height", "width"), input_size[:2]):
    if n is None:
      continue
    check_positive_int("input_size", n)
    if n % 2**halvings:
      raise ValueError(f"input_size={input_size} is not allowed: {axis} {n} is not divisible by {2**halvings} "
                       f"(2**max(n + 1, n - 1 + len(filter_4f_num)) with n = len(filter_num_down) = {levels}, "
                       f"len(filter_4f_num) = {len(filters.num_4f)}).")
  if input_size[-1] is not None:
    check_positive_int("input_size", input_size[-1])


class U2Net(PrecisionFields):
  """U^2-Net computing what keras-unet-collection's `u2net_2d` computes (see the module doc).

  Attributes:
    filter_num_down: RSU output filters per encoder level, e.g. [64, 128, 256, 512].
    n_labels: output channels (classes).
    filter_num_up: RSU output filters per decoder level, shallowest first, or 'auto' (`filter_num_down`).
    filter_mid_num_down: RSU intermediate filters per encoder level, or 'auto' (`filter_num_down // 4`).
    filter_mid_num_up: RSU intermediate filters per decoder level, or 'auto' (`filter_mid_num_down`).
    filter_4f_num: RSU-4F output filters per level below the RSU levels, or 'auto' (2 x `filter_num_down[-1]`).
    filter_4f_mid_num: RSU-4F intermediate filters, or 'auto' (`filter_4f_num // 2`).
    activation: "ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "Snake" or "Softmax".
    output_activation: one of those, "Sigmoid", or None (linear); every side output and the final output.
    batch_norm: batch normalization after every convolution but the outputs' (Keras defaults).
    pool: True or "max", "ave", or False (strided convolution), in the RSUs and between levels.
    unpool: True or "bilinear", "nearest", or False (transposed convolution), everywhere upsampling is.
    deep_supervision: return the side outputs and the final output (`output_names`), else the final only.
    input_size: optional (height, width, channels), None entries meaning any; checked when called.
    prefix: the layer-name prefix (keras-unet-collection's `name`).
    dtype, param_dtype, precision: keyword-only, passed to every layer: computation dtype (None: inferred),
      parameter dtype (float32), precision of the convolutions (None: JAX's default).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = U2Net(filter_num_down=[4], n_labels=2, deep_supervision=True)
    >>> x = jnp.zeros((1, 8, 8, 3))
    >>> [y.shape for y in jax.eval_shape(model.apply, jax.eval_shape(model.init, jax.random.key(0), x), x)]
    [(1, 8, 8, 2), (1, 8, 8, 2), (1, 8, 8, 2), (1, 8, 8, 2)]
  """

  filter_num_down: Sequence[int]
  n_labels: int
  filter_num_up: Sequence[int] | str = AUTO
  filter_mid_num_down: Sequence[int] | str = AUTO
  filter_mid_num_up: Sequence[int] | str = AUTO
  filter_4f_num: Sequence[int] | str = AUTO
  filter_4f_mid_num: Sequence[int] | str = AUTO
  activation: str = "ReLU"
  output_activation: str | None = "Sigmoid"
  batch_norm: bool = False
  pool: bool | str = True
  unpool: bool | str = True
  deep_supervision: bool = False
  input_size: Sequence[int | None] | None = None
  prefix: str = "u2net"

  @property
  def filters(self) -> U2NetFilters:
    """The filter lists with the 'auto' rules applied."""
    return check_config(self)

  @property
  def depth(self) -> int:
    """keras-unet-collection's depth: `len(filter_num_down) + len(filter_4f_num)`."""
    filters = self.filters
    return len(filters.num_down) + len(filters.num_4f)

  @property
  def output_names(self) -> list[str]:
    """keras-unet-collection's Keras `model.output_names`: each output's last layer, in output order."""
    filters, p = self.filters, self.prefix
    sides = len(filters.num_4f[:-1]) + len(filters.num_up) + 1
    upsampling = "trans_conv" if check_unpool(self.unpool, 2) == "trans_conv" else "unpool"
    final = f"{p}_output_final" + ("_activation" if self.output_activation else "")
    if not self.deep_supervision:
      return [final]
    if self.output_activation:
      return [*(f"{p}_output_sup{i}_activation" for i in range(sides)), final]
    return [f"{p}_output_sup0", *(f"{p}_sup{i}_{upsampling}" for i in range(1, sides)), final]

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array | list[jax.Array]:
    filters = check_config(self)
    if x.ndim != 4:
      raise ValueError(f"x has shape {x.shape}; expected (batch, height, width, channels).")
    check_built_for(self.input_size, x)
    check_input_size(self, (*x.shape[1:-1], None))
    p, levels = self.prefix, len(filters.num_down)
    x = self._rsu(x, filters.mid_num_down[0], filters.num_down[0], levels + 1, f"{p}_in", train)
    skips, depths = [x], [levels + 1]
    for i, f in enumerate(filters.num_down[1:]):
      x = self._encode(x, f, f"{p}_encode_{i}", train)
      x = self._rsu(x, filters.mid_num_down[i + 1], f, levels - i, f"{p}_down_{i}", train)
      skips.append(x)
      depths.append(levels - i)
    for i, f in enumerate(filters.num_4f):
      x = self._encode(x, f, f"{p}_encode_4f_{i}", train)
      x = self._rsu4f(x, filters.mid_num_4f[i], f, f"{p}_down_4f_{i}", train)
      skips.append(x)
    features, skips, depths = [x], iter(skips[:-1][::-1]), depths[::-1]
    for i, (f, mid) in enumerate(zip(filters.num_4f[:-1][::-1], filters.mid_num_4f[:-1][::-1])):
      x = _concat([self._decode(x, f, f"{p}_decode_4f_{i}", train), next(skips)])
      x = self._rsu4f(x, mid, f, f"{p}_up_4f_{i}", train)
      features.append(x)
    for i, (f, mid) in enumerate(zip(filters.num_up[::-1], filters.mid_num_up[::-1])):
      x = _concat([self._decode(x, f, f"{p}_decode_{i}", train), next(skips)])
      x = self._rsu(x, mid, f, depths[i], f"{p}_up_{i}", train)
      features.append(x)
    return self._outputs(features[::-1])

  def _outputs(self, features: list[jax.Array]) -> jax.Array | list[jax.Array]:
    """The side outputs (the shallowest first, each upsampled to its size) and the final output."""
    p, options = self.prefix, self.precision_options
    sides = [ConvOutput(self.n_labels, 3, self.output_activation, name=f"{p}_output_sup0", **options)(features[0])]
    for i, feature in enumerate(features[1:], 1):
      y = conv(self, self.n_labels, 3, f"{p}_output_conv_{i}")(feature)
      y = DecodeLayer(self.n_labels, self.unpool, activation=None, pool_size=2**i, name=f"{p}_sup{i}", **options)(y)
      sides.append(activation_layer(self.output_activation, f"{p}_output_sup{i}_activation",
                                    **self.dtype_options)(y))
    final = ConvOutput(self.n_labels, 1, self.output_activation, name=f"{p}_output_final", **options)(
        _concat(sides))
    return [*sides, final] if self.deep_supervision else final

  def _rsu(self, x, channel_in, channel_out, depth, name, train):
    return RSU(channel_in, channel_out, depth, self.activation, self.batch_norm, self.pool, self.unpool, name=name,
               **self.precision_options)(x, train=train)

  def _rsu4f(self, x, channel_in, channel_out, name, train):
    return RSU4F(channel_in, channel_out, activation=self.activation, batch_norm=self.batch_norm, name=name,
                 **self.precision_options)(x, train=train)

  def _encode(self, x, channel, name, train):
    return EncodeLayer(channel, self.pool, self.activation, self.batch_norm, name=name, **self.precision_options)(
        x, train=train)

  def _decode(self, x, channel, name, train):
    return DecodeLayer(channel, self.unpool, activation=self.activation, batch_norm=self.batch_norm, name=name,
                       **self.precision_options)(x, train=train)


def u2net_2d(input_size, n_labels, filter_num_down, filter_num_up="auto", filter_mid_num_down="auto",
             filter_mid_num_up="auto", filter_4f_num="auto", filter_4f_mid_num="auto", activation="ReLU",
             output_activation="Sigmoid", batch_norm=False, pool=True, unpool=True, deep_supervision=False,
             name="u2net", *, dtype=None, param_dtype=jnp.float32, precision=None) -> U2Net:
  """keras-unet-collection's `u2net_2d`: the same arguments, defaults and 'auto' rules; returns a `U2Net` module.

  Arguments are checked here (`ValueError` naming the argument, the value and
  what is allowed). `input_size` is (height, width, channels), None entries
  meaning any size; `name` prefixes the layer names. The keyword-only `dtype`,
  `param_dtype` and `precision` are `U2Net`'s.

  Example:
    >>> model = u2net_2d((16, 16, 3), 2, [4, 8], deep_supervision=True)
    >>> model.filters.num_4f, model.output_names[0], len(model.output_names)
    ((8, 8), 'u2net_output_sup0_activation', 5)
  """
  if isinstance(input_size, (str, bytes)) or not isinstance(input_size, Sequence):
    raise ValueError(f"input_size={input_size!r} is not allowed; expected (height, width, channels), None entries "
                     "meaning any size.")
  model = U2Net(filter_num_down=filter_num_down, n_labels=n_labels, filter_num_up=filter_num_up,
                filter_mid_num_down=filter_mid_num_down, filter_mid_num_up=filter_mid_num_up,
                filter_4f_num=filter_4f_num, filter_4f_mid_num=filter_4f_mid_num, activation=activation,
                output_activation=output_activation, batch_norm=batch_norm, pool=pool, unpool=unpool,
                deep_supervision=deep_supervision, input_size=tuple(input_size), prefix=name, dtype=dtype,
                param_dtype=param_dtype, precision=precision)
  check_input_size(model, model.input_size)
  return model
