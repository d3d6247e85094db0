"""Host-side image operations for input pipelines: decode, resize, crop, flip, normalise.

NumPy and Pillow only (no JAX), so they run in Grain's worker processes
without touching an accelerator. Random operations take a
`np.random.Generator` (the pipeline seeds one per example).
"""

from __future__ import annotations

import io
import math
import os

import numpy as np

from jaxcomponents import extras
from jaxcomponents.errors import check_choice

RESIZE_METHODS = ("bilinear", "nearest")
IMAGENET_MEAN = np.asarray([0.485, 0.456, 0.406], np.float32) * 255.0
IMAGENET_STD = np.asarray([0.229, 0.224, 0.225], np.float32) * 255.0


def _open(image: str | os.PathLike | bytes):
  pil_image = extras.require("PIL.Image", "data", "decoding images")
  name = "<bytes>" if isinstance(image, bytes) else os.fspath(image)
  try:
    return pil_image.open(io.BytesIO(image) if isinstance(image, bytes) else image)
  except (pil_image.UnidentifiedImageError, OSError) as e:
    raise ValueError(f"{name} is not a readable image ({e}).") from e


def _rgb(opened, name: str) -> np.ndarray:
  try:
    with opened as image:
      return np.asarray(image.convert("RGB"))
  except OSError as e:
    raise ValueError(f"{name} is not a readable image ({e}).") from e


def decode_image(image: str | os.PathLike | bytes) -> np.ndarray:
  """Decodes a file or encoded bytes (JPEG, PNG, BMP, GIF) to RGB uint8 (H, W, 3).

  Raises:
    ValueError: naming the file, if it is not a readable image.
  """
  return _rgb(_open(image), "<bytes>" if isinstance(image, bytes) else os.fspath(image))


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Half-pixel-centre linear interpolation taps (no antialiasing), as Keras's `Resizing`."""
  x = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
  lo = np.floor(x).astype(np.int64)
  return lo, np.minimum(lo + 1, n_in - 1), (x - lo).astype(np.float32)


def resize_image(image: np.ndarray, size: tuple[int, int], method: str = "bilinear") -> np.ndarray:
  """Resizes one (H, W, C) or (H, W) image to `size`, keeping its dtype.

  Computes what Keras's `Resizing(height, width, interpolation)` computes
  (`jax.image.resize` without antialiasing); integer images are rounded.

  Example:
    >>> resize_image(np.zeros((4, 6, 3), np.uint8), (2, 3)).shape
    (2, 3, 3)
  """
  check_choice("method", method, RESIZE_METHODS)
  image = np.asarray(image)
  (height, width), (out_h, out_w) = image.shape[:2], size
  if method == "nearest":
    rows = np.minimum(np.floor((np.arange(out_h) + 0.5) * (height / out_h)).astype(np.int64), height - 1)
    cols = np.minimum(np.floor((np.arange(out_w) + 0.5) * (width / out_w)).astype(np.int64), width - 1)
    return image[rows][:, cols]
  values = image.astype(np.float32)
  lo, hi, w = _taps(height, out_h)
  w = w.reshape((-1,) + (1,) * (image.ndim - 1))
  values = values[lo] * (1.0 - w) + values[hi] * w
  lo, hi, w = _taps(width, out_w)
  w = w.reshape((1, -1) + (1,) * (image.ndim - 2))
  values = values[:, lo] * (1.0 - w) + values[:, hi] * w
  if np.issubdtype(image.dtype, np.integer):
    info = np.iinfo(image.dtype)
    values = np.clip(np.round(values), info.min, info.max)
  return values.astype(image.dtype)


def sample_crop(height: int, width: int, rng: np.random.Generator, scale: tuple[float, float] = (0.08, 1.0),
                ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
  """An Inception-style random crop `(top, left, crop_height, crop_width)`.

  Area fraction uniform in `scale`, aspect ratio log-uniform in `ratio`; after
  ten misses, the largest centred crop within `ratio`.
  """
  area = height * width
  for _ in range(10):
    target = area * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
    w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
    if 0 < w <= width and 0 < h <= height:
      return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
  aspect = width / height
  if aspect < ratio[0]:
    w, h = width, round(width / ratio[0])
  elif aspect > ratio[1]:
    h, w = height, round(height * ratio[1])
  else:
    h, w = height, width
  return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(image: np.ndarray, size: tuple[int, int], rng: np.random.Generator,
                        scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)):
  """A random crop (`sample_crop`) of a decoded image, resized bilinearly to `size`.

  Example:
    >>> random_resized_crop(np.zeros((50, 40, 3), np.uint8), (16, 16), np.random.default_rng(0)).shape
    (16, 16, 3)
  """
  top, left, h, w = sample_crop(*np.shape(image)[:2], rng, scale, ratio)
  return resize_image(np.asarray(image)[top:top + h, left:left + w], size)


def decode_random_resized_crop(image: str | os.PathLike | bytes, size: tuple[int, int], rng: np.random.Generator,
                               scale: tuple[float, float] = (0.08, 1.0),
                               ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> np.ndarray:
  """Decodes only what a random resized crop needs: JPEGs at a reduced scale where the crop allows.

  The crop is drawn on the full size, then libjpeg decodes at the largest
  1/2, 1/4 or 1/8 scale that still covers the output resolution (Pillow's
  `draft`), and Pillow resamples the box (bilinear, antialiased). The
  same idea as TensorFlow's `decode_and_crop_jpeg`: far less work per image.
  """
  name = "<bytes>" if isinstance(image, bytes) else os.fspath(image)
  pil_image = extras.require("PIL.Image", "data", "decoding images")
  with _open(image) as opened:
    width, height = opened.size
    top, left, h, w = sample_crop(height, width, rng, scale, ratio)
    try:
      factor = 1
      if opened.format == "JPEG":
        draft_size = (max(1, width * size[1] // w), max(1, height * size[0] // h))
        opened.draft("RGB", draft_size)
        factor = width / opened.size[0]
      box = (left / factor, top / factor, (left + w) / factor, (top + h) / factor)
      out = opened.convert("RGB").resize((size[1], size[0]), pil_image.BILINEAR, box=box)
    except OSError as e:
      raise ValueError(f"{name} is not a readable image ({e}).") from e
    return np.asarray(out)


def flip_left_right(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Mirrors the image horizontally with probability 1/2 (Keras's `RandomFlip("horizontal")`)."""
  return image[:, ::-1] if rng.random() < 0.5 else image


def normalize(image: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
  """`(image - mean) / std` in float32, per channel (ImageNet's statistics by default), in two passes."""
  std = np.asarray(std, np.float32)
  out = np.multiply(image, (1.0 / std).astype(np.float32), dtype=np.float32)
  out -= (np.asarray(mean, np.float32) / std)
  return out
