"""The `jaxcomponents` command.

Subcommands:
  bench: benchmark jaxcomponents against Keras and plain Flax
    (`jaxcomponents bench --help`); it runs the harness in the source
    checkout's `benchmarks/`, which is not part of the installed package.
  build-native: compile jaxcomponents' native CPU library (oneDNN
    convolutions) into the cache for the oneDNN and jaxlib installed now:
    only where the package's own build does not serve (a source tree
    edited after install). Without it everything works with XLA's operations.
  status: what is in effect: the CPU formulations, the native library, tuning.
  convert: a Keras model file to variables (.npz or an orbax checkpoint
    folder), or trained variables back into a Keras file.
  export: a Keras model file (optionally with trained variables) to
    StableHLO, ONNX or a TensorFlow SavedModel.
  summary: the layers, output shapes and parameter counts of a Keras model
    file as jaxcomponents computes it.

`convert` and `export` write beside their output and rename it into place
when complete; an existing output is replaced only with `--overwrite`, and
only when it is of the kind written (never a folder holding other things).
The library's expected errors (a bad argument, a missing or existing file, a
name Keras cannot find) print one line, `jaxcomponents <command>: error: ...`,
and exit with status 2, as argparse's errors do.

Example:
  jaxcomponents export model.keras --format onnx --output model.onnx --overwrite
  jaxcomponents export model.keras --format stablehlo --output model.stablehlo --platforms cpu,cuda,tpu
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import sys
from collections.abc import Sequence

from jaxcomponents import files


def _checkout_root() -> pathlib.Path | None:
  """The source checkout holding `benchmarks/harness.py`: this package's parent, else the working directory."""
  for root in (pathlib.Path(__file__).resolve().parent.parent, pathlib.Path.cwd()):
    if (root / "benchmarks" / "harness.py").is_file():
      return root
  return None


def bench(argv: Sequence[str]) -> int:
  """Runs `benchmarks.harness.main(argv)` from the source checkout."""
  root = _checkout_root()
  if root is None:
    print("jaxcomponents bench: benchmarks/ was not found; it lives in the source checkout "
          "(git clone, then `pip install -e .` or run from the clone).", file=sys.stderr)
    return 2
  if str(root) not in sys.path:
    sys.path.insert(0, str(root))
  from benchmarks import harness  # pylint: disable=import-outside-toplevel
  return harness.main(list(argv))


def build_native(argv: Sequence[str]) -> int:
  """Compiles the native library (`jaxcomponents.ops.native.build`) and reports what `load()` finds."""
  parser = argparse.ArgumentParser(prog="jaxcomponents build-native",
                                   description="Compile jaxcomponents' native CPU library (oneDNN convolutions) "
                                               "for the oneDNN and jaxlib installed now.")
  parser.add_argument("--cxx", default=None, help="the C++ compiler (default: $CXX, else c++ or g++)")
  args = parser.parse_args(argv)
  from jaxcomponents.ops import native  # pylint: disable=import-outside-toplevel
  try:
    path = native.build(args.cxx)
  except RuntimeError as error:
    print(f"jaxcomponents build-native: not built: {error}", file=sys.stderr)
    return 1
  status = native.load()
  print(f"built {path}: {status.reason}")
  return 0 if status.available else 1


def status(argv: Sequence[str]) -> int:
  """Prints `jaxcomponents.cpu.status()` as JSON."""
  parser = argparse.ArgumentParser(prog="jaxcomponents status",
                                   description="Show the CPU formulations, the native library and tuning in effect.")
  parser.parse_args(argv)
  from jaxcomponents import cpu  # pylint: disable=import-outside-toplevel
  print(json.dumps(cpu.status(), indent=1))
  return 0


class UsageError(Exception):
  """A bad command line or input file: reported in one line, exit status 2."""


def _keras_model(path: str):
  """(keras model, module, variables, sample input) of a Keras model file, via `weights.from_keras`."""
  # An entry point may choose Keras's backend; the library never does. Keras 3 runs on JAX without TensorFlow.
  os.environ.setdefault("KERAS_BACKEND", "jax")
  from jaxcomponents.keras.from_keras import from_keras, load_keras_model, sample_inputs  # pylint: disable=C0415
  try:
    model = load_keras_model(path)
  except TypeError as error:  # Keras: a class or function the file names is not registered
    raise UsageError(_unregistered(path, error)) from error
  module, variables = from_keras(model)
  return model, module, variables, sample_inputs(model)


def _unregistered(path: str, error: TypeError) -> str:
  """One line for Keras's TypeError on reading a file that names a class or function not registered."""
  found = re.search(r"Could not locate (class|function) '([^']+)'", str(error))
  if found is None:
    return f"{path} could not be read by Keras: {' '.join(str(error).split())[:500]}"
  import keras  # pylint: disable=import-outside-toplevel
  registered = sorted(keras.saving.get_custom_objects())
  return (f"{path} names the {found.group(1)} {found.group(2)!r}, which is not registered with Keras (registered: "
          f"{', '.join(registered) if registered else 'none'}); register it with "
          "@keras.saving.register_keras_serializable() in Python before loading the file, or use Keras's own "
          f"{'layers' if found.group(1) == 'class' else 'functions (activations, losses)'}.")


