"""UNET 3+ against keras-unet-collection's own numbers, its quirks, bad arguments and the classification-guided module.

The reference files (tests/reference/unet/unet3plus_*) come from keras-unet-collection 0.1.13 on TensorFlow 2.15
(`tests/reference/make_unet_references.py`, configurations in `tests/reference/kuc_configs/unet_3plus.py`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcomponents.models.unet_3plus import UNet3Plus, unet_3plus_2d
from jaxcomponents.models.unet_backbone import frozen_patterns
from jaxcomponents.training import Model
from tests import kuc_references
from tests.helpers import random_input
from tests.reference.kuc_configs.unet_3plus import CONFIGS

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_keras_unet_collection(name):
  """Outputs (every deep-supervision output in kuc's order), output names, parameter count and, for the training
  configuration, one SGD step."""
  reference = kuc_references.load(name)
  model = unet_3plus_2d(**reference.config["kwargs"])
  kuc_references.check_reference(model, reference)


def test_references_cover_every_variant():
  configs = [kuc_references.load(name).config for name in CONFIGS]
  assert sum("train" in c and c["kwargs"]["deep_supervision"] for c in configs) == 1
  seen = kuc_references.variants(configs)
  assert seen("pool", True) == {"true", "false", '"max"', '"ave"'}
  assert seen("unpool", True) == {"true", "false", '"bilinear"', '"nearest"'}
  assert seen("batch_norm", False) == seen("deep_supervision", False) == {"true", "false"}
  assert seen("stack_num_down", 2) == seen("stack_num_up", 1) == {"1", "2"}
  assert {len(c["kwargs"]["filter_num_down"]) for c in configs} == {2, 3, 4, 5}
  assert {"auto", "list"} <= {"auto" if s == '"auto"' else "list" for s in seen("filter_num_skip", "auto")}
  assert {"auto", "int"} <= {"auto" if s == '"auto"' else "int" for s in seen("filter_num_aggregate", "auto")}
  assert seen("backbone", None) == {"null", '"VGG16"', '"ResNet50"'}
  assert seen("activation", "ReLU") == {f'"{a}"' for a in ("ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "Snake")}
  assert seen("output_activation", "Sigmoid") == {'"Sigmoid"', '"Softmax"', "null", '"PReLU"', '"Snake"'}
  longer = [c for c in configs if c["kwargs"].get("filter_num_skip", "auto") != "auto"
            and len(c["kwargs"]["filter_num_skip"]) > len(c["kwargs"]["filter_num_down"]) - 1]
  assert longer, "a filter_num_skip longer than the decoder levels (kuc ignores the rest)"


def test_automatic_filter_numbers_and_the_spellings_of_pool_and_unpool():
  model = unet_3plus_2d((16, 16, 1), 2, [4, 8, 16, 32])
  assert model.skip_filters == (4, 4, 4) and model.aggregate_filters == 16  # depth * filter_num_down[0]
  assert unet_3plus_2d((32, 32, 3), 2, [4, 8, 16], backbone="ResNet50", weights=None).fused_levels == 1
  x = random_input((1, 8, 8, 2), seed=3)
  spelled = unet_3plus_2d((8, 8, 2), 2, [2, 2, 2], pool="max", unpool="bilinear", name="u3")
  default = UNet3Plus(filter_num_down=[2, 2, 2], n_labels=2, prefix="u3")
  variables = jax.jit(spelled.init)(jax.random.key(0), x)
  np.testing.assert_array_equal(*jax.jit(lambda v: (spelled.apply(v, x), default.apply(v, x)))(variables))


def test_kuc_quirks_shape_the_network():
  """The shallowest encoder map is never fused (kuc's loop is one level short), the fusion convolutions always
  have batch norm, and a half-resolution backbone leaves the last level to a plain upsampling block."""
  x = jax.ShapeDtypeStruct((1, 16, 16, 1), jnp.float32)
  model = unet_3plus_2d((16, 16, 1), 1, [2, 3, 4, 5], filter_num_skip=[6, 7, 8], filter_num_aggregate=9)
  params = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
  fused = {name for name in params if "_down_from" in name}
  assert fused == {f"unet3plus_down_from{stage}_to{level}" for stage in range(3) for level in range(3)}
  last, first = params["unet3plus_fusion_conv_2"], params["unet3plus_fusion_conv_0"]
  assert last["unet3plus_fusion_conv_2_0"]["kernel"].shape == (3, 3, 3 * 8, 9)  # three maps, not four
  assert "bias" not in first["unet3plus_fusion_conv_0_0"] and "unet3plus_fusion_conv_0_0_bn" in first
  assert params["unet3plus_down_from0_to2"]["unet3plus_down_from0_to2_0"]["kernel"].shape[-2:] == (3, 6)
  x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
  resnet = unet_3plus_2d((32, 32, 3), 1, [2, 3, 4], backbone="ResNet50", weights=None, stack_num_up=1)
  params = jax.eval_shape(resnet.init, jax.random.key(0), x)["params"]
  assert "unet3plus_plain_up1_conv_after_concat" in params and "unet3plus_fusion_conv_1" not in params
  assert "ResNet50_backbone/conv1_conv/.*" in frozen_patterns(resnet, params)  # the shared backbone protocol


@pytest.mark.parametrize("kwargs, size, kuc_params", [
    (dict(filter_num_down=[4], deep_supervision=True), 32, 334),
    (dict(filter_num_down=[4] * 6, backbone="VGG16", deep_supervision=True), 64, 14_868_432),
    (dict(filter_num_down=[4] * 7, backbone="ResNet50", deep_supervision=True), 64, 23_955_146),
])
def test_parameter_counts_of_extreme_depths(kwargs, size, kuc_params):
  """Depth 1, and backbones cut shorter than the depth (extra encoder levels named one deeper, `down6`/`down7`):
  kuc's `count_params()` recorded for these configurations (0.1.13, TensorFlow 2.15)."""
  model = unet_3plus_2d((size, size, 3), 2, weights=None, **kwargs)
  outputs, variables = jax.eval_shape(model.init_with_output, jax.random.key(0),
                                      jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
  assert sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables)) == kuc_params
  assert len(kuc_references.as_list(outputs)) == len(model.output_names) == len(kwargs["filter_num_down"])
  if model.backbone is not None:
    assert f"unet3plus_down{model.depth}_conv" in variables["params"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(filter_num_down=[4, 0, 8]), r"filter_num_down=\[4, 0, 8\].*positive integers"),
    (dict(filter_num_down=[]), r"filter_num_down=\[\]"),
    (dict(filter_num_skip=[4]), r"filter_num_skip=\[4\].*2 decoder levels.*2 entries"),
    (dict(filter_num_skip="same"), r"filter_num_skip='same'.*'auto'"),
    (dict(filter_num_aggregate=0), r"filter_num_aggregate=0.*'auto' or a positive integer"),
    (dict(filter_num_aggregate="max"), r"filter_num_aggregate='max'"),
    (dict(n_labels=0), r"n_labels=0"),
    (dict(stack_num_up=0), r"stack_num_up=0"),
    (dict(activation="relu"), r"activation='relu'.*'ReLU'"),
    (dict(output_activation="sigmoid"), r"output_activation='sigmoid'.*'Sigmoid'"),
    (dict(pool="min"), r"pool='min'.*'ave'"),
    (dict(unpool="bicubic"), r"unpool='bicubic'.*'nearest'"),
    (dict(batch_norm="yes"), r"batch_norm='yes'"),
    (dict(deep_supervision=None), r"deep_supervision=None"),
    (dict(backbone="ResNet18"), r"backbone='ResNet18'.*'VGG16'"),
    (dict(backbone="InceptionV3", input_size=(96, 96, 3)), r"backbone='InceptionV3'.*exact halvings"),
    (dict(backbone="ResNet50", filter_num_down=[4, 8]), r"depth 2 .*backbone='ResNet50'.*1 time.*>= 3"),
    (dict(backbone="VGG16", filter_num_down=[4]), r"depth 1 .*backbone='VGG16'.*>= 2"),
    (dict(backbone="VGG16", input_size=(32, 32, 1)), r"ImageNet weights need 3 channels"),
    (dict(input_size=(30, 32, 3)), r"height 30 is not divisible by 2\*\*\(depth - 1\) = 4"),
    (dict(input_size=(32, 32)), r"input_size=\(32, 32\).*\(height, width, channels\)"),
    (dict(weights=3), r"weights=3"),
    (dict(freeze_batch_norm="no"), r"freeze_batch_norm='no'"),
    (dict(name=""), r"name=''"),
    (dict(classification_guided=1), r"classification_guided=1"),
    (dict(classification_dropout=1.0), r"classification_dropout=1.0.*\[0, 1\)"),
])
def test_bad_arguments_raise(kwargs, match):
  args = dict(input_size=(32, 32, 3), n_labels=2, filter_num_down=[4, 8, 16])
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    unet_3plus_2d(**args)


