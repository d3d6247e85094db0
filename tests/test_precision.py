"""Precision control: `dtype`, `param_dtype` and `precision` reach every weighted layer; bfloat16 training.

Layer checks trace only (`jax.eval_shape`, `jax.make_jaxpr`): every matrix product and convolution in the
traced computation (both branches where the CPU has its own formulation) must have the computation dtype's
operands and the requested precision.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

from jaxcomponents.layers import BatchNorm, Convolution, Dense, Recurrent
from jaxcomponents.layers.cells import GRUCell, LSTMCell, SimpleRNNCell
from jaxcomponents.models import VGG16, BackboneClassifier, InceptionV3, MobileNetV2, ResNet50, UNet, unet_2d
from jaxcomponents.models.unet_blocks import AttentionGate, ConvOutput, ConvStack, DecodeLayer, EncodeLayer
from jaxcomponents.ops import native
from jaxcomponents.training import TrainState, make_train_step

BF16, F32 = jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float32)
PRODUCTS = ("dot_general", "conv_general_dilated")


def _jaxprs(value):
  """The jaxprs inside an equation parameter (a sub-computation, or a tuple of branches)."""
  if isinstance(value, jax.extend.core.ClosedJaxpr):
    return [value.jaxpr]
  if isinstance(value, jax.extend.core.Jaxpr):
    return [value]
  if isinstance(value, (tuple, list)):
    return [j for v in value for j in _jaxprs(v)]
  return []


def products(fn, *args):
  """`(operand dtypes, precision)` of every matrix product and convolution `fn` traces, sub-computations included."""
  found = []

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name in PRODUCTS:
        found.append((tuple(jnp.dtype(v.aval.dtype) for v in eqn.invars), eqn.params["precision"]))
      for value in eqn.params.values():
        for sub in _jaxprs(value):
          walk(sub)

  walk(jax.make_jaxpr(fn)(*args).jaxpr)
  return found


def is_highest(precision):
  return precision is not None and all(p == lax.Precision.HIGHEST for p in precision)


def _carry(units, n, dtype=jnp.float32):
  return tuple(jnp.zeros((2, units), dtype) for _ in range(n))


# (name, module factory taking the precision fields, example inputs)
LAYERS = [
    ("dense", lambda **o: Dense(4, batch_norm=True, **o), (jnp.ones((2, 3)),)),
    ("conv", lambda **o: Convolution(4, 3, batch_norm=True, **o), (jnp.ones((2, 6, 6, 3)),)),
    ("conv_relu", lambda **o: Convolution(4, 3, activation="relu", **o), (jnp.ones((2, 6, 6, 3)),)),
    ("conv_window_larger_than_input", lambda **o: Convolution(4, 5, padding="SAME", **o), (jnp.ones((2, 3, 3, 3)),)),
    ("conv_1d_causal", lambda **o: Convolution(4, 3, dims=1, padding="CAUSAL", **o), (jnp.ones((2, 7, 3)),)),
    ("conv_3d_grouped", lambda **o: Convolution(4, 2, dims=3, feature_group_count=2, **o), (jnp.ones((1, 3, 3, 3, 2)),)),
    ("transpose", lambda **o: Convolution(4, 3, strides=2, kind="transpose", **o), (jnp.ones((2, 5, 5, 3)),)),
    ("transpose_relu", lambda **o: Convolution(4, 3, strides=2, kind="transpose", activation="relu", **o),
     (jnp.ones((2, 5, 5, 3)),)),
    ("separable", lambda **o: Convolution(4, 3, kind="separable", depth_multiplier=2, **o), (jnp.ones((2, 6, 6, 3)),)),
    ("depthwise", lambda **o: Convolution(None, 3, kind="depthwise", **o), (jnp.ones((2, 6, 6, 3)),)),
    ("lstm", lambda **o: Recurrent(4, cell="lstm", bidirectional="concat", return_state=True, **o),
     (jnp.ones((2, 5, 3)),)),
    ("gru", lambda **o: Recurrent(4, cell="gru", reset_after=False, **o), (jnp.ones((2, 5, 3)),)),
    ("rnn", lambda **o: Recurrent(4, cell="rnn", return_sequences=True, **o), (jnp.ones((2, 5, 3)),)),
    ("lstm_cell", lambda **o: LSTMCell(4, **o), (_carry(4, 2), jnp.ones((2, 3)))),
    ("gru_cell", lambda **o: GRUCell(4, **o), (_carry(4, 1), jnp.ones((2, 3)))),
    ("rnn_cell", lambda **o: SimpleRNNCell(4, **o), (_carry(4, 1), jnp.ones((2, 3)))),
    ("conv_stack_prelu", lambda **o: ConvStack(4, batch_norm=True, activation="PReLU", **o), (jnp.ones((1, 8, 8, 3)),)),
    ("encode_snake", lambda **o: EncodeLayer(4, pool=False, activation="Snake", batch_norm=True, **o),
     (jnp.ones((1, 8, 8, 3)),)),
    ("decode", lambda **o: DecodeLayer(4, unpool=False, batch_norm=True, **o), (jnp.ones((1, 4, 4, 3)),)),
    ("attention", lambda **o: AttentionGate(2, attention="multiply", **o),
     (jnp.ones((1, 8, 8, 3)), jnp.ones((1, 8, 8, 4)))),
    ("output", lambda **o: ConvOutput(2, **o), (jnp.ones((1, 8, 8, 3)),)),
    ("encoder", lambda **o: VGG16(include_top=False, taps=("block1_conv2", "block2_conv2"), **o),
     (jnp.ones((1, 32, 32, 3)),)),
]


def _dtypes(tree):
  return {jnp.dtype(a.dtype) for a in jax.tree.leaves(tree)}


def _float_outputs(tree):
  return {jnp.dtype(a.dtype) for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.floating)}


@pytest.mark.parametrize("name,make,args", LAYERS, ids=[c[0] for c in LAYERS])
def test_dtype_param_dtype_and_precision_reach_every_layer(name, make, args):
  key = jax.random.key(0)
  # dtype: bfloat16 computation and outputs, float32 parameters and statistics
  layer = make(dtype=jnp.bfloat16, precision="highest")
  variables = jax.eval_shape(layer.init, key, *args)
  assert _dtypes(variables) == {F32}
  assert _float_outputs(jax.eval_shape(layer.apply, variables, *args)) == {BF16}
  found = products(lambda v, *a: layer.apply(v, *a), variables, *args)
  assert found, "no matrix product or convolution traced"
  for dtypes, precision in found:
    assert set(dtypes) == {BF16} and is_highest(precision), (dtypes, precision)
  # param_dtype: bfloat16 parameters (batch-norm statistics stay float32); the default precision is JAX's
  layer = make(param_dtype=jnp.bfloat16)
  variables = jax.eval_shape(layer.init, key, *args)
  assert _dtypes(variables["params"]) == {BF16}
  assert _dtypes(variables.get("batch_stats", {})) <= {F32}
  assert all(precision is None for _, precision in products(lambda v, *a: layer.apply(v, *a), variables, *args))
  # the defaults are float32 throughout
  layer = make()
  variables = jax.eval_shape(layer.init, key, *args)
  assert _dtypes(variables) == {F32}
  assert _float_outputs(jax.eval_shape(layer.apply, variables, *args)) == {F32}


def test_batch_norm_statistics_stay_float32():
  x = jax.random.normal(jax.random.key(1), (16, 3)) * 30.0 + 1000.0  # bfloat16 alone would lose the variance
  bn = BatchNorm(use_running_average=False, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)
  variables = bn.init(jax.random.key(0), x.astype(jnp.bfloat16))
  y, updates = bn.apply(variables, x.astype(jnp.bfloat16), mutable=["batch_stats"])
  assert y.dtype == BF16 and variables["params"]["scale"].dtype == BF16
  assert updates["batch_stats"]["var"].dtype == F32
  reference = BatchNorm(use_running_average=False).apply(jax.tree.map(lambda a: a.astype(jnp.float32), variables),
                                                         x.astype(jnp.bfloat16).astype(jnp.float32),
                                                         mutable=["batch_stats"])
  np.testing.assert_allclose(np.asarray(y, np.float32), reference[0], atol=0.02)
  np.testing.assert_allclose(updates["batch_stats"]["var"], reference[1]["batch_stats"]["var"], rtol=1e-6)


def test_highest_precision_keeps_the_cpu_formulations_and_numbers():
  """On the CPU every precision computes full float32: "highest" takes oneDNN and gives the default's numbers."""
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  layers = {p: Convolution(8, 3, activation="relu", precision=p) for p in (None, "highest")}
  variables = layers[None].init(jax.random.key(0), x)
  outputs = {p: jax.jit(layer.apply)(variables, x) for p, layer in layers.items()}
  np.testing.assert_array_equal(outputs[None], outputs["highest"])
  if native.load().available:
    assert "jc_onednn_conv_forward" in str(jax.make_jaxpr(layers["highest"].apply)(variables, x))


