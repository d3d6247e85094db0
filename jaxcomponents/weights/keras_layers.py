"""Old home of Keras weight-file reading, now `jaxcomponents.keras.weight_files` (kept as re-exports)."""

from jaxcomponents.keras.weight_files import (KerasLayer, StoredArray, check_keras_file, layers_from_h5,
                                              layers_from_model, open_keras_file, short_weight_name, split_layer)

__all__ = ["KerasLayer", "StoredArray", "check_keras_file", "layers_from_h5", "layers_from_model", "open_keras_file",
           "short_weight_name", "split_layer"]