def _read_variables(path: str, module, sample):
  """Variables from an .npz file or an orbax checkpoint folder, checked against `module`."""
  from jaxcomponents.weights import load_npz  # pylint: disable=import-outside-toplevel
  if not pathlib.Path(path).exists():
    raise UsageError(f"variables {path!r} do not exist.")
  if not path.endswith(".npz") and not os.path.isdir(path):
    raise UsageError(f"variables {path!r} are not allowed; expected an .npz file or an orbax checkpoint folder.")
  if path.endswith(".npz"):
    return load_npz(path, module, tuple(sample))
  import jax  # pylint: disable=import-outside-toplevel

  from jaxcomponents.training.checkpoint import read_arrays  # pylint: disable=import-outside-toplevel
  from jaxcomponents.models.unet_backbone import weights_loaded_elsewhere  # pylint: disable=import-outside-toplevel
  with weights_loaded_elsewhere():  # shapes only
    return read_arrays(path, jax.eval_shape(lambda: module.init(jax.random.key(0), *sample)))


def _keras_file(path: str) -> bool:
  return path.endswith((".keras", ".h5", ".hdf5"))


_ORBAX_CHECKPOINT = files.folder_with("_CHECKPOINT_METADATA", "an orbax checkpoint",
                                      ("_METADATA", "_sharding", "d", "manifest.ocdbt", "ocdbt.process_*",
                                       "array_metadatas", "descriptor"))


def _variables_output_kind(output: str) -> files.Kind:
  """What `convert` writes for a Keras model INPUT, chosen by OUTPUT's suffix: an .npz file or an orbax folder."""
  if output.endswith(".npz"):
    return files.FILE
  if not os.path.splitext(output.rstrip("/" + os.sep))[1]:
    return _ORBAX_CHECKPOINT
  raise UsageError(f"output={output!r} is not allowed for a Keras model INPUT; expected a name ending in .npz (a "
                   "NumPy archive) or a folder name without a suffix (an orbax checkpoint).")


def _write_variables(output: str, variables, overwrite: bool) -> None:
  if output.endswith(".npz"):
    from jaxcomponents.weights import save_npz  # pylint: disable=import-outside-toplevel
    save_npz(output, variables, overwrite=overwrite)
    return
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

  def write(folder: str) -> None:
    with ocp.StandardCheckpointer() as checkpointer:
      checkpointer.save(folder, variables)

  files.write_beside(output, write, _ORBAX_CHECKPOINT, overwrite=overwrite)


def convert(argv: Sequence[str]) -> int:
  """Keras model file -> variables (.npz or orbax folder); variables -> Keras file (with `--architecture`)."""
  parser = argparse.ArgumentParser(
      prog="jaxcomponents convert",
      description="Convert a Keras model file (.keras or full-model .h5) into jaxcomponents variables (OUT ending "
                  "in .npz: a NumPy archive; a name without a suffix: an orbax checkpoint folder), or trained "
                  "variables (.npz or an orbax folder) back into Keras (OUT: .keras, .h5 or .weights.h5; needs "
                  "--architecture). OUT is written beside and renamed into place when complete.")
  parser.add_argument("input", help="a Keras model file, or variables (.npz / orbax checkpoint folder)")
  parser.add_argument("output", help="the file or folder to write")
  parser.add_argument("--architecture", help="the Keras model file whose architecture the variables belong to "
                                             "(when INPUT is variables)")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace an existing OUT of the kind written (never a folder holding other things)")
  args = parser.parse_args(argv)
  if _keras_file(args.input):
    kind = _variables_output_kind(args.output)
    files.check_target(args.output, kind, overwrite=args.overwrite)  # before reading the Keras file
    _, _, variables, _ = _keras_model(args.input)
    _write_variables(args.output, variables, args.overwrite)
    print(f"{args.input} -> {args.output}")
    return 0
  if not _keras_file(args.output):
    raise UsageError(f"output={args.output!r} is not allowed for variables; expected a .keras, .h5 or .weights.h5 "
                     f"file (or give a Keras model file as INPUT to convert it into variables).")
  if args.architecture is None:
    raise UsageError("--architecture is required to write variables into a Keras file: the Keras model file "
                     "(.keras or .h5) they belong to.")
  files.check_target(args.output, overwrite=args.overwrite)
  model, module, _, sample = _keras_model(args.architecture)
  from jaxcomponents.weights import to_keras  # pylint: disable=import-outside-toplevel
  to_keras(module, _read_variables(args.input, module, sample), model)
  save = model.save_weights if args.output.endswith(".weights.h5") else model.save
  files.write_beside(args.output, save, overwrite=args.overwrite)
  print(f"{args.input} -> {args.output}")
  return 0


