"""V-Net against keras-unet-collection's own numbers (2-D) and a Keras 3 twin of its code in 3-D: outputs,
parameter counts, one SGD step, the residual block, errors.

The 2-D reference files come from keras-unet-collection 0.1.13 on TensorFlow 2.15
(`tests/reference/kuc_configs/vnet.py`, written by `tests/reference/make_unet_references.py`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import keras
import pytest

from jaxcomponents.layers.precision import PrecisionFields
from jaxcomponents.models.vnet import VNet, residual_conv_stack, vnet_2d, vnet_3d
from tests import kuc_keras3, kuc_references
from tests.helpers import random_input
from tests.reference.kuc_configs.vnet import CONFIGS, TRAIN

pytestmark = pytest.mark.usefixtures("highest_precision")


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_keras_unet_collection(name):
  reference = kuc_references.load(name)
  kuc_references.check_reference(vnet_2d(**reference.config["kwargs"]), reference)


def test_references_cover_every_variant():
  configs = [kuc_references.load(name).config for name in CONFIGS]
  seen = kuc_references.variants(configs)
  assert seen("batch_norm", False) == {"true", "false"}
  assert seen("pool", True) == {"true", "false", '"max"', '"ave"'}
  assert seen("unpool", True) == {"true", "false", '"bilinear"', '"nearest"'}
  assert seen("activation", "ReLU") == {f'"{a}"' for a in ("ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "Snake",
                                                           "Softmax")}
  assert seen("output_activation", "Softmax") == {'"Softmax"', '"Sigmoid"', "null", '"PReLU"', '"Snake"'}
  assert {len(c["kwargs"]["filter_num"]) for c in configs} == {1, 2, 3, 4}
  levels = {min(c["kwargs"].get("res_num_ini", 1) + i, c["kwargs"].get("res_num_max", 3))
            for c in configs for i in range(len(c["kwargs"]["filter_num"]))}
  assert levels == {0, 1, 2, 3}
  assert any(1 in c["kwargs"]["filter_num"] and c["kwargs"].get("unpool", True) is not False for c in configs)
  assert len(TRAIN) == 1 and "train" in kuc_references.load(next(iter(TRAIN))).config


def vnet_keras3(input_size, filter_num, n_labels, res_num_ini=1, res_num_max=3, activation="ReLU",
                output_activation="Softmax", batch_norm=False, pool=True, unpool=True, name="vnet"):
  """kuc's `vnet_2d` (vnet_2d_base, vnet_left, vnet_right) in Keras 3 from `kuc_keras3`'s blocks, in any rank."""
  res_nums = [min(res_num_ini + i, res_num_max) for i in range(len(filter_num))]
  inputs = keras.Input(input_size)
  options = dict(activation=activation, batch_norm=batch_norm)
  X = kuc_keras3.CONV_stack(inputs, filter_num[0], stack_num=1, name=f"{name}_input_conv", **options)
  X = kuc_keras3.Res_CONV_stack(X, X, filter_num[0], res_nums[0], name=f"{name}_down_0", **options)
  skips = [X]
  for i, f in enumerate(filter_num[1:]):
    left = f"{name}_down_{i + 1}"
    X = kuc_keras3.encode_layer(X, f, 2, pool, name=f"{left}_encode", **options)
    if pool is not False:
      X = kuc_keras3.CONV_stack(X, f, stack_num=1, name=f"{left}_pre_conv", **options)
    X = kuc_keras3.Res_CONV_stack(X, X, f, res_nums[i + 1], name=f"{left}_res_conv", **options)
    skips.append(X)
  for i, (f, skip, res_num) in enumerate(zip(filter_num[-2::-1], skips[-2::-1], res_nums[-2::-1])):
    X = kuc_keras3.decode_layer(X, f, 2, unpool, name=f"{name}_up_{i}_decode", **options)
    concat = keras.layers.concatenate([X, skip], axis=-1, name=f"{name}_up_{i}_concat")
    X = kuc_keras3.Res_CONV_stack(concat, X, f, res_num, name=f"{name}_up_{i}_res_conv", **options)
  outputs = kuc_keras3.CONV_output(X, n_labels, activation=output_activation, name=f"{name}_output")
  return keras.Model(inputs, outputs, name=f"{name}_model")


CONFIGS_3D = {
    "prelu_strided_transpose_bn": dict(
        input_size=(8, 8, 8, 1), filter_num=[2, 4], n_labels=2, res_num_ini=1, res_num_max=2, activation="PReLU",
        output_activation="Sigmoid", batch_norm=True, pool=False, unpool=False),
    "snake_ave_nearest": dict(
        input_size=(8, 8, 8, 2), filter_num=[2, 2], n_labels=2, res_num_ini=2, res_num_max=2, activation="Snake",
        output_activation=None, pool="ave", unpool=True, name="v3"),
}


@pytest.mark.parametrize("name", CONFIGS_3D)
def test_3d_matches_its_keras3_twin(name, tmp_path):
  kwargs = CONFIGS_3D[name]
  x = random_input((2, *kwargs["input_size"]), seed=len(name))
  kuc_keras3.check_twin(vnet_3d(**kwargs), vnet_keras3(**kwargs), x, tmp_path / f"{name}.h5", seed=len(name))


class _Residual(PrecisionFields):
  res_num: int

  @nn.compact
  def __call__(self, x):
    return residual_conv_stack(self, x, x, 3, "res", train=False, res_num=self.res_num, activation="PReLU",
                               batch_norm=True)


@pytest.mark.parametrize("res_num", [0, 2])
def test_residual_conv_stack_layers(res_num):
  """kuc's Res_CONV_stack: `{name}_{i}` convolutions (none for res_num 0) and the sum's `{name}_add_activation`."""
  block = _Residual(res_num)
  x = jnp.ones((1, 4, 4, 3))
  params = jax.eval_shape(block.init, jax.random.key(0), x)["params"]
  layers = {path[-2].key for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]}  # leaf modules' names
  convs = {f"res_{i}{suffix}" for i in range(res_num) for suffix in ("", "_activation", "_bn")}
  assert layers == {"res_add_activation", *convs}
  if res_num == 0:
    variables = block.init(jax.random.key(0), x)
    assert jnp.allclose(block.apply(variables, x), 2.0)  # act(x + x), PReLU's slopes start at 0


def test_any_size_and_volumes():
  model = vnet_2d((None, None, 1), [2, 2], 2)
  assert jax.eval_shape(model.init_with_output, jax.random.key(0), jnp.zeros((1, 8, 12, 1)))[0].shape == (1, 8, 12, 2)
  volume = VNet(filter_num=(2, 2), n_labels=3, unpool="nearest")
  assert jax.eval_shape(volume.init_with_output, jax.random.key(0), jnp.zeros((1, 4, 8, 8, 1)))[0].shape == (
      1, 4, 8, 8, 3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(filter_num=[4, 8]), r"filter_num=\[4, 8\] is not allowed with unpool=True, res_num_ini=1 and "
                              r"res_num_max=3: decoder level vnet_up_0 adds its decoded map \(8 channels\) to its "
                              r"residual path \(4 channels\)"),
    (dict(filter_num=[4, 8], unpool=False, res_num_ini=0), r"decoder level vnet_up_0 .*\(4 channels\).*\(8 channels"),
    (dict(res_num_ini=-1), r"res_num_ini=-1 is not allowed; expected a non-negative integer"),
    (dict(res_num_max=2.0), r"res_num_max=2.0"),
    (dict(activation=None), r"activation=None is not allowed; expected one of 'ReLU'"),
    (dict(output_activation="softmax"), r"output_activation='softmax'.*'Sigmoid', None"),
    (dict(pool="min"), r"pool='min'.*'ave'"),
    (dict(unpool="bicubic"), r"unpool='bicubic'.*'nearest'"),
    (dict(batch_norm="no"), r"batch_norm='no'"),
    (dict(filter_num=[]), r"filter_num=\[\]"),
    (dict(n_labels=0), r"n_labels=0"),
    (dict(input_size=(32, 30, 1)), r"width 30 is not divisible by 2\*\*\(depth - 1\) = 4"),
    (dict(name=None), r"name=None is not allowed"),
])
def test_bad_arguments_raise(kwargs, match):
  args = dict(input_size=(32, 32, 1), filter_num=[4, 4, 4], n_labels=2)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    vnet_2d(**args)


def test_bad_3d_arguments_and_inputs_raise():
  with pytest.raises(ValueError, match=r"unpool='bilinear' is not allowed; expected one of True, False, 'nearest'"):
    vnet_3d((8, 8, 8, 1), [2, 2], 2, unpool="bilinear")
  with pytest.raises(ValueError, match=r"input_size=\(8, 8, 1\) is not allowed; expected \(depth, height, width"):
    vnet_3d((8, 8, 1), [2, 2], 2)
  with pytest.raises(ValueError, match=r"unpool='bilinear' is not allowed"):
    VNet(filter_num=(2, 2), n_labels=2, unpool="bilinear").init(jax.random.key(0), jnp.zeros((1, 4, 4, 4, 1)))
  model = vnet_3d((8, 8, 8, 1), [2, 2], 2)
  with pytest.raises(ValueError, match=r"input_size=\(8, 8, 8, 1\)"):
    model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
