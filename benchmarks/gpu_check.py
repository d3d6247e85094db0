"""The GPU check: Keras parity tests on the device, then training throughput against Keras on JAX.

`python -m benchmarks.gpu_check [--tiny] [--out-dir D] [--budget-s N] [--skip-parity]`

One script sized for one GPU and a few minutes:

1. The Keras parity tests (`pytest` on `PARITY_TESTS`) in a child process on
   the device (the test suite's CPU default is lifted), stopped at
   `--parity-s`; every test's outcome is logged as it comes (this module is
   also the pytest plugin that logs them), so a stopped run still counts.
2. Training throughput of ResNet50, MobileNetV2, U-Net and LSTM, jaxcomponents
   against Keras on JAX, in mixed bfloat16 and float32: one harness run
   (`benchmarks.harness`, the CPU harness's process layout: one worker per
   contender, round-robin timed blocks) per (family, data type) cell, with
   FLOPs per step from XLA's compiled cost analysis of jaxcomponents' step (the
   model's FLOPs, also used for Keras's row), model FLOPs utilisation against
   the device's dense peak for the data type (`report.PEAK_TFLOPS`; n/a on a
   CPU or an unknown device) and the peak device memory of each worker.
3. `<out-dir>/<device>.{json,md,png}` (`<device>-tiny.*` with `--tiny`),
   rewritten after every step, so an interrupted run leaves what it had.

`--budget-s` bounds the whole run: no cell starts once it is spent, nor when
the same family's other cell took longer than what is left; those cells are
written as not run, with the reason. A cell that has started runs to its end. `--tiny` runs
the families' smallest sizes and one parity test file's few cases: it runs on
the CPU in `make test` (tests/test_gpu_check.py).

Example:
  >>> round(mfu(flops_per_step=4e12, items_per_s=256.0, batch=128, peak=989.4), 4)  # 8 TFLOP/s of 989.4
  0.0081
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from benchmarks import families, harness, machine, report

ROOT = harness.ROOT
FAMILIES = ("resnet50", "mobilenet_v2", "unet", "lstm")
FRAMEWORKS = ("jaxcomponents", "keras-jax")
DTYPES = ("mixed_bfloat16", "float32")
DTYPE_ALIASES = {"bfloat16": "mixed_bfloat16", "bf16": "mixed_bfloat16", "mixed_bfloat16": "mixed_bfloat16",
                 "float32": "float32", "fp32": "float32"}
SHORT_DTYPE = {"mixed_bfloat16": "bf16", "float32": "fp32"}
# Most telling first: a run stopped at --parity-s has the layers and whole models before the long conv matrix.
PARITY_TESTS = ("tests/test_dense.py", "tests/test_recurrent.py", "tests/test_models.py", "tests/test_unet.py",
                "tests/test_conv.py")
TINY_PARITY_TESTS = ("tests/test_dense.py", "-k", "inference_matches_keras")
# Sized for a GPU: steps of milliseconds to a few tenths of a second; compilation dominates each cell.
GPU_METHOD = harness.Method(warmup_steps=3, block_s=0.5, min_rounds=3, max_rounds=8, min_steps=10,
                            target_spread=0.05, max_timed_s=10.0)
PARITY_LOG_ENV = "GPU_CHECK_PARITY_LOG"


@dataclasses.dataclass(frozen=True)
class CheckSettings(harness.Settings):
  """`harness.Settings` with the timing method given here rather than by the size preset."""

  timing: harness.Method | None = None

  @property
  def method(self) -> harness.Method:
    return self.timing or harness.METHODS[self.size]


class Interrupted(Exception):
  """SIGTERM arrived: stop, and write what there is."""


class Budget:
  """The run's time budget: what is left, and whether a cell may start."""

  def __init__(self, seconds: float, clock=time.monotonic):
    self.seconds, self.clock = seconds, clock
    self.start = clock()
    self.took: dict[tuple[str, str], float] = {}

  def elapsed(self) -> float:
    return self.clock() - self.start

  def left(self) -> float:
    return self.seconds - self.elapsed()

  def refusal(self, family: str) -> str | None:
    """Why a cell of `family` may not start now, or None when it may."""
    left = self.left()
    if left <= 0:
      return f"not run: the time budget of {self.seconds:.0f} s was spent (--budget-s)"
    same = [s for (name, _), s in self.took.items() if name == family]
    if same and max(same) > left:
      return (f"not run: {left:.0f} s of the {self.seconds:.0f} s budget left and this family's other cell took "
              f"{max(same):.0f} s (--budget-s)")
    return None

  def record(self, family: str, dtype: str, seconds: float) -> None:
    self.took[(family, dtype)] = seconds


