"""What the ImageNet backbones share: input checks, the classifier top, global pooling, freezing, precision."""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents import activations
from jaxcomponents.errors import check_choice, check_positive_int
from jaxcomponents.layers.precision import PrecisionFields

POOLINGS = (None, "avg", "max")


class Backbone(PrecisionFields):
  """The arguments every Keras application takes, and what the backbones do with them.

  Attributes:
    include_top: the model's ImageNet classifier (`predictions`).
    pooling: without the top, None (4D features), "avg" or "max" global pooling.
    classes: classifier outputs.
    classifier_activation: activation of `predictions` (None: logits).
    trainable: False freezes the model: no gradient reaches it and batch norm
      stays in inference mode.
    dtype, param_dtype, precision: keyword-only, passed to every layer: computation dtype (None:
      inferred from the input and parameters; `jnp.bfloat16` with float32 parameters is mixed
      precision), parameter dtype (float32), precision of the convolutions and matrix products
      (None: JAX's default; "highest" for full float32 on GPUs and TPUs). See
      `jaxcomponents.layers.precision`.
  """

  include_top: bool = True
  pooling: str | None = None
  classes: int = 1000
  classifier_activation: str | None = "softmax"
  trainable: bool = True
  min_size: ClassVar[int] = 32

  def check_input(self, x: jax.Array) -> None:
    """Raises like Keras for bad arguments, a non-image input or one below `min_size`."""
    check_backbone_args(self)
    check_image(x, self.min_size, type(self).__name__)

  def outputs(self, x: jax.Array, features: dict[str, jax.Array], return_features: bool) -> Any:
    """`x` (and the feature taps), cut off from gradients when not trainable."""
    return frozen_outputs(self, (x, features) if return_features else x)


def check_backbone_args(model: nn.Module) -> None:
  """Checks the Keras application arguments every backbone has."""
  check_choice("pooling", model.pooling, POOLINGS)
  check_positive_int("classes", model.classes)
  activations.get(model.classifier_activation, "classifier_activation")


def check_image(x: jax.Array, min_size: int, model_name: str) -> None:
  """Raises like Keras for a non-image input or an image smaller than `min_size`."""
  if x.ndim != 4:
    raise ValueError(
        f"x has shape {x.shape} (rank {x.ndim}); {model_name} expects rank 4: (batch, height, width, channels).")
  height, width = x.shape[1:3]
  if height < min_size or width < min_size:
    raise ValueError(
        f"input size {height}x{width} is not allowed for {model_name}; height and width must be at least {min_size}.")


def classifier_top(model: nn.Module, x: jax.Array) -> jax.Array:
  """`include_top`: global average pool then `predictions`; else the optional global pooling."""
  if model.include_top:
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dense(model.classes, name="predictions", **model.precision_options)(x)
    return activations.get(model.classifier_activation, "classifier_activation")(x)
  return global_pool(x, model.pooling)


def global_pool(x: jax.Array, pooling: str | None) -> jax.Array:
  """Keras's GlobalAveragePooling2D / GlobalMaxPooling2D, or `x` unchanged for None."""
  if pooling == "avg":
    return jnp.mean(x, axis=(1, 2))
  if pooling == "max":
    return jnp.max(x, axis=(1, 2))
  return x


def frozen_outputs(model: nn.Module, outputs: Any) -> Any:
  """`trainable=False`: no gradient flows back into the backbone from its outputs."""
  return outputs if model.trainable else jax.lax.stop_gradient(outputs)


def batch_norm_mode(model: nn.Module, train: bool) -> bool:
  """`use_running_average` for the backbone's batch norm: inference mode unless trained and trainable."""
  return not (train and model.trainable)
