"""Optional dependencies, imported when a feature needs them, with the extra that installs them named.

The core install is jax, flax, optax, orbax-checkpoint, numpy, h5py and tqdm;
the rest comes with an extra: `data` (TFDS, Pillow, OpenCV, scikit-learn), `plots`
(matplotlib), `tensorboard` (tensorboardX), `onednn` (the native library's
oneDNN), or `all`.

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


def require(module: str, extra: str, purpose: str) -> ModuleType:
  """`importlib.import_module(module)`, or `ModuleNotFoundError` naming `purpose` and the extra to install."""
  try:
    return importlib.import_module(module)
  except ModuleNotFoundError as error:
    if error.name != module.split(".")[0] and error.name != module:
      raise
    raise ModuleNotFoundError(f'{purpose} needs {module.split(".")[0]}: pip install "jaxcomponents[{extra}]"',
                              name=error.name) from error
