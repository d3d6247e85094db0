"""EfficientNetB0 ... B7, the numerical twins of `keras.applications.EfficientNetB0` ... `B7`."""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents import activations, initializers
from jaxcomponents.deprecation import keyword_only
from jaxcomponents.errors import check_rate
from jaxcomponents.layers.conv_core import Conv, DepthwiseConv
from jaxcomponents.layers.dropout import Dropout
from jaxcomponents.layers.normalization import BatchNorm
from jaxcomponents.models.common import (Backbone, BackboneRecord, Taps, batch_norm_mode, correct_pad, global_pool,
                                         predictions, top_and_no_top)
from jaxcomponents.models.mobilenet_v2 import make_divisible

# (kernel, repeats, filters in, filters out, expansion, stride) of stages 1 ... 7, before scaling
EFFICIENTNET_STAGES = ((3, 1, 32, 16, 1, 1), (3, 2, 16, 24, 6, 2), (5, 2, 24, 40, 6, 2), (3, 3, 40, 80, 6, 2),
                       (5, 3, 80, 112, 6, 1), (5, 4, 112, 192, 6, 2), (3, 1, 192, 320, 6, 1))
EFFICIENTNET_FEATURES = ("block2a_expand_activation", "block3a_expand_activation", "block4a_expand_activation",
                         "block6a_expand_activation", "top_activation")
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)
EFFICIENTNET_STORAGE = "https://storage.googleapis.com/keras-applications/"
SE_RATIO = 0.25
# Keras's EfficientNet initialises its convolutions and its classifier by these, not Keras's default glorot_uniform.
CONV_INIT = initializers.variance_scaling(2.0, "fan_out", "truncated_normal")
DENSE_INIT = initializers.variance_scaling(1.0 / 3.0, "fan_out", "uniform")
DROP_CONNECT_RATE = 0.2


