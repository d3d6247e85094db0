"""Segmentation losses on maps `(batch, height, width, channels)`, one value per example.

Every loss here returns per-example losses of shape `(batch,)`, what
`jaxcomponents.training.make_train_step(loss=...)` expects, so
`make_train_step(get("dice"))` trains with it. Formulas:

* `dice`, `tversky`, `binary_focal_crossentropy`,
  `categorical_focal_crossentropy`: Keras 3's (`keras.losses.dice(...,
  axis=(1, 2, 3))`, ...), over each example's pixels and channels.
* `jaccard` (alias `iou`): `1 - I / (T + P - I)` with
  `I = sum(y_true * y_pred)`, zero-safe.
* `binary_crossentropy`, `categorical_crossentropy`,
  `sparse_categorical_crossentropy`: Keras's per-pixel losses
  (`jaxcomponents.losses`), averaged over each example's pixels.
* keras-unet-collection's `losses` module (0.1.13), each public function under
  its own name and arguments: `dice_coef`, `tversky_coef`, `focal_tversky`,
  `iou_seg`, `ms_ssim`, `iou_box_coef`, `iou_box`, `triplet_1d`, `crps2d_tf`,
  `crps2d_np`; its `dice` and `tversky` are `kuc_dice` and `kuc_tversky` here
  (Keras's take the names). `KERAS_UNET_COLLECTION` maps its names to them.
  `ms_ssim` is TensorFlow's `tf.image.ssim_multiscale` (`ssim_multiscale`
  here, and `ssim` is `tf.image.ssim`), computed as TensorFlow computes it.

`per_example=False` reduces over the whole batch instead. For
keras-unet-collection's functions it gives exactly what they return: they
squeeze length-1 axes, then most flatten the whole batch into one value
(`ms_ssim` and `iou_box` keep one value per image or box of the squeezed input,
`crps2d_*` average over its first axis).

Example:
  >>> import jax.numpy as jnp
  >>> y = jnp.ones((2, 4, 4, 1))
  >>> dice(y, y).tolist()
  [0.0, 0.0]
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcomponents import losses as keras_losses
from jaxcomponents.errors import check_choice, check_dtype, check_positive_int, is_real
from jaxcomponents.ops import conv
from jaxcomponents.registry import Registry

EPSILON = 1e-7  # keras.backend.epsilon()

Array = jax.Array


def _cast(y_true, y_pred, dtype: Any = jnp.float32) -> tuple[Array, Array]:
  y_pred = jnp.asarray(y_pred, dtype)
  y_true = jnp.asarray(y_true, y_pred.dtype)
  if y_true.shape + (1,) == y_pred.shape:  # a label map without its channel axis, which kuc squeezes away
    y_true = y_true[..., None]
  elif y_pred.shape + (1,) == y_true.shape:
    y_pred = y_pred[..., None]
  if y_true.shape != y_pred.shape:
    raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}; expected the same "
                     "shape (one channel per label).")
  return y_true, y_pred


def _sum(x: Array, per_example: bool) -> Array:
  return jnp.sum(x, axis=tuple(range(1, x.ndim))) if per_example else jnp.sum(x)


def _mean(x: Array, per_example: bool) -> Array:
  return jnp.mean(x, axis=tuple(range(1, x.ndim))) if per_example else jnp.mean(x)


def _div_no_nan(a: Array, b: Array) -> Array:
  return jnp.where(b == 0, 0.0, a / jnp.where(b == 0, 1.0, b))


def _example_axes(x: Array, per_example: bool) -> tuple[int, ...] | None:
  """Every axis but the batch's (one value per example), or None (the whole batch)."""
  return tuple(range(1, x.ndim)) if per_example else None


def dice(y_true, y_pred, per_example: bool = True) -> Array:
  """Keras's `dice`: `1 - 2 I / (sum(y_true) + sum(y_pred) + eps)`."""
  y_true, y_pred = _cast(y_true, y_pred)
  return keras_losses.get("dice", axis=_example_axes(y_pred, per_example), reduction="none")(y_true, y_pred)