def mfu(flops_per_step: float | None, items_per_s: float | None, batch: int, peak: float | None) -> float | None:
  """Model FLOPs utilisation: FLOPs per step x steps per second / the peak (TFLOP/s); None without a peak."""
  if not (flops_per_step and items_per_s and peak):
    return None
  return flops_per_step * items_per_s / batch / (peak * 1e12)


def log(budget: Budget, message: str) -> None:
  print(f"[gpu_check {budget.elapsed():6.0f}s] {message}", file=sys.stderr, flush=True)


# --- the pytest plugin (`-p benchmarks.gpu_check`): one JSON line per test outcome, as it comes ---------------

_SEEN_DEVICE = False


def _parity_log(entry: dict) -> None:
  path = os.environ.get(PARITY_LOG_ENV)
  if path:
    with open(path, "a", encoding="utf-8") as f:
      f.write(json.dumps(entry) + "\n")


def pytest_collection_finish(session) -> None:
  _parity_log({"collected": len(session.items)})


def pytest_runtest_logreport(report) -> None:  # pylint: disable=redefined-outer-name
  global _SEEN_DEVICE  # pylint: disable=global-statement
  if not _SEEN_DEVICE and "jax" in sys.modules:
    _SEEN_DEVICE = True
    device = sys.modules["jax"].devices()[0]
    _parity_log({"device": {"platform": device.platform, "kind": device.device_kind}})
  if report.when == "call" or report.outcome != "passed":
    entry = {"test": report.nodeid, "when": report.when, "outcome": report.outcome, "s": round(report.duration, 3)}
    if report.failed:
      entry["error"] = (report.longreprtext.strip().splitlines() or [""])[-1][:300]
    _parity_log(entry)


# --- parity ---------------------------------------------------------------------------------------------------


def summarize_parity(lines: Sequence[dict]) -> dict:
  """Counts per test (its worst phase: an error in setup or teardown, a failed call, a skip, a pass)."""
  status: dict[str, str] = {}
  errors: dict[str, str] = {}
  collected, device = None, None
  rank = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
  for line in lines:
    if "collected" in line:
      collected = line["collected"]
    elif "device" in line:
      device = line["device"]
    elif "test" in line:
      outcome = line["outcome"]
      if outcome == "failed" and line["when"] != "call":
        outcome = "error"
      if rank[outcome] >= rank[status.get(line["test"], "passed")]:
        status[line["test"]] = outcome
      if "error" in line:
        errors.setdefault(line["test"], line["error"])
  counts = {key: sum(1 for s in status.values() if s == key) for key in ("passed", "failed", "error", "skipped")}
  failures = [{"test": test, "outcome": s, "error": errors.get(test, "")}
              for test, s in status.items() if s in ("failed", "error")]
  return {"collected": collected, "device": device, **counts, "ran": len(status),
          "not_run": None if collected is None else collected - len(status), "failures": failures[:40]}


def run_parity(tests: Sequence[str], cap_s: float, budget: Budget) -> dict:
  """The parity tests in a child pytest on the device, stopped after `cap_s`; their counts and duration."""
  env = harness._worker_env("jaxcomponents")  # pylint: disable=protected-access
  # The suite's conftest defaults JAX to the CPU; here it runs where JAX finds the accelerator, unless told.
  env["JAX_PLATFORMS"] = os.environ.get("JAX_PLATFORMS", "")
  fd, log_path = tempfile.mkstemp(prefix="gpu-check-parity-", suffix=".jsonl")
  os.close(fd)
  env[PARITY_LOG_ENV] = log_path
  command = [sys.executable, "-m", "pytest", *tests, "-q", "-o", "addopts=", "-p", "no:cacheprovider",
             "-p", "benchmarks.gpu_check"]
  shown = "python -m pytest " + " ".join(tests)
  log(budget, f"parity: {shown} (stopped after {cap_s:.0f} s)")
  started = time.monotonic()
  process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sys.stderr, stderr=subprocess.STDOUT,
                             start_new_session=True)
  stopped = False
  try:
    process.wait(timeout=max(cap_s, 1.0))
  except subprocess.TimeoutExpired:
    stopped = True
  finally:
    if process.poll() is None:
      _stop_group(process)
  duration = time.monotonic() - started
  with open(log_path, encoding="utf-8") as f:
    lines = [json.loads(line) for line in f if line.strip()]
  os.unlink(log_path)
  result = {"status": "ran", "command": shown, "cap_s": round(cap_s), "duration_s": round(duration, 1), "stopped_at_cap": stopped,
            "exit_code": None if stopped else process.returncode, **summarize_parity(lines)}
  log(budget, f"parity: {result['passed']} passed, {result['failed']} failed, {result['error']} errors, "
              f"{result['skipped']} skipped of {result['collected']} in {duration:.0f} s"
              + (" (stopped at the cap)" if stopped else "")
              + (f" on {result['device']['kind']} ({result['device']['platform']})" if result["device"] else ""))
  return result


