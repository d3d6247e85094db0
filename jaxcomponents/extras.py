"""Optional dependencies, imported when a feature needs them, with the extra that installs them named.

The core install is jax, flax, optax, orbax-checkpoint, numpy, h5py and tqdm;
the rest comes with an extra: `data` (TFDS, Pillow, OpenCV, scikit-learn), `plots`
(matplotlib), `tensorboard` (tensorboardX), `export` (flatbuffers, jax2onnx,
onnx, onnxruntime), `onednn` (the native library's oneDNN), or `all`.

Example:
  >>> require("numpy", "data", "reading arrays").__name__
  'numpy'
  >>> require("no_such_module_here", "data", "reading arrays")
  Traceback (most recent call last):
  ...
  ModuleNotFoundError: reading arrays needs no_such_module_here: pip install "jaxcomponents[data]"
"""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str | None, purpose: str, *, package: str | None = None) -> ModuleType:
  """`importlib.import_module(module)`, or `ModuleNotFoundError` naming `purpose` and what to install.

  What to install is the extra, or `package` for a dependency no extra installs
  (TensorFlow, which stays out of jaxcomponents' environment):

    >>> require("no_such_module_here", None, "a SavedModel export", package="tensorflow-cpu")
    Traceback (most recent call last):
    ...
    ModuleNotFoundError: a SavedModel export needs no_such_module_here: pip install "tensorflow-cpu"
  """
  try:
    return importlib.import_module(module)
  except ModuleNotFoundError as error:
    if error.name != module.split(".")[0] and error.name != module:
      raise
    install = package if package is not None else f"jaxcomponents[{extra}]"
    raise ModuleNotFoundError(f'{purpose} needs {module.split(".")[0]}: pip install "{install}"',
                              name=error.name) from error