def tversky(y_true, y_pred, alpha: float = 0.5, beta: float = 0.5, per_example: bool = True) -> Array:
  """Keras's `tversky`: `1 - I / (I + alpha FP + beta FN + eps)` (Keras's FP/FN naming)."""
  y_true, y_pred = _cast(y_true, y_pred)
  return keras_losses.get("tversky", alpha=alpha, beta=beta, axis=_example_axes(y_pred, per_example),
                          reduction="none")(y_true, y_pred)


def jaccard(y_true, y_pred, per_example: bool = True) -> Array:
  """The Jaccard (IoU) loss `1 - I / (T + P - I)`, 0/0 counted as 0 (keras-unet-collection's `iou_seg`)."""
  return _jaccard(*_cast(y_true, y_pred), per_example)


def _jaccard(y_true: Array, y_pred: Array, per_example: bool) -> Array:
  intersection = _sum(y_true * y_pred, per_example)
  union = _sum(y_true, per_example) + _sum(y_pred, per_example) - intersection
  return 1.0 - _div_no_nan(intersection, union)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing: bool = False, alpha: float = 0.25,
                              gamma: float = 2.0, from_logits: bool = False, label_smoothing: float = 0.0,
                              per_example: bool = True) -> Array:
  """Keras's `binary_focal_crossentropy`, averaged over pixels and channels."""
  return _keras_map_loss("binary_focal_crossentropy", *_cast(y_true, y_pred), per_example,
                         apply_class_balancing=apply_class_balancing, alpha=alpha, gamma=gamma,
                         from_logits=from_logits, label_smoothing=label_smoothing)


def categorical_focal_crossentropy(y_true, y_pred, alpha: float = 0.25, gamma: float = 2.0,
                                   from_logits: bool = False, label_smoothing: float = 0.0,
                                   per_example: bool = True) -> Array:
  """Keras's `categorical_focal_crossentropy` over the channel axis (one-hot `y_true`), averaged over pixels."""
  return _keras_map_loss("categorical_focal_crossentropy", *_cast(y_true, y_pred), per_example, alpha=alpha,
                         gamma=gamma, from_logits=from_logits, label_smoothing=label_smoothing)


def _keras_map_loss(name: str, y_true, y_pred, per_example: bool, **options) -> Array:
  values = keras_losses.get(name, reduction="none", **options)(y_true, y_pred)
  return _mean(values, per_example)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                        per_example: bool = True) -> Array:
  """Keras's `binary_crossentropy` per pixel, averaged per example."""
  return _keras_map_loss("binary_crossentropy", y_true, y_pred, per_example, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0,
                             axis: int = -1, per_example: bool = True) -> Array:
  """Keras's `categorical_crossentropy` per pixel, averaged per example."""
  return _keras_map_loss("categorical_crossentropy", y_true, y_pred, per_example, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False, ignore_class: int | None = None,
                                    axis: int = -1, per_example: bool = True) -> Array:
  """Keras's `sparse_categorical_crossentropy` per pixel, averaged per example."""
  return _keras_map_loss("sparse_categorical_crossentropy", y_true, y_pred, per_example, from_logits=from_logits,
                         ignore_class=ignore_class, axis=axis)


# ---------------------------------------------------------------------------- keras-unet-collection's losses


def _check_number(param: str, value: Any) -> Any:
  scalar_array = getattr(value, "shape", None) == () and jnp.issubdtype(getattr(value, "dtype", None), jnp.number)
  if not (is_real(value) or scalar_array):
    raise ValueError(f"{param}={value!r} is not allowed; expected a real number.")
  return value


def _confusion(y_true: Array, y_pred: Array, per_example: bool) -> tuple[Array, Array, Array]:
  """keras-unet-collection's soft true positives, false negatives and false positives."""
  true_pos = _sum(y_true * y_pred, per_example)
  false_neg = _sum(y_true * (1.0 - y_pred), per_example)
  false_pos = _sum((1.0 - y_true) * y_pred, per_example)
  return true_pos, false_neg, false_pos


