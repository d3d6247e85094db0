"""U^2-Net (`u2net_2d`) against keras-unet-collection's own numbers: outputs, parameter counts, output names, one
SGD step with deep supervision, the configurations' coverage, and the argument checks.

The reference files in tests/reference/unet come from keras-unet-collection
0.1.13 on TensorFlow 2.15 (`tests/reference/make_unet_references.py`, configurations in
`tests/reference/kuc_configs/u2net.py`).
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import pytest

from jaxcomponents.layers.normalization import KERAS_MOMENTUM
from jaxcomponents.models import unet_blocks
from jaxcomponents.models.u2net import RSU4F, U2Net, u2net_2d
from jaxcomponents.weights import load_keras
from tests import kuc_references

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)

REFERENCES = (
    "u2net_d2_auto_defaults", "u2net_d1_explicit_ave_nearest_prelu_softmax_ds",
    "u2net_d1_strided_transpose_gelu_linear_ds", "u2net_d1_one4f_max_bilinear_bn_snake_elu_ds",
    "u2net_d3_no4f_short_decoder_leaky_prelu_ds",
)
TRAINED = "u2net_d1_one4f_max_bilinear_bn_snake_elu_ds"


@pytest.mark.parametrize("name", REFERENCES)
def test_matches_keras_unet_collection(name):
  """Every output in kuc's order and with kuc's names, and the parameter count."""
  reference = kuc_references.load(name)
  model = u2net_2d(**reference.config["kwargs"])
  assert model.output_names == reference.config["output_names"]
  kuc_references.check_parameter_count(kuc_references.check_outputs(model, reference), reference)


def test_one_training_step_matches_keras_unet_collection():
  """kuc's recorded SGD step on the deep-supervision outputs, batch norm in training mode (Keras 2's rule for the
  moving variance: levels of few samples show it)."""
  reference = kuc_references.load(TRAINED)
  model = u2net_2d(**reference.config["kwargs"])
  variables = load_keras(model, reference.h5, reference.x, match="name")
  kuc_references.check_train_step(model, variables, reference)


def test_batch_norm_moves_as_keras_2_does():
  x = jnp.array([[[[1.0]]], [[[3.0]]]])  # two samples of one channel: biased variance 1, unbiased 2
  layer = unet_blocks.batch_norm(U2Net([4], 1), "bn", train=True)
  _, state = layer.apply(layer.init(jax.random.key(0), x), x, mutable=["batch_stats"])
  assert float(state["batch_stats"]["var"][0]) == pytest.approx(KERAS_MOMENTUM + (1 - KERAS_MOMENTUM) * 2.0)


def test_references_cover_every_variant():
  configs = [kuc_references.load(name).config for name in REFERENCES]
  assert TRAINED in REFERENCES and "train" in kuc_references.load(TRAINED).config
  kwargs = [c["kwargs"] for c in configs]
  seen = lambda key, default: {json.dumps(k.get(key, default)) for k in kwargs}
  assert seen("pool", True) == {"true", "false", '"max"', '"ave"'}
  assert seen("unpool", True) == {"true", "false", '"bilinear"', '"nearest"'}
  assert seen("batch_norm", False) == seen("deep_supervision", False) == {"true", "false"}
  assert seen("activation", "ReLU") == {f'"{a}"' for a in ("ReLU", "PReLU", "Snake", "GELU", "LeakyReLU")}
  assert seen("output_activation", "Sigmoid") == {'"Sigmoid"', '"Softmax"', "null", '"ELU"', '"PReLU"'}
  assert {len(k["filter_num_down"]) for k in kwargs} == {1, 2, 3}
  assert {len(u2net_2d(**k).filters.num_4f) for k in kwargs} == {0, 1, 2}
  for key in ("filter_num_up", "filter_mid_num_down", "filter_mid_num_up", "filter_4f_num", "filter_4f_mid_num"):
    assert '"auto"' in seen(key, "auto") and len(seen(key, "auto")) > 1, key
  quirks = kwargs[1]  # intermediate lists longer than needed: read from the start going down, the end going up
  assert len(quirks["filter_mid_num_up"]) > len(quirks["filter_num_up"])
  assert len(quirks["filter_4f_mid_num"]) > len(quirks["filter_4f_num"])
  short = kuc_references.load("u2net_d3_no4f_short_decoder_leaky_prelu_ds")  # a decoder shorter than the encoder
  assert short.outputs[-1].shape[1] == short.x.shape[1] // 2


def test_blocks_and_module_take_keras_unet_collection_names():
  model = u2net_2d((8, 8, 1), 2, [4], batch_norm=True, pool=False, unpool=False)
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))["params"]
  assert set(params) == {
      "u2net_in", "u2net_encode_4f_0", "u2net_down_4f_0", "u2net_encode_4f_1", "u2net_down_4f_1",
      "u2net_decode_4f_0", "u2net_up_4f_0", "u2net_decode_0", "u2net_up_0", "u2net_output_sup0",
      "u2net_output_conv_1", "u2net_sup1", "u2net_output_conv_2", "u2net_sup2",
      "u2net_output_final"}
  assert sorted(params["u2net_in"]["u2net_in_encode_0"]) == ["u2net_in_encode_0_bn", "u2net_in_encode_0_stride_conv"]
  assert params["u2net_sup2"]["u2net_sup2_trans_conv"]["kernel"].shape == (3, 3, 2, 2)  # kernel 3 for stride 4
  assert model.depth == 3 and model.filters.mid_num_4f == (2, 2)


def test_rsu4f_takes_any_dilations():
  """kuc concatenates RSU4F's third-last skip before its output convolution whatever the dilations."""
  x = jnp.zeros((1, 4, 4, 2))
  for dilations, up_layers in (((1, 2, 4), 1), ((1, 2, 3, 4, 5), 3)):
    block = RSU4F(2, 3, dilations, batch_norm=False)
    params = jax.eval_shape(block.init, jax.random.key(0), x)["params"]
    assert sum(name.startswith("RSU4F_up_") for name in params) == up_layers
  with pytest.raises(ValueError, match=r"dilation_num=\[1, 2\] is not allowed; expected at least 3 entries"):
    block = RSU4F(2, 3, (1, 2))
    block.init(jax.random.key(0), x)


