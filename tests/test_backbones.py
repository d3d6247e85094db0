"""Every registered backbone against keras.applications: each family's numbers and U-Net taps, every model's
layers and weight shapes, its weight files and hashes, and the README's table."""

import functools
import json
import os

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from jaxcomponents import preprocessing
from jaxcomponents.models import backbones
from jaxcomponents.weights import hub, load_keras
from jaxcomponents.weights.convert import convert_layers
from jaxcomponents.weights.keras_layers import KerasLayer
from tests.helpers import assert_close, random_input, randomize_keras, write_keras2_h5, write_legacy_h5

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)


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


# Keras's outputs come from `predict` (compiled by XLA, as ours are): op by op, Keras takes half a minute on
# DenseNet121 on two cores.
@pytest.mark.parametrize("name,size,options", FAMILIES)
def test_new_backbones_match_keras_with_their_taps(name, size, options):
  record = backbones.get(name)
  model = _keras_application(name, size, tuple(options.items()))
  module = record.module(classes=7, classifier_activation=None, **record.weights_arguments(None), **options)
  x = random_input((2, size, size, 3), seed=size) * (255.0 if record.preprocessing is None else 1.0)
  variables = load_keras(module, model, x)
  assert sum(a.size for a in jax.tree.leaves(variables)) == model.count_params()
  output, features = jax.jit(functools.partial(module.apply, return_features=True))(variables, x)
  assert_close(output, model.predict(x, verbose=0), tol=1e-5)
  assert sorted(features) == sorted(record.unet_taps) and record.unet_taps == module.features  # jit sorts keys
  probe = keras.Model(model.input, [model.get_layer(n).output for n in record.unet_taps])
  for name_, expected in zip(record.unet_taps, probe.predict(x, verbose=0)):
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
  (_, features), shapes = jax.eval_shape(
      functools.partial(module.init_with_output, return_features=True), jax.random.key(0), x)
  variables = convert_layers(shapes, keras_layers)  # raises listing any missing, unexpected or mis-shaped weight
  assert jax.tree.map(lambda a: a.shape, variables) == jax.tree.map(lambda a: a.shape, shapes)
  assert sum(a.size for a in jax.tree.leaves(shapes)) == reference["count_params"]
  # the U-Net taps are layers of the full model, each at a smaller resolution than the one before
  assert set(record.unet_taps) <= set(features)  # InceptionV3 returns more features than its U-Net taps
  sizes = [features[name].shape[1] for name in record.unet_taps]
  assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes), sizes


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
    model = _keras_application(name, size, ())  # the model the test above built (lru_cache keys on the arguments)
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


def test_efficientnet_checks_its_drop_connect_rate():
  model = backbones.get("EfficientNetB0").module(include_top=False, drop_connect_rate=1.5)
  with pytest.raises(ValueError, match=r"drop_connect_rate=1.5 is not allowed"):
    jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))