def dice_coef(y_true, y_pred, const: float = EPSILON, per_example: bool = True) -> Array:
  """keras-unet-collection's `dice_coef`: the soft Sørensen–Dice coefficient `(2 TP + const) / (2 TP + FP + FN)`.

  `const` is added to the numerator only, as keras-unet-collection does, so an empty `y_true` with an empty
  `y_pred` gives `inf` (and `kuc_dice` `-inf`).

  Example:
    >>> round(dice_coef([[1.0, 0.0]], [[1.0, 1.0]], per_example=False).item(), 4)
    0.6667
  """
  _check_number("const", const)
  true_pos, false_neg, false_pos = _confusion(*_cast(y_true, y_pred), per_example)
  return (2.0 * true_pos + const) / (2.0 * true_pos + false_pos + false_neg)


def kuc_dice(y_true, y_pred, const: float = EPSILON, per_example: bool = True) -> Array:
  """keras-unet-collection's `dice` loss: `1 - dice_coef(y_true, y_pred, const)`.

  Example:
    >>> kuc_dice([[1.0, 0.0]], [[1.0, 0.0]]).tolist()
    [0.0]
  """
  return 1.0 - dice_coef(y_true, y_pred, const, per_example)


def tversky_coef(y_true, y_pred, alpha: float = 0.5, const: float = EPSILON, per_example: bool = True) -> Array:
  """keras-unet-collection's `tversky_coef`: `(TP + const) / (TP + alpha FN + (1 - alpha) FP + const)`.

  Example:
    >>> round(tversky_coef([[1.0, 0.0]], [[1.0, 1.0]], alpha=0.7).item(), 4)
    0.7692
  """
  _check_number("alpha", alpha)
  _check_number("const", const)
  true_pos, false_neg, false_pos = _confusion(*_cast(y_true, y_pred), per_example)
  return (true_pos + const) / (true_pos + alpha * false_neg + (1.0 - alpha) * false_pos + const)


def kuc_tversky(y_true, y_pred, alpha: float = 0.5, const: float = EPSILON, per_example: bool = True) -> Array:
  """keras-unet-collection's `tversky` loss: `1 - tversky_coef(y_true, y_pred, alpha, const)`.

  (Keras's `tversky` is `tversky` here; its `alpha` weights false positives.)

  Example:
    >>> round(kuc_tversky([[1.0, 0.0]], [[1.0, 1.0]], alpha=0.7).item(), 4)
    0.2308
  """
  return 1.0 - tversky_coef(y_true, y_pred, alpha, const, per_example)


def focal_tversky(y_true, y_pred, alpha: float = 0.5, gamma: float = 4 / 3, const: float = EPSILON,
                  per_example: bool = True) -> Array:
  """keras-unet-collection's `focal_tversky`: `(1 - tversky_coef(y_true, y_pred, alpha, const)) ** (1 / gamma)`.

  Example:
    >>> round(focal_tversky([[1.0, 0.0]], [[1.0, 1.0]], gamma=1.0).item(), 4)
    0.3333
  """
  _check_number("gamma", gamma)
  if gamma == 0:
    raise ValueError(f"gamma={gamma!r} is not allowed; expected a non-zero number (the loss is raised to 1 / gamma).")
  return jnp.power(1.0 - tversky_coef(y_true, y_pred, alpha, const, per_example), 1.0 / gamma)


def iou_seg(y_true, y_pred, dtype: Any = jnp.float32, per_example: bool = True) -> Array:
  """keras-unet-collection's `iou_seg`: the Jaccard loss `1 - I / (T + P - I)` (0/0 as 0), computed in `dtype`.

  Example:
    >>> iou_seg([[0.0, 0.0]], [[0.0, 0.0]]).tolist()
    [1.0]
  """
  check_dtype("dtype", dtype)
  return _jaccard(*_cast(y_true, y_pred, dtype), per_example)


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # TensorFlow's power factors (Wang et al. 2003)


def _image_float32(x: Array) -> Array:
  """TensorFlow's `convert_image_dtype(x, float32)`: integers times 1 / their type's maximum, floats cast."""
  if jnp.issubdtype(x.dtype, jnp.integer):
    return x.astype(jnp.float32) * np.float32(1.0 / jnp.iinfo(x.dtype).max)
  return x.astype(jnp.float32)


