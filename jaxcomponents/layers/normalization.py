"""Batch normalization with Keras's defaults.

Keras's `BatchNormalization` uses epsilon 1e-3 and momentum 0.99 (Flax: 1e-5 and
0.99) and the two-pass variance. Parameters are `scale`/`bias` in `params` and
`mean`/`var` in `batch_stats`; `jaxcomponents.weights` maps Keras's `gamma`,
`beta`, `moving_mean` and `moving_variance` onto them.

Precision, as Flax's: `dtype` is the output dtype (None: inferred from the input
and parameters), `param_dtype` that of `scale` and `bias` (float32). The
statistics (`mean`/`var`, and those of each batch) and the normalization are
computed in float32 whatever the input dtype (`force_float32_reductions`).

Example:
  >>> import jax, jax.numpy as jnp
  >>> bn = BatchNorm(use_running_average=True)
  >>> variables = bn.init(jax.random.key(0), jnp.ones((2, 3)))
  >>> sorted(variables)
  ['batch_stats', 'params']
  >>> bf16 = BatchNorm(use_running_average=False, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)
  >>> variables = bf16.init(jax.random.key(0), jnp.ones((2, 3)))
  >>> variables["params"]["scale"].dtype, variables["batch_stats"]["mean"].dtype
  (dtype(bfloat16), dtype('float32'))
"""

import functools

import flax.linen as nn

KERAS_EPSILON = 1e-3
KERAS_MOMENTUM = 0.99

BatchNorm = functools.partial(
    nn.BatchNorm, epsilon=KERAS_EPSILON, momentum=KERAS_MOMENTUM, use_fast_variance=False
)
