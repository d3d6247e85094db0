"""swin_unet_2d against keras-unet-collection's own numbers (tests/reference/unet/swin_unet_*), and its checks.

The reference files come from keras-unet-collection 0.1.13 on TensorFlow 2.15
(`tests/reference/kuc_configs/swin_unet.py`).
"""

from __future__ import annotations

import contextlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomponents.keras.weight_files import open_keras_file
from jaxcomponents.models.swin_unet import (SwinTransformerBlock, SwinUNet, relative_position_index,
                                            shifted_window_mask, swin_constant_patterns, swin_unet_2d,
                                            window_partition, window_reverse)
from tests import kuc_references
from tests.reference.kuc_configs.swin_unet import CONFIGS, TRAIN

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)

ARGUMENTS = dict(input_size=(32, 32, 3), filter_num_begin=8, n_labels=2, depth=3, stack_num_down=2, stack_num_up=1,
                 patch_size=(2, 2), num_heads=[2, 2, 4], window_size=[4, 2, 2], num_mlp=16)


def build(kwargs):
  """`swin_unet_2d(**kwargs)`, expecting its warning where `shift_window` is not True."""
  ignored = kwargs.get("shift_window", True) is not True
  with pytest.warns(UserWarning, match="ignores it") if ignored else contextlib.nullcontext():
    return swin_unet_2d(**kwargs)


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_keras_unet_collection(name):
  reference = kuc_references.load(name)
  model = build(reference.config["kwargs"])
  variables = kuc_references.check_outputs(model, reference)
  kuc_references.check_parameter_count(variables, reference)
  with open_keras_file(reference.h5) as layers:
    keras_layers = {layer.path[0] for layer in layers} - {f"{model.prefix}_output_activation"}  # in the head's module
  assert set(variables["params"]) == keras_layers
  assert model.output_names == reference.config["output_names"]
  if name in TRAIN:
    kuc_references.check_train_step(model, variables, reference)


def test_constants_are_kucs():
  """kuc's relative position indices and shifted-window masks, as its files hold them, are ours."""
  seen = set()
  for name in CONFIGS:
    with open_keras_file(kuc_references.load(name).h5) as layers:
      for layer in layers:
        for weight, value in layer.weights.items():
          value = np.asarray(value)
          window = math.isqrt(value.shape[-1])
          if weight.endswith("_attn_pos_ind"):
            np.testing.assert_array_equal(value, relative_position_index(window))
            seen.add("index")
          elif weight.endswith("_attn_mask"):
            grid = window * math.isqrt(value.shape[0])
            np.testing.assert_array_equal(value, shifted_window_mask(grid, window, window // 2))
            seen.add("mask")
  assert seen == {"index", "mask"}
  x = jnp.arange(2 * 8 * 8 * 3.0).reshape(2, 8, 8, 3)
  np.testing.assert_array_equal(window_reverse(window_partition(x, 4), 4, 8, 8), x)


def test_references_cover_every_variant():
  kwargs = [config[1] for config in CONFIGS.values()]
  seen = lambda key, default=None: {repr(k.get(key, default)) for k in kwargs}
  assert seen("depth") == {"1", "2", "3"}
  assert seen("patch_size") == {"(2, 2)", "(3, 3)", "(4, 4)"}
  assert seen("stack_num_down") == {"1", "2"} and seen("stack_num_up") >= {"1", "2", "3"}
  assert {w for k in kwargs for w in k["window_size"][:k["depth"]]} >= {1, 2, 4, 8}
  assert {h for k in kwargs for h in k["num_heads"][:k["depth"]]} >= {1, 2, 3}
  assert any(len(k["num_heads"]) > k["depth"] and len(k["window_size"]) > k["depth"] for k in kwargs)
  assert any(k["input_size"][0] // k["patch_size"][0] == k["window_size"][0] for k in kwargs)  # one whole-grid window
  assert any(k["input_size"][0] % k["patch_size"][0] for k in kwargs)  # an input cropped to whole patches
  assert seen("shift_window", True) == {"True", "False"}
  assert seen("output_activation", "Softmax") == {"'Softmax'", "'Sigmoid'", "None", "'PReLU'"}
  assert len(TRAIN) == 1 and set(TRAIN) <= set(CONFIGS)


def test_builder_takes_kucs_arguments_and_ignores_shift_window():
  model = swin_unet_2d(**ARGUMENTS)
  assert model == SwinUNet(8, 2, 3, 2, 1, (2, 2), (2, 2, 4), (4, 2, 2), 16, input_size=(32, 32, 3))
  with pytest.warns(UserWarning, match=r"shift_window=False: keras-unet-collection's swin_unet_2d ignores it"):
    assert swin_unet_2d(**ARGUMENTS, shift_window=False) == model
  x = jnp.zeros((1, 32, 32, 3))
  shifted = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
  unshifted = jax.eval_shape(model.clone(shift_window=False).init, jax.random.key(0), x)
  assert "swin_unet_output" in shifted and "name1_attn_mask" in shifted["swin_transformer_block_1"]
  assert swin_constant_patterns(shifted) == [".*_attn_pos_ind", ".*_attn_mask"]
  assert swin_constant_patterns(unshifted["params"]) == [".*_attn_pos_ind"]


def test_constants_get_no_gradient_and_the_bias_does():
  block = SwinTransformerBlock(dim=4, num_patch=(4, 4), num_heads=2, window_size=2, shift_size=1, num_mlp=8,
                               prefix="name1")
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 4)), jnp.float32)
  params = jax.jit(block.init)(jax.random.key(0), x)["params"]
  grads = jax.jit(jax.grad(lambda p: jnp.sum(block.apply({"params": p}, x) ** 2)))(params)
  assert not np.any(grads["name1_attn_mask"]) and not np.any(grads["window_attention"]["name1_attn_pos_ind"])
  assert np.any(grads["window_attention"]["name1_attn_pos"])
  assert params["window_attention"]["name1_attn_pos_ind"].dtype == jnp.float32