@pytest.mark.parametrize("make,message", [
    (lambda: Dense(3, dtype="bf16"), r"dtype='bf16' is not allowed; expected None or a floating-point dtype"),
    (lambda: Convolution(3, 3, dtype=jnp.int32), r"dtype=<class 'jax.numpy.int32'> is not allowed"),
    (lambda: Recurrent(3, param_dtype=None), r"param_dtype=None is not allowed; expected a floating-point dtype"),
    (lambda: VGG16(precision="hihgest"),
     r"precision='hihgest' is not allowed; expected None, a jax.lax.Precision, one of 'default', 'high', 'highest'"),
    (lambda: UNet(filter_num=(4,), n_labels=2, precision=("highest", "fast")), r"precision=\('highest', 'fast'\)"),
    (lambda: unet_2d((32, 32, 3), [4, 8], 2, param_dtype="int8"), r"param_dtype='int8' is not allowed"),
])
def test_bad_dtype_or_precision_names_the_field(make, message):
  with pytest.raises(ValueError, match=message):
    make()


def test_precision_aliases_and_pairs_are_accepted():
  x = jnp.ones((2, 3))
  for precision in (lax.Precision.HIGH, "float32", "tensorfloat32", ("highest", "default")):
    layer = Dense(2, precision=precision)
    assert products(layer.apply, jax.eval_shape(layer.init, jax.random.key(0), x), x)


