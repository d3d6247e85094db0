"""Keras's ImageNet weight files: which file, where it is cached, download and verification.

Files are looked up in Keras's own cache (`$KERAS_HOME/models`, default
`~/.keras/models`), then in jaxcomponents' cache (`$JAXCOMPONENTS_HOME/models`,
default `~/.cache/jaxcomponents/models`), and only then downloaded from
Keras's storage, with a progress bar, into jaxcomponents' cache. A download
is written to a temporary file and renamed only after its hash checks out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import urllib.error
import urllib.request

from jaxcomponents import settings
from jaxcomponents.errors import check_choice

_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclasses.dataclass(frozen=True)
class WeightsFile:
  """A Keras ImageNet weight file: name, origin and md5 hash (None where Keras has none)."""

  fname: str
  origin: str
  md5: str | None


def _file(folder: str, fname: str, md5: str | None) -> WeightsFile:
  return WeightsFile(fname, f"{_BASE}{folder}/{fname}", md5)


# (model, include_top) -> file; hashes as in Keras's applications source.
_FILES = {
    ("vgg16", True): _file("vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels.h5", "64373286793e3c8b2b4e3219cbf3544b"),
    ("vgg16", False): _file("vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                            "6d6bbae143d832006294945121d1f1fc"),
    ("resnet50", True): _file("resnet", "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
                              "2cb95161c43110f7111970584f804107"),
    ("resnet50", False): _file("resnet", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                               "4d473c1dd8becc155b73f8504c6f6626"),
    ("inception_v3", True): _file("inception_v3", "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
                                  "9a0d58056eeedaa3f26cb7ebd46da564"),
    ("inception_v3", False): _file("inception_v3", "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                                   "bcbd6486424b2319ff4ef7d526e38f63"),
}
IMAGENET_CLASS_INDEX = WeightsFile(
    "imagenet_class_index.json",
    "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json",
    "c2c37ea517e94d9795004a39431a14cb")
MOBILENET_V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)
MODELS = ("vgg16", "resnet50", "inception_v3", "mobilenet_v2")


def imagenet_weights_file(model: str, include_top: bool, *, alpha: float = 1.0, size: int = 224) -> WeightsFile:
  """The Keras ImageNet weight file of a model.

  Example:
    >>> imagenet_weights_file("mobilenet_v2", False, alpha=0.5, size=160).fname
    'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_160_no_top.h5'
  """
  check_choice("model", model, MODELS)
  if model != "mobilenet_v2":
    return _FILES[(model, bool(include_top))]
  check_choice("alpha", alpha, MOBILENET_V2_ALPHAS)
  check_choice("input size", size, MOBILENET_V2_SIZES)
  suffix = ".h5" if include_top else "_no_top.h5"
  return _file("mobilenet_v2", f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{size}{suffix}",
               None)


def cache_dirs() -> list[str]:
  """Where weight files are looked for, in order: Keras's cache, then jaxcomponents'."""
  keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
  return [os.path.join(keras_home, "models"), settings.cache_dir("models")]


def md5_of(path: str) -> str:
  digest = hashlib.md5()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def _verify(path: str, file: WeightsFile) -> None:
  if file.md5 is not None and md5_of(path) != file.md5:
    raise ValueError(
        f"{path} is not Keras's {file.fname}: its md5 is {md5_of(path)}, expected {file.md5} "
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
          f"{', '.join(cache_dirs())}" + (f" (md5 {file.md5})." if file.md5 else "."))
  if not download:
    raise FileNotFoundError(f"{file.fname} is not cached. {hint}")
  try:
    return _download(file, own_cache, progress)
  except (urllib.error.URLError, OSError) as e:
    raise FileNotFoundError(f"Could not download {file.fname} ({e}). {hint}") from e
