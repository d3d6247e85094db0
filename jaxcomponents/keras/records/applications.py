"""Records of the Keras classes that `keras.applications` defines for its own models.

- `CustomScaleLayer` (InceptionResNetV2, keras/src/applications/inception_resnet_v2.py): `inputs[0] + inputs[1] *
  scale`, the residual branch scaled before it is added.
- `LayerScale` (ConvNeXt, keras/src/applications/convnext.py): `x * gamma`, one trained factor per channel; Keras
  leaves its one weight unnamed (`variable`), kept here as `scale`.
- `StochasticDepth` (ConvNeXt with `drop_path_rate > 0`): the identity at inference; with `train=True`, each
  example's residual branch is dropped with probability `drop_path_rate` and the kept ones scaled by
  `1 / (1 - drop_path_rate)` (the mask is drawn from the `'dropout'` rng stream, not Keras's bits).

Every other layer of the 40 applications is a core Keras layer (or a `keras.ops` operation, as MobileNetV3's
`x + 3.0` in its hard sigmoid) recorded elsewhere.

Example:
  >>> import jax.numpy as jnp
  >>> call = RECORDS["CustomScaleLayer"].build({"scale": 0.5}, "block35_1", {})
  >>> call([jnp.ones(2), jnp.ones(2)], train=False)
  Array([1.5, 1.5], dtype=float32)
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents.errors import is_real
from jaxcomponents.keras.record import KerasClass
from jaxcomponents.layers.dropout import Dropout


class LayerScale(nn.Module):
  """ConvNeXt's `LayerScale`: `x * gamma`, one factor per channel (Keras's `gamma`, stored as `scale`).

  Attributes:
    projection_dim: the number of channels (the last axis).
    init_values: the factors' initial value.
    param_dtype: the dtype of the factors.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = LayerScale(3, 0.5)
    >>> layer.apply(layer.init(jax.random.key(0), jnp.ones((1, 3))), jnp.ones((1, 3)))
    Array([[0.5, 0.5, 0.5]], dtype=float32)
  """

  projection_dim: int
  init_values: float
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if x.shape[-1] != self.projection_dim:
      raise ValueError(f"LayerScale {self.name!r}: the input has {x.shape[-1]} channels on its last axis; "
                       f"projection_dim={self.projection_dim} is what the layer scales.")
    return x * self.param("scale", nn.initializers.constant(self.init_values), (self.projection_dim,),
                          self.param_dtype)


def _layer_scale(config, name, options):
  layer = LayerScale(config["projection_dim"], config["init_values"], name=name,
                     param_dtype=options.get("param_dtype", jnp.float32))
  return lambda x, train: layer(x)


def _number(key: str):
  def check(config):
    value = config.get(key)
    if is_real(value):
      return []
    return [f"{key}={value!r} (expected a number)"]
  return check


def _custom_scale(config, name, options):
  scale = config["scale"]

  def call(inputs, train):
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
      raise ValueError(f"CustomScaleLayer {name!r} takes a list of two tensors [shortcut, residual].")
    return inputs[0] + inputs[1] * scale
  return call


def _stochastic_depth(config, name, options):
  layer = Dropout(config["drop_path_rate"], broadcast_dims=(1,), name=name)

  def call(x, train):
    # One draw per example: the rest of the example shares it (Keras's mask has shape (batch, 1, ..., 1)).
    return layer(x.reshape(x.shape[0], -1), train=train).reshape(x.shape)
  return call


def _rate(config):
  rate = config.get("drop_path_rate")
  if is_real(rate) and 0.0 <= rate < 1.0:
    return []
  return [f"drop_path_rate={rate!r} (expected a number in [0, 1))"]


RECORDS: dict[str, KerasClass] = {
    "CustomScaleLayer": KerasClass(_custom_scale, check=_number("scale")),
    "LayerScale": KerasClass(
        _layer_scale, check=lambda c: _number("init_values")(c) + (
            [] if isinstance(c.get("projection_dim"), int) and c["projection_dim"] > 0
            else [f"projection_dim={c.get('projection_dim')!r} (expected a positive int)"]),
        creates_module=True, weights=({"variable": ("params", "scale")},), shape_checked=True),
    "StochasticDepth": KerasClass(_stochastic_depth, check=_rate, creates_module=True),
}

__all__ = ["LayerScale", "RECORDS"]
