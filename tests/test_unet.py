"""U-Net / attention U-Net against keras-unet-collection's own numbers, backbones, freezing, training, errors.

The reference files in tests/reference/unet come from keras-unet-collection
0.1.13 on TensorFlow 2.15 (`tests/reference/make_unet_references.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcomponents.models import unet as unet_lib
from jaxcomponents.models import MobileNetV2, backbones
from jaxcomponents.models.unet import UNet, att_unet_2d, frozen_patterns, unet_2d
from jaxcomponents.weights import init_unet, load_keras
from tests import kuc_references

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)

REFERENCE_DIR = os.path.join(os.path.dirname(__file__), "reference", "unet")
REFERENCES = (
    "unet_d3_defaults", "unet_d4_ave_nearest_bn_stack1", "unet_d3_strided_transpose_bn", "unet_d3_strided_transpose",
    "unet_d4_max_bilinear_snake", "unet_d3_prelu_softmax", "attunet_d3_defaults",
    "attunet_d4_multiply_prelu_strided", "attunet_d3_add_gelu_ave_nearest", "attunet_d3_multiply_elu_snake_out",
    "unet_vgg16_d3", "unet_resnet50_d3", "attunet_resnet50_d4", "unet_vgg19_d3", "unet_resnet50v2_d4",
    "attunet_densenet121_d4", "unet_efficientnetb0_d4",
)


def _reference(name):
  data = np.load(os.path.join(REFERENCE_DIR, f"{name}.npz"))
  return data["x"], data["y"], json.loads(str(data["config"]))


@pytest.mark.parametrize("name", REFERENCES)
def test_matches_keras_unet_collection(name):
  """Outputs, parameter count and, where recorded, one SGD step."""
  reference = kuc_references.load(name)
  model = getattr(unet_lib, reference.config["function"])(**reference.config["kwargs"])
  kuc_references.check_reference(model, reference)  # output_names included


def test_every_keras_unet_collection_backbone_taps_its_layers():
  """The tap layers of every backbone keras-unet-collection offers, as its `_backbone_zoo` lists them; DenseNet's
  Keras 2 names (`conv1/relu`) are Keras 3's (`conv1_relu`)."""
  with open(os.path.join(REFERENCE_DIR, "kuc_backbone_taps.json")) as f:
    kuc_taps = json.load(f)
  assert len(kuc_taps) == 19
  for name, taps in kuc_taps.items():
    record = backbones.get(name)
    assert record.unet_taps_source == "keras-unet-collection", name
    assert list(record.unet_taps) == [tap.replace("/", "_") for tap in taps], name


def test_references_cover_every_variant():
  configs = [_reference(name)[2] for name in REFERENCES]
  seen = kuc_references.variants(configs)
  att = [c for c in configs if c["function"] == "att_unet_2d"]
  assert {c["kwargs"].get("attention", "add") for c in att} == {"add", "multiply"}
  assert seen("pool", True) == {"true", "false", '"max"', '"ave"'}
  assert seen("unpool", True) == {"true", "false", '"bilinear"', '"nearest"'}
  assert seen("batch_norm", False) == {"true", "false"}
  assert seen("stack_num_down", 2) == seen("stack_num_up", 2) == {"1", "2"}
  assert {len(c["kwargs"]["filter_num"]) for c in configs} == {3, 4}
  assert seen("backbone", None) == {"null", '"VGG16"', '"ResNet50"', '"VGG19"', '"ResNet50V2"', '"DenseNet121"',
                                    '"EfficientNetB0"'}
  assert seen("activation", "ReLU") >= {f'"{a}"' for a in ("ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "Snake")}
  assert seen("output_activation", "Softmax") >= {'"Softmax"', '"Sigmoid"', "null", '"PReLU"', '"Snake"'}


def test_product_parameter_names_build_the_same_model():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 16, 16, 2)), jnp.float32)
  kuc = att_unet_2d((16, 16, 2), [4, 8], 3, stack_num_down=1, stack_num_up=1, atten_activation="GELU",
                    attention="multiply", batch_norm=True, pool="ave", unpool=False, output_activation="Sigmoid")
  product = UNet(filter_num=[4, 8], n_labels=3, stack_num_down=1, stack_num_up=1, attention=True,
                 attention_type="multiplicative", attention_activation="GELU", batch_norm=True, pool="ave",
                 unpool=False, output_activation="Sigmoid")
  variables = jax.jit(kuc.init)(jax.random.key(0), x)
  assert jax.tree.structure(jax.eval_shape(product.init, jax.random.key(1), x)) == jax.tree.structure(variables)
  both = jax.jit(lambda v, x: (product.apply(v, x), kuc.apply(v, x)))(variables, x)
  np.testing.assert_array_equal(*both)
  assert unet_2d((32, 32, 1), [4, 8], 2).layer_prefix == "unet" and kuc.layer_prefix == "attunet"


