"""Backbones against keras.applications: outputs, trees, parameter counts, files, freezing, errors."""

import dataclasses
import functools
import urllib.error

import jax
import jax.numpy as jnp
import keras
import numpy as np
import optax
import pytest

from jaxcomponents import preprocessing
from jaxcomponents.models import (INCEPTION_V3_FEATURES, MOBILENET_V2_FEATURES, RESNET50_FEATURES, VGG16_FEATURES,
                                  InceptionV3, MobileNet, MobileNetV2, ResNet50, VGG16, backbones)
from jaxcomponents.training import TrainState, make_train_step
from jaxcomponents.weights import hub, imagenet, load_keras, save_keras_h5
from jaxcomponents.weights.imagenet import load_imagenet
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
  assert_close(jax.jit(module.apply)(variables, x), model.predict(x, verbose=0))
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
  assert_close(jax.jit(module.apply)(load_keras(module, path, x), x), model.predict(x, verbose=0))


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


@pytest.mark.parametrize("cls,names,size,alpha", [(VGG16, VGG16_FEATURES, 33, None),
                                                  (ResNet50, RESNET50_FEATURES, 64, None),
                                                  (InceptionV3, INCEPTION_V3_FEATURES, 75, None),
                                                  (MobileNetV2, MOBILENET_V2_FEATURES, 32, 1.0)])
def test_features_are_keras_layer_outputs(cls, names, size, alpha):
  # InceptionV3's automatic names count from a fresh session's first layer: its twin is built here, in a fresh
  # session, not taken from the cache (a model built after other layers is numbered from theirs).
  keras.utils.clear_session()
  model = keras_twin.__wrapped__(cls, False, None, size, alpha=alpha)
  module = flax_twin(cls, False, None, alpha=alpha)
  x = random_input((1, size, size, 3))
  variables = load_keras(module, model, x)
  _, features = module.apply(variables, x, return_features=True)
  assert tuple(features) == names
  probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
  for name, expected in zip(names, probe.predict(x, verbose=0)):
    assert_close(features[name], expected)


def test_frozen_backbone_under_jit_training():
  import flax.linen as nn

  class Classifier(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=False):
      x = ResNet50(include_top=False, pooling="avg", trainable=False, name="backbone")(x, train=train)
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

  rng = np.random.default_rng(0)
  for shape, data_format in (((2, 5, 5, 3), None), ((5, 4, 3), "channels_last"), ((2, 3, 5, 4), "channels_first"),
                             ((3, 5, 4), "channels_first"), ((2, 5, 5, 4), None)):
    x = rng.uniform(0, 255, shape).astype(np.float32)
    expected = imagenet_utils.preprocess_input(x.copy(), data_format, mode)
    assert_close(preprocessing.preprocess_input(x, data_format, mode), expected, tol=1e-6)
  if mode != "tf":
    with pytest.raises(ValueError, match=rf"x has 1 channel\(s\) on axis 3; preprocess_input\(mode='{mode}'\)"):
      preprocessing.preprocess_input(np.zeros((1, 2, 2, 1)), mode=mode)


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
  with pytest.warns(UserWarning, match=r"loading the weights for 224 x 224, as Keras does"):  # no top: as Keras
    with pytest.raises(FileNotFoundError, match=r"kernels_1.0_224_no_top.h5"):
      load_imagenet(MobileNetV2(include_top=False), (150, 150, 3))
  with pytest.raises(FileNotFoundError, match=r"kernels_1.0_160.h5"):
    load_imagenet(MobileNetV2(), (160, 160, 3))
  with pytest.raises(FileNotFoundError, match=r"resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
    load_imagenet(ResNet50(include_top=False), (None, None, 3))  # any size, as Keras's no-top model
  with pytest.raises(ValueError, match=r"input_shape=\(16, 16, 3\) is not allowed: ResNet50 takes images of at "
                                       r"least 32 x 32"):
    load_imagenet(ResNet50(include_top=False), (16, 16, 3))  # refused before any file is fetched
  for module, shape in ((MobileNetV2(), (150, 150, 3)), (MobileNet(), (160, 192, 3))):  # the top: Keras refuses
    with pytest.raises(ValueError, match=r"is not allowed with ImageNet weights and include_top=True; MobileNet"
                                         r"(V2)? needs a square size of \((96, )?128, 160, 192, 224\)"):
      load_imagenet(module, shape)
  for activation in ("relu", "sigmoid"):
    with pytest.raises(ValueError, match=rf"classifier_activation='{activation}' is not allowed with ImageNet "
                                         r"weights and include_top=True; expected None or 'softmax'"):
      load_imagenet(ResNet50(classifier_activation=activation))


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
  imagenet._class_index.cache_clear()
  scores = np.zeros((2, 1000), np.float32)
  scores[0, [7, 3]] = [0.9, 0.1]
  scores[1, 999] = 1.0
  decoded = preprocessing.decode_predictions(scores, top=2)
  assert decoded[0] == [("n00000007", "class_7", pytest.approx(0.9)), ("n00000003", "class_3", pytest.approx(0.1))]
  assert decoded[1][0][:2] == ("n00000999", "class_999")
  with pytest.raises(ValueError, match=r"preds has shape \(2, 10\); decode_predictions expects \(batch, 1000\)"):
    preprocessing.decode_predictions(np.zeros((2, 10)))
  for top in (0, -1):
    with pytest.raises(ValueError, match=rf"top={top} is not allowed; expected a positive integer"):
      preprocessing.decode_predictions(scores, top=top)


def test_efficientnet_input_normalization_starts_as_keras_builds_it():
  from jaxcomponents.models import EfficientNetB0  # pylint: disable=import-outside-toplevel
  for channels in (1, 3):  # Keras's Normalization, never adapted: mean 0 and variance 1 per input channel
    stem = EfficientNetB0(include_top=False, imagenet_rescaling=False, taps=("stem_activation",))
    variables = jax.jit(stem.init)(jax.random.key(0), jnp.zeros((1, 32, 32, channels)))
    stats = variables["batch_stats"]["normalization"]
    assert stats["mean"].tolist() == [0.0] * channels and stats["variance"].tolist() == [1.0] * channels


def test_mobilenet_alphas_that_leave_no_filter_or_are_not_numbers_are_refused():
  x = jnp.zeros((1, 32, 32, 3))
  for module, match in ((MobileNet(alpha=0.01), r"alpha=0.01 is not allowed; expected a number of at least 1/32"),
                        (MobileNetV2(alpha=True), r"alpha=True is not allowed; expected a positive number")):
    with pytest.raises(ValueError, match=match):
      jax.eval_shape(module.init, jax.random.key(0), x)
