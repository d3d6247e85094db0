"""Faults injected into `fit`: nothing the user made is lost, every failure says what happened and what to do.

An exception mid-epoch, a kill -9 during a save, damaged checkpoints, an
unwritable directory, a rerun into a used directory, monitors naming no log.
"""

import os
import re
import signal
import subprocess
import threading
import sys
import time
import warnings

import jax
import numpy as np
import pytest

from jaxcomponents.data import ArrayDataset, RecordDataset
from jaxcomponents.training import (Callback, Checkpointer, CheckpointError, EarlyStopping, fit, make_eval_step,
                                    make_train_step)
from tests.training_problem import blobs, leaves_equal, new_state, xent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data(seed=3):
  return ArrayDataset(*blobs(), batch_size=16, seed=seed)  # 6 steps per epoch


def straight_run(epochs):
  state, _ = fit(new_state(), make_train_step(xent), data(), epochs=epochs, verbose=0)
  return state


class CorruptRecords:
  """A record source whose record `bad` cannot be read the second time (an image file damaged meanwhile)."""

  def __init__(self, bad: int):
    self.x, self.y = blobs()
    self.bad, self.reads = bad, 0

  def __len__(self):
    return len(self.x)

  def __getitem__(self, i):
    if i == self.bad:
      self.reads += 1
      if self.reads > 1:
        raise OSError(f"record {i}: image file is truncated")
    return self.x[i], self.y[i]


def test_an_exception_mid_epoch_keeps_the_latest_state_and_the_checkpoints(tmp_path):
  records = CorruptRecords(bad=50)
  source = RecordDataset(records, lambda r: r, batch_size=16, shuffle=False, threads=0)  # record 50: batch 3
  with pytest.raises(OSError, match="record 50: image file is truncated") as caught:
    fit(new_state(), make_train_step(xent), source, epochs=3, checkpoint_dir=tmp_path, verbose=0)
  error = caught.value
  # The first epoch (6 steps) finished and was saved; in the second, batches 0-2 trained, then batch 3 failed.
  assert int(error.state.step) == 9
  assert "latest good state (step 9)" in "\n".join(error.__notes__)
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(error.state.params))
  with Checkpointer(tmp_path) as ckpt:
    assert ckpt.all_steps() == [6]
    assert int(ckpt.restore(new_state()).step) == 6
  # The state carried by the error trains on.
  state, _ = fit(error.state, make_train_step(xent), data(), steps=2, verbose=0)
  assert int(state.step) == 11


def test_an_exception_in_a_callback_keeps_the_state():
  class Broken(Callback):
    def on_epoch_end(self, epoch, logs=None):
      raise RuntimeError("the plotting callback failed")

  with pytest.raises(RuntimeError, match="plotting callback failed") as caught:
    fit(new_state(), make_train_step(xent), data(), epochs=2, callbacks=[Broken()], verbose=0)
  assert int(caught.value.state.step) == 6


def test_monitors_naming_no_log_are_told_before_the_first_step():
  class Unreadable:
    def __len__(self):
      return 3

    def epoch(self, index):
      raise AssertionError("no batch may be read before the arguments are checked")

  state = new_state()
  with pytest.warns(UserWarning, match=r"EarlyStopping monitor='val_accuracy' names no log of this run; the logs "
                                     r"will be \['loss'\]"), \
       pytest.raises(AssertionError, match="no batch may be read"):  # told before the first batch; Keras trains on
    fit(state, make_train_step(xent), Unreadable(), epochs=2, callbacks=[EarlyStopping("val_accuracy")],
        verbose=0)
  with pytest.raises(ValueError, match=r"best_metric='val_los' names no log of this run; the logs will be \['loss', "
                                       r"'val_loss'\]"):
    fit(state, make_train_step(xent), Unreadable(), epochs=2, eval_step=make_eval_step(xent),
        validation_data=Unreadable(), checkpoint_dir=None, best_metric="val_los", verbose=0)
  assert int(state.step) == 0 and not any(leaf.is_deleted() for leaf in jax.tree.leaves(state))


