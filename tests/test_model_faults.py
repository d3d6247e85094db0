"""Faults injected into `Model.fit`: the same guarantees as the functional `fit` it runs on.

A signal mid-run with `BackupAndRestore` (saved, then resumed bit for bit), an exception in the data or a
callback (the model keeps its latest good state), a non-finite loss (named, stopped), Ctrl-C while the data
source blocks, and a bad checkpoint file target refused before the first step.
"""

import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import jax
import numpy as np
import pytest

from jaxcomponents import Model, callbacks
from jaxcomponents.data import RecordDataset
from jaxcomponents.training import CheckpointError, NonFiniteLossError
from tests.training_problem import MLP, blobs, leaves_equal, xent


def compiled(seed=0):
  model = Model(MLP(), seed=seed)
  model.compile(optimizer="adam", loss=xent, metrics=["sparse_categorical_accuracy"])
  return model


def test_sigterm_saves_the_backup_and_a_rerun_resumes_bit_for_bit(tmp_path):
  x, y = blobs()
  straight = compiled()
  straight.fit(x, y, batch_size=16, epochs=4, verbose=0)

  class SendTerm(callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      if int(self.model.state.step) == 9:  # mid second epoch
        os.kill(os.getpid(), signal.SIGTERM)

  first = compiled()
  history = first.fit(x, y, batch_size=16, epochs=4, verbose=0,
                      callbacks=[callbacks.BackupAndRestore(tmp_path), SendTerm()])
  assert history.stopped_by == "SIGTERM" and int(first.state.step) == 9
  second = compiled()
  history = second.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[callbacks.BackupAndRestore(tmp_path)])
  assert history.epoch == [1, 2, 3] and int(second.state.step) == 24
  assert leaves_equal(second.state.params, straight.state.params)
  assert leaves_equal(second.state.opt_state, straight.state.opt_state)


def test_an_exception_keeps_the_latest_good_state_on_the_model_and_the_error():
  x, y = blobs()

  class Records:
    reads = 0

    def __len__(self):
      return len(x)

    def __getitem__(self, i):
      if i == 50:
        Records.reads += 1
        if Records.reads > 1:
          raise OSError("record 50: image file is truncated")
      return x[i], y[i]

  model = compiled()
  with pytest.raises(OSError, match="record 50") as caught:
    model.fit(RecordDataset(Records(), lambda r: r, batch_size=16, shuffle=False, threads=0), epochs=3, verbose=0)
  assert int(caught.value.state.step) == 9 and int(model.state.step) == 9
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(model.state.params))
  model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # trains on from there
  assert int(model.state.step) == 15

  class Broken(callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
      raise RuntimeError("the plotting callback failed")

  with pytest.raises(RuntimeError, match="plotting callback failed") as caught:
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[Broken()])
  assert int(model.state.step) == int(caught.value.state.step) == 21


def test_a_non_finite_loss_is_named_and_stops_training():
  x, y = blobs()
  x[40:] = np.nan
  model = compiled()
  with pytest.raises(NonFiniteLossError, match=r"at step 3; training stopped"):
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)


def test_ctrl_c_while_the_data_source_blocks_returns_within_a_second():
  release = threading.Event()
  x, y = blobs()

  class Stalling:
    def __len__(self):
      return 6

    def epoch(self, index):
      for i in range(3):
        yield {"x": x[16 * i:16 * (i + 1)], "y": y[16 * i:16 * (i + 1)]}
      release.wait(60)

  sent, third_done = [], threading.Event()

  class Interrupt(callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      if batch == 2:
        third_done.set()

    def on_train_begin(self, logs=None):
      def interrupt():  # once the third step is done, while the loop waits for a fourth batch that never comes
        third_done.wait(120)
        time.sleep(0.3)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)
      threading.Thread(target=interrupt, daemon=True).start()

  model = compiled()
  try:
    history = model.fit(Stalling(), epochs=1, verbose=0, callbacks=[Interrupt()])
    waited = time.monotonic() - sent[0]
  finally:
    release.set()
  assert history.stopped_by == "SIGINT" and int(model.state.step) == 3 and waited < 1.0


def test_a_checkpoint_target_the_model_cannot_write_is_refused_before_the_first_step(tmp_path):
  x, y = blobs()
  model = compiled()
  with pytest.raises(ValueError, match=r"MLP has no Keras architecture to write as .weights.h5"):
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[callbacks.ModelCheckpoint(tmp_path / "w.weights.h5", save_weights_only=True)])
  assert model.state is not None and int(model.state.step) == 0


def test_a_damaged_newest_backup_falls_back_to_an_intact_one(tmp_path):
  from tests.test_fault_injection import _flip_bytes

  x, y = blobs()

  class Interrupt(callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
      if epoch == 2:
        raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    compiled().fit(x, y, batch_size=16, epochs=4, verbose=0,
                   callbacks=[callbacks.BackupAndRestore(tmp_path, delete_checkpoint=False), Interrupt()])
  steps = sorted(int(name) for name in os.listdir(tmp_path) if name.isdigit())
  assert steps == [12]  # the backup keeps the newest only: epoch 2 stopped before its save
  _flip_bytes(tmp_path / "12")
  with pytest.warns(UserWarning, match=r"checkpoint step 12 in .* (is damaged|cannot be read)"), \
       pytest.raises(Exception, match=r"no intact checkpoint to restore: checkpoint step 12"):
    compiled().fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[callbacks.BackupAndRestore(tmp_path)])