def _stop_group(process: subprocess.Popen) -> None:
  """Ends the child pytest and whatever it started (its own session), SIGTERM then SIGKILL."""
  for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 30)):
    try:
      os.killpg(process.pid, sig)
    except ProcessLookupError:
      return
    try:
      process.wait(timeout=wait)
      return
    except subprocess.TimeoutExpired:
      continue


# --- throughput -----------------------------------------------------------------------------------------------


def cell_rows(result: dict | None, family: str, dtype: str, device: str, reason: str | None = None) -> list[dict]:
  """One row per contender of a (family, data type) cell: measured, or skipped / failed with the reason."""
  meta = (result or {}).get("meta", {})
  measured = {r["framework"]: r for r in (result or {}).get("rows", [])}
  details = {d["framework"]: d for d in meta.get("details", [])}
  skipped = {s["framework"]: s["reason"] for s in meta.get("skipped", [])}
  failed = {f["framework"]: f["error"] for f in meta.get("failed", [])}
  model_flops = next((details[fw].get("flops_per_step") for fw in FRAMEWORKS
                      if fw in details and details[fw].get("flops_per_step")), None)
  peak = report.peak_tflops(device, dtype)
  rows = []
  for fw in FRAMEWORKS:
    row = {"model": family, "framework": fw, "mode": "train", "dtype": dtype, "status": "ok", "reason": None,
           "batch": None, "items_per_s": None, "spread": None, "compile_s": None, "peak_rss_mb": None,
           "peak_device_mb": None, "flops_per_step": None, "tflops": None, "mfu": None, "peak_tflops": peak,
           "device": device}
    if fw in measured:
      r, d = measured[fw], details.get(fw, {})
      row.update({key: r[key] for key in ("batch", "items_per_s", "compile_s", "peak_rss_mb")})
      row.update({"spread": d.get("spread"), "peak_device_mb": d.get("peak_device_mb"),
                  "flops_per_step": model_flops})
      if model_flops:
        row["tflops"] = model_flops * r["items_per_s"] / r["batch"] / 1e12
      row["mfu"] = mfu(model_flops, r["items_per_s"], r["batch"], peak)
    elif fw in failed:
      row.update(status="failed", reason=failed[fw])
    elif fw in skipped or reason:
      row.update(status="skipped", reason=skipped.get(fw) or reason)
    else:
      row.update(status="failed", reason="no result from the harness")
    rows.append(row)
  return rows


# --- the files ------------------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 3) -> str:
  return "—" if value is None else f"{value:.{digits}g}"


