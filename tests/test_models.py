"""Backbones against keras.applications: outputs, trees, parameter counts, files, freezing, errors."""

import dataclasses
import functools
import json
import os
import urllib.error

import jax
import jax.numpy as jnp
import keras
import numpy as np
import optax
import pytest

from jaxcomponents import preprocessing
from jaxcomponents.models import (INCEPTION_V3_FEATURES, MOBILENET_V2_FEATURES, RESNET50_FEATURES, VGG16_FEATURES,
                                  InceptionV3, MobileNetV2, ResNet50, VGG16, backbones)
from jaxcomponents.training import TrainState, make_train_step
from jaxcomponents.weights import hub, load_keras, save_keras_h5
from jaxcomponents.weights.convert import convert_layers
from jaxcomponents.weights.imagenet import load_imagenet
from jaxcomponents.weights.keras_layers import KerasLayer
from tests.helpers import assert_close, random_input, randomize_keras, write_keras2_h5, write_legacy_h5

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)

KERAS = {VGG16: keras.applications.VGG16, ResNet50: keras.applications.ResNet50,
         InceptionV3: keras.applications.InceptionV3, MobileNetV2: keras.applications.MobileNetV2}


@functools.lru_cache(maxsize=None)
def keras_twin(cls, include_top, pooling, size, classes=7, alpha=None):
  options = {} if alpha is None else {"alpha": alpha}
  model = KERAS[cls](weights=None, include_top=include_top, pooling=pooling, input_shape=(size, size, 3),
                     classes=classes, classifier_activation=None, **options)
  randomize_keras(model, seed=size, scale=0.1)
  return model


def flax_twin(cls, include_top, pooling, classes=7, alpha=None, **kwargs):
  options = {} if alpha is None else {"alpha": alpha}
  return cls(include_top=include_top, pooling=pooling, classes=classes, classifier_activation=None, **options,
             **kwargs)


CASES = [
    (VGG16, False, None, 33, None), (VGG16, True, None, 32, None), (VGG16, False, "max", 48, None),
    (ResNet50, False, "avg", 37, None), (ResNet50, True, None, 32, None), (ResNet50, False, None, 64, None),
    (InceptionV3, False, None, 75, None), (InceptionV3, True, None, 80, None), (InceptionV3, False, "max", 99, None),
    (MobileNetV2, False, None, 32, 1.0), (MobileNetV2, True, None, 33, 0.35), (MobileNetV2, False, "avg", 48, 1.4),
    (MobileNetV2, False, "max", 35, 0.5),
]


@pytest.mark.parametrize("cls,include_top,pooling,size,alpha", CASES)
def test_matches_keras(cls, include_top, pooling, size, alpha):
  model = keras_twin(cls, include_top, pooling, size, alpha=alpha)
  module = flax_twin(cls, include_top, pooling, alpha=alpha)
  x = random_input((2, size, size, 3), seed=size)
  variables = load_keras(module, model, x)
  assert_close(module.apply(variables, x), model(x))
  shapes = jax.eval_shape(module.init, jax.random.key(0), x)
  assert jax.tree.map(lambda a: (a.shape, a.dtype), variables) == jax.tree.map(lambda a: (a.shape, a.dtype), shapes)
  assert sum(a.size for a in jax.tree.leaves(variables)) == model.count_params()


@pytest.mark.parametrize("cls,layout", [(VGG16, "keras2_flat"), (ResNet50, "keras2"), (InceptionV3, "keras2"),
                                        (MobileNetV2, "keras2"), (ResNet50, "keras3"), (InceptionV3, "keras3"),
                                        (MobileNetV2, "keras3")])
