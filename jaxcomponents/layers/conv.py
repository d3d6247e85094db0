"""The Convolution component: conv -> [batch norm] -> activation -> [dropout] -> [pool]."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxcomponents import activations
from jaxcomponents.deprecation import keyword_only, renamed_to
from jaxcomponents.errors import as_tuple, changed_fields, check_choice, check_positive_int, check_rate
from jaxcomponents.layers.conv_core import Conv, ConvReLU, ConvTranspose, DepthwiseConv, SeparableConv
from jaxcomponents.layers.dropout import Dropout
from jaxcomponents.layers.init_fields import KernelInitFields
from jaxcomponents.layers.normalization import BatchNorm
from jaxcomponents.layers.pooling import POOLS, pool, pool_padding
from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.layers.weight_regularizers import KernelRegularizerFields

KINDS = ("conv", "transpose", "separable", "depthwise")
PADDINGS = ("SAME", "VALID", "CAUSAL")
_KERAS_NAMES = {"conv": "conv{}d", "transpose": "conv{}d_transpose", "separable": "separable_conv{}d",
                "depthwise": "depthwise_conv{}d"}
_MODULE_KERAS_NAMES = {Conv: _KERAS_NAMES["conv"], ConvReLU: _KERAS_NAMES["conv"],
                       ConvTranspose: _KERAS_NAMES["transpose"], SeparableConv: _KERAS_NAMES["separable"],
                       DepthwiseConv: _KERAS_NAMES["depthwise"]}


class Convolution(PrecisionFields, KernelInitFields, KernelRegularizerFields):
  """A convolution as Keras computes it, for every kind and 1-3 spatial dimensions.

  Keras counterparts: Conv1D/2D/3D (`kind="conv"`), Conv1D/2D/3DTranspose
  (`"transpose"`), SeparableConv1D/2D (`"separable"`), DepthwiseConv1D/2D
  (`"depthwise"`); separable and depthwise also work in 3-D. The weighted
  submodules carry Keras's default names (`conv2d`, `conv2d_transpose`,
  `separable_conv1d`, `depthwise_conv2d`, `batch_normalization`) and layouts,
  so `jaxcomponents.weights.load_keras` maps the Keras layers onto them.

  Attributes:
    features: output channels; for `depthwise` None means in_channels x depth_multiplier.
    kernel_size: an int or one int per spatial axis.
    strides: an int or one per axis.
    padding: "SAME", "VALID" (either case) or "CAUSAL" (1-D, not transposed).
    kind: "conv", "transpose", "separable" or "depthwise".
    dims: number of spatial axes, 1 to 3; inputs are (batch, *spatial, channels).
    kernel_dilation: an int or one per axis (Keras's `dilation_rate`); like Keras, `conv` and
      `transpose` take strides > 1 or dilation > 1, not both (`separable` and `depthwise` take both).
    feature_group_count: grouped convolution (Keras's `groups`; `kind="conv"` only).
    depth_multiplier: depthwise filters per input channel (`separable`, `depthwise`).
    output_padding: extra output length per axis for `transpose`, each below its stride.
    activation: a Keras activation name, a callable or None.
    use_bias: add a bias.
    batch_norm: batch-normalize with Keras's defaults (eps 1e-3, momentum 0.99).
    dropout: dropout rate in [0, 1), only with `train=True` (rng stream 'dropout').
    pool: None, "max" or "avg" pooling after the rest (average excludes padding).
    pool_size, pool_strides, pool_padding: the pooling window, step (None: the window,
      as in Keras) and padding ("SAME" or "VALID", either case).
    conv: a convolution module of one's own (or a configured `Conv`, `ConvTranspose`,
      `DepthwiseConv`, `SeparableConv`) used in place of the one `kind` ... `use_bias`
      would build; the component then adds batch norm, activation, dropout and pooling
      around it. Those convolution fields must stay at their defaults (`features` None).
      The four built-in modules take Keras's layer names (`conv2d`, ...); another module
      keeps the name `conv`.
    kernel_init, bias_init: keyword-only, Keras's `kernel_initializer` (`depthwise_initializer` and
      `pointwise_initializer` for `separable`, `depthwise_initializer` for `depthwise`) and `bias_initializer`: a
      Keras name, config or initializer object, or a Flax initializer (Keras's defaults: `glorot_uniform`,
      `zeros`); see `jaxcomponents.layers.init_fields`.
    kernel_regularizer, bias_regularizer: keyword-only, Keras's (`depthwise_regularizer` and
      `pointwise_regularizer` for `separable`, ...): a penalty of the weights added to the loss, with a `conv`
      module too (its `kernel`/`bias` weights); see `jaxcomponents.layers.weight_regularizers`.
    dilation, groups: deprecated aliases of `kernel_dilation` and `feature_group_count` (removed in
      the next release).
    dtype, param_dtype, precision: keyword-only, as in `flax.linen.Conv`: computation dtype (None:
      inferred), parameter dtype (float32), precision of the convolution (None: JAX's default); see
      `jaxcomponents.layers.precision`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = Convolution(8, 3, activation="relu", pool="max")
    >>> x = jnp.ones((2, 28, 28, 1))
    >>> variables = layer.init(jax.random.key(0), x)
    >>> layer.apply(variables, x).shape
    (2, 14, 14, 8)
    >>> from jaxcomponents.layers import Conv
    >>> layer = Convolution(None, None, conv=Conv(8, (5, 5), padding="VALID"), batch_norm=True, pool="avg")
    >>> layer.apply(layer.init(jax.random.key(0), x), x).shape
    (2, 12, 12, 8)
  """

  features: int | None
  kernel_size: int | Sequence[int] | None
  strides: int | Sequence[int] = 1
  padding: str = "SAME"
  kind: str = "conv"
  dims: int = 2
  kernel_dilation: int | Sequence[int] = 1
  feature_group_count: int = 1
  depth_multiplier: int = 1
  output_padding: int | Sequence[int] | None = None
  activation: str | activations.Activation | None = None
  use_bias: bool = True
  batch_norm: bool = False
  dropout: float = 0.0
  pool: str | None = None
  pool_size: int | Sequence[int] = 2
  pool_strides: int | Sequence[int] | None = None
  pool_padding: str = "VALID"
  conv: nn.Module | None = None
  dilation: int | Sequence[int] | None = renamed_to("kernel_dilation")
  groups: int | None = renamed_to("feature_group_count")

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    check_rate("dropout", self.dropout)
    act = activations.get(self.activation)
    check_choice("pool", self.pool, (None, *POOLS))
    if self.conv is None:
      y, act = self._built_conv(x, act)
      self.sow_weight_penalties(_KERAS_NAMES[self.kind].format(self.dims))
    else:
      self._check_conv_module()
      keras_name = _MODULE_KERAS_NAMES.get(type(self.conv))
      conv = self.conv if keras_name is None else self.conv.clone(parent=self, name=keras_name.format(x.ndim - 2))
      y = conv(x)
      self.sow_weight_penalties(conv.name)
    dims = x.ndim - 2
    if self.batch_norm:
      y = BatchNorm(use_running_average=not train, name="batch_normalization", **self.dtype_options)(y)
    y = act(y)
    if self.dropout:
      y = Dropout(self.dropout)(y, train=train)
    if self.pool is not None:
      size = as_tuple("pool_size", self.pool_size, dims)
      pool_strides = size if self.pool_strides is None else as_tuple("pool_strides", self.pool_strides, dims)
      y = pool(y, self.pool, size, pool_strides, pool_padding(self.pool_padding, "pool_padding"))
      _check_not_empty(y, x, f"the {self.pool} pooling output", "convolution, pool_size and pool_padding")
    return y

  def _built_conv(self, x: jax.Array, act):
    """The convolution `kind` ... `use_bias` describe, applied to `x`, and the activation still to apply (a ReLU
    the convolution computes itself is not applied twice)."""
    kind = check_choice("kind", self.kind, KINDS)
    dims = check_choice("dims", self.dims, (1, 2, 3))
    padding = self._padding(kind, dims)
    kernel_size = as_tuple("kernel_size", self.kernel_size, dims)
    strides = as_tuple("strides", self.strides, dims)
    dilation = as_tuple("kernel_dilation", self.kernel_dilation, dims)
    if kind in ("conv", "transpose") and max(strides) > 1 and max(dilation) > 1:
      raise ValueError(f"strides={self.strides!r} with kernel_dilation={self.kernel_dilation!r} is not allowed "
                       f"with kind={kind!r}; like Keras, it takes strides > 1 or dilation > 1, not both.")
    if x.ndim != dims + 2:
      raise ValueError(f"x has shape {x.shape} (rank {x.ndim}); dims={dims} expects rank {dims + 2}: "
                       f"(batch, {', '.join(['spatial'] * dims)}, channels).")
    channels = x.shape[-1]
    features = self._features(kind, channels)
    name = _KERAS_NAMES[kind].format(dims)
    options = {**self.precision_options, **self.init_options}
    if kind == "conv":
      groups = check_positive_int("feature_group_count", self.feature_group_count)
      if channels % groups or features % groups:
        raise ValueError(f"feature_group_count={groups} is not allowed; it must divide the input channels "
                         f"({channels}) and features ({features}).")
      if act is jax.nn.relu and groups == 1 and not self.batch_norm:
        # The same parameters and numbers; on the CPU the bias and ReLU can happen inside oneDNN's convolution.
        y = ConvReLU(features, kernel_size, strides, padding, dilation, self.use_bias, name=name, **options)(x)
        act = activations.linear
      else:
        y = Conv(features, kernel_size, strides, padding, kernel_dilation=dilation, feature_group_count=groups,
                 use_bias=self.use_bias, kernel_init=self.initializer("kernel_init"),
                 bias_init=self.initializer("bias_init"), name=name, **self.precision_options)(x)
    elif kind == "transpose":
      output_padding = None
      if self.output_padding is not None:
        output_padding = as_tuple("output_padding", self.output_padding, dims, allow_zero=True)
        if any(p >= s for p, s in zip(output_padding, strides)):
          raise ValueError(f"output_padding={self.output_padding!r} is not allowed; each value must be smaller "
                           f"than its stride {strides}.")
      relu = act is jax.nn.relu and not self.batch_norm  # the same numbers; on the CPU inside oneDNN's call
      y = ConvTranspose(features, kernel_size, strides, padding, dilation, output_padding, self.use_bias, relu,
                        name=name, **options)(x)
      act = activations.linear if relu else act
    elif kind == "depthwise":
      y = DepthwiseConv(kernel_size, strides, padding, dilation, self.depth_multiplier, self.use_bias, name=name,
                        **options)(x)
    else:
      y = SeparableConv(features, kernel_size, strides, padding, dilation, self.depth_multiplier, self.use_bias,
                        name=name, **options)(x)
    _check_not_empty(y, x, f"the {name} output", "kernel_size, kernel_dilation, strides and padding")
    return y, act

  def _check_conv_module(self) -> None:
    """With a convolution module, the fields that would build one must not be set (nothing silently ignored)."""
    changed = changed_fields(self, ("features", "kernel_size", "strides", "padding", "kind", "dims",
                                    "kernel_dilation", "feature_group_count", "depth_multiplier", "output_padding",
                                    "use_bias", "kernel_init", "bias_init"))
    if changed:
      raise ValueError(f"{', '.join(changed)} is not allowed with conv={type(self.conv).__name__}(...); configure "
                       "the convolution module itself (and pass features=None, kernel_size=None).")

  def _padding(self, kind: str, dims: int) -> str:
    """The padding name in upper case, if this kind and dims take it."""
    allowed = PADDINGS if dims == 1 and kind != "transpose" else PADDINGS[:2]
    if isinstance(self.padding, str) and self.padding.upper() in allowed:
      return self.padding.upper()
    causal = "" if allowed == PADDINGS else "; 'CAUSAL' needs dims=1 and a kind other than 'transpose'"
    raise ValueError(f"padding={self.padding!r} is not allowed with kind={kind!r}, dims={dims}; expected one of "
                     f"{', '.join(map(repr, allowed))} (any case){causal}.")

  def _features(self, kind: str, channels: int) -> int:
    """Output channels, checking the arguments that only some kinds take."""
    if kind != "conv" and self.feature_group_count != 1:
      raise ValueError(f"feature_group_count={self.feature_group_count} is not allowed with kind={kind!r}; only "
                       "kind='conv' is grouped.")
    if kind != "transpose" and self.output_padding is not None:
      raise ValueError(f"output_padding={self.output_padding!r} is not allowed with kind={kind!r}; "
                       "only kind='transpose' has it.")
    if kind in ("conv", "transpose") and self.depth_multiplier != 1:
      raise ValueError(f"depth_multiplier={self.depth_multiplier} is not allowed with kind={kind!r}; "
                       "only 'separable' and 'depthwise' have it.")
    check_positive_int("depth_multiplier", self.depth_multiplier)
    if kind == "depthwise":
      expected = channels * self.depth_multiplier
      if self.features is not None and self.features != expected:
        raise ValueError(f"features={self.features} is not allowed for kind='depthwise' with {channels} input "
                         f"channels and depth_multiplier={self.depth_multiplier}; expected None or {expected}.")
      return expected
    return check_positive_int("features", self.features)


def _check_not_empty(y: jax.Array, x: jax.Array, what: str, causes: str) -> None:
  """Raises on an empty feature map (Keras raises for Conv*, returns one for the other kinds and pooling)."""
  if 0 in y.shape[1:-1]:
    raise ValueError(f"x has shape {x.shape}; {what} would have shape {y.shape}, with no positions: the input is "
                     f"too small for this {causes}.")
