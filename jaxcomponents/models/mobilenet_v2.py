"""MobileNetV2, the numerical twin of `keras.applications.MobileNetV2`."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.deprecation import keyword_only
from jaxcomponents.errors import is_real
from jaxcomponents.activations import relu6
from jaxcomponents.layers.conv_core import Conv, DepthwiseConv
from jaxcomponents.layers.normalization import BatchNorm
from jaxcomponents.models.common import (Backbone, BackboneRecord, Taps, WeightsFile, batch_norm_mode, classifier_top,
                                         correct_pad, file_size, keras_file)

# (filters, stride, expansion) of blocks 0 ... 16
MOBILENET_V2_BLOCKS = ((16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6),
                       (64, 1, 6), (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6),
                       (160, 1, 6), (160, 1, 6), (320, 1, 6))
MOBILENET_V2_FEATURES = ("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu",
                         "block_13_expand_relu", "out_relu")
MOBILENET_V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)


def make_divisible(value: float, divisor: int = 8) -> int:
  """Keras's `_make_divisible`: round to a multiple of `divisor`, never more than 10% down."""
  rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
  return rounded + divisor if rounded < 0.9 * value else rounded


class MobileNetV2(Backbone):
  """MobileNetV2 with Keras's layer names (`Conv1`, `block_3_depthwise`, `Conv_1_bn`, `predictions`).

  Batch norm uses Keras's momentum 0.999 here; stride-2 depthwise layers pad
  like Keras's `correct_pad`. The feature taps are the ReLU6 outputs at
  strides 2, 4, 8, 16 and 32 (`block_1_expand_relu` ... `out_relu`), the
  layers segmentation decoders use with MobileNetV2. Tap points: `bn_Conv1`'s
  ReLU6 (`Conv1_relu`), every block's `_expand_relu`, `_depthwise_relu` and
  output (`block_{i}_add` or `block_{i}_project_BN`), and `out_relu`.

  Attributes:
    alpha: width multiplier (ImageNet weights: 0.35, 0.5, 0.75, 1.0, 1.3, 1.4).
    include_top, pooling, classes, classifier_activation, trainable: Keras's, see `Backbone`.
    dtype, param_dtype, precision: keyword-only, passed to every layer; see `Backbone`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = MobileNetV2(alpha=0.5, include_top=False, pooling="avg")
    >>> x = jnp.zeros((1, 96, 96, 3))
    >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
    >>> jax.eval_shape(model.apply, variables, x).shape
    (1, 1280)
  """

  alpha: float = 1.0
  features: ClassVar[tuple[str, ...]] = MOBILENET_V2_FEATURES

  @nn.compact
  @keyword_only("train", "return_features")
  def __call__(self, x: jax.Array, *, train: bool = False, return_features: bool = False) -> Any:
    if not is_real(self.alpha) or self.alpha <= 0:
      raise ValueError(f"alpha={self.alpha!r} is not allowed; expected a positive number "
                       f"(ImageNet weights exist for {MOBILENET_V2_ALPHAS}).")
    self.check_input(x)
    taps = self.start_taps()
    norm = functools.partial(BatchNorm, use_running_average=batch_norm_mode(self, train), momentum=0.999,
                             **self.dtype_options)
    options = self.precision_options
    x = Conv(make_divisible(32 * self.alpha), (3, 3), (2, 2), padding="SAME", use_bias=False, name="Conv1",
             **options)(x)
    x = taps("Conv1_relu", relu6(norm(name="bn_Conv1")(x)))
    for block_id, (filters, stride, expansion) in enumerate(MOBILENET_V2_BLOCKS):
      if taps.done:
        return self.tapped(taps)
      x = self._inverted_residual(x, block_id, make_divisible(int(filters * self.alpha)), stride, expansion, norm,
                                  taps, options)
    if taps.done:
      return self.tapped(taps)
    last = make_divisible(1280 * self.alpha) if self.alpha > 1.0 else 1280
    x = Conv(last, (1, 1), use_bias=False, name="Conv_1", **options)(x)
    x = taps("out_relu", relu6(norm(name="Conv_1_bn")(x)))
    if taps.done:
      return self.tapped(taps)
    x = classifier_top(self, x)
    return self.outputs(x, taps, return_features)

  @staticmethod
  def _inverted_residual(inputs, block_id, filters, stride, expansion, norm, taps: Taps, options):
    """Keras's `_inverted_res_block`; `options` are the precision fields of its convolutions. Returns early once
    `taps` is done."""
    x = inputs
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    if block_id:
      x = Conv(expansion * inputs.shape[-1], (1, 1), use_bias=False, name=f"{prefix}expand", **options)(x)
      x = taps(f"{prefix}expand_relu", relu6(norm(name=f"{prefix}expand_BN")(x)))
      if taps.done:
        return x
    if stride == 2:
      x = jnp.pad(x, ((0, 0), *correct_pad(x.shape[1:3]), (0, 0)))
    x = DepthwiseConv((3, 3), (stride, stride), "SAME" if stride == 1 else "VALID", use_bias=False,
                      name=f"{prefix}depthwise", **options)(x)
    x = taps(f"{prefix}depthwise_relu", relu6(norm(name=f"{prefix}depthwise_BN")(x)))
    if taps.done:
      return x
    x = Conv(filters, (1, 1), use_bias=False, name=f"{prefix}project", **options)(x)
    x = norm(name=f"{prefix}project_BN")(x)
    if inputs.shape[-1] == filters and stride == 1:
      return taps(f"{prefix}add", inputs + x)
    return taps(f"{prefix}project_BN", x)


def imagenet_file(module: MobileNetV2, input_shape: tuple[int, int, int]) -> WeightsFile:
  """Keras's MobileNetV2 file for `alpha` and the input size; other sizes get the 224 file with a warning, as in
  Keras."""
  if module.alpha not in MOBILENET_V2_ALPHAS:
    raise ValueError(f"alpha={module.alpha!r} is not allowed with ImageNet weights; expected one of "
                     f"{MOBILENET_V2_ALPHAS}.")
  size = file_size(input_shape, MOBILENET_V2_SIZES)
  suffix = ".h5" if module.include_top else "_no_top.h5"
  return keras_file("mobilenet_v2", f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(module.alpha)}_{size}"
                    f"{suffix}", None)


RECORDS = (BackboneRecord(MobileNetV2, 224, "tf", imagenet_file, unet_taps=MOBILENET_V2_FEATURES,
                          unet_taps_source="jaxcomponents", top1=0.713, fixed_top_size=False,
                          top_sizes=MOBILENET_V2_SIZES),)
