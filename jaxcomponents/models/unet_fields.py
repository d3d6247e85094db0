"""The arguments keras-unet-collection's U-Net-like models share: `SegmentationFields`, and their checks.

`filter_num`, `n_labels`, `activation`, `output_activation`, `batch_norm`,
`pool`, `unpool`, `input_size` and the layer-name prefix (kuc's `name`) mean
the same in `unet_2d`, `att_unet_2d`, `unet_plus_2d`, `r2_unet_2d`,
`vnet_2d`, `resunet_a_2d` and `transunet_2d` (and their 3-D twins); a model
class derives from `SegmentationFields`, adds its own fields and checks
(`check_config`), and its builder returns `cls.from_arguments(...)`, which
checks every argument once, naming it as kuc names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from jaxcomponents.errors import check_bool, check_positive_int, is_int
from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.models import backbones
from jaxcomponents.models.unet_backbone import check_backbone, check_backbone_input
from jaxcomponents.models.unet_blocks import (ACTIVATIONS, OUTPUT_ACTIVATIONS, check_activation, check_pool,
                                              check_unpool, spatial_rank)


def check_filter_num(filter_num: Any, param: str = "filter_num") -> tuple[int, ...]:
  """A non-empty list of positive integers (one per level) as a tuple, else `ValueError` naming `param`."""
  ok = not isinstance(filter_num, (str, bytes)) and isinstance(filter_num, Sequence) and len(filter_num) > 0
  if not ok or any(not is_int(f) or f < 1 for f in filter_num):
    raise ValueError(f"{param}={filter_num!r} is not allowed; expected a non-empty list of positive integers, "
                     "one per level, e.g. [64, 128, 256, 512].")
  return tuple(int(f) for f in filter_num)


def as_input_size(input_size: Any, rank: int = 2) -> tuple:
  """`input_size` as a tuple of `rank + 1` entries (None: any size), else `ValueError`."""
  if isinstance(input_size, (str, bytes)) or not isinstance(input_size, Sequence) or len(input_size) != rank + 1:
    expected = "(height, width, channels)" if rank == 2 else "(depth, height, width, channels)"
    raise ValueError(f"input_size={input_size!r} is not allowed; expected {expected}, None entries meaning any "
                     "size.")
  return tuple(input_size)


def check_input_size(model: Any, input_size: Sequence[int | None]) -> None:
  """Checks an input shape `(height, width, channels)` or, in 3-D, `(depth, height, width, channels)` (None: any)
  against the model: sizes divisible by 2**(depth - 1) (unless a backbone's taps are uneven), the backbone's."""
  input_size = tuple(input_size)
  if len(input_size) not in (3, 4):
    raise ValueError(f"input_size={input_size} is not allowed; expected (height, width, channels) or, for 3-D "
                     "volumes, (depth, height, width, channels).")
  backbone = getattr(model, "backbone", None)
  if len(input_size) == 4 and backbone is not None:
    raise ValueError(f"backbone={backbone!r} is not allowed with the 3-D input_size={input_size}; the backbones "
                     "are 2-D (use backbone=None).")
  record = None if backbone is None else backbones.get(backbone)
  factor = 2 ** (model.depth - 1)
  axes = ("depth", "height", "width")[-(len(input_size) - 1):]
  for axis, n in zip(axes, input_size[:-1]):
    if n is None:
      continue
    check_positive_int("input_size", n)
    if (record is None or record.halving_taps) and n % factor:
      raise ValueError(f"input_size={input_size} is not allowed: {axis} {n} is not divisible by 2**(depth - 1) = "
                       f"{factor} (the model has {model.depth} levels).")
  if input_size[-1] is not None:
    check_positive_int("input_size", input_size[-1])
  prelu = [param for param in ("activation", "output_activation", "atten_activation", "mlp_activation")
           if getattr(model, param, None) == "PReLU"]
  if prelu and None in input_size[:-1]:
    raise ValueError(f"input_size={input_size} is not allowed with {prelu[0]}='PReLU': PReLU keeps one slope per "
                     "position (Keras's PReLU), so every size must be given, as keras-unet-collection requires.")
  if backbone is not None:
    check_backbone_input(model, input_size)


def check_built_for(input_size: Sequence[int | None] | None, x: jax.Array) -> None:
  """A batch `x` against the `input_size` a model was built for (None: any input, None entries: any size)."""
  if input_size is not None and (len(input_size) != x.ndim - 1 or any(
      e is not None and e != n for e, n in zip(input_size, x.shape[1:]))):
    raise ValueError(f"x has shape {x.shape}; the model was built for input_size={tuple(input_size)}.")


def output_names(prefix: str, output_activation: str | None) -> list[str]:
  """A single-output kuc model's `output_names`: its output convolution `{prefix}_output`, or the activation
  layer kuc puts after it, `{prefix}_output_activation`.

  Example:
    >>> output_names("unet", "Softmax"), output_names("vnet", None)
    (['unet_output_activation'], ['vnet_output'])
  """
  return [f"{prefix}_output{'_activation' if output_activation else ''}"]


class SegmentationFields(PrecisionFields):
  """Fields, checks and `depth` that keras-unet-collection's U-Net-like models share.

  Attributes:
    filter_num: filters per level, e.g. [64, 128, 256, 512]; depth = len(filter_num).
    n_labels: output channels (classes).
    activation: "ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "Snake" or "Softmax".
    output_activation: one of those, "Sigmoid", or None (linear).
    batch_norm: batch normalization after the convolutions (which ones: the model's doc).
    pool: True or "max", "ave", or False (strided convolution).
    unpool: True or "bilinear" (2-D), "nearest", or False (transposed convolution).
    input_size: optional (height, width, channels) or (depth, height, width, channels), None entries meaning
      any; checked when called.
    prefix: the layer-name prefix (keras-unet-collection's `name`); None: the model's default.
    dtype, param_dtype, precision: keyword-only, passed to every layer (see `jaxcomponents.layers.precision`).
  """

  filter_num: Sequence[int]
  n_labels: int
  activation: str = "ReLU"
  output_activation: str | None = "Softmax"
  batch_norm: bool = False
  pool: bool | str = True
  unpool: bool | str = True
  input_size: Sequence[int | None] | None = None
  prefix: str | None = "unet"

  @property
  def layer_prefix(self) -> str:
    """The prefix of the layer names."""
    return self.prefix

  @property
  def output_names(self) -> list[str]:
    """The output layer's name, as keras-unet-collection's Keras `model.output_names` (see `output_names`)."""
    return output_names(self.layer_prefix, self.output_activation)

  @property
  def depth(self) -> int:
    """The number of levels, `len(filter_num)`."""
    return len(self.filter_num)

  @property
  def rank(self) -> int:
    """The spatial rank `input_size` gives (3 for volumes), 2 without one."""
    return 3 if self.input_size is not None and len(self.input_size) == 4 else 2

  def check_config(self) -> None:
    """Checks every field that does not depend on the input (subclasses add theirs); raises `ValueError` naming
    the first bad one by keras-unet-collection's argument name."""
    check_filter_num(self.filter_num)
    check_positive_int("n_labels", self.n_labels)
    check_activation("activation", self.activation, ACTIVATIONS)
    check_activation("output_activation", self.output_activation, OUTPUT_ACTIVATIONS)
    check_bool("batch_norm", self.batch_norm)
    check_pool(self.pool)
    check_unpool(self.unpool, self.rank)
    if hasattr(self, "backbone"):
      check_backbone(self)
    given = self.prefix is None or (isinstance(self.prefix, str) and self.prefix)
    if not given or not isinstance(self.layer_prefix, str) or not self.layer_prefix:
      raise ValueError(f"name={self.prefix!r} is not allowed; expected a non-empty string (the layer-name prefix).")

  def check_input_size(self, input_size: Sequence[int | None]) -> None:
    """Checks an input shape without the batch (None: any); models with other size rules override it."""
    check_input_size(self, input_size)

  @classmethod
  def from_arguments(cls, input_size, rank: int, filter_num, **fields):
    """The model for a keras-unet-collection builder's arguments, each checked; `rank` 2 or 3 for `input_size`."""
    model = cls(input_size=as_input_size(input_size, rank), filter_num=check_filter_num(filter_num), **fields)
    model.check_config()
    model.check_input_size(model.input_size)
    return model

  def check_input(self, x: jax.Array) -> None:
    """Checks the fields (`check_config`), then a batch `x`: its rank, `unpool` there, `input_size`, sizes."""
    self.check_config()
    check_unpool(self.unpool, spatial_rank(x))
    check_built_for(self.input_size, x)
    self.check_input_size((*x.shape[1:-1], None))