# Each backbone at its smallest input, a few classes, batch 4, computing in bfloat16 with float32 parameters
# (the classifier's backbone takes the fields itself), and the Adam learning rate it trains at.
BACKBONES = [
    ("VGG16", lambda **o: BackboneClassifier(VGG16(include_top=False, pooling="avg", **o), classes=3, preprocess=None,
                                             **o), 32, 1e-4),
    ("ResNet50", lambda **o: ResNet50(classes=3, **o), 32, 1e-3),
    ("MobileNetV2", lambda **o: MobileNetV2(alpha=0.35, classes=3, **o), 32, 1e-3),
    ("InceptionV3", lambda **o: InceptionV3(classes=3, **o), 75, 1e-3),
    ("UNet", lambda **o: UNet(filter_num=(4, 8), n_labels=3, attention=True, batch_norm=True, unpool=False, **o), 32,
     1e-3),
]


def host_variables(model, x):
  """`model.init`'s variables filled on the host: He-normal kernels, unit scales and variances, zeros elsewhere.

  Compiling `model.init` would cost a third of each training test.
  """
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = path[-1].key
    if name.endswith("kernel"):
      fan_in = np.prod(leaf.shape[:-2] if name == "depthwise_kernel" else leaf.shape[:-1])
      return jnp.asarray(rng.normal(0.0, np.sqrt(2.0 / fan_in), leaf.shape), leaf.dtype)
    return jnp.full(leaf.shape, 1.0 if name in ("scale", "var") else 0.0, leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, jax.eval_shape(model.init, jax.random.key(0), x))


@pytest.mark.parametrize("name,make,size,learning_rate", BACKBONES, ids=[b[0] for b in BACKBONES])
def test_bfloat16_training_of_each_backbone(name, make, size, learning_rate):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(4, size, size, 3)).astype(np.float32)
  y = np.array([0, 1, 2, 0]) if name != "UNet" else rng.integers(0, 3, (4, size, size))
  model = make(dtype=jnp.bfloat16, precision="highest")
  variables = host_variables(model, x[:1])
  # every product of the model computes in bfloat16, at the precision asked for
  found = products(model.apply, variables, x[:1])
  assert found and all(set(d) == {BF16} and is_highest(p) for d, p in found)
  state = TrainState.create(model, optax.adam(learning_rate), variables=variables)
  step = make_train_step("sparse_categorical_crossentropy")
  losses = []
  for _ in range(6):
    state, metrics = step(state, {"x": x, "y": y})
    state = step.reset(state)  # each step's own loss
    assert metrics["loss"].dtype == F32
    losses.append(float(metrics["loss"]))
  assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
  assert _dtypes(state.params) == {F32} and _dtypes(state.batch_stats) <= {F32}
