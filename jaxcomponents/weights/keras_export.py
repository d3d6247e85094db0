"""Old home of `save_keras_h5`, now `jaxcomponents.keras.write` (kept as a re-export)."""

from jaxcomponents.keras.write import save_keras_h5

__all__ = ["save_keras_h5"]
