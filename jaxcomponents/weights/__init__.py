"""Keras weights in and out of jaxcomponents modules."""

from jaxcomponents.weights.convert import CONVERSION_RULES, convert_layers, load_keras
from jaxcomponents.weights.keras_layers import KerasLayer, layers_from_h5, layers_from_model

__all__ = ["CONVERSION_RULES", "KerasLayer", "convert_layers", "layers_from_h5", "layers_from_model", "load_keras"]
