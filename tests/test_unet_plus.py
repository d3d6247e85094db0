"""U-Net++ (`unet_plus_2d`, `unet_plus_3d`) against keras-unet-collection's numbers and a Keras 3 twin in 3-D.

The 2-D references (tests/reference/unet/xnet_*, configured in
tests/reference/kuc_configs/unet_plus.py) come from keras-unet-collection
0.1.13 on TensorFlow 2.15; the 3-D model is compared with keras-unet-collection's
`unet_plus_2d` transcribed to Keras 3 with 3-D layers (`unet_plus_keras3`).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import keras
import numpy as np
import optax
import pytest

from jaxcomponents.models import unet_plus as unet_plus_lib
from jaxcomponents.models.unet_backbone import frozen_patterns
from jaxcomponents.models.unet_plus import UNetPlus, unet_plus_2d, unet_plus_3d
from jaxcomponents.training import Model
from tests import kuc_keras3, kuc_references
from tests.helpers import random_input

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)

REFERENCES = (
    "xnet_d3_defaults", "xnet_d4_ave_nearest_bn_prelu_sup", "xnet_d3_strided_transpose_bn_snake_sup",
    "xnet_d4_max_bilinear_gelu_linear", "xnet_d3_leaky_strided_nearest_snake_out_sup",
    "xnet_d3_elu_ave_transpose_prelu_out", "xnet_vgg16_d2_sup", "xnet_resnet50_d3_sup_transpose_bn",
)
TRAINED = "xnet_d3_leaky_strided_nearest_snake_out_sup"


def _model(reference: kuc_references.Reference) -> UNetPlus:
  return getattr(unet_plus_lib, reference.config["function"])(**reference.config["kwargs"])


@pytest.mark.parametrize("name", REFERENCES)
def test_matches_keras_unet_collection(name):
  """Outputs (in kuc's order and names), parameter count and, where recorded, one SGD step on every output."""
  reference = kuc_references.load(name)
  model = _model(reference)
  # UNet++'s deepest output sums float32 rounding from both sides: on the d3 reference, computed in float64 ours
  # is 7e-6 from our float32 output and 6e-6 from kuc's (a CPU with other vector kernels lands at 1.1e-5).
  kuc_references.check_reference(model, reference, tol=2e-5)


def test_compile_by_output_name():
  """`Model.compile` takes losses and weights by `output_names`, logs each output's loss, and trains as kuc."""
  reference = kuc_references.load(TRAINED)
  model = _model(reference)
  names = model.output_names
  assert len(names) == len(reference.outputs) == 3
  trainer = Model(model, kuc_references.check_outputs(model, reference))
  weights = dict(zip(names, reference.config["train"]["loss_weights"]))
  trainer.compile(optimizer=optax.sgd(reference.config["train"]["learning_rate"]),
                  loss={name: "mean_squared_error" for name in names}, loss_weights=weights)
  targets = [reference.arrays[f"target_{i}"] for i in range(len(names))]
  logs = trainer.train_on_batch(reference.x, targets, return_dict=True)
  assert {f"{name}_loss" for name in names} <= set(logs)
  np.testing.assert_allclose(logs["loss"], reference.arrays["train_loss"], rtol=1e-4)
  np.testing.assert_allclose(logs["loss"], sum(weights[n] * logs[f"{n}_loss"] for n in names), rtol=1e-5)


def test_references_cover_every_variant():
  configs = [kuc_references.load(name).config for name in REFERENCES]
  seen = kuc_references.variants(configs)
  assert seen("pool", True) == {"true", "false", '"max"', '"ave"'}
  assert seen("unpool", True) == {"true", "false", '"bilinear"', '"nearest"'}
  assert seen("batch_norm", False) == seen("deep_supervision", False) == {"true", "false"}
  assert seen("stack_num_down", 2) == seen("stack_num_up", 2) == {"1", "2"}
  assert {len(c["kwargs"]["filter_num"]) for c in configs} >= {3, 4}
  assert seen("backbone", None) == {"null", '"VGG16"', '"ResNet50"'}
  assert all(c["kwargs"].get("deep_supervision") for c in configs if c["kwargs"].get("backbone"))
  assert seen("activation", "ReLU") >= {f'"{a}"' for a in ("ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "Snake")}
  assert seen("output_activation", "Softmax") >= {'"Softmax"', '"Sigmoid"', "null", '"PReLU"', '"Snake"'}
  trained = [c for c in configs if "train" in c]
  assert len(trained) == 1 and len(trained[0]["output_names"]) > 1


def test_only_the_nodes_an_output_reads_are_built():
  """kuc's nested nodes feed no concatenation: without deep supervision only the chain to the output exists."""
  x = jax.ShapeDtypeStruct((1, 16, 16, 1), jnp.float32)

  def built(**kwargs):
    params = jax.eval_shape(unet_plus_2d((16, 16, 1), [2, 2, 2], 2, **kwargs).init, jax.random.key(0), x)["params"]
    return {re.match(r"xnet_(up\d_from\d|output\w*)", name).group() for name in params if "_down" not in name}

  assert built() == {"xnet_up0_from1", "xnet_up1_from0", "xnet_output"}
  assert built(deep_supervision=True) == {"xnet_up0_from0", "xnet_up0_from1", "xnet_up1_from0", "xnet_output_sup0",
                                          "xnet_output_sup1", "xnet_output_final"}


@pytest.mark.parametrize("backbone, size, outputs", [("VGG19", 32, 3), ("DenseNet121", 32, 2),
                                                     ("EfficientNetB0", 32, 2), ("InceptionV3", 75, 2)])
def test_backbones_give_full_size_outputs(backbone, size, outputs):
  """A backbone of each further family (InceptionV3's uneven taps are resized) with deep supervision."""
  model = unet_plus_2d((size, size, 3), [2, 2, 2], 2, unpool=False, deep_supervision=True, backbone=backbone,
                       weights=None)
  x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  ys, variables = jax.eval_shape(model.init_with_output, jax.random.key(0), x)
  assert [y.shape for y in ys] == [(1, size, size, 2)] * outputs == [(1, size, size, 2)] * len(model.output_names)
  assert f"{backbone}_backbone" in variables["params"]
  assert ("xnet_sup0_up" in variables["params"]) == (not backbone.startswith("VGG"))


def test_freeze_backbone_and_batch_norm_are_independent():
  x = jnp.asarray(random_input((2, 32, 32, 3), seed=3))
  model = unet_plus_2d((32, 32, 3), [2, 2], 2, backbone="ResNet50", weights=None, batch_norm=True,
                       freeze_backbone=True, freeze_batch_norm=False)
  variables = jax.jit(model.init)(jax.random.key(0), x)

  def loss(params):
    y, _ = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
    return jnp.sum(y[..., 0] ** 2)

  grads = jax.jit(jax.grad(loss))(variables["params"])
  norm = lambda tree: float(sum(jnp.sum(jnp.abs(g)) for g in jax.tree.leaves(tree)))
  backbone = grads["ResNet50_backbone"]
  assert norm(backbone["conv1_conv"]) == 0 and norm(backbone["conv1_bn"]) > 0 and norm(grads["xnet_output"]) > 0
  assert frozen_patterns(model, variables["params"]) == ["ResNet50_backbone/conv1_conv/.*"]


def unet_plus_keras3(input_size, filter_num, n_labels, stack_num_down=2, stack_num_up=2, activation="ReLU",
                     output_activation="Softmax", batch_norm=False, pool=True, unpool=True, deep_supervision=False,
                     name="xnet"):
  """kuc's `unet_plus_2d` without a backbone, its nested loops as written, from `kuc_keras3`'s blocks (any rank).

  Without a backbone every row is long enough, so kuc's branch for a short row does not arise.
  """
  inputs = keras.Input(input_size)
  depth = len(filter_num)
  nest = [[] for _ in range(depth)]
  x = kuc_keras3.CONV_stack(inputs, filter_num[0], stack_num=stack_num_down, activation=activation,
                            batch_norm=batch_norm, name=f"{name}_down0")
  nest[0].append(x)
  for i, f in enumerate(filter_num[1:]):
    x = kuc_keras3.UNET_left(x, f, stack_num=stack_num_down, activation=activation, pool=pool,
                             batch_norm=batch_norm, name=f"{name}_down{i + 1}")
    nest[0].append(x)
  for level in range(1, depth):
    for i in range(1, len(nest[level - 1])):
      skips = [nest[previous][i - 1] for previous in range(level)]
      nest[level].append(kuc_keras3.UNET_right(
          nest[level - 1][i], skips, filter_num[i - 1], stack_num=stack_num_up, activation=activation,
          unpool=unpool, batch_norm=batch_norm, concat=False, name=f"{name}_up{level - 1}_from{i - 1}"))
  head = lambda x, suffix: kuc_keras3.CONV_output(x, n_labels, kernel_size=1, activation=output_activation,
                                                  name=f"{name}_output{suffix}")
  if not deep_supervision:
    return keras.Model(inputs, head(nest[-1][0], ""))
  outputs = [head(nest[i][0], f"_sup{i}") for i in range(depth - 1)] + [head(nest[-1][0], "_final")]
  return keras.Model(inputs, outputs)


CONFIGS_3D = {  # small: XLA:CPU compiles 3-D convolutions and their gradients slowly
    "chain_strided_transpose_bn_prelu": dict(
        input_size=(4, 8, 4, 1), filter_num=[2, 2, 4], n_labels=2, stack_num_down=1, stack_num_up=1,
        activation="PReLU", output_activation="Sigmoid", batch_norm=True, pool=False, unpool=False),
    "sup_ave_nearest_snake": dict(
        input_size=(4, 4, 4, 2), filter_num=[2, 3], n_labels=3, stack_num_down=1, stack_num_up=1, activation="Snake",
        output_activation=None, pool="ave", unpool="nearest", deep_supervision=True),
}


@pytest.mark.parametrize("name", CONFIGS_3D)
def test_3d_matches_its_keras3_twin(name, tmp_path):
  kwargs = CONFIGS_3D[name]
  ours, theirs = unet_plus_3d(**kwargs), unet_plus_keras3(**kwargs)
  assert ours.output_names == list(theirs.output_names)
  x = random_input((2, *kwargs["input_size"]), seed=len(name))
  kuc_keras3.check_twin(ours, theirs, x, tmp_path / f"{name}.h5", seed=len(name))


BAD_ARGUMENTS = [
    (dict(activation="relu"), r"activation='relu'.*'ReLU'"),
    (dict(output_activation="softmax"), r"output_activation='softmax'.*'Sigmoid'"),
    (dict(pool="min"), r"pool='min'.*'ave'"),
    (dict(unpool="bicubic"), r"unpool='bicubic'.*'nearest'"),
    (dict(deep_supervision="yes"), r"deep_supervision='yes'.*True or False"),
    (dict(filter_num=[4, 0, 8]), r"filter_num=\[4, 0, 8\].*positive integers"),
    (dict(n_labels=0), r"n_labels=0"),
    (dict(stack_num_up=0), r"stack_num_up=0"),
    (dict(batch_norm=1), r"batch_norm=1"),
    (dict(backbone="ResNet18"), r"backbone='ResNet18'.*'VGG16'"),
    (dict(backbone="ResNet50", filter_num=[4], weights=None), r"depth 1 is not allowed with backbone='ResNet50'"),
    (dict(weights=3), r"weights=3"),
    (dict(freeze_backbone="no"), r"freeze_backbone='no'"),
    (dict(input_size=(30, 32, 3)), r"height 30 is not divisible by 2\*\*\(depth - 1\) = 4"),
    (dict(input_size=(32, 32)), r"input_size=\(32, 32\) is not allowed; expected \(height, width, channels\)"),
    (dict(input_size=(16, 16, 3), backbone="VGG16", weights=None), r"smaller than its minimum 32"),
    (dict(input_size=(32, 32, 1), backbone="VGG16"), r"ImageNet weights need 3 channels"),
    (dict(name=""), r"name='' is not allowed"),
    (dict(input_size=(8, 8, 8, 1), unpool="bilinear"), r"unpool='bilinear' is not allowed.*'nearest'"),
    (dict(input_size=(6, 8, 8, 1)), r"depth 6 is not divisible by 2\*\*\(depth - 1\) = 4"),
    (dict(input_size=(8, 8, 1), build=unet_plus_3d), r"input_size=\(8, 8, 1\) is not allowed; expected \(depth, "),
]


@pytest.mark.parametrize("kwargs, match", BAD_ARGUMENTS)
def test_bad_arguments_raise(kwargs, match):
  """unet_plus_2d's (and, for 3-D input sizes, unet_plus_3d's) arguments are checked when the model is built."""
  arguments = {"input_size": (32, 32, 3), "filter_num": [4, 8, 16], "n_labels": 2, **kwargs}
  build = arguments.pop("build", unet_plus_3d if len(arguments["input_size"]) == 4 else unet_plus_2d)
  with pytest.raises(ValueError, match=match):
    build(**arguments)


def test_bad_inputs_and_fields_raise_when_called():
  model = unet_plus_2d((16, 16, 3), [2, 4], 2)
  with pytest.raises(ValueError, match=r"x has shape \(1, 16, 16, 1\); the model was built for input_size"):
    model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 1)))
  with pytest.raises(ValueError, match=r"deep_supervision=None"):
    UNetPlus(filter_num=[2, 4], n_labels=2, deep_supervision=None).init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))


