"""The benchmark harness end to end on one tiny model: rows, files, skips; no speed assertion."""

import dataclasses
import json
import os
import pathlib
import sys

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



def test_pip_worker_imports_the_installed_package_only(tmp_path):
  """A -pip worker: the virtualenv's Python with -P, outside the checkout, only benchmarks/ on its path, fresh home."""
  frameworks = ("jaxcomponents", "jaxcomponents-pip", "jaxcomponents-pip-tuned")
  bench = harness.Harness(harness.Settings(size="tiny", models=("dense",), frameworks=frameworks, log=False))
  with pytest.raises(RuntimeError, match="not built"):
    bench.worker_launch("jaxcomponents-pip", "dense-jaxcomponents-pip-train")
  bench.pip_python = str(tmp_path / "venv" / "bin" / "python")
  python, cwd, env = bench.worker_launch("jaxcomponents-pip", "dense-jaxcomponents-pip-train")
  assert python == [bench.pip_python, "-P"]
  assert cwd != harness.ROOT and not cwd.resolve().is_relative_to(harness.ROOT)
  link_dir = pathlib.Path(env["PYTHONPATH"])
  assert [p.name for p in link_dir.iterdir()] == ["benchmarks"]
  assert (link_dir / "benchmarks").resolve() == harness.ROOT / "benchmarks"
  home = pathlib.Path(env["JAXCOMPONENTS_HOME"])
  assert home.is_dir() and not any(home.iterdir()) and "VIRTUAL_ENV" not in env
  _, _, tuned_env = bench.worker_launch("jaxcomponents-pip-tuned", "dense-jaxcomponents-pip-tuned-train")
  assert tuned_env["PYTHONPATH"] == env["PYTHONPATH"] and tuned_env["JAXCOMPONENTS_HOME"] != env["JAXCOMPONENTS_HOME"]
  python, cwd, env = bench.worker_launch("jaxcomponents", "dense-jaxcomponents-train")
  assert python == [sys.executable] and cwd == harness.ROOT
  assert env["PYTHONPATH"].split(os.pathsep)[0] == str(harness.ROOT)
  assert env.get("JAXCOMPONENTS_HOME") == os.environ.get("JAXCOMPONENTS_HOME")


def test_pip_venv_is_reused_until_the_installable_files_change(tmp_path, monkeypatch):
  root, venv = tmp_path / "checkout", tmp_path / "venv"
  (root / "jaxcomponents" / "__pycache__").mkdir(parents=True)
  (root / "pyproject.toml").write_text("[project]\n")
  (root / "jaxcomponents" / "__init__.py").write_text("")
  steps = []

  def run_step(name, command, env, cwd, log_path, timeout_s):
    steps.append(name)
    assert not pathlib.Path(cwd).is_relative_to(root) and "PYTHONPATH" not in env
    if name == "python -m venv":
      (venv / "bin").mkdir(parents=True)
      (venv / "bin" / "python").write_text("")
    if name == "pip install .":
      assert command[-1] == str(root) and "-e" not in command and "-P" in command

  monkeypatch.setattr(harness, "_run_step", run_step)
  monkeypatch.setattr(harness.machine, "versions_of", lambda python, env, cwd: {"jaxcomponents": "0.1.0"})
  assert harness.build_pip_venv(venv, root)["action"] == "built"
  assert steps == ["python -m venv", "pip install --upgrade pip", "pip install ."]
  (root / "jaxcomponents" / "__pycache__" / "x.pyc").write_bytes(b"cache")
  assert harness.build_pip_venv(venv, root)["action"] == "reused" and len(steps) == 3
  (root / "jaxcomponents" / "__init__.py").write_text("x = 1\n")
  assert harness.build_pip_venv(venv, root)["action"] == "built" and len(steps) == 6
  (root / "setup.py").write_text("")
  assert harness.build_pip_venv(venv, root)["action"] == "built" and len(steps) == 9


def test_pip_venv_failure_fails_those_contenders_only(tmp_path, monkeypatch):
  def fail(**_):
    raise RuntimeError("`pip install .` exited with status 1: no matching distribution")

  monkeypatch.setattr(harness, "build_pip_venv", fail)
  monkeypatch.setattr(harness.machine, "probe_jax_device", lambda env: {"platform": "cpu", "kind": "cpu", "count": 1})
  out = tmp_path / "pip.json"
  status = harness.main(["--size", "tiny", "--models", "dense", "--frameworks",
                         "jaxcomponents-pip,jaxcomponents-pip-tuned", "--out", str(out), "--no-report"])
  meta = json.loads(out.with_name("pip.meta.json").read_text())
  assert status == 1 and json.loads(out.read_text()) == [] and meta["failed"] == []
  assert "no matching distribution" in meta["pip_failed"]
  text = report.markdown([], meta, None)
  assert "FAILED **jaxcomponents-pip**, **jaxcomponents-pip-tuned**, every family: could not make" in text


def test_pip_report_columns_and_installs():
  contenders = (("jaxcomponents", 150.0, "source tree"), ("jaxcomponents-pip", 120.0, "site-packages"),
                ("jaxcomponents-pip-tuned", 160.0, "site-packages"), ("keras-tf", 100.0, None))
  rows = [{"model": "dense", "framework": fw, "mode": "train", "batch": 4, "items_per_s": ips, "compile_s": 1.0,
           "peak_rss_mb": 100.0, "device": "cpu"} for fw, ips, _ in contenders]
  details = [{"model": "dense", "framework": fw, "mode": "train", "batch": 4,
              **({"jaxcomponents_install": where, "jaxcomponents_cpu": {"fast_paths": "on", "native": "not built",
                                                                        "tuned": "no"}} if where else {})}
             for fw, _, where in contenders]
  frameworks = [fw for fw, _, _ in contenders]
  meta = {"size": "tiny", "dtype": "float32", "device": "cpu", "command": "x", "versions": {"jax": "0"},
          "machine": {"date": "d", "cpu": "c", "cpu_cores": 2, "memory_gb": 1, "os": "o"},
          "method": dataclasses.asdict(harness.METHODS["tiny"]), "details": details,
          "families": {"dense": {"summary": "s", "size": "z", "batch": 4}}, "frameworks": frameworks,
          "installs": harness.installs(frameworks, {"action": "built", "seconds": 90.0,
                                                    "versions": {"jaxcomponents": "0.1.0", "jax": "0.10.0"}})}
  text = report.markdown(rows, meta, None)
  assert ("| model | mode | batch | jaxcomponents | jaxcomponents-pip | jaxcomponents-pip-tuned | keras-tf | "
          "jc / keras-tf | jc pip / keras-tf | jc pip tuned / keras-tf |") in text
  assert "| dense | train | 4 | 150 | 120 | 160 | 100 | 1.50 | 1.20 | 1.60 |" in text
  assert ("| jaxcomponents-pip install | `pip install .` in a fresh virtualenv (built in 90.0 s: jaxcomponents "
          "0.1.0, jax 0.10.0), fresh JAXCOMPONENTS_HOME; imported from site-packages; native library: not built |"
          ) in text
  assert "| jaxcomponents install | this checkout (first on PYTHONPATH)" in text and "from source tree;" in text
  assert harness.command_line(harness.Settings(size="tiny")) == "jaxcomponents bench --size tiny"
