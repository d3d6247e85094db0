"""transunet_2d against keras-unet-collection's own numbers (tests/reference/unet/transunet_*), and its checks.

The reference files come from keras-unet-collection 0.1.13 on TensorFlow 2.15
(`tests/reference/kuc_configs/transunet.py`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomponents.keras.weight_files import open_keras_file
from jaxcomponents.models.transunet import TransUNet, transunet_2d
from jaxcomponents.models.unet_backbone import frozen_patterns
from jaxcomponents.weights import load_keras
from tests import kuc_references
from tests.reference.kuc_configs.transunet import CONFIGS, TRAIN

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)

SMALL = dict(embed_dim=8, num_mlp=8, num_heads=2, num_transformer=1)


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_keras_unet_collection(name):
  reference = kuc_references.load(name)
  model = transunet_2d(**reference.config["kwargs"])
  kuc_references.check_reference(model, reference)  # output_names included
  assert ("train" in reference.config) == (name in TRAIN)


def test_each_transformer_gets_its_own_attention_weights():
  """Two transformers: both `query` sub-layers load by name, each from its own Keras layer (every attention layer
  has a `query`)."""
  reference = kuc_references.load("transunet_d3_defaults")
  variables = load_keras(transunet_2d(**reference.config["kwargs"]), reference.h5, reference.x, match="name")
  with open_keras_file(reference.h5) as layers:
    queries = {layer.path[0]: np.asarray(layer.weights["kernel"]) for layer in layers if layer.name == "query"}
  for i in range(2):
    block = variables["params"][f"transunet_ViT_{i}"][f"transunet_ViT_{i}_atten"]
    np.testing.assert_array_equal(block["query"]["kernel"], queries[f"transunet_ViT_{i}_atten"])


def test_references_cover_every_variant():
  kwargs = [config[1] for config in CONFIGS.values()]
  seen = lambda key, default: {repr(k.get(key, default)) for k in kwargs}
  assert seen("pool", True) == {"True", "False", "'max'", "'ave'"}
  assert seen("unpool", True) == {"True", "False", "'bilinear'", "'nearest'"}
  assert seen("batch_norm", False) == {"True", "False"}
  assert seen("stack_num_down", 2) == seen("stack_num_up", 2) == {"1", "2"}
  assert seen("num_transformer", 12) == {"1", "2"} and seen("num_heads", 12) == {"1", "2", "3"}
  assert {len(k["filter_num"]) for k in kwargs} == {2, 3, 4}
  assert seen("backbone", None) == {"None", "'ResNet50'"}
  assert seen("activation", "ReLU") == {repr(a) for a in ("ReLU", "LeakyReLU", "PReLU", "ELU", "GELU")}
  assert seen("mlp_activation", "GELU") == {repr(a) for a in ("GELU", "PReLU", "Snake", "Softmax", "ELU")}
  assert seen("output_activation", "Softmax") == {"'Softmax'", "'Sigmoid'", "None", "'Snake'"}
  assert len(TRAIN) == 1 and set(TRAIN) <= set(CONFIGS)


def test_shapes_of_the_transformer():
  """kuc's arithmetic in shapes: heads `embed_dim` wide, one position per pixel of the deepest map, an MLP of
  `num_mlp` then `embed_dim` units, no bias on the 1x1 convolutions around the transformer."""
  model = transunet_2d((32, 32, 3), [4, 8, 16], 2, embed_dim=6, num_mlp=10, num_heads=3, num_transformer=2)
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
  attention = params["transunet_ViT_1"]["transunet_ViT_1_atten"]
  assert attention["query"]["kernel"].shape == (6, 3, 6) and attention["attention_output"]["kernel"].shape == (3, 6, 6)
  assert params["patch_embedding"]["embedding"]["embeddings"].shape == (8 * 8, 6)
  assert params["transunet_ViT_0"]["transunet_ViT_0_mlp_dense_0"]["kernel"].shape == (6, 10)
  assert params["transunet_ViT_0"]["transunet_ViT_0_mlp_dense_1"]["kernel"].shape == (10, 6)
  assert set(params["transunet_conv_trans_before"]) == set(params["transunet_conv_trans_after"]) == {"kernel"}
  assert params["transunet_conv_trans_after"]["kernel"].shape == (1, 1, 6, 16)


def test_without_transformers_and_unknown_width():
  """num_transformer=0 (kuc then never reads mlp_activation); a width of None runs on square inputs."""
  model = transunet_2d((16, None, 1), [4, 8], 2, num_transformer=0, mlp_activation=None, embed_dim=4)
  x = jnp.zeros((2, 16, 16, 1))
  out = jax.eval_shape(lambda: model.apply(model.init(jax.random.key(0), x), x))
  assert out.shape == (2, 16, 16, 2)
  with pytest.raises(ValueError, match=r"x has shape \(2, 16, 8, 1\); .* the width must equal the height"):
    jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((2, 16, 8, 1)))


def test_backbone_freezing_and_dtype():
  model = transunet_2d((32, 32, 3), [4, 8, 16], 2, backbone="VGG16", weights=None, freeze_batch_norm=False,
                       dtype=jnp.bfloat16, **SMALL)
  x = jnp.zeros((1, 32, 32, 3))
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  assert frozen_patterns(model, variables["params"])[0] == "VGG16_backbone/block1_conv1/.*"
  assert not [name for name in variables["params"] if name.startswith("transunet_down")]  # VGG16 gives 3 levels
  assert jax.eval_shape(model.apply, variables, x).dtype == jnp.bfloat16
  deeper = transunet_2d((32, 32, 3), [4] * 6, 2, backbone="VGG16", weights=None, **SMALL)
  names = jax.eval_shape(deeper.init, jax.random.key(0), x)["params"]
  assert "transunet_down6_conv" in names  # the level after VGG16's 5 taps: kuc numbers it from 1, not 0


def test_product_fields_build_the_same_model():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 16, 16, 2)), jnp.float32)
  kuc = transunet_2d((16, 16, 2), [4, 8], 3, mlp_activation="Snake", pool="ave", unpool=False, name="tu", **SMALL)
  product = TransUNet(filter_num=[4, 8], n_labels=3, mlp_activation="Snake", pool="ave", unpool=False, prefix="tu",
                      **SMALL)
  variables = jax.jit(kuc.init)(jax.random.key(0), x)
  assert "tu_ViT_0" in variables["params"]
  np.testing.assert_array_equal(*jax.jit(lambda v, x: (product.apply(v, x), kuc.apply(v, x)))(variables, x))


@pytest.mark.parametrize("kwargs, message", [
    (dict(embed_dim=0), r"embed_dim=0 is not allowed; expected a positive integer"),
    (dict(num_mlp=2.5), r"num_mlp=2.5 is not allowed; expected a positive integer"),
    (dict(num_heads=True), r"num_heads=True is not allowed"),
    (dict(num_transformer=-1), r"num_transformer=-1 is not allowed; expected a non-negative integer"),
    (dict(mlp_activation="gelu"), r"mlp_activation='gelu' is not allowed; expected one of 'ReLU'"),
    (dict(mlp_activation="Sigmoid"), r"mlp_activation='Sigmoid' is not allowed"),
    (dict(activation=None), r"activation=None is not allowed"),
    (dict(output_activation="softmax"), r"output_activation='softmax' is not allowed"),
    (dict(pool="min"), r"pool='min' is not allowed"),
    (dict(unpool="bicubic"), r"unpool='bicubic' is not allowed"),
    (dict(batch_norm=1), r"batch_norm=1 is not allowed; expected True or False"),
    (dict(filter_num=[4, 0]), r"filter_num=\[4, 0\] is not allowed"),
    (dict(n_labels=0), r"n_labels=0 is not allowed"),
    (dict(stack_num_up=0), r"stack_num_up=0 is not allowed"),
    (dict(backbone="ResNet18"), r"backbone='ResNet18' is not allowed; expected one of"),
    (dict(backbone="InceptionV3", weights=None), r"backbone='InceptionV3' is not allowed in TransUNet"),
    (dict(weights=3), r"weights=3 is not allowed"),
    (dict(freeze_backbone="yes"), r"freeze_backbone='yes' is not allowed"),
    (dict(name=""), r"name='' is not allowed"),
    (dict(input_size=(32, 64, 3)), r"input_size=\(32, 64, 3\) is not allowed: .* width must equal the height"),
    (dict(input_size=(None, 32, 3)), r"input_size=\(None, 32, 3\) is not allowed: the height sets the number"),
    (dict(input_size=(30, 30, 3)), r"height 30 is not divisible by 2\*\*\(depth - 1\) = 4"),
    (dict(input_size=(8, 8, 8, 3)), r"input_size=\(8, 8, 8, 3\) is not allowed; expected \(height, width"),
    (dict(input_size=(16, 16, 3), backbone="VGG16", weights=None), r"height 16 is smaller than its minimum 32"),
    (dict(input_size=(32, 32, 1), backbone="VGG16"), r"ImageNet weights need 3 channels"),
])
def test_bad_arguments_are_named(kwargs, message):
  arguments = dict(input_size=(32, 32, 3), filter_num=[4, 8, 16], n_labels=2, **SMALL)
  with pytest.raises(ValueError, match=message):
    transunet_2d(**{**arguments, **kwargs})


def test_the_module_checks_its_fields_and_input_when_called():
  x = jnp.zeros((1, 16, 16, 1))
  with pytest.raises(ValueError, match=r"mlp_activation='Swish' is not allowed"):
    jax.eval_shape(TransUNet([4, 8], 2, mlp_activation="Swish", **SMALL).init, jax.random.key(0), x)
  with pytest.raises(ValueError, match=r"width must equal the height"):
    jax.eval_shape(TransUNet([4, 8], 2, **SMALL).init, jax.random.key(0), jnp.zeros((1, 16, 32, 1)))
  with pytest.raises(ValueError, match=r"TransUNet takes square images"):
    jax.eval_shape(TransUNet([4, 8], 2, **SMALL).init, jax.random.key(0), jnp.zeros((1, 8, 16, 16, 1)))
