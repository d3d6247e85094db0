"""A pretrained backbone as the encoder of keras-unet-collection's models, nested and frozen as it nests them.

keras-unet-collection's `unet_2d`, `att_unet_2d`, `unet_plus_2d`,
`unet_3plus_2d` and `transunet_2d` take `backbone`, `weights`,
`freeze_backbone` and `freeze_batch_norm`. A model that does reads its
encoder from here: the backbone built with `include_top=False` and cut at its
U-Net taps (`models.backbones.get(name).unet_taps`), as a submodule
`{backbone}_backbone` under Keras's layer names. A backbone whose first tap is
at full resolution (VGG) gives `depth` taps, the others `depth - 1`.

The protocol: a model with a backbone derives from `BackboneFields` (the
keyword-only `backbone`, `weights`, `freeze_backbone`, `freeze_batch_norm`)
and has a `depth` (its number of levels).

Freezing, as keras-unet-collection's `freeze_model`: `freeze_backbone` stops
the gradient of the backbone's convolutions and, with `freeze_batch_norm`,
that of its batch-norm layers, which then run in inference mode; without
`freeze_backbone` nothing freezes. (kuc's `unet_2d` and `att_unet_2d` pass
`freeze_backbone` where `freeze_batch_norm` belongs, ignoring the argument:
not copied here.)

A backbone's `weights` are loaded by `jaxcomponents.weights.init_unet` (and by
`Model(module)` when it builds); a plain `module.init` leaves the backbone
random and says so with a `BackboneWeightsNotLoaded` warning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax

from jaxcomponents.errors import check_bool, check_choice
from jaxcomponents.models import backbones
from jaxcomponents.models.common import Backbone


class BackboneWeightsNotLoaded(UserWarning):
  """A model's `init` left its backbone random although `weights` names weights to load."""


@contextlib.contextmanager
def weights_loaded_elsewhere() -> Iterator[None]:
  """Silences `BackboneWeightsNotLoaded` around an `init` whose values are replaced afterwards (`init_unet`,
  `load_keras`) or never used (shapes only).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxcomponents.models import unet_2d
    >>> model = unet_2d((32, 32, 3), [4, 8], n_labels=2, backbone="VGG16")
    >>> with weights_loaded_elsewhere():
    ...   shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  """
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", BackboneWeightsNotLoaded)
    yield


class BackboneFields(nn.Module):
  """Mixin: keras-unet-collection's backbone arguments, keyword-only.

  Attributes:
    backbone: None or a backbone's name (`models.backbones.NAMES`: "VGG16", "ResNet50", "DenseNet121", ...).
    weights: the backbone's weights for `weights.init_unet`: "imagenet", None or a Keras `.h5` path.
    freeze_backbone: no gradient for the backbone's convolutions (False: the whole backbone trains).
    freeze_batch_norm: with `freeze_backbone`, no gradient for the backbone's batch norm either, and inference
      mode (`batch_norm_frozen`).
  """

  backbone: str | None = dataclasses.field(default=None, kw_only=True)
  weights: str | None = dataclasses.field(default="imagenet", kw_only=True)
  freeze_backbone: bool = dataclasses.field(default=True, kw_only=True)
  freeze_batch_norm: bool = dataclasses.field(default=True, kw_only=True)


def loads_backbone_weights(model: Any) -> bool:
  """Whether `model` has a backbone whose `weights` name weights to load (`init_unet` loads them)."""
  return getattr(model, "backbone", None) is not None and getattr(model, "weights", None) is not None


def batch_norm_frozen(model: Any) -> bool:
  """Whether `model`'s backbone batch norm is frozen: `freeze_batch_norm` under `freeze_backbone`, as kuc's
  `freeze_model` freezes it (a backbone that is not frozen trains whole)."""
  return bool(model.freeze_backbone and model.freeze_batch_norm)


def check_backbone(model: Any) -> None:
  """Checks `backbone`, `weights`, `freeze_backbone` and `freeze_batch_norm` against `model.depth`."""
  if model.backbone is not None:
    check_choice("backbone", model.backbone, (None, *backbones.NAMES))
    if not backbones.get(model.backbone).full_resolution_first_tap and model.depth < 2:
      raise ValueError(f"depth {model.depth} is not allowed with backbone={model.backbone!r}: its first tap is at "
                       "half resolution, so the model needs at least 2 levels.")
  weights = model.weights
  if not (weights is None or weights == "imagenet" or isinstance(weights, (str, os.PathLike))):
    raise ValueError(f"weights={weights!r} is not allowed; expected 'imagenet', None or the path of a Keras .h5 "
                     "file.")
  check_bool("freeze_backbone", model.freeze_backbone)
  check_bool("freeze_batch_norm", model.freeze_batch_norm)


