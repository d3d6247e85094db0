"""The `jaxcomponents` command.

Subcommands:
  bench: benchmark jaxcomponents against Keras and plain Flax
    (`jaxcomponents bench --help`); it runs the harness in the source
    checkout's `benchmarks/`, which is not part of the installed package.
"""

from __future__ import annotations

import argparse
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


def main(argv: Sequence[str] | None = None) -> int:
  """Parses `jaxcomponents <command> [args...]` and runs the command; returns the exit status."""
  parser = argparse.ArgumentParser(prog="jaxcomponents", description="The jaxcomponents command line.")
  parser.add_argument("command", choices=("bench",),
                      help="bench: benchmarks against Keras and plain Flax (see `jaxcomponents bench --help`)")
  parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's own arguments")
  args = parser.parse_args(argv)
  return bench(args.args)


if __name__ == "__main__":
  sys.exit(main())
