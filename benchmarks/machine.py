"""What a benchmark ran on: machine, accelerator, package versions, relevant settings, commit."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata

PACKAGES = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "flax", "optax", "keras", "numpy")
ENV_KEYS = ("XLA_FLAGS", "JAX_PLATFORMS", "JAX_CPU_ENABLE_ASYNC_DISPATCH", "TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS",
            "CUDA_VISIBLE_DEVICES")

_PROBE = """
import json, jax
d = jax.devices()
print(json.dumps({"platform": d[0].platform, "kind": d[0].device_kind, "count": len(d)}))
"""

_VERSIONS_PROBE = """
import json, platform, sys
from importlib import metadata
found = {"python": platform.python_version()}
for name in sys.argv[1:]:
  try:
    found[name] = metadata.version(name)
  except metadata.PackageNotFoundError:
    pass
print(json.dumps(found))
"""

_TF_PROBE = """
import json, importlib.util
spec = importlib.util.find_spec("tensorflow")
out = {"tensorflow": None}
if spec is not None:
  from importlib import metadata
  for name in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
    try:
      out["tensorflow"] = metadata.version(name)
      break
    except metadata.PackageNotFoundError:
      pass
  out["tensorflow"] = out["tensorflow"] or "unknown version"
print(json.dumps(out))
"""


def slug(text: str) -> str:
  """A file-name-safe device name: `NVIDIA H100 80GB HBM3` -> `nvidia-h100-80gb-hbm3`."""
  return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _run_json(python: str, code: str, env: dict[str, str] | None = None, args: Sequence[str] = (),
              flags: Sequence[str] = (), cwd: str | None = None) -> dict:
  result = subprocess.run([python, *flags, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300, check=False)
  if result.returncode:
    raise RuntimeError(f"{python} -c <probe> failed: {result.stderr.strip()[-500:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def probe_jax_device(env: dict[str, str]) -> dict:
  """JAX's default device in a fresh process (the harness itself never touches the accelerator)."""
  return _run_json(sys.executable, _PROBE, env)


def tensorflow_version(python: str) -> str | None:
  """TensorFlow's version in interpreter `python`, or None when it is not installed there."""
  try:
    return _run_json(python, _TF_PROBE)["tensorflow"]
  except (RuntimeError, OSError, subprocess.TimeoutExpired):
    return None


def versions_of(python: str, env: dict[str, str] | None = None, cwd: str | None = None) -> dict[str, str]:
  """`versions()` as interpreter `python` sees them, jaxcomponents' included, from its installed packages only
  (`-P`: neither `cwd` nor a script's folder is on its path)."""
  return _run_json(python, _VERSIONS_PROBE, env, args=("jaxcomponents", *PACKAGES), flags=("-P",), cwd=cwd)


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
  try:
    with open("/proc/meminfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("MemTotal"):
          return round(int(line.split()[1]) / 2**20, 1)
  except OSError:
    pass
  return None


def _git(root: str, *args: str) -> str | None:
  try:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30, check=False)
  except OSError:
    return None
  return result.stdout.strip() if result.returncode == 0 else None


def versions() -> dict[str, str]:
  """Installed versions of the packages that matter here (absent ones are left out)."""
  found = {"python": platform.python_version()}
  for name in PACKAGES:
    try:
      found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      pass
  return found


def describe(root: str, device: dict) -> dict:
  """The machine record stored with every result file."""
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:
    cores = os.cpu_count()
  commit = _git(root, "rev-parse", "--short", "HEAD")
  dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
  return {
      "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "os": platform.platform(),
      "cpu": _cpu_model(),
      "cpu_cores": cores,
      "memory_gb": _memory_gb(),
      "accelerator": None if device["platform"] == "cpu" else f"{device['count']} x {device['kind']}",
      "jax_platform": device["platform"],
      "commit": None if commit is None else commit + ("+dirty" if dirty else ""),
      "env": _settings(),
  }


def _settings() -> dict[str, str]:
  """The user's settings that change speed, and jaxcomponents' native library (each worker records its tuning)."""
  from jaxcomponents.ops import native, platform  # pylint: disable=import-outside-toplevel
  env = {key: os.environ[key] for key in ENV_KEYS if os.environ.get(key)}
  env.update({key: value for key, value in os.environ.items() if key.startswith("JAXCOMPONENTS_")})
  env["jaxcomponents CPU formulations"] = "on" if platform.enabled() else f"off ({platform.ENV})"
  env["jaxcomponents native library"] = native.load().reason
  return env
