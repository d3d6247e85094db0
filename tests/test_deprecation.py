"""One vocabulary: the old spellings still work for one release, warn where they are written, and change nothing."""

import importlib
import inspect
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomponents import layers, models
from jaxcomponents.layers import (Conv, ConvTranspose, Convolution, Dense, DepthwiseConv, Dropout, Embedding, GRUCell,
                                  LSTMCell, Recurrent, SeparableConv, SimpleRNNCell)
from jaxcomponents.keras.graph import KerasGraph
from jaxcomponents.models.unet_blocks import ConvStack, DecodeLayer, EncodeLayer

X2 = jnp.arange(24.0).reshape(2, 3, 4) / 24
IMAGES = jnp.linspace(-1, 1, 2 * 6 * 6 * 2).reshape(2, 6, 6, 2)
IDS = jnp.array([[0, 4, 2]])

# (old spelling, new spelling, input)
RENAMES = [
    (lambda: Dense(units=3), lambda: Dense(3), X2),
    (lambda: Dense(features=None, units=3), lambda: Dense(features=3), X2),
    (lambda: Recurrent(units=3, cell="gru"), lambda: Recurrent(3, cell="gru"), X2),
    (lambda: Recurrent(cell=LSTMCell(units=3)), lambda: Recurrent(cell=LSTMCell(3)), X2),
    (lambda: Recurrent(cell=GRUCell(units=3)), lambda: Recurrent(cell=GRUCell(3)), X2),
    (lambda: Recurrent(cell=SimpleRNNCell(units=3)), lambda: Recurrent(cell=SimpleRNNCell(3)), X2),
    (lambda: Convolution(4, 3, dilation=2), lambda: Convolution(4, 3, kernel_dilation=2), IMAGES),
    (lambda: Convolution(4, 3, groups=2), lambda: Convolution(4, 3, feature_group_count=2), IMAGES),
    (lambda: ConvTranspose(4, (3, 3), (1, 1), dilation=(2, 2)),
     lambda: ConvTranspose(4, (3, 3), (1, 1), kernel_dilation=(2, 2)), IMAGES),
    (lambda: DepthwiseConv((3, 3), (1, 1), dilation=(2, 1)),
     lambda: DepthwiseConv((3, 3), (1, 1), kernel_dilation=(2, 1)), IMAGES),
    (lambda: SeparableConv(4, (3, 3), (1, 1), "SAME", dilation=(1, 2)),
     lambda: SeparableConv(4, (3, 3), (1, 1), "SAME", kernel_dilation=(1, 2)), IMAGES),
    (lambda: Embedding(input_dim=5, output_dim=3), lambda: Embedding(5, 3), IDS),
]


@pytest.mark.parametrize("old,new,x", RENAMES)
def test_an_old_field_name_warns_where_it_is_written_and_builds_the_same_layer(old, new, x):
  with pytest.warns(DeprecationWarning, match=r"\((units|dilation|groups|input_dim|output_dim)=\.\.\.\) is a "
                                              r"deprecated alias of (features|kernel_dilation|feature_group_count|"
                                              r"num_embeddings)=\.\.\.; the old name goes in the next release") as w:
    layer = old()
  assert {record.filename for record in w} == {__file__}  # the line that wrote the old name
  reference = new()
  assert repr(layer) == repr(reference)
  variables = reference.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, layer.init(jax.random.key(0), x)) == jax.tree.map(jnp.shape, variables)
  np.testing.assert_array_equal(layer.apply(variables, x), reference.apply(variables, x))
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    layer.clone()  # the value has moved: a copy does not warn again


@pytest.mark.parametrize("layer,match", [
    (lambda: Dense(3, units=4), r"units=4 is not allowed with features=3 in Dense; units is the deprecated name of "
                                r"features: pass features only"),
    (lambda: Convolution(4, 3, kernel_dilation=2, dilation=2), r"dilation=2 is not allowed with kernel_dilation=2"),
    (lambda: Embedding(5, output_dim=3, features=3), r"output_dim=3 is not allowed with features=3 in Embedding"),
])
def test_old_and_new_name_together_is_an_error(layer, match):
  with pytest.raises(ValueError, match=match):
    layer()


def apply_twice(module, x, variables, rngs, *positional):
  """The module applied with `train` (and the rest) given by keyword, then positionally (warning)."""
  names = ("train", "return_features", "mask")[:len(positional)]
  keyword = module.apply(variables, x, rngs=rngs, mutable=["batch_stats"], **dict(zip(names, positional)))
  with pytest.warns(DeprecationWarning, match=rf"{type(module).__name__}: passing {', '.join(names)} positionally "
                                              r"after the input is a deprecated alias of train=\.\.\.") as w:
    old = module.apply(variables, x, *positional, rngs=rngs, mutable=["batch_stats"])
  assert {record.filename for record in w} == {__file__}
  return keyword, old


