"""Old home of `from_keras`, now `jaxcomponents.keras.from_keras` (kept as re-exports)."""

from jaxcomponents.keras.from_keras import (from_keras, graph_config, keras_variables, load_keras_model,
                                            sample_inputs, to_keras)
from jaxcomponents.keras.parity import LayerDifference, ParityReport, compare_with_keras

__all__ = ["LayerDifference", "ParityReport", "compare_with_keras", "from_keras", "graph_config", "keras_variables",
           "load_keras_model", "sample_inputs", "to_keras"]
