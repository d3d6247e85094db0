"""The benchmark harness: every family, every contender, side by side; JSON rows and a report.

For each (model, mode) the harness starts one worker process per contender
(`benchmarks.worker`), one after the other, so each compiles alone and its
compile time and peak RSS are its own. Then it interleaves timed blocks
round-robin (rotating who goes first), so machine drift hits all contenders
alike, until every contender has enough synchronised steps for a stable
median, or the time cap is reached. The figure quoted is the median step
time as items/s, with the interquartile range as its spread.

The `jaxcomponents-pip` contenders run in a virtualenv made by `pip install .`
of this checkout (`build_pip_venv`, `benchmarks/.venv-pip`, rebuilt when the
installable files change), importing the installed package, with a fresh
`JAXCOMPONENTS_HOME`: what a user of a plain `pip install` gets.

Run it as `jaxcomponents bench` (or `make bench-quick` / `make bench`);
`python -m benchmarks.harness --help` lists the options.

Example:
  >>> settings = Settings(size="tiny", models=("dense",), frameworks=("jaxcomponents", "keras-jax"))
  >>> settings.method.min_rounds
  2
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import pathlib
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from benchmarks import families, machine

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PIP_VENV = ROOT / "benchmarks" / ".venv-pip"
ROW_KEYS = ("model", "framework", "mode", "batch", "items_per_s", "compile_s", "peak_rss_mb", "device")


@dataclasses.dataclass(frozen=True)
class Method:
  """How long and how often to time.

  Attributes:
    warmup_steps: steps run after the first (compiling) call and before timing.
    block_s: length of one timed block; a block has at least one step.
    min_rounds: round-robin rounds before the stopping rule is looked at.
    max_rounds: rounds after which timing stops, stable or not.
    min_steps: timed steps every contender needs before timing may stop.
    target_spread: timing stops once every contender's interquartile range is
      below this fraction of its median step time.
    max_timed_s: timing of one (model, mode) stops after this many seconds
      once `min_steps` are in, and unconditionally after twice as long.
  """

  warmup_steps: int
  block_s: float
  min_rounds: int
  max_rounds: int
  min_steps: int
  target_spread: float
  max_timed_s: float


METHODS = {
    "tiny": Method(warmup_steps=1, block_s=0.05, min_rounds=2, max_rounds=2, min_steps=3, target_spread=1.0,
                   max_timed_s=5.0),
    "quick": Method(warmup_steps=2, block_s=0.4, min_rounds=3, max_rounds=8, min_steps=5, target_spread=0.1,
                    max_timed_s=20.0),
    "full": Method(warmup_steps=5, block_s=2.0, min_rounds=5, max_rounds=25, min_steps=30, target_spread=0.05,
                   max_timed_s=240.0),
}


@dataclasses.dataclass(frozen=True)
class Settings:
  """One benchmark run.

  Attributes:
    size: `tiny`, `quick` or `full` (the family sizes and the timing method).
    models: family names; None for every family of `group`.
    group: `main` (the model families), `matrix` (the configurations users set) or `unet_zoo`
      (keras-unet-collection's models).
    frameworks: contenders to run where they exist (`families.FRAMEWORKS`).
    modes: `train` and/or `infer`.
    dtype: `float32` or `mixed_bfloat16` (bfloat16 compute, float32 variables).
    out: the JSON rows file; None for `results/quick.json` (tiny: `tiny.json`), or `results/<device>.json` (full).
    tf_python: interpreter for `keras-tf` workers (one with TensorFlow and Keras); None for this one.
    flops: read FLOPs from the compiled cost analysis (None: only on an accelerator).
    flops_frameworks: the contenders asked for FLOPs (None: all). A jaxcomponents worker answers from its
      step's compiled executable, which JAX has cached; a Keras worker compiles its train step once more.
    report: write the markdown report and the chart next to the JSON.
    timeout_s: longest wait for any one answer of a worker (compilation included).
    seed: seeds the synthetic data and the initialisations.
    log: print progress to stderr.
    command: the command line to record in the report (None: rebuilt from these settings).
  """

  size: str = "quick"
  models: tuple[str, ...] | None = None
  group: str = "main"
  frameworks: tuple[str, ...] = families.DEFAULT_FRAMEWORKS
  modes: tuple[str, ...] = families.MODES
  dtype: str = "float32"
  out: str | None = None
  tf_python: str | None = None
  flops: bool | None = None
  flops_frameworks: tuple[str, ...] | None = None
  report: bool = True
  timeout_s: float = 1800.0
  seed: int = 0
  log: bool = True
  command: str | None = None

  @property
  def method(self) -> Method:
    return METHODS[self.size]


class WorkerError(RuntimeError):
  """A worker died, timed out or reported an error."""


class Worker:
  """One contender's process and its line-based JSON channel."""

  def __init__(self, spec: dict, python: Sequence[str], env: dict[str, str], log_path: pathlib.Path,
               timeout_s: float, cwd: pathlib.Path = ROOT):
    self.spec, self.log_path, self.timeout_s = spec, log_path, timeout_s
    self.log = open(log_path, "w", encoding="utf-8")  # pylint: disable=consider-using-with
    self.process = subprocess.Popen(  # pylint: disable=consider-using-with
        [*python, "-m", "benchmarks.worker", json.dumps(spec)], cwd=cwd, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)

  def read(self) -> dict:
    """The next answer; WorkerError on an error answer, death or timeout."""
    ready, _, _ = select.select([self.process.stdout], [], [], self.timeout_s)
    if not ready:
      self.close()
      raise WorkerError(f"no answer within {self.timeout_s:.0f} s")
    line = self.process.stdout.readline()
    if not line:
      self.process.wait(timeout=30)
      raise WorkerError(f"worker exited with status {self.process.returncode}: {self.log_tail()}")
    answer = json.loads(line)
    if "error" in answer:
      raise WorkerError(f"{answer['error']} ({self.log_tail()})")
    return answer

  def ask(self, command: dict) -> dict:
    self.process.stdin.write(json.dumps(command) + "\n")
    self.process.stdin.flush()
    return self.read()

  def log_tail(self, lines: int = 3) -> str:
    self.log.flush()
    text = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return " | ".join(line.strip() for line in text[-lines:]) or "no output"

  def close(self) -> None:
    if self.process.poll() is None:
      self.process.kill()
      self.process.wait(timeout=30)
    for stream in (self.process.stdin, self.process.stdout):
      if stream and not stream.closed:
        try:
          stream.close()
        except OSError:
          pass
    self.log.close()


def _worker_env(framework: str) -> dict[str, str]:
  # Every contender starts from the user's environment; jaxcomponents-tuned's worker tunes its own process.
  env = dict(os.environ)
  env["KERAS_BACKEND"] = "tensorflow" if framework == "keras-tf" else "jax"
  env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
  # Two contenders live side by side: neither may grab the whole accelerator.
  env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  return env


def installable_hash(root: pathlib.Path = ROOT) -> str:
  """SHA-256 of what `pip install` reads from the checkout: `pyproject.toml`, `setup.py` when present and every
  file under `jaxcomponents/` (caches left out), with the Python version the virtualenv is made with."""
  digest = hashlib.sha256(sys.version.encode())
  package = sorted(path for path in (root / "jaxcomponents").rglob("*")
                   if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc")
  for path in [root / "pyproject.toml", root / "setup.py", *package]:
    if path.is_file():
      content = hashlib.sha256(path.read_bytes()).hexdigest()
      digest.update(f"{path.relative_to(root).as_posix()}\0{content}\n".encode())
  return digest.hexdigest()


def _pip_env() -> dict[str, str]:
  """The user's environment without what would point an interpreter at the checkout or at the harness's virtualenv."""
  return {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def build_pip_venv(venv: pathlib.Path = PIP_VENV, root: pathlib.Path = ROOT, log_path: pathlib.Path | None = None,
                   timeout_s: float = 1800.0) -> dict:
  """The virtualenv of the `-pip` contenders: `python -m venv` with this interpreter, pip upgraded, `pip install
  <root>` (no extras, not editable); reused while `installable_hash` is unchanged, made afresh otherwise.

  Returns `{"python", "action" ("built" or "reused"), "seconds", "versions"}` (`versions`: the virtualenv's own).

  Raises:
    RuntimeError: a step failed (its command and the end of its output in the message) or ran past `timeout_s`.
  """
  start = time.perf_counter()
  key = installable_hash(root)
  python = venv / "bin" / "python"
  stamp = venv / "jaxcomponents-installable.sha256"
  action = "reused"
  env = _pip_env()
  with tempfile.TemporaryDirectory(prefix="jaxcomponents-pip-") as outside:
    if not (python.exists() and stamp.exists() and stamp.read_text(encoding="utf-8").strip() == key):
      action = "built"
      if venv.exists():
        shutil.rmtree(venv)
      steps = [("python -m venv", [sys.executable, "-m", "venv", str(venv)]),
               ("pip install --upgrade pip", [str(python), "-P", "-m", "pip", "install", "--upgrade", "pip"]),
               ("pip install .", [str(python), "-P", "-m", "pip", "install", str(root)])]
      for name, command in steps:
        _run_step(name, command, env, outside, log_path, timeout_s)
      stamp.write_text(key + "\n", encoding="utf-8")
    try:
      versions = machine.versions_of(str(python), env, cwd=outside)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
      raise RuntimeError(f"the virtualenv's Python does not start: {error}") from error
  if "jaxcomponents" not in versions:
    raise RuntimeError("jaxcomponents is not installed in the virtualenv after `pip install .`")
  return {"python": str(python), "action": action, "seconds": round(time.perf_counter() - start, 1),
          "versions": versions}


def _run_step(name: str, command: list[str], env: dict[str, str], cwd: str, log_path: pathlib.Path | None,
              timeout_s: float) -> None:
  """Runs one step of `build_pip_venv` outside the checkout, its output appended to `log_path`."""
  try:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s,
                            check=False)
  except subprocess.TimeoutExpired as error:
    raise RuntimeError(f"`{name}` ran past {timeout_s:.0f} s") from error
  if log_path is not None:
    with open(log_path, "a", encoding="utf-8") as log:
      log.write(f"$ {name}\n{result.stdout}{result.stderr}\n")
  if result.returncode:
    tail = " | ".join(line.strip() for line in (result.stderr or result.stdout).strip().splitlines()[-3:])
    tail = tail.replace(cwd, "<tmp>")
    raise RuntimeError(f"`{name}` exited with status {result.returncode}: {tail or 'no output'}")


def step_stats(times: Sequence[float], batch: int) -> dict[str, float]:
  """Median step time, its quartiles and extremes, and the items/s they mean."""
  t = np.asarray(times, dtype=np.float64)
  p25, median, p75 = (float(v) for v in np.percentile(t, [25, 50, 75]))
  return {
      "steps": int(t.size), "median_step_s": median, "p25_step_s": p25, "p75_step_s": p75,
      "min_step_s": float(t.min()), "max_step_s": float(t.max()),
      "items_per_s": batch / median, "items_per_s_p25": batch / p75, "items_per_s_p75": batch / p25,
      "spread": (p75 - p25) / median,
  }


def _stable(times: Sequence[float], target: float) -> bool:
  p25, median, p75 = np.percentile(np.asarray(times), [25, 50, 75])
  return (p75 - p25) / median <= target


class Harness:
  """Runs the plan of one `Settings` and collects rows, details, skips and failures."""

  def __init__(self, settings: Settings):
    if settings.size not in families.SIZES:
      raise ValueError(f"size={settings.size!r} is not allowed; expected one of {families.SIZES}.")
    for framework in settings.frameworks:
      if framework not in families.FRAMEWORKS:
        raise ValueError(f"framework={framework!r} is not allowed; expected one of {families.FRAMEWORKS}.")
    for mode in settings.modes:
      if mode not in families.MODES:
        raise ValueError(f"mode={mode!r} is not allowed; expected one of {families.MODES}.")
    self.settings = settings
    if settings.group not in families.GROUPS:
      raise ValueError(f"group={settings.group!r} is not allowed; expected one of {families.GROUPS}.")
    self.names = list(settings.models or families.names(settings.group))
    for name in self.names:
      families.get(name)
    self.rows: list[dict] = []
    self.details: list[dict] = []
    self.skipped: list[dict] = []
    self.failed: list[dict] = []
    self.tf_python = settings.tf_python or default_tf_python()
    self.logs = pathlib.Path(tempfile.mkdtemp(prefix="jaxcomponents-bench-"))
    self.pip_python: str | None = None  # the `-pip` contenders' interpreter, once `build_pip_venv` made it

  def say(self, message: str) -> None:
    if self.settings.log:
      print(message, file=sys.stderr, flush=True)

  def run(self, device: dict | None = None) -> dict:
    """Runs everything; returns `{"rows": [...], "meta": {...}}`.

    `device` is `machine.probe_jax_device`'s answer when the caller already has it (None: probe now).
    """
    s = self.settings
    started = time.perf_counter()
    device = device or machine.probe_jax_device(_worker_env("jaxcomponents"))
    self.device = "cpu" if device["platform"] == "cpu" else machine.slug(device["kind"])
    tf_python = self.tf_python
    tf_version = machine.tensorflow_version(tf_python) if "keras-tf" in s.frameworks else None
    flops = s.flops if s.flops is not None else device["platform"] != "cpu"
    tf_missing = None
    if "keras-tf" in s.frameworks and tf_version is None:
      tf_missing = (f"TensorFlow is not importable by {_shown(tf_python)} (optional: `make tf-venv`, or pass "
                    "--tf-python)")
      self.say(f"keras-tf: {tf_missing}")
    self.say(f"jaxcomponents bench: size={s.size} device={self.device} models={len(self.names)} "
             f"worker logs in {self.logs}")
    pip_venv, pip_failed = self._pip_venv() if any(fw in families.PIP for fw in s.frameworks) else (None, None)
    for name in self.names:
      family = families.get(name)
      contenders = []
      for framework in s.frameworks:
        reason = family.skip_reason(framework)
        if reason is not None:
          self.skipped.append({"model": name, "framework": framework, "reason": reason})
        elif not (framework == "keras-tf" and tf_missing) and not (framework in families.PIP and pip_failed):
          contenders.append(framework)
      if not contenders:
        continue
      for mode in s.modes:
        self._measure(family, mode, contenders, flops)
    versions = machine.versions()
    if tf_version:
      versions["tensorflow"] = tf_version + ("" if tf_python == sys.executable else f" ({_shown(tf_python)})")
    meta = {
        "size": s.size, "group": s.group, "dtype": s.dtype, "device": self.device, "frameworks": list(s.frameworks),
        "modes": list(s.modes), "tensorflow_missing": tf_missing, "pip_failed": pip_failed,
        "installs": installs(s.frameworks, pip_venv),
        "command": s.command or command_line(s),
        "machine": machine.describe(str(ROOT), device), "versions": versions,
        "method": dataclasses.asdict(s.method),
        "families": {name: {"summary": families.get(name).summary,
                            "size": families.get(name).sizes[s.size].describe(),
                            "batch": families.get(name).sizes[s.size].batch,
                            "dtype": families.get(name).dtype or s.dtype} for name in self.names},
        "details": self.details, "skipped": self.skipped, "failed": self.failed,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    self.say(f"done in {meta['wall_s'] / 60:.1f} min: {len(self.rows)} rows, {len(self.failed)} failed")
    return {"rows": self.rows, "meta": meta}

  def _pip_venv(self) -> tuple[dict | None, str | None]:
    """Builds or reuses the `-pip` contenders' virtualenv; (what `build_pip_venv` answered, None) or (None, why not)."""
    self.say(f"jaxcomponents-pip: `pip install .` into {PIP_VENV.relative_to(ROOT)} (reused when the installable "
             "files are unchanged; the first build takes minutes)")
    try:
      venv = build_pip_venv(log_path=self.logs / "pip-venv.log", timeout_s=self.settings.timeout_s)
    except (RuntimeError, OSError) as error:
      reason = f"could not make the virtualenv: {error}".replace(str(ROOT), "<checkout>")
      self.say(f"jaxcomponents-pip: {reason} (log: {self.logs / 'pip-venv.log'})")
      return None, reason[:800]
    self.pip_python = venv["python"]
    what = "reused, the installable files unchanged" if venv["action"] == "reused" else "built"
    self.say(f"jaxcomponents-pip: {what} in {venv['seconds']:.1f} s: "
             + ", ".join(f"{name} {version}" for name, version in venv["versions"].items()))
    return {key: venv[key] for key in ("action", "seconds", "versions")}, None

  def worker_launch(self, framework: str, label: str) -> tuple[list[str], pathlib.Path, dict[str, str]]:
    """How a worker of `framework` starts: its interpreter and flags, its working folder and its environment.

    A `-pip` worker imports jaxcomponents from its virtualenv, never from the checkout: `python -P` (no working
    folder on the path) outside the checkout, with only a folder linking to `benchmarks/` on `PYTHONPATH`, and a
    fresh empty `JAXCOMPONENTS_HOME` of its own (`label` names it), so no earlier native build is found.
    """
    env = _worker_env(framework)
    if framework not in families.PIP:
      return [self.tf_python if framework == "keras-tf" else sys.executable], ROOT, env
    if self.pip_python is None:
      raise RuntimeError("the virtualenv of the -pip contenders is not built")
    path = self.logs / "pip-path"
    if not path.exists():
      path.mkdir()
      (path / "benchmarks").symlink_to(ROOT / "benchmarks", target_is_directory=True)
    env["PYTHONPATH"] = str(path)
    env["JAXCOMPONENTS_HOME"] = tempfile.mkdtemp(prefix=f"home-{label}-", dir=self.logs)
    env.pop("VIRTUAL_ENV", None)
    return [self.pip_python, "-P"], self.logs, env

  def _measure(self, family: families.Family, mode: str, contenders: list[str], flops: bool) -> None:
    workers: dict[str, Worker] = {}
    try:
      self._measure_with(workers, family, mode, contenders, flops)
    finally:
      for worker in workers.values():
        worker.close()

  def _measure_with(self, workers: dict, family: families.Family, mode: str, contenders: list[str],
                    flops: bool) -> None:
    s, method = self.settings, self.settings.method
    size = family.sizes[s.size]
    ready: dict[str, dict] = {}
    for framework in contenders:
      spec = {"model": family.name, "framework": framework, "mode": mode, "size": s.size,
              "dtype": family.dtype or s.dtype,
              "seed": s.seed, "warmup_steps": method.warmup_steps}
      label = f"{family.name}-{framework}-{mode}"
      python, cwd, env = self.worker_launch(framework, label)
      worker = Worker(spec, python, env, self.logs / f"{label}.log", s.timeout_s, cwd=cwd)
      try:
        ready[framework] = worker.read()
        workers[framework] = worker
      except WorkerError as error:
        worker.close()
        self._fail(family.name, framework, mode, error)
    times: dict[str, list[float]] = {framework: [] for framework in workers}
    start, rounds = time.perf_counter(), 0
    while workers:
      order = list(workers)
      order = order[rounds % len(order):] + order[:rounds % len(order)]
      for framework in order:
        try:
          times[framework] += workers[framework].ask(
              {"cmd": "run", "seconds": method.block_s, "min_steps": 1})["times"]
        except WorkerError as error:
          workers.pop(framework).close()
          times.pop(framework)
          self._fail(family.name, framework, mode, error)
      rounds += 1
      elapsed = time.perf_counter() - start
      enough = all(len(t) >= method.min_steps for t in times.values())
      stable = all(_stable(t, method.target_spread) for t in times.values())
      if rounds >= method.min_rounds and enough and (stable or rounds >= method.max_rounds
                                                     or elapsed >= method.max_timed_s):
        break
      if elapsed >= 2 * method.max_timed_s:
        break
    summary = []
    for framework, worker in workers.items():
      try:
        final = worker.ask({"cmd": "finish", "flops": flops and (s.flops_frameworks is None
                                                                  or framework in s.flops_frameworks)})
      except WorkerError as error:
        worker.close()
        self._fail(family.name, framework, mode, error)
        continue
      worker.close()
      stats = step_stats(times[framework], size.batch)
      row = {"model": family.name, "framework": framework, "mode": mode, "batch": size.batch,
             "items_per_s": round(stats["items_per_s"], 2), "compile_s": round(ready[framework]["compile_s"], 3),
             "peak_rss_mb": round(final["peak_rss_mb"], 1), "device": ready[framework]["device"]}
      self.rows.append(row)
      detail = {key: row[key] for key in ("model", "framework", "mode", "batch")}
      detail.update({key: value for key, value in stats.items() if key != "items_per_s"})
      detail.update({"rounds": rounds, "setup_s": round(ready[framework]["setup_s"], 3),
                     "flops_per_step": final["flops"], "peak_device_mb": final["peak_device_mb"]})
      if ready[framework].get("cpu"):
        detail["jaxcomponents_cpu"] = ready[framework]["cpu"]
      if ready[framework].get("install"):
        detail["jaxcomponents_install"] = ready[framework]["install"]
      self.details.append(detail)
      summary.append(f"{framework} {stats['items_per_s']:,.1f}/s (±{100 * stats['spread'] / 2:.0f}%, "
                     f"compile {row['compile_s']:.1f} s)")
    self.say(f"  {family.name} {mode} batch {size.batch}: " + ("; ".join(summary) or "no result"))

  def _fail(self, model: str, framework: str, mode: str, error: Exception) -> None:
    self.failed.append({"model": model, "framework": framework, "mode": mode, "error": str(error)[:800]})
    self.say(f"  {model} {framework} {mode}: FAILED {str(error)[:300]}")


def installs(frameworks: Sequence[str], pip_venv: dict | None) -> dict[str, str]:
  """How each jaxcomponents contender of `frameworks` was installed, for the report (each worker adds where it
  imported jaxcomponents from and its native library's status)."""
  found = {}
  for framework in frameworks:
    if framework in families.PIP:
      venv = "" if pip_venv is None else (
          f" ({'reused' if pip_venv['action'] == 'reused' else 'built in ' + str(pip_venv['seconds']) + ' s'}: "
          + ", ".join(f"{name} {pip_venv['versions'][name]}" for name in ("jaxcomponents", "jax", "jaxlib", "flax")
                      if name in pip_venv["versions"]) + ")")
      found[framework] = f"`pip install .` in a fresh virtualenv{venv}, fresh JAXCOMPONENTS_HOME"
    elif framework in families.JAXCOMPONENTS:
      found[framework] = "this checkout (first on PYTHONPATH) in the harness's own Python"
  return found


def default_tf_python() -> str:
  """The interpreter for keras-tf workers: `$JAXCOMPONENTS_TF_PYTHON`, else `.venv-tf` (`make tf-venv`), else this one."""
  tf_venv = ROOT / ".venv-tf" / "bin" / "python"
  return os.environ.get("JAXCOMPONENTS_TF_PYTHON") or (str(tf_venv) if tf_venv.exists() else sys.executable)


def _shown(python: str) -> str:
  """An interpreter path as the report shows it: relative to the checkout when inside it."""
  path = pathlib.Path(python)
  return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else "a separate interpreter"


def command_line(settings: Settings) -> str:
  """The `jaxcomponents bench` command that reproduces `settings`."""
  parts = ["jaxcomponents", "bench", "--size", settings.size]
  if settings.group != "main":
    parts.append(f"--{settings.group.replace('_', '-')}")
  if settings.models:
    parts += ["--models", ",".join(settings.models)]
  if tuple(settings.frameworks) != families.DEFAULT_FRAMEWORKS:
    parts += ["--frameworks", ",".join(settings.frameworks)]
  if tuple(settings.modes) != families.MODES:
    parts += ["--modes", ",".join(settings.modes)]
  if settings.dtype != "float32":
    parts += ["--dtype", settings.dtype]
  if settings.out:
    parts += ["--out", settings.out]
  return " ".join(parts)


def default_out(settings: Settings, device: str) -> pathlib.Path:
  """`results/quick.json` (`tiny.json`) for the small presets, `results/<device>.json` for the full run;
  the matrix adds `matrix-` in front."""
  if settings.out:
    return pathlib.Path(settings.out)
  prefix = "" if settings.group == "main" else f"{settings.group}-"
  return RESULTS / (prefix + (f"{device}.json" if settings.size == "full" else f"{settings.size}.json"))


def write(result: dict, out: pathlib.Path, report: bool = True) -> list[pathlib.Path]:
  """Writes the rows (`out`), the details (`<stem>.meta.json`) and optionally the report and chart."""
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(result["rows"], indent=1) + "\n", encoding="utf-8")
  meta_path = out.with_name(out.stem + ".meta.json")
  meta_path.write_text(json.dumps(result["meta"], indent=1) + "\n", encoding="utf-8")
  written = [out, meta_path]
  if report:
    from benchmarks import report as report_lib
    written += report_lib.write_report(result["rows"], result["meta"], out.with_suffix(".md"),
                                       out.with_suffix(".png"))
  return written


def run(settings: Settings) -> dict:
  """Runs the benchmark and writes its files; returns the rows and meta, plus the paths written."""
  harness = Harness(settings)
  result = harness.run()
  out = default_out(settings, harness.device)
  result["meta"]["rows_file"] = out.name
  result["written"] = [str(p) for p in write(result, out, settings.report)]
  return result


def _csv(value: str) -> tuple[str, ...]:
  return tuple(v.strip() for v in value.split(",") if v.strip())


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="jaxcomponents bench",
      description="Benchmark jaxcomponents against Keras (JAX and TensorFlow backends) and plain Flax.")
  p.add_argument("--size", choices=families.SIZES, default="quick",
                 help="family sizes and timing method (default: quick)")
  p.add_argument("--models", type=_csv, default=None,
                 help="comma-separated families (default: every family of the group): "
                      f"{', '.join(families.FAMILIES)}")
  p.add_argument("--matrix", action="store_const", const="matrix", dest="group", default="main",
                 help="the matrix of configurations users set on the components (dropout, batch norm, pooling, "
                      "strides, padding, dilation, every convolution kind in 1-3 D, bfloat16, batch sizes)")
  p.add_argument("--unet-zoo", action="store_const", const="unet_zoo", dest="group",
                 help="keras-unet-collection's models against kuc's own Keras models (kuc needs tf.keras: "
                      "--tf-python .venv-kuc/bin/python)")
  p.add_argument("--frameworks", type=_csv, default=families.DEFAULT_FRAMEWORKS,
                 help=f"comma-separated contenders of {','.join(families.FRAMEWORKS)} (default: "
                      f"{','.join(families.DEFAULT_FRAMEWORKS)}; the -pip ones run in a virtualenv made by "
                      "`pip install .`, benchmarks/.venv-pip)")
  p.add_argument("--modes", type=_csv, default=families.MODES, help="train,infer (default: both)")
  p.add_argument("--dtype", choices=("float32", "mixed_bfloat16"), default="float32")
  p.add_argument("--out", default=None,
                 help="rows JSON (default: benchmarks/results/quick.json, or <device>.json for --size full)")
  p.add_argument("--tf-python", default=None,
                 help="Python with TensorFlow + Keras for the keras-tf contender (default: $JAXCOMPONENTS_TF_PYTHON, "
                      "else .venv-tf from `make tf-venv`, else this Python)")
  p.add_argument("--flops", action=argparse.BooleanOptionalAction, default=None,
                 help="FLOPs from the compiled cost analysis (default: on an accelerator only)")
  p.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                 help="write the markdown report and the bar chart (default: yes)")
  p.add_argument("--report-only", metavar="ROWS_JSON", default=None,
                 help="only rebuild the report and chart from an existing rows JSON and its .meta.json")
  p.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for any one worker answer")
  p.add_argument("--seed", type=int, default=0)
  return p