def test_bad_inputs_raise_when_called():
  model = unet_3plus_2d((32, 32, 3), 2, [4, 8])
  with pytest.raises(ValueError, match=r"input_size=\(32, 32, 3\)"):
    model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)))
  with pytest.raises(ValueError, match=r"shape \(1, 8, 8, 8, 1\); expected \(batch, height, width, channels\)"):
    UNet3Plus(filter_num_down=[4, 8], n_labels=2).init(jax.random.key(0), jnp.zeros((1, 8, 8, 8, 1)))
  with pytest.raises(ValueError, match=r"width 36 is not divisible by 2\*\*\(depth - 1\) = 8"):
    UNet3Plus(filter_num_down=[2, 2, 2, 2], n_labels=2).init(jax.random.key(0), jnp.zeros((1, 32, 36, 3)))
  with pytest.raises(ValueError, match=r"filter_num_skip=\[2\]"):
    UNet3Plus(filter_num_down=[2, 2, 2], n_labels=2, filter_num_skip=(2,)).init(jax.random.key(0),
                                                                               jnp.zeros((1, 8, 8, 1)))


def _cgm_pair(filter_num_down=(2, 4, 4), deep_supervision=True):
  kwargs = dict(input_size=(16, 16, 2), n_labels=2, filter_num_down=filter_num_down, deep_supervision=deep_supervision)
  return unet_3plus_2d(**kwargs), unet_3plus_2d(**kwargs, classification_guided=True)