def markdown(result: dict, chart_name: str | None) -> str:
  """The report: parity, the throughput / MFU / memory table, what did not run, machine, method."""
  m, device = result["machine"], result["device"]
  lines = [f"# GPU check on {result['device_kind']}", "",
           f"Run {m['date']} at commit `{m.get('commit')}` with `{result['command']}`: "
           f"{result['wall_s'] / 60:.1f} min of a {result['budget_s']:.0f} s budget, sizes `{result['size']}`."
           + (" **Interrupted**: the rest did not run." if result.get("interrupted") else "")]
  if result["platform"] == "cpu":
    lines += ["", "**CPU only**: no accelerator was used; MFU is n/a."]
  lines += ["", "## Keras parity tests on the device", ""]
  p = result["parity"]
  if p["status"] != "ran":
    lines.append(f"Not run: {p['reason']}.")
  else:
    seen = p.get("device")
    lines.append(f"`{p['command']}` on {seen['kind'] + ' (' + seen['platform'] + ')' if seen else 'no device seen'}: **{p['passed']} passed, "
                 f"{p['failed']} failed, {p['error']} errors**, {p['skipped']} skipped, of {p['collected']} "
                 f"collected, in {p['duration_s']:.0f} s"
                 + (f"; stopped at the {p['cap_s']} s cap with {p['not_run']} not run." if p["stopped_at_cap"]
                    else f" (pytest exit status {p['exit_code']})."))
    lines += [f"- {f['outcome'].upper()} `{f['test']}`: {f['error']}" for f in p["failures"]]
  lines += ["", "## Training throughput, MFU and memory", "",
            "One optimizer step (Adam, sparse categorical cross-entropy) on one synthetic batch, items (images "
            "or sequences) per second, median ± half the interquartile range. GFLOP/step: XLA's cost analysis of "
            "jaxcomponents' compiled step, the model's FLOPs for both rows. MFU: FLOP/s over the dense peak for "
            "the data type (bfloat16; TF32 for float32, XLA's default precision): "
            + (", ".join(f"{report.peak_tflops(device, d):g} TFLOP/s ({SHORT_DTYPE[d]})" for d in result["dtypes"])
               if report.peak_tflops(device, "float32") else f"n/a, no known peak for `{device}`")
            + ". Peak memory: the worker's peak device bytes in use (MiB).", ""]
  by_cell = {(r["model"], r["dtype"], r["framework"]): r for r in result["rows"]}
  body = []
  for family in result["families_run"]:
    for dtype in result["dtypes"]:
      jc, kj = (by_cell.get((family, dtype, fw)) for fw in FRAMEWORKS)
      if jc is None or kj is None:
        continue
      cells = [family, SHORT_DTYPE[dtype], str(jc["batch"] or kj["batch"] or "—")]
      for r in (jc, kj):
        cells.append(report.rate_text(r["items_per_s"]) + (f" ±{50 * r['spread']:.0f}%" if r["spread"] else "")
                     if r["status"] == "ok" else r["status"])
      cells.append(report.ratio_text(jc["items_per_s"], kj["items_per_s"]))
      cells.append(_num(jc["flops_per_step"] and jc["flops_per_step"] / 1e9))
      for r in (jc, kj):
        cells.append(_num(r["tflops"]) + (f" ({100 * r['mfu']:.1f}%)" if r["mfu"] is not None else
                                          (" (n/a)" if r["status"] == "ok" else "")))
      cells += [_num(r["compile_s"]) for r in (jc, kj)]
      cells += [f"{r['peak_device_mb']:,.0f}" if r["peak_device_mb"] else "—" for r in (jc, kj)]
      body.append(cells)
  lines += report._table(  # pylint: disable=protected-access
      ["model", "dtype", "batch", "jc items/s", "keras-jax items/s", "jc / keras-jax", "GFLOP/step",
       "TFLOP/s (MFU) jc", "TFLOP/s (MFU) keras-jax", "compile s jc", "compile s keras-jax", "peak MiB jc",
       "peak MiB keras-jax"], body)
  if chart_name:
    lines += ["", f"![throughput relative to keras-jax]({chart_name})"]
  lines += ["", "## Not run and failed", ""]
  others = [r for r in result["rows"] if r["status"] != "ok"]
  lines += [f"- {r['status'].upper()} **{r['model']}** / {r['framework']} / {SHORT_DTYPE[r['dtype']]}: "
            f"{str(r['reason'])[:300]}" for r in others] or ["- everything ran."]
  lines += ["", "## Families", ""]
  lines += report._table(["model", "architecture", "size"],  # pylint: disable=protected-access
                         [[name, f["summary"], f"batch {f['batch']}, {f['size']}"]
                          for name, f in result["families"].items()])
  lines += ["", "## Machine and versions", ""]
  machine_rows = [["accelerator", m.get("accelerator") or "none"], ["CPU", f"{m['cpu']} ({m['cpu_cores']} cores)"],
                  ["memory", f"{m['memory_gb']} GB"], ["OS", m["os"]]]
  machine_rows += [[name, f"`{version}`"] for name, version in result["versions"].items()]
  machine_rows += [[key, f"`{value}`"] for key, value in m.get("env", {}).items()]
  lines += report._table(["", ""], machine_rows)  # pylint: disable=protected-access
  method = result["method"]
  lines += ["", "## Method", "",
            "- Each (family, data type) cell is one run of the benchmark harness (benchmarks/README.md): one "
            "worker process per contender, started one after the other (each compiles alone), then timed blocks "
            f"of about {method['block_s']} s round-robin, rotating who goes first.",
            f"- {method['warmup_steps']} warm-up steps; at least {method['min_steps']} timed steps and "
            f"{method['min_rounds']} rounds per contender, until the interquartile range is within "
            f"{100 * method['target_spread']:.0f}% of the median, {method['max_rounds']} rounds or "
            f"{method['max_timed_s']:.0f} s. Compile: the first call's wall time (trace, compile, first run).",
            "- mixed bfloat16: bfloat16 compute, float32 variables (Keras's `mixed_bfloat16` policy; "
            "jaxcomponents' `compute_dtype=bfloat16`).",
            f"- Budget {result['budget_s']:.0f} s: no cell starts once it is spent, or when the same family's "
            "other cell took longer than what is left; a cell that has started runs to its end."]
  return "\n".join(lines) + "\n"


