"""The benchmark harness end to end on one tiny model: rows, files, skips; no speed assertion."""

import dataclasses
import json

import pytest

from benchmarks import families, harness, report


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("bench") / "tiny.json"
  not_yet = families.Family("not_yet", "a family nobody has written", families.get("dense").sizes,
                            missing="not written yet")
  settings = harness.Settings(size="tiny", models=("dense", "not_yet"), frameworks=("jaxcomponents", "keras-jax"),
                              out=str(out), log=False)
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(families.FAMILIES, "not_yet", not_yet)
    return harness.run(settings), out


def test_rows_have_exactly_the_issue_keys(tiny_run):
  result, out = tiny_run
  rows = json.loads(out.read_text())
  assert rows == result["rows"]
  assert {(r["model"], r["framework"], r["mode"]) for r in rows} == {
      ("dense", fw, mode) for fw in ("jaxcomponents", "keras-jax") for mode in ("train", "infer")}
  for row in rows:
    assert tuple(row) == harness.ROW_KEYS
    assert row["batch"] == families.get("dense").sizes["tiny"].batch
    assert row["items_per_s"] > 0 and row["compile_s"] > 0 and row["peak_rss_mb"] > 50
    assert row["device"] == "cpu"
  assert result["meta"]["failed"] == []


def test_meta_report_and_chart_are_written(tiny_run):
  result, out = tiny_run
  meta = json.loads(out.with_name("tiny.meta.json").read_text())
  assert meta["machine"]["cpu_cores"] >= 1 and meta["versions"]["jax"]
  assert all(d["steps"] >= harness.METHODS["tiny"].min_steps for d in meta["details"])
  assert meta["skipped"] == [{"model": "not_yet", "framework": fw, "reason": "not written yet"}
                             for fw in ("jaxcomponents", "keras-jax")]
  text = out.with_suffix(".md").read_text()
  assert "| dense | train | 8 |" in text and "jc / keras-jax" in text
  assert "**not_yet**: whole family skipped: not written yet." in text
  assert "CPU only" in text
  assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_ratio_table_from_rows():
  rows = [{"model": "dense", "framework": fw, "mode": "train", "batch": 4, "items_per_s": ips, "compile_s": 1.0,
           "peak_rss_mb": 100.0, "device": "cpu"} for fw, ips in (("jaxcomponents", 150.0), ("keras-jax", 100.0))]
  meta = {"size": "tiny", "dtype": "float32", "device": "cpu", "command": "x", "versions": {"jax": "0"},
          "machine": {"date": "d", "cpu": "c", "cpu_cores": 2, "memory_gb": 1, "os": "o"},
          "method": dataclasses.asdict(harness.METHODS["tiny"]),
          "families": {"dense": {"summary": "s", "size": "z", "batch": 4}},
          "frameworks": ["jaxcomponents", "keras-jax"], "tensorflow_missing": "no TensorFlow"}
  text = report.markdown(rows, meta, None)
  assert "| dense | train | 4 | 150 | 100 | — | — | 1.50 | — |" in text
  assert "slower on 0" in text and "keras-tf**, every family: no TensorFlow" in text


def test_bad_settings_are_refused():
  with pytest.raises(ValueError, match="framework='pytorch'"):
    harness.Harness(harness.Settings(frameworks=("pytorch",)))
  with pytest.raises(ValueError, match="model='nope'"):
    harness.Harness(harness.Settings(models=("nope",)))

