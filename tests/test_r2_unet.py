"""R2U-Net against keras-unet-collection's own numbers: outputs, parameter counts, one SGD step, errors.

The reference files come from keras-unet-collection 0.1.13 on TensorFlow 2.15
(`tests/reference/kuc_configs/r2_unet.py`, written by `tests/reference/make_unet_references.py`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from jaxcomponents.models.r2_unet import R2UNet, RecurrentResidualConv, r2_unet_2d
from tests import kuc_references
from tests.reference.kuc_configs.r2_unet import CONFIGS, TRAIN

pytestmark = pytest.mark.usefixtures("highest_precision")


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_keras_unet_collection(name):
  reference = kuc_references.load(name)
  kuc_references.check_reference(r2_unet_2d(**reference.config["kwargs"]), reference)


def test_references_cover_every_variant():
  configs = [kuc_references.load(name).config for name in CONFIGS]
  seen = kuc_references.variants(configs)
  assert seen("recur_num", 2) == {"0", "1", "2", "3"}
  assert seen("stack_num_down", 2) == seen("stack_num_up", 2) == {"1", "2"}
  assert seen("batch_norm", False) == {"true", "false"}
  assert seen("pool", True) == {"true", "false", '"max"', '"ave"'}
  assert seen("unpool", True) == {"true", "false", '"bilinear"', '"nearest"'}
  assert seen("activation", "ReLU") == {f'"{a}"' for a in ("ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "Snake")}
  assert seen("output_activation", "Softmax") == {'"Softmax"', '"Sigmoid"', "null", '"PReLU"', '"Snake"'}
  assert {len(c["kwargs"]["filter_num"]) for c in configs} == {2, 3, 4}
  assert all(c["output_names"] == [f"{c['kwargs'].get('name', 'r2_unet')}_output_activation"] or
             c["kwargs"].get("output_activation", "Softmax") is None for c in configs)
  assert len(TRAIN) == 1 and "train" in kuc_references.load(next(iter(TRAIN))).config


def test_recurrent_block_layer_names_and_biases():
  """kuc's RR_CONV names; every convolution keeps its bias under batch norm (kuc's quirk)."""
  block = RecurrentResidualConv(3, stack_num=2, recur_num=1, activation="PReLU", batch_norm=True, name="rr")
  params = jax.eval_shape(block.init, jax.random.key(0), jnp.zeros((1, 4, 4, 2)))["params"]
  assert sorted(params) == ["rr_activation0", "rr_activation0_0", "rr_activation1", "rr_activation1_0", "rr_bn0",
                            "rr_bn0_0", "rr_bn1", "rr_bn1_0", "rr_conv", "rr_conv0", "rr_conv0_0", "rr_conv1",
                            "rr_conv1_0"]
  assert all("bias" in params[n] for n in params if n.startswith("rr_conv"))
  assert params["rr_conv"]["kernel"].shape == (1, 1, 2, 3)


def test_works_on_volumes_and_any_size():
  model = R2UNet(filter_num=(2, 4), n_labels=2, stack_num_down=1, stack_num_up=1, recur_num=1, unpool="nearest")
  x = jnp.zeros((1, 4, 8, 8, 1))
  assert jax.eval_shape(model.init_with_output, jax.random.key(0), x)[0].shape == (1, 4, 8, 8, 2)
  free = r2_unet_2d((None, None, 1), [2, 4], 2, stack_num_down=1, stack_num_up=1)
  assert jax.eval_shape(free.init_with_output, jax.random.key(0), jnp.zeros((1, 8, 12, 1)))[0].shape == (1, 8, 12, 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(recur_num=-1), r"recur_num=-1 is not allowed; expected a non-negative integer"),
    (dict(recur_num=1.5), r"recur_num=1.5"),
    (dict(stack_num_down=0), r"stack_num_down=0 is not allowed; expected a positive integer"),
    (dict(stack_num_up=0), r"stack_num_up=0"),
    (dict(activation=None), r"activation=None is not allowed; expected one of 'ReLU'"),
    (dict(activation="relu"), r"activation='relu'"),
    (dict(output_activation="Tanh"), r"output_activation='Tanh'.*'Sigmoid', None"),
    (dict(pool="min"), r"pool='min'.*'ave'"),
    (dict(unpool="bicubic"), r"unpool='bicubic'.*'nearest'"),
    (dict(batch_norm=1), r"batch_norm=1"),
    (dict(filter_num=[4, 0]), r"filter_num=\[4, 0\].*positive integers"),
    (dict(n_labels=0), r"n_labels=0"),
    (dict(input_size=(30, 32, 1)), r"height 30 is not divisible by 2\*\*\(depth - 1\) = 4"),
    (dict(input_size=(32, 32, 1, 1)), r"input_size=\(32, 32, 1, 1\).*\(height, width, channels\)"),
    (dict(name=""), r"name='' is not allowed"),
])
def test_bad_arguments_raise(kwargs, match):
  args = dict(input_size=(32, 32, 1), filter_num=[4, 8, 16], n_labels=2)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    r2_unet_2d(**args)


def test_bad_inputs_raise():
  model = r2_unet_2d((16, 16, 1), [2, 4], 2)
  with pytest.raises(ValueError, match=r"input_size=\(16, 16, 1\)"):
    model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  with pytest.raises(ValueError, match=r"unpool='bilinear' is not allowed"):
    R2UNet(filter_num=(2, 4), n_labels=2, unpool="bilinear").init(jax.random.key(0), jnp.zeros((1, 4, 4, 4, 1)))
