"""Host-side image operations for input pipelines: decode, resize, crop, flip, normalise.

NumPy, Pillow and OpenCV only (no JAX), so they run in Grain's worker
processes without touching an accelerator. OpenCV (in the `data` extra)
decodes and resizes when it is installed; Pillow and NumPy compute the same
images without it (the decoders give identical pixels, the resizes agree to
float rounding). Random operations take a `np.random.Generator` (the pipeline
seeds one per example). An image's width and height are checked against
`jaxcomponents.limits`' `max_image_pixels` before it is decoded.
"""

from __future__ import annotations

import io
import math
import os
import struct
from types import ModuleType

import numpy as np

from jaxcomponents import extras, limits
from jaxcomponents.errors import check_choice

RESIZE_METHODS = ("bilinear", "nearest")
IMAGENET_MEAN = np.asarray([0.485, 0.456, 0.406], np.float32) * 255.0
IMAGENET_STD = np.asarray([0.229, 0.224, 0.225], np.float32) * 255.0
_JPEG_SCALES = (8, 4, 2)  # the reduced scales libjpeg decodes at (1/8, 1/4, 1/2), largest reduction first


def _opencv() -> ModuleType | None:
  """OpenCV when installed: about twice as fast as Pillow at decoding JPEGs, eight times at resizing."""
  try:
    import cv2
  except ModuleNotFoundError:
    return None
  return cv2


def _read(image: str | os.PathLike | bytes) -> tuple[bytes, str]:
  if isinstance(image, bytes):
    return image, "<bytes>"
  name = os.fspath(image)
  try:
    with open(name, "rb") as f:
      return f.read(), name
  except OSError as e:
    raise ValueError(f"{name} is not a readable image ({e}).") from e


def _open(data: bytes, name: str, max_pixels: int | None = None):
  """The image opened lazily by Pillow (its header read, no pixel decoded), its size checked first.

  Pillow's format plugins open it as `PIL.Image.open` does, but without
  `PIL.Image.MAX_IMAGE_PIXELS` (a process-wide setting, left as it is), so
  one limit holds on every path: `max_pixels`, by default
  `jaxcomponents.limits`' `max_image_pixels`.

  Raises:
    ValueError: naming the file, if no Pillow plugin reads its header (a `limits.LimitExceededError` if it
      declares more pixels than the limit).
  """
  pil_image = extras.require("PIL.Image", "data", "decoding images")
  prefix = data[:16]
  for load_plugins in (pil_image.preinit, pil_image.init):
    load_plugins()
    for image_format in list(pil_image.ID):
      factory, accept = pil_image.OPEN[image_format]
      try:
        accepted = not accept or accept(prefix)
        if not accepted or isinstance(accepted, str):  # Pillow's plugins answer a string to decline with a reason
          continue
        opened = factory(io.BytesIO(data), "")
      except (SyntaxError, IndexError, TypeError, struct.error):  # what PIL.Image.open takes for "not this format"
        continue
      except OSError as e:
        raise ValueError(f"{name} is not a readable image ({e}).") from e
      limits.check_image_pixels(name, *opened.size, max_pixels)
      return opened
  raise ValueError(f"{name} is not a readable image (no image format of Pillow's reads its first bytes "
                   f"{prefix[:8].hex() or '(it is empty)'}).")