def test_weight_file_layouts(tmp_path, cls, layout):
  size = {VGG16: 32, ResNet50: 32, InceptionV3: 75, MobileNetV2: 32}[cls]
  model = keras_twin(cls, False, "avg", size)
  path = tmp_path / "weights.h5"
  if layout == "keras3":
    write_legacy_h5(path, model)
  else:
    write_keras2_h5(path, model, flat_names=layout == "keras2_flat")
  module = flax_twin(cls, False, "avg")
  x = random_input((2, size, size, 3))
  assert_close(module.apply(load_keras(module, path, x), x), model(x))


@pytest.mark.parametrize("cls,size", [(VGG16, 32), (ResNet50, 32), (InceptionV3, 75), (MobileNetV2, 32)])
def test_round_trip_back_to_keras(tmp_path, cls, size):
  model = keras_twin(cls, True, None, size)
  module = flax_twin(cls, True, None)
  x = random_input((2, size, size, 3))
  variables = load_keras(module, model, x)
  save_keras_h5(tmp_path / "exported.h5", module, variables, x)
  again = KERAS[cls](weights=str(tmp_path / "exported.h5"), input_shape=(size, size, 3), classes=7,
                     classifier_activation=None)
  np.testing.assert_array_equal(np.asarray(again(x)), np.asarray(model(x)))


@pytest.mark.parametrize("cls,names,size", [(VGG16, VGG16_FEATURES, 32), (ResNet50, RESNET50_FEATURES, 64),
                                            (InceptionV3, INCEPTION_V3_FEATURES, 75),
                                            (MobileNetV2, MOBILENET_V2_FEATURES, 64)])
def test_features_are_keras_layer_outputs(cls, names, size):
  model = keras_twin(cls, False, None, size)
  module = flax_twin(cls, False, None)
  x = random_input((1, size, size, 3))
  variables = load_keras(module, model, x)
  _, features = module.apply(variables, x, return_features=True)
  assert tuple(features) == names
  layer_names = [l.name for l in model.layers]
  taps = [n for n in names if n in layer_names]  # InceptionV3's activations are numbered per session
  probe = keras.Model(model.input, [model.get_layer(n).output for n in taps])
  for name, expected in zip(taps, probe(x)):
    assert_close(features[name], expected)
  assert len(taps) >= 5