@pytest.mark.parametrize("backbone, size, depth", [("VGG16", 32, 3), ("ResNet50", 32, 4), ("MobileNetV2", 32, 4),
                                                   ("MobileNetV2", 32, 6), ("InceptionV3", 75, 4),
                                                   ("ResNet50V2", 32, 3), ("VGG19", 32, 5)])
def test_encoder_is_the_backbone_cut_after_its_last_tap(backbone, size, depth):
  """The U-Net's encoder is its backbone's module with taps: the full backbone's layers (names, shapes) up to the
  deepest tap, and the tap outputs the full backbone's layers give."""
  x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  record = backbones.get(backbone)
  full = record.module(include_top=False, taps=record.unet_taps)
  full_vars = jax.eval_shape(full.init, jax.random.key(0), x)
  features = dict(zip(record.unet_taps, jax.eval_shape(full.apply, full_vars, x)))
  model = unet_2d((size, size, 3), [2] * depth, 2, backbone=backbone, weights=None)
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)
  encoder_shapes = {c: tree[f"{backbone}_backbone"] for c, tree in shapes.items() if f"{backbone}_backbone" in tree}
  for collection, tree in encoder_shapes.items():
    for layer, leaf in tree.items():
      assert jax.tree.map(lambda a: a.shape, dict(leaf)) == jax.tree.map(lambda a: a.shape,
                                                                        dict(full_vars[collection][layer]))
  taps = record.unet_tap_count(depth)
  assert taps == min(depth if backbone.startswith("VGG") else depth - 1, 5)  # keras-unet-collection's rule
  encoder = record.module(include_top=False, taps=record.unet_taps[:taps])
  outputs = jax.eval_shape(encoder.apply, {c: encoder_shapes[c] for c in encoder_shapes}, x)
  assert [o.shape for o in outputs] == [features[n].shape for n in record.unet_taps[:taps]]
  assert (len(encoder_shapes["params"]) < len(full_vars["params"])) == (taps < 5)


@pytest.mark.parametrize("backbone, size", [("MobileNetV2", 64), ("InceptionV3", 96)])
def test_new_backbones_give_full_size_maps(backbone, size):
  model = att_unet_2d((size, size, 3), [4, 8, 16, 32], 2, backbone=backbone, weights=None)
  x = jnp.zeros((1, size, size, 3))
  assert jax.eval_shape(model.init, jax.random.key(0), x) is not None
  out = jax.eval_shape(lambda: model.apply(model.init(jax.random.key(0), x), x))
  assert out.shape == (1, size, size, 2)


def test_init_unet_loads_imagenet_and_keras_files(tmp_path, monkeypatch):
  from jaxcomponents.weights import hub, save_keras_h5

  x = jnp.asarray(np.random.default_rng(2).normal(size=(1, 32, 32, 3)), jnp.float32)
  # A Keras-named file with more layers than the U-Net's encoder needs (loading pairs layers by name).
  taps = backbones.get("MobileNetV2").unet_taps
  bigger = MobileNetV2(include_top=False, taps=taps[:3])
  rng = np.random.default_rng(3)
  file_vars = jax.tree.map(lambda s: jnp.asarray(rng.uniform(0.5, 1.5, s.shape), s.dtype),
                           jax.eval_shape(bigger.init, jax.random.key(3), x))
  path = str(tmp_path / "mobilenet_v2_no_top.h5")
  save_keras_h5(path, bigger, file_vars, x)
  requested = []

  def fake_fetch(file, download=True, progress=True):
    requested.append(file.fname)
    return path

  monkeypatch.setattr(hub, "fetch", fake_fetch)
  for weights in ("imagenet", path):
    model = unet_2d((32, 32, 3), [4, 8, 16], 2, backbone="MobileNetV2", weights=weights)
    with pytest.warns(UserWarning, match="224") if weights == "imagenet" else contextlib.nullcontext():
      variables = init_unet(model, x)
    encoder_vars = {c: v["MobileNetV2_backbone"] for c, v in variables.items()}
    assert sorted(encoder_vars["params"]) == sorted(jax.eval_shape(MobileNetV2(include_top=False, taps=taps[:2]).init,
                                                                   jax.random.key(0), x)["params"])
    for c, tree in encoder_vars.items():
      for layer, leaf in tree.items():
        for k, v in leaf.items():
          np.testing.assert_array_equal(v, file_vars[c][layer][k])
  assert requested == [hub.imagenet_weights_file("mobilenet_v2", False, alpha=1.0, size=224).fname]
  # The encoder cut inside block 3 (at its expand ReLU6) computes what the longer encoder computes there.
  short = jax.jit(MobileNetV2(include_top=False, taps=taps[:2]).apply)(encoder_vars, x)
  long = jax.jit(bigger.apply)(file_vars, x)
  for a, b in zip(short, long[:2]):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match="3 channels"):
    unet_2d((32, 32, 1), [4, 8], 2, backbone="VGG16")


