"""UNET 3+ (Huang et al. 2020), the numerical twin of keras-unet-collection's `unet_3plus_2d`.

`unet_3plus_2d(...)` takes keras-unet-collection's arguments (names, values,
defaults) and returns a `UNet3Plus` module that computes what
keras-unet-collection 0.1.13's Keras model computes, with its layer names
(`unet3plus_down0_0`, `unet3plus_up_1_en0_trans_conv`,
`unet3plus_fusion_conv_0_0_bn`, `unet3plus_output_final`, the nested
`VGG16_backbone/block1_conv1` ...), so
`jaxcomponents.weights.load_keras(model, "kuc.h5", x, match="name")` loads a
keras-unet-collection weight file by name.

Architecture (keras-unet-collection's): `depth = len(filter_num_down)`.
Encoder: `{name}_down0` = `stack_num_down` x (Conv 3x3 -> [BN] -> act), then
per level pool (`pool`) -> conv stack, or a backbone (`models/unet_backbone.py`).
Decoder stage `i` (deepest first) brings maps of every scale to its own:
deeper decoded maps by `decode_layer` (upsampling, or a 3x3 transposed conv
with stride 2**k), its own encoder map as it is, shallower encoder maps by
`encode_layer` (pooling 2**k, or a strided conv); each then through one conv
(`filter_num_skip[i]` filters), all concatenated and fused by `stack_num_up`
convolutions with `filter_num_aggregate` filters. Head: Conv 3x3 (`n_labels`)
-> `output_activation`; with `deep_supervision`, every deeper decoder map also
gets Conv 3x3 -> upsampling 2**i (`unpool`; a transposed conv for False) ->
`output_activation`, outputs ordered shallow to deep with the final one last.

keras-unet-collection's quirks, reproduced: the fusion loop runs over one
level too few, so the shallowest encoder map (`{name}_down0`, or a backbone's
shallowest tap) never reaches the decoder, and the last stage fuses only
decoded maps; `filter_num_aggregate='auto'` is still `depth *
filter_num_down[0]`; the fusion convolutions always have batch norm (and no
bias), whatever `batch_norm` says; a backbone whose first tap is at half
resolution (all but VGG) leaves one decoder level to a plain upsampling block
(`{name}_plain_up{i}`, UNET_right without concatenation); the extra encoder
levels below a backbone are named one level deeper than their filters'
position (`{name}_down{level + 1}`); `filter_num_skip` may be longer than the
stages that use it.

kuc leaves out the paper's classification-guided module; here it is an
option, `classification_guided=True` (see `UNet3Plus`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.deprecation import keyword_only
from jaxcomponents.errors import check_bool, check_positive_int, check_rate, is_int
from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.models import backbones, unet_fields
from jaxcomponents.models.unet_backbone import BackboneFields, backbone_encoder, check_backbone
from jaxcomponents.models.unet_blocks import (ACTIVATIONS, OUTPUT_ACTIVATIONS, ConvOutput, ConvStack, DecodeLayer,
                                              EncodeLayer, activation_layer, check_activation, check_pool,
                                              check_unpool, conv, unet_left, unet_right)

__all__ = ["UNet3Plus", "unet_3plus_2d"]


def _check_filters(param: str, value: Any, minimum: int = 1) -> tuple[int, ...]:
  """A list of at least `minimum` positive integers, else `ValueError` naming `param`."""
  ok = not isinstance(value, (str, bytes)) and isinstance(value, Sequence) and len(value) >= minimum
  if not ok or any(not is_int(f) or f < 1 for f in value):
    shown = list(value) if isinstance(value, tuple) else value
    raise ValueError(f"{param}={shown!r} is not allowed; expected a list of at least {minimum} positive integers.")
  return tuple(int(f) for f in value)


def check_config(model: "UNet3Plus") -> None:
  """Checks every argument that does not depend on the input; raises `ValueError` naming the first bad one."""
  _check_filters("filter_num_down", model.filter_num_down)
  if model.filter_num_skip != "auto":
    fused = model.fused_levels
    if isinstance(model.filter_num_skip, Sequence) and not isinstance(model.filter_num_skip, str):
      _check_filters("filter_num_skip", model.filter_num_skip, 0)
      if len(model.filter_num_skip) < fused:
        raise ValueError(f"filter_num_skip={list(model.filter_num_skip)} is not allowed: the {fused} decoder "
                         f"levels with full-scale skips need {fused} entries, one each (or 'auto').")
    else:
      raise ValueError(f"filter_num_skip={model.filter_num_skip!r} is not allowed; expected 'auto' or a list of "
                       "positive integers, one per decoder level.")
  aggregate = model.filter_num_aggregate
  if aggregate != "auto" and (not is_int(aggregate)
                              or aggregate < 1):
    raise ValueError(f"filter_num_aggregate={aggregate!r} is not allowed; expected 'auto' or a positive integer.")
  for param in ("n_labels", "stack_num_down", "stack_num_up"):
    check_positive_int(param, getattr(model, param))
  for param in ("batch_norm", "deep_supervision", "classification_guided"):
    check_bool(param, getattr(model, param))
  check_activation("activation", model.activation, ACTIVATIONS)
  check_activation("output_activation", model.output_activation, OUTPUT_ACTIVATIONS)
  check_pool(model.pool)
  check_unpool(model.unpool, 2)
  check_rate("classification_dropout", model.classification_dropout)
  check_backbone(model)
  if model.backbone is not None:
    record = backbones.get(model.backbone)
    if not record.halving_taps:
      raise ValueError(f"backbone={model.backbone!r} is not allowed: UNET 3+ pools and upsamples its maps by "
                       "powers of 2, and this backbone's taps are not exact halvings of the input.")
    taps = record.unet_tap_count(model.depth)
    if taps < 2:
      raise ValueError(f"depth {model.depth} (len(filter_num_down)) is not allowed with backbone="
                       f"{model.backbone!r}: it taps the backbone {taps} time(s), keras-unet-collection needs at "
                       f"least 2 taps (depth >= {model.depth + 2 - taps}).")
  if not isinstance(model.prefix, str) or not model.prefix:
    raise ValueError(f"name={model.prefix!r} is not allowed; expected a non-empty string (the layer-name prefix).")


def check_input_size(model: "UNet3Plus", input_size: Sequence[int | None]) -> None:
  """Checks an input shape `(height, width, channels)` (None: any) against the model."""
  input_size = tuple(input_size)
  if len(input_size) != 3:
    raise ValueError(f"input_size={input_size!r} is not allowed; expected (height, width, channels), None entries "
                     "meaning any size.")
  unet_fields.check_input_size(model, input_size)


class UNet3Plus(PrecisionFields, BackboneFields):
  """UNET 3+ computing what keras-unet-collection's `unet_3plus_2d` computes (see the module doc).

  Attributes:
    filter_num_down: filters per encoder level, e.g. [64, 128, 256, 512, 1024]; depth = its length.
    n_labels: output channels (classes).
    filter_num_skip: filters of each full-scale skip, one per decoder level, or "auto" (`filter_num_down[0]`).
    filter_num_aggregate: filters of the fused maps, or "auto" (`depth * filter_num_down[0]`).
    stack_num_down: convolutions per encoder level.
    stack_num_up: fusion convolutions per decoder level.
    activation: "ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "Snake" or "Softmax".
    output_activation: one of those, "Sigmoid" (default), or None (linear).
    batch_norm: batch normalization after the encoder's and the skips' convolutions.
    pool: True or "max", "ave", or False (strided convolution).
    unpool: True or "bilinear", "nearest", or False (transposed convolution).
    deep_supervision: also output every deeper decoder level, upsampled to the input size.
    backbone: None or a backbone's name (`models.backbones.NAMES` whose taps halve: "VGG16", "ResNet50", ...).
    weights: the backbone's weights for `weights.init_unet`: "imagenet", None or a Keras `.h5` path.
    freeze_backbone: no gradient for the backbone's convolutions.
    freeze_batch_norm: under `freeze_backbone`, no gradient for the backbone's batch norm either, and inference
      mode (as keras-unet-collection's `freeze_model`).
    classification_guided: the paper's classification-guided module (not in keras-unet-collection): dropout
      -> Conv 1x1 to 2 classes (`{name}_cgm_conv`) -> global max pooling -> sigmoid on the deepest encoder map;
      its argmax (1: the image has the object) multiplies every segmentation output, and the two
      probabilities are an extra last output (`{name}_output_cgm`). The argmax passes no gradient, so
      train the classification output with its own loss.
    classification_dropout: the module's dropout rate (the paper's 0.5), active with `train=True`.
    input_size: optional (height, width, channels), None entries meaning any; checked when called.
    prefix: the layer-name prefix (keras-unet-collection's `name`).
    dtype, param_dtype, precision: keyword-only, passed to every layer and the backbone (see
      `jaxcomponents.layers.precision`).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = UNet3Plus(filter_num_down=(4, 8), n_labels=2, deep_supervision=True)
    >>> outputs, _ = jax.eval_shape(model.init_with_output, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
    >>> [y.shape for y in outputs]
    [(1, 8, 8, 2), (1, 8, 8, 2)]
    >>> model.output_names
    ['unet3plus_output_sup0_activation', 'unet3plus_output_final_activation']
  """

  filter_num_down: Sequence[int]
  n_labels: int
  filter_num_skip: Sequence[int] | str = "auto"
  filter_num_aggregate: int | str = "auto"
  stack_num_down: int = 2
  stack_num_up: int = 1
  activation: str = "ReLU"
  output_activation: str | None = "Sigmoid"
  batch_norm: bool = False
  pool: bool | str = True
  unpool: bool | str = True
  deep_supervision: bool = False
  classification_guided: bool = False
  classification_dropout: float = 0.5
  input_size: Sequence[int | None] | None = None
  prefix: str = "unet3plus"

  @property
  def depth(self) -> int:
    """The number of levels, `len(filter_num_down)`."""
    return len(self.filter_num_down)

  @property
  def fused_levels(self) -> int:
    """The decoder levels that fuse full-scale skips (kuc's `depth_decode`); with a backbone whose first tap is at
    half resolution, one level fewer, its last level a plain upsampling block."""
    if self.backbone is not None and not backbones.get(self.backbone).full_resolution_first_tap:
      return self.depth - 2
    return self.depth - 1

  @property
  def skip_filters(self) -> tuple[int, ...]:
    """`filter_num_skip` with "auto" resolved: `filter_num_down[0]` for every decoder level."""
    if self.filter_num_skip == "auto":
      return (self.filter_num_down[0],) * (self.depth - 1)
    return tuple(self.filter_num_skip)

  @property
  def aggregate_filters(self) -> int:
    """`filter_num_aggregate` with "auto" resolved: `depth * filter_num_down[0]`."""
    if self.filter_num_aggregate == "auto":
      return self.depth * self.filter_num_down[0]
    return int(self.filter_num_aggregate)

  @property
  def output_names(self) -> list[str]:
    """keras-unet-collection's `model.output_names`, in the order of the outputs (then `{name}_output_cgm`)."""
    p, names = self.prefix, []
    if self.deep_supervision:
      kind = "activation" if self.output_activation else ("unpool" if self.unpool else "trans_conv")
      names = [f"{p}_output_sup{i}_{kind}" for i in range(self.depth - 1)]
    names.append(f"{p}_output_final_activation" if self.output_activation else f"{p}_output_final")
    return names + ([f"{p}_output_cgm"] if self.classification_guided else [])

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array | list[jax.Array]:
    check_config(self)
    if x.ndim != 4:
      raise ValueError(f"x has shape {x.shape}; expected (batch, height, width, channels).")
    unet_fields.check_built_for(self.input_size, x)
    check_input_size(self, (*x.shape[1:-1], None))
    encoded = self._encoder(x, train)
    decoded = self._decoder(encoded[::-1], train)
    outputs = self._heads(decoded[::-1])
    if self.classification_guided:
      outputs = self._classification_guided(encoded[-1], outputs, train)
    return outputs if len(outputs) > 1 else outputs[0]

  def _encoder(self, x: jax.Array, train: bool) -> list[jax.Array]:
    """The encoder's maps, shallow to deep (kuc's `X_encoder`)."""
    p, filters = self.prefix, tuple(self.filter_num_down)
    if self.backbone is None:
      x = ConvStack(filters[0], stack_num=self.stack_num_down, activation=self.activation,
                    batch_norm=self.batch_norm, name=f"{p}_down0", **self.precision_options)(x, train=train)
      encoded, first_new = [x], 1
    else:
      encoded, first_new = backbone_encoder(self, x, train)
    for level in range(first_new, self.depth):
      name = f"{p}_down{level if self.backbone is None else level + 1}"
      encoded.append(unet_left(self, encoded[-1], filters[level], name, train=train, stack_num=self.stack_num_down,
                               activation=self.activation, pool=self.pool, batch_norm=self.batch_norm))
    return encoded

  def _decoder(self, encoded: list[jax.Array], train: bool) -> list[jax.Array]:
    """kuc's `X_decoder` from the encoder's maps deepest first: the deepest map, then each stage's fused map."""
    p, options, aggregate = self.prefix, self.precision_options, self.aggregate_filters
    common = dict(activation=self.activation, batch_norm=self.batch_norm, **options)
    decoded, levels = [encoded[0]], len(encoded) - 1
    for stage in range(levels):
      channel, scaled = self.skip_filters[stage], []
      for level in range(levels):  # kuc's range: the shallowest encoder map is left out
        scale = level - stage - 1
        if scale < 0:
          y = DecodeLayer(channel, self.unpool, pool_size=2 ** -scale, name=f"{p}_up_{stage}_en{level}", **common)(
              decoded[level], train=train)
        elif scale == 0:
          y = encoded[level]
        else:
          y = EncodeLayer(channel, self.pool, pool_size=2 ** scale, name=f"{p}_down_{stage}_en{level}", **common)(
              encoded[level], train=train)
        scaled.append(ConvStack(channel, stack_num=1, name=f"{p}_down_from{stage}_to{level}", **common)(
            y, train=train))
      decoded.append(ConvStack(aggregate, stack_num=self.stack_num_up, activation=self.activation, batch_norm=True,
                               name=f"{p}_fusion_conv_{stage}", **options)(jnp.concatenate(scaled, -1), train=train))
    for level in range(levels, self.depth - 1):
      decoded.append(unet_right(self, decoded[-1], [], aggregate, f"{p}_plain_up{level}", train=train,
                                stack_num=self.stack_num_up, activation=self.activation, unpool=self.unpool,
                                batch_norm=self.batch_norm, concat=False))
    return decoded

  def _heads(self, decoded: list[jax.Array]) -> list[jax.Array]:
    """The outputs from the decoder's maps shallow to deep: the deep-supervision ones, then the final one."""
    p, outputs = self.prefix, []
    if self.deep_supervision:
      for i, y in enumerate(decoded[1:], start=1):
        y = conv(self, self.n_labels, 3, f"{p}_output_conv_{i - 1}")(y)
        y = DecodeLayer(self.n_labels, self.unpool, activation=None, pool_size=2 ** i, name=f"{p}_output_sup{i - 1}",
                        **self.precision_options)(y)
        outputs.append(activation_layer(self.output_activation, f"{p}_output_sup{i - 1}_activation",
                                        **self.dtype_options)(y))
    outputs.append(ConvOutput(self.n_labels, kernel_size=3, activation=self.output_activation,
                              name=f"{p}_output_final", **self.precision_options)(decoded[0]))
    return outputs

  def _classification_guided(self, deepest: jax.Array, outputs: list[jax.Array], train: bool) -> list[jax.Array]:
    """The paper's classification-guided module: the outputs masked by the argmax, then the probabilities."""
    y = nn.Dropout(self.classification_dropout, deterministic=not train)(deepest)
    y = conv(self, 2, 1, f"{self.prefix}_cgm_conv")(y)
    probabilities = jax.nn.sigmoid(jnp.max(y, axis=(1, 2)))
    has_object = jnp.argmax(probabilities, axis=-1)[:, None, None, None]
    return [output * has_object.astype(output.dtype) for output in outputs] + [probabilities]


def unet_3plus_2d(input_size, n_labels, filter_num_down, filter_num_skip="auto", filter_num_aggregate="auto",
                  stack_num_down=2, stack_num_up=1, activation="ReLU", output_activation="Sigmoid", batch_norm=False,
                  pool=True, unpool=True, deep_supervision=False, backbone=None, weights="imagenet",
                  freeze_backbone=True, freeze_batch_norm=True, name="unet3plus", *, classification_guided=False,
                  classification_dropout=0.5, dtype=None, param_dtype=jnp.float32, precision=None) -> UNet3Plus:
  """keras-unet-collection's `unet_3plus_2d`: the same arguments and defaults; returns a `UNet3Plus` module.

  Arguments are checked here (`ValueError` naming the argument, the value and
  what is allowed). `input_size` is (height, width, channels), None entries
  meaning any size; `name` prefixes the layer names. keras-unet-collection's
  printout of the automatic filter numbers is left out (the module's
  `skip_filters` and `aggregate_filters` say them). The keyword-only
  `classification_guided` and `classification_dropout` add the paper's
  classification-guided module, `dtype`, `param_dtype` and `precision` are
  `UNet3Plus`'s.

  Example:
    >>> model = unet_3plus_2d((64, 64, 3), n_labels=2, filter_num_down=[16, 32, 64])
    >>> model.skip_filters, model.aggregate_filters
    ((16, 16), 48)
  """
  if isinstance(input_size, (str, bytes)) or not isinstance(input_size, Sequence):
    raise ValueError(f"input_size={input_size!r} is not allowed; expected (height, width, channels), None entries "
                     "meaning any size.")
  as_tuple = lambda value: tuple(value) if isinstance(value, list) else value
  model = UNet3Plus(filter_num_down=as_tuple(filter_num_down), n_labels=n_labels,
                    filter_num_skip=as_tuple(filter_num_skip), filter_num_aggregate=filter_num_aggregate,
                    stack_num_down=stack_num_down, stack_num_up=stack_num_up, activation=activation,
                    output_activation=output_activation, batch_norm=batch_norm, pool=pool, unpool=unpool,
                    deep_supervision=deep_supervision, backbone=backbone, weights=weights,
                    freeze_backbone=freeze_backbone, freeze_batch_norm=freeze_batch_norm,
                    classification_guided=classification_guided, classification_dropout=classification_dropout,
                    input_size=tuple(input_size), prefix=name, dtype=dtype, param_dtype=param_dtype,
                    precision=precision)
  check_config(model)
  check_input_size(model, model.input_size)
  return model
