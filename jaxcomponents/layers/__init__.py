"""The components: Flax Linen modules that compute what their Keras counterparts compute.

The composed layers (`Dense`, `Convolution`, `Recurrent`) and the building
blocks the models are made of: the convolution leaves with Keras's weight
layouts (`Conv`, `ConvTranspose`, `DepthwiseConv`, `SeparableConv`), the
recurrent cells, batch normalization with Keras's defaults, `Embedding`, and
Keras's pooling (`max_pool`, `avg_pool`, `pool`).
"""

from jaxcomponents.layers.cells import GRUCell, LSTMCell, SimpleRNNCell
from jaxcomponents.layers.conv import Convolution
from jaxcomponents.layers.conv_core import Conv, ConvTranspose, DepthwiseConv, SeparableConv
from jaxcomponents.layers.dense import Dense
from jaxcomponents.layers.dropout import Dropout
from jaxcomponents.layers.embedding import Embedding
from jaxcomponents.layers.normalization import BatchNorm
from jaxcomponents.layers.pooling import avg_pool, max_pool, pool
from jaxcomponents.layers.recurrent import Recurrent

__all__ = [
    "BatchNorm", "Conv", "ConvTranspose", "Convolution", "Dense", "DepthwiseConv", "Dropout", "Embedding", "GRUCell",
    "LSTMCell", "Recurrent", "SeparableConv", "SimpleRNNCell", "avg_pool", "max_pool", "pool",
]
