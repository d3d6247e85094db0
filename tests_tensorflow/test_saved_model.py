"""`jaxcomponents.export(..., format="saved_model")`: TensorFlow serves what the module computes.

TensorFlow is not part of jaxcomponents' environment: `make test-tf` installs
JAX, Flax and jaxcomponents beside it in `.venv-tf` and runs this folder. A
backbone and recurrent layers are exported from a batch of 2 with a symbolic
batch dimension, loaded with `tf.saved_model.load` and called through their
`serving_default` signature at a batch of 3.
"""

import jax
import numpy as np
import pytest
import tensorflow as tf

from jaxcomponents.export import export
from jaxcomponents.layers import Recurrent
from jaxcomponents.models import MobileNetV2
from tests.helpers import assert_close, random_variables

MODELS = {
    "mobilenet_v2": (lambda: MobileNetV2(alpha=0.35, classes=7, classifier_activation=None), (32, 32, 3)),
    "lstm": (lambda: Recurrent(8), (5, 3)),
    "bidirectional_gru": (lambda: Recurrent(8, cell="gru", bidirectional="concat", return_sequences=True), (5, 3)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_saved_model_serves_at_another_batch_size(name, tmp_path):
  make, shape = MODELS[name]
  model = make()
  variables = random_variables(model, (2, *shape))
  rng = np.random.default_rng(1)
  sample, x = (rng.normal(size=(n, *shape)).astype(np.float32) for n in (2, 3))
  expected = np.asarray(jax.jit(lambda x: model.apply(variables, x, train=False))(x))
  path = tmp_path / name
  assert export(model, variables, sample, path, format="saved_model") == str(path)
  assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no .partial left

  serving = tf.saved_model.load(str(path)).signatures["serving_default"]
  assert serving.structured_input_signature[1]["input"].shape.as_list() == [None, *shape]
  (got,) = serving(input=tf.constant(x)).values()
  assert_close(got.numpy(), expected, tol=1e-4)


def test_an_existing_saved_model_is_replaced_only_with_overwrite_and_a_users_folder_never(tmp_path):
  model = Recurrent(4, cell="rnn")
  variables = random_variables(model, (2, 5, 3))
  sample = np.ones((2, 5, 3), np.float32)
  mine = tmp_path / "mine"
  mine.mkdir()
  (mine / "notes.txt").write_text("a user's file")
  with pytest.raises(FileExistsError, match="is not a SavedModel folder"):
    export(model, variables, sample, mine, format="saved_model", batch="fixed", overwrite=True)
  assert (mine / "notes.txt").read_text() == "a user's file"
  path = tmp_path / "model"
  export(model, random_variables(model, (2, 5, 3), seed=1), sample, path, format="saved_model", batch="fixed")
  with pytest.raises(FileExistsError, match="pass overwrite=True"):
    export(model, variables, sample, path, format="saved_model", batch="fixed")
  export(model, variables, sample, path, format="saved_model", batch="fixed", overwrite=True)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "model"]
  serving = tf.saved_model.load(str(path)).signatures["serving_default"]
  assert serving.structured_input_signature[1]["input"].shape.as_list() == [2, 5, 3]
  x = np.linspace(-1, 1, 30, dtype=np.float32).reshape(2, 5, 3)
  (got,) = serving(input=tf.constant(x)).values()
  assert_close(got.numpy(), model.apply(variables, x), tol=1e-4)
