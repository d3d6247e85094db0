"""Writers never delete what they did not write (issue 28), and the command line's faults are one clear line.

Every writer (exports, `save_model`, `save_keras_h5`, `jaxcomponents convert`)
writes beside its target through `jaxcomponents.files.write_beside`: a folder
holding a user's files is refused (even with overwrite=True) and left intact; an
earlier export is replaced only with overwrite=True; a stranger's
`<out>.partial` is never touched; a failed write leaves neither the target nor
a temporary sibling. ONNX exports refuse what ONNX cannot hold and are loaded
before they take the target's name.
"""

import importlib.util
import os
import stat
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomponents import cli, files
from jaxcomponents import export as exporting
from jaxcomponents.export import export, load_onnx, load_stablehlo
from jaxcomponents.layers import Dense
from jaxcomponents.training.saving import load_saved, save_model
from jaxcomponents.weights import load_npz, save_keras_h5, save_npz

HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
SAMPLE = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)


@pytest.fixture(scope="module")
def dense():
  model = Dense(2)
  return model, model.init(jax.random.key(0), SAMPLE)


def _scaled(variables, factor):
  return jax.tree.map(lambda v: np.asarray(v) * factor, variables)


def _listing(folder):
  """Every path under `folder` with its content (files) or None (folders), hidden ones included."""
  found = {}
  for root, folders, names in os.walk(folder):
    for name in folders:
      found[os.path.relpath(os.path.join(root, name), folder)] = None
    for name in names:
      with open(os.path.join(root, name), "rb") as f:
        found[os.path.relpath(os.path.join(root, name), folder)] = f.read()
  return found


def _user_folder(tmp_path):
  folder = tmp_path / "out"
  folder.mkdir()
  (folder / "notes.txt").write_text("a user's file")
  return folder


# Exports ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("format_", ["stablehlo", "onnx", "saved_model"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_an_export_into_a_users_folder_is_refused_and_the_folder_stays_intact(dense, tmp_path, format_, overwrite):
  # Refused before the format's dependency is needed, so saved_model is checked without TensorFlow too.
  folder = _user_folder(tmp_path)
  before = _listing(tmp_path)
  with pytest.raises(FileExistsError, match=r"out exists and is not (a file|a SavedModel folder \(holding "
                                            r"saved_model.pb\)); choose another (file|folder) \(nothing was written\)"):
    export(*dense, SAMPLE, folder, format=format_, overwrite=overwrite)
  assert _listing(tmp_path) == before


@pytest.mark.parametrize("format_, loader", [("stablehlo", load_stablehlo), ("onnx", load_onnx)])
def test_an_earlier_export_is_replaced_only_with_overwrite(dense, tmp_path, format_, loader):
  model, variables = dense
  path = tmp_path / f"model.{format_}"
  export(model, variables, SAMPLE, path, format=format_)
  first = path.read_bytes()
  with pytest.raises(FileExistsError, match=r"model\.\w+ exists; pass overwrite=True to replace it"):
    export(model, _scaled(variables, 2.0), SAMPLE, path, format=format_)
  assert path.read_bytes() == first
  assert export(model, _scaled(variables, 2.0), SAMPLE, path, format=format_, overwrite=True) == str(path)
  assert sorted(os.listdir(tmp_path)) == [path.name]
  np.testing.assert_allclose(np.asarray(loader(path)(SAMPLE)), 2.0 * np.asarray(model.apply(variables, SAMPLE)),
                             rtol=1e-5, atol=1e-5)  # Dense is linear in its variables


