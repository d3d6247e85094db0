"""U-Net and attention U-Net, the numerical twins of keras-unet-collection's `unet_2d` and `att_unet_2d`.

`unet_2d(...)` and `att_unet_2d(...)` take keras-unet-collection's arguments
(names, values, defaults) and return a `UNet` module; `UNet` itself takes the
product's parameter names (attention on/off, attention type additive or
multiplicative, attention activation, N labels, ...). Given the same weights
they compute what keras-unet-collection 0.1.13's Keras models compute, block
for block, and their weighted layers carry keras-unet-collection's layer names
(`unet_down0_0`, `attunet_up1_att_theta_x`, `unet_output`, the nested
`VGG16_backbone/block1_conv1` ...), so
`jaxcomponents.weights.load_keras(model, "kuc_model.h5", x)` maps a
keras-unet-collection weight file by name.

Architecture (keras-unet-collection's): `depth = len(filter_num)`.
Encoder: `{name}_down0` = `stack_num_down` x (Conv 3x3 -> [BN] -> act), then per
level pool (`pool`) -> conv stack. Decoder level `{name}_up{i}`: unpool
(`unpool`) -> [U-Net: conv stack of 1 | attention U-Net: attention gate on
the skip, F_int = filters // 2] -> concatenate (decoded first) -> conv stack of
`stack_num_up`. Head: Conv 1x1 (`n_labels`) -> `output_activation`. Convs have
a bias only without batch norm (the transposed conv always has one).

Backbones (`models/unet_backbone.py`, shared by every kuc model that takes
one): with `backbone`, the encoder is that backbone itself, cut at its U-Net
taps and nested as keras-unet-collection nests it (`{backbone}_backbone`). A
backbone whose first tap is at full resolution (VGG) gives `depth` taps, the
others `depth - 1`; missing deeper levels get encoder blocks, missing
shallower levels decoder blocks without concatenation. Where a backbone's
taps are not exact halvings (InceptionV3's 'valid' convolutions) the U-Net
resizes each decoded map to its skip's size (bilinear) and the last one to
the input size. `freeze_batch_norm` applies under `freeze_backbone`, as
keras-unet-collection's `freeze_model` applies it (its `unet_2d` passes
`freeze_backbone` in its place, which is not copied); with weight decay also exclude frozen weights from the
optimizer: `training.freeze(tx, frozen_patterns(model, params))`.

Volumes: `unet_3d` and `att_unet_3d` take (depth, height, width, channels)
inputs and build the same networks from 3-D layers (the blocks read the rank
from their input); no backbone, and `unpool=True` is Keras's `UpSampling3D`
(nearest).

Pretrained backbone weights: modules do no I/O, so `jaxcomponents.weights.init_unet(model, x)`
initialises and then loads `model.weights` ("imagenet": Keras's no-top file
through `weights.load_imagenet`, or a Keras `.h5` path) into the backbone.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.deprecation import keyword_only, warn
from jaxcomponents.errors import check_positive_int
from jaxcomponents.models.unet_backbone import (BackboneFields, backbone_arguments, backbone_encoder, backbone_path,
                                                check_bool, freeze_params, frozen_backbone, frozen_patterns)
from jaxcomponents.models.unet_blocks import (ACTIVATIONS, AttentionGate, ConvOutput, ConvStack, DecodeLayer,
                                              check_activation, check_attention, resize_to, unet_left, unet_right)
from jaxcomponents.models.unet_fields import SegmentationFields, check_input_size

__all__ = ["UNet", "att_unet_2d", "att_unet_3d", "backbone_arguments", "backbone_path", "check_config",
           "check_input_size", "freeze_params", "frozen_backbone", "frozen_patterns", "unet_2d", "unet_3d"]


def check_config(model: "UNet") -> None:
  """Checks every argument that does not depend on the input; raises `ValueError` naming the first bad one."""
  model.check_config()


class UNet(SegmentationFields, BackboneFields):
  """U-Net / attention U-Net computing what keras-unet-collection's `unet_2d` / `att_unet_2d` compute.

  Attribute names are the product's; `unet_2d` and `att_unet_2d` build this
  module from keras-unet-collection's arguments.

  Attributes:
    filter_num: filters per level, e.g. [64, 128, 256, 512]; depth = len(filter_num).
    n_labels: output channels (classes).
    stack_num_down: convolutions per encoder level.
    stack_num_up: convolutions per decoder level after the concatenation.
    activation: "ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "Snake" or "Softmax".
    output_activation: one of those, "Sigmoid", or None (linear).
    batch_norm: batch normalization after every convolution (Keras defaults).
    pool: True or "max", "ave", or False (strided convolution).
    unpool: True or "bilinear", "nearest", or False (transposed convolution).
    attention: the attention U-Net (attention gates on the skips).
    attention_type: "add" / "additive" or "multiply" / "multiplicative".
    attention_activation: the gate's activation, a name as for `activation`.
    backbone: None or a backbone's name (`models.backbones.NAMES`: "VGG16", "ResNet50", "DenseNet121", ...).
    weights: the backbone's weights for `weights.init_unet`: "imagenet", None or a Keras `.h5` path.
    freeze_backbone: no gradient for the backbone's convolutions.
    freeze_batch_norm: under `freeze_backbone`, no gradient for the backbone's batch norm either, and inference
      mode (as keras-unet-collection's `freeze_model`).
    input_size: optional (height, width, channels), None entries meaning any; checked when called.
    prefix: the layer-name prefix (keras-unet-collection's `name`); default "unet" or "attunet".
    dtype, param_dtype, precision: keyword-only, passed to every layer and the backbone: computation
      dtype (None: inferred from the input and parameters), parameter dtype (float32), precision of the
      convolutions (None: JAX's default); see `jaxcomponents.layers.precision`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> model = UNet(filter_num=(4, 8, 16), n_labels=2, attention=True)
    >>> x = jnp.zeros((1, 32, 32, 3))
    >>> variables = model.init(jax.random.key(0), x)
    >>> model.apply(variables, x).shape
    (1, 32, 32, 2)
  """

  stack_num_down: int = 2
  stack_num_up: int = 2
  attention: bool = False
  attention_type: str = "add"
  attention_activation: str = "ReLU"
  prefix: str | None = None

  @property
  def layer_prefix(self) -> str:
    return self.prefix or ("attunet" if self.attention else "unet")

  def check_config(self) -> None:
    super().check_config()
    check_positive_int("stack_num_down", self.stack_num_down)
    check_positive_int("stack_num_up", self.stack_num_up)
    if check_bool("attention", self.attention):
      check_attention(self.attention_type)
      check_activation("atten_activation", self.attention_activation, ACTIVATIONS)
      small = [f for f in self.filter_num[:-1] if f < 2]
      if small:
        raise ValueError(f"filter_num={list(self.filter_num)} is not allowed with attention: the gate has filters "
                         "// 2 channels, so every level but the deepest needs at least 2 filters.")

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    self.check_input(x)
    p, filter_num, depth = self.layer_prefix, tuple(self.filter_num), len(self.filter_num)
    input_size = x.shape[1:-1]
    skips = []
    if self.backbone is None:
      x = ConvStack(filter_num[0], stack_num=self.stack_num_down, activation=self.activation,
                    batch_norm=self.batch_norm, name=f"{p}_down0", **self.precision_options)(x, train=train)
      skips.append(x)
      for i, f in enumerate(filter_num[1:]):
        x = self._left(x, f, f"{p}_down{i + 1}", train)
        skips.append(x)
    else:
      skips, depth_encode = backbone_encoder(self, x, train)
      x = skips[-1]
      for level in range(depth_encode, depth):
        x = self._left(x, filter_num[level], f"{p}_down{level + 1}", train)
        skips.append(x)
    skips = skips[::-1]
    x, decode = skips[0], skips[1:]
    filter_decode = filter_num[:-1][::-1]
    for i, skip in enumerate(decode):
      x = self._right(x, skip, filter_decode[i], f"{p}_up{i}", train)
    for i in range(len(decode), depth - 1):
      x = self._right(x, None, filter_decode[i], f"{p}_up{i}", train)
    x = resize_to(x, input_size)  # only where a backbone's taps are not exact halvings
    return ConvOutput(self.n_labels, activation=self.output_activation, name=f"{p}_output",
                      **self.precision_options)(x)

  def _left(self, x, channel, name, train):
    return unet_left(self, x, channel, name, train=train, stack_num=self.stack_num_down, activation=self.activation,
                     pool=self.pool, batch_norm=self.batch_norm)

  def _right(self, x, skip, channel, name, train):
    """`UNET_right` (U-Net, or any level without a skip) or `UNET_att_right` (attention U-Net)."""
    if not (self.attention and skip is not None):
      return unet_right(self, x, [] if skip is None else [skip], channel, name, train=train,
                        stack_num=self.stack_num_up, activation=self.activation, unpool=self.unpool,
                        batch_norm=self.batch_norm)
    options = self.precision_options
    x = DecodeLayer(channel, self.unpool, activation=self.activation, batch_norm=self.batch_norm,
                    name=f"{name}_decode", **options)(x, train=train)
    x = resize_to(x, skip.shape[1:-1])
    skip = AttentionGate(channel // 2, self.attention_activation, self.attention_type, name=f"{name}_att",
                         **options)(skip, x)
    x = jnp.concatenate([x, skip], axis=-1)
    return ConvStack(channel, stack_num=self.stack_num_up, activation=self.activation, batch_norm=self.batch_norm,
                     name=f"{name}_conv_after_concat", **options)(x, train=train)


def unet_2d(input_size, filter_num, n_labels, stack_num_down=2, stack_num_up=2, activation="ReLU",
            output_activation="Softmax", batch_norm=False, pool=True, unpool=True, backbone=None, weights="imagenet",
            freeze_backbone=True, freeze_batch_norm=True, name="unet", *, dtype=None, param_dtype=jnp.float32,
            precision=None) -> UNet:
  """keras-unet-collection's `unet_2d`: the same arguments and defaults; returns a `UNet` module.

  Arguments are checked here (`ValueError` naming the argument, the value and
  what is allowed). `input_size` is (height, width, channels), None entries
  meaning any size; `name` prefixes the layer names. Unlike
  keras-unet-collection, `freeze_batch_norm` is honoured (see the module doc).
  The keyword-only `dtype`, `param_dtype` and `precision` are `UNet`'s.

  Example:
    >>> model = unet_2d((64, 64, 3), [16, 32, 64], n_labels=2)
    >>> model.prefix, model.attention
    ('unet', False)
  """
  return UNet.from_arguments(input_size, 2, filter_num, n_labels=n_labels, stack_num_down=stack_num_down,
                stack_num_up=stack_num_up, activation=activation, output_activation=output_activation,
                batch_norm=batch_norm, pool=pool, unpool=unpool, attention=False, backbone=backbone,
                weights=weights, freeze_backbone=freeze_backbone, freeze_batch_norm=freeze_batch_norm, prefix=name,
                dtype=dtype, param_dtype=param_dtype, precision=precision)


def att_unet_2d(input_size, filter_num, n_labels, stack_num_down=2, stack_num_up=2, activation="ReLU",
                atten_activation="ReLU", attention="add", output_activation="Softmax", batch_norm=False, pool=True,
                unpool=True, backbone=None, weights="imagenet", freeze_backbone=True, freeze_batch_norm=True,
                name="attunet", *, dtype=None, param_dtype=jnp.float32, precision=None) -> UNet:
  """keras-unet-collection's `att_unet_2d`: `unet_2d`'s arguments plus the attention gate's.

  `attention` is the gate's type here, as in keras-unet-collection: "add" or
  "multiply" (or "additive" / "multiplicative"); `atten_activation` its activation; `dtype`,
  `param_dtype` and `precision` as in `unet_2d`.

  Example:
    >>> model = att_unet_2d((64, 64, 3), [16, 32, 64], n_labels=2, attention="multiply")
    >>> model.attention, model.attention_type
    (True, 'multiply')
  """
  return UNet.from_arguments(input_size, 2, filter_num, n_labels=n_labels, stack_num_down=stack_num_down,
                stack_num_up=stack_num_up, activation=activation, output_activation=output_activation,
                batch_norm=batch_norm, pool=pool, unpool=unpool, attention=True, attention_type=attention,
                attention_activation=atten_activation, backbone=backbone, weights=weights,
                freeze_backbone=freeze_backbone, freeze_batch_norm=freeze_batch_norm, prefix=name, dtype=dtype,
                param_dtype=param_dtype, precision=precision)


def unet_3d(input_size, filter_num, n_labels, stack_num_down=2, stack_num_up=2, activation="ReLU",
            output_activation="Softmax", batch_norm=False, pool=True, unpool=True, name="unet", *, dtype=None,
            param_dtype=jnp.float32, precision=None) -> UNet:
  """`unet_2d` for volumes: `input_size` is (depth, height, width, channels), with 3-D convolutions and pooling.

  No backbone (they are 2-D). `unpool`: True or "nearest" (Keras's
  `UpSampling3D`, which repeats voxels) or False (`Conv3DTranspose`).

  Example:
    >>> model = unet_3d((16, 32, 32, 1), [8, 16, 32], n_labels=2)
    >>> import jax, jax.numpy as jnp
    >>> x = jnp.zeros((1, 16, 32, 32, 1))
    >>> model.apply(model.init(jax.random.key(0), x), x).shape
    (1, 16, 32, 32, 2)
  """
  return UNet.from_arguments(input_size, 3, filter_num, n_labels=n_labels, stack_num_down=stack_num_down,
                stack_num_up=stack_num_up, activation=activation, output_activation=output_activation,
                batch_norm=batch_norm, pool=pool, unpool=unpool, attention=False, backbone=None, weights=None,
                prefix=name, dtype=dtype, param_dtype=param_dtype, precision=precision)


def att_unet_3d(input_size, filter_num, n_labels, stack_num_down=2, stack_num_up=2, activation="ReLU",
                atten_activation="ReLU", attention="add", output_activation="Softmax", batch_norm=False, pool=True,
                unpool=True, name="attunet", *, dtype=None, param_dtype=jnp.float32, precision=None) -> UNet:
  """`att_unet_2d` for volumes, as `unet_3d` is `unet_2d`'s.

  Example:
    >>> att_unet_3d((16, 16, 16, 1), [4, 8], n_labels=2).attention
    True
  """
  return UNet.from_arguments(input_size, 3, filter_num, n_labels=n_labels, stack_num_down=stack_num_down,
                stack_num_up=stack_num_up, activation=activation, output_activation=output_activation,
                batch_norm=batch_norm, pool=pool, unpool=unpool, attention=True, attention_type=attention,
                attention_activation=atten_activation, backbone=None, weights=None, prefix=name, dtype=dtype,
                param_dtype=param_dtype, precision=precision)


def __getattr__(name: str) -> Any:
  if name == "init_unet":  # moved beside the weight files it loads
    from jaxcomponents.weights.imagenet import init_unet  # pylint: disable=import-outside-toplevel

    warn("jaxcomponents.models.unet.init_unet is a deprecated alias of jaxcomponents.weights.init_unet; the old "
         "name goes in the next release.")
    return init_unet
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
