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
  settings = harness.Settings(size="tiny", models=("dense", "not_yet"),
                              frameworks=("jaxcomponents", "jaxcomponents-tuned", "keras-jax"), out=str(out), log=False)
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(families.FAMILIES, "not_yet", not_yet)
    return harness.run(settings), out


def test_rows_have_exactly_the_issue_keys(tiny_run):
  result, out = tiny_run
  rows = json.loads(out.read_text())
  assert rows == result["rows"]
  assert {(r["model"], r["framework"], r["mode"]) for r in rows} == {
      ("dense", fw, mode) for fw in ("jaxcomponents", "jaxcomponents-tuned", "keras-jax")
      for mode in ("train", "infer")}
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
                             for fw in ("jaxcomponents", "jaxcomponents-tuned", "keras-jax")]
  tuning = {d["framework"]: d.get("jaxcomponents_cpu") for d in meta["details"]}
  assert tuning["keras-jax"] is None and tuning["jaxcomponents"]["tuned"].startswith("no")
  assert tuning["jaxcomponents-tuned"]["tuned"] == {"xla_flags": "applied", "malloc": "applied",
                                                     "dispatch": "applied"}
  text = out.with_suffix(".md").read_text()
  assert "| dense | train | 8 |" in text and "jc / keras-jax" in text and "jc tuned / keras-jax" in text
  assert "| jaxcomponents-tuned | on |" in text
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
  assert "| dense | train | 4 | 150 | 100 | 1.50 |" in text
  assert "slower on 0" in text and "keras-tf**, every family: no TensorFlow" in text


def test_bad_settings_are_refused():
  with pytest.raises(ValueError, match="framework='pytorch'"):
    harness.Harness(harness.Settings(frameworks=("pytorch",)))
  with pytest.raises(ValueError, match="model='nope'"):
    harness.Harness(harness.Settings(models=("nope",)))
  with pytest.raises(ValueError, match="group='big'"):
    harness.Harness(harness.Settings(group="big"))


def test_matrix_twins_build_the_same_shapes():
  """Every matrix cell's jaxcomponents model and Keras twin: the same output shape and number of weights."""
  import jax
  import jax.numpy as jnp
  import keras

  for name in families.names("matrix"):
    family, size = families.get(name), families.get(name).sizes["tiny"]
    x = jnp.ones((size.batch, *size.input_shape))
    model = families.resolve(family.jaxcomponents)(size)
    out, variables = jax.eval_shape(lambda x, model=model: model.init_with_output(jax.random.key(0), x), x)
    twin = families.resolve(family.keras)(size)
    assert out.shape == (size.batch, *twin.output_shape[1:]) == (size.batch, size.classes), name
    assert sum(v.size for v in jax.tree.leaves(variables)) == twin.count_params(), name
    keras.backend.clear_session()