def chart(result: dict, path: pathlib.Path) -> pathlib.Path | None:
  """report.chart's bars, one per (family, data type): each contender's items/s over keras-jax's."""
  ok = [r for r in result["rows"] if r["status"] == "ok"]
  if not ok:
    return None
  label = lambda r: f"{r['model']} {SHORT_DTYPE[r['dtype']]}"  # pylint: disable=unnecessary-lambda-assignment
  rows = [{"model": label(r), "framework": r["framework"], "mode": r["mode"], "batch": r["batch"],
           "items_per_s": r["items_per_s"]} for r in ok]
  order = [f"{f} {SHORT_DTYPE[d]}" for f in result["families_run"] for d in result["dtypes"]]
  meta = {"families": {name: {} for name in order if any(r["model"] == name for r in rows)},
          "frameworks": list(FRAMEWORKS), "size": f"GPU check ({result['size']})", "device": result["device"],
          "machine": {"date": result["machine"]["date"]}}
  return report.chart(rows, meta, path)


def write(result: dict, stem: pathlib.Path, with_chart: bool) -> list[pathlib.Path]:
  """`<stem>.json` and `<stem>.md`, and `<stem>.png` when asked (the md links it when it exists)."""
  stem.parent.mkdir(parents=True, exist_ok=True)
  json_path, md_path, png_path = (stem.with_suffix(s) for s in (".json", ".md", ".png"))
  json_path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
  written = [json_path, md_path]
  if with_chart and chart(result, png_path):
    written.append(png_path)
  md_path.write_text(markdown(result, png_path.name if png_path.exists() else None), encoding="utf-8")
  return written


# --- the run --------------------------------------------------------------------------------------------------


def _csv(value: str) -> tuple[str, ...]:
  return tuple(v.strip() for v in value.split(",") if v.strip())