@pytest.mark.skipif(not HAS_TENSORFLOW, reason="the SavedModel format needs TensorFlow, which is not installed")
def test_an_earlier_saved_model_is_replaced_only_with_overwrite(dense, tmp_path):
  import tensorflow as tf

  model, variables = dense
  path = tmp_path / "served"
  export(model, variables, SAMPLE, path, format="saved_model")
  with pytest.raises(FileExistsError, match=r"served exists; pass overwrite=True"):
    export(model, _scaled(variables, 2.0), SAMPLE, path, format="saved_model")
  export(model, _scaled(variables, 2.0), SAMPLE, path, format="saved_model", overwrite=True)
  assert sorted(os.listdir(tmp_path)) == ["served"]
  (got,) = tf.saved_model.load(str(path)).signatures["serving_default"](input=tf.constant(SAMPLE)).values()
  np.testing.assert_allclose(got.numpy(), 2.0 * np.asarray(model.apply(variables, SAMPLE)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("format_", ["stablehlo", "onnx"] + (["saved_model"] if HAS_TENSORFLOW else []))
def test_a_strangers_partial_beside_the_target_is_untouched(dense, tmp_path, format_):
  path = tmp_path / "model"
  (tmp_path / "model.partial").write_text("someone else's")
  export(*dense, SAMPLE, path, format=format_)
  assert (tmp_path / "model.partial").read_text() == "someone else's"
  assert sorted(os.listdir(tmp_path)) == ["model", "model.partial"]


class FourierMagnitude(nn.Module):
  @nn.compact
  def __call__(self, x):
    return jnp.abs(jnp.fft.fft(x))


class HostDoubling(nn.Module):
  @nn.compact
  def __call__(self, x):
    double = lambda a: jax.pure_callback(lambda h: np.asarray(h) * 2, jax.ShapeDtypeStruct(a.shape, a.dtype), a)
    return jax.jit(double)(x)  # inside a call, which the check looks into


@pytest.mark.parametrize("module, primitive", [(FourierMagnitude(), "fft"), (HostDoubling(), "pure_callback")])
def test_onnx_refuses_a_primitive_it_cannot_hold_and_writes_nothing(tmp_path, module, primitive):
  variables = module.init(jax.random.key(0), SAMPLE)
  with pytest.raises(ValueError, match=rf"format='onnx' cannot hold primitive '{primitive}' of "
                                       rf"{type(module).__name__}.*\(nothing was written\)"):
    export(module, variables, SAMPLE, tmp_path / "model.onnx", format="onnx")
  assert os.listdir(tmp_path) == []
  # The same module is fine in a format that holds it.
  if primitive == "fft":
    export(module, variables, SAMPLE, tmp_path / "model.stablehlo")
    np.testing.assert_allclose(load_stablehlo(tmp_path / "model.stablehlo")(SAMPLE), module.apply(variables, SAMPLE),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hide_onnxruntime, checker", [(False, "ONNX Runtime"), (True, "onnx.checker")])
def test_an_onnx_file_its_runtime_refuses_never_takes_the_target(tmp_path, monkeypatch, hide_onnxruntime, checker):
  # Without the up-front check, jax2onnx writes a Fourier transform that ONNX Runtime (and onnx.checker) refuse:
  # the check after writing catches it, and the earlier export at the target stays.
  monkeypatch.setattr(exporting, "_refuse_what_onnx_cannot_hold", lambda jaxpr, name: None)
  if hide_onnxruntime:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
  path = tmp_path / "model.onnx"
  path.write_bytes(b"an earlier export")
  module = FourierMagnitude()
  with pytest.raises(ValueError, match=rf"model jax2onnx made of FourierMagnitude is refused by {checker}"):
    export(module, module.init(jax.random.key(0), SAMPLE), SAMPLE, path, format="onnx", overwrite=True)
  assert _listing(tmp_path) == {"model.onnx": b"an earlier export"}


# write_beside, save_model, save_keras_h5 ----------------------------------------------------------------------------

def test_a_failing_write_leaves_neither_target_nor_temporary_and_keeps_what_was_there(tmp_path):
  def fail_halfway(staged):
    os.makedirs(staged)
    (open(os.path.join(staged, "saved_model.pb"), "w")).close()
    raise OSError("disk full")

  kind = files.folder_with("saved_model.pb", "a SavedModel folder")
  with pytest.raises(OSError, match="disk full"):
    files.write_beside(tmp_path / "new" / "deeper" / "model", fail_halfway, kind)
  assert os.listdir(tmp_path) == []  # the parent folders it made are gone too
  (tmp_path / "model").mkdir()
  (tmp_path / "model" / "saved_model.pb").write_text("the earlier export")
  before = _listing(tmp_path)
  with pytest.raises(OSError, match="disk full"):
    files.write_beside(tmp_path / "model", fail_halfway, kind, overwrite=True)
  with pytest.raises(KeyboardInterrupt):
    files.write_beside(tmp_path / "model", lambda staged: (_ for _ in ()).throw(KeyboardInterrupt), kind,
                       overwrite=True)
  assert _listing(tmp_path) == before
  with pytest.raises(FileNotFoundError, match="made nothing"):
    files.write_beside(tmp_path / "other", lambda staged: None)
  assert _listing(tmp_path) == before


def test_write_beside_replaces_only_what_is_of_its_kind(tmp_path):
  def write_folder(text):
    def write(staged):
      os.makedirs(staged)
      with open(os.path.join(staged, "marker"), "w") as f:
        f.write(text)
    return write

  kind = files.folder_with("marker", "a test folder")
  (tmp_path / "empty").mkdir()
  files.write_beside(tmp_path / "empty", write_folder("one"), kind)  # an empty folder holds nothing to lose
  assert (tmp_path / "empty" / "marker").read_text() == "one"
  files.write_beside(tmp_path / "empty", write_folder("two"), kind, overwrite=True)
  assert _listing(tmp_path) == {"empty": None, os.path.join("empty", "marker"): b"two"}
  # A written folder is created as any other (mkdtemp's owner-only mode stays on the temporary folder).
  os.mkdir(tmp_path / "reference")
  assert stat.S_IMODE(os.stat(tmp_path / "empty").st_mode) == stat.S_IMODE(os.stat(tmp_path / "reference").st_mode)
  (tmp_path / "file").write_text("a file")
  with pytest.raises(FileExistsError, match=r"file exists and is not a test folder \(holding marker\)"):
    files.write_beside(tmp_path / "file", write_folder("three"), kind, overwrite=True)
  with pytest.raises(FileExistsError, match=r"reference exists and is not a file; choose another file"):
    files.write_beside(tmp_path / "reference", lambda staged: open(staged, "w").close(), overwrite=True)
  assert (tmp_path / "file").read_text() == "a file" and os.listdir(tmp_path / "reference") == []


def test_save_model_never_touches_a_partial_nor_a_users_folder(dense, tmp_path):
  model, variables = dense
  (tmp_path / "saved.partial").mkdir()
  (tmp_path / "saved.partial" / "theirs.txt").write_text("someone else's")
  save_model(tmp_path / "saved", model, variables)  # an earlier version refused a <path>.partial it had not made
  save_model(tmp_path / "saved", model, _scaled(variables, 2.0), overwrite=True)
  loaded_module, loaded = load_saved(tmp_path / "saved")
  np.testing.assert_allclose(loaded_module.apply(loaded, SAMPLE), 2.0 * np.asarray(model.apply(variables, SAMPLE)),
                             rtol=1e-6)
  assert (tmp_path / "saved.partial" / "theirs.txt").read_text() == "someone else's"
  assert sorted(os.listdir(tmp_path)) == ["saved", "saved.partial"]
  with pytest.raises(FileExistsError, match=r"saved exists; pass overwrite=True"):
    save_model(tmp_path / "saved", model, variables, overwrite=False)
  folder = _user_folder(tmp_path)
  before = _listing(folder)
  with pytest.raises(FileExistsError, match=r"out exists and is not a saved model \(holding architecture.json\)"):
    save_model(folder, model, variables, overwrite=True)
  assert _listing(folder) == before


def test_a_saved_model_folder_holding_a_users_files_is_never_replaced(dense, tmp_path):
  model, variables = dense
  save_model(tmp_path / "saved", model, variables)
  (tmp_path / "saved" / "notes.txt").write_text("evaluation results")  # added by the user later
  project = tmp_path / "project"  # a user's folder that happens to hold an architecture.json
  (project / "data").mkdir(parents=True)
  (project / "architecture.json").write_text("{}")
  (project / "data" / "results.csv").write_text("1,2\n")
  before = _listing(tmp_path)
  for folder, held in ((tmp_path / "saved", r"\['notes.txt'\]"), (project, r"\['data'\]")):
    with pytest.raises(FileExistsError, match=rf"is a saved model \(holding architecture.json\), but it also holds "
                                              rf"{held}, which replacing it would delete"):
      save_model(folder, model, _scaled(variables, 2.0), overwrite=True)  # Model.save's default
  assert _listing(tmp_path) == before


def test_save_npz_writes_beside_and_keeps_the_old_file_when_a_write_fails(dense, tmp_path, monkeypatch):
  model, variables = dense
  path = tmp_path / "w.npz"
  save_npz(path, variables)
  first = path.read_bytes()
  with pytest.raises(FileExistsError, match=r"w\.npz exists; pass overwrite=True"):
    save_npz(path, variables, overwrite=False)

  def savez_then_fail(f, **arrays):
    f.write(b"PK\x03\x04 half an archive")
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(np, "savez", savez_then_fail)
  with pytest.raises(OSError, match="No space left on device"):
    save_npz(path, _scaled(variables, 2.0))
  monkeypatch.undo()
  assert path.read_bytes() == first and sorted(os.listdir(tmp_path)) == ["w.npz"]
  np.testing.assert_array_equal(load_npz(path)["params"]["dense"]["kernel"], variables["params"]["dense"]["kernel"])


def test_save_keras_h5_refuses_a_folder_and_replaces_a_file_only_with_overwrite(dense, tmp_path):
  model, variables = dense
  (tmp_path / "w.h5.partial").write_text("someone else's")
  save_keras_h5(tmp_path / "w.h5", model, variables, SAMPLE)
  first = (tmp_path / "w.h5").read_bytes()
  with pytest.raises(FileExistsError, match=r"w\.h5 exists; pass overwrite=True"):
    save_keras_h5(tmp_path / "w.h5", model, _scaled(variables, 2.0), SAMPLE, overwrite=False)
  assert (tmp_path / "w.h5").read_bytes() == first
  save_keras_h5(tmp_path / "w.h5", model, _scaled(variables, 2.0), SAMPLE)
  assert (tmp_path / "w.h5").read_bytes() != first
  with pytest.raises(FileExistsError, match=r"out exists and is not a file"):
    save_keras_h5(_user_folder(tmp_path), model, variables, SAMPLE)
  assert (tmp_path / "w.h5.partial").read_text() == "someone else's"
  assert sorted(os.listdir(tmp_path)) == ["out", "w.h5", "w.h5.partial"]


# The command line ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
  import keras

  inputs = keras.Input((3,))
  model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))  # named: not by Keras's process-wide count
  path = tmp_path_factory.mktemp("keras") / "small.keras"
  model.save(path)
  return str(path)


def _one_error_line(capsys, command):
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith(f"jaxcomponents {command}: error: ") and "Traceback" not in err, err
  return err


@pytest.mark.parametrize("output", ["out.txt", "out.keras", "out.weights.h5", "run.v2"])
def test_convert_refuses_an_output_suffix_it_would_not_write(keras_file, tmp_path, capsys, output):
  assert cli.main(["convert", keras_file, str(tmp_path / output)]) == 2
  err = _one_error_line(capsys, "convert")
  assert f"output={str(tmp_path / output)!r} is not allowed for a Keras model INPUT; expected a name ending in .npz" \
         " (a NumPy archive) or a folder name without a suffix (an orbax checkpoint)" in err
  assert os.listdir(tmp_path) == []


def test_convert_writes_by_suffix_and_replaces_only_with_overwrite(keras_file, tmp_path, capsys):
  npz, checkpoint = str(tmp_path / "v.npz"), str(tmp_path / "ckpt")
  for output in (npz, checkpoint):
    assert cli.main(["convert", keras_file, output]) == 0
    assert cli.main(["convert", keras_file, output]) == 2
    assert "exists; pass --overwrite to replace it" in _one_error_line(capsys, "convert")
    assert cli.main(["convert", keras_file, output, "--overwrite"]) == 0
  assert np.load(npz)["params/dense/dense/kernel"].shape == (3, 2)
  assert "_CHECKPOINT_METADATA" in os.listdir(checkpoint)
  assert sorted(os.listdir(tmp_path)) == ["ckpt", "v.npz"]
  folder = _user_folder(tmp_path)
  assert cli.main(["convert", keras_file, str(folder), "--overwrite"]) == 2
  assert "is not an orbax checkpoint (holding _CHECKPOINT_METADATA)" in _one_error_line(capsys, "convert")
  (tmp_path / "ckpt" / "my_eval.txt").write_text("the user's")  # beside an earlier conversion
  assert cli.main(["convert", keras_file, checkpoint, "--overwrite"]) == 2
  assert "but it also holds ['my_eval.txt']" in _one_error_line(capsys, "convert")
  assert (tmp_path / "ckpt" / "my_eval.txt").read_text() == "the user's"
  os.remove(tmp_path / "ckpt" / "my_eval.txt")
  assert cli.main(["convert", npz, str(tmp_path / "back.weights.h5"), "--architecture", keras_file]) == 0
  assert cli.main(["convert", npz, str(tmp_path / "back.weights.h5"), "--architecture", keras_file]) == 2
  assert "back.weights.h5 exists; pass --overwrite" in _one_error_line(capsys, "convert")
  assert _listing(folder) == {"notes.txt": b"a user's file"}


@pytest.mark.parametrize("format_", ["saved_model", "onnx"])
def test_cli_export_into_a_users_folder_is_one_error_line_and_the_folder_stays(keras_file, tmp_path, capsys, format_):
  folder = _user_folder(tmp_path)
  assert cli.main(["export", keras_file, "--format", format_, "--output", str(folder), "--overwrite"]) == 2
  assert "out exists and is not" in _one_error_line(capsys, "export")
  assert _listing(tmp_path) == {"out": None, os.path.join("out", "notes.txt"): b"a user's file"}
  assert cli.main(["export", keras_file, "--format", "stablehlo", "--output", str(tmp_path / "m.onnx")]) == 2
  assert "--output=" in _one_error_line(capsys, "export") and not os.path.exists(tmp_path / "m.onnx")


def test_cli_names_an_unregistered_function_in_one_line_with_exit_status_2(tmp_path):
  # The file is written where the function is registered, then read by the command, where it is not.
  writer = textwrap.dedent("""
      import sys, keras
      @keras.saving.register_keras_serializable(package="mine")
      def my_swish(x):
        return x * keras.ops.sigmoid(x)
      inputs = keras.Input((4,))
      keras.Model(inputs, keras.layers.Dense(3, activation=my_swish)(inputs)).save(sys.argv[1])
  """)
  path = str(tmp_path / "custom.keras")
  env = {**os.environ, "KERAS_BACKEND": "jax"}
  subprocess.run([sys.executable, "-c", writer, path], check=True, env=env, timeout=300, capture_output=True)
  done = subprocess.run([sys.executable, "-m", "jaxcomponents.cli", "summary", path], env=env, timeout=300,
                        capture_output=True, text=True)
  assert done.returncode == 2, done.stderr
  assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
  assert done.stderr.startswith(f"jaxcomponents summary: error: {path} names the function 'mine>my_swish', which is "
                                "not registered with Keras (registered: none); register it with "
                                "@keras.saving.register_keras_serializable()"), done.stderr


def test_a_module_built_from_numpy_scalars_saves_and_loads_as_the_same_module(tmp_path):
  """Sizes taken from NumPy (an array's shape, `np.unique`) save as numbers, not as dtypes."""
  from jaxcomponents.layers import Convolution, Recurrent

  for module, x in ((Dense(np.int64(3), dropout=np.float32(0.25)), SAMPLE),
                    (Convolution(np.int32(4), (np.int64(3), np.int64(3)), pool="max"), jnp.ones((1, 6, 6, 2))),
                    (Recurrent(np.int64(3), cell="gru", dropout=np.float32(0.5)), jnp.ones((2, 4, 3)))):
    variables = module.init(jax.random.key(0), x)
    path = tmp_path / type(module).__name__
    save_model(path, module, variables)
    loaded, loaded_variables = load_saved(path)
    assert loaded == module and type(loaded.features) is int
    np.testing.assert_array_equal(loaded.apply(loaded_variables, x), module.apply(variables, x))
