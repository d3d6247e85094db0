"""The components: Flax Linen modules that compute what their Keras counterparts compute."""

from jaxcomponents.layers.conv import Convolution
from jaxcomponents.layers.dense import Dense
from jaxcomponents.layers.normalization import BatchNorm

__all__ = ["BatchNorm", "Convolution", "Dense"]
