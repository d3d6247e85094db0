"""Each experiment runs end to end on tiny data and writes its results."""

import importlib
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def experiment(name):
  return importlib.import_module(f"experiments.{name}")


@pytest.mark.parametrize("framework", ["jax", "keras"])
def test_transfer_digits(tmp_path, framework):
  metrics = experiment("transfer_digits").main(
      ["--framework", framework, "--epochs", "2", "--limit", "300", "--runs-dir", str(tmp_path)])
  run = tmp_path / f"transfer_digits-digits-{framework}-epochs=2-limit=300"
  saved = json.loads((run / "metrics.json").read_text())
  assert saved["test_accuracy"] == metrics["test_accuracy"]
  assert saved["phase1_test_accuracy"] > 0.5 and saved["test_accuracy"] > 0.4  # chance is 0.2
  assert (run / "history.csv").exists() and (run / "confusion_5-9.png").stat().st_size > 1000
  assert (run / "learning_curves.png").stat().st_size > 1000


def test_flags_come_from_the_config_with_defaults_and_choices(tmp_path, capsys):
  with pytest.raises(SystemExit):
    experiment("transfer_digits").main(["--dataset", "cifar", "--runs-dir", str(tmp_path)])
  assert ("argument --dataset: invalid choice: 'cifar' (choose from 'digits', 'mnist', 'fashion_mnist')"
          in capsys.readouterr().err)
  with pytest.raises(SystemExit):
    experiment("segmentation").main(["--batch-norm", "ture"])
  assert "argument --batch-norm: 'ture' is not allowed; expected true or false" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    experiment("cats_vs_dogs").main(["--help"])
  usage = " ".join(capsys.readouterr().out.split())
  assert usage.startswith("usage: python -m experiments.cats_vs_dogs")
  from experiments.image_transfer import BACKBONES  # every registered backbone, as its flag spells it

  assert "vgg16" in BACKBONES and "efficientnet_b0" in BACKBONES and "mobilenet_v2" in BACKBONES
  assert f"--backbone {{{','.join(BACKBONES)}}} the frozen ImageNet backbone (default: mobilenet_v2)" \
      in usage and "--image-size IMAGE_SIZE height and width the images are resized to (default: 160)" in usage


def test_vgg16_transfer_on_tfds_mock_data(tmp_path):
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=24):
    metrics = experiment("vgg16_transfer").main(
        ["--weights", "none", "--epochs", "1", "--batch-size", "8", "--hidden", "16", "--runs-dir", str(tmp_path)])
  saved = json.loads((tmp_path / "vgg16_transfer-cifar10-jax-weights=none-hidden=16-epochs=1-batch_size=8"
                      / "metrics.json").read_text())
  assert saved["test_accuracy"] == metrics["test_accuracy"] and 0.0 <= saved["test_accuracy"] <= 1.0
  assert saved["backbone"] == "vgg16"


@pytest.mark.parametrize("framework", ["jax", "keras"])
def test_cats_vs_dogs_on_an_image_folder(tmp_path, framework):
  from PIL import Image

  rng = np.random.default_rng(0)
  for cls, shade in (("cats", 40), ("dogs", 215)):
    (tmp_path / "pets" / cls).mkdir(parents=True)
    for i in range(10):
      pixels = np.clip(rng.normal(shade, 20, (40, 48, 3)), 0, 255).astype(np.uint8)
      Image.fromarray(pixels).save(tmp_path / "pets" / cls / f"{i}.jpg")
  metrics = experiment("cats_vs_dogs").main(
      ["--dataset", str(tmp_path / "pets"), "--backbone", "vgg16", "--weights", "none", "--image-size", "32",
       "--epochs", "3", "--batch-size", "8", "--framework", framework, "--runs-dir", str(tmp_path / "runs")])
  assert metrics["test_accuracy"] >= 0.5 and metrics["backbone"] == "vgg16"
  assert (tmp_path / "runs" / metrics["config"]["name"] / "confusion.png").exists()
  assert metrics["config"]["name"] == (f"cats_vs_dogs-pets-{framework}-backbone=vgg16-image_size=32-weights=none"
                                       "-batch_size=8")


def test_sequence_compares_the_three_cells(tmp_path):
  metrics = experiment("sequence").main(["--epochs", "2", "--limit", "256", "--units", "16",
                                         "--runs-dir", str(tmp_path)])
  assert [row["cell"] for row in metrics["cells"]] == ["lstm", "gru", "rnn"]
  assert all(row["test_accuracy"] > 0.1 for row in metrics["cells"])
  assert (tmp_path / "sequence-digits-jax-units=16-epochs=2-limit=256" / "history.csv").exists()


