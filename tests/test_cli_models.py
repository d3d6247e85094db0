"""The `jaxcomponents` convert, export and summary commands, --version and their errors."""

import re
import subprocess
import sys

import numpy as np
import pytest

from tests.keras_model_zoo import random_input, random_model

import keras  # noqa: E402  (after keras_model_zoo chose the JAX backend)

from jaxcomponents import cli  # noqa: E402
from jaxcomponents.export import load_onnx, load_stablehlo  # noqa: E402
from jaxcomponents.weights import from_keras, load_npz, save_npz  # noqa: E402


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
  model = random_model("image2d", 11)
  path = tmp_path_factory.mktemp("cli") / "model.keras"
  model.save(path)
  return model, str(path)


def test_version():
  done = subprocess.run([sys.executable, "-m", "jaxcomponents.cli", "--version"], capture_output=True, text=True,
                        timeout=120, check=True)
  assert done.stdout.startswith("jaxcomponents ") and done.stdout.strip() != "jaxcomponents"


@pytest.mark.parametrize("command", ["convert", "export", "summary"])
def test_each_command_has_help(command, capsys):
  with pytest.raises(SystemExit) as exit_:
    cli.main([command, "--help"])
  assert exit_.value.code == 0
  assert f"jaxcomponents {command}" in capsys.readouterr().out


def test_summary_lists_the_keras_layers(keras_file, capsys):
  model, path = keras_file
  assert cli.main(["summary", path]) == 0
  out = capsys.readouterr().out
  assert out.startswith(f'Model: "{model.name}"\n')
  for layer in model.layers:  # each Keras layer once, with its Keras class and a None batch
    rows = [line for line in out.splitlines() if line.startswith(f"| {layer.name} (")]
    assert len(rows) == 1 and re.match(rf"\| {layer.name} \({type(layer).__name__}\) +\| \(None", rows[0]), rows
  assert len([line for line in out.splitlines() if line.startswith("| ")]) >= len(model.layers) + 1
  trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
  assert f" Total params: {model.count_params():,} (" in out
  assert f" Trainable params: {trainable:,} (" in out
  assert f" Non-trainable params: {model.count_params() - trainable:,} (" in out


def test_convert_to_npz_and_orbax_and_back_into_keras(keras_file, tmp_path, capsys):
  model, path = keras_file
  x = random_input(model, 11)
  assert cli.main(["convert", path, str(tmp_path / "v.npz")]) == 0
  module, variables = from_keras(path)
  loaded = load_npz(tmp_path / "v.npz")
  np.testing.assert_allclose(module.apply(loaded, x), model(x), rtol=1e-5, atol=1e-5)
  assert cli.main(["convert", path, str(tmp_path / "ckpt")]) == 0
  # trained variables (here: scaled) go back into a Keras file of the same architecture
  trained = _scaled(loaded, 0.5)
  save_npz(tmp_path / "trained.npz", trained)
  for out in ("trained.keras", "trained.h5"):
    assert cli.main(["convert", str(tmp_path / "trained.npz"), str(tmp_path / out), "--architecture", path]) == 0
    reloaded = keras.saving.load_model(tmp_path / out)
    np.testing.assert_allclose(reloaded(x), module.apply(trained, x), rtol=1e-5, atol=1e-5)
  assert cli.main(["convert", str(tmp_path / "ckpt"), str(tmp_path / "back.weights.h5"), "--architecture", path]) == 0
  fresh = keras.saving.load_model(path)
  fresh.load_weights(tmp_path / "back.weights.h5")
  np.testing.assert_allclose(fresh(x), model(x), rtol=1e-6, atol=1e-6)
  assert "->" in capsys.readouterr().out


def _scaled(tree, factor):
  if isinstance(tree, dict):
    return {k: _scaled(v, factor) for k, v in tree.items()}
  return np.asarray(tree) * factor


@pytest.mark.parametrize("format_, loader", [("stablehlo", load_stablehlo), ("onnx", load_onnx)])
def test_export_runs_in_its_runtime(keras_file, tmp_path, format_, loader):
  model, path = keras_file
  out = str(tmp_path / f"model.{format_}")
  assert cli.main(["export", path, "--format", format_, "--output", out]) == 0
  x = np.random.default_rng(0).normal(size=(5, *model.inputs[0].shape[1:])).astype("float32")
  y = loader(out)(x)
  y = y[0] if isinstance(y, (list, tuple)) else y
  np.testing.assert_allclose(np.asarray(y), model(x), rtol=1e-4, atol=1e-4)


def test_export_for_several_platforms(keras_file, tmp_path, capsys):
  """`--platforms` writes one StableHLO file for each platform named; it runs here on the CPU."""
  import jax

  model, path = keras_file
  out = str(tmp_path / "model.stablehlo")
  assert cli.main(["export", path, "--format", "stablehlo", "--output", out, "--platforms", "cpu,cuda,tpu"]) == 0
  assert "(stablehlo, cpu, cuda, tpu)" in capsys.readouterr().out
  assert jax.export.deserialize(bytearray(open(out, "rb").read())).platforms == ("cpu", "cuda", "tpu")
  x = np.random.default_rng(0).normal(size=(3, *model.inputs[0].shape[1:])).astype("float32")
  np.testing.assert_allclose(np.asarray(load_stablehlo(out)(x)), model(x), rtol=1e-4, atol=1e-4)
  assert cli.main(["export", path, "--format", "onnx", "--output", str(tmp_path / "m.onnx"), "--platforms", "cpu"]) == 2
  assert "--platforms cpu: platforms=['cpu'] is not allowed with format='onnx'" in capsys.readouterr().err
  assert cli.main(["export", path, "--format", "stablehlo", "--output", out + "2", "--platforms", "cpu,gpu"]) == 2
  assert "expected a non-empty list of distinct platforms from cpu, cuda, rocm, tpu" in capsys.readouterr().err


def test_errors_name_the_problem(keras_file, tmp_path, capsys):
  _, path = keras_file
  assert cli.main(["summary", str(tmp_path / "missing.keras")]) == 2
  assert "does not exist" in capsys.readouterr().err
  assert cli.main(["convert", str(tmp_path / "v.npz"), str(tmp_path / "out.npz")]) == 2
  assert "not allowed for variables" in capsys.readouterr().err
  assert cli.main(["convert", str(tmp_path / "v.npz"), str(tmp_path / "out.keras")]) == 2
  assert "--architecture is required" in capsys.readouterr().err
  assert cli.main(["convert", str(tmp_path / "v.npz"), str(tmp_path / "out.keras"), "--architecture", path]) == 2
  assert "do not exist" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    cli.main(["export", path, "--format", "tflite", "--output", str(tmp_path / "x")])
  assert "invalid choice: 'tflite'" in capsys.readouterr().err
