"""`jaxcomponents.export`: every backbone, a U-Net and recurrent layers as StableHLO and ONNX files.

Each model is exported from a batch of 2 with a symbolic batch dimension, read
back (`load_stablehlo`, or ONNX Runtime through `load_onnx`) and called at a
batch of 3; it computes what `module.apply` computes, within 1e-4 of the output
scale. Variables are random (batch statistics too), so no output is trivial.
The TensorFlow SavedModel format is tested in tests_tensorflow (`make test-tf`).
"""

import jax
import numpy as np
import pytest

from jaxcomponents.export import export, load_onnx, load_stablehlo
from jaxcomponents.layers import Recurrent
from jaxcomponents.models import VGG16, InceptionV3, MobileNetV2, ResNet50, UNet
from tests.helpers import assert_close, random_variables

# (model, input shape without the batch): the smallest inputs the backbones take, few filters where a
# constructor has them; logits, not softmax, so that a wrong output cannot hide in a near-uniform one.
MODELS = {
    "vgg16": (lambda: VGG16(classes=7, classifier_activation=None), (32, 32, 3)),
    "resnet50": (lambda: ResNet50(classes=7, classifier_activation=None), (32, 32, 3)),
    "mobilenet_v2": (lambda: MobileNetV2(alpha=0.35, classes=7, classifier_activation=None), (32, 32, 3)),
    "inception_v3": (lambda: InceptionV3(include_top=False, pooling="avg"), (75, 75, 3)),
    "unet": (lambda: UNet(filter_num=(4, 8, 16), n_labels=3, batch_norm=True, pool="max", unpool=False), (32, 32, 3)),
    "lstm": (lambda: Recurrent(8), (5, 3)),
    "bidirectional_gru": (lambda: Recurrent(8, cell="gru", bidirectional="concat", return_sequences=True), (5, 3)),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request):
  """(name, model, variables, sample input at batch 2, input at batch 3, the module's output at batch 3)."""
  make, shape = MODELS[request.param]
  model = make()
  variables = random_variables(model, (2, *shape))
  rng = np.random.default_rng(1)
  sample = rng.normal(size=(2, *shape)).astype(np.float32)
  x = rng.normal(size=(3, *shape)).astype(np.float32)
  expected = np.asarray(jax.jit(lambda x: model.apply(variables, x, train=False))(x))
  assert np.all(np.isfinite(expected)) and np.ptp(expected) > 0
  return request.param, model, variables, sample, x, expected


def test_stablehlo_runs_at_another_batch_size(case, tmp_path):
  name, model, variables, sample, x, expected = case
  path = tmp_path / f"{name}.stablehlo"
  assert export(model, variables, sample, path) == str(path)
  assert "jc_" not in jax.export.deserialize(bytearray(path.read_bytes())).mlir_module()  # no native calls
  got = load_stablehlo(path)(x)
  assert_close(got, expected, tol=1e-4)


def test_onnx_runs_in_onnxruntime_at_another_batch_size(case, tmp_path):
  name, model, variables, sample, x, expected = case
  path = tmp_path / f"{name}.onnx"
  assert export(model, variables, sample, path, format="onnx") == str(path)
  got = load_onnx(path)(x)
  assert isinstance(got, np.ndarray)
  assert_close(got, expected, tol=1e-4)


@pytest.fixture(scope="module")
def small():
  model = Recurrent(4, cell="rnn")
  variables = random_variables(model, (2, 5, 3))
  return model, variables


def test_the_batch_dimension_is_symbolic_or_fixed(small, tmp_path):
  import onnx

  model, variables = small
  sample, x = np.ones((2, 5, 3), np.float32), np.ones((3, 5, 3), np.float32)
  export(model, variables, sample, tmp_path / "symbolic.onnx", format="onnx")
  (dim, *_), = [i.type.tensor_type.shape.dim for i in onnx.load(tmp_path / "symbolic.onnx").graph.input]
  assert dim.dim_param == "batch"
  export(model, variables, sample, tmp_path / "fixed.onnx", format="onnx", batch="fixed")
  (dim, *_), = [i.type.tensor_type.shape.dim for i in onnx.load(tmp_path / "fixed.onnx").graph.input]
  assert dim.dim_value == 2
  export(model, variables, sample, tmp_path / "fixed.stablehlo", batch="fixed")
  fixed = load_stablehlo(tmp_path / "fixed.stablehlo")
  assert_close(fixed(sample), model.apply(variables, sample), tol=1e-4)
  with pytest.raises(ValueError, match="shape"):
    fixed(x)


def test_a_module_without_train_and_several_inputs(tmp_path):
  import flax.linen as nn

  class Pair(nn.Module):
    @nn.compact
    def __call__(self, a, b):
      return nn.Dense(3)(a) * b

  model = Pair()
  a, b = np.ones((2, 4), np.float32), np.full((2, 3), 2.0, np.float32)
  variables = model.init(jax.random.key(0), a, b)
  a3, b3 = np.arange(12, dtype=np.float32).reshape(3, 4), np.full((3, 3), 0.5, np.float32)
  expected = model.apply(variables, a3, b3)
  export(model, variables, (a, b), tmp_path / "pair.stablehlo")
  assert_close(load_stablehlo(tmp_path / "pair.stablehlo")(a3, b3), expected)
  export(model, variables, (a, b), tmp_path / "pair.onnx", format="onnx")
  assert_close(load_onnx(tmp_path / "pair.onnx")(a3, b3), expected)


def test_an_existing_file_is_replaced_whole_with_overwrite(small, tmp_path):
  model, variables = small
  path = tmp_path / "model.stablehlo"
  path.write_bytes(b"an older export")
  with pytest.raises(FileExistsError, match=r"model.stablehlo exists; pass overwrite=True to replace it"):
    export(model, variables, np.ones((2, 5, 3), np.float32), path)
  assert path.read_bytes() == b"an older export"
  export(model, variables, np.ones((2, 5, 3), np.float32), path, overwrite=True)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["model.stablehlo"]
  assert load_stablehlo(path)(np.ones((1, 5, 3), np.float32)).shape == (1, 4)


@pytest.mark.parametrize("kwargs, message", [
    ({"format": "tflite"}, r"format='tflite' is not allowed; expected one of 'stablehlo', 'onnx', 'saved_model'"),
    ({"batch": "dynamic"}, r"batch='dynamic' is not allowed; expected one of 'symbolic', 'fixed'"),
    ({"batch": None}, r"batch=None is not allowed"),
])
def test_a_bad_format_or_batch_is_named(small, tmp_path, kwargs, message):
  model, variables = small
  with pytest.raises(ValueError, match=message):
    export(model, variables, np.ones((2, 5, 3), np.float32), tmp_path / "model", **kwargs)
  assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, message", [
    ((lambda x: x, {}, np.ones((2, 3)), "m"), r"module=function is not allowed; expected a flax.linen.Module"),
    ((Recurrent(4), [1], np.ones((2, 5, 3)), "m"), r"variables=list is not allowed"),
    ((Recurrent(4), {}, 3.0, "m"), r"sample_input=3.0 is not allowed; expected an array"),
    ((Recurrent(4), {}, np.float32(1), "m"), r"not allowed with batch='symbolic'"),
    ((Recurrent(4), {}, np.ones((2, 5, 3)), 7), r"path=7 is not allowed; expected a str or os.PathLike"),
])
def test_other_bad_arguments_are_named(args, message):
  with pytest.raises(ValueError, match=message):
    export(*args)