def test_compare_lists_both_frameworks(tmp_path, capsys):
  for framework in ("jax", "keras"):
    run = tmp_path / f"transfer_digits-digits-{framework}"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({
        "experiment": "transfer_digits", "dataset": "digits", "framework": framework, "phase1_test_accuracy": 0.99,
        "test_accuracy": 0.98, "wall_time_s": 10.0, "images_per_s": 100.0}))
  table = experiment("compare").main([str(tmp_path)])
  assert [row["framework"] for row in table] == ["jax", "keras"]
  assert "phase1_accuracy" in capsys.readouterr().out
  (tmp_path / "sequence-digits-jax").mkdir()
  (tmp_path / "sequence-digits-jax" / "metrics.json").write_text(json.dumps({
      "experiment": "sequence", "dataset": "digits", "framework": "jax", "test_accuracy": 0.9,
      "cells": [{"cell": c, "test_accuracy": a, "wall_s": 2.0}
                for c, a in (("lstm", 0.9), ("gru", 0.8), ("rnn", 0.7))]}))
  (tmp_path / "segmentation-shapes-jax").mkdir()
  (tmp_path / "segmentation-shapes-jax" / "metrics.json").write_text(json.dumps({
      "experiment": "segmentation", "dataset": "shapes", "framework": "jax", "test_accuracy": 0.95,
      "test_mean_iou": 0.71, "wall_time_s": 5.0}))
  table = experiment("compare").main([str(tmp_path)])
  by_name = {row["experiment"]: row for row in table}
  assert [by_name[f"sequence/{c}"]["test_accuracy"] for c in ("lstm", "gru", "rnn")] == [0.9, 0.8, 0.7]
  assert by_name["segmentation"]["test_mean_iou"] == 0.71 and "test_mean_iou" in capsys.readouterr().out


def test_segmentation_on_synthetic_shapes(tmp_path):
  module = experiment("segmentation")
  images, masks = module.synthetic_shapes(4, 32, seed=0)
  assert images.shape == (4, 32, 32, 3) and set(np.unique(masks)) == {0, 1, 2}
  metrics = module.main(["--epochs", "2", "--examples", "32", "--image-size", "32", "--filter-num", "4,8",
                         "--batch-size", "8", "--runs-dir", str(tmp_path)])
  run = tmp_path / "segmentation-shapes-jax-image_size=32-filter_num=4,8-epochs=2-batch_size=8-examples=32"
  assert metrics["config"]["name"] == run.name
  history = (run / "history.csv").read_text().splitlines()
  assert history[0].startswith("epoch,loss,mean_iou,val_loss,val_mean_iou,learning_rate") and len(history) == 3
  assert 0.0 <= metrics["test_mean_iou"] <= 1.0 and 0.0 <= metrics["test_accuracy"] <= 1.0
  assert json.loads((run / "metrics.json").read_text())["test_mean_iou"] == metrics["test_mean_iou"]
  assert (run / "overlays.png").stat().st_size > 1000
  assert module.mean_iou(masks, masks) == 1.0


def test_scale_out_on_two_devices_in_bfloat16_with_a_worker_and_resume(tmp_path):
  import subprocess

  from PIL import Image

  rng = np.random.default_rng(0)
  for cls, shade in (("cats", 40), ("dogs", 215)):
    (tmp_path / "pets" / cls).mkdir(parents=True)
    for i in range(8):
      Image.fromarray(np.clip(rng.normal(shade, 20, (40, 48, 3)), 0, 255).astype(np.uint8)).save(
          tmp_path / "pets" / cls / f"{i}.jpg")
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  # VGG16: no batch norm, whose per-layer all-reduces are each a rendezvous of emulated devices on 2 cores.
  command = [sys.executable, "-m", "experiments.scale_out", "--dataset", str(tmp_path / "pets"),
             "--backbone", "vgg16", "--image-size", "32", "--batch-size", "8", "--dtype", "bfloat16",
             "--mesh", "data", "--workers", "1", "--runs-dir", str(tmp_path / "runs"), "--name", "scale"]
  for epochs, extra in (("1", []), ("2", ["--resume", "true"])):
    done = subprocess.run(command + ["--epochs", epochs, *extra], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    saved = json.loads((tmp_path / "runs" / "scale" / "metrics.json").read_text())
    assert (saved["devices"], saved["processes"], saved["dtype"]) == (2, 1, "bfloat16")
    assert saved["steps"] == 2 * int(epochs) and np.isfinite(saved["final_loss"])  # 16 images, batches of 8