def _float_images(img1, img2, max_val) -> tuple[Array, Array, Array]:
  """TensorFlow's SSIM inputs as float32: both images, and `max_val` cast to the first one's dtype first."""
  _check_number("max_val", max_val)
  img1, img2 = jnp.asarray(img1), jnp.asarray(img2)
  if img1.ndim < 3 or img2.ndim < 3 or img1.shape[-3:] != img2.shape[-3:]:
    raise ValueError(f"images of shapes {img1.shape} and {img2.shape} are not allowed; expected images "
                     "(..., height, width, channels) of the same last three sizes.")
  max_val = jnp.asarray(max_val).astype(img1.dtype)
  return _image_float32(img1), _image_float32(img2), _image_float32(max_val)


def _check_ssim_options(shape: tuple[int, ...], scales: int, filter_size, filter_sigma, k1, k2) -> None:
  """TensorFlow's refusals, as `ValueError`s: images smaller than the filter at any of the `scales`."""
  check_positive_int("filter_size", filter_size)
  for param, value in (("filter_sigma", filter_sigma), ("k1", k1), ("k2", k2)):
    _check_number(param, value)
  height, width = shape[-3:-1]
  for scale in range(scales):
    if min(height, width) < filter_size:
      need = (filter_size - 1) * 2 ** (scales - 1) + 1
      raise ValueError(f"images of shape {shape} (..., height, width, channels) are too small for filter_size="
                       f"{filter_size} over {scales} scale(s): scale {scale} is {height} x {width}; at least "
                       f"{need} x {need} pixels are needed (TensorFlow refuses smaller images).")
    height, width = -(-height // 2), -(-width // 2)


def _gaussian_window(size: int, sigma: float) -> Array:
  """TensorFlow's `_fspecial_gauss`: a `size x size` Gaussian normalised by a softmax over its log-weights."""
  coords = jnp.arange(size, dtype=jnp.float32) - jnp.float32(size - 1) / 2.0
  log_weights = jnp.square(coords) * (-0.5 / jnp.square(jnp.float32(sigma)))
  return jax.nn.softmax((log_weights[None, :] + log_weights[:, None]).reshape(-1)).reshape(size, size)


def _ssim_per_channel(img1: Array, img2: Array, max_val: Array, filter_size: int, filter_sigma: float, k1: float,
                      k2: float, return_index_map: bool = False) -> tuple[Array, Array]:
  """TensorFlow's `_ssim_per_channel`: SSIM and contrast-structure of each channel, `(..., channels)`.

  Local means are the Gaussian window's 'VALID' depthwise convolution; covariances are biased (TensorFlow's
  compensation 1.0, as MATLAB's MS-SSIM).
  """
  img1, img2 = jnp.broadcast_arrays(img1, img2)
  heads, (height, width, channels) = img1.shape[:-3], img1.shape[-3:]
  window = _gaussian_window(filter_size, filter_sigma)
  kernel = jnp.broadcast_to(window[:, :, None, None], (filter_size, filter_size, 4 * channels, 1))
  stacked = jnp.concatenate([img1, img2, img1 * img2, jnp.square(img1) + jnp.square(img2)], axis=-1)
  local = conv.depthwise(stacked.reshape((-1, height, width, 4 * channels)), kernel, (1, 1), "VALID", (1, 1),
                         precision="highest")
  mean1, mean2, mean_product, mean_squares = jnp.split(local.reshape(heads + local.shape[1:]), 4, axis=-1)
  c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
  num0 = mean1 * mean2 * 2.0
  den0 = jnp.square(mean1) + jnp.square(mean2)
  luminance = (num0 + c1) / (den0 + c1)
  contrast_structure = (mean_product * 2.0 - num0 + c2) / (mean_squares - den0 + c2)
  if return_index_map:
    return luminance * contrast_structure, contrast_structure
  return jnp.mean(luminance * contrast_structure, axis=(-3, -2)), jnp.mean(contrast_structure, axis=(-3, -2))


def ssim(img1, img2, max_val, filter_size: int = 11, filter_sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03,
         return_index_map: bool = False) -> Array:
  """TensorFlow's `tf.image.ssim`: the SSIM of each image `(..., height, width, channels)`, channels averaged.

  Integer images are scaled to [0, 1] by their type's maximum, as TensorFlow's `convert_image_dtype` does
  (and `max_val` with them). Images need at least `filter_size` pixels each way.

  Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.linspace(0.0, 1.0, 16).reshape(4, 4, 1)
    >>> round(ssim(x, x, max_val=1.0, filter_size=3).item(), 4)
    1.0
  """
  img1, img2, max_val = _float_images(img1, img2, max_val)
  _check_ssim_options(img1.shape, 1, filter_size, filter_sigma, k1, k2)
  check_choice("return_index_map", return_index_map, (False, True))
  return _ssim(img1, img2, max_val, filter_size, float(filter_sigma), float(k1), float(k2), bool(return_index_map))


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6, 7))
def _ssim(img1: Array, img2: Array, max_val: Array, filter_size: int, filter_sigma: float, k1: float, k2: float,
          return_index_map: bool) -> Array:
  values, _ = _ssim_per_channel(img1, img2, max_val, filter_size, filter_sigma, k1, k2, return_index_map)
  return jnp.mean(values, axis=-1)


