"""Every Python example in the README runs as written (offline: the ImageNet file is made locally)."""

import os
import re

import keras
import pytest

from tests.helpers import randomize_keras, write_keras2_h5

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
BLOCKS = re.findall(r"```python\n(.*?)```", open(README).read(), flags=re.S)


@pytest.fixture
def offline_imagenet(tmp_path, monkeypatch):
  """A MobileNetV2 ImageNet-layout file with random weights where Keras's cache would have it."""
  monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
  (tmp_path / "keras" / "models").mkdir(parents=True)
  model = keras.applications.MobileNetV2(weights=None, alpha=0.35, include_top=False, input_shape=(96, 96, 3))
  randomize_keras(model, scale=0.1)
  write_keras2_h5(tmp_path / "keras" / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5",
                  model)
  monkeypatch.chdir(tmp_path)


def test_readme_has_examples():
  assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, offline_imagenet):
  exec(compile(BLOCKS[index], f"README.md example {index + 1}", "exec"), {"__name__": "readme"})


def test_readme_keras_examples_choose_the_jax_backend_first():
  """As written in a fresh virtualenv, where Keras's default config (~/.keras/keras.json) names TensorFlow."""
  keras_blocks = [block for block in BLOCKS if re.search(r"^(import|from) keras\b", block, flags=re.M)]
  assert len(keras_blocks) >= 2
  for block in keras_blocks:
    before = block[:re.search(r"^(import|from) keras\b", block, flags=re.M).start()]
    assert 'os.environ["KERAS_BACKEND"] = "jax"' in before, block
