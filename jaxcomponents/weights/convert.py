"""Old home of `load_keras` and `convert_layers`, now `jaxcomponents.keras.convert` (kept as re-exports)."""

from jaxcomponents.keras.convert import MATCH_MODES, convert_layers, init_shapes, load_keras
from jaxcomponents.variable_trees import fit_to, flatten_variables, leaf_layers, unflatten_variables

__all__ = ["MATCH_MODES", "convert_layers", "fit_to", "flatten_variables", "init_shapes", "leaf_layers", "load_keras",
           "unflatten_variables"]