def test_kill_9_during_a_save_then_resume_gives_the_uninterrupted_result(tmp_path):
  child = (
      "import os, signal, sys\n"
      "from jaxcomponents.training import Checkpointer, fit, make_train_step\n"
      "from tests.test_fault_injection import data\n"
      "from tests.training_problem import new_state, xent\n"
      "save = Checkpointer.save\n"
      "def save_then_die(self, state, *args, **kwargs):\n"
      "  save(self, state, *args, **kwargs)\n"
      "  if int(state.step) == 18:  # the checkpoint of step 18 has just begun writing in the background\n"
      "    os.kill(os.getpid(), signal.SIGKILL)\n"
      "Checkpointer.save = save_then_die\n"
      "fit(new_state(), make_train_step(xent), data(), epochs=5, checkpoint_dir=sys.argv[1], verbose=0)\n")
  done = subprocess.run([sys.executable, "-c", child, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                        timeout=240)
  assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    resumed, history = fit(new_state(), make_train_step(xent), data(), epochs=5, checkpoint_dir=tmp_path,
                           resume=True, verbose=0)
  # The killed run's lock is reclaimed; an unfinished save is not a damaged checkpoint, so nothing else warns.
  assert len(caught) == 1, [str(w.message) for w in caught]
  assert re.search(r"held a lock of a run that has ended \(process \d+ on host .*\); reclaimed it\.",
                   str(caught[0].message))
  assert history.epochs[0] in (2, 3)  # resumed after the step-12 checkpoint, or the step-18 one if it completed
  expected = straight_run(5)
  assert int(resumed.step) == 30
  assert leaves_equal(resumed.params, expected.params) and leaves_equal(resumed.opt_state, expected.opt_state)


def _three_checkpoints(directory):
  fit(new_state(), make_train_step(xent), data(), epochs=3, checkpoint_dir=directory, verbose=0)


def _flip_bytes(folder):
  for root, _, files in os.walk(folder):
    for name in files:
      path = os.path.join(root, name)
      if os.sep + "d" + os.sep in path:  # orbax's array data files
        blob = bytearray(open(path, "rb").read())
        for i in range(len(blob) // 3, len(blob), max(1, len(blob) // 7)):
          blob[i] ^= 0x5A
        open(path, "wb").write(bytes(blob))


@pytest.mark.parametrize("damage", ["flipped bytes", "truncated metadata", "deleted arrays", "arrays not as saved"])
def test_a_damaged_newest_checkpoint_falls_back_to_an_intact_one(tmp_path, damage):
  _three_checkpoints(tmp_path)
  newest = tmp_path / "18"
  if damage == "flipped bytes":
    _flip_bytes(newest)
  elif damage == "truncated metadata":
    (newest / "state" / "_METADATA").write_text('{"tree_metadata": ')
  elif damage == "arrays not as saved":  # arrays that read back fine but are not the ones saved
    (newest / "checksum" / "metadata").write_text('{"sha256": "' + "0" * 64 + '"}')
  else:
    for root, _, files in os.walk(newest / "state"):
      for name in files:
        if os.sep + "d" + os.sep in os.path.join(root, name):
          os.remove(os.path.join(root, name))
  with pytest.warns(UserWarning, match=r"checkpoint step 18 in .* (is damaged|cannot be read).*trying the checkpoint "
                                       r"before it"):
    resumed, _ = fit(new_state(), make_train_step(xent), data(), epochs=4, checkpoint_dir=tmp_path, resume=True,
                     verbose=0)
  expected = straight_run(4)
  assert int(resumed.step) == 24 and leaves_equal(resumed.params, expected.params)


def test_no_intact_checkpoint_is_an_error_naming_each_step(tmp_path):
  _three_checkpoints(tmp_path)
  with Checkpointer(tmp_path) as ckpt:
    steps = ckpt.all_steps()
  for step in steps:
    _flip_bytes(tmp_path / str(step))
  damaged = r"no intact checkpoint to restore: checkpoint step 18 .*step 12 .*step 6 .*new checkpoint_dir"
  with pytest.warns(UserWarning), pytest.raises(CheckpointError, match=damaged):
    fit(new_state(), make_train_step(xent), data(), epochs=4, checkpoint_dir=tmp_path, resume=True, verbose=0)
  with Checkpointer(tmp_path) as ckpt, pytest.raises(CheckpointError, match=r"checkpoint step 12 in .* cannot be read"):
    ckpt.restore(new_state(), step=12)


@pytest.mark.parametrize("kind", ["a plain file", "below a plain file"])
def test_an_unwritable_checkpoint_dir_fails_at_once_and_exits_without_hanging(tmp_path, kind):
  (tmp_path / "file").write_text("not a directory")
  target = tmp_path / "file" if kind == "a plain file" else tmp_path / "file" / "checkpoints"
  child = ("import sys\n"
           "from jaxcomponents.training import fit, make_train_step\n"
           "from tests.test_fault_injection import data\n"
           "from tests.training_problem import new_state, xent\n"
           "try:\n"
           "  fit(new_state(), make_train_step(xent), data(), epochs=2, checkpoint_dir=sys.argv[1], verbose=0)\n"
           "except Exception as e:\n"
           "  print(type(e).__name__, e)\n")
  start = time.monotonic()
  done = subprocess.run([sys.executable, "-c", child, str(target)], cwd=ROOT, capture_output=True, text=True,
                        timeout=120)
  assert time.monotonic() - start < 60 and done.returncode == 0, done.stderr[-2000:]
  assert f"CheckpointError checkpoint_dir='{target}' cannot be written" in done.stdout
  assert "give a directory this process can create and write" in done.stdout


def test_a_rerun_into_a_used_directory_is_an_error_unless_resume_or_overwrite(tmp_path):
  _three_checkpoints(tmp_path)
  fresh = new_state(seed=1)
  with pytest.raises(ValueError, match=r"already holds the checkpoints of a run \(steps \[6, 12, 18\]\); pass "
                                       r"resume=True to continue it, overwrite=True to replace them"):
    fit(fresh, make_train_step(xent), data(), epochs=1, checkpoint_dir=tmp_path, verbose=0)
  assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(fresh))  # the state passed in is untouched
  second, _ = fit(fresh, make_train_step(xent), data(), epochs=1, checkpoint_dir=tmp_path, overwrite=True,
                  verbose=0)
  with Checkpointer(tmp_path) as ckpt:
    assert ckpt.all_steps() == [6]
    assert leaves_equal(ckpt.restore(new_state()).params, second.params)
  with pytest.raises(ValueError, match="resume=True and overwrite=True contradict each other"):
    fit(new_state(), make_train_step(xent), data(), epochs=1, checkpoint_dir=tmp_path, resume=True, overwrite=True)


def test_training_the_returned_state_further_continues_in_the_same_directory(tmp_path):
  train_step = make_train_step(xent)
  state, _ = fit(new_state(), train_step, data(), epochs=2, checkpoint_dir=tmp_path, verbose=0)
  # As Keras's fit: a second call trains `epochs - initial_epoch` more epochs from the state it is given.
  state, history = fit(state, train_step, data(), epochs=2, checkpoint_dir=tmp_path, verbose=0)
  assert int(state.step) == 24 and history.epoch == [0, 1]  # Keras's epoch numbers; the data reads on
  assert leaves_equal(state.params, straight_run(4).params)
  state, history = fit(state, train_step, data(), epochs=6, initial_epoch=4, verbose=0)
  assert int(state.step) == 36 and history.epochs == [4, 5]
  with pytest.raises(ValueError, match=r"initial_epoch=6 is not allowed with epochs=6; expected an integer in "
                                       r"\[0, epochs\)"):
    fit(state, train_step, data(), epochs=6, initial_epoch=6)


def test_weights_restore_for_inference_needs_no_optimizer(tmp_path):
  _three_checkpoints(tmp_path)
  template = new_state()
  with Checkpointer(tmp_path) as ckpt:
    params, batch_stats = ckpt.restore_weights(template.params, template.batch_stats)
    full = ckpt.restore(new_state())
  assert leaves_equal(params, full.params) and leaves_equal(batch_stats, full.batch_stats)


def test_ctrl_c_is_honoured_within_a_second_while_the_data_source_blocks(tmp_path):
  release = threading.Event()

  class Stalling:
    """Three batches, then a read that blocks (a network file system that stopped answering)."""

    def __len__(self):
      return 6

    def epoch(self, index):
      x, y = blobs()
      for i in range(3):
        yield {"x": x[16 * i:16 * (i + 1)], "y": y[16 * i:16 * (i + 1)]}
      release.wait(60)

  sent = []

  class InterruptWhenStalled(Callback):
    def on_train_begin(self, logs=None):
      self.third_done = threading.Event()

      def interrupt():  # once the third step is done, while the loop waits for a fourth batch that never comes
        self.third_done.wait(120)
        time.sleep(0.3)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)
      threading.Thread(target=interrupt, daemon=True).start()

    def on_train_batch_end(self, batch, logs=None):
      if batch == 2:
        self.third_done.set()

  try:
    state, history = fit(new_state(), make_train_step(xent), Stalling(), epochs=1, verbose=0,
                         callbacks=[InterruptWhenStalled()])
    waited = time.monotonic() - sent[0]
    assert history.stopped_by == "SIGINT" and int(state.step) == 3
    assert waited < 1.0, waited  # from the signal to fit's return
    sent.clear()
    state, history = fit(new_state(), make_train_step(xent), Stalling(), epochs=1, checkpoint_dir=tmp_path,
                         callbacks=[InterruptWhenStalled()], verbose=0)
  finally:
    release.set()
  assert history.stopped_by == "SIGINT" and int(state.step) == 3
  with Checkpointer(tmp_path) as ckpt:
    assert ckpt.all_steps() == [3]  # the work so far is saved