def test_a_backbones_weights_load_when_a_model_builds_and_a_plain_init_says_it_left_them(tmp_path):
  """kuc's models are built with their backbone's weights; ours load them in `init_unet` and when `Model(module)`
  builds, and a plain `module.init` (modules do no I/O) warns that its backbone stays random."""
  import jaxcomponents
  from jaxcomponents.models.unet_backbone import BackboneWeightsNotLoaded
  from jaxcomponents.weights import save_keras_h5

  x = np.random.default_rng(5).normal(size=(1, 32, 32, 3)).astype(np.float32)
  encoder = MobileNetV2(include_top=False, taps=backbones.get("MobileNetV2").unet_taps[:1])
  rng = np.random.default_rng(6)
  file_vars = jax.tree.map(lambda s: jnp.asarray(rng.uniform(0.5, 1.5, s.shape), s.dtype),
                           jax.eval_shape(encoder.init, jax.random.key(0), x))
  path = str(tmp_path / "encoder.h5")
  save_keras_h5(path, encoder, file_vars, x)
  model = unet_2d((32, 32, 3), [4, 8], 2, backbone="MobileNetV2", weights=path)
  with pytest.warns(BackboneWeightsNotLoaded, match=r"UNet.init leaves its MobileNetV2 backbone random: weights="):
    jax.eval_shape(model.init, jax.random.key(0), x)
  with warnings.catch_warnings():
    warnings.simplefilter("error", BackboneWeightsNotLoaded)
    jax.eval_shape(model.clone(weights=None).init, jax.random.key(0), x)
    loaded = {"init_unet": init_unet(model, x)}
    built = jaxcomponents.Model(model)
    built.build(x)
    loaded["Model.build"] = built.variables
    built.summary(print_fn=None)  # inits for shapes: no warning
    whole = str(tmp_path / "unet.h5")
    save_keras_h5(whole, model, built.variables, x)
    loaded["load_keras"] = load_keras(model, whole, x)
  for how, variables in loaded.items():
    for c, tree in file_vars.items():
      for layer, leaf in tree.items():
        for k, v in leaf.items():
          np.testing.assert_array_equal(variables[c]["MobileNetV2_backbone"][layer][k], v, err_msg=how)


def _grads(model, variables, x):
  def loss(params):
    y, updates = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
    return jnp.sum(y[..., 0] ** 2), updates

  grads, updates = jax.grad(loss, has_aux=True)(variables["params"])
  norm = lambda tree: sum(jnp.sum(jnp.abs(g)) for g in jax.tree.leaves(tree))
  backbone = grads["ResNet50_backbone"]
  stats_moved = norm(jax.tree.map(jnp.subtract, updates["batch_stats"]["ResNet50_backbone"],
                                  variables["batch_stats"]["ResNet50_backbone"]))
  return norm(backbone["conv1_conv"]), norm(backbone["conv1_bn"]), norm(grads["unet_output"]), stats_moved


