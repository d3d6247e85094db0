"""unet_3d and att_unet_3d against Keras 3 twins of keras-unet-collection's 2-D code built from 3-D layers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomponents.models import att_unet_3d, unet_3d
from jaxcomponents.models.unet_blocks import ConvStack
from tests import kuc_keras3
from tests.helpers import random_input

pytestmark = pytest.mark.usefixtures("highest_precision")

CONFIGS = {
    "unet_defaults": (unet_3d, dict(input_size=(8, 8, 8, 1), filter_num=[2, 4, 8], n_labels=2), {}),
    "unet_ave_transpose_bn_snake": (unet_3d, dict(
        input_size=(8, 16, 8, 2), filter_num=[3, 4], n_labels=1, stack_num_down=1, stack_num_up=1,
        activation="Snake", output_activation="Sigmoid", batch_norm=True, pool="ave", unpool=False), {}),
    "unet_strided_nearest_prelu": (unet_3d, dict(
        input_size=(8, 8, 8, 1), filter_num=[2, 4, 4], n_labels=3, activation="PReLU", output_activation=None,
        pool=False, unpool="nearest", batch_norm=True), {}),
    "attunet_multiply_gelu": (att_unet_3d, dict(
        input_size=(8, 8, 8, 2), filter_num=[4, 4, 8], n_labels=2, activation="GELU", atten_activation="LeakyReLU",
        attention="multiply", batch_norm=True), {"attention": "multiply", "atten_activation": "LeakyReLU"}),
    "attunet_add_elu_strided": (att_unet_3d, dict(
        input_size=(8, 8, 8, 1), filter_num=[2, 4], n_labels=2, activation="ELU", pool=False, unpool=False,
        output_activation="Softmax"), {"attention": "add"}),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_its_keras3_twin(name, tmp_path):
  build, kwargs, extra = CONFIGS[name]
  ours = build(**kwargs)
  theirs = kuc_keras3.unet_3d(**{k: v for k, v in kwargs.items() if k not in ("attention", "atten_activation")},
                              **extra, name=ours.layer_prefix)
  x = random_input((2, *kwargs["input_size"]), seed=len(name))
  kuc_keras3.check_twin(ours, theirs, x, tmp_path / f"{name}.h5", seed=len(name))


def test_2d_and_3d_share_one_block_definition():
  """The same block class serves both ranks: its 3-D kernels are its 2-D kernels with one more spatial axis."""
  stack = ConvStack(4, stack_num=1)
  two = jax.eval_shape(stack.init, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  three = jax.eval_shape(stack.init, jax.random.key(0), jnp.zeros((1, 8, 8, 8, 3)))
  assert two["params"]["conv_stack_0"]["kernel"].shape == (3, 3, 3, 4)
  assert three["params"]["conv_stack_0"]["kernel"].shape == (3, 3, 3, 3, 4)


def test_3d_arguments_are_checked():
  with pytest.raises(ValueError, match=r"unpool='bilinear' is not allowed"):
    unet_3d((8, 8, 8, 1), [2, 4], 2, unpool="bilinear").init(jax.random.key(0), jnp.zeros((1, 8, 8, 8, 1)))
  with pytest.raises(ValueError, match=r"input_size=\(8, 8, 1\) is not allowed; expected \(depth, height, width"):
    unet_3d((8, 8, 1), [2, 4], 2)
  with pytest.raises(ValueError, match=r"height 7 is not divisible by 2\*\*\(depth - 1\) = 2"):
    unet_3d((8, 7, 8, 1), [2, 4], 2)
  model = unet_3d((None, None, None, 1), [2, 4], 2)
  assert model.apply(model.init(jax.random.key(0), jnp.zeros((1, 4, 4, 4, 1))), np.ones((1, 4, 4, 4, 1),
                     np.float32)).shape == (1, 4, 4, 4, 2)