_EXPORT_SUFFIXES = {".onnx": "onnx", ".stablehlo": "stablehlo"}


def export_command(argv: Sequence[str]) -> int:
  """A Keras model file (and optional trained variables) -> StableHLO, ONNX or SavedModel."""
  from jaxcomponents import export as exporting  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(
      prog="jaxcomponents export",
      description="Export a Keras model file, as jaxcomponents computes it, for serving.")
  parser.add_argument("model", help="a Keras model file (.keras or full-model .h5)")
  parser.add_argument("--format", required=True, choices=exporting.FORMATS, help="the serving format")
  parser.add_argument("--output", required=True, help="the file (stablehlo, onnx) or folder (saved_model) to write")
  parser.add_argument("--weights", help="trained variables (.npz or an orbax checkpoint folder) to export "
                                        "instead of the Keras file's weights")
  parser.add_argument("--batch", default="symbolic", choices=("symbolic", "fixed"),
                      help="a batch size chosen when called (symbolic) or the sample's (fixed)")
  parser.add_argument("--platforms", default=None,
                      help="stablehlo only: comma-separated platforms the file runs on "
                           f"({','.join(exporting.PLATFORMS)}; default: this machine's)")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace an existing export at --output (a file; for saved_model, a SavedModel folder)")
  args = parser.parse_args(argv)
  platforms = None if args.platforms is None else [p.strip() for p in args.platforms.split(",")]
  try:
    exporting.check_platforms(platforms, args.format)
  except ValueError as e:
    raise UsageError(f"--platforms {args.platforms}: {e}") from e
  suffix = os.path.splitext(args.output)[1]
  if _EXPORT_SUFFIXES.get(suffix, args.format) != args.format:
    raise UsageError(f"--output={args.output!r} is not allowed with --format {args.format}: {suffix} is the suffix "
                     f"of --format {_EXPORT_SUFFIXES[suffix]}.")
  files.check_target(args.output, exporting.SAVED_MODEL if args.format == "saved_model" else files.FILE,
                     overwrite=args.overwrite)  # before reading the Keras file
  _, module, variables, sample = _keras_model(args.model)
  if args.weights:
    variables = _read_variables(args.weights, module, sample)
  path = exporting.export(module, variables, tuple(sample) if len(sample) > 1 else sample[0], args.output,
                          format=args.format, batch=args.batch, platforms=platforms, overwrite=args.overwrite)
  print(f"{args.model} -> {path} ({args.format}{', ' + ', '.join(platforms) if platforms else ''})")
  return 0


def summary_command(argv: Sequence[str]) -> int:
  """Prints a Keras model file's summary as Keras's `model.summary()` does, computed by jaxcomponents."""
  parser = argparse.ArgumentParser(
      prog="jaxcomponents summary",
      description="Print a Keras model file's summary as Keras's model.summary() does (the model's name, each "
                  "Keras layer with its class, output shape and parameter count, the trainable and non-trainable "
                  "totals), as jaxcomponents computes the model.")
  parser.add_argument("model", help="a Keras model file (.keras or full-model .h5)")
  args = parser.parse_args(argv)
  _, module, _, sample = _keras_model(args.model)
  from jaxcomponents.summary import summary  # pylint: disable=import-outside-toplevel
  summary(module, tuple(sample) if len(sample) > 1 else sample[0])
  return 0


COMMANDS = {"bench": bench, "build-native": build_native, "status": status, "convert": convert,
            "export": export_command, "summary": summary_command}


def _version() -> str:
  from importlib import metadata  # pylint: disable=import-outside-toplevel
  try:
    return metadata.version("jaxcomponents")
  except metadata.PackageNotFoundError:
    return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
  """Parses `jaxcomponents <command> [args...]` and runs the command; returns the exit status."""
  parser = argparse.ArgumentParser(prog="jaxcomponents", description="The jaxcomponents command line.")
  parser.add_argument("--version", action="version", version=f"jaxcomponents {_version()}")
  parser.add_argument("command", choices=tuple(COMMANDS),
                      help="bench: benchmarks against Keras and plain Flax; build-native: rebuild the oneDNN "
                           "library; status: what is in effect; convert: Keras files <-> variables; export: "
                           "StableHLO, ONNX or SavedModel; summary: a Keras file's layers "
                           "(each: `jaxcomponents <command> --help`)")
  parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's own arguments")
  args = parser.parse_args(argv)
  try:
    return COMMANDS[args.command](args.args)
  except (UsageError, ValueError, OSError, ImportError) as error:  # the library's expected errors: no traceback
    message = " ".join(str(error).split()).replace("pass overwrite=True", "pass --overwrite")
    print(f"jaxcomponents {args.command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