@pytest.mark.parametrize("freeze_backbone, freeze_batch_norm", [(True, True), (True, False), (False, True)])
def test_batch_norm_freezes_under_a_frozen_backbone_as_kuc_freezes_it(freeze_backbone, freeze_batch_norm):
  """kuc's `freeze_model`: a frozen backbone keeps its batch norm trainable unless `freeze_batch_norm`; a backbone
  that is not frozen trains whole."""
  x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 32, 32, 3)), jnp.float32)
  model = unet_2d((32, 32, 3), [4, 8], 2, backbone="ResNet50", weights=None, batch_norm=True,
                  freeze_backbone=freeze_backbone, freeze_batch_norm=freeze_batch_norm)
  variables = jax.jit(model.init)(jax.random.key(0), x)
  conv, bn, head, stats_moved = jax.jit(lambda v, x: _grads(model, v, x))(variables, x)
  assert head > 0
  bn_frozen = freeze_backbone and freeze_batch_norm
  assert (conv == 0) == freeze_backbone
  assert (bn == 0) == bn_frozen
  assert (stats_moved == 0) == bn_frozen  # frozen batch norm runs in inference mode
  expected = {p for p, frozen in (("conv1_conv", freeze_backbone), ("conv1_bn", bn_frozen)) if frozen}
  assert {p.split("/")[1] for p in frozen_patterns(model, variables["params"])} == expected


def _shapes(n, size, rng):
  """Images with one bright rectangle each on noise; masks are the rectangles."""
  x = rng.normal(0.0, 0.3, (n, size, size, 1)).astype(np.float32)
  y = np.zeros((n, size, size, 1), np.float32)
  for i in range(n):
    h, w = rng.integers(5, 12, 2)
    top, left = rng.integers(0, size - h), rng.integers(0, size - w)
    y[i, top:top + h, left:left + w] = 1.0
  return x + y, y


def test_segmentation_training_raises_iou_above_chance():
  from jaxcomponents.losses_segmentation import binary_crossentropy, combined, dice
  from jaxcomponents.metrics_segmentation import BinaryIoU
  from jaxcomponents.training import TrainState, make_eval_step, make_train_step

  rng = np.random.default_rng(0)
  x_train, y_train = _shapes(64, 24, rng)
  x_test, y_test = _shapes(16, 24, rng)
  model = att_unet_2d((24, 24, 1), [8, 16], 1, stack_num_down=1, stack_num_up=1, output_activation="Sigmoid",
                      batch_norm=True)
  state = TrainState.create(model, optax.adam(1e-2), x_train[:1])
  iou = {"iou": BinaryIoU(target_class_ids=(1,))}
  step = make_train_step(combined((binary_crossentropy, 1.0), (dice, 1.0)), iou)
  evaluate = make_eval_step("binary_crossentropy", iou)

  def test_iou(state):
    _, results = evaluate(evaluate.reset(state), {"x": x_test, "y": y_test})
    return float(results["iou"])

  chance = float(np.mean(y_test))  # IoU of predicting foreground everywhere
  before = test_iou(state)
  for i in range(150):
    batch = slice(16 * (i % 4), 16 * (i % 4) + 16)
    state, _ = step(state, {"x": x_train[batch], "y": y_train[batch]})
  after = test_iou(state)
  assert after > 0.6 and after > chance + 0.3 and after > before + 0.2, (chance, before, after)


@pytest.mark.parametrize("kwargs, match", [
    (dict(activation="relu"), r"activation='relu'.*'ReLU'"),
    (dict(output_activation="softmax"), r"output_activation='softmax'.*'Sigmoid'"),
    (dict(pool="min"), r"pool='min'.*'ave'"),
    (dict(unpool="bicubic"), r"unpool='bicubic'.*'nearest'"),
    (dict(pool=1), r"pool=1 is not allowed; expected one of True, False, 'max', 'ave'"),  # kuc tests `is True`
    (dict(input_size=(None, None, 3), activation="PReLU"), r"input_size=\(None, None, 3\) is not allowed with "
                                                            r"activation='PReLU'"),
    (dict(unpool=0), r"unpool=0 is not allowed; expected one of True, False, 'bilinear', 'nearest'"),
    (dict(backbone="ResNet18"), r"backbone='ResNet18'.*'VGG19'.*'MobileNetV2'"),
    (dict(input_size=(30, 32, 3)), r"height 30 is not divisible by 2\*\*\(depth - 1\) = 4"),
    (dict(input_size=(16, 16, 3), backbone="VGG16", weights=None), r"smaller than its minimum 32"),
    (dict(input_size=(32, 32, 1), backbone="ResNet50"), r"ImageNet weights need 3 channels"),
    (dict(filter_num=[4, 0, 8]), r"filter_num=\[4, 0, 8\].*positive integers"),
    (dict(filter_num=[]), r"filter_num=\[\]"),
    (dict(n_labels=0), r"n_labels=0"),
    (dict(stack_num_down=0), r"stack_num_down=0"),
    (dict(batch_norm="yes"), r"batch_norm='yes'"),
    (dict(freeze_batch_norm=None), r"freeze_batch_norm=None"),
    (dict(weights=3), r"weights=3"),
])
def test_bad_arguments_raise(kwargs, match):
  args = dict(input_size=(32, 32, 3), filter_num=[4, 8, 16], n_labels=2)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    unet_2d(**args)