def _halve(images: Array) -> Array:
  """TensorFlow's MS-SSIM downscaling: an odd height or width padded by its last row or column, then 2 x 2 means.

  Each mean sums its window row by row, as TensorFlow's average pooling does (bit for bit).
  """
  heads, (height, width, channels) = images.shape[:-3], images.shape[-3:]
  padded = jnp.pad(images.reshape((-1, height, width, channels)),
                   ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="symmetric")
  corners = [padded[:, row::2, col::2] for row in (0, 1) for col in (0, 1)]
  pooled = (((corners[0] + corners[1]) + corners[2]) + corners[3]) / 4.0
  return pooled.reshape(heads + pooled.shape[1:])


def ssim_multiscale(img1, img2, max_val, power_factors=MS_SSIM_WEIGHTS, filter_size: int = 11,
                    filter_sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> Array:
  """TensorFlow's `tf.image.ssim_multiscale`: the MS-SSIM of each image `(..., height, width, channels)`.

  One scale per power factor, each the previous one halved (`_halve`); the product over scales of the
  contrast-structure (the last scale: the SSIM), each clipped at 0 and raised to its power factor, averaged
  over channels. Images need at least `(filter_size - 1) * 2 ** (scales - 1) + 1` pixels each way (161 with
  the defaults).

  Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.linspace(0.0, 1.0, 64).reshape(8, 8, 1)
    >>> round(ssim_multiscale(x, x, 1.0, power_factors=(0.5, 0.5), filter_size=3).item(), 4)
    1.0
  """
  if isinstance(power_factors, (str, bytes)) or not isinstance(power_factors, Sequence) or not power_factors:
    raise ValueError(f"power_factors={power_factors!r} is not allowed; expected a non-empty sequence of numbers, "
                     "one per scale.")
  for factor in power_factors:
    _check_number("power_factors", factor)
  img1, img2, max_val = _float_images(img1, img2, max_val)
  _check_ssim_options(img1.shape, len(power_factors), filter_size, filter_sigma, k1, k2)
  return _ssim_multiscale(img1, img2, max_val, tuple(map(float, power_factors)), filter_size, float(filter_sigma),
                          float(k1), float(k2))


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6, 7))
def _ssim_multiscale(img1: Array, img2: Array, max_val: Array, power_factors: tuple[float, ...], filter_size: int,
                     filter_sigma: float, k1: float, k2: float) -> Array:
  scores = []
  for scale in range(len(power_factors)):
    if scale:
      img1, img2 = _halve(img1), _halve(img2)
    ssim_per_channel, contrast_structure = _ssim_per_channel(img1, img2, max_val, filter_size, filter_sigma, k1, k2)
    scores.append(jax.nn.relu(contrast_structure))
  scores[-1] = jax.nn.relu(ssim_per_channel)
  weighted = jnp.power(jnp.stack(scores, axis=-1), jnp.asarray(power_factors, jnp.float32))
  return jnp.mean(jnp.prod(weighted, axis=-1), axis=-1)


