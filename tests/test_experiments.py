"""Each experiment runs end to end on tiny data and writes its results."""

import importlib.util
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def experiment(name):
  spec = importlib.util.spec_from_file_location(f"experiments_{name}", os.path.join(ROOT, "experiments", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  sys.modules[f"experiments_{name}"] = module
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("framework", ["jax", "keras"])
def test_transfer_digits(tmp_path, framework):
  metrics = experiment("transfer_digits").main(
      ["--framework", framework, "--epochs", "2", "--limit", "300", "--runs-dir", str(tmp_path)])
  run = tmp_path / f"transfer_digits-digits-{framework}"
  saved = json.loads((run / "metrics.json").read_text())
  assert saved["test_accuracy"] == metrics["test_accuracy"]
  assert saved["phase1_test_accuracy"] > 0.5 and saved["test_accuracy"] > 0.4  # chance is 0.2
  assert (run / "history.csv").exists() and (run / "confusion_5-9.png").stat().st_size > 1000


def test_transfer_digits_rejects_unknown_dataset(tmp_path):
  with pytest.raises(ValueError, match=r"dataset='cifar' is not allowed"):
    experiment("transfer_digits").main(["--dataset", "cifar", "--runs-dir", str(tmp_path)])