def test_class_labels_are_checked_against_the_model_before_the_first_step():
  x, y = blobs()
  y[[5, 17]] = [7, 3]  # the MLP has 3 outputs
  state = new_state()
  with pytest.raises(ValueError, match=r"train_data \(for the model's 3 outputs\) has labels outside \[0, 3\): e\.g\. "
                                       r"\[7, 3\] at indices \[5, 17\]"):
    fit(state, make_train_step("sparse_categorical_crossentropy"), ArrayDataset(x, y, batch_size=16), epochs=1,
        verbose=0)
  with pytest.raises(ValueError, match=r"validation_data has labels like \[0\.5\]; sparse_categorical_crossentropy "
                                       r"takes integer class indices"):
    fit(state, make_train_step("sparse_categorical_crossentropy"), data(), epochs=1, verbose=0,
        eval_step=make_eval_step("sparse_categorical_crossentropy"),
        validation_data=ArrayDataset(x[:4], np.array([0, 1, 0.5, 2]), batch_size=4))
  assert int(state.step) == 0 and not any(leaf.is_deleted() for leaf in jax.tree.leaves(state))


def test_labels_read_record_by_record_are_checked_against_the_model_as_each_batch_arrives():
  x, y = blobs()
  y[37] = 5  # the MLP has 3 outputs; a RecordDataset without num_classes cannot know
  records = RecordDataset(list(zip(x, y)), lambda r: r, batch_size=16, shuffle=False, threads=0)
  with pytest.raises(ValueError, match=r"a batch of train_data \(for the model's 3 outputs\) has labels outside "
                                       r"\[0, 3\): e\.g\. \[5\] at indices \[5\]") as caught:
    fit(new_state(), make_train_step("sparse_categorical_crossentropy"), records, epochs=1, verbose=0)
  assert int(caught.value.state.step) == 2  # batches 0 and 1 trained; batch 2 (records 32-47) was refused