def test_bad_attention_arguments_and_inputs_raise():
  with pytest.raises(ValueError, match=r"attention='concat'.*'multiplicative'"):
    att_unet_2d((32, 32, 3), [4, 8], 2, attention="concat")
  with pytest.raises(ValueError, match=r"atten_activation='Tanh'"):
    att_unet_2d((32, 32, 3), [4, 8], 2, atten_activation="Tanh")
  with pytest.raises(ValueError, match=r"at least 2 filters"):
    att_unet_2d((32, 32, 3), [1, 8], 2)
  model = unet_2d((32, 32, 3), [4, 8], 2)
  with pytest.raises(ValueError, match=r"input_size=\(32, 32, 3\)"):
    model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)))
  with pytest.raises(ValueError, match=r"rank 3"):
    UNet(filter_num=[4, 8], n_labels=2).init(jax.random.key(0), jnp.zeros((32, 32, 3)))
  with pytest.raises(ValueError, match=r"width 36 is not divisible by 2\*\*\(depth - 1\) = 8"):
    UNet(filter_num=[4, 8, 16, 32], n_labels=2).init(jax.random.key(0), jnp.zeros((1, 32, 36, 3)))


@pytest.mark.parametrize("name", ["unet_d4_max_bilinear_snake", "attunet_d3_multiply_elu_snake_out"])
def test_keras3_files_without_snake_weights_load_with_the_configured_beta(name, tmp_path):
  """Keras 3 writes no `beta_factor` for keras-unet-collection's non-trainable Snake; its `beta` stands in."""
  import h5py

  x, _, config = _reference(name)
  model = getattr(unet_lib, config["function"])(**config["kwargs"])
  source = os.path.join(REFERENCE_DIR, f"{name}.h5")
  stripped = tmp_path / "keras3.h5"
  with h5py.File(source, "r") as full, h5py.File(stripped, "w") as out:
    for key, value in full.attrs.items():
      out.attrs[key] = value
    snakes = 0
    for layer in full.attrs["layer_names"]:
      group = out.create_group(layer)
      names = [n for n in full[layer].attrs["weight_names"] if "beta_factor" not in str(n)]
      snakes += len(full[layer].attrs["weight_names"]) - len(names)
      group.attrs["weight_names"] = np.array([n.encode() if isinstance(n, str) else n for n in names], dtype="S")
      for weight in names:
        group.create_dataset(weight, data=full[layer][weight][()])
  assert snakes > 0
  with_beta = load_keras(model, source, x, match="name")
  without = load_keras(model, stripped, x, match="name")
  flat_with, flat_without = (jax.tree_util.tree_flatten_with_path(v)[0] for v in (with_beta, without))
  replaced = 0
  for (path, a), (path_b, b) in zip(flat_with, flat_without):
    assert path == path_b
    if "beta_factor" in jax.tree_util.keystr(path):
      np.testing.assert_array_equal(b, 0.5)  # keras-unet-collection's default beta
      replaced += 1
    else:
      np.testing.assert_array_equal(a, b)
  assert replaced == snakes


@pytest.mark.parametrize("backbone", backbones.NAMES)
def test_every_backbone_is_a_unet_encoder(backbone):
  """Every backbone builds a U-Net (its taps' shapes against the full model: tests/test_backbones.py)."""
  size = max(backbones.get(backbone).min_size, 64)
  model = unet_2d((size, size, 3), [2] * 4, 2, backbone=backbone, weights=None)
  x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  output, shapes = jax.eval_shape(model.init_with_output, jax.random.key(0), x)
  assert f"{backbone}_backbone" in shapes["params"] and output.shape == (1, size, size, 2)