class InputNormalization(nn.Module):
  """Keras's `Normalization` layer as EfficientNet has it: `(x - mean) / max(sqrt(variance), 1e-7)`.

  Its `mean`, `variance` and `count` are Keras's non-trainable weights, one
  mean and variance per input channel; they live in `batch_stats` (never
  updated), so `load_keras` fills them and training leaves them alone.
  Initialised as Keras initialises the layer it never adapts (mean 0,
  variance 1): Keras's ImageNet files bring the ImageNet statistics.
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = (x.shape[-1],)
    mean = self.variable("batch_stats", "mean", lambda: jnp.zeros(channels, jnp.float32)).value
    variance = self.variable("batch_stats", "variance", lambda: jnp.ones(channels, jnp.float32)).value
    self.variable("batch_stats", "count", lambda: jnp.zeros((), jnp.float32))
    return (x - mean) / jnp.maximum(jnp.sqrt(variance), 1e-7)


class EfficientNet(Backbone):
  """Keras's EfficientNet: inverted residual blocks with squeeze-and-excitation and swish, scaled in width and
  depth.

  Use `EfficientNetB0` ... `EfficientNetB7`; a subclass sets `width`, `depth`
  and `dropout`. The model scales its own input (images in [0, 255]):
  Rescaling(1/255), `normalization` (ImageNet's mean and variance once the
  ImageNet weights are loaded), and,
  as Keras builds it with `weights="imagenet"`, a Rescaling by 1/sqrt(std)
  (Keras's ImageNet files hold the standard deviations as variances).
  Layer names are Keras's (`stem_conv`, `block2a_expand_conv`,
  `block2a_se_reduce`, `top_bn`, `predictions`). Tap points:
  `stem_activation`, every block's `expand_activation`, `activation` and
  output (`{block}add` or `{block}project_bn`), and `top_activation`.

  Attributes:
    imagenet_rescaling: the Rescaling Keras adds for ImageNet weights; False is the model Keras builds with
      `weights=None`.
    drop_connect_rate: the largest rate of the blocks' stochastic depth (Keras: 0.2, rising with depth).
    include_top, pooling, classes, classifier_activation, trainable, freeze_batch_norm, taps: see `Backbone`.
    dtype, param_dtype, precision: keyword-only, passed to every layer; see `Backbone`.
  """

  imagenet_rescaling: bool = True
  drop_connect_rate: float = DROP_CONNECT_RATE
  width: ClassVar[float] = 1.0
  depth: ClassVar[float] = 1.0
  dropout: ClassVar[float] = 0.2
  features: ClassVar[tuple[str, ...]] = EFFICIENTNET_FEATURES

  @nn.compact
  @keyword_only("train", "return_features")
  def __call__(self, x: jax.Array, *, train: bool = False, return_features: bool = False) -> Any:
    check_rate("drop_connect_rate", self.drop_connect_rate)
    self.check_input(x)
    taps = self.start_taps()
    norm = functools.partial(BatchNorm, use_running_average=batch_norm_mode(self, train), **self.dtype_options)
    options = self.precision_options
    swish = activations.get("swish")
    filters = lambda n: make_divisible(n * self.width)
    x = InputNormalization(name="normalization")(x.astype(jnp.float32) / 255.0)
    if self.imagenet_rescaling:
      x = x / jnp.sqrt(jnp.asarray(IMAGENET_STDDEV_RGB, jnp.float32))
    x = jnp.pad(x, ((0, 0), *correct_pad(x.shape[1:3]), (0, 0)))
    x = Conv(filters(32), (3, 3), (2, 2), padding="VALID", use_bias=False, kernel_init=CONV_INIT, name="stem_conv",
             **options)(x)
    x = taps("stem_activation", swish(norm(name="stem_bn")(x)))
    repeats = [int(math.ceil(self.depth * stage[1])) for stage in EFFICIENTNET_STAGES]
    index = 0
    for stage, (kernel, _, filters_in, filters_out, expansion, stride) in enumerate(EFFICIENTNET_STAGES):
      for j in range(repeats[stage]):
        if taps.done:
          return self.tapped(taps)
        x = self._block(x, filters(filters_in) if j == 0 else filters(filters_out), filters(filters_out), kernel,
                        stride if j == 0 else 1, expansion, self.drop_connect_rate * index / sum(repeats),
                        f"block{stage + 1}{chr(j + 97)}_", norm, taps, options, train)
        index += 1
    if taps.done:
      return self.tapped(taps)
    x = Conv(filters(1280), (1, 1), use_bias=False, kernel_init=CONV_INIT, name="top_conv", **options)(x)
    x = taps("top_activation", swish(norm(name="top_bn")(x)))
    if taps.done:
      return self.tapped(taps)
    if self.include_top:
      x = predictions(self, Dropout(self.dropout, name="top_dropout")(jnp.mean(x, axis=(1, 2)), train=train),
                      DENSE_INIT)
    else:
      x = global_pool(x, self.pooling)
    return self.outputs(x, taps, return_features)

  @staticmethod
  def _block(inputs, filters_in, filters_out, kernel, stride, expansion, drop_rate, name, norm, taps: Taps, options,
             train):
    """Keras's EfficientNet `block`; returns early once `taps` is done."""
    swish = activations.get("swish")
    filters = filters_in * expansion
    x = inputs
    if expansion != 1:
      x = Conv(filters, (1, 1), use_bias=False, kernel_init=CONV_INIT, name=f"{name}expand_conv", **options)(x)
      x = taps(f"{name}expand_activation", swish(norm(name=f"{name}expand_bn")(x)))
      if taps.done:
        return x
    if stride == 2:
      x = jnp.pad(x, ((0, 0), *correct_pad(x.shape[1:3], kernel), (0, 0)))
    x = DepthwiseConv((kernel, kernel), (stride, stride), "SAME" if stride == 1 else "VALID", use_bias=False,
                      kernel_init=CONV_INIT, name=f"{name}dwconv", **options)(x)
    x = taps(f"{name}activation", swish(norm(name=f"{name}bn")(x)))
    if taps.done:
      return x
    se = jnp.mean(x, axis=(1, 2), keepdims=True)
    se = swish(Conv(max(1, int(filters_in * SE_RATIO)), (1, 1), kernel_init=CONV_INIT, name=f"{name}se_reduce",
                    **options)(se))
    se = jax.nn.sigmoid(Conv(filters, (1, 1), kernel_init=CONV_INIT, name=f"{name}se_expand", **options)(se))
    x = Conv(filters_out, (1, 1), use_bias=False, kernel_init=CONV_INIT, name=f"{name}project_conv",
             **options)(x * se)
    x = norm(name=f"{name}project_bn")(x)
    if stride == 1 and filters_in == filters_out:
      if drop_rate > 0:
        x = Dropout(drop_rate, broadcast_dims=(1, 2, 3), name=f"{name}drop")(x, train=train)
      return taps(f"{name}add", x + inputs)
    return taps(f"{name}project_bn", x)


