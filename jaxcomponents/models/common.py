"""What the ImageNet backbones share: arguments, feature taps, the classifier top, freezing, and the record
that describes each backbone to the rest of the library."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents import activations
from jaxcomponents.errors import check_choice, check_positive_int
from jaxcomponents.layers.conv_core import glorot_uniform
from jaxcomponents.layers.pooling import global_avg_pool, global_max_pool
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
    freeze_batch_norm: batch norm in inference mode even when training (Keras's
      `BatchNormalization(trainable=False)`); the other layers still train.
    taps: Keras layer names whose outputs the model returns, as a list in this
      order, instead of its output; the layers past the deepest are not built
      (needs `include_top=False`). The U-Net's encoder is a backbone with taps.
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
  freeze_batch_norm: bool = False
  taps: Sequence[str] | None = None
  min_size: ClassVar[int] = 32
  features: ClassVar[tuple[str, ...]] = ()

  def check_input(self, x: jax.Array) -> None:
    """Raises like Keras for bad arguments, a non-image input or one below `min_size`."""
    check_backbone_args(self)
    check_image(x, self.min_size, type(self).__name__)

  def start_taps(self) -> Taps:
    """The recorder of this call's feature taps: `taps` (cutting the model there) or the class's `features`."""
    if self.taps is None:
      return Taps(type(self).__name__, self.features, cut=False)
    if isinstance(self.taps, str) or not self.taps:
      raise ValueError(f"taps={self.taps!r} is not allowed; expected a non-empty sequence of layer names, "
                       f"e.g. {self.features[:2]}.")
    if self.include_top:
      raise ValueError(f"taps={tuple(self.taps)} is not allowed with include_top=True; the model returns its taps "
                       "instead of a classification (use include_top=False).")
    return Taps(type(self).__name__, tuple(self.taps), cut=True)

  def tapped(self, taps: Taps) -> list[jax.Array]:
    """The outputs of a model cut at its deepest tap, cut off from gradients when not trainable."""
    return frozen_outputs(self, taps.result())

  def outputs(self, x: jax.Array, taps: Taps, return_features: bool) -> Any:
    """`x` (and the feature taps), cut off from gradients when not trainable."""
    taps.check_complete()
    if taps.cut:
      return self.tapped(taps)
    return frozen_outputs(self, (x, taps.values) if return_features else x)


class Taps:
  """Collects a backbone's layer outputs by Keras layer name while it runs.

  A backbone passes each output a user may tap through `taps(name, x)`. With
  `cut=True` (the backbone's `taps` field) it returns `taps.result()` as soon
  as `taps.done`, so the layers past the deepest tap are never built, as in
  the Keras model keras-unet-collection cuts out of the application.
  """

  def __init__(self, model_name: str, wanted: Sequence[str], cut: bool):
    self.model_name, self.wanted, self.cut = model_name, tuple(wanted), cut
    self.values: dict[str, jax.Array] = {}
    self.seen: list[str] = []

  def __call__(self, name: str, x: jax.Array) -> jax.Array:
    self.seen.append(name)
    if name in self.wanted:
      self.values[name] = x
    return x

  @property
  def done(self) -> bool:
    """Every wanted tap is recorded and the model is cut at the deepest one."""
    return self.cut and len(self.values) == len(set(self.wanted))

  def result(self) -> list[jax.Array]:
    """The tapped outputs in the order asked for."""
    return [self.values[name] for name in self.wanted]

  def check_complete(self, tap_points: Sequence[str] | None = None) -> None:
    """Raises for wanted names that are not tap points (default: the names the model passed to `taps`)."""
    points = self.seen if tap_points is None else tuple(tap_points)
    missing = [name for name in self.wanted if name not in points]
    if missing:
      raise ValueError(f"taps={self.wanted} is not allowed for {self.model_name}: {missing} are not among its "
                       f"tap points: {', '.join(points)}.")


@dataclasses.dataclass(frozen=True)
class WeightsFile:
  """A Keras ImageNet weight file: name, origin and Keras's `file_hash` (md5, or sha256 when 64 characters long;
  None where Keras publishes none)."""

  fname: str
  origin: str
  file_hash: str | None


KERAS_APPLICATIONS_STORAGE = "https://storage.googleapis.com/tensorflow/keras-applications/"


def keras_file(folder: str, fname: str, file_hash: str | None, storage: str = KERAS_APPLICATIONS_STORAGE
               ) -> WeightsFile:
  """A file in Keras's application storage, `folder/fname` (`fname` where `folder` is empty)."""
  return WeightsFile(fname, f"{storage}{folder}/{fname}" if folder else f"{storage}{fname}", file_hash)


def top_and_no_top(folder: str, stem: str, top_hash: str | None, no_top_hash: str | None,
                   no_top_suffix: str = "_notop", storage: str = KERAS_APPLICATIONS_STORAGE
                   ) -> Callable[..., WeightsFile]:
  """The weight-file chooser of a backbone with one file with its top and one without, named as Keras names them."""
  files = {True: keras_file(folder, f"{stem}.h5", top_hash, storage),
           False: keras_file(folder, f"{stem}{no_top_suffix}.h5", no_top_hash, storage)}

  def choose(module: Backbone, input_shape: tuple[int, int, int]) -> WeightsFile:
    del input_shape
    return files[bool(module.include_top)]

  return choose


