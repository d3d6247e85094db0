"""A backbone with a new classification head: the transfer-learning model."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxcomponents.deprecation import keyword_only
from jaxcomponents.errors import check_choice
from jaxcomponents.layers import Dense
from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.models.imagenet_preprocessing import MODES, preprocess_input


class BackboneClassifier(PrecisionFields):
  """`preprocess_input` -> backbone -> [flatten] -> [Dense(hidden) ...] -> Dense(classes, name="predictions").

  Images come in as RGB values in [0, 255]; the backbone's Keras preprocessing
  runs inside the model, so data pipelines stay uint8.

  Attributes:
    backbone: e.g. `VGG16(include_top=False, trainable=False)`; called as `backbone(x, train=train)`.
    classes: outputs of the new head.
    preprocess: a `preprocessing.MODES` mode or None.
    hidden: the `features` of each ReLU dense layer before the head.
    dropout: dropout after each hidden layer.
    activation: of the head (None: logits).
    dtype, param_dtype, precision: keyword-only, of the head's layers (see
      `jaxcomponents.layers.precision`); the backbone, built by the caller, takes its own.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxcomponents.models import VGG16
    >>> model = BackboneClassifier(VGG16(include_top=False, pooling="avg"), classes=10)
    >>> bf16 = BackboneClassifier(VGG16(include_top=False, pooling="avg", dtype=jnp.bfloat16), classes=10,
    ...                           dtype=jnp.bfloat16)
  """

  backbone: nn.Module
  classes: int
  preprocess: str | None = "caffe"
  hidden: Sequence[int] = ()
  dropout: float = 0.0
  activation: str | None = "softmax"

  @nn.compact
  @keyword_only("train")
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    if self.preprocess is not None:
      x = preprocess_input(x, mode=check_choice("preprocess", self.preprocess, MODES))
    x = self.backbone(x, train=train)
    x = x.reshape((x.shape[0], -1))
    for features in self.hidden:
      x = Dense(features, activation="relu", dropout=self.dropout, **self.precision_options)(x, train=train)
    return Dense(self.classes, activation=self.activation, name="predictions", **self.precision_options)(x, train=train)
