"""MobileNet (v1), the numerical twin of `keras.applications.MobileNet`."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents import activations
from jaxcomponents.deprecation import keyword_only
from jaxcomponents.activations import relu6
from jaxcomponents.errors import check_positive_int, check_rate, is_real
from jaxcomponents.layers.conv_core import Conv, DepthwiseConv
from jaxcomponents.layers.dropout import Dropout
from jaxcomponents.layers.normalization import BatchNorm
from jaxcomponents.models.common import (Backbone, BackboneRecord, WeightsFile, batch_norm_mode, file_size,
                                         global_pool, keras_file)

# (pointwise filters, stride) of blocks 1 ... 13
MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
                    (512, 1), (512, 1), (1024, 2), (1024, 1))
MOBILENET_FEATURES = ("conv_pw_1_relu", "conv_pw_3_relu", "conv_pw_5_relu", "conv_pw_11_relu", "conv_pw_13_relu")
MOBILENET_ALPHAS = (0.25, 0.5, 0.75, 1.0)
MOBILENET_SIZES = (128, 160, 192, 224)


class MobileNet(Backbone):
  """MobileNet with Keras's layer names (`conv1`, `conv_dw_3`, `conv_pw_3_bn`, `conv_preds`).

  Each block is a 3x3 depthwise convolution then a 1x1 pointwise one, each
  with batch norm and ReLU6; stride-2 blocks pad bottom and right by one, as
  Keras does. The top is global average pooling, dropout and a 1x1
  convolution `conv_preds`. Tap points: `conv1_relu` and every block's
  `conv_dw_{i}_relu` and `conv_pw_{i}_relu`; the feature taps (strides 2 to
  32) are the last pointwise ReLU6 at each resolution.

  Attributes:
    alpha: width multiplier (ImageNet weights: 0.25, 0.5, 0.75, 1.0).
    depth_multiplier: of the depthwise convolutions (ImageNet weights: 1).
    dropout: the top's dropout rate.
    include_top, pooling, classes, classifier_activation, trainable, freeze_batch_norm, taps: see `Backbone`.
    dtype, param_dtype, precision: keyword-only, passed to every layer; see `Backbone`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = MobileNet(alpha=0.25, include_top=False, pooling="avg")
    >>> x = jnp.zeros((1, 32, 32, 3))
    >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
    >>> jax.eval_shape(model.apply, variables, x).shape
    (1, 256)
  """

  alpha: float = 1.0
  depth_multiplier: int = 1
  dropout: float = 1e-3
  features: ClassVar[tuple[str, ...]] = MOBILENET_FEATURES

  @nn.compact
  @keyword_only("train", "return_features")
  def __call__(self, x: jax.Array, *, train: bool = False, return_features: bool = False) -> Any:
    if not is_real(self.alpha) or int(32 * self.alpha) < 1:
      raise ValueError(f"alpha={self.alpha!r} is not allowed; expected a number of at least 1/32, which leaves the "
                       f"first layer a filter (ImageNet weights exist for {MOBILENET_ALPHAS}).")
    check_positive_int("depth_multiplier", self.depth_multiplier)
    check_rate("dropout", self.dropout)
    self.check_input(x)
    taps = self.start_taps()
    norm = functools.partial(BatchNorm, use_running_average=batch_norm_mode(self, train), **self.dtype_options)
    options = self.precision_options
    x = Conv(int(32 * self.alpha), (3, 3), (2, 2), padding="SAME", use_bias=False, name="conv1", **options)(x)
    x = taps("conv1_relu", relu6(norm(name="conv1_bn")(x)))
    for block_id, (filters, stride) in enumerate(MOBILENET_BLOCKS, start=1):
      if taps.done:
        return self.tapped(taps)
      if stride == 2:
        x = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
      x = DepthwiseConv((3, 3), (stride, stride), "SAME" if stride == 1 else "VALID",
                        depth_multiplier=self.depth_multiplier, use_bias=False, name=f"conv_dw_{block_id}",
                        **options)(x)
      x = taps(f"conv_dw_{block_id}_relu", relu6(norm(name=f"conv_dw_{block_id}_bn")(x)))
      if taps.done:
        return self.tapped(taps)
      x = Conv(int(filters * self.alpha), (1, 1), use_bias=False, name=f"conv_pw_{block_id}", **options)(x)
      x = taps(f"conv_pw_{block_id}_relu", relu6(norm(name=f"conv_pw_{block_id}_bn")(x)))
    if taps.done:
      return self.tapped(taps)
    if self.include_top:
      x = jnp.mean(x, axis=(1, 2), keepdims=True)
      x = Dropout(self.dropout, name="dropout")(x, train=train)
      x = Conv(self.classes, (1, 1), name="conv_preds", **options)(x)
      x = activations.get(self.classifier_activation, "classifier_activation")(x.reshape((x.shape[0], -1)))
    else:
      x = global_pool(x, self.pooling)
    return self.outputs(x, taps, return_features)


def imagenet_file(module: MobileNet, input_shape: tuple[int, int, int]) -> WeightsFile:
  """Keras's MobileNet file for `alpha` and the input size; other sizes get the 224 file with a warning, as in
  Keras."""
  if module.alpha not in MOBILENET_ALPHAS or module.depth_multiplier != 1:
    raise ValueError(f"alpha={module.alpha!r}, depth_multiplier={module.depth_multiplier!r} is not allowed with "
                     f"ImageNet weights; expected alpha in {MOBILENET_ALPHAS} and depth_multiplier=1.")
  size = file_size(input_shape, MOBILENET_SIZES)
  alpha_text = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}[module.alpha]
  suffix = "_tf.h5" if module.include_top else "_tf_no_top.h5"
  return keras_file("mobilenet", f"mobilenet_{alpha_text}_{size}{suffix}", None)


RECORDS = (BackboneRecord(MobileNet, 224, "tf", imagenet_file, unet_taps=MOBILENET_FEATURES,
                          unet_taps_source="jaxcomponents", top1=0.704, fixed_top_size=False,
                          top_sizes=MOBILENET_SIZES),)