def test_arguments_monitors_and_labels_are_checked_before_the_first_step(tmp_path):
  x, y = blobs()
  model = compiled()
  with pytest.warns(UserWarning, match=r"EarlyStopping monitor='val_accuracy' names no log of this run; the logs will "
                                     r"be \['loss', 'sparse_categorical_accuracy'\]"):  # Keras warns and trains on
    compiled().fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.EarlyStopping("val_accuracy")])
  bad = y.copy()
  bad[[5, 17]] = [7, 3]
  strict = Model(MLP())
  strict.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
  with pytest.raises(ValueError, match=r"train_data \(for the model's 3 outputs\) has labels outside \[0, 3\)"):
    strict.fit(x, bad, epochs=1, verbose=0)
  (tmp_path / "file").write_text("not a directory")
  with pytest.raises(CheckpointError, match=r"cannot be written \(Not a directory\)"):
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.BackupAndRestore(tmp_path / "file" / "backup")])
  for m in (model, strict):
    assert int(m.state.step) == 0  # nothing trained, nothing lost


def test_kill_9_during_a_backup_then_rerun_gives_the_uninterrupted_result(tmp_path):
  child = (
      "import os, signal, sys\n"
      "from jaxcomponents import callbacks\n"
      "from jaxcomponents.training import Checkpointer\n"
      "from tests.test_model_faults import compiled\n"
      "from tests.training_problem import blobs\n"
      "save = Checkpointer.save\n"
      "def save_then_die(self, state, *args, **kwargs):\n"
      "  save(self, state, *args, **kwargs)\n"
      "  if int(state.step) == 18:  # the backup of step 18 has just begun writing in the background\n"
      "    os.kill(os.getpid(), signal.SIGKILL)\n"
      "Checkpointer.save = save_then_die\n"
      "compiled().fit(*blobs(), batch_size=16, epochs=5, verbose=0,\n"
      "               callbacks=[callbacks.BackupAndRestore(sys.argv[1])])\n")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  done = subprocess.run([sys.executable, "-c", child, str(tmp_path)], cwd=root, capture_output=True, text=True,
                        timeout=240)
  assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
  x, y = blobs()
  resumed, straight = compiled(), compiled()
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    history = resumed.fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=[callbacks.BackupAndRestore(tmp_path)])
  # The killed run's lock is reclaimed; an unfinished save is not a damaged backup, so nothing else warns.
  assert len(caught) == 1 and "held a lock of a run that has ended" in str(caught[0].message), caught
  assert history.epoch[0] in (2, 3)  # after the backup of step 12, or of step 18 if it completed
  straight.fit(x, y, batch_size=16, epochs=5, verbose=0)
  assert int(resumed.state.step) == 30
  assert leaves_equal(resumed.state.params, straight.state.params)
  assert leaves_equal(resumed.state.opt_state, straight.state.opt_state)


def test_a_whole_model_saves_to_a_folder_and_loads_without_trusting_it(tmp_path):
  import json

  from jaxcomponents import load_model
  from jaxcomponents.layers import Convolution, Recurrent
  from jaxcomponents.layers.cells import LSTMCell

  with pytest.raises(ValueError, match=r"tests.training_problem.MLP, not a jaxcomponents module"):
    compiled().check_writable(tmp_path / "mlp")  # a module of the user's own: its variables save, not its code
  for module, sample in ((Convolution(4, 3, batch_norm=True, pool="max"), np.ones((2, 8, 8, 3), np.float32)),
                         (Recurrent(5, cell=LSTMCell(5), return_sequences=True), np.ones((2, 4, 3), np.float32))):
    m = Model(module)
    m.build(sample)
    m.save(tmp_path / type(module).__name__)
    loaded = load_model(tmp_path / type(module).__name__)
    assert loaded.module == module
    np.testing.assert_array_equal(loaded.predict(sample, verbose=0), m.predict(sample, verbose=0))
  with pytest.raises(FileExistsError, match=r"exists; pass overwrite=True"):
    m.save(tmp_path / "Recurrent", overwrite=False)
  m.compile(optimizer="sgd", loss="mse")
  m.fit(sample, np.zeros((2, 4, 5), np.float32), epochs=2, verbose=0,
        callbacks=[callbacks.ModelCheckpoint(str(tmp_path / "every" / "epoch-{epoch}"))])
  assert sorted(os.listdir(tmp_path / "every")) == ["epoch-1", "epoch-2"]
  np.testing.assert_array_equal(load_model(tmp_path / "every" / "epoch-2").predict(sample, verbose=0),
                                m.predict(sample, verbose=0))
  (tmp_path / "mine").mkdir()
  (tmp_path / "mine" / "notes.txt").write_text("a user's file")
  refused = r"is not a saved model \(holding architecture.json\); choose another folder \(nothing was written\)"
  with pytest.raises(FileExistsError, match=refused):
    m.save(tmp_path / "mine")
  assert (tmp_path / "mine" / "notes.txt").read_text() == "a user's file"
  stranger = tmp_path / "Convolution" / "architecture.json"
  data = json.loads(stranger.read_text())
  data["module"]["__module__"] = "os:system"
  stranger.write_text(json.dumps(data))
  with pytest.raises(ValueError, match=r"may only name jaxcomponents' module classes"):
    load_model(tmp_path / "Convolution")
