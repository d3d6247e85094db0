"""The step and the loop: freezing, resume, signals, non-finite loss, logs, accumulation, precision."""

import http.server
import json
import os
import shutil
import re
import signal
import threading
import urllib.parse
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcomponents.callbacks import RemoteMonitor
from jaxcomponents.data import ArrayDataset
from jaxcomponents.layers import Dense
from jaxcomponents import metrics, optimizers
from jaxcomponents.training import (Callback, Checkpointer, EarlyStopping, NonFiniteLossError, ReduceLROnPlateau,
                                    TensorBoard,
                                    TrainState, fit, freeze, label_params, make_eval_step, make_train_step, predict)
from tests.training_problem import MLP, blobs, leaves_equal, new_state, xent


ACC = {"accuracy": metrics.get("sparse_categorical_accuracy")}


def test_fit_learns_and_reports_history(tmp_path):
  x, y = blobs()
  data = ArrayDataset(x, y, batch_size=20, seed=1)  # 96 = 4 x 20 + 16: the last batch is padded
  val = ArrayDataset(*blobs(40, seed=5), batch_size=16, shuffle=False)
  state, history = fit(new_state(), make_train_step(xent, ACC), data, epochs=6,
                       eval_step=make_eval_step(xent, ACC), validation_data=val,
                       log_dir=tmp_path, verbose=0)
  assert int(state.step) == 6 * len(data)
  assert history.history["val_accuracy"][-1] > 0.9
  assert history.history["loss"][-1] < history.history["loss"][0]
  assert (tmp_path / "history.csv").read_text().count("\n") == 7
  fit(new_state(), make_train_step(xent, ACC), data, epochs=2, log_dir=tmp_path, verbose=0)
  assert (tmp_path / "history.csv").read_text().count("\n") == 3  # a new run replaces the log, as in Keras
  assert (tmp_path / "learning_curves.png").stat().st_size > 1000
  events = [f for f in os.listdir(tmp_path / "tensorboard" / "train") if f.startswith("events.out.tfevents")]
  assert len(events) == 1  # the first run's events went with it


