"""The LSTM's cuDNN path (`jaxcomponents.ops.cudnn_rnn`), on the CPU.

cuDNN itself needs an NVIDIA GPU, so its branch runs here with JAX's pure-JAX
reference of the kernel (`jax.experimental.rnn.lstm_ref`) in its place, chosen
for the CPU (`PLATFORM = "cpu"`): the weight mapping, lengths, directions and
outputs are checked against the scan, values and gradients. The platform
switch is checked with a stand-in primitive that lowers for CUDA only.
"""

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import rnn

from jaxcomponents.layers.recurrent import Recurrent
from jaxcomponents.layers import recurrent
from jaxcomponents.ops import cudnn_rnn, platform

B, T, F, U = 3, 6, 5, 4
LENGTHS = np.array([T, 3, 0], np.int32)  # full, right-padded, empty
TOL = 1e-5


@pytest.fixture
def cudnn_on_cpu(monkeypatch):
  """The cuDNN branch chosen for the CPU, `lstm_ref` as its kernel; yields the list of kernel calls."""
  calls = []

  def kernel(*args, **kwargs):
    calls.append(kwargs)
    return cudnn_rnn.lstm_reference(*args, **kwargs)

  monkeypatch.setattr(cudnn_rnn, "available", lambda *arrays: True)
  monkeypatch.setattr(cudnn_rnn, "PLATFORM", "cpu")
  monkeypatch.setattr(cudnn_rnn, "cudnn_kernel", lambda: kernel)
  return calls


def random_params(layer, x, seed=0):
  """The layer's parameters, every one random (the biases too)."""
  params = layer.init(jax.random.key(seed), x)["params"]
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
  return jax.tree.unflatten(tree, [0.5 * jax.random.normal(k, w.shape) for k, w in zip(keys, leaves)])


def call_inputs(bidirectional, lengths):
  x = jax.random.normal(jax.random.key(7), (B, T, F))
  states = [jax.random.normal(jax.random.key(10 + i), (B, U)) for i in range(4 if bidirectional else 2)]
  return x, {"initial_state": states, "lengths": None if lengths is None else jnp.asarray(lengths)}


def both_paths(options, lengths, train=False):
  """(cuDNN branch output, scan output, parameters, inputs) for one configuration."""
  layer = Recurrent(U, **options)
  x, kwargs = call_inputs(options.get("bidirectional"), lengths)
  params = random_params(layer, x)
  rngs = {"dropout": jax.random.key(3)} if train else None

  def run(use_cudnn, params, x, states):
    return layer.clone(use_cudnn=use_cudnn).apply({"params": params}, x, train=train, rngs=rngs,
                                                  **{**kwargs, "initial_state": states})

  return functools.partial(run, True), functools.partial(run, False), (params, x, kwargs["initial_state"])


CASES = [
    # (options, lengths, train)
    ({}, None, False),
    ({}, LENGTHS, False),
    ({"return_sequences": True, "return_state": True}, None, False),
    ({"return_sequences": True, "return_state": True}, LENGTHS, False),
    ({"return_sequences": True, "zero_output_for_mask": True}, LENGTHS, False),
    ({"return_state": True, "zero_output_for_mask": True}, LENGTHS, False),
    ({"go_backwards": True, "return_sequences": True, "return_state": True}, None, False),
    ({"bidirectional": "concat", "return_sequences": True, "return_state": True}, None, False),
    ({"bidirectional": "concat", "return_sequences": True, "return_state": True}, LENGTHS, False),
    ({"bidirectional": "ave", "return_state": True}, LENGTHS, False),
    ({"bidirectional": "mul", "return_sequences": True, "zero_output_for_mask": False}, LENGTHS, False),
    ({"dropout": 0.3, "return_sequences": True, "return_state": True}, LENGTHS, True),
]


@pytest.mark.parametrize("options, lengths, train", CASES)
def test_cudnn_branch_matches_scan(cudnn_on_cpu, options, lengths, train):
  cudnn, scan, args = both_paths(options, lengths, train=train)
  expected = jax.tree.leaves(scan(*args))
  actual = jax.tree.leaves(cudnn(*args))
  assert len(cudnn_on_cpu) == 1 and cudnn_on_cpu[0]["bidirectional"] == bool(options.get("bidirectional"))
  assert [a.shape for a in actual] == [e.shape for e in expected]
  for a, e in zip(actual, expected):
    np.testing.assert_allclose(a, e, atol=TOL, rtol=0)


