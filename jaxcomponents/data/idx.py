"""MNIST-format (IDX) datasets: MNIST and Fashion-MNIST from local files.

Looked for, in order: a directory you name, Keras's cache
(`~/.keras/datasets/fashion-mnist/*.gz`, `~/.keras/datasets/mnist.npz`) and
Debian's packages (`apt-get install dataset-fashion-mnist` puts the real
Fashion-MNIST files under `/usr/share/datasets/fashion-mnist`).
"""

from __future__ import annotations

import gzip
import math
import os

import numpy as np

from jaxcomponents import limits
from jaxcomponents.data.npz_source import load_npz_dataset
from jaxcomponents.errors import check_choice

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
           0x0E: np.dtype(">f8")}
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
DATASETS = {"mnist": "mnist", "fashion_mnist": "fashion-mnist"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads one IDX file (optionally gzipped) into an array.

  The header is checked first (its size against `jaxcomponents.limits`'
  `max_bytes`); the body is then read in pieces, so a header promising more
  than the file holds costs only what it holds, and a gzipped body may expand
  to at most `max_expansion` times the file's size.

  Raises:
    ValueError: naming the file, if it is not a well-formed IDX file (a
      `limits.LimitExceededError` if it declares or expands to more than the limits allow).
  """
  path = os.fspath(path)
  opener = gzip.open if path.endswith(".gz") else open
  try:
    budget = limits.file_budget(path)
    with opener(path, "rb") as f:
      magic = f.read(4)  # the header is checked before the body is read (or decompressed)
      if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file: bad magic number {magic.hex()}.")
      dtype, ndim = np.dtype(_DTYPES[magic[2]]), magic[3]
      dims = f.read(4 * ndim)
      if len(dims) < 4 * ndim:
        raise ValueError(f"{path} is damaged: its header ends after {4 + len(dims)} bytes.")
      shape = tuple(int.from_bytes(dims[4 * i:4 * i + 4], "big") for i in range(ndim))
      expected = math.prod(shape) * dtype.itemsize
      budget.check_size(f"its header {shape} {dtype}", expected)
      what = "its decompressed body" if opener is gzip.open else "its body"
      body = limits.read_at_most(f, expected + 1, budget, what)
  except (OSError, EOFError, gzip.BadGzipFile) as e:
    raise ValueError(f"{path} cannot be read as an IDX file ({e}).") from e
  if len(body) != expected:
    raise ValueError(f"{path} is damaged: {4 + 4 * ndim + len(body)}{'+' if len(body) > expected else ''} bytes "
                     f"where its header {shape} promises {4 + 4 * ndim + expected}.")
  return body.view(dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def search_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[str]:
  """The directories searched for dataset `name`, in order."""
  folder = DATASETS[name]
  keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
  dirs = [os.fspath(data_dir)] if data_dir is not None else []
  return dirs + [os.path.join(keras_home, "datasets", folder), os.path.join(keras_home, "datasets"),
                 os.path.join("/usr/share/datasets", folder)]


def _find(directory: str, stem: str) -> str | None:
  for candidate in (stem + ".gz", stem):
    path = os.path.join(directory, candidate)
    if os.path.exists(path):
      return path
  return None


def load_idx_dataset(name: str, data_dir: str | os.PathLike | None = None):
  """Returns `((x_train, y_train), (x_test, y_test))` as uint8 images (N, 28, 28) and labels.

  Args:
    name: "mnist" or "fashion_mnist".
    data_dir: a directory to look in first.

  Raises:
    FileNotFoundError: saying where it looked and how to get the files.
    ValueError: naming a damaged file.

  Example:
    (x, y), _ = load_idx_dataset("fashion_mnist")
  """
  check_choice("name", name, DATASETS)
  for directory in search_dirs(name, data_dir):
    keras_npz = os.path.join(directory, f"{name}.npz")
    if os.path.exists(keras_npz):
      return load_npz_dataset(keras_npz)
    paths = {split: [_find(directory, stem) for stem in stems] for split, stems in _FILES.items()}
    if all(p is not None for files in paths.values() for p in files):
      splits = []
      for split in ("train", "test"):
        images, labels = (read_idx(p) for p in paths[split])
        if len(images) != len(labels):
          raise ValueError(f"{paths[split][0]} has {len(images)} images but {paths[split][1]} {len(labels)} labels.")
        splits.append((images, labels))
      return tuple(splits)
  hint = ("`apt-get install dataset-fashion-mnist` (Debian) or `keras.datasets.fashion_mnist.load_data()` once "
          "on a machine with internet access" if name == "fashion_mnist" else
          "`keras.datasets.mnist.load_data()` once on a machine with internet access")
  raise FileNotFoundError(
      f"{name} not found; looked for {name}.npz or the four IDX files ({', '.join(s for v in _FILES.values() for s in v)}"
      f"[.gz]) in: {', '.join(search_dirs(name, data_dir))}. Get it with {hint}.")