def check_backbone_input(model: Any, input_size: Sequence[int | None]) -> None:
  """Checks an input's (height, width, channels) against the backbone's minimum size and ImageNet's 3 channels."""
  if model.backbone is None:
    return
  record = backbones.get(model.backbone)
  for axis, n in zip(("height", "width"), input_size[:2]):
    if n is not None and n < record.min_size:
      raise ValueError(f"input_size={tuple(input_size)} is not allowed with backbone={model.backbone!r}: {axis} "
                       f"{n} is smaller than its minimum {record.min_size}.")
  if input_size[2] is not None and model.weights == "imagenet" and input_size[2] != 3:
    raise ValueError(f"input_size={tuple(input_size)} is not allowed with backbone={model.backbone!r} and "
                     "weights='imagenet': ImageNet weights need 3 channels (or use weights=None).")


def backbone_path(model: Any) -> str:
  """The backbone's submodule name in the variables, as keras-unet-collection names its nested model."""
  return f"{model.backbone}_backbone"


def backbone_arguments(model: Any) -> dict[str, Any]:
  """The arguments of the encoder: the backbone without the top, cut at the taps `model.depth` takes."""
  record = backbones.get(model.backbone)
  taps = record.unet_taps[:record.unet_tap_count(model.depth)]
  return {"include_top": False, "freeze_batch_norm": batch_norm_frozen(model), "taps": taps,
          **record.weights_arguments(model.weights)}


def backbone_encoder(model: Any, x: jax.Array, train: bool) -> tuple[list[jax.Array], int]:
  """Runs `model`'s backbone on `x` inside `model`'s compact call: (its tap outputs, the levels they cover).

  The levels covered are keras-unet-collection's `depth_encode`: the number of
  taps, plus one where the first tap is at half resolution.
  """
  record = backbones.get(model.backbone)
  if model.is_initializing() and loads_backbone_weights(model):
    warnings.warn(f"{type(model).__name__}.init leaves its {model.backbone} backbone random: weights="
                  f"{model.weights!r} are loaded by jaxcomponents.weights.init_unet(model, x) or when "
                  "jaxcomponents.Model(model) builds (modules do no I/O); weights=None starts from random weights.",
                  BackboneWeightsNotLoaded, stacklevel=2)
  encoder_cls = frozen_backbone(record.module, model.freeze_backbone, batch_norm_frozen(model),
                                model.is_initializing())
  skips = list(encoder_cls(**backbone_arguments(model), name=backbone_path(model), **model.precision_options)(
      x, train=train))
  return skips, len(skips) + (0 if record.full_resolution_first_tap else 1)


def _is_batch_norm(leaf: Mapping[str, Any]) -> bool:
  """A layer's parameters are batch norm's when none of them is a kernel."""
  return not any(name.endswith("kernel") for name in leaf)


def freeze_params(params: Mapping[str, Any], *, convolutions: bool, batch_norm: bool) -> dict[str, Any]:
  """Stops the gradient of the convolution and/or batch-norm layers in a `{layer: {weight: array}}` tree."""
  out = {}
  for name, leaf in params.items():
    frozen = batch_norm if _is_batch_norm(leaf) else convolutions
    out[name] = jax.tree.map(jax.lax.stop_gradient, dict(leaf)) if frozen else leaf
  return out


def frozen_backbone(module: type[Backbone], freeze_backbone: bool, freeze_batch_norm: bool, initializing: bool):
  """The backbone class whose layers get no gradient: convolutions if `freeze_backbone`, batch norm if
  `freeze_batch_norm`. `initializing`: the parent's `is_initializing()`."""
  if not (freeze_backbone or freeze_batch_norm):
    return module

  def trans_in(variables):
    return {**variables, "params": freeze_params(variables.get("params", {}), convolutions=freeze_backbone,
                                                 batch_norm=freeze_batch_norm)}

  return nn.map_variables(module, "params", trans_in_fn=trans_in, init=initializing)


def frozen_patterns(model: Any, params: Any) -> list[str]:
  """Regular expressions for `jaxcomponents.training.freeze(tx, ...)`: the parameters the model freezes.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxcomponents.models import unet_2d
    >>> model = unet_2d((32, 32, 3), [4, 8], n_labels=2, backbone="VGG16", weights=None)
    >>> params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
    >>> frozen_patterns(model, params)[:1]
    ['VGG16_backbone/block1_conv1/.*']
  """
  if getattr(model, "backbone", None) is None or backbone_path(model) not in params:
    return []  # no backbone (some kuc models take none), or none built
  patterns = []
  for layer, leaf in params[backbone_path(model)].items():
    if batch_norm_frozen(model) if _is_batch_norm(leaf) else model.freeze_backbone:
      patterns.append(f"{re.escape(backbone_path(model))}/{re.escape(layer)}/.*")
  return patterns