def _tensorboard_events(folder):
  """(tag, step, value or histogram count) of every summary in `folder`'s event files (TFRecord framing)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=import-outside-toplevel
  found = []
  for name in sorted(os.listdir(folder)):
    data = (folder / name).read_bytes()
    at = 0
    while at < len(data):
      length = int.from_bytes(data[at:at + 8], "little")
      event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
      at += 12 + length + 4
      for value in event.summary.value:
        found.append((value.tag, event.step, value.histo.num if value.HasField("histo") else value.simple_value))
  return found


def test_tensorboard_writes_kerass_layout(tmp_path):
  x, y = blobs()
  data = ArrayDataset(x, y, batch_size=32, shuffle=False)  # 3 batches an epoch
  val = ArrayDataset(*blobs(40, seed=5), batch_size=16, shuffle=False)
  board = TensorBoard(tmp_path, histogram_freq=2, update_freq=2, write_steps_per_second=True)
  fit(new_state(tx=optimizers.get("adam")), make_train_step(xent, ACC), data, epochs=3,
      eval_step=make_eval_step(xent, ACC), validation_data=val, callbacks=[board], verbose=0)
  train, validation = _tensorboard_events(tmp_path / "train"), _tensorboard_events(tmp_path / "validation")
  tags = {tag for tag, _, _ in train}
  assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate", "epoch_steps_per_second",
          "batch_loss", "batch_steps_per_second"} <= tags
  assert sorted(step for tag, step, _ in train if tag == "epoch_loss") == [0, 1, 2]
  assert sorted(step for tag, step, _ in train if tag == "batch_loss") == [2, 4, 6, 8]  # every 2 of 9 batches
  histograms = {(tag, step) for tag, step, _ in train if tag.endswith("/histogram")}
  assert {step for _, step in histograms} == {0, 2} and any(tag.endswith("kernel/histogram") for tag, _ in histograms)
  assert {tag for tag, _, _ in validation} == {"epoch_loss", "epoch_accuracy", "evaluation_loss_vs_iterations",
                                               "evaluation_accuracy_vs_iterations"}
  assert sorted(step for tag, step, _ in validation if tag == "evaluation_loss_vs_iterations") == [3, 6, 9]
  fit(new_state(), make_train_step(xent), data, epochs=1, callbacks=[TensorBoard(tmp_path / "p", profile_batch=(2, 3))],
      verbose=0)  # jax.profiler records batches 2 and 3 where TensorBoard's profile plugin looks
  profiles = [name for _, _, names in os.walk(tmp_path / "p" / "train" / "plugins" / "profile") for name in names]
  assert any(name.endswith(".xplane.pb") for name in profiles)
  with pytest.raises(ValueError, match=r"update_freq=0 is not allowed; expected 'epoch', 'batch' or a positive"):
    TensorBoard(tmp_path, update_freq=0)
  with pytest.raises(ValueError, match=r"write_images=True is not supported"):
    TensorBoard(tmp_path, write_images=True)


def test_padded_examples_do_not_count():
  x, y = blobs(8)
  state = new_state()
  padded = {"x": np.concatenate([x, x[:4] * 100]), "y": np.concatenate([y, y[:4]]),
            "mask": np.r_[np.ones(8), np.zeros(4)].astype(np.float32)}
  eval_step = make_eval_step(xent)
  _, full = eval_step(state, {"x": x, "y": y})
  _, masked = eval_step(state, padded)
  np.testing.assert_allclose(masked["loss"], full["loss"], rtol=1e-6)


def test_resume_is_bitwise_identical(tmp_path):
  x, y = blobs()
  data = ArrayDataset(x, y, batch_size=16, seed=3)
  train_step = make_train_step(xent)
  straight, _ = fit(new_state(), train_step, data, steps=9, verbose=0)
  fit(new_state(), train_step, data, steps=4, checkpoint_dir=tmp_path, verbose=0)
  resumed, _ = fit(new_state(), train_step, data, steps=9, checkpoint_dir=tmp_path, resume=True, verbose=0)
  assert int(resumed.step) == 9
  assert leaves_equal(resumed.params, straight.params)
  assert leaves_equal(resumed.batch_stats, straight.batch_stats)
  assert leaves_equal(resumed.opt_state, straight.opt_state)


def test_checkpoints_keep_last_and_best(tmp_path):
  x, y = blobs()
  data = ArrayDataset(x, y, batch_size=32)
  val = ArrayDataset(*blobs(32, seed=9), batch_size=32, shuffle=False)
  fit(new_state(lr=0.02), make_train_step(xent), data, epochs=5, eval_step=make_eval_step(xent),
      validation_data=val, checkpoint_dir=tmp_path, keep_checkpoints=2, best_metric="val_loss", verbose=0)
  with Checkpointer(tmp_path, keep=2, best_metric="val_loss") as ckpt:
    steps = ckpt.all_steps()
    assert ckpt.latest_step() == 15
    assert {12, 15} <= set(steps) and len(steps) <= 3
    assert ckpt.best_step() in steps


def test_signal_saves_and_returns(tmp_path):
  class SendTerm(Callback):
    def on_epoch_end(self, epoch, logs=None):
      os.kill(os.getpid(), signal.SIGTERM)

  x, y = blobs()
  data = ArrayDataset(x, y, batch_size=32)
  state, history = fit(new_state(), make_train_step(xent), data, epochs=5, callbacks=[SendTerm()],
                       checkpoint_dir=tmp_path, verbose=0)
  assert history.stopped_by == "SIGTERM"
  assert int(state.step) == 3  # one epoch of 3 steps; the signal at its end stops before the next step
  with Checkpointer(tmp_path) as ckpt:
    assert ckpt.latest_step() == 3


def test_non_finite_loss_names_the_step_and_keeps_the_last_checkpoint(tmp_path):
  x, y = blobs()
  x[40:] = np.nan  # batches from the second epoch's first step on meet NaN inputs at some point
  data = ArrayDataset(x, y, batch_size=32, shuffle=False)
  with pytest.raises(NonFiniteLossError, match=r"at step 2; training stopped\. No checkpoint"):
    fit(new_state(), make_train_step(xent), data, epochs=2, verbose=0, log_every=1)
  clean = ArrayDataset(*blobs(), batch_size=32, shuffle=False)
  state, _ = fit(new_state(), make_train_step(xent), clean, epochs=1, checkpoint_dir=tmp_path, verbose=0)
  with pytest.raises(NonFiniteLossError, match=r"last good checkpoint \(step 3, verified\) is kept"):
    fit(state, make_train_step(xent), data, epochs=2, checkpoint_dir=tmp_path, verbose=0)
  with Checkpointer(tmp_path) as ckpt:
    assert ckpt.all_steps() == [3]
    shutil.rmtree(tmp_path / "3" / "checksum")  # an unverifiable checkpoint is not called good
    with pytest.warns(UserWarning, match=r"step 3 .* is incomplete: its checksum record .* is missing"):
      assert ckpt.latest_intact_step(new_state()) is None


def test_early_stopping():
  x, y = blobs()
  data = ArrayDataset(x, y, batch_size=32)
  _, history = fit(new_state(lr=0.0), make_train_step(xent), data, epochs=10,
                   callbacks=[EarlyStopping("loss", patience=1, min_delta=1.0)], verbose=0)
  assert history.stopped_by == "callback" and len(history.epochs) == 2


def test_frozen_parameters_are_bit_identical_and_same_seed_same_result():
  x, y = blobs()
  data = ArrayDataset(x, y, batch_size=32)
  tx = freeze(optax.adam(0.05), ["Dense_0/.*"])
  step = make_train_step(xent, frozen_batch_stats=["Dense_0/.*"])
  start = new_state(tx=tx)
  before = jax.tree.map(np.array, start.params), jax.tree.map(np.array, start.batch_stats)
  state, _ = fit(start, step, data, epochs=2, verbose=0)
  assert leaves_equal(state.params["Dense_0"], before[0]["Dense_0"])
  assert leaves_equal(state.batch_stats, before[1])
  assert not leaves_equal(state.params["Dense_1"], before[0]["Dense_1"])
  again, _ = fit(new_state(tx=tx), step, data, epochs=2, verbose=0)
  assert leaves_equal(again.params, state.params)


def test_freeze_rules_must_cover_and_match():
  params = new_state().params
  assert label_params(params, [("Dense_1/.*", "head"), (".*", "body")])["Dense_1"]["dense"]["kernel"] == "head"
  with pytest.raises(ValueError, match=r"frozen patterns \['Conv_.\*'\] match no path"):
    freeze(optax.sgd(0.1), ["Conv_.*"]).init(params)
  with pytest.raises(ValueError, match=r"match no parameter"):
    label_params(params, [("Conv_.*", "a"), (".*", "b")])
  with pytest.raises(ValueError, match=r"without a rule"):
    label_params(params, [("Dense_0/.*", "a")])


def test_gradient_accumulation_equals_one_big_batch():
  class Linear(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=False):
      return Dense(3)(x, train=train)

  x, y = blobs(32)
  batch = {"x": x, "y": y}
  states = [TrainState.create(Linear(), optax.sgd(0.1), x[:1]) for _ in range(2)]
  big, _ = make_train_step(xent)(states[0], batch)
  accumulated, _ = make_train_step(xent, accumulate_steps=4)(states[1], batch)
  for a, b in zip(jax.tree.leaves(big.params), jax.tree.leaves(accumulated.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_mixed_precision_keeps_float32_state_and_tracks_float32():
  x, y = blobs()
  data = ArrayDataset(x, y, batch_size=32)
  full, _ = fit(new_state(tx=optax.sgd(0.1)), make_train_step(xent), data, epochs=2, verbose=0)
  mixed, history = fit(new_state(tx=optax.sgd(0.1)), make_train_step(xent, compute_dtype=jnp.bfloat16), data,
                       epochs=2, verbose=0)
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves((mixed.params, mixed.batch_stats, mixed.opt_state))
             if jnp.issubdtype(a.dtype, jnp.floating))
  for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(mixed.params)):
    np.testing.assert_allclose(a, b, atol=0.02)
  assert np.isfinite(history.history["loss"]).all()


def test_bad_arguments():
  x, y = blobs()
  data = ArrayDataset(x, y, batch_size=32)
  with pytest.raises(ValueError, match="give exactly one of them"):
    fit(new_state(), make_train_step(xent), data, verbose=0)
  with pytest.raises(ValueError, match="accumulate_steps=0 is not allowed"):
    make_train_step(xent, accumulate_steps=0)
  with pytest.raises(ValueError, match="resume=True needs a checkpoint_dir"):
    fit(new_state(), make_train_step(xent), data, epochs=1, resume=True)
  with pytest.raises(ValueError, match=r"loss=3 is not allowed"):
    make_train_step(3)


def test_resuming_with_another_dataset_is_an_error_naming_both(tmp_path):
  x, y = blobs()
  step = make_train_step(xent)
  fit(new_state(), step, ArrayDataset(x, y, batch_size=32, seed=1), steps=2, checkpoint_dir=tmp_path, verbose=0)
  with pytest.raises(ValueError, match=r"written while reading a dataset with spec \{'size': 96, 'batch_size': 32, "
                                       r"'shuffle': True, 'seed': 1.*but train_data has spec .*'seed': 2"):
    fit(new_state(), step, ArrayDataset(x, y, batch_size=32, seed=2), steps=4, checkpoint_dir=tmp_path,
        resume=True, verbose=0)


def test_verbose_modes_as_in_keras(capsys):
  data = ArrayDataset(*blobs(), batch_size=32)
  fit(new_state(), make_train_step(xent), data, epochs=2, verbose=2)
  out, err = capsys.readouterr()
  lines = out.splitlines()
  # As Keras prints them: a header per epoch, then the steps, time, time per step and the logs.
  assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
  assert re.fullmatch(r"3/3 - \d+s - \d+[mu]s/step - loss: \d\.\d{4}", lines[1]), lines[1]
  assert "\r" not in out + err  # a log file gets one line per epoch, no progress-bar redraws
  fit(new_state(), make_train_step(xent), data, epochs=1, verbose=1)
  out, err = capsys.readouterr()
  assert out.startswith("3/3 - ") and "/3 " in err  # the bar (tqdm, on stderr), then the epoch's line
  fit(new_state(), make_train_step(xent), data, epochs=1, verbose=0)
  assert capsys.readouterr() == ("", "")
  fit(new_state(), make_train_step(xent), data, epochs=1)  # "auto": captured output is not a terminal
  out, err = capsys.readouterr()
  assert out.startswith("3/3 - ") and "loss: " in out and "\r" not in err
  with pytest.warns(DeprecationWarning, match=r"progress=\.\.\.\) is deprecated: use verbose=0"):
    fit(new_state(), make_train_step(xent), data, epochs=1, progress=False)
  assert capsys.readouterr() == ("", "")
  with pytest.raises(ValueError, match=r"verbose='loud' is not allowed; expected one of 'auto', 0, 1, 2"):
    fit(new_state(), make_train_step(xent), data, epochs=1, verbose="loud")


def test_predict_gives_every_output_in_fixed_size_batches():
  state = new_state()
  x, _ = blobs(37)
  expected = state.apply_fn(state.variables, x, train=False)
  np.testing.assert_allclose(predict(state, x, batch_size=8), expected, rtol=1e-6, atol=1e-6)
  module_out = predict(MLP(), x, variables=state.variables, batch_size=64)
  assert isinstance(module_out, np.ndarray) and module_out.shape == (37, 3)
  np.testing.assert_allclose(module_out, expected, rtol=1e-6, atol=1e-6)
  low = predict(state, x, batch_size=16, compute_dtype=jnp.bfloat16)
  assert low.dtype == jnp.bfloat16 and np.abs(low.astype(np.float32) - expected).max() < 0.1
  with pytest.raises(ValueError, match=r"predict\(MLP\(\.\.\.\), x\) needs variables="):
    predict(MLP(), x)
  with pytest.raises(ValueError, match=r"batch_size=0 is not allowed"):
    predict(state, x, batch_size=0)
  with pytest.raises(TypeError, match=r"model=dict is not allowed; expected a TrainState or a flax.linen.Module"):
    predict({"params": {}}, x)


def test_early_stopping_restores_the_best_weights_when_it_stops():
  class Scripted(Callback):
    """Makes `score` best at epoch 1 (0-based), then worse, whatever the model does."""

    adds_logs = ("score",)

    def __init__(self):
      super().__init__()
      self.seen = []

    def on_epoch_end(self, epoch, logs=None):
      logs["score"] = [3.0, 1.0, 2.0, 4.0, 5.0][epoch]
      self.seen.append(jax.tree.map(np.asarray, self.model.state.params))

  x, y = blobs()
  scripted = Scripted()
  stop = EarlyStopping("score", mode="min", patience=2, restore_best_weights=True)
  state, history = fit(new_state(), make_train_step(xent), ArrayDataset(x, y, batch_size=32), epochs=10,
                       callbacks=[scripted, stop], verbose=0)
  assert history.stopped_by == "callback" and len(history.epochs) == 4 and stop.best_epoch == 1
  assert leaves_equal(state.params, scripted.seen[1])
  assert int(state.step) == 12  # the optimizer's progress is kept, as in Keras
  kept, scripted = EarlyStopping("score", mode="min", patience=20, restore_best_weights=True), Scripted()
  state, _ = fit(new_state(), make_train_step(xent), ArrayDataset(x, y, batch_size=32), epochs=3,
                 callbacks=[scripted, kept], verbose=0)
  # As Keras 3: the best weights are restored at the end of training, stopped or not.
  assert not kept.stopped and leaves_equal(state.params, scripted.seen[1])
  assert not leaves_equal(state.params, scripted.seen[2])


def _scripted_score(scores):
  class Scripted(Callback):
    adds_logs = ("score",)

    def on_epoch_end(self, epoch, logs=None):
      logs["score"] = scores[epoch]

  return Scripted()


def test_reduce_lr_on_plateau_lowers_the_logged_rate_with_patience_cooldown_and_floor(tmp_path, capsys):
  x, y = blobs()
  reduce = ReduceLROnPlateau("score", mode="min", factor=0.5, patience=2, cooldown=1, min_lr=0.02, min_delta=0.0,
                             verbose=1)
  state, history = fit(new_state(tx=optimizers.get("sgd", learning_rate=0.1)), make_train_step(xent),
                       ArrayDataset(x, y, batch_size=32), epochs=9, checkpoint_dir=tmp_path,
                       callbacks=[_scripted_score([5, 4, 4, 4, 4, 4, 4, 4, 4]), reduce], verbose=2)
  # Epochs 3-4 stall (patience 2): halved; epoch 5 is the cooldown, 5-6 stall: halved; 7-8: floored at 0.02.
  assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02],
                                                           rel=1e-6)
  assert list(history.history) == ["loss", "score", "learning_rate"]  # as Keras: sorted, then what callbacks add
  assert optimizers.learning_rate_logs(state.opt_state)["learning_rate"] == pytest.approx(0.02)
  assert "Epoch 4: ReduceLROnPlateau reducing learning rate to 0.05" in capsys.readouterr().out
  restored = Checkpointer(tmp_path).restore(new_state(tx=optimizers.get("sgd", learning_rate=0.1)))
  assert optimizers.learning_rate_logs(restored.opt_state)["learning_rate"] == pytest.approx(0.02)


def test_reduce_lr_on_plateau_reduces_what_the_optimizer_uses():
  x, y = blobs()
  data, step = ArrayDataset(x, y, batch_size=32, shuffle=False), make_train_step(xent)
  reduced, _ = fit(new_state(tx=optimizers.get("sgd", learning_rate=0.1)), step, data, epochs=3, verbose=0,
                   callbacks=[_scripted_score([1, 1, 1]),
                              ReduceLROnPlateau("score", mode="min", factor=0.5, patience=0)])
  by_hand, _ = fit(new_state(tx=optimizers.get("sgd", learning_rate=0.1)), step, data, epochs=2, verbose=0)
  by_hand = by_hand.replace(opt_state=optimizers.set_learning_rate(by_hand.opt_state, lambda old: old * 0.5))
  by_hand, _ = fit(by_hand, step, data, epochs=3, initial_epoch=2, verbose=0)
  assert leaves_equal(reduced.params, by_hand.params)


def test_reduce_lr_on_plateau_needs_a_rate_it_can_set():
  x, y = blobs()
  data, step = ArrayDataset(x, y, batch_size=32), make_train_step(xent)
  with pytest.raises(ValueError, match=r"factor=1.5 is not allowed; expected a float in \[0, 1\)"):
    ReduceLROnPlateau(factor=1.5)
  with pytest.raises(ValueError, match=r"patience=-1 is not allowed; expected a non-negative integer"):
    ReduceLROnPlateau(patience=-1)
  with pytest.raises(ValueError, match=r"min_lr=nan is not allowed; expected a finite float >= 0"):
    ReduceLROnPlateau(min_lr=float("nan"))
  with pytest.raises(ValueError, match=r"patience=1.5 is not allowed; expected a non-negative integer"):
    EarlyStopping(patience=1.5)
  state = new_state()  # optax.adam: no learning rate in its state
  with pytest.raises(ValueError, match=r"learning rate cannot be set: the optimizer state holds none; build the "
                                       r"optimizer with jaxcomponents.optimizers.get"):
    fit(state, step, data, epochs=1, callbacks=[ReduceLROnPlateau("loss")], verbose=0)
  assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(state))
  scheduled = new_state(tx=optimizers.get("adam", learning_rate=optax.cosine_decay_schedule(0.1, 10)))
  with pytest.raises(ValueError, match=r"it follows a schedule"):
    fit(scheduled, step, data, epochs=1, callbacks=[ReduceLROnPlateau("loss")], verbose=0)
  trained, history = fit(scheduled, step, data, epochs=1, verbose=0)
  assert "learning_rate" not in history.history  # as Keras: only a callback that sets the rate logs it
  assert optimizers.learning_rate_logs(trained.opt_state)["learning_rate"] == pytest.approx(
      0.1 * 0.5 * (1 + np.cos(np.pi * 2 / 10)))


def test_each_partition_logs_its_learning_rate():
  state = new_state(tx=optax.multi_transform(
      {"a": optimizers.get("sgd", learning_rate=0.1), "b": optimizers.get("sgd", learning_rate=0.2)},
      lambda params: jax.tree_util.tree_map_with_path(lambda path, _: "a" if "Dense_0" in str(path) else "b",
                                                      params)))
  logs = optimizers.learning_rate_logs(state.opt_state)
  assert sorted(logs) == ["learning_rate_inner_states_a_inner_state", "learning_rate_inner_states_b_inner_state"]
  assert sorted(logs.values()) == pytest.approx([0.1, 0.2])


def test_auto_mode_reads_the_direction_from_the_name_and_refuses_a_name_it_cannot_tell_as_keras():
  assert EarlyStopping("val_mean_io_u").mode == "max"  # Keras's MeanIoU is named mean_io_u
  assert EarlyStopping("val_dice_coef").mode == "max" and EarlyStopping("val_auc_1").mode == "max"
  assert EarlyStopping("val_mean_squared_error").mode == "min" and EarlyStopping("out_loss").mode == "min"
  unknown = EarlyStopping("score")  # settled when fit begins, from the metric logged as "score", as Keras does
  assert unknown.mode == "auto"
  with pytest.raises(ValueError, match=r"EarlyStopping\(monitor='score', mode='auto'\) cannot tell whether 'score' "
                                       r"should be minimised or maximised; pass mode='min' or mode='max'"):
    unknown.resolve_mode({})
  unknown.resolve_mode({"score": metrics.get("auc")})
  assert unknown.mode == "max"


@pytest.mark.parametrize("send_as_json", [False, True])
def test_remote_monitor_posts_each_epochs_logs_as_keras_does(send_as_json):
  received = []

  class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # pylint: disable=invalid-name
      body = self.rfile.read(int(self.headers["Content-Length"])).decode()
      if self.path == "/garbled":
        self.wfile.write(b"not HTTP at all\r\n\r\n")
        return
      received.append((self.path, self.headers["Content-Type"], self.headers.get("X-Run"), body))
      self.send_response(500 if self.path == "/failing" else 200)
      self.end_headers()

    def log_message(self, *args):  # quiet
      pass

  server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    root = f"http://127.0.0.1:{server.server_port}"
    monitor = RemoteMonitor(root=root, path="/epochs", headers={"X-Run": "7"}, send_as_json=send_as_json, timeout=5)
    _, history = fit(new_state(), make_train_step(xent, ACC), ArrayDataset(*blobs(), batch_size=32, seed=1),
                     epochs=2, callbacks=[monitor], verbose=0)
    with warnings.catch_warnings():
      warnings.simplefilter("error")  # a server that answers with an error status was reached: nothing to say
      RemoteMonitor(root=root, path="/failing", timeout=5).on_epoch_end(0, {"loss": 1.0})
    received.pop()
    with pytest.warns(UserWarning, match=r"Could not reach RemoteMonitor root server"):  # a reply that is not HTTP
      RemoteMonitor(root=root, path="/garbled", timeout=5).on_epoch_end(0, {"loss": 1.0})
  finally:
    server.shutdown()
    thread.join(5)
  assert [(path, kind, run) for path, kind, run, _ in received] == [
      ("/epochs", "application/json" if send_as_json else "application/x-www-form-urlencoded", "7")] * 2
  for epoch, (*_, body) in enumerate(received):
    sent = json.loads(body if send_as_json else urllib.parse.parse_qs(body)["data"][0])
    assert sent == {"epoch": epoch, **{k: v[epoch] for k, v in history.history.items()}}
  for root in ("http://127.0.0.1:9", "http://127.0.0.1:notaport"):  # port 9: nobody listens; a port that is none
    with pytest.warns(UserWarning, match=rf"Could not reach RemoteMonitor root server at {root}"):
      RemoteMonitor(root=root, timeout=5).on_epoch_end(0, {"loss": 1.0})
