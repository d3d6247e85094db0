"""The components: Flax Linen modules that compute what their Keras counterparts compute.

The composed layers (`Dense`, `Convolution`, `Recurrent`, `RNN`, `ConvLSTM2D`, ...) and the building blocks
the models are made of: the convolution leaves with Keras's weight layouts (`Conv`, `ConvTranspose`,
`DepthwiseConv`, `SeparableConv`), the recurrent cells, normalization with Keras's defaults, attention
(`MultiHeadAttention`, `Attention`, `AdditiveAttention`, `EinsumDense`), noise, activity regularization,
`Embedding`, and Keras's pooling (`max_pool`, `avg_pool`, `pool`, global and adaptive pooling). Weighted components take
Keras's initializers (`init_fields`: `kernel_init`, `bias_init`, ...) and weight regularizers
(`weight_regularizers`: `kernel_regularizer`, ...).
"""

from jaxcomponents.layers.activity import LOSSES, ActivityRegularization, activity_loss, with_activity_regularizer
from jaxcomponents.layers.adaptive_pooling import (AdaptiveAveragePooling1D, AdaptiveAveragePooling2D,
                                                   AdaptiveAveragePooling3D, AdaptiveMaxPooling1D, AdaptiveMaxPooling2D,
                                                   AdaptiveMaxPooling3D, adaptive_pool)
from jaxcomponents.layers.attention import AdditiveAttention, Attention, MultiHeadAttention
from jaxcomponents.layers.cells import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from jaxcomponents.layers.conv import Convolution
from jaxcomponents.layers.conv_core import Conv, ConvTranspose, DepthwiseConv, SeparableConv
from jaxcomponents.layers.conv_lstm import ConvLSTM, ConvLSTM1D, ConvLSTM2D, ConvLSTM3D, ConvLSTMCell
from jaxcomponents.layers.dense import Dense
from jaxcomponents.layers.dropout import Dropout
from jaxcomponents.layers.einsum_dense import EinsumDense, einsum_dense_shapes
from jaxcomponents.layers.embedding import Embedding
from jaxcomponents.layers.noise import AlphaDropout, GaussianDropout, GaussianNoise
from jaxcomponents.layers.normalization import (BatchNorm, GroupNormalization, LayerNormalization, RMSNormalization,
                                                UnitNormalization, unit_normalize)
from jaxcomponents.layers.pooling import avg_pool, global_avg_pool, global_max_pool, max_pool, pool
from jaxcomponents.layers.recurrent import RNN, Bidirectional, Recurrent, reset_states

__all__ = [
    "LOSSES", "ActivityRegularization", "AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D",
    "AdaptiveAveragePooling3D", "AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D",
    "AdditiveAttention", "AlphaDropout", "Attention", "BatchNorm", "Bidirectional", "Conv", "ConvLSTM", "ConvLSTM1D",
    "ConvLSTM2D", "ConvLSTM3D", "ConvLSTMCell", "ConvTranspose", "Convolution", "Dense", "DepthwiseConv", "Dropout",
    "EinsumDense", "Embedding", "GRUCell", "GaussianDropout", "GaussianNoise", "GroupNormalization", "LSTMCell",
    "LayerNormalization", "MultiHeadAttention", "RMSNormalization", "RNN", "Recurrent", "SeparableConv",
    "SimpleRNNCell", "StackedRNNCells", "UnitNormalization", "activity_loss", "adaptive_pool", "avg_pool",
    "einsum_dense_shapes", "global_avg_pool", "global_max_pool", "max_pool", "pool", "reset_states",
    "unit_normalize", "with_activity_regularizer",
]
