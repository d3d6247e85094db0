"""The Dense component: dense -> [batch norm] -> activation -> [dropout]."""

from __future__ import annotations

import flax.linen as nn
import jax

from jaxcomponents import activations
from jaxcomponents.deprecation import keyword_only, renamed_to
from jaxcomponents.errors import check_positive_int, check_rate
from jaxcomponents.layers.dropout import Dropout
from jaxcomponents.layers.init_fields import KernelInitFields
from jaxcomponents.layers.normalization import BatchNorm
from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.layers.weight_regularizers import KernelRegularizerFields


class Dense(PrecisionFields, KernelInitFields, KernelRegularizerFields):
  """A fully connected layer as Keras's `Dense`, with optional batch norm and dropout.

  Weighted submodules carry Keras's default layer names, `dense` and
  `batch_normalization`, so `jaxcomponents.weights.load_keras` maps a
  `keras.Sequential([Dense, BatchNormalization, Activation, Dropout])` onto it.

  Attributes:
    features: output features (Keras's `units`).
    activation: a Keras activation name, a callable or None (linear).
    use_bias: add a bias to the dense output.
    batch_norm: batch-normalize the dense output (Keras defaults: eps 1e-3, momentum 0.99).
    dropout: dropout rate in [0, 1), active only with `train=True` (rng stream `'dropout'`).
    units: deprecated alias of `features` (removed in the next release).
    kernel_init, bias_init: keyword-only, Keras's `kernel_initializer` and `bias_initializer`: a Keras name,
      config or initializer object, or a Flax initializer (Keras's defaults: `glorot_uniform`, `zeros`); see
      `jaxcomponents.layers.init_fields`.
    kernel_regularizer, bias_regularizer: keyword-only, Keras's: a penalty of the weight added to the loss (a Keras
      name, config or regularizer object, or a callable); see `jaxcomponents.layers.weight_regularizers`.
    dtype, param_dtype, precision: keyword-only, as in `flax.linen.Dense`: computation dtype (None:
      inferred), parameter dtype (float32), precision of the product (None: JAX's default); see
      `jaxcomponents.layers.precision`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = Dense(4, activation="relu")
    >>> variables = layer.init(jax.random.key(0), jnp.ones((2, 3)))
    >>> layer.apply(variables, jnp.ones((2, 3))).shape
    (2, 4)
  """

  features: int | None = None
  activation: str | activations.Activation | None = None
  use_bias: bool = True
  batch_norm: bool = False
  dropout: float = 0.0
  units: int | None = renamed_to("features")

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    check_positive_int("features", self.features)
    check_rate("dropout", self.dropout)
    act = activations.get(self.activation)
    if x.ndim < 2:
      raise ValueError(
          f"x has shape {x.shape} (rank {x.ndim}); expected rank >= 2: (batch, ..., features)."
      )
    y = nn.Dense(self.features, use_bias=self.use_bias, kernel_init=self.initializer("kernel_init"),
                 bias_init=self.initializer("bias_init"), name="dense", **self.precision_options)(x)
    self.sow_weight_penalties("dense")
    if self.batch_norm:
      y = BatchNorm(use_running_average=not train, name="batch_normalization", **self.dtype_options)(y)
    y = act(y)
    if self.dropout:
      y = Dropout(self.dropout)(y, train=train)
    return y
