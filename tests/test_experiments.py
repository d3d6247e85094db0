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
  assert f"--backbone {{{','.join(BACKBONES)}}} the frozen ImageNet backbone (default: mobilenet_v2)" in usage
  assert ("--image-size IMAGE_SIZE height and width the images are resized to (default: 160; a whole number >= 1)"
          in usage)


SCRIPTS = ("transfer_digits", "sequence", "segmentation", "image_transfer", "vgg16_transfer", "cats_vs_dogs",
           "scale_out")


@pytest.mark.parametrize("name, argv, message", [
    ("sequence", ["--cells", "lstm,foo"],
     "argument --cells: 'lstm,foo' is not allowed ('foo' is not one of them); expected comma-separated, each one of "
     "lstm, gru, rnn, none twice"),
    ("sequence", ["--cells", "gru,gru"], "argument --cells: 'gru,gru' is not allowed (one is named twice)"),
    ("sequence", ["--epochs", "-1"], "argument --epochs: '-1' is not allowed; expected a whole number >= 0"),
    ("sequence", ["--units", "0"], "argument --units: '0' is not allowed; expected a whole number >= 1"),
    ("sequence", ["--units", "2.5"], "argument --units: invalid int value: '2.5'"),
    ("sequence", ["--learning-rate", "nan"],
     "argument --learning-rate: 'nan' is not allowed; expected a finite number > 0"),
    ("sequence", ["--seed", "-3"], "argument --seed: '-3' is not allowed; expected a whole number >= 0"),
    ("transfer_digits", ["--batch-size", "-8"],
     "argument --batch-size: '-8' is not allowed; expected a whole number >= 0"),
    ("transfer_digits", ["--learning-rate", "0"],
     "argument --learning-rate: '0' is not allowed; expected a finite number > 0"),
    ("transfer_digits", ["--limit", "-1"], "argument --limit: '-1' is not allowed; expected a whole number >= 0"),
    ("segmentation", ["--filter-num", "16,x"],
     "argument --filter-num: '16,x' is not allowed; expected comma-separated whole numbers >= 1"),
    ("segmentation", ["--examples", "2"], "argument --examples: '2' is not allowed; expected a whole number >= 4"),
    ("segmentation", ["--image-size", "30"], "--image-size 30, --filter-num 16,32,64, --backbone none: input_size="),
    ("segmentation", ["--attention", "mul"], "argument --attention: invalid choice: 'mul'"),
    ("segmentation", ["--model", "unet_3d"], "--model unet_3d is not allowed with --dataset shapes: the 3-D models"),
    ("segmentation", ["--model", "r2_unet_2d", "--backbone", "VGG16"],
     "--backbone VGG16 is not allowed with --model r2_unet_2d; the models with a backbone: unet_2d, att_unet_2d"),
    ("image_transfer", ["--dropout", "1"],
     "argument --dropout: '1' is not allowed; expected a finite number >= 0 and < 1"),
    ("image_transfer", ["--backbone", "inception_v3", "--image-size", "64"],
     "argument --image-size: 64 is not allowed with --backbone inception_v3; expected at least 75"),
    ("cats_vs_dogs", ["--epochs", "0"], "argument --epochs: '0' is not allowed; expected a whole number >= 1"),
    ("vgg16_transfer", ["--hidden", "-1"], "argument --hidden: '-1' is not allowed; expected a whole number >= 0"),
    ("scale_out", ["--threads", "0"], "argument --threads: '0' is not allowed; expected a whole number >= 1"),
    ("scale_out", ["--num-processes", "2", "--process-id", "2"],
     "argument --process-id: 2 is not allowed with --num-processes 2; expected 0 to 1"),
    ("scale_out", ["--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
])
def test_flags_are_refused_when_parsed(name, argv, message, capsys):
  """Every numeric, list and choice flag is checked by `parse_config` (no data read, nothing trained)."""
  from experiments.common import parse_config

  module = experiment(name)
  with pytest.raises(SystemExit) as exit_info:
    parse_config(module.Config, argv)
  err = " ".join(capsys.readouterr().err.split())
  assert exit_info.value.code == 2 and err.startswith(f"usage: python -m experiments.{name}")
  assert message in err, err


def test_a_refused_flag_ends_main_before_any_data(monkeypatch, capsys):
  module = experiment("sequence")
  monkeypatch.setattr(module, "load_digit_images", lambda *a: pytest.fail("the data were read"))
  for argv in (["--cells", "lstm,foo"], ["--epochs", "-1"]):
    with pytest.raises(SystemExit) as exit_info:
      module.main(argv)
    assert exit_info.value.code == 2 and "is not allowed" in capsys.readouterr().err


def test_flags_within_bounds_are_kept():
  from experiments.common import parse_config

  config = parse_config(experiment("sequence").Config, ["--cells", "gru, lstm", "--epochs", "0", "--limit", "7"])
  assert (config.cells, config.epochs, config.limit) == ("gru,lstm", 0, 7)
  config = parse_config(experiment("segmentation").Config, ["--filter-num", "8,16", "--image-size", "30"])
  assert (config.filter_num, config.image_size) == ("8,16", 30)  # depth 2: 30 halves once
  config = parse_config(experiment("scale_out").Config, ["--num-processes", "2", "--process-id", "1"])
  assert (config.num_processes, config.process_id) == (2, 1)


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_lists_the_bounds(name, capsys):
  with pytest.raises(SystemExit) as exit_info:
    experiment(name).main(["--help"])
  usage = " ".join(capsys.readouterr().out.split())
  assert exit_info.value.code == 0 and usage.startswith(f"usage: python -m experiments.{name}")
  assert "--epochs EPOCHS" in usage and "a whole number >= " in usage


def test_compare_help_and_a_missing_folder(tmp_path):
  import subprocess

  def compare(*argv):
    return subprocess.run([sys.executable, "-m", "experiments.compare", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)

  done = compare("--help")
  assert done.returncode == 0 and done.stdout.startswith("usage: python -m experiments.compare [-h] [runs_dir]")
  assert "Print jaxcomponents runs beside their Keras twins" in done.stdout and "runs_dir" in done.stdout
  assert not os.path.exists(os.path.join(ROOT, "--help"))
  done = compare(str(tmp_path / "nowhere"))
  assert done.returncode == 2 and "argument runs_dir: " in done.stderr and "is not a folder" in done.stderr
  done = compare(str(tmp_path))
  assert done.returncode == 0 and "no runs found" in done.stdout


def _cells_history(prefix_form):
  """What the sequence experiment's three cells log, under `prefix_form` ("{cell}_{key}" or "{cell}/{key}")."""
  history = {}
  for i, cell in enumerate(("lstm", "gru", "rnn")):
    for key, values in (("loss", [2.0, 1.5 - i / 10, 1.0]), ("sparse_categorical_accuracy", [0.2, 0.5, 0.7 + i / 10]),
                        ("val_loss", [2.1, 1.6, 1.2 + i / 10]), ("val_sparse_categorical_accuracy", [0.1, 0.4, 0.6]),
                        ("learning_rate", [1e-3] * 3), ("time_s", [3.0, 1.0, 1.1]), ("images_per_s", [9.0, 30, 29])):
      history[prefix_form.format(cell=cell, key=key)] = values
  return history


@pytest.mark.parametrize("prefix_form", ["{cell}_{key}", "{cell}/{key}"])
def test_curve_panels_put_every_run_of_a_metric_on_one_axes(prefix_form):
  from jaxcomponents.training.plots import curve_panels

  panels = curve_panels(_cells_history(prefix_form))
  assert [panel.metric for panel in panels] == ["loss", "sparse_categorical_accuracy"]  # no rate, no timing
  for panel in panels:
    assert panel.runs == ["lstm", "gru", "rnn"]
    assert [(c.run, c.validation) for c in panel.curves] == [
        ("lstm", False), ("lstm", True), ("gru", False), ("gru", True), ("rnn", False), ("rnn", True)]
    assert panels[0].curves[3].key == prefix_form.format(cell="gru", key="val_loss")


def test_curve_panels_of_one_run():
  from jaxcomponents.training.plots import curve_panels

  class KerasLikeHistory:  # Keras's History: .history and .epoch (0-based)
    history = {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.7, 0.6], "mean_iou": [0.2, 0.4, 0.5],
               "val_mean_iou": [0.1, 0.3, 0.4], "learning_rate": [1e-3, 1e-3, 1e-4], "time_s": [1.0, 0.5, 0.5]}
    epoch = [0, 1, 2]

  panels = curve_panels(KerasLikeHistory())
  assert [(p.metric, [c.key for c in p.curves]) for p in panels] == [
      ("loss", ["loss", "val_loss"]), ("mean_iou", ["mean_iou", "val_mean_iou"]),
      ("learning_rate", ["learning_rate"])]  # a rate that changes is a curve, drawn last
  assert panels[0].runs == [""]
  one_epoch = curve_panels({"loss": [0.7], "accuracy": [0.5], "learning_rate": [0.01]})
  assert [p.metric for p in one_epoch] == ["loss", "accuracy"]  # one epoch's points, but never a fixed rate
  assert curve_panels({"time_s": [1.0, 2.0], "images_per_s": [5.0, 6.0]}) == []


def test_plot_history_draws_on_its_own_figure(tmp_path):
  from jaxcomponents.training.plots import plot_history
  from PIL import Image

  pyplot = sys.modules.get("matplotlib.pyplot")
  figures = pyplot.get_fignums() if pyplot else None

  class OldHistory:  # jaxcomponents' History before it took Keras's `.epoch`
    history = {"loss": [1.0, 0.8, 0.7], "val_loss": [1.2, 0.9, 0.9]}
    epochs = [0, 1, 2]

  plot_history(_cells_history("{cell}_{key}"), tmp_path / "cells.png", title="sequence (digits, jax)")
  plot_history(OldHistory(), tmp_path / "one.png")
  with Image.open(tmp_path / "cells.png") as cells, Image.open(tmp_path / "one.png") as one:
    assert cells.width == 2 * one.width  # loss and accuracy side by side; loss alone
  assert (pyplot.get_fignums() if pyplot else None) == figures
  plot_history({"learning_rate": [0.1, 0.1]}, tmp_path / "nothing.png")
  assert not (tmp_path / "nothing.png").exists()


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


def test_segmentation_of_synthetic_volumes_by_a_3d_model(tmp_path):
  module = experiment("segmentation")
  volumes, masks = module.synthetic_volumes(3, 12, seed=0)
  assert volumes.shape == (3, 12, 12, 12, 1) and set(np.unique(masks)) == {0, 1, 2}
  metrics = module.main(["--model", "vnet_3d", "--dataset", "volumes", "--volume-size", "8", "--filter-num", "2,4",
                         "--epochs", "1", "--examples", "8", "--batch-size", "4", "--runs-dir", str(tmp_path)])
  assert metrics["model"] == "vnet_3d" and 0.0 <= metrics["test_mean_iou"] <= 1.0
  assert (tmp_path / metrics["config"]["name"] / "overlays.png").stat().st_size > 0


def test_segmentation_on_synthetic_shapes(tmp_path):
  module = experiment("segmentation")
  images, masks = module.synthetic_shapes(4, 32, seed=0)
  assert images.shape == (4, 32, 32, 3) and set(np.unique(masks)) == {0, 1, 2}
  metrics = module.main(["--epochs", "2", "--examples", "32", "--image-size", "32", "--filter-num", "4,8",
                         "--batch-size", "8", "--runs-dir", str(tmp_path)])
  run = tmp_path / "segmentation-shapes-jax-image_size=32-filter_num=4,8-epochs=2-batch_size=8-examples=32"
  assert metrics["config"]["name"] == run.name
  history = (run / "history.csv").read_text().splitlines()
  assert history[0] == "epoch,loss,mean_iou,val_loss,val_mean_iou" and len(history) == 3  # as Keras's CSVLogger
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


@pytest.mark.parametrize("model", ["unet_2d", "att_unet_2d", "unet_plus_2d", "r2_unet_2d", "resunet_a_2d", "u2net_2d",
                                   "unet_3plus_2d", "vnet_2d", "transunet_2d", "swin_unet_2d", "unet_3d", "att_unet_3d",
                                   "unet_plus_3d", "resunet_a_3d", "vnet_3d"])
def test_every_segmentation_model_builds_from_the_flags(model):
  """`--model` takes every keras-unet-collection twin; its flags build it (2-D on images, 3-D on volumes)."""
  from experiments.common import parse_config

  module = experiment("segmentation")
  assert model in module.MODELS_2D + module.MODELS_3D
  volumes = ["--dataset", "volumes", "--filter-num", "8,8,8"] if model in module.MODELS_3D else []
  config = parse_config(module.Config, ["--model", model, *volumes])
  built = module.build_model(config)
  assert built.n_labels == 3 and built.input_size[-1] == (1 if volumes else 3)