def test_frozen_backbone_under_jit_training():
  import flax.linen as nn

  class Classifier(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
      x = ResNet50(include_top=False, pooling="avg", trainable=False, name="backbone")(x, train)
      return nn.Dense(3, name="head")(x)

  x = random_input((4, 32, 32, 3))
  state = TrainState.create(Classifier(), optax.adam(1e-2), x)
  before = jax.tree.map(np.array, (state.params, state.batch_stats))
  step = make_train_step(lambda y, p: optax.softmax_cross_entropy_with_integer_labels(p, y))
  batch = {"x": x, "y": np.array([0, 1, 2, 0])}
  for _ in range(3):
    state, _ = step(state, batch)
  same = jax.tree.map(np.array_equal, before[0]["backbone"], jax.device_get(state.params["backbone"]))
  assert all(jax.tree.leaves(same))
  assert all(jax.tree.leaves(jax.tree.map(np.array_equal, before[1], jax.device_get(state.batch_stats))))
  assert not np.array_equal(before[0]["head"]["kernel"], state.params["head"]["kernel"])


@pytest.mark.parametrize("mode", preprocessing.MODES)
def test_preprocess_input_matches_keras(mode):
  from keras.src.applications import imagenet_utils

  x = np.random.default_rng(0).uniform(0, 255, (2, 5, 5, 3)).astype(np.float32)
  expected = imagenet_utils.preprocess_input(x.copy(), mode=mode)
  assert_close(preprocessing.preprocess_input(x, mode), expected, tol=1e-6)


def test_input_checks():
  with pytest.raises(ValueError, match=r"input size 31x40 is not allowed for VGG16; .* at least 32"):
    VGG16().init(jax.random.key(0), jnp.zeros((1, 31, 40, 3)))
  with pytest.raises(ValueError, match=r"input size 74x74 is not allowed for InceptionV3; .* at least 75"):
    jax.eval_shape(InceptionV3().init, jax.random.key(0), jnp.zeros((1, 74, 74, 3)))
  with pytest.raises(ValueError, match=r"expects rank 4"):
    ResNet50().init(jax.random.key(0), jnp.zeros((32, 32, 3)))
  with pytest.raises(ValueError, match=r"pooling='mean' is not allowed; expected one of None, 'avg', 'max'"):
    jax.eval_shape(ResNet50(include_top=False, pooling="mean").init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


def test_imagenet_loading_checks_and_errors(tmp_path, monkeypatch):
  monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
  monkeypatch.setenv("JAXCOMPONENTS_HOME", str(tmp_path / "own"))
  with pytest.raises(ValueError, match=r"classes=10 is not allowed with ImageNet weights and include_top=True"):
    load_imagenet(VGG16(classes=10))
  with pytest.raises(ValueError, match=r"need 3 channels"):
    load_imagenet(VGG16(include_top=False), (64, 64, 1))
  with pytest.raises(ValueError, match=r"ResNet50 needs \(224, 224, 3\)"):
    load_imagenet(ResNet50(), (64, 64, 3))

  def offline(*args, **kwargs):
    raise urllib.error.URLError("no network")

  monkeypatch.setattr(hub.urllib.request, "urlopen", offline)
  with pytest.raises(FileNotFoundError, match=r"Could not download resnet50_weights_tf_dim_ordering_tf_kernels_notop"
                                              r".h5 .*put it in one of: .*keras/models, .*own/models"):
    load_imagenet(ResNet50(include_top=False), (32, 32, 3))
  assert not list((tmp_path / "own" / "models").glob("*"))  # nothing half-written is left
  with pytest.raises(FileNotFoundError, match=r"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_160_no_top.h5"):
    load_imagenet(MobileNetV2(alpha=0.5, include_top=False), (160, 160, 3))
  with pytest.warns(UserWarning, match=r"loading the weights for 224 x 224, as Keras does"):
    with pytest.raises(FileNotFoundError, match=r"kernels_1.0_224.h5"):
      load_imagenet(MobileNetV2(), (150, 150, 3))


def _serve_file(monkeypatch, backbone, file):
  """Makes the registry name `file` as the backbone's ImageNet file."""
  record = backbones.get(backbone)
  monkeypatch.setitem(backbones.RECORDS, record.name, dataclasses.replace(record, weights_file=lambda *_: file))


def test_cached_files_are_verified_and_converted(tmp_path, monkeypatch):
  monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
  model = keras_twin(ResNet50, False, "avg", 32)
  file = hub.imagenet_weights_file("resnet50", False)
  cached = tmp_path / "keras" / "models" / file.fname
  cached.parent.mkdir(parents=True)
  write_keras2_h5(cached, model)
  with pytest.raises(ValueError, match=r"is not Keras's resnet50_weights.*its md5 is"):
    load_imagenet(ResNet50(include_top=False, pooling="avg"), (32, 32, 3))
  _serve_file(monkeypatch, "ResNet50", hub.WeightsFile(file.fname, file.origin, hub.md5_of(cached)))
  module = ResNet50(include_top=False, pooling="avg")
  variables = load_imagenet(module, (32, 32, 3))
  x = random_input((2, 32, 32, 3))
  assert_close(module.apply(variables, x), model(x))
  # the wrong model's file and a truncated file are rejected with the reason
  _serve_file(monkeypatch, "VGG16", hub.WeightsFile(file.fname, file.origin, None))
  with pytest.raises(ValueError, match=r"(?s)Layer count mismatch|do not fit"):
    load_imagenet(VGG16(include_top=False), (32, 32, 3))
  cached.write_bytes(cached.read_bytes()[:1000])
  _serve_file(monkeypatch, "ResNet50", hub.WeightsFile(file.fname, file.origin, None))
  with pytest.raises(ValueError, match=r"not a readable HDF5 file"):
    load_imagenet(ResNet50(include_top=False), (32, 32, 3))


def test_decode_predictions_uses_the_cached_class_index(tmp_path, monkeypatch):
  import json

  monkeypatch.setenv("KERAS_HOME", str(tmp_path))
  (tmp_path / "models").mkdir()
  index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
  path = tmp_path / "models" / "imagenet_class_index.json"
  path.write_text(json.dumps(index))
  monkeypatch.setattr(hub, "IMAGENET_CLASS_INDEX", hub.WeightsFile(path.name, "unused", hub.md5_of(path)))
  preprocessing._class_index.cache_clear()
  scores = np.zeros((2, 1000), np.float32)
  scores[0, [7, 3]] = [0.9, 0.1]
  scores[1, 999] = 1.0
  decoded = preprocessing.decode_predictions(scores, top=2)
  assert decoded[0] == [("n00000007", "class_7", pytest.approx(0.9)), ("n00000003", "class_3", pytest.approx(0.1))]
  assert decoded[1][0][:2] == ("n00000999", "class_999")
  with pytest.raises(ValueError, match=r"preds has shape \(2, 10\); decode_predictions expects \(batch, 1000\)"):
    preprocessing.decode_predictions(np.zeros((2, 10)))


# The backbones beyond the original four: each family's smallest member against Keras, numbers and U-Net taps;
# every registered backbone's layers, shapes and parameter count against its keras.applications model.
FAMILIES = [("VGG19", 32, {}), ("ResNet50V2", 33, {}), ("MobileNet", 32, {"alpha": 0.5}), ("DenseNet121", 32, {}),
            ("EfficientNetB0", 33, {})]


@functools.lru_cache(maxsize=None)
def _keras_application(name, size, options=()):
  """A randomised keras.applications model with its top (7 classes, logits); built once per test process."""
  model = getattr(keras.applications, name)(weights=None, include_top=True, input_shape=(size, size, 3),
                                            classes=7, classifier_activation=None, **dict(options))
  randomize_keras(model, seed=size, scale=0.1)
  return model


@pytest.mark.parametrize("name,size,options", FAMILIES)
def test_new_backbones_match_keras_with_their_taps(name, size, options):
  record = backbones.get(name)
  model = _keras_application(name, size, tuple(options.items()))
  module = record.module(classes=7, classifier_activation=None, **record.weights_arguments(None), **options)
  x = random_input((2, size, size, 3), seed=size) * (255.0 if record.preprocessing is None else 1.0)
  variables = load_keras(module, model, x)
  assert sum(a.size for a in jax.tree.leaves(variables)) == model.count_params()
  output, features = jax.jit(functools.partial(module.apply, return_features=True))(variables, x)
  assert_close(output, model(x), tol=1e-5)
  assert sorted(features) == sorted(record.unet_taps) and record.unet_taps == module.features  # jit sorts keys
  probe = keras.Model(model.input, [model.get_layer(n).output for n in record.unet_taps])
  for name_, expected in zip(record.unet_taps, probe(x)):
    assert_close(features[name_], expected, tol=1e-5)


@functools.lru_cache(maxsize=1)
def _application_layers():
  with open(os.path.join(os.path.dirname(__file__), "reference", "applications.json")) as f:
    return json.load(f)


@pytest.mark.parametrize("name", backbones.NAMES)
def test_every_backbone_is_its_keras_application_layer_for_layer(name):
  """Every Keras layer with weights has its Flax layer (by name, or Keras's numbering), every weight its shape.

  The Keras architectures are recorded by tests/reference/make_application_layers.py (building the larger models
  takes Keras tens of seconds each); each family's smallest member is compared live above.
  """
  reference = _application_layers()[name]
  record = backbones.get(name)
  keras_layers = [KerasLayer(layer, {w: np.zeros(shape, np.float32) for w, shape in weights}, f"{name}/{layer}")
                  for layer, _, weights in reference["layers"]]
  module = record.module(include_top=False, **record.weights_arguments(None))
  x = jax.ShapeDtypeStruct((1, reference["input_size"], reference["input_size"], 3), jnp.float32)
  shapes = jax.eval_shape(module.init, jax.random.key(0), x)
  variables = convert_layers(shapes, keras_layers)  # raises listing any missing, unexpected or mis-shaped weight
  assert jax.tree.map(lambda a: a.shape, variables) == jax.tree.map(lambda a: a.shape, shapes)
  assert sum(a.size for a in jax.tree.leaves(shapes)) == reference["count_params"]


@pytest.mark.parametrize("name", backbones.NAMES)
def test_weight_files_are_the_ones_keras_publishes(name):
  import importlib
  import inspect

  record = backbones.get(name)
  source = inspect.getsource(importlib.import_module(getattr(keras.applications, name).__module__))
  if name.endswith("V2") and name.startswith("ResNet"):
    source += inspect.getsource(importlib.import_module("keras.src.applications.resnet"))  # its hash table
  for include_top in (True, False):
    file = hub.imagenet_weights_file(name, include_top)
    assert file.origin.endswith("/" + file.fname)
    if file.file_hash is not None:
      assert file.file_hash in source
    else:
      assert "file_hash" not in source  # Keras publishes no hash for this family (MobileNets)
  assert record.preprocessing in (None, *preprocessing.MODES)
  if record.preprocessing is not None:
    assert f'mode="{record.preprocessing}"' in source


def test_keras2_and_keras3_files_of_the_new_backbones(tmp_path):
  for name, keras2_names in (("DenseNet121", {"conv1_conv": "conv1/conv", "conv1_bn": "conv1/bn"}),
                             ("EfficientNetB0", None)):
    record = backbones.get(name)
    size = dict((n, s) for n, s, _ in FAMILIES)[name]
    model = _keras_application(name, size)
    module = record.module(classes=7, classifier_activation=None, **record.weights_arguments(None))
    x = np.zeros((1, size, size, 3), np.float32)
    live = load_keras(module, model, x)
    write_keras2_h5(tmp_path / "keras2.h5", model, keras2_names=keras2_names)
    write_legacy_h5(tmp_path / "keras3.h5", model)
    for path in ("keras2.h5", "keras3.h5"):
      loaded = load_keras(module, str(tmp_path / path), x)
      jax.tree.map(np.testing.assert_array_equal, loaded, live)


def test_readme_lists_every_backbone_as_its_record_says():
  with open(os.path.join(os.path.dirname(__file__), os.pardir, "README.md")) as f:
    rows = {line.split("|")[1].strip(" `"): [c.strip() for c in line.split("|")[2:6]]
            for line in f if line.startswith("| `")}
  for name in backbones.NAMES:
    record = backbones.get(name)
    preprocessing_ = f'`"{record.preprocessing}"`' if record.preprocessing else "built in"
    assert rows[name] == [str(record.default_size), str(record.min_size), preprocessing_, f"{record.top1:.1%}"], name


def test_hashes_are_checked_as_keras_checks_them(tmp_path, monkeypatch):
  """Keras's rule: a 64-character `file_hash` is sha256, a shorter one md5."""
  import hashlib

  monkeypatch.setenv("KERAS_HOME", str(tmp_path))
  (tmp_path / "models").mkdir()
  path = tmp_path / "models" / "weights.h5"
  path.write_bytes(b"weights")
  for algorithm in ("md5", "sha256"):
    good = hashlib.new(algorithm, b"weights").hexdigest()
    assert hub.fetch(hub.WeightsFile("weights.h5", "unused", good), download=False) == str(path)
    bad = "0" * len(good)
    with pytest.raises(ValueError, match=rf"is not Keras's weights.h5: its {algorithm} is {good}, expected {bad}"):
      hub.fetch(hub.WeightsFile("weights.h5", "unused", bad), download=False)
