"""The components: Flax Linen modules that compute what their Keras counterparts compute."""

from jaxcomponents.layers.cells import GRUCell, LSTMCell, SimpleRNNCell
from jaxcomponents.layers.conv import Convolution
from jaxcomponents.layers.dense import Dense
from jaxcomponents.layers.dropout import Dropout
from jaxcomponents.layers.embedding import Embedding
from jaxcomponents.layers.normalization import BatchNorm
from jaxcomponents.layers.recurrent import Recurrent

__all__ = ["BatchNorm", "Convolution", "Dense", "Dropout", "Embedding", "GRUCell", "LSTMCell", "Recurrent", "SimpleRNNCell"]