def _dtypes(value: str) -> tuple[str, ...]:
  out = []
  for v in _csv(value):
    if v not in DTYPE_ALIASES:
      raise argparse.ArgumentTypeError(f"dtype {v!r} is not allowed; expected bfloat16 or float32")
    out.append(DTYPE_ALIASES[v])
  return tuple(out)


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m benchmarks.gpu_check",
      description="Keras parity tests on the device, then ResNet50, MobileNetV2, U-Net and LSTM training "
                  "throughput (bfloat16 and float32) against Keras on JAX, with MFU and peak memory; writes "
                  "<out-dir>/<device>.{json,md,png}.")
  p.add_argument("--tiny", action="store_true",
                 help="the families' smallest sizes and one parity test file's few cases (a CPU smoke run)")
  p.add_argument("--out-dir", default=str(harness.RESULTS), help="where the files go (default: benchmarks/results)")
  p.add_argument("--budget-s", type=float, default=480.0,
                 help="the whole run's time budget: no cell starts after it (default: 480)")
  p.add_argument("--skip-parity", action="store_true", help="do not run the parity tests")
  p.add_argument("--parity-s", type=float, default=150.0,
                 help="stop the parity tests after this many seconds (default: 150), counting what ran")
  p.add_argument("--families", type=_csv, default=FAMILIES, help=f"default: {','.join(FAMILIES)}")
  p.add_argument("--dtypes", type=_dtypes, default=DTYPES, help="bfloat16 and/or float32 (default: both, "
                 "bfloat16 first)")
  p.add_argument("--worker-timeout-s", type=float, default=240.0,
                 help="longest wait for one answer of a benchmark worker, compilation included (default: 240)")
  return p


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  args = parser().parse_args(argv)
  for name in args.families:
    families.get(name)
  budget = Budget(args.budget_s)
  size = "tiny" if args.tiny else "full"
  method = harness.METHODS["tiny"] if args.tiny else GPU_METHOD
  device = machine.probe_jax_device(harness._worker_env("jaxcomponents"))  # pylint: disable=protected-access
  slug = "cpu" if device["platform"] == "cpu" else machine.slug(device["kind"])
  stem = pathlib.Path(args.out_dir) / (slug + ("-tiny" if args.tiny else ""))
  log(budget, f"device {device['kind']} ({device['platform']}), sizes {size}, budget {args.budget_s:.0f} s, "
              f"writing {stem}.{{json,md,png}}")
  if device["platform"] == "cpu" and not args.tiny:
    log(budget, "no accelerator: full sizes on the CPU take long (--tiny for a smoke run)")
  result = {
      "check": "gpu_check", "device": slug, "device_kind": device["kind"], "platform": device["platform"],
      "size": size, "command": " ".join(["python -m benchmarks.gpu_check", *argv]), "budget_s": args.budget_s,
      "wall_s": 0.0, "interrupted": False, "dtypes": list(args.dtypes), "families_run": list(args.families),
      "frameworks": list(FRAMEWORKS), "parity": {"status": "not run", "reason": "--skip-parity" if args.skip_parity else "not reached"},
      "rows": [], "machine": machine.describe(str(ROOT), device), "versions": machine.versions(),
      "method": dataclasses.asdict(method),
      "families": {name: {"summary": families.get(name).summary, "batch": families.get(name).sizes[size].batch,
                          "size": families.get(name).sizes[size].describe()} for name in args.families},
      "runs": [],
  }

  def save(with_chart: bool = False) -> list[pathlib.Path]:
    result["wall_s"] = round(budget.elapsed(), 1)
    return write(result, stem, with_chart)

  def on_sigterm(signum, frame):  # pylint: disable=unused-argument
    raise Interrupted()

  previous = signal.signal(signal.SIGTERM, on_sigterm)
  cells = [(family, dtype) for family in args.families for dtype in args.dtypes]
  done = 0
  try:
    if not args.skip_parity:
      result["parity"] = run_parity(TINY_PARITY_TESTS if args.tiny else PARITY_TESTS,
                                    min(args.parity_s, max(budget.left(), 1.0)), budget)
      save()
    for family, dtype in cells:
      reason = budget.refusal(family)
      if reason:
        log(budget, f"{family} {SHORT_DTYPE[dtype]}: {reason}")
        result["rows"] += cell_rows(None, family, dtype, slug, reason)
      else:
        log(budget, f"{family} {SHORT_DTYPE[dtype]}: starting ({budget.left():.0f} s of the budget left)")
        settings = CheckSettings(size=size, models=(family,), frameworks=FRAMEWORKS, modes=("train",), dtype=dtype,
                                 flops=True, flops_frameworks=("jaxcomponents",), report=False,
                                 timeout_s=args.worker_timeout_s, command=result["command"], timing=method)
        started = budget.elapsed()
        run = harness.Harness(settings).run(device=device)
        budget.record(family, dtype, budget.elapsed() - started)
        rows = cell_rows(run, family, dtype, slug)
        result["rows"] += rows
        result["runs"].append({key: run["meta"][key] for key in ("dtype", "details", "skipped", "failed", "wall_s")}
                              | {"model": family})
        log(budget, f"{family} {SHORT_DTYPE[dtype]} done in {budget.elapsed() - started:.0f} s: " + "; ".join(
            f"{r['framework']} " + (f"{r['items_per_s']:,.1f}/s, MFU "
                                    + ("n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%")
                                    if r["status"] == "ok" else f"{r['status']}: {str(r['reason'])[:120]}")
            for r in rows))
      done += 1
      save()
  except (Interrupted, KeyboardInterrupt):
    result["interrupted"] = True
    if result["parity"]["status"] != "ran" and not args.skip_parity:
      result["parity"] = {"status": "not run", "reason": "interrupted"}
    for family, dtype in cells[done:]:
      if not any(r["model"] == family and r["dtype"] == dtype for r in result["rows"]):
        result["rows"] += cell_rows(None, family, dtype, slug, "not run: interrupted")
    log(budget, "interrupted: writing what there is")
  finally:
    signal.signal(signal.SIGTERM, previous)
  written = save(with_chart=True)
  for path in written:
    print(path)
  parity = result["parity"]
  bad = parity.get("failed", 0) + parity.get("error", 0) + sum(r["status"] == "failed" for r in result["rows"])
  log(budget, f"done: {sum(r['status'] == 'ok' for r in result['rows'])} rows measured, "
              f"{sum(r['status'] == 'skipped' for r in result['rows'])} not run, {bad} failures")
  if result["interrupted"]:
    return 130
  return 1 if bad else 0


if __name__ == "__main__":
  sys.exit(main())
