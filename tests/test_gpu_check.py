"""benchmarks/gpu_check.py end to end on the CPU in tiny mode, and its pieces on their own.

The end-to-end run is one subprocess, as the GPU machine runs it: one parity
test file's few cases, then the four families cheapest first under a small
budget, so the first cell is measured and the budget stops the run before the
costly ones, whose rows say why they did not run.
"""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import families, gpu_check, report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORDER = ("lstm", "unet", "mobilenet_v2", "resnet50")  # cheapest first


@pytest.fixture(scope="module")
def tiny_check(tmp_path_factory):
  out = tmp_path_factory.mktemp("gpu_check")
  done = subprocess.run(
      [sys.executable, "-m", "benchmarks.gpu_check", "--tiny", "--out-dir", str(out), "--budget-s", "40",
       "--families", ",".join(ORDER)],
      cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True, timeout=400, check=False)
  assert done.returncode in (0, 1), done.stderr[-3000:]
  return done, out


def test_every_cell_has_a_rate_or_a_reason(tiny_check):
  done, out = tiny_check
  result = json.loads((out / "cpu-tiny.json").read_text())
  rows = {(r["model"], r["framework"], r["dtype"]): r for r in result["rows"]}
  assert set(rows) == {(m, fw, d) for m in ORDER for fw in gpu_check.FRAMEWORKS for d in gpu_check.DTYPES}
  for key, row in rows.items():
    if row["status"] == "ok":
      assert row["items_per_s"] > 0 and row["compile_s"] > 0, key
      assert row["batch"] == families.get(row["model"]).sizes["tiny"].batch, key
      assert row["flops_per_step"] > 0 and row["tflops"] > 0, key  # jaxcomponents' cost analysis, on the CPU too
    else:
      assert row["status"] in ("skipped", "failed") and row["reason"], key
    assert row["mfu"] is None and row["peak_tflops"] is None and row["device"] == "cpu", key
  first = [rows[("lstm", fw, "mixed_bfloat16")] for fw in gpu_check.FRAMEWORKS]
  assert [r["status"] for r in first] == ["ok", "ok"], done.stderr[-3000:]
  assert any("budget" in str(r["reason"]) for r in rows.values()), "the 40 s budget stopped nothing"
  failed = [r for r in rows.values() if r["status"] == "failed"]
  assert done.returncode == (1 if failed or result["parity"]["failed"] else 0)


def test_parity_ran_on_the_cpu(tiny_check):
  _, out = tiny_check
  parity = json.loads((out / "cpu-tiny.json").read_text())["parity"]
  assert parity["status"] == "ran" and parity["device"]["platform"] == "cpu"
  assert parity["passed"] >= 1 and parity["failed"] == parity["error"] == 0
  assert parity["collected"] == parity["ran"] and not parity["stopped_at_cap"] and parity["exit_code"] == 0


def test_report_and_chart_are_written(tiny_check):
  done, out = tiny_check
  assert done.stdout.split() == [str(out / f"cpu-tiny.{ext}") for ext in ("json", "md", "png")]
  text = (out / "cpu-tiny.md").read_text()
  assert "# GPU check on cpu" in text and "MFU is n/a" in text and "n/a, no known peak for `cpu`" in text
  assert "| lstm | bf16 | 4 |" in text and "passed, 0 failed, 0 errors" in text and "![throughput" in text
  assert (out / "cpu-tiny.png").read_bytes()[:4] == b"\x89PNG"


def test_budget_refuses_after_it_is_spent_or_when_the_family_would_not_fit():
  now = [0.0]
  budget = gpu_check.Budget(100.0, clock=lambda: now[0])
  assert budget.refusal("resnet50") is None
  now[0] = 30.0
  budget.record("resnet50", "mixed_bfloat16", 30.0)
  now[0] = 80.0
  assert "other cell took 30 s" in budget.refusal("resnet50")
  assert budget.refusal("lstm") is None  # not measured yet: it starts while budget is left
  now[0] = 100.0
  assert "budget of 100 s was spent" in budget.refusal("lstm")


def test_parity_counts_each_test_once_by_its_worst_phase():
  lines = [{"collected": 4}, {"device": {"platform": "gpu", "kind": "NVIDIA H200"}},
           {"test": "a", "when": "call", "outcome": "passed", "s": 0.1},
           {"test": "b", "when": "call", "outcome": "failed", "s": 0.1, "error": "AssertionError: off by 1e-3"},
           {"test": "c", "when": "call", "outcome": "passed", "s": 0.1},
           {"test": "c", "when": "teardown", "outcome": "failed", "s": 0.1, "error": "RuntimeError"}]
  summary = gpu_check.summarize_parity(lines)
  assert (summary["passed"], summary["failed"], summary["error"], summary["ran"], summary["not_run"]) == (1, 1, 1, 3, 1)
  assert summary["failures"][0] == {"test": "b", "outcome": "failed", "error": "AssertionError: off by 1e-3"}


def test_mfu_uses_the_models_flops_and_the_dtypes_peak():
  run = {"rows": [{"model": "resnet50", "framework": fw, "mode": "train", "batch": 128, "items_per_s": ips,
                   "compile_s": 30.0, "peak_rss_mb": 3000.0, "device": "nvidia-h200"}
                  for fw, ips in (("jaxcomponents", 2000.0), ("keras-jax", 1600.0))],
         "meta": {"details": [{"framework": "jaxcomponents", "flops_per_step": 1.5e12, "peak_device_mb": 9000.0,
                               "spread": 0.02},
                              {"framework": "keras-jax", "flops_per_step": None, "peak_device_mb": 12000.0,
                               "spread": 0.04}], "skipped": [], "failed": []}}
  jc, keras = gpu_check.cell_rows(run, "resnet50", "mixed_bfloat16", "nvidia-h200")
  assert jc["tflops"] == pytest.approx(1.5e12 * 2000 / 128 / 1e12)
  assert jc["mfu"] == pytest.approx(jc["tflops"] / 989.4) and keras["mfu"] == pytest.approx(jc["mfu"] * 0.8)
  assert keras["flops_per_step"] == 1.5e12 and keras["peak_device_mb"] == 12000.0
  fp32, _ = gpu_check.cell_rows(run, "resnet50", "float32", "nvidia-h200")
  assert fp32["peak_tflops"] == 494.7
  missing, = [r for r in gpu_check.cell_rows(None, "lstm", "float32", "cpu", "not run: budget")
              if r["framework"] == "jaxcomponents"]
  assert missing["status"] == "skipped" and missing["reason"] == "not run: budget" and missing["mfu"] is None


@pytest.mark.parametrize("kind,bf16", [("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0),
                                        ("NVIDIA H200", 989.4), ("NVIDIA A100-SXM4-80GB", 312.0),
                                        ("NVIDIA A10", 125.0), ("NVIDIA L4", 121.0), ("NVIDIA L40S", 362.1),
                                        ("NVIDIA GeForce RTX 4090", None), ("cpu", None)])
def test_peak_by_device_kind(kind, bf16):
  from benchmarks import machine
  assert report.peak_tflops(machine.slug(kind), "mixed_bfloat16") == bf16