def ms_ssim(y_true, y_pred, *, max_val, power_factors=MS_SSIM_WEIGHTS, filter_size: int = 11,
            filter_sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03, per_example: bool = True) -> Array:
  """keras-unet-collection's `ms_ssim` loss: `1 - ssim_multiscale(y_true, y_pred, ...)`.

  Its keyword arguments are `tf.image.ssim_multiscale`'s, which keras-unet-collection passes on (`max_val` has
  no default there). `y_true` takes `y_pred`'s dtype first.

  With `per_example=True`, each example's last three axes are the image: maps `(batch, height, width,
  channels)` give `(batch,)` losses. With `per_example=False`, keras-unet-collection's own result: it squeezes
  length-1 axes first, so single-channel maps `(batch, h, w, 1)` become `(batch, h, w)`, which TensorFlow reads
  as ONE image of height `batch`, width `h` and `w` channels (a batch of one such map is refused: rank 2).
  Maps with several channels and a batch of several get the same values either way.

  Example:
    >>> import jax.numpy as jnp
    >>> y = jnp.linspace(0.0, 1.0, 2 * 8 * 8 * 2).reshape(2, 8, 8, 2)
    >>> [round(v, 4) for v in ms_ssim(y, y, max_val=1.0, filter_size=2, power_factors=(0.5, 0.5)).tolist()]
    [0.0, 0.0]
  """
  y_pred = jnp.asarray(y_pred)
  y_true = jnp.asarray(y_true).astype(y_pred.dtype)
  if y_true.shape != y_pred.shape:
    raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}; expected the same shape.")
  if per_example and y_pred.ndim < 4:
    raise ValueError(f"y_pred has shape {y_pred.shape}; expected maps (batch, height, width, channels) with "
                     "per_example=True.")
  if not per_example:
    squeezed = jnp.squeeze(y_pred).shape
    if len(squeezed) < 3:
      raise ValueError(f"y_pred of shape {y_pred.shape} is squeezed to {squeezed} by keras-unet-collection's "
                       "ms_ssim, which tf.image.ssim_multiscale refuses (it needs (..., height, width, channels)); "
                       "use per_example=True.")
    y_true, y_pred = jnp.squeeze(y_true), jnp.squeeze(y_pred)
  return 1.0 - ssim_multiscale(y_true, y_pred, max_val, power_factors, filter_size, filter_sigma, k1, k2)


def _tf_maximum(x: Array, y: Array) -> Array:
  """`tf.maximum`, whose gradient at a tie goes to `x` alone (JAX's `maximum` splits it)."""
  return jnp.where(x >= y, x, y)


def _tf_minimum(x: Array, y: Array) -> Array:
  """`tf.minimum`, whose gradient at a tie goes to `x` alone."""
  return jnp.where(x <= y, x, y)


def _box_area(y_min: Array, x_min: Array, y_max: Array, x_max: Array) -> Array:
  zero = jnp.zeros((), y_min.dtype)
  return _tf_maximum(zero, x_max - x_min) * _tf_maximum(zero, y_max - y_min)


def iou_box_coef(y_true, y_pred, mode: str = "giou", dtype: Any = jnp.float32, per_example: bool = True) -> Array:
  """keras-unet-collection's `iou_box_coef`: IoU (`mode="iou"`) or generalized IoU of boxes.

  Boxes are the last axis, `[y_min, x_min, y_max, x_max]`; an inverted box is empty; 0/0 counts as 0. The
  generalized IoU (Rezatofighi et al. 2019) subtracts the share of the enclosing box outside the union.
  `per_example=False` gives one value per box (keras-unet-collection's), `per_example=True` their mean per
  example. keras-unet-collection takes any `mode` other than "iou" as "giou"; here only those two are allowed.

  Example:
    >>> round(iou_box_coef([[0.0, 0.0, 2.0, 2.0]], [[1.0, 1.0, 3.0, 3.0]], mode="iou").item(), 4)
    0.1429
  """
  check_choice("mode", mode, ("giou", "iou"))
  check_dtype("dtype", dtype)
  y_true, y_pred = _cast(y_true, y_pred, dtype)
  if y_pred.ndim == 0 or y_pred.shape[-1] != 4:
    raise ValueError(f"boxes of shape {y_pred.shape} are not allowed; expected a last axis of 4: "
                     "[y_min, x_min, y_max, x_max].")
  true, pred = jnp.moveaxis(y_true, -1, 0), jnp.moveaxis(y_pred, -1, 0)
  intersection = _box_area(_tf_maximum(true[0], pred[0]), _tf_maximum(true[1], pred[1]),
                           _tf_minimum(true[2], pred[2]), _tf_minimum(true[3], pred[3]))
  union = _box_area(*true) + _box_area(*pred) - intersection
  values = _div_no_nan(intersection, union)
  if mode == "giou":
    enclosing = _box_area(_tf_minimum(true[0], pred[0]), _tf_minimum(true[1], pred[1]),
                          _tf_maximum(true[2], pred[2]), _tf_maximum(true[3], pred[3]))
    values = values - _div_no_nan(enclosing - union, enclosing)
  return _mean(values, per_example) if per_example else values


