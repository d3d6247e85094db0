"""The `jaxcomponents` command.

Subcommands:
  bench: benchmark jaxcomponents against Keras and plain Flax
    (`jaxcomponents bench --help`); it runs the harness in the source
    checkout's `benchmarks/`, which is not part of the installed package.
  build-native: compile jaxcomponents' native CPU library (oneDNN
    convolutions) for the oneDNN and jaxlib installed now; `make install`
    runs it. Without it everything works with XLA's operations.
  status: what is in effect: the CPU formulations, the native library, tuning.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Sequence


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


COMMANDS = {"bench": bench, "build-native": build_native, "status": status}


def main(argv: Sequence[str] | None = None) -> int:
  """Parses `jaxcomponents <command> [args...]` and runs the command; returns the exit status."""
  parser = argparse.ArgumentParser(prog="jaxcomponents", description="The jaxcomponents command line.")
  parser.add_argument("command", choices=tuple(COMMANDS),
                      help="bench: benchmarks against Keras and plain Flax; build-native: compile the oneDNN "
                           "library; status: what is in effect (each: `jaxcomponents <command> --help`)")
  parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's own arguments")
  args = parser.parse_args(argv)
  return COMMANDS[args.command](args.args)


if __name__ == "__main__":
  sys.exit(main())
