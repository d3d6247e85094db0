"""cuDNN's LSTM for `Recurrent` on NVIDIA GPUs: when it applies, Keras's weights in its layout, and its outputs.

Keras 3 on JAX runs `LSTM` through cuDNN (`jax.experimental.rnn.lstm`) on a GPU
when the configuration allows it (`keras/src/layers/rnn/lstm.py`,
`keras/src/backend/jax/rnn.py`); `Recurrent` does the same, and runs its
`lax.scan` everywhere else. Two choices make it:

- When tracing: the layer's `layers.recurrent.cudnn_eligible` (Keras's rule and
  what the cuDNN kernel expresses exactly, with `cudnn_precision` here) and
  `available`: a CUDA device and JAX's cuDNN RNN
  extension are present. Tracing `jax.experimental.rnn.lstm` asks the CUDA
  plugin for cuDNN's workspace size, so it cannot even be traced without one:
  on CPU and TPU machines nothing of cuDNN is traced, only the scan. Neither are
  symbolic shapes (`jax.export`) or computations inside `platform.portable()`:
  cuDNN's custom call is not one that `jax.export` may serialise.
- When lowering: `on_cuda(cudnn, plain, ...)`, `lax.platform_dependent` with a
  `cuda` branch, so a function traced on a GPU machine but lowered for another
  platform (a CPU device there) still gets the scan. Only the branch of the
  platform being lowered for is lowered.

Weights: cuDNN's gates are Keras's, in Keras's order (i, f, c, o; cuDNN calls c
"g"); its matrices are Keras's transposed, `(4 * units, n)`; it has two biases,
`b_ih` and `b_hh`, added together, where Keras has one: Keras's goes to `b_ih`,
zeros to `b_hh`. The flat vector holds every direction's `W_ih` and `W_hh`
(forward, then backward), then every direction's `b_ih` and `b_hh`.

Tested on the CPU (`tests/test_cudnn_lstm.py`): the cuDNN branch with JAX's
pure-JAX reference of the kernel (`lstm_reference`) in its place gives the
scan's outputs, states and gradients, and the switch lowers to the scan for
the CPU and TPU and to the kernel alone for CUDA. Not yet run on a GPU.

Example:
  >>> import jax.numpy as jnp
  >>> cells = [(jnp.ones((3, 8)), jnp.ones((2, 8)), jnp.ones(8))]
  >>> keras_to_cudnn(cells).shape  # 8 * 3 + 8 * 2 + 8 + 8
  (56,)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxcomponents.ops import platform

PLATFORM = "cuda"  # the lowering platform that gets cuDNN
_CUDNN_PRECISIONS = (lax.Precision.HIGH, lax.Precision.HIGHEST)


def cudnn_precision(precision: Any) -> lax.Precision | None | bool:
  """The precision to give `jax.experimental.rnn.lstm` for a layer's `precision`, or False where cuDNN has none.

  cuDNN takes one precision for the whole LSTM: TensorFloat-32 products
  ("high", and JAX's default) or full float32 ones ("highest").
  """
  value = jax.config.jax_default_matmul_precision if precision is None else precision
  if value is None:
    return None
  try:
    pair = {lax.Precision(v) for v in (value if isinstance(value, (tuple, list)) else (value,))}
  except ValueError:  # e.g. a dot algorithm preset as the default precision
    return False
  return pair.pop() if len(pair) == 1 and pair <= set(_CUDNN_PRECISIONS) else False


def available(*arrays: jax.Array) -> bool:
  """Whether cuDNN's LSTM can be traced here for `arrays`: a CUDA device, JAX's cuDNN RNN, static shapes, not portable."""
  if platform.is_portable() or not all(platform.static_shape(tuple(a.shape)) for a in arrays):
    return False
  try:
    if not jax.devices("cuda"):
      return False
  except RuntimeError:  # no CUDA backend (CPU or TPU machine, JAX_PLATFORMS without cuda)
    return False
  from jax.experimental import rnn  # pylint: disable=import-outside-toplevel
  return getattr(getattr(rnn, "gpu_rnn", None), "compute_rnn_workspace_reserve_space_sizes", None) is not None


def on_cuda(cudnn: Callable[..., Any], plain: Callable[..., Any], *args: Any) -> Any:
  """`cudnn(*args)` where the computation is lowered for CUDA, else `plain(*args)` (chosen when lowering)."""
  return lax.platform_dependent(*args, **{PLATFORM: cudnn}, default=plain)


def keras_to_cudnn(cells: Sequence[tuple[jax.Array, jax.Array, jax.Array | None]], dtype: Any = jnp.float32) -> jax.Array:
  """cuDNN's flat weight vector from each direction's Keras `(kernel, recurrent_kernel, bias or None)`."""
  matrices, biases = [], []
  for kernel, recurrent_kernel, bias in cells:
    matrices += [kernel.T.ravel(), recurrent_kernel.T.ravel()]
    b_ih = jnp.zeros(kernel.shape[1], dtype) if bias is None else bias
    biases += [b_ih, jnp.zeros_like(b_ih)]
  return jnp.concatenate([w.astype(dtype) for w in matrices + biases])


def cudnn_kernel() -> Callable[..., Any]:
  """`jax.experimental.rnn.lstm`, cuDNN's LSTM (tests put `lstm_reference` in its place)."""
  from jax.experimental import rnn  # pylint: disable=import-outside-toplevel
  return rnn.lstm


def lstm_reference(x, h_0, c_0, weights, seq_lengths, *, input_size, hidden_size, num_layers, dropout,
                   bidirectional, precision=None):
  """`jax.experimental.rnn.lstm_ref`, JAX's pure-JAX reference of the cuDNN kernel, called as `lstm` is."""
  del precision
  from jax.experimental import rnn  # pylint: disable=import-outside-toplevel
  w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(weights, input_size, hidden_size, num_layers, bidirectional)
  return rnn.lstm_ref(x, h_0, c_0, w_ih, w_hh, b_ih, b_hh, seq_lengths, input_size, hidden_size, num_layers,
                      dropout, bidirectional)


def lstm(x: jax.Array, states: Sequence[jax.Array], cells: Sequence[tuple[jax.Array, jax.Array, jax.Array | None]],
         lengths: jax.Array | None, *, go_backwards: bool, zero_output: bool, return_sequences: bool,
         precision: Any = None) -> list[tuple[jax.Array, tuple[jax.Array, jax.Array]]]:
  """`Recurrent`'s LSTM through one cuDNN call: each direction's `(outputs, (h, c))` as its scan gives them.

  Outputs are every step's in processing order (the backward direction's
  reversed), or the last one's. cuDNN stops each sequence at its length and
  leaves zeros after it; the scan keeps the state and repeats the previous
  output there, the last valid one going forwards and the initial `h` going
  backwards (those steps come first), or zeros with `zero_output`. A length of
  0 (cuDNN needs at least 1) keeps the initial state.

  Args:
    x: `(batch, time, features)`, dropped out already.
    states: `(h, c)` of each direction, flat, in the computation dtype.
    cells: each direction's Keras `(kernel, recurrent_kernel, bias or None)`.
    lengths: `(batch,)` valid lengths (right padding), or None.
    go_backwards: one direction reading from the end (not with `lengths`).
    zero_output, return_sequences: as `Recurrent`'s.
    precision: the layer's; see `cudnn_precision`.
  """
  batch, time, features = x.shape
  units = cells[0][1].shape[0]
  dtype = states[0].dtype
  if go_backwards:
    x = jnp.flip(x, axis=1)
  valid = (jnp.full((batch,), time, jnp.int32) if lengths is None
           else jnp.clip(lengths, 0, time).astype(jnp.int32))
  h_0, c_0 = jnp.stack(states[0::2]), jnp.stack(states[1::2])
  y, h_n, c_n = cudnn_kernel()(
      x.astype(dtype), h_0, c_0, keras_to_cudnn(cells, dtype), jnp.maximum(valid, 1), input_size=features,
      hidden_size=units, num_layers=1, dropout=0.0, bidirectional=len(cells) == 2,
      precision=cudnn_precision(precision))
  results = []
  for d in range(len(cells)):
    y_d, h, c = y[..., d * units:(d + 1) * units], h_n[d], c_n[d]
    if lengths is not None:
      empty = (valid == 0)[:, None]
      h, c = jnp.where(empty, h_0[d], h), jnp.where(empty, c_0[d], c)
      fill = jnp.zeros_like(h) if zero_output else (h if d == 0 else h_0[d])
      in_sequence = jnp.arange(time)[None, :, None] < valid[:, None, None]
      y_d = jnp.where(in_sequence, y_d, fill[:, None, :])
    if d == 1:
      y_d = jnp.flip(y_d, axis=1)
    results.append((y_d if return_sequences else y_d[:, -1], (h, c)))
  return results
