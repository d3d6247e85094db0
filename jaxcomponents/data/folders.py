"""Image folders with one sub-folder per class (the cats-vs-dogs layout)."""

from __future__ import annotations

import os

import numpy as np

from jaxcomponents import extras
from jaxcomponents.data.dataset import RecordDataset
from jaxcomponents.data.transforms import resize_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def list_image_folder(root: str | os.PathLike) -> tuple[list[tuple[str, int]], list[str]]:
  """Returns ([(path, label)], class names), classes in alphabetical order like Keras.

  Raises:
    FileNotFoundError: if `root` does not exist or has no class folders with images.
  """
  root = os.fspath(root)
  if not os.path.isdir(root):
    raise FileNotFoundError(f"image folder {root!r} does not exist.")
  classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
  files = [(os.path.join(root, c, f), label) for label, c in enumerate(classes)
           for f in sorted(os.listdir(os.path.join(root, c))) if f.lower().endswith(IMAGE_EXTENSIONS)]
  if not files:
    raise FileNotFoundError(f"{root!r} has no images in class sub-folders (expected {root}/<class>/<image>"
                            f"{'/'.join(IMAGE_EXTENSIONS)}).")
  return files, classes


def read_image(path: str, size: tuple[int, int]) -> np.ndarray:
  """Reads an image as RGB uint8 (H, W, 3), resized to `size`.

  Raises:
    ValueError: naming the file, if it is not a readable image.
  """
  pil_image = extras.require("PIL.Image", "data", "reading image files")
  try:
    with pil_image.open(path) as image:
      rgb = np.asarray(image.convert("RGB"))
  except (pil_image.UnidentifiedImageError, OSError) as e:
    raise ValueError(f"{path} is not a readable image ({e}).") from e
  return resize_image(rgb, size)


def image_folder_dataset(root: str | os.PathLike, image_size: tuple[int, int], batch_size: int, *,
                         shuffle: bool = True, seed: int = 0) -> tuple[RecordDataset, list[str]]:
  """Batches of (image, class index) from `root/<class>/<image>`; returns the class names too.

  Example:
    data, classes = image_folder_dataset("PetImages", (160, 160), 32)
  """
  files, classes = list_image_folder(root)
  to_example = lambda record: (read_image(record[0], image_size), np.int32(record[1]))
  return RecordDataset(files, to_example, batch_size, shuffle=shuffle, seed=seed, num_classes=len(classes)), classes
