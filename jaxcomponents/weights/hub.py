"""Keras's ImageNet weight files: which file, where it is cached, download and verification.

Files are looked up in Keras's own cache (`$KERAS_HOME/models`, default
`~/.keras/models`), then in jaxcomponents' cache (`$JAXCOMPONENTS_HOME/models`,
default `~/.cache/jaxcomponents/models`), and only then downloaded from
Keras's storage, with a progress bar, into jaxcomponents' cache. A download
is written to a temporary file and renamed only after its hash checks out.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request

from jaxcomponents import settings
from jaxcomponents.models import backbones
from jaxcomponents.models.common import WeightsFile

__all__ = ["IMAGENET_CLASS_INDEX", "WeightsFile", "cache_dirs", "fetch", "file_hash_of", "imagenet_weights_file",
           "md5_of"]


IMAGENET_CLASS_INDEX = WeightsFile(
    "imagenet_class_index.json",
    "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json",
    "c2c37ea517e94d9795004a39431a14cb")


def imagenet_weights_file(model: str, include_top: bool, *, size: int | None = None, **options) -> WeightsFile:
  """The Keras ImageNet weight file of a backbone, by name (any case; see `models.backbones`).

  Args:
    model: e.g. "ResNet50", "resnet50" or "mobilenet_v2".
    include_top: the file with the classifier, or without.
    size: the input height and width (default: the backbone's ImageNet size); only MobileNet files depend on it.
    **options: the backbone's own arguments its files depend on (MobileNet's `alpha`).

  Example:
    >>> imagenet_weights_file("mobilenet_v2", False, alpha=0.5, size=160).fname
    'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_160_no_top.h5'
  """
  record = backbones.get(model)
  size = record.default_size if size is None else size
  return record.weights_file(record.module(include_top=include_top, **options), (size, size, 3))


def cache_dirs() -> list[str]:
  """Where weight files are looked for, in order: Keras's cache, then jaxcomponents'."""
  keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
  return [os.path.join(keras_home, "models"), settings.cache_dir("models")]


def _hash_algorithm(file_hash: str) -> str:
  """Keras's rule: a 64-character hash is sha256, any other md5."""
  return "sha256" if len(file_hash) == 64 else "md5"


def file_hash_of(path: str, algorithm: str = "md5") -> str:
  """The hex digest of a file ("md5" or "sha256")."""
  digest = hashlib.new(algorithm)
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def md5_of(path: str) -> str:
  return file_hash_of(path, "md5")


def _verify(path: str, file: WeightsFile) -> None:
  if file.file_hash is None:
    return
  algorithm = _hash_algorithm(file.file_hash)
  actual = file_hash_of(path, algorithm)
  if actual != file.file_hash:
    raise ValueError(
        f"{path} is not Keras's {file.fname}: its {algorithm} is {actual}, expected {file.file_hash} "
        f"(a corrupt or partial download?). Delete it and try again."
    )


def _download(file: WeightsFile, directory: str, progress: bool) -> str:
  from tqdm.auto import tqdm

  os.makedirs(directory, exist_ok=True)
  target = os.path.join(directory, file.fname)
  handle, partial = tempfile.mkstemp(prefix=f".{file.fname}.", suffix=".part", dir=directory)
  try:
    with os.fdopen(handle, "wb") as out, urllib.request.urlopen(file.origin, timeout=60) as response:
      total = int(response.headers.get("Content-Length", 0)) or None
      with tqdm(total=total, unit="B", unit_scale=True, desc=file.fname, disable=not progress) as bar:
        for chunk in iter(lambda: response.read(1 << 20), b""):
          out.write(chunk)
          bar.update(len(chunk))
    _verify(partial, file)
    os.replace(partial, target)
    return target
  finally:
    if os.path.exists(partial):
      os.remove(partial)


def fetch(file: WeightsFile, *, download: bool = True, progress: bool = True) -> str:
  """Returns the local path of a weight file, downloading it if no cache has it.

  Raises:
    FileNotFoundError: offline or with `download=False`, saying which file is
      needed, where from, and where to put it.
    ValueError: a cached or downloaded file whose hash is wrong.
  """
  for directory in cache_dirs():
    path = os.path.join(directory, file.fname)
    if os.path.exists(path):
      _verify(path, file)
      return path
  own_cache = cache_dirs()[-1]
  hint = (f"Download {file.origin} on a machine with internet access and put it in one of: "
          f"{', '.join(cache_dirs())}"
          + (f" ({_hash_algorithm(file.file_hash)} {file.file_hash})." if file.file_hash else "."))
  if not download:
    raise FileNotFoundError(f"{file.fname} is not cached. {hint}")
  try:
    return _download(file, own_cache, progress)
  except (urllib.error.URLError, OSError) as e:
    raise FileNotFoundError(f"Could not download {file.fname} ({e}). {hint}") from e