@pytest.mark.parametrize("options, lengths", [
    ({"return_sequences": True, "return_state": True}, LENGTHS),
    ({"bidirectional": "concat", "return_state": True}, LENGTHS),
    ({"go_backwards": True, "return_sequences": True}, None),
])
def test_cudnn_branch_gradients_match_scan(cudnn_on_cpu, options, lengths):
  """Gradients w.r.t. Keras-layout weights, inputs and initial states, through `lstm_ref`'s and the scan's."""
  cudnn, scan, args = both_paths(options, lengths)

  def loss(run, *args):
    out = jax.tree.leaves(run(*args))
    return sum(jnp.sum(jnp.sin(o + i)) for i, o in enumerate(out))

  expected = jax.grad(functools.partial(loss, scan), argnums=(0, 1, 2))(*args)
  actual = jax.grad(functools.partial(loss, cudnn), argnums=(0, 1, 2))(*args)
  assert cudnn_on_cpu
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
    np.testing.assert_allclose(a, e, atol=TOL, rtol=0)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_keras_to_cudnn_layout(bidirectional):
  """JAX's own unpacking of the flat vector gives back Keras's matrices transposed, Keras's bias and zeros."""
  keys = jax.random.split(jax.random.key(0), 6)
  cells = [(jax.random.normal(keys[3 * d], (F, 4 * U)), jax.random.normal(keys[3 * d + 1], (U, 4 * U)),
            jax.random.normal(keys[3 * d + 2], (4 * U,))) for d in range(2 if bidirectional else 1)]
  flat = cudnn_rnn.keras_to_cudnn(cells)
  assert flat.shape == (rnn.get_num_params_in_lstm(F, U, 1, bidirectional),)
  w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(flat, F, U, 1, bidirectional)
  for d, (kernel, recurrent_kernel, bias) in enumerate(cells):
    np.testing.assert_array_equal(w_ih[d], kernel.T)
    np.testing.assert_array_equal(w_hh[d], recurrent_kernel.T)
    np.testing.assert_array_equal(b_ih[d], bias)
    np.testing.assert_array_equal(b_hh[d], np.zeros(4 * U))


KERAS_RULE = [
    # (activation, recurrent_activation, use_bias, recurrent_dropout, unroll, expected)
    ("tanh", "sigmoid", True, 0.0, 1, True),
    ("relu", "sigmoid", True, 0.0, 1, False),
    ("tanh", "hard_sigmoid", True, 0.0, 1, False),
    ("tanh", "tanh", True, 0.0, 1, False),
    (None, "sigmoid", True, 0.0, 1, False),
    ("tanh", "sigmoid", False, 0.0, 1, False),
    ("tanh", "sigmoid", True, 0.2, 1, False),
    ("tanh", "sigmoid", True, 0.0, 2, False),
]


@pytest.mark.parametrize("activation, recurrent_activation, use_bias, recurrent_dropout, unroll, expected", KERAS_RULE)
def test_keras_rule_is_keras(monkeypatch, activation, recurrent_activation, use_bias, recurrent_dropout, unroll,
                             expected):
  """`keras_cudnn_rule` against Keras's `cudnn_ok` (a GPU pretended) and `LSTM.inner_loop`'s `not recurrent_dropout`."""
  import keras

  keras_rnn = importlib.import_module("keras.src.backend.jax.rnn")  # the package's `rnn` is a function
  monkeypatch.setattr(keras_rnn, "_is_gpu_available", lambda: True)
  keras_says = keras_rnn.cudnn_ok(keras.activations.get(activation), keras.activations.get(recurrent_activation),
                                  unroll != 1, use_bias) and not recurrent_dropout
  ours = recurrent.keras_cudnn_rule(activation, recurrent_activation, use_bias, recurrent_dropout, unroll)
  assert ours == keras_says == expected


