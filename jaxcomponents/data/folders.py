"""Image folders with one sub-folder per class (the cats-vs-dogs layout)."""

from __future__ import annotations

import os

import numpy as np

from jaxcomponents import limits
from jaxcomponents.errors import check_choice
from jaxcomponents.data.dataset import RecordDataset
from jaxcomponents.data.image import decode_image, resize_image
from jaxcomponents.data.pipeline import Augment

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def list_image_folder(root: str | os.PathLike, *,
                      follow_links: bool = False) -> tuple[list[tuple[str, int]], list[str]]:
  """Returns ([(path, label)], class names), classes in alphabetical order like Keras (hidden folders skipped).

  Images are found in each class folder and, as Keras's
  `image_dataset_from_directory` finds them, in its sub-folders: sub-folders
  that are symbolic links only with `follow_links` (Keras's default, False,
  keeps the walk inside the class folders). As in Keras, a class folder may
  itself be a link, and links to image files are read.

  Raises:
    FileNotFoundError: if `root` does not exist or has no class folders with images.
  """
  root = os.fspath(root)
  if not os.path.isdir(root):
    raise FileNotFoundError(f"image folder {root!r} does not exist.")
  classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
  files = []
  for label, name in enumerate(classes):
    walk = sorted(os.walk(os.path.join(root, name), followlinks=follow_links), key=lambda entry: entry[0])
    files.extend((os.path.join(folder, f), label) for folder, _, names in walk
                 for f in sorted(names) if f.lower().endswith(IMAGE_EXTENSIONS))
  if not files:
    raise FileNotFoundError(f"{root!r} has no images in class sub-folders (expected {root}/<class>/<image>"
                            f"{'/'.join(IMAGE_EXTENSIONS)}).")
  return files, classes


IMAGE_DTYPES = ("uint8", "float32")


def read_image(path: str, size: tuple[int, int], *, max_pixels: int | None = None,
               dtype: str = "uint8") -> np.ndarray:
  """Reads an image as RGB (H, W, 3), resized to `size` (bilinear, as Keras).

  `dtype="uint8"` rounds the resized values (a quarter of the memory); `"float32"` keeps them as Keras's
  `image_dataset_from_directory` gives them. `max_pixels` is as in `decode_image` (default:
  `jaxcomponents.limits`' `max_image_pixels`).

  Raises:
    ValueError: naming the file, if it is not a readable image or has more pixels than the limit.
  """
  check_choice("dtype", dtype, IMAGE_DTYPES)
  return resize_image(decode_image(path, max_pixels=max_pixels).astype(dtype, copy=False), size)


def image_folder_dataset(root: str | os.PathLike, image_size: tuple[int, int], batch_size: int, *,
                         shuffle: bool = True, seed: int = 0, augment: Augment | None = None, threads: int = 4,
                         workers: int = 0, follow_links: bool = False,
                         dtype: str = "uint8") -> tuple[RecordDataset, list[str]]:
  """Batches of (image, class index) from `root/<class>/<image>`; returns the class names too.

  Images are decoded and resized to `image_size` (bilinear, as Keras's
  `image_dataset_from_directory`), as uint8 (rounded), or with `dtype="float32"`
  the values Keras's gives; `augment`, `threads` and `workers` are as
  in `BatchPipeline`; `follow_links` is as in `list_image_folder`. Images
  are checked against the `max_image_pixels` limit in force when the dataset
  is made (`jaxcomponents.limits`), in worker processes too.

  Example:
    data, classes = image_folder_dataset("PetImages", (160, 160), 32, workers=4)
  """
  check_choice("dtype", dtype, IMAGE_DTYPES)
  files, classes = list_image_folder(root, follow_links=follow_links)
  example = _FolderExample(tuple(image_size), limits.get_limits().max_image_pixels, dtype)
  return RecordDataset(files, example, batch_size, shuffle=shuffle, seed=seed, num_classes=len(classes),
                       augment=augment, threads=threads, workers=workers), classes


class _FolderExample:
  """(path, label) -> (image, label); a class so that worker processes can unpickle it."""

  def __init__(self, size: tuple[int, int], max_pixels: int, dtype: str):
    self.size, self.max_pixels, self.dtype = size, max_pixels, dtype

  def __call__(self, record: tuple[str, int]) -> tuple[np.ndarray, np.int32]:
    return read_image(record[0], self.size, max_pixels=self.max_pixels, dtype=self.dtype), np.int32(record[1])