def iou_box(y_true, y_pred, mode: str = "giou", dtype: Any = jnp.float32, per_example: bool = True) -> Array:
  """keras-unet-collection's `iou_box` loss: `1 - iou_box_coef(y_true, y_pred, mode, dtype)`.

  With `per_example=False` length-1 axes are squeezed first, as keras-unet-collection does (one box `(1, 4)`
  gives a scalar).

  Example:
    >>> round(iou_box([[0.0, 0.0, 2.0, 2.0]], [[1.0, 1.0, 3.0, 3.0]]).item(), 4)
    1.0794
  """
  if not per_example:
    y_true, y_pred = jnp.squeeze(jnp.asarray(y_true)), jnp.squeeze(jnp.asarray(y_pred))
  return 1.0 - iou_box_coef(y_true, y_pred, mode, dtype, per_example)


def triplet_1d(y_true, y_pred, N: int, margin: float = 5.0, per_example: bool = True) -> Array:
  """keras-unet-collection's `triplet_1d`: `max(0, margin + |a - p|^2 - |a - n|^2)`, averaged.

  `y_pred` `(batch, 3 N)` holds each example's anchor `a`, positive `p` and negative `n` embeddings of size
  `N`, concatenated; `y_true` is not used (Keras's loss signature asks for it).

  Example:
    >>> triplet_1d(None, [[0.0, 1.0, 3.0]], N=1, margin=1.0).tolist()
    [0.0]
  """
  del y_true
  check_positive_int("N", N)
  _check_number("margin", margin)
  y_pred = jnp.asarray(y_pred, jnp.float32)
  if y_pred.ndim < 2 or y_pred.shape[1] != 3 * N:
    raise ValueError(f"y_pred has shape {y_pred.shape}; expected (batch, 3 * N) = (batch, {3 * N}): anchor, "
                     f"positive and negative embeddings of size N={N}.")
  anchor, positive, negative = y_pred[:, :N], y_pred[:, N:2 * N], y_pred[:, 2 * N:]
  d_pos = jnp.sum(jnp.square(anchor - positive), axis=1)
  d_neg = jnp.sum(jnp.square(anchor - negative), axis=1)
  hinge = _tf_maximum(jnp.zeros((), jnp.float32), margin + d_pos - d_neg)
  return _mean(hinge, per_example)


def _crps(y_true, y_pred, factor: float, per_example: bool, ignore_nan: bool) -> Array:
  """keras-unet-collection's CRPS approximation of each row (first axis), averaged unless `per_example`."""
  _check_number("factor", factor)
  y_true, y_pred = _cast(y_true, y_pred)
  if not per_example:
    if y_pred.size == 1:
      raise ValueError(f"y_pred of shape {y_pred.shape} is squeezed to a scalar by keras-unet-collection's crps2d; "
                       "expected maps (batch, height, width, 1).")
    y_true, y_pred = jnp.squeeze(y_true), jnp.squeeze(y_pred)
  axes = tuple(range(1, y_pred.ndim))
  mean, std = (jnp.nanmean, jnp.nanstd) if ignore_nan else (jnp.mean, jnp.std)
  rows = mean(jnp.abs(y_pred - y_true), axis=axes) - factor * std(y_pred, axis=axes)
  return rows if per_example else jnp.sum(rows) / rows.shape[0]


def crps2d_tf(y_true, y_pred, factor: float = 0.05, per_example: bool = True) -> Array:
  """keras-unet-collection's `crps2d_tf`: a CRPS approximation, `mean |y_pred - y_true| - factor std(y_pred)`.

  Computed per example, then averaged over the batch (`per_example=False`). keras-unet-collection squeezes
  length-1 axes first, so a batch of one map `(1, h, w, 1)` is averaged over its `h` rows instead.

  Example:
    >>> round(crps2d_tf([[0.0, 0.0]], [[1.0, 3.0]], factor=0.5).item(), 4)
    1.5
  """
  return _crps(y_true, y_pred, factor, per_example, ignore_nan=False)