def test_classification_guided_module_masks_the_outputs_by_its_argmax():
  """Huang et al.'s module: sigmoid(global max(Conv 1x1 -> 2 (deepest encoder map))); its argmax multiplies
  every segmentation output and the probabilities come last. The rest of the network is the plain UNET 3+'s."""
  base, cgm = _cgm_pair()
  x = random_input((4, 16, 16, 2), seed=5)
  variables = jax.jit(cgm.init)(jax.random.key(1), x)
  conv = variables["params"]["unet3plus_cgm_conv"]
  base_variables = {c: {k: v for k, v in tree.items() if k != "unet3plus_cgm_conv"} for c, tree in variables.items()}
  assert jax.tree.structure(base_variables) == jax.tree.structure(jax.eval_shape(base.init, jax.random.key(0), x))
  assert conv["kernel"].shape == (1, 1, 4, 2)
  assert cgm.output_names == [*base.output_names, "unet3plus_output_cgm"]

  @jax.jit
  def run(conv):
    with_cgm = cgm.apply({**variables, "params": {**variables["params"], "unet3plus_cgm_conv": conv}}, x)
    without, state = base.apply(base_variables, x, capture_intermediates=True)
    return with_cgm, without, state["intermediates"]["unet3plus_down2_conv"]["__call__"][0]

  with_cgm, without, deepest = run(conv)
  logits = np.einsum("bhwc,ck->bhwk", deepest, conv["kernel"][0, 0]) + conv["bias"]
  probabilities = 1 / (1 + np.exp(-logits.max(axis=(1, 2))))
  np.testing.assert_allclose(with_cgm[-1], probabilities, rtol=1e-5)
  has_object = probabilities.argmax(-1)[:, None, None, None]
  for masked, plain in zip(with_cgm[:-1], without):
    np.testing.assert_allclose(masked, plain * has_object, rtol=1e-6)
  for bias, on in (([-20.0, 20.0], True), ([20.0, -20.0], False)):  # every image said to have / lack the object
    outputs = run({**conv, "bias": jnp.asarray(bias)})[0]
    for masked, plain in zip(outputs[:-1], without):
      np.testing.assert_array_equal(masked, plain if on else np.zeros_like(plain))


