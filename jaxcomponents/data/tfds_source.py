"""TFDS datasets by name through `tfds.data_source`: random access, no TensorFlow needed to read.

Preparing a TFDS dataset (the first download and conversion) needs
TensorFlow: run `tfds build <name> --file_format=array_record` once where
TensorFlow is installed (random access needs the array_record format), or
point `data_dir` at data prepared that way.
"""

from __future__ import annotations

import os

import numpy as np

from jaxcomponents import extras
from jaxcomponents.data.dataset import RecordDataset
from jaxcomponents.data.image import resize_image


def tfds_dataset(name: str, split: str, batch_size: int, *, data_dir: str | os.PathLike | None = None,
                 image_key: str = "image", label_key: str = "label", image_size: tuple[int, int] | None = None,
                 shuffle: bool = True, seed: int = 0, download: bool = False, limit: int = 0) -> RecordDataset:
  """Batches of a TFDS split, read through `tfds.data_source`.

  Args:
    name: a TFDS name, e.g. "cifar10", "mnist", "cats_vs_dogs", "oxford_iiit_pet".
    split: e.g. "train", "test[:10%]".
    image_key, label_key: the feature names of the image and the target.
    image_size: resize every image to (height, width) (bilinear, like Keras's Resizing).
    download: let TFDS download and prepare the data (needs TensorFlow).
    limit: use only the first `limit` records (0: all).

  Raises:
    FileNotFoundError: if the dataset is not prepared, saying how to prepare it.

  Example:
    data = tfds_dataset("cifar10", "train", batch_size=128)
  """
  tfds = extras.require("tensorflow_datasets", "data", "tfds_dataset")

  try:
    source = tfds.data_source(name, split=split, data_dir=data_dir, download=download)
  except Exception as e:  # TFDS raises several types for a dataset that is not prepared
    raise FileNotFoundError(
        f"TFDS dataset {name!r} (split {split!r}) is not prepared in {data_dir or tfds.core.constants.DATA_DIR} "
        f"({type(e).__name__}: {e}). Prepare it once where TensorFlow is installed: "
        f"`tfds build {name} --file_format=array_record` (or pass download=True), then read it here "
        "without TensorFlow.") from e
  info = source.dataset_info if hasattr(source, "dataset_info") else None
  num_classes = None
  if info is not None and label_key in info.features and hasattr(info.features[label_key], "num_classes"):
    num_classes = info.features[label_key].num_classes

  def to_example(record):
    image = np.asarray(record[image_key])
    if image_size is not None:
      image = resize_image(image, image_size)
    return image, np.asarray(record[label_key])

  if limit:
    source = [source[i] for i in range(min(limit, len(source)))]
  return RecordDataset(source, to_example, batch_size, shuffle=shuffle, seed=seed, num_classes=num_classes)