def crps2d_np(y_true, y_pred, factor: float = 0.05, per_example: bool = True) -> Array:
  """keras-unet-collection's `crps2d_np`: `crps2d_tf` ignoring NaNs (NumPy's `nanmean` and `nanstd`).

  For evaluation: NaN targets give NaN gradients.

  Example:
    >>> import numpy as np
    >>> round(crps2d_np([[0.0, np.nan]], [[1.0, 3.0]], factor=0.5).item(), 4)
    0.5
  """
  return _crps(y_true, y_pred, factor, per_example, ignore_nan=True)


# keras-unet-collection's `losses` names -> the functions computing them here.
KERAS_UNET_COLLECTION = types.MappingProxyType({
    "crps2d_np": crps2d_np, "crps2d_tf": crps2d_tf, "dice": kuc_dice, "dice_coef": dice_coef,
    "focal_tversky": focal_tversky, "iou_box": iou_box, "iou_box_coef": iou_box_coef, "iou_seg": iou_seg,
    "ms_ssim": ms_ssim, "triplet_1d": triplet_1d, "tversky": kuc_tversky, "tversky_coef": tversky_coef,
})


def _bind(name: str, fn: Callable[..., Array], options: dict[str, Any]) -> Callable[..., Array]:
  return functools.partial(fn, **options) if options else fn


# Keras's function names (not its classes: `keras.losses.Dice()` reduces over the whole batch) and
# keras-unet-collection's losses (its `dice` and `tversky` as `kuc_dice` and `kuc_tversky`: Keras's take the names;
# its coefficients and NaN-ignoring `crps2d_np` are no training losses). Each function's keyword arguments are the
# loss's options.
LOSSES = Registry("segmentation loss", inputs=("y_true", "y_pred"), make=_bind)
for _name, _fn, _aliases in (
    ("dice", dice, ()), ("jaccard", jaccard, ("iou",)), ("tversky", tversky, ()), ("kuc_dice", kuc_dice, ()),
    ("focal_tversky", focal_tversky, ()), ("binary_focal_crossentropy", binary_focal_crossentropy, ()),
    ("categorical_focal_crossentropy", categorical_focal_crossentropy, ()),
    ("binary_crossentropy", binary_crossentropy, ()), ("categorical_crossentropy", categorical_crossentropy, ()),
    ("sparse_categorical_crossentropy", sparse_categorical_crossentropy, ()),
    ("kuc_tversky", kuc_tversky, ()), ("iou_seg", iou_seg, ()), ("ms_ssim", ms_ssim, ()), ("iou_box", iou_box, ()),
    ("triplet_1d", triplet_1d, ()), ("crps2d_tf", crps2d_tf, ()),
):
  LOSSES.register(_name, _fn, aliases=_aliases)
del _name, _fn, _aliases


def get(name: str | Mapping[str, Any] | Callable[..., Array], /, **options: Any) -> Callable[[Array, Array], Array]:
  """The loss `name` with `options` bound: `loss(y_true, y_pred) -> (batch,)` losses.

  Args:
    name: a name in `LOSSES`; or a config dict `{"class_name": name, "config": options}`; or a
      callable, returned as is.
    **options: the loss function's keyword arguments (`alpha`, `gamma`, `per_example`, ...).

  Raises:
    ValueError: for an unknown name or an option the loss does not take.

  Example:
    >>> loss = get("binary_focal_crossentropy", gamma=3.0)
  """
  return LOSSES.get(name, **options)


def combined(*terms: tuple[Callable[[Array, Array], Array], float]) -> Callable[[Array, Array], Array]:
  """A weighted sum of per-example losses, e.g. `combined((get("binary_crossentropy"), 1.0), (get("dice"), 1.0))`."""
  if not terms:
    raise ValueError("combined() needs at least one (loss, weight) pair.")

  def loss(y_true, y_pred):
    return sum(weight * fn(y_true, y_pred) for fn, weight in terms)

  return loss
