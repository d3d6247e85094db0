"""keras-unet-collection's building blocks, with its layer names: convolution stacks, encode and decode
layers, the attention gate, the output head, and its activations (GELU, Snake, PReLU ... by Keras 2 layer name).

Every block works in any number of spatial dimensions, read from its input's
rank: `(batch, height, width, channels)` gives keras-unet-collection's 2-D
layers (`Conv2D`, `MaxPooling2D`, `UpSampling2D` ...), `(batch, depth,
height, width, channels)` their 3-D twins (`Conv3D`, `MaxPooling3D`,
`UpSampling3D` ...), one definition for both. Keras's `UpSampling3D` only
repeats voxels, so in 3-D `unpool=True` means "nearest" and "bilinear" is
refused.

Every block takes the keras-unet-collection `name` as its Flax module name and
names its weighted layers as keras-unet-collection does (`{name}_0`,
`{name}_0_bn`, `{name}_0_activation`, `{name}_theta_x`, ...), so
`jaxcomponents.weights.load_keras` maps a keras-unet-collection `.h5` file by
name. The activations are Keras 2's layers with their defaults: `LeakyReLU`
slope 0.3, `ELU` alpha 1, `PReLU` with one slope per input entry (shape
`input.shape[1:]`, so its parameters depend on the image size), `Softmax` over
channels, and keras-unet-collection's `GELU` (tanh approximation) and `Snake`
(`x + sin(beta x)^2 / beta`, beta 0.5 stored as the non-trained weight
`beta_factor`).

Every block takes the precision fields `dtype` (computation dtype; None:
inferred from the inputs and parameters), `param_dtype` (float32) and
`precision` (of the convolutions; None: JAX's default) and passes them to its
layers; PReLU and Snake take `dtype` and `param_dtype`. See
`jaxcomponents.layers.precision`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcomponents import activations
from jaxcomponents.deprecation import keyword_only
from jaxcomponents.errors import check_choice, check_positive_int
from jaxcomponents.layers.conv_core import Conv, ConvTranspose, glorot_uniform
from jaxcomponents.layers.normalization import Keras2BatchNorm
from jaxcomponents.layers.pooling import avg_pool, max_pool
from jaxcomponents.layers.precision import DtypeFields, PrecisionFields
from jaxcomponents.registry import Registry

ACTIVATIONS = ("ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "Snake", "Softmax")
OUTPUT_ACTIVATIONS = (*ACTIVATIONS, "Sigmoid", None)
ATTENTIONS = ("add", "multiply")
ATTENTION_ALIASES = {"additive": "add", "multiplicative": "multiply"}
POOLS = (True, False, "max", "ave")
UNPOOLS = (True, False, "bilinear", "nearest")


class PReLU(DtypeFields):
  """Keras's `PReLU()`: `x` where positive, `alpha * x` elsewhere; `alpha` has shape `x.shape[1:]`, zeros at init.

  Attributes:
    shared_axes: Keras's `shared_axes`: axes (1 = the first after the batch) where `alpha` has size 1.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = PReLU()
    >>> variables = layer.init(jax.random.key(0), jnp.ones((1, 4, 4, 2)))
    >>> variables["params"]["alpha"].shape
    (4, 4, 2)
  """

  shared_axes: tuple[int, ...] | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    shape = list(x.shape[1:])
    for axis in self.shared_axes or ():
      if not 1 <= axis <= len(shape):
        raise ValueError(f"shared_axes={self.shared_axes!r} is not allowed for inputs of shape {x.shape}; "
                         f"expected axes in [1, {len(shape)}].")
      shape[axis - 1] = 1
    alpha = self.param("alpha", nn.initializers.zeros, tuple(shape), self.param_dtype)
    x, alpha = nn.dtypes.promote_dtype(x, alpha, dtype=self.dtype)
    return jax.nn.relu(x) - alpha * jax.nn.relu(-x)


class Snake(DtypeFields):
  """keras-unet-collection's `Snake`: `x + sin(beta x)^2 / beta`, beta stored as `beta_factor`.

  As in keras-unet-collection (`trainable=False`), `beta_factor` is a weight
  that loads from files but receives no gradient unless `trainable`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = Snake()
    >>> y, = layer.apply(layer.init(jax.random.key(0), jnp.zeros(1)), jnp.zeros(1))
    >>> float(y)
    0.0
  """

  beta: float = 0.5
  trainable: bool = False

  def keras3_constants(self) -> dict[str, float]:
    """What Keras 3 computes with in place of `beta_factor`, a weight it does not save unless trainable."""
    return {} if self.trainable else {"beta_factor": self.beta}

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    beta = self.param("beta_factor", nn.initializers.constant(self.beta), (), self.param_dtype)
    if not self.trainable:
      beta = jax.lax.stop_gradient(beta)
    x, beta = nn.dtypes.promote_dtype(x, beta, dtype=self.dtype)
    return x + (1.0 / beta) * jnp.square(jnp.sin(beta * x))


def check_activation(param: str, name, allowed=ACTIVATIONS):
  """A keras-unet-collection activation name (Keras 2 layer class names), else `ValueError`."""
  if not isinstance(name, (str, type(None))) or name not in allowed:
    return check_choice(param, name, allowed)
  return name


# keras-unet-collection's spellings of the activations without weights: Keras 2 layer classes with their layer
# defaults, where the mathematics can differ from Keras's function of the same lower-case name ("GELU" is
# keras-unet-collection's tanh approximation, "LeakyReLU" the layer's slope 0.3). Only the U-Net resolves them;
# `activations.get("GELU")` is an error.
KERAS_UNET_COLLECTION_ACTIVATIONS = Registry("keras-unet-collection activation", param="activation", values=True)
KERAS_UNET_COLLECTION_ACTIVATIONS.register("ReLU", jax.nn.relu)
KERAS_UNET_COLLECTION_ACTIVATIONS.register("LeakyReLU", activations.leaky_relu_layer)
KERAS_UNET_COLLECTION_ACTIVATIONS.register("ELU", jax.nn.elu)
KERAS_UNET_COLLECTION_ACTIVATIONS.register("GELU", activations.gelu_tanh)
KERAS_UNET_COLLECTION_ACTIVATIONS.register("Softmax", activations.softmax)
KERAS_UNET_COLLECTION_ACTIVATIONS.register("Sigmoid", jax.nn.sigmoid)


def activation_layer(name: str | None, layer_name: str, **dtypes) -> Callable[[jax.Array], jax.Array]:
  """The activation `name` as a callable; PReLU and Snake become layers called `layer_name`, with `dtypes`.

  Example:
    >>> import jax.numpy as jnp
    >>> round(float(activation_layer("GELU", "act")(jnp.array(1.0))), 4)  # the tanh approximation
    0.8412
  """
  if name is None:
    return lambda x: x
  if name == "PReLU":
    return PReLU(name=layer_name, **dtypes)
  if name == "Snake":
    return Snake(name=layer_name, **dtypes)
  return KERAS_UNET_COLLECTION_ACTIVATIONS.get(name)


def _flag_or_name(param: str, value, allowed) -> bool | str:
  """A kuc switch: True, False (NumPy's too) or one of its names; kuc tests `is True`, so 0 and 1 are refused."""
  value = bool(value) if isinstance(value, np.bool_) else value
  if isinstance(value, bool) or (isinstance(value, str) and value in allowed):
    return value
  names = ", ".join(repr(a) for a in (True, False, *(a for a in allowed if isinstance(a, str))))
  raise ValueError(f"{param}={value!r} is not allowed; expected one of {names}.")


def check_pool(pool) -> str:
  """keras-unet-collection's `pool` values -> "max", "ave" or "stride_conv"."""
  pool = _flag_or_name("pool", pool, POOLS)
  return {True: "max", False: "stride_conv"}[pool] if isinstance(pool, bool) else pool


def check_unpool(unpool, rank: int = 2) -> str:
  """keras-unet-collection's `unpool` values -> "bilinear", "nearest" or "trans_conv".

  In 3-D (`rank=3`) True is "nearest", Keras's `UpSampling3D`, and "bilinear" is refused.
  """
  unpool = _flag_or_name("unpool", unpool, UNPOOLS if rank == 2 else ("nearest",))
  if isinstance(unpool, bool):
    return "trans_conv" if not unpool else ("bilinear" if rank == 2 else "nearest")
  return unpool


def check_attention(attention: str) -> str:
  """"add"/"multiply" (keras-unet-collection) or "additive"/"multiplicative" (the product's names)."""
  allowed = (*ATTENTIONS, *ATTENTION_ALIASES)
  if not isinstance(attention, str) or attention not in allowed:
    check_choice("attention", attention, allowed)
  return ATTENTION_ALIASES.get(attention, attention)


def _prefix(module: nn.Module, default: str) -> str:
  return module.name if isinstance(module.name, str) else default


def spatial_rank(x: jax.Array, param: str = "x") -> int:
  """The number of spatial dimensions of a channels-last batch `x` (2 or 3), else `ValueError`."""
  if x.ndim not in (4, 5):
    raise ValueError(f"{param} has shape {x.shape} (rank {x.ndim}); expected rank 4 (batch, height, width, "
                     "channels) or rank 5 (batch, depth, height, width, channels).")
  return x.ndim - 2


def conv(block: PrecisionFields, features: int, kernel: int, name: str, *, rank: int = 2, strides: int = 1,
         padding: str = "SAME", use_bias: bool = True, dilation: int = 1) -> nn.Conv:
  """Keras's `Conv2D`/`Conv3D` (`rank`): glorot-uniform kernel, zero bias, with `block`'s precision fields."""
  return Conv(features, (kernel,) * rank, strides=(strides,) * rank, padding=padding, use_bias=use_bias,
              kernel_dilation=(dilation,) * rank, kernel_init=glorot_uniform, name=name, **block.precision_options)


def batch_norm(block: DtypeFields, name: str, train: bool) -> Keras2BatchNorm:
  """Keras 2's `BatchNormalization` over the channels (defaults), kuc's engine, with `block`'s dtype fields."""
  return Keras2BatchNorm(use_running_average=not train, name=name, **block.dtype_options)


class ConvStack(PrecisionFields):
  """keras-unet-collection's `CONV_stack`: `stack_num` x (Conv 3x3 same -> [BN] -> activation).

  The convolutions have a bias only without batch norm. Layers: `{name}_{i}`,
  `{name}_{i}_bn`, `{name}_{i}_activation`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> stack = ConvStack(8, stack_num=2, batch_norm=True)
    >>> variables = stack.init(jax.random.key(0), jnp.ones((1, 16, 16, 3)))
    >>> sorted(variables["params"])
    ['conv_stack_0', 'conv_stack_0_bn', 'conv_stack_1', 'conv_stack_1_bn']
  """

  channel: int
  kernel_size: int = 3
  stack_num: int = 2
  dilation_rate: int = 1
  activation: str = "ReLU"
  batch_norm: bool = False

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    check_positive_int("channel", self.channel)
    check_positive_int("stack_num", self.stack_num)
    check_activation("activation", self.activation)
    prefix, rank = _prefix(self, "conv_stack"), spatial_rank(x)
    for i in range(self.stack_num):
      x = conv(self, self.channel, self.kernel_size, f"{prefix}_{i}", rank=rank, use_bias=not self.batch_norm,
               dilation=self.dilation_rate)(x)
      if self.batch_norm:
        x = batch_norm(self, f"{prefix}_{i}_bn", train)(x)
      x = activation_layer(self.activation, f"{prefix}_{i}_activation", **self.dtype_options)(x)
    return x


class EncodeLayer(PrecisionFields):
  """keras-unet-collection's `encode_layer`: divides the size by `pool_size` by pooling or a strided conv.

  `pool`: True or "max" (MaxPooling), "ave" (AveragePooling), False
  (Conv `kernel_size` ("auto": `pool_size`) stride `pool_size` valid, bias
  only without BN -> [BN] -> activation, None: linear). Layers: `{name}_stride_conv`,
  `{name}_bn`, `{name}_activation`.
  """

  channel: int
  pool: bool | str = True
  activation: str = "ReLU"
  batch_norm: bool = False
  pool_size: int = 2
  kernel_size: int | str = "auto"

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    pool, rank = check_pool(self.pool), spatial_rank(x)
    check_positive_int("pool_size", self.pool_size)
    if pool == "max":
      return max_pool(x, self.pool_size)
    if pool == "ave":
      return avg_pool(x, self.pool_size)
    prefix = _prefix(self, "encode")
    kernel = self.pool_size if self.kernel_size == "auto" else check_positive_int("kernel_size", self.kernel_size)
    x = conv(self, self.channel, kernel, f"{prefix}_stride_conv", rank=rank, strides=self.pool_size,
             padding="VALID", use_bias=not self.batch_norm)(x)
    if self.batch_norm:
      x = batch_norm(self, f"{prefix}_bn", train)(x)
    return activation_layer(check_activation("activation", self.activation, (*ACTIVATIONS, None)),
                            f"{prefix}_activation", **self.dtype_options)(x)


def upsample(x: jax.Array, method: str, size: int = 2) -> jax.Array:
  """Keras's `UpSampling2D/3D(size)`: nearest repeats pixels; bilinear (2-D) is `tf.image.resize` (half-pixel
  centres)."""
  if method == "nearest":
    for axis in range(1, x.ndim - 1):
      x = jnp.repeat(x, size, axis=axis)
    return x
  shape = (x.shape[0], *(n * size for n in x.shape[1:-1]), x.shape[-1])
  return jax.image.resize(x, shape, "bilinear", antialias=False)


class DecodeLayer(PrecisionFields):
  """keras-unet-collection's `decode_layer`: multiplies the size by `pool_size`, upsampling or transposed conv.

  `unpool`: True or "bilinear", "nearest" (UpSampling), False
  (ConvTranspose `kernel_size` ("auto": `pool_size`) stride `pool_size` same,
  always with a bias -> [BN] -> activation, None: linear). Layers: `{name}_trans_conv`,
  `{name}_bn`, `{name}_activation`.
  """

  channel: int
  unpool: bool | str = True
  kernel_size: int | str = 3
  activation: str = "ReLU"
  batch_norm: bool = False
  pool_size: int = 2

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    rank = spatial_rank(x)
    unpool = check_unpool(self.unpool, rank)
    check_positive_int("pool_size", self.pool_size)
    if unpool != "trans_conv":
      return upsample(x, unpool, self.pool_size)
    prefix = _prefix(self, "decode")
    kernel = self.pool_size if self.kernel_size == "auto" else check_positive_int("kernel_size", self.kernel_size)
    x = ConvTranspose(self.channel, (kernel,) * rank, (self.pool_size,) * rank, padding="SAME",
                      name=f"{prefix}_trans_conv", **self.precision_options)(x)
    if self.batch_norm:
      x = batch_norm(self, f"{prefix}_bn", train)(x)
    return activation_layer(check_activation("activation", self.activation, (*ACTIVATIONS, None)),
                            f"{prefix}_activation", **self.dtype_options)(x)


def resize_to(x: jax.Array, size: Sequence[int]) -> jax.Array:
  """`x` resized (bilinear) to the spatial `size`; unchanged where it has that size already."""
  if tuple(x.shape[1:-1]) == tuple(size):
    return x
  return jax.image.resize(x, (x.shape[0], *size, x.shape[-1]), "bilinear", antialias=False)


def unet_left(block: PrecisionFields, x: jax.Array, channel: int, name: str, *, train: bool, stack_num: int = 2,
              activation: str = "ReLU", pool: bool | str = True, batch_norm: bool = False,
              kernel_size: int = 3) -> jax.Array:
  """keras-unet-collection's `UNET_left`, called inside `block`'s compact call: encode layer, then a conv stack.

  Layers: `{name}_encode_*`, `{name}_conv_*`.
  """
  x = EncodeLayer(channel, pool, activation, batch_norm, name=f"{name}_encode", **block.precision_options)(
      x, train=train)
  return ConvStack(channel, kernel_size, stack_num, activation=activation, batch_norm=batch_norm,
                   name=f"{name}_conv", **block.precision_options)(x, train=train)


def unet_right(block: PrecisionFields, x: jax.Array, skips: Sequence[jax.Array], channel: int, name: str, *,
               train: bool, stack_num: int = 2, activation: str = "ReLU", unpool: bool | str = True,
               batch_norm: bool = False, concat: bool = True, kernel_size: int = 3) -> jax.Array:
  """keras-unet-collection's `UNET_right`, called inside `block`'s compact call: decode layer, a conv stack of
  one, concatenation with `skips` (decoded first; none if not `concat`), a conv stack of `stack_num`.

  A decoded map whose size differs from the skips' (a backbone's uneven taps) is resized to theirs first.
  Layers: `{name}_decode_*`, `{name}_conv_before_concat_*`, `{name}_conv_after_concat_*`.
  """
  options = block.precision_options
  x = DecodeLayer(channel, unpool, activation=activation, batch_norm=batch_norm, name=f"{name}_decode", **options)(
      x, train=train)
  if skips:
    x = resize_to(x, skips[0].shape[1:-1])
  x = ConvStack(channel, kernel_size, 1, activation=activation, batch_norm=batch_norm,
                name=f"{name}_conv_before_concat", **options)(x, train=train)
  if concat and skips:
    x = jnp.concatenate([x, *skips], axis=-1)
  return ConvStack(channel, kernel_size, stack_num, activation=activation, batch_norm=batch_norm,
                   name=f"{name}_conv_after_concat", **options)(x, train=train)


class AttentionGate(PrecisionFields):
  """keras-unet-collection's `attention_gate` (Oktay et al. 2018), no striding inside the gate.

  `theta = Conv1x1(channel)(x)`, `phi = Conv1x1(channel)(g)`, both with bias;
  `f = activation(theta + phi)` (or `theta * phi` with `attention="multiply"`);
  `coef = sigmoid(Conv1x1(1)(f))`; returns `x * coef`. `x` is the skip
  connection, `g` the gating (decoded) tensor, of the same spatial size.
  Layers: `{name}_theta_x`, `{name}_phi_g`, `{name}_activation`, `{name}_psi_f`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> gate = AttentionGate(4, attention="multiply")
    >>> x, g = jnp.ones((1, 8, 8, 6)), jnp.ones((1, 8, 8, 5))
    >>> gate.apply(gate.init(jax.random.key(0), x, g), x, g).shape
    (1, 8, 8, 6)
  """

  channel: int
  activation: str = "ReLU"
  attention: str = "add"

  @nn.compact
  def __call__(self, x: jax.Array, g: jax.Array) -> jax.Array:
    check_positive_int("channel", self.channel)
    attention = check_attention(self.attention)
    activation = check_activation("atten_activation", self.activation)
    if x.shape[:-1] != g.shape[:-1]:
      raise ValueError(f"x has shape {x.shape} and g {g.shape}; the attention gate needs the same batch and "
                       "spatial sizes.")
    prefix, rank = _prefix(self, "att"), spatial_rank(x)
    theta = conv(self, self.channel, 1, f"{prefix}_theta_x", rank=rank)(x)
    phi = conv(self, self.channel, 1, f"{prefix}_phi_g", rank=rank)(g)
    query = theta + phi if attention == "add" else theta * phi
    f = activation_layer(activation, f"{prefix}_activation", **self.dtype_options)(query)
    coef = jax.nn.sigmoid(conv(self, 1, 1, f"{prefix}_psi_f", rank=rank)(f))
    x, coef = nn.dtypes.promote_dtype(x, coef, dtype=self.dtype)
    return x * coef


class ConvOutput(PrecisionFields):
  """keras-unet-collection's `CONV_output`: Conv 1x1 (`n_labels`, bias) named `{name}`, then the activation.

  `activation`: one of `OUTPUT_ACTIVATIONS`; "Sigmoid" is the sigmoid, None linear.
  """

  n_labels: int
  kernel_size: int = 1
  activation: str | None = "Softmax"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    check_positive_int("n_labels", self.n_labels)
    activation = check_activation("output_activation", self.activation, OUTPUT_ACTIVATIONS)
    prefix = _prefix(self, "conv_output")
    x = conv(self, self.n_labels, self.kernel_size, prefix, rank=spatial_rank(x))(x)
    return activation_layer(activation, f"{prefix}_activation", **self.dtype_options)(x)