def test_dtype_and_precision_reach_every_layer():
  model = swin_unet_2d(**ARGUMENTS, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16, precision="highest")
  x = jnp.zeros((1, 32, 32, 3))
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  assert jax.eval_shape(model.apply, variables, x).dtype == jnp.bfloat16
  block = variables["params"]["swin_transformer_block_1"]
  attention = block["window_attention_1"]
  qkv = attention["window_attention_1_name1_attn_qkv"]
  assert block["name1_attn_mask"].dtype == qkv["kernel"].dtype == jnp.bfloat16
  assert attention["name1_attn_pos_ind"].dtype == jnp.float32  # an index, exact in float32


@pytest.mark.parametrize("kwargs, message", [
    (dict(filter_num_begin=0), r"filter_num_begin=0 is not allowed; expected a positive integer"),
    (dict(n_labels=0), r"n_labels=0 is not allowed; expected a positive integer"),
    (dict(depth=0), r"depth=0 is not allowed; expected a positive integer"),
    (dict(stack_num_down=-1), r"stack_num_down=-1 is not allowed; expected a non-negative integer"),
    (dict(stack_num_up=1.0), r"stack_num_up=1.0 is not allowed"),
    (dict(num_mlp=2.5), r"num_mlp=2.5 is not allowed; expected a positive integer"),
    (dict(patch_size=2), r"patch_size=2 is not allowed; expected \(size, size\)"),
    (dict(patch_size=(2, 0)), r"patch_size=\(2, 0\) is not allowed"),
    (dict(num_heads=[2, 2]), r"num_heads=\[2, 2\] is not allowed; .* one per level \(at least depth=3\)"),
    (dict(window_size=[4, 0, 2]), r"window_size=\[4, 0, 2\] is not allowed"),
    (dict(output_activation="softmax"), r"output_activation='softmax' is not allowed; expected one of"),
    (dict(name=""), r"name='' is not allowed"),
    (dict(input_size="32"), r"input_size='32' is not allowed"),
    (dict(input_size=(None, 32, 3)), r"input_size=\(None, 32, 3\) is not allowed; .* positive integers"),
    (dict(input_size=(32, 16, 3)), r"input_size=\(32, 16, 3\) is not allowed with patch_size=\(2, 2\): .* square"),
    (dict(patch_size=(2, 4)), r"counts \(height // 2\) \* \(width // 4\) patches"),
    (dict(input_size=(36, 36, 3)), r"its 18 x 18 patches are not divisible by 2\*\*\(depth - 1\) = 4"),
    (dict(window_size=[3, 2, 2]), r"window_size=\[3, 2, 2\] is not allowed .* a window of 3 on a level of 16 x 16"),
    (dict(window_size=[4, 2, 8]), r"a window of 8 on a level of 4 x 4 patches"),
    (dict(window_size=[4, 2, 2, 16]), r"window of 16 on a level of 8 x 8 .*decoder level i uses window_size\[::-1"),
    (dict(num_heads=[3, 2, 4]), r"num_heads=\[3, 2, 4\] is not allowed: 3 heads for 8 channels"),
    (dict(num_heads=[2, 2, 4, 3]), r"3 heads for 16 channels; expected a divisor \(decoder level i uses"),
    (dict(filter_num_begin=6, patch_size=(4, 4), input_size=(64, 64, 3)), r"filter_num_begin=6 is not allowed with "
     r"patch_size=\(4, 4\): .* multiple of 4"),
])
def test_bad_arguments_are_named(kwargs, message):
  with pytest.raises(ValueError, match=message):
    swin_unet_2d(**{**ARGUMENTS, **kwargs})


def test_levels_without_blocks_are_not_checked():
  """kuc never reads a level's window and heads when it has no blocks (stack_num 0), so neither does the twin."""
  model = swin_unet_2d(**{**ARGUMENTS, "stack_num_up": 0, "num_heads": [2, 2, 4, 3], "window_size": [4, 2, 2, 16]})
  x = jnp.zeros((1, 32, 32, 3))
  assert jax.eval_shape(model.apply, jax.eval_shape(model.init, jax.random.key(0), x), x).shape == (1, 32, 32, 2)


def test_the_module_checks_its_fields_and_input_when_called():
  model = SwinUNet(8, 2, 2, 2, 2, (2, 2), (2, 2), (4, 2), 16)
  with pytest.raises(ValueError, match=r"output_activation='Swish' is not allowed"):
    jax.eval_shape(model.clone(output_activation="Swish").init, jax.random.key(0), jnp.zeros((1, 32, 32, 1)))
  with pytest.raises(ValueError, match=r"SwinUNet takes images"):
    jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 32, 32, 1)))
  with pytest.raises(ValueError, match=r"the model was built for input_size=\(32, 32, 1\)"):
    jax.eval_shape(model.clone(input_size=(32, 32, 1)).init, jax.random.key(0), jnp.zeros((1, 32, 32, 2)))
  with pytest.raises(ValueError, match=r"input_size=\(32, 24, 1\) is not allowed with patch_size"):
    jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 24, 1)))
  with pytest.raises(ValueError, match=r"shift_window=1 is not allowed; expected True or False"):
    jax.eval_shape(model.clone(shift_window=1).init, jax.random.key(0), jnp.zeros((1, 32, 32, 1)))
