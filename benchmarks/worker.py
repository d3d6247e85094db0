"""One contender in its own process: `python -m benchmarks.worker '<spec json>'`.

The harness starts one worker per (model, framework, mode), so compile time
and peak RSS belong to that contender alone. The worker builds the model,
times the first call (trace + compile + first run), runs the warm-up steps,
then answers JSON commands, one per line, on its original stdout (anything
the frameworks print is sent to stderr instead):

- `{"cmd": "run", "seconds": s, "min_steps": n}`: time synchronised steps
  until both `s` seconds and `n` steps are reached; answers `{"times": [...]}`.
- `{"cmd": "finish", "flops": bool}`: answers peak RSS, peak device memory
  and, when asked, the step's FLOPs from the compiled cost analysis, then exits.

Spec keys: model, framework, mode, size, dtype, seed, warmup_steps.

The tuned contenders (`jaxcomponents-tuned`, `jaxcomponents-pip-tuned`) call
`jaxcomponents.cpu.tune()` first, before anything starts JAX, as a script
would; every jaxcomponents contender answers `ready` with
`jaxcomponents.cpu.status()` and where the package was imported from
(`install_kind`): the `-pip` ones run in a virtualenv made by `pip install .`.
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import sys
import time
import traceback


def peak_rss_mb() -> float:
  """This process's peak resident set size in MiB."""
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def install_kind(module_file: str) -> str:
  """Where a package was imported from, without its path: `site-packages` (installed) or `source tree`.

  >>> install_kind("/venv/lib/python3.11/site-packages/jaxcomponents/__init__.py")
  'site-packages'
  >>> install_kind("/checkout/jaxcomponents/__init__.py")
  'source tree'
  """
  folder = pathlib.Path(module_file).parent.parent.name
  return "site-packages" if folder in ("site-packages", "dist-packages") else "source tree"


def main(argv: list[str]) -> int:
  spec = json.loads(argv[0])
  channel = os.fdopen(os.dup(1), "w", buffering=1)
  os.dup2(2, 1)

  def send(message: dict) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()

  try:
    from benchmarks import families  # no JAX: tune() below must come before anything starts it

    jaxcomponents_worker = spec["framework"] in families.JAXCOMPONENTS
    if jaxcomponents_worker:
      import jaxcomponents.cpu
      if spec["framework"] in families.TUNED:
        jaxcomponents.cpu.tune()
    from benchmarks.contenders import make_runner

    family = families.get(spec["model"])
    start = time.perf_counter()
    runner = make_runner(family, family.sizes[spec["size"]], spec["framework"], spec["mode"],
                         spec.get("dtype", "float32"), spec.get("seed", 0))
    setup_s = time.perf_counter() - start
    start = time.perf_counter()
    runner.step()
    compile_s = time.perf_counter() - start
    for _ in range(spec.get("warmup_steps", 2)):
      runner.step()
    send({"ready": True, "setup_s": setup_s, "compile_s": compile_s, "device": runner.device,
          "cpu": jaxcomponents.cpu.status() if jaxcomponents_worker else None,
          "install": install_kind(jaxcomponents.__file__) if jaxcomponents_worker else None})
  except Exception as error:  # pylint: disable=broad-except
    traceback.print_exc()
    send({"error": f"{type(error).__name__}: {error}"})
    return 1

  for line in sys.stdin:
    command = json.loads(line)
    try:
      if command["cmd"] == "run":
        times = []
        start = time.perf_counter()
        while len(times) < command.get("min_steps", 1) or time.perf_counter() - start < command["seconds"]:
          t0 = time.perf_counter()
          runner.step()
          times.append(time.perf_counter() - t0)
        send({"times": times})
      elif command["cmd"] == "finish":
        result = {"peak_rss_mb": peak_rss_mb(), "peak_device_mb": runner.peak_device_mb(), "flops": None}
        if command.get("flops"):
          result["flops"] = runner.flops()
        send(result)
        return 0
      else:
        send({"error": f"unknown command {command['cmd']!r}"})
    except Exception as error:  # pylint: disable=broad-except
      traceback.print_exc()
      send({"error": f"{type(error).__name__}: {error}"})
      return 1
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