def main(argv: Sequence[str] | None = None) -> int:
  args = parser().parse_args(argv)
  if args.report_only:
    from benchmarks import report as report_lib
    rows_path = pathlib.Path(args.report_only)
    rows = json.loads(rows_path.read_text(encoding="utf-8"))
    meta = json.loads(rows_path.with_name(rows_path.stem + ".meta.json").read_text(encoding="utf-8"))
    for path in report_lib.write_report(rows, meta, rows_path.with_suffix(".md"), rows_path.with_suffix(".png")):
      print(path)
    return 0
  settings = Settings(size=args.size, models=args.models, group=args.group, frameworks=args.frameworks,
                      modes=args.modes, dtype=args.dtype, out=args.out, tf_python=args.tf_python, flops=args.flops,
                      report=args.report, timeout_s=args.timeout, seed=args.seed,
                      command=" ".join(["jaxcomponents", "bench", *(argv if argv is not None else sys.argv[1:])]))
  try:
    result = run(settings)
  except ValueError as error:
    print(f"jaxcomponents bench: {error}", file=sys.stderr)
    return 2
  for path in result["written"]:
    print(path)
  return 1 if result["meta"]["failed"] or result["meta"]["pip_failed"] else 0


if __name__ == "__main__":
  sys.exit(main())