def test_classification_guided_module_trains_through_its_own_output():
  """Dropout acts only in training; the segmentation losses give the classifier no gradient (the argmax), its own
  loss does, and `Model` trains both outputs by name."""
  _, cgm = _cgm_pair((2, 4), deep_supervision=False)
  x = random_input((2, 16, 16, 2), seed=6)
  variables = jax.jit(cgm.init)(jax.random.key(2), x)
  params = variables["params"]
  variables = {**variables, "params": {**params, "unet3plus_cgm_conv": {**params["unet3plus_cgm_conv"],
                                                                        "bias": jnp.asarray([-5.0, 5.0])}}}

  @jax.jit
  def gradients(params, key):
    def loss(params, which):
      y, _ = cgm.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"],
                       rngs={"dropout": key})
      return jnp.sum(y[which] ** 2)
    return jax.grad(loss)(params, 0), jax.grad(loss)(params, -1)

  segmentation, classification = gradients(variables["params"], jax.random.key(0))
  norm = lambda tree: float(sum(jnp.sum(jnp.abs(g)) for g in jax.tree.leaves(tree)))
  assert norm(segmentation["unet3plus_cgm_conv"]) == 0 and norm(segmentation["unet3plus_down0"]) > 0
  assert len(cgm.output_names) == 2
  assert norm(classification["unet3plus_cgm_conv"]) > 0 and norm(classification["unet3plus_down0"]) > 0
  assert norm(classification["unet3plus_output_final"]) == 0
  train = lambda key: cgm.apply(variables, x, train=True, mutable=["batch_stats"], rngs={"dropout": key})[0][-1]
  assert not np.allclose(train(jax.random.key(0)), train(jax.random.key(1)))
  trainer = Model(cgm, variables)
  names = cgm.output_names
  trainer.compile(optimizer=optax.sgd(0.1), loss={**{n: "mean_squared_error" for n in names[:-1]},
                                                  names[-1]: "binary_crossentropy"})
  targets = {**{n: np.zeros((2, 16, 16, 2), np.float32) for n in names[:-1]}, names[-1]: np.eye(2, dtype=np.float32)}
  logs = trainer.train_on_batch(x, targets, return_dict=True)
  assert f"{names[-1]}_loss" in logs and np.isfinite(logs["loss"])


def test_output_names_follow_the_decoder_built_for_a_numpy_false_unpool():
  """`unpool=np.False_` builds the transposed convolutions; the names said `_unpool`."""
  names = unet_3plus_2d((32, 32, 3), 2, [4, 8], unpool=np.False_, output_activation=None,
                        deep_supervision=True).output_names
  assert names == unet_3plus_2d((32, 32, 3), 2, [4, 8], unpool=False, output_activation=None,
                                deep_supervision=True).output_names
  assert names[0].endswith("_trans_conv")