def test_any_input_size_is_checked_when_called():
  model = u2net_2d((None, None, 1), 2, [4], filter_4f_num=[4, 4, 4])
  for size in (8, 16):
    x = jnp.zeros((1, size, 2 * size, 1))
    assert jax.eval_shape(model.init, jax.random.key(0), x)["params"]
  with pytest.raises(ValueError, match=r"height 12 is not divisible by 8 \(2\*\*max\(n \+ 1, n - 1 \+ len"):
    jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 12, 8, 1)))
  fixed = u2net_2d((8, 8, 1), 2, [4])
  with pytest.raises(ValueError, match=r"x has shape \(1, 16, 16, 1\); the model was built for input_size="):
    jax.eval_shape(fixed.init, jax.random.key(0), jnp.zeros((1, 16, 16, 1)))


BAD_ARGUMENTS = [
    (dict(filter_num_down=[]), r"filter_num_down=\[\] is not allowed; expected a non-empty list of positive int"),
    (dict(filter_num_down=[4, 0]), r"filter_num_down=\[4, 0\] is not allowed"),
    (dict(filter_num_up="automatic"), r"filter_num_up='automatic' is not allowed; .* or 'auto'"),
    (dict(filter_num_down=[3, 8]), r"filter_mid_num_down='auto' is not allowed here: it gives \[0, 2\] \(filter_num"),
    (dict(filter_4f_num=[1]), r"filter_4f_mid_num='auto' is not allowed here: it gives \[0\]"),
    (dict(filter_mid_num_up=[1]), r"filter_mid_num_up=\[1\] is not allowed; expected at least 2 entries"),
    (dict(filter_4f_mid_num=[2]), r"filter_4f_mid_num=\[2\] is not allowed; expected at least 2 entries"),
    (dict(filter_num_up=[4, 8, 8]), r"filter_num_up=\[4, 8, 8\] is not allowed .* expected at most 2 entries"),
    (dict(filter_4f_num=[]), r"filter_num_up=\[4, 8\] is not allowed .* filter_4f_num=\[\]; expected at most 1"),
    (dict(n_labels=0), r"n_labels=0 is not allowed"),
    (dict(activation="Sigmoid"), r"activation='Sigmoid' is not allowed; expected one of 'ReLU'"),
    (dict(output_activation="sigmoid"), r"output_activation='sigmoid' is not allowed"),
    (dict(batch_norm="yes"), r"batch_norm='yes' is not allowed; expected True or False"),
    (dict(deep_supervision=1), r"deep_supervision=1 is not allowed; expected True or False"),
    (dict(pool="avg"), r"pool='avg' is not allowed; expected one of True, False, 'max', 'ave'"),
    (dict(unpool="bicubic"), r"unpool='bicubic' is not allowed"),
    (dict(name=""), r"name='' is not allowed; expected a non-empty string"),
    (dict(input_size=(12, 12, 1)), r"input_size=\(12, 12, 1\) is not allowed: height 12 is not divisible by 8"),
    (dict(input_size=(16, 16)), r"input_size=\(16, 16\) is not allowed; expected \(height, width, channels\)"),
    (dict(input_size=(16, 16, 16, 1)), r"input_size=\(16, 16, 16, 1\) is not allowed; expected \(height, width"),
    (dict(input_size=(16, 0, 1)), r"input_size=0 is not allowed; expected a positive integer"),
]


@pytest.mark.parametrize("change, message", BAD_ARGUMENTS)
def test_bad_arguments_are_refused_when_built(change, message):
  kwargs = dict(input_size=(16, 16, 1), n_labels=2, filter_num_down=[4, 8]) | change
  with pytest.raises(ValueError, match=message):
    u2net_2d(**kwargs)


def test_the_module_checks_its_fields_when_called():
  with pytest.raises(ValueError, match=r"filter_mid_num_up=\[1\] is not allowed; expected at least 2 entries"):
    U2Net([4, 8], 2, filter_mid_num_up=[1]).init(jax.random.key(0), jnp.zeros((1, 16, 16, 1)))
  with pytest.raises(ValueError, match=r"expected \(batch, height, width, channels\)"):
    U2Net([4], 2).init(jax.random.key(0), jnp.zeros((1, 8, 8, 8, 1)))
