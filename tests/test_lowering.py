"""Every model, and a training step of each kind, lowers for GPUs and TPUs as well as the CPU, without either.

`jax.export(..., platforms=("cpu", "cuda", "tpu"))` lowers one computation for
the three at once from this CPU-only machine, from shapes alone (nothing is
initialised or run), in the portable formulation `export` writes
(`jaxcomponents.ops.platform.portable()`). A CPU-only operation in a portable
path, or a platform branch that breaks elsewhere, fails here. Not covered: the
LSTM's cuDNN kernel, whose lowering rule comes with JAX's CUDA plugin, which
a CPU-only install has not (its branch is chosen only where a GPU is present).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomponents import export as exporting
from jaxcomponents import models, optimizers
from jaxcomponents.inference import apply_inference
from jaxcomponents.layers import ConvLSTM2D, Recurrent
from jaxcomponents.models import backbones
from jaxcomponents.ops import platform
from jaxcomponents.training import TrainState, make_train_step

PLATFORMS = ("cpu", "cuda", "tpu")


def _shapes(model, x):
  return jax.eval_shape(model.init, jax.random.key(0), x)


def _lowered(fn, *args):
  with platform.portable():
    exported = jax.export.export(jax.jit(fn), platforms=PLATFORMS)(*args)
  assert exported.platforms == PLATFORMS
  return exported


def _lowers_for_inference(model, shape):
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  _lowered(lambda v, x: apply_inference(model.apply, v, x), _shapes(model, x), x)


@pytest.mark.parametrize("name", backbones.NAMES)
def test_every_backbone_lowers(name):
  record = backbones.get(name)
  size = max(record.min_size, 32)
  _lowers_for_inference(record.module(include_top=False), (2, size, size, 3))


KUC_MODELS = {
    "unet_2d": dict(input_size=(32, 32, 3), filter_num=[4, 8, 16], n_labels=2, backbone="ResNet50", weights=None),
    "att_unet_2d": dict(input_size=(32, 32, 3), filter_num=[4, 8, 16], n_labels=2, batch_norm=True),
    "unet_plus_2d": dict(input_size=(32, 32, 3), filter_num=[4, 8, 16], n_labels=2, deep_supervision=True),
    "r2_unet_2d": dict(input_size=(32, 32, 3), filter_num=[4, 8], n_labels=2, batch_norm=True),
    "resunet_a_2d": dict(input_size=(32, 32, 3), filter_num=[4, 8, 16], dilation_num=[1, 3], n_labels=2,
                         aspp_num_down=4, aspp_num_up=4),
    "u2net_2d": dict(input_size=(32, 32, 3), n_labels=2, filter_num_down=[4, 8], deep_supervision=True),
    "unet_3plus_2d": dict(input_size=(32, 32, 3), n_labels=2, filter_num_down=[4, 8, 16], deep_supervision=True),
    "vnet_2d": dict(input_size=(32, 32, 3), filter_num=[4, 4, 4], n_labels=2),
    "transunet_2d": dict(input_size=(32, 32, 3), filter_num=[4, 8, 16], n_labels=2, embed_dim=8, num_mlp=8,
                         num_heads=2, num_transformer=1),
    "swin_unet_2d": dict(input_size=(32, 32, 3), filter_num_begin=8, n_labels=2, depth=2, stack_num_down=1,
                         stack_num_up=1, patch_size=(2, 2), num_heads=[2, 2], window_size=[4, 2], num_mlp=8),
    "unet_3d": dict(input_size=(8, 8, 8, 1), filter_num=[2, 4], n_labels=2, batch_norm=True),
    "att_unet_3d": dict(input_size=(8, 8, 8, 1), filter_num=[2, 4], n_labels=2),
    "unet_plus_3d": dict(input_size=(8, 8, 8, 1), filter_num=[2, 4], n_labels=2),
    "resunet_a_3d": dict(input_size=(8, 8, 8, 1), filter_num=[2, 4], dilation_num=[1, 2], n_labels=2,
                         aspp_num_down=2, aspp_num_up=2),
    "vnet_3d": dict(input_size=(8, 8, 8, 1), filter_num=[2, 4], n_labels=2, unpool=False),
}


@pytest.mark.parametrize("function", KUC_MODELS)
def test_every_segmentation_model_lowers(function):
  kwargs = KUC_MODELS[function]
  _lowers_for_inference(getattr(models, function)(**kwargs), (2, *kwargs["input_size"]))


RECURRENT = {
    "lstm": Recurrent(8, "lstm", return_sequences=True),
    "gru": Recurrent(8, "gru", bidirectional="concat"),
    "simple_rnn": Recurrent(8, "rnn"),
    "conv_lstm_2d": ConvLSTM2D(4, (3, 3), padding="same"),
}


@pytest.mark.parametrize("name", RECURRENT)
def test_every_recurrent_layer_lowers(name):
  _lowers_for_inference(RECURRENT[name], (2, 5, 6, 6, 3) if name == "conv_lstm_2d" else (2, 5, 3))


@pytest.mark.parametrize("model, shape, labels", [
    (models.MobileNetV2(classes=3), (2, 32, 32, 3), (2,)),
    (models.unet_2d((32, 32, 3), [4, 8], 2, batch_norm=True), (2, 32, 32, 3), (2, 32, 32)),
    (Recurrent(3, "lstm"), (2, 5, 3), (2,)),
])
def test_a_training_step_lowers(model, shape, labels):
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  tx = optimizers.get("adam")
  step = make_train_step("sparse_categorical_crossentropy", ["accuracy"])
  state = jax.eval_shape(lambda v: step.reset(TrainState.create(model, tx, variables=v)), _shapes(model, x))
  batch = {"x": x, "y": jax.ShapeDtypeStruct(labels, jnp.int32)}
  with platform.portable():
    exported = jax.export.export(step.fn, platforms=PLATFORMS)(state, batch)
  assert exported.platforms == PLATFORMS


def test_export_writes_one_file_for_several_platforms(tmp_path):
  model = models.unet_2d((16, 16, 3), [2, 4], 2)
  x = np.zeros((1, 16, 16, 3), np.float32)
  variables = model.init(jax.random.key(0), x)
  path = exporting.export(model, variables, x, tmp_path / "unet.stablehlo", platforms=["cpu", "cuda", "tpu"])
  loaded = jax.export.deserialize(bytearray(open(path, "rb").read()))
  assert loaded.platforms == PLATFORMS
  np.testing.assert_allclose(exporting.load_stablehlo(path)(np.ones((3, 16, 16, 3), np.float32)),
                             model.apply(variables, np.ones((3, 16, 16, 3), np.float32)), rtol=1e-5, atol=1e-6)
  for platforms, message in ((["gpu"], r"platforms=\['gpu'\] is not allowed; expected a non-empty list of "
                                       r"distinct platforms from cpu, cuda, rocm, tpu"),
                             ([], "platforms=\\[\\] is not allowed"), (["cpu", "cpu"], "distinct")):
    with pytest.raises(ValueError, match=message):
      exporting.export(model, variables, x, tmp_path / "bad.stablehlo", platforms=platforms)
  with pytest.raises(ValueError, match=r"platforms=\['cpu'\] is not allowed with format='onnx'"):
    exporting.export(model, variables, x, tmp_path / "bad.onnx", format="onnx", platforms=["cpu"])