ELIGIBLE = [
    # (layer options, call: mask / lengths / train / dtype, expected)
    ({}, {}, True),
    ({"activation": jnp.tanh, "recurrent_activation": jax.nn.sigmoid}, {}, True),
    ({"cell": "gru"}, {}, False),
    ({"use_cudnn": False}, {}, False),
    ({"activation": "relu"}, {}, False),
    ({"use_bias": False}, {}, False),
    ({"recurrent_dropout": 0.1}, {}, False),
    ({"unroll": 3}, {}, False),
    ({}, {"mask": True}, False),
    ({}, {"lengths": True}, True),
    ({"go_backwards": True}, {}, True),
    ({"go_backwards": True}, {"lengths": True}, False),
    ({"bidirectional": "concat"}, {"lengths": True}, True),
    ({"bidirectional": "sum", "dropout": 0.2}, {}, True),
    ({"bidirectional": "sum", "dropout": 0.2}, {"train": True}, False),
    ({"dropout": 0.2}, {"train": True}, True),
    ({}, {"dtype": jnp.bfloat16}, False),
    ({"precision": "highest"}, {}, True),
    ({"precision": ("high", "high")}, {}, True),
    ({"precision": "default"}, {}, False),
    ({"precision": ("highest", "high")}, {}, False),
]


@pytest.mark.parametrize("options, call, expected", ELIGIBLE)
def test_eligible(options, call, expected):
  call = {"mask": False, "lengths": False, "train": False, "dtype": jnp.float32, **call}
  assert recurrent.cudnn_eligible(Recurrent(U, **options), **call) == expected


def test_cpu_runs_the_scan():
  """On this CPU machine nothing of cuDNN is traced: the lowered and compiled LSTM have no custom call."""
  layer = Recurrent(U, return_sequences=True, return_state=True, bidirectional="concat")
  x, kwargs = call_inputs(True, LENGTHS)
  variables = layer.init(jax.random.key(0), x)
  assert not cudnn_rnn.available(x)
  assert recurrent.cudnn_eligible(layer, dtype=jnp.float32, mask=False, lengths=True, train=False)
  lowered = jax.jit(functools.partial(layer.apply, **kwargs)).lower(variables, x)
  for text in (lowered.as_text(), lowered.compile().as_text()):
    assert "custom_call" not in text  # (the file names in its metadata say "cudnn")
  with platform.portable():
    assert not cudnn_rnn.available(x)


@pytest.fixture
def stand_in_kernel(monkeypatch):
  """cuDNN available, and a kernel that is a primitive lowering for CUDA only, to a custom call `cudnn_stand_in`."""
  from jax.extend.core import Primitive
  from jax.interpreters import mlir

  prim = Primitive("cudnn_stand_in")
  prim.multiple_results = True

  def abstract(x, h_0, c_0, weights, seq_lengths):
    y = jax.core.ShapedArray((*x.shape[:2], h_0.shape[0] * h_0.shape[2]), x.dtype)
    return y, jax.core.ShapedArray(h_0.shape, h_0.dtype), jax.core.ShapedArray(c_0.shape, c_0.dtype)

  prim.def_abstract_eval(abstract)
  mlir.register_lowering(prim, jax.ffi.ffi_lowering("cudnn_stand_in"), platform="cuda")
  monkeypatch.setattr(cudnn_rnn, "available", lambda *arrays: True)
  monkeypatch.setattr(cudnn_rnn, "cudnn_kernel", lambda: lambda *args, **_: prim.bind(*args))


def test_platform_switch_at_lowering(stand_in_kernel):
  """One traced LSTM: lowered for the CPU (or TPU) it is the scan, for CUDA the cuDNN call and no loop."""
  layer = Recurrent(U, return_sequences=True, bidirectional="concat")
  x, kwargs = call_inputs(True, LENGTHS)
  variables = layer.init(jax.random.key(0), x)
  apply = jax.jit(functools.partial(layer.apply, **kwargs))
  traced = apply.trace(variables, x)
  cpu, tpu, cuda = (traced.lower(lowering_platforms=(p,)).as_text() for p in ("cpu", "tpu", "cuda"))
  for text in (cpu, tpu):
    assert "cudnn_stand_in" not in text and "stablehlo.while" in text
  assert "cudnn_stand_in" in cuda and "stablehlo.while" not in cuda
  scan = layer.clone(use_cudnn=False).apply(variables, x, **kwargs)
  np.testing.assert_array_equal(apply(variables, x), scan)
