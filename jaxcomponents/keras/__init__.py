"""Keras interop: Keras models and weights computed by, and written back from, jaxcomponents.

- `from_keras(model_or_path)`: a Keras model -> `(KerasGraph, variables)`; `to_keras` writes them back;
  `compare_with_keras` reports layer by layer.
- `load_keras(module, source, sample_input)`: Keras weights (a live model or a file) into any Flax module;
  `save_keras_h5` writes a module's variables as a Keras `.h5` weights file.
- `KerasClass`: the record of one Keras class; `records.RECORDS` holds them all.

Example:
  >>> import keras, numpy as np
  >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  >>> module, variables = from_keras(model)
  >>> module.apply(variables, np.ones((1, 3), np.float32)).shape
  (1, 2)
"""

# The module `from_keras` is loaded before the function of that name is bound here (see jaxcomponents.weights).
import jaxcomponents.keras.from_keras  # noqa: F401  pylint: disable=unused-import
from jaxcomponents.keras.convert import load_keras
from jaxcomponents.keras.from_keras import from_keras, to_keras
from jaxcomponents.keras.graph import KerasGraph
from jaxcomponents.keras.parity import ParityReport, compare_with_keras
from jaxcomponents.keras.record import KerasClass
from jaxcomponents.keras.write import save_keras_h5

__all__ = ["KerasClass", "KerasGraph", "ParityReport", "compare_with_keras", "from_keras", "load_keras",
           "save_keras_h5", "to_keras"]