@dataclasses.dataclass(frozen=True)
class BackboneRecord:
  """Everything the library knows about one backbone; the U-Net, `load_imagenet`, the experiments and README read it.

  Attributes:
    module: the backbone's class (its name is Keras's application name).
    default_size: the ImageNet input size (height = width).
    preprocessing: the `preprocessing.preprocess_input` mode its ImageNet weights expect, or None where the
      model scales its input itself (EfficientNet).
    weights_file: `(module, input_shape) -> WeightsFile`, Keras's ImageNet file for that configuration.
    unet_taps: the U-Net skip taps, shallow to deep (keras-unet-collection's where it has the backbone).
    unet_taps_source: "keras-unet-collection" or "jaxcomponents" (taps this library chose).
    top1: Keras's published ImageNet top-1 accuracy (None: not published).
    fixed_top_size: with the top, the ImageNet weights need `default_size`; else one of `top_sizes` (square).
    top_sizes: the square input sizes a top's ImageNet weights exist for, where `fixed_top_size` is False.
    halving_taps: the taps are at exactly 1/2, 1/4, ... of the input size (the U-Net then needs an input
      divisible by 2**(depth - 1)); False: the U-Net resizes decoded maps to each tap's size (InceptionV3).
    full_resolution_first_tap: the first tap is at the input's resolution (VGG), so a U-Net of depth `d`
      takes `d` taps, not `d - 1`.
    weights_arguments: `weights -> module arguments` for architectures Keras builds differently for ImageNet
      weights (EfficientNet's extra rescaling); the U-Net passes its `weights` through it.
  """

  module: type[Backbone]
  default_size: int
  preprocessing: str | None
  weights_file: Callable[..., WeightsFile]
  unet_taps: tuple[str, ...]
  unet_taps_source: str = "keras-unet-collection"
  top1: float | None = None
  fixed_top_size: bool = True
  top_sizes: tuple[int, ...] = ()
  halving_taps: bool = True
  full_resolution_first_tap: bool = False
  weights_arguments: Callable[[Any], dict[str, Any]] = lambda weights: {}

  @property
  def name(self) -> str:
    return self.module.__name__

  @property
  def min_size(self) -> int:
    return self.module.min_size

  def unet_tap_count(self, depth: int) -> int:
    """How many taps a U-Net of `depth` levels takes: `depth` when the first tap is at full resolution (VGG),
    else `depth - 1` (keras-unet-collection's rule); at most all of them."""
    return min(depth if self.full_resolution_first_tap else depth - 1, len(self.unet_taps))



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
    return predictions(model, jnp.mean(x, axis=(1, 2)))
  return global_pool(x, model.pooling)


def predictions(model: nn.Module, x: jax.Array, kernel_init: Callable[..., jax.Array] = glorot_uniform) -> jax.Array:
  """The classifier: Dense `predictions` with `classes` outputs (its kernel initialised as Keras's), then
  `classifier_activation`."""
  x = nn.Dense(model.classes, kernel_init=kernel_init, name="predictions", **model.precision_options)(x)
  return activations.get(model.classifier_activation, "classifier_activation")(x)


def global_pool(x: jax.Array, pooling: str | None) -> jax.Array:
  """Keras's GlobalAveragePooling2D / GlobalMaxPooling2D, or `x` unchanged for None."""
  if pooling == "avg":
    return global_avg_pool(x)
  if pooling == "max":
    return global_max_pool(x)
  return x


def file_size(input_shape: Sequence[int], sizes: Sequence[int]) -> int:
  """The input size whose weight file a MobileNet loads: the input's if square and one of `sizes`, else 224 with a
  warning, as Keras picks it."""
  rows, cols = input_shape[:2]
  if rows == cols and rows in sizes:
    return rows
  warnings.warn(f"input_shape={tuple(input_shape)} is non-square or its size is not one of {tuple(sizes)}; "
                "loading the weights for 224 x 224, as Keras does.", stacklevel=4)
  return 224


def correct_pad(size: tuple[int, int], kernel: int = 3) -> tuple[tuple[int, int], tuple[int, int]]:
  """Keras's `imagenet_utils.correct_pad`: the zero padding before a stride-2 'valid' convolution."""
  return tuple((kernel // 2 - (1 - n % 2), kernel // 2) for n in size)


def frozen_outputs(model: nn.Module, outputs: Any) -> Any:
  """`trainable=False`: no gradient flows back into the backbone from its outputs."""
  return outputs if model.trainable else jax.lax.stop_gradient(outputs)


def batch_norm_mode(model: nn.Module, train: bool) -> bool:
  """`use_running_average` for the backbone's batch norm: inference mode unless trained, trainable and not
  `freeze_batch_norm`."""
  return not (train and model.trainable and not model.freeze_batch_norm)