class EfficientNetB0(EfficientNet):
  """EfficientNetB0: width x1.0, depth x1.0, ImageNet size 224, top dropout 0.2.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = EfficientNetB0(include_top=False, pooling="avg")
    >>> x = jnp.zeros((1, 32, 32, 3))
    >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
    >>> jax.eval_shape(model.apply, variables, x).shape
    (1, 1280)
  """

  width: ClassVar[float] = 1.0
  depth: ClassVar[float] = 1.0
  dropout: ClassVar[float] = 0.2


class EfficientNetB1(EfficientNet):
  """EfficientNetB1: width x1.0, depth x1.1, ImageNet size 240, top dropout 0.2."""

  width: ClassVar[float] = 1.0
  depth: ClassVar[float] = 1.1
  dropout: ClassVar[float] = 0.2


class EfficientNetB2(EfficientNet):
  """EfficientNetB2: width x1.1, depth x1.2, ImageNet size 260, top dropout 0.3."""

  width: ClassVar[float] = 1.1
  depth: ClassVar[float] = 1.2
  dropout: ClassVar[float] = 0.3


class EfficientNetB3(EfficientNet):
  """EfficientNetB3: width x1.2, depth x1.4, ImageNet size 300, top dropout 0.3."""

  width: ClassVar[float] = 1.2
  depth: ClassVar[float] = 1.4
  dropout: ClassVar[float] = 0.3


class EfficientNetB4(EfficientNet):
  """EfficientNetB4: width x1.4, depth x1.8, ImageNet size 380, top dropout 0.4."""

  width: ClassVar[float] = 1.4
  depth: ClassVar[float] = 1.8
  dropout: ClassVar[float] = 0.4


class EfficientNetB5(EfficientNet):
  """EfficientNetB5: width x1.6, depth x2.2, ImageNet size 456, top dropout 0.4."""

  width: ClassVar[float] = 1.6
  depth: ClassVar[float] = 2.2
  dropout: ClassVar[float] = 0.4


class EfficientNetB6(EfficientNet):
  """EfficientNetB6: width x1.8, depth x2.6, ImageNet size 528, top dropout 0.5."""

  width: ClassVar[float] = 1.8
  depth: ClassVar[float] = 2.6
  dropout: ClassVar[float] = 0.5


class EfficientNetB7(EfficientNet):
  """EfficientNetB7: width x2.0, depth x3.1, ImageNet size 600, top dropout 0.5."""

  width: ClassVar[float] = 2.0
  depth: ClassVar[float] = 3.1
  dropout: ClassVar[float] = 0.5


def _imagenet_rescaling(weights: Any) -> dict[str, bool]:
  return {"imagenet_rescaling": weights == "imagenet"}


def _record(module, size, top_hash, no_top_hash, top1):
  files = top_and_no_top("", module.__name__.lower(), top_hash, no_top_hash, storage=EFFICIENTNET_STORAGE)
  return BackboneRecord(module, size, None, files, unet_taps=EFFICIENTNET_FEATURES, top1=top1,
                        weights_arguments=_imagenet_rescaling)


RECORDS = (
    _record(EfficientNetB0, 224, "902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d", 0.771),
    _record(EfficientNetB1, 240, "1d254153d4ab51201f1646940f018540", "74c4e6b3e1f6a1eea24c589628592432", 0.791),
    _record(EfficientNetB2, 260, "b15cce36ff4dcbd00b6dd88e7857a6ad", "111f8e2ac8aa800a7a99e3239f7bfb39", 0.801),
    _record(EfficientNetB3, 300, "ffd1fdc53d0ce67064dc6a9c7960ede0", "af6d107764bb5b1abb91932881670226", 0.816),
    _record(EfficientNetB4, 380, "18c95ad55216b8f92d7e70b3a046e2fc", "ebc24e6d6c33eaebbd558eafbeedf1ba", 0.829),
    _record(EfficientNetB5, 456, "ace28f2a6363774853a83a0b21b9421a", "38879255a25d3c92d5e44e04ae6cec6f", 0.836),
    _record(EfficientNetB6, 528, "165f6e37dce68623721b423839de8be5", "9ecce42647a20130c1f39a5d4cb75743", 0.84),
    _record(EfficientNetB7, 600, "8c03f828fec3ef71311cd463b6759d99", "cbcfe4450ddf6f3ad90b1b398090fe4a", 0.843),
)