def test_every_deep_supervision_output_survives_save_load_and_export(tmp_path):
  """A whole-model folder and a StableHLO export both give back every output, in order."""
  from jaxcomponents.export import export, load_stablehlo
  from jaxcomponents.training import Model, load_model

  x = np.random.default_rng(0).uniform(size=(2, 8, 8, 8, 1)).astype(np.float32)
  model = Model(unet_plus_3d((8, 8, 8, 1), [2, 4, 4], n_labels=1, output_activation="Sigmoid", deep_supervision=True))
  model.build(x)
  expected = model.predict(x, verbose=0)
  assert len(expected) == 3 == len(model.module.output_names)
  model.save(tmp_path / "xnet")
  exported = tmp_path / "xnet.stablehlo"
  export(model.module, model.variables, x, exported)
  for outputs in (load_model(tmp_path / "xnet").predict(x, verbose=0), load_stablehlo(exported)(x)):
    assert len(outputs) == 3
    for got, want in zip(outputs, expected):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_deep_supervision_of_one_level_hands_its_one_output_back_alone_as_keras():
  """kuc's `Model(..., outputs=[out])`: Keras hands back the tensor itself, not a one-element list."""
  model = unet_plus_2d((16, 16, 3), [4], 2, deep_supervision=True)
  x = jnp.zeros((1, 16, 16, 3))
  y = model.apply(model.init(jax.random.key(0), x), x)
  assert isinstance(y, jax.Array) and y.shape == (1, 16, 16, 2)