def _decode(data: bytes, name: str, reduce: int = 1, max_pixels: int | None = None, opened=None) -> np.ndarray:
  """RGB uint8; a JPEG at 1/`reduce` of its size (libjpeg's reduced-scale decoding) when `reduce` > 1.

  The header is read (`_open`, or `opened` when given) and its pixel count checked before anything is decoded.
  """
  opened = _open(data, name, max_pixels) if opened is None else opened
  if not data.startswith(b"\xff\xd8"):  # not a JPEG: other formats have no reduced decoding
    reduce = 1
  with opened:
    cv2 = _opencv()
    if cv2 is not None:
      flags = cv2.IMREAD_IGNORE_ORIENTATION | cv2.IMREAD_COLOR_RGB  # EXIF ignored, as Pillow and Keras do
      if reduce > 1:
        flags |= getattr(cv2, f"IMREAD_REDUCED_COLOR_{reduce}") & ~cv2.IMREAD_COLOR
      try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
      except cv2.error:  # Pillow, below, names the problem
        decoded = None
      if decoded is not None:
        return decoded
    try:  # without OpenCV, or a format it does not read
      if reduce > 1:
        opened.draft("RGB", (opened.size[0] // reduce, opened.size[1] // reduce))
      return np.asarray(opened.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as e:
      raise ValueError(f"{name} is not a readable image ({e}).") from e


def decode_image(image: str | os.PathLike | bytes, *, max_pixels: int | None = None) -> np.ndarray:
  """Decodes a file or encoded bytes (JPEG, PNG, BMP, GIF) to RGB uint8 (H, W, 3).

  EXIF orientation is ignored (as Keras's `load_img` and `tf.io.decode_jpeg`
  do); an alpha channel is dropped. The header's width x height is checked
  against `max_pixels` (default: `jaxcomponents.limits`' `max_image_pixels`,
  about 179 million) before anything is decoded, with OpenCV or Pillow.

  Raises:
    ValueError: naming the file, if it is not a readable image (a
      `limits.LimitExceededError` if it has more pixels than the limit).

  Example:
    >>> import io, PIL.Image
    >>> buffer = io.BytesIO(); PIL.Image.new("RGB", (4, 3)).save(buffer, "PNG")
    >>> decode_image(buffer.getvalue()).shape
    (3, 4, 3)
  """
  data, name = _read(image)
  return _decode(data, name, max_pixels=max_pixels)


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Half-pixel-centre linear interpolation taps (no antialiasing), as Keras's `Resizing`."""
  x = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
  lo = np.floor(x).astype(np.int64)
  return lo, np.minimum(lo + 1, n_in - 1), (x - lo).astype(np.float32)


def resize_image(image: np.ndarray, size: tuple[int, int], method: str = "bilinear") -> np.ndarray:
  """Resizes one (H, W, C) or (H, W) image to `size`, keeping its dtype.

  Computes what Keras's `Resizing(height, width, interpolation)` computes
  (`jax.image.resize` without antialiasing); integer images are rounded
  (a value within float rounding of .5 may round either way).

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
  cv2 = _opencv()
  if (cv2 is not None and image.dtype in (np.uint8, np.float32)
      and (image.ndim == 2 or image.ndim == 3 and image.shape[2] <= 512)):
    # OpenCV's INTER_LINEAR has the same half-pixel taps; computed in float32, it agrees with the lines below to
    # float rounding (rounded to uint8, a value within rounding of .5 may land on either side).
    values = cv2.resize(np.ascontiguousarray(image, np.float32), (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    return _to_dtype(values.reshape((out_h, out_w) + image.shape[2:]), image.dtype)
  lo, hi, w = _taps(height, out_h)
  w = w.reshape((-1,) + (1,) * (image.ndim - 1))
  # Rows gathered in the input's dtype (a quarter of the memory traffic for uint8), weighed in float32.
  values = np.multiply(image[lo], 1.0 - w, dtype=np.float32)
  values += np.multiply(image[hi], w, dtype=np.float32)
  lo, hi, w = _taps(width, out_w)
  w = w.reshape((1, -1) + (1,) * (image.ndim - 2))
  return _to_dtype(values[:, lo] * (1.0 - w) + values[:, hi] * w, image.dtype)


def _to_dtype(values: np.ndarray, dtype) -> np.ndarray:
  """Interpolated values back to the image's dtype (rounded for integers; a convex mix needs no clipping)."""
  if np.issubdtype(dtype, np.integer):
    values = np.rint(values, out=values)
  return values.astype(dtype, copy=False)


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
                               scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                               *, max_pixels: int | None = None) -> np.ndarray:
  """`random_resized_crop` of an encoded image, decoding a JPEG at a reduced scale where the crop allows.

  The crop is drawn on the full size (as `random_resized_crop` draws it); a
  JPEG is then decoded at the smallest of libjpeg's 1/8, 1/4 and 1/2 scales
  that keeps the crop at least as large as `size` (the same idea as
  TensorFlow's `decode_and_crop_jpeg`: far less work per image), and the crop
  is resized bilinearly as `resize_image` resizes. The header is checked
  against `max_pixels` before decoding, as in `decode_image`.

  Example:
    >>> import io, PIL.Image
    >>> buffer = io.BytesIO(); PIL.Image.new("RGB", (64, 48)).save(buffer, "JPEG")
    >>> decode_random_resized_crop(buffer.getvalue(), (16, 16), np.random.default_rng(0)).shape
    (16, 16, 3)
  """
  data, name = _read(image)
  opened = _open(data, name, max_pixels)
  (width, height), jpeg = opened.size, opened.format == "JPEG"
  top, left, h, w = sample_crop(height, width, rng, scale, ratio)
  reduce = next((f for f in _JPEG_SCALES if jpeg and h // f >= size[0] and w // f >= size[1]), 1)
  decoded = _decode(data, name, reduce, opened=opened)
  fy, fx = height / decoded.shape[0], width / decoded.shape[1]
  rows = slice(int(top / fy), max(int(top / fy) + 1, min(decoded.shape[0], round((top + h) / fy))))
  cols = slice(int(left / fx), max(int(left / fx) + 1, min(decoded.shape[1], round((left + w) / fx))))
  return resize_image(decoded[rows, cols], size)


def flip_left_right(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Mirrors the image horizontally with probability 1/2 (Keras's `RandomFlip("horizontal")`)."""
  # A contiguous copy, so the operations after it (normalize, stacking) run on plain rows.
  return np.ascontiguousarray(image[:, ::-1]) if rng.random() < 0.5 else image


def normalize(image: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
  """`(image - mean) / std` in float32, per channel (ImageNet's statistics by default).

  Example:
    >>> normalize(np.full((1, 2, 3), 255, np.uint8), mean=0.0, std=255.0).tolist()
    [[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]]
  """
  image = np.asarray(image)
  scale = 1.0 / np.asarray(std, np.float32)
  shift = np.asarray(mean, np.float32) * scale
  shape = image.shape
  if image.ndim >= 2 and scale.ndim == shift.ndim == 1 and scale.size == shift.size == shape[-1]:
    # Per-channel constants tiled along a row, so NumPy's inner loop runs over W * C values instead of C.
    image = image.reshape(-1, shape[-2] * shape[-1])
    scale, shift = np.tile(scale, shape[-2]), np.tile(shift, shape[-2])
  out = np.multiply(image, scale, dtype=np.float32)
  out -= shift
  return out.reshape(shape)