@pytest.mark.parametrize("module,x", [
    (Dense(3, batch_norm=True, dropout=0.5), X2),
    (Convolution(4, 3, batch_norm=True, dropout=0.5, pool="max"), IMAGES),
    (Recurrent(3, dropout=0.5, return_sequences=True), X2),
    (Dropout(0.5), X2),
    (ConvStack(4, batch_norm=True), IMAGES),
    (EncodeLayer(4, pool="max", batch_norm=True), IMAGES),
    (DecodeLayer(4, unpool=False, batch_norm=True), IMAGES),
])
def test_train_given_positionally_still_works_for_a_release(module, x):
  rngs = {"dropout": jax.random.key(1)}
  variables = module.init(jax.random.key(0), x)
  keyword, old = apply_twice(module, x, variables, rngs, True)
  jax.tree.map(np.testing.assert_array_equal, keyword, old)


def test_backbones_take_train_and_return_features_positionally_for_a_release():
  model, x = models.VGG16(include_top=False), jnp.zeros((1, 32, 32, 3))
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  shapes = jax.eval_shape(lambda v: apply_twice(model, x, v, {}, False, True), variables)
  keyword, old = shapes
  assert keyword == old and len(keyword[0]) == 2  # (output, features), then the (empty) updates


def test_recurrent_takes_its_old_positional_order():
  layer, lengths = Recurrent(3), jnp.array([3, 1])
  variables = layer.init(jax.random.key(0), X2)
  mask = jnp.arange(3)[None] < lengths[:, None]
  with pytest.warns(DeprecationWarning, match="passing train, mask positionally"):
    old = layer.apply(variables, X2, False, mask)
  np.testing.assert_array_equal(old, layer.apply(variables, X2, mask=mask))


@pytest.mark.parametrize("call,match", [
    (lambda layer, v: layer.apply(v, X2, True, train=True), r"Dense got train both positionally and by keyword"),
    (lambda layer, v: layer.apply(v, X2, True, False), r"Dense takes the input and at most 1 more positional "
                                                        r"arguments \(train\); 3 were given"),
])
def test_positional_misuse_is_a_type_error(call, match):
  layer = Dense(3)
  variables = layer.init(jax.random.key(0), X2)
  with pytest.raises(TypeError, match=match):
    call(layer, variables)


class OldProtocolCell(nn.Module):
  """A cell written for the protocol before `features`: its state size is `units`."""

  units: int
  num_states = 1
  gates = 1
  keras_name = "old_cell"

  @nn.compact
  def __call__(self, carry, x, input_mask=None, recurrent_mask=None):
    h = jnp.tanh(nn.Dense(self.units, name="dense")(jnp.concatenate([x, carry[0]], axis=-1)))
    return (h,), h


def test_a_cell_with_the_old_units_field_still_runs_for_a_release():
  layer = Recurrent(cell=OldProtocolCell(4), return_state=True)
  with pytest.warns(DeprecationWarning, match=r"OldProtocolCell.units is a deprecated alias of the cell protocol's "
                                              r"features"):
    (y, h), variables = layer.init_with_output(jax.random.key(0), X2)
  assert y.shape == h.shape == (2, 4)
  assert variables["params"]["old_cell"]["dense"]["kernel"].shape == (8, 4)


def public_modules_with_train():
  for obj in [*(getattr(package, name) for package in (layers, models) for name in package.__all__), KerasGraph]:
    if isinstance(obj, type) and issubclass(obj, nn.Module) and "train" in inspect.signature(obj.__call__).parameters:
      yield obj


MORE_INPUTS = {layers.MultiHeadAttention: ("value", "key")}


def test_train_is_keyword_only_everywhere():
  modules = list(public_modules_with_train())
  assert {Dense, Convolution, Recurrent, Dropout, models.UNet, models.ResNet50, models.BackboneClassifier,
          KerasGraph} <= set(modules)
  for module in modules:
    parameters = inspect.signature(module.__call__).parameters
    assert parameters["train"].kind is inspect.Parameter.KEYWORD_ONLY, module
    # After the input only keywords; attention's other inputs (`value`, `key`) are positional, as in Keras.
    assert all(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD or p.name in MORE_INPUTS.get(module, ())
               for p in list(parameters.values())[2:]), module


def test_one_name_for_each_argument():
  """Output width is `features` and dilation `kernel_dilation`, as in `flax.linen`, on every layer that has one."""
  for cls in (Dense, Recurrent, LSTMCell, GRUCell, SimpleRNNCell, Convolution, Conv, ConvTranspose, SeparableConv,
              Embedding, nn.Dense, nn.LSTMCell):
    assert "features" in cls.__dataclass_fields__, cls
  for cls in (Convolution, Conv, ConvTranspose, DepthwiseConv, SeparableConv, nn.ConvTranspose):
    assert "kernel_dilation" in cls.__dataclass_fields__, cls


@pytest.mark.parametrize("old_home, name, new_home", [
    ("jaxcomponents.models", "init_unet", "jaxcomponents.weights"),
    ("jaxcomponents.models.unet", "init_unet", "jaxcomponents.weights"),
])
def test_a_name_moved_up_a_layer_still_works_from_its_old_home_for_a_release(old_home, name, new_home):
  """Models import no weights (tests/test_import_layers.py); the old names resolve lazily."""
  with pytest.warns(DeprecationWarning, match=rf"^{old_home}\.{name} is a deprecated alias of {new_home}\.{name};"):
    old = getattr(importlib.import_module(old_home), name)
  assert old is getattr(importlib.import_module(new_home), name)


def test_models_keras_graph_is_still_public_without_a_warning():
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    assert models.KerasGraph is KerasGraph
  assert "KerasGraph" in models.__all__
