"""Never lose a run: signals at any point, one writer per checkpoint folder, damaged records, full disks, forged sizes.

Sibling of test_fault_injection.py. Runs that must be interrupted or that
measure memory run in child processes (`tests.run_safety_worker`), each
bounded in time.
"""

import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import jax
import jaxcomponents
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxcomponents.training import Checkpointer, CheckpointError, fit, make_train_step
from jaxcomponents.training.folder_lock import LOCK_FILE, FolderInUseError
from tests import run_safety_worker as worker
from tests.training_problem import leaves_equal, new_state, xent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def straight_run(kind: str):
  state, _ = fit(new_state(), make_train_step(xent), worker.data(kind, paced=False), epochs=worker.EPOCHS[kind],
                 verbose=0)
  return state


def start_worker(kind: str, checkpoint_dir) -> subprocess.Popen:
  """The worker, its stderr merged into its stdout: one pipe to drain, so a chatty stderr cannot stall it."""
  return subprocess.Popen([sys.executable, "-m", "tests.run_safety_worker", kind, str(checkpoint_dir)], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def read_until_step(child: subprocess.Popen, step: int, deadline_s: float = 120) -> bytes:
  """What the worker printed up to its line `step {step}`; kills it if that takes longer than `deadline_s`."""
  fd, deadline, said = child.stdout.fileno(), time.monotonic() + deadline_s, b"\n"
  while f"\nstep {step}\n".encode() not in said:
    ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0.0))
    chunk = os.read(fd, 1 << 16) if ready else b""
    if not chunk:
      child.kill()
      child.wait(timeout=30)
      what = f"ended before step {step}" if ready else f"did not reach step {step} within {deadline_s} s"
      raise AssertionError(f"the worker {what}: {said[1:].decode(errors='replace')[-2000:]}")
    said += chunk
  return said[1:]


def finish(child: subprocess.Popen, said: bytes, timeout: float) -> str:
  """Everything the worker printed, once it has ended (within `timeout` seconds)."""
  rest, _ = child.communicate(timeout=timeout)
  return (said + rest).decode(errors="replace")


def returned(output: str) -> list[str]:
  """The worker's `returned STEP STOPPED_BY MONOTONIC_TIME` line, split."""
  found = re.findall(r"^returned (\S+) (\S+) (\S+)$", output, re.MULTILINE)
  assert found, output[-2000:]
  return list(found[-1])


def assert_same_training(a, b) -> None:
  assert int(a.step) == int(b.step)
  assert leaves_equal(a.params, b.params) and leaves_equal(a.opt_state, b.opt_state)
  assert leaves_equal(a.batch_stats, b.batch_stats)


@pytest.mark.parametrize("kind, sig, first_step", [
    ("slow", signal.SIGTERM, 5),  # 0.15 s a batch: the signal lands in a wait for data or in a step
    ("blocking", signal.SIGINT, 9),  # batch 9 blocks for a minute: the signal lands inside that read
    ("records", signal.SIGTERM, 2),  # Grain's reader threads, one record blocking 3 s per read
    ("fast", signal.SIGTERM, 40),  # in-memory batches: the signal lands in a step or a save
])
def test_a_signal_at_a_random_point_commits_a_checkpoint_and_resumes_bit_for_bit(tmp_path, kind, sig, first_step):
  rng = random.Random(kind)
  child = start_worker(kind, tmp_path)
  try:
    said = read_until_step(child, first_step)
    time.sleep(rng.uniform(0.0, 0.6) + (0.5 if kind == "blocking" else 0.0))
    sent = time.monotonic()
    child.send_signal(sig)
    output = finish(child, said, timeout=30)
    exited = time.monotonic()
  finally:
    child.kill()
  assert child.returncode == 0, output[-2000:]
  step, stopped_by, returned_at = returned(output)
  assert stopped_by == sig.name
  assert float(returned_at) - sent < 2.0  # fit returned within two seconds of the signal ...
  # ... and the process ended once each reader thread finished the record it was reading.
  assert exited - sent < 2.0 + (worker.BLOCK_SECONDS if kind == "records" else 0.0) + 3.0
  with Checkpointer(tmp_path) as ckpt:
    assert ckpt.all_steps()[-1] == int(step)  # the step fit returned is committed
  assert not os.path.exists(tmp_path / LOCK_FILE)  # and the folder's lock given back
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # an intact checkpoint: nothing to warn about
    resumed, _ = fit(new_state(), make_train_step(xent), worker.data(kind, paced=False), epochs=worker.EPOCHS[kind],
                     checkpoint_dir=tmp_path, resume=True, verbose=0)
  assert_same_training(resumed, straight_run(kind))


def test_a_second_run_into_a_folder_in_use_is_refused_and_the_first_keeps_its_checkpoints(tmp_path):
  child = start_worker("slow", tmp_path)
  try:
    said = read_until_step(child, 3)
    with Checkpointer(tmp_path) as reader:  # reading while a run writes is allowed
      assert reader.all_steps() == []
    state = new_state()
    with pytest.raises(FolderInUseError, match=rf"{tmp_path} is in use by another run \(process {child.pid} on "
                                               r"host '.+', started .+\); two runs writing checkpoints"):
      fit(state, make_train_step(xent), worker.data("slow", paced=False), epochs=2, checkpoint_dir=tmp_path,
          overwrite=True, verbose=0)  # overwrite would have deleted the other run's checkpoints
    assert int(state.step) == 0 and not state.step.is_deleted()  # refused before the first step
    output = finish(child, said, timeout=120)
  finally:
    child.kill()
  assert child.returncode == 0, output[-2000:]
  assert returned(output)[:2] == ["24", "None"]
  with Checkpointer(tmp_path) as ckpt:
    assert ckpt.all_steps() == [12, 18, 24]
    restored = ckpt.restore(new_state())
  assert_same_training(restored, straight_run("slow"))


def _ended_pid() -> int:
  done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                        timeout=60)
  return int(done.stdout)


def test_a_dead_runs_lock_is_reclaimed_with_a_warning_and_another_hosts_is_refused(tmp_path):
  lock = tmp_path / LOCK_FILE
  lock.write_text(json.dumps({"pid": _ended_pid(), "host": os.uname().nodename, "started": "earlier", "token": "x"}))
  with pytest.warns(UserWarning, match=r"held a lock of a run that has ended \(process \d+ on host .*\); reclaimed"):
    state, _ = fit(new_state(), make_train_step(xent), worker.data("slow", paced=False), epochs=1,
                   checkpoint_dir=tmp_path, verbose=0)
  assert int(state.step) == 6 and not lock.exists()

  lock.write_text("{\"pid\": 1")  # cut short by a crash long ago
  os.utime(lock, (time.time() - 60, time.time() - 60))
  with pytest.warns(UserWarning, match=r"held a lock of a run that has ended \(unreadable\); reclaimed"):
    fit(state, make_train_step(xent), worker.data("slow", paced=False), epochs=2, checkpoint_dir=tmp_path,
        verbose=0)

  lock.write_text(json.dumps({"pid": 1, "host": "another-host", "started": "2026-01-01T00:00:00", "token": "y"}))
  with pytest.raises(FolderInUseError, match=r"in use by another run \(process 1 on host 'another-host', started "
                                             r"2026-01-01T00:00:00; its lock is .*\)\. .* delete the lock file"):
    fit(new_state(), make_train_step(xent), worker.data("slow", paced=False), epochs=1, checkpoint_dir=tmp_path,
        overwrite=True, verbose=0)
  with Checkpointer(tmp_path) as ckpt:
    assert ckpt.all_steps() == [6, 12, 18]  # nothing of the refused run was written, nothing deleted

  os.remove(lock)
  os.mkdir(lock)  # the lock's name taken by a folder, then by a dangling link: no run wrote either
  with pytest.raises(FolderInUseError, match=rf"{LOCK_FILE} is not a file, not a lock a run wrote; remove it"):
    fit(new_state(), make_train_step(xent), worker.data("slow", paced=False), epochs=1, checkpoint_dir=tmp_path,
        resume=True, verbose=0)
  os.rmdir(lock)
  os.symlink(tmp_path / "nowhere", lock)
  with pytest.raises(FolderInUseError, match=rf"{LOCK_FILE} is a symbolic link, not a lock a run wrote; remove it"):
    fit(new_state(), make_train_step(xent), worker.data("slow", paced=False), epochs=1, checkpoint_dir=tmp_path,
        resume=True, verbose=0)


def _damage(folder: str, how: str) -> str:
  """Damages checkpoint `folder`'s records in one way; returns a pattern of what the warning must say."""
  record = os.path.join(folder, "dataset", "metadata")
  if how == "dataset not JSON":
    with open(record, "w") as f:
      f.write('{"next_step": 1')
    return r"cannot be read \(JSONDecodeError"
  if how == "dataset altered":
    with open(record) as f:
      data = json.load(f)
    with open(record, "w") as f:
      json.dump({**data, "next_step": data["next_step"] - 5}, f)
    return re.escape(f"is damaged: its dataset record {os.path.join(folder, 'dataset')} does not match the checksum")
  if how == "dataset huge":  # a sparse gigabyte: orbax would read it whole
    os.truncate(record, 1 << 30)
    return re.escape(f"is damaged: {record} is 1,073,741,824 bytes, more than the")
  missing = "checksum" if how == "checksum deleted" else "dataset"
  shutil.rmtree(os.path.join(folder, missing))
  return re.escape(f"is incomplete: its {missing} record {os.path.join(folder, missing)} is missing")


@pytest.mark.parametrize("how", ["dataset not JSON", "dataset altered", "dataset huge", "checksum deleted",
                                 "dataset deleted"])
def test_a_damaged_record_in_the_newest_checkpoint_falls_back_to_an_intact_one(tmp_path, how):
  data = worker.data("slow", paced=False)
  fit(new_state(), make_train_step(xent), data, steps=15, checkpoint_dir=tmp_path, verbose=0)  # steps 6, 12, 15
  said = _damage(str(tmp_path / "15"), how)
  with pytest.warns(UserWarning, match=rf"checkpoint step 15 in .*{said}.*; trying the checkpoint before it"):
    resumed, history = fit(new_state(), make_train_step(xent), data, steps=15, checkpoint_dir=tmp_path, resume=True,
                           verbose=0)
  assert history.epoch == [2]  # from step 12: the three steps of the damaged checkpoint are trained again
  expected, _ = fit(new_state(), make_train_step(xent), data, steps=15, verbose=0)
  assert_same_training(resumed, expected)


def test_a_full_disk_is_a_checkpoint_error_that_keeps_the_state_and_leaves_no_partial_folder(tmp_path):
  # A file-size limit makes every write of more than 512 bytes fail as a full disk does (EFBIG instead of ENOSPC).
  child = textwrap.dedent(f"""
      import json, resource, signal
      from jaxcomponents.training import Checkpointer, fit, make_train_step
      from tests import run_safety_worker as worker
      from tests.training_problem import new_state, xent
      data = worker.data("slow", paced=False)
      state, _ = fit(new_state(), make_train_step(xent), data, epochs=1, checkpoint_dir={str(tmp_path)!r}, verbose=0)
      signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
      resource.setrlimit(resource.RLIMIT_FSIZE, (512, resource.RLIM_INFINITY))
      try:
        fit(state, make_train_step(xent), data, epochs=3, checkpoint_dir={str(tmp_path)!r}, verbose=0)
      except OSError as error:  # CheckpointError is an OSError, as the README's `except OSError` expects
        print(json.dumps([type(error).__name__, int(error.state.step), str(error), error.__notes__[0]]))
        state = error.state
      try:
        with Checkpointer({str(tmp_path / 'direct')!r}) as checkpoints:
          checkpoints.save(state)
          checkpoints.wait()
      except OSError as error:  # leaving the block does not replace it with orbax's own error
        print(json.dumps([type(error).__name__, str(error)]))
      """)
  done = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=240)
  assert done.returncode == 0, done.stderr[-2000:]
  (name, step, message, note), (direct_name, direct_message) = map(json.loads, done.stdout.strip().splitlines()[-2:])
  assert direct_name == "CheckpointError" and "File too large" in direct_message
  assert name == "CheckpointError" and step in (12, 18)
  assert "File too large" in message and "the checkpoints written there before are intact" in message
  assert f"the checkpoints in {tmp_path} are intact (latest step 6)" in note
  assert sorted(os.listdir(tmp_path)) == ["6", "direct"]  # no unfinished step folder, no lock
  assert os.listdir(tmp_path / "direct") == []
  with Checkpointer(tmp_path) as ckpt:
    ckpt.restore(new_state())


def _forged(tmp_path, template, big_name: str):
  """An orbax folder declaring `template`'s arrays, but `big_name` as 4096 x 4096 float32 (64 MiB of zeros, ~0 on
  disk)."""
  def forge(path, leaf):
    name = "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)
    return np.zeros((4096, 4096), np.float32) if name == big_name else np.asarray(leaf)

  forged = jax.tree_util.tree_map_with_path(forge, template)
  folder = tmp_path / "forged"
  with ocp.StandardCheckpointer() as writer:
    writer.save(folder, forged)
  return folder


def _peak_growth_kib(code: str) -> tuple[str, int]:
  """Runs `code` (after jaxcomponents' imports) in a child; returns its last line and how far its peak RSS grew."""
  child = textwrap.dedent("""
      import resource, sys
      import jaxcomponents, jaxcomponents.training, jaxcomponents.training.saving
      from tests.training_problem import new_state
      state = new_state()
      before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
      try:
      {code}
      except (OSError, ValueError) as error:
        print(type(error).__name__, error)
      print("growth", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
      """).replace("{code}", textwrap.indent(textwrap.dedent(code), "  "))
  done = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=240)
  assert done.returncode == 0, done.stderr[-2000:]
  *_, said, growth = done.stdout.strip().splitlines()
  return said, int(growth.split()[1])


def test_a_checkpoint_declaring_other_arrays_is_refused_before_anything_is_read(tmp_path):
  state = new_state()
  fit(state, make_train_step(xent), worker.data("slow", paced=False), epochs=1, checkpoint_dir=tmp_path / "ckpt",
      verbose=0)
  template = {name: getattr(new_state(), name) for name in ("step", "params", "batch_stats", "opt_state", "rng")}
  forged = _forged(tmp_path, template, "params/Dense_1/dense/kernel")
  step_state = tmp_path / "ckpt" / "6" / "state"
  os.rename(step_state, tmp_path / "original")
  os.rename(forged, step_state)
  said, growth = _peak_growth_kib(f"""
      from jaxcomponents.training import Checkpointer
      with Checkpointer({str(tmp_path / 'ckpt')!r}) as ckpt:
        ckpt.restore(state, step=6)
      """)
  assert said.startswith("CheckpointError checkpoint step 6 in ") and (
      "declares params/Dense_1/dense/kernel as float32[4096, 4096], but the state has float32[16, 3]; nothing was "
      "read") in said
  assert growth < 16 * 1024, growth  # KiB: far below the 64 MiB declared
  with Checkpointer(tmp_path / "ckpt") as ckpt, pytest.warns(UserWarning, match="nothing was read"), \
       pytest.raises(CheckpointError, match="no intact checkpoint to restore"):
    ckpt.restore(new_state())


def test_a_saved_model_declaring_more_than_its_size_allows_is_refused_before_anything_is_read(tmp_path):
  from jaxcomponents.layers import Dense
  from jaxcomponents.training.saving import VARIABLES, save_model
  module = Dense(3, batch_norm=True)
  variables = module.init(jax.random.key(0), np.ones((2, 5), np.float32))
  save_model(tmp_path / "model", module, variables)
  os.rename(tmp_path / "model" / VARIABLES, tmp_path / "original")
  os.rename(_forged(tmp_path, variables, "params/dense/kernel"), tmp_path / "model" / VARIABLES)
  said, growth = _peak_growth_kib(f"""
      from jaxcomponents.limits import using_limits
      with using_limits(expansion_floor_bytes=1 << 20):  # the 256 MiB floor, scaled to a 64 MiB forgery
        jaxcomponents.load_model({str(tmp_path / 'model')!r})
      """)
  assert said.startswith("LimitExceededError ") and "array params/dense/kernel" in said, said
  assert "jaxcomponents.limits max_expansion=100" in said
  assert growth < 16 * 1024, growth
  os.rename(tmp_path / "model" / VARIABLES, tmp_path / "forged")
  os.rename(tmp_path / "original", tmp_path / "model" / VARIABLES)
  model = jaxcomponents.load_model(tmp_path / "model")  # the genuine folder loads
  assert leaves_equal(model.variables, variables)


def test_a_stalled_write_is_reported_after_save_timeout_and_keeps_the_folder_locked(tmp_path):
  released = threading.Event()
  with Checkpointer(tmp_path, save_timeout=0.5) as ckpt:
    ckpt.save(new_state())
    ckpt.wait()
    ckpt._manager.wait_until_finished = lambda: released.wait(30)  # a disk that stopped answering
    started = time.monotonic()
    with pytest.raises(CheckpointError, match=rf"being written to {tmp_path} has not finished after 0.5 s \(a stalled "
                                              r"disk\?\); the checkpoints written before it are intact"):
      ckpt.wait()
    assert time.monotonic() - started < 5
  assert (tmp_path / LOCK_FILE).exists()  # the stalled write may still change the folder: it stays locked
  released.set()


def test_weights_for_inference_are_verified_and_a_damaged_newest_checkpoint_is_passed_over(tmp_path):
  data = worker.data("slow", paced=False)
  fit(new_state(), make_train_step(xent), data, steps=12, checkpoint_dir=tmp_path, verbose=0)  # steps 6 and 12
  record = tmp_path / "12" / "checksum" / "metadata"
  checksum = json.loads(record.read_text())
  record.write_text(json.dumps({**checksum, "fields": {**checksum["fields"], "params": "0" * 64}}))
  template = new_state()
  with Checkpointer(tmp_path) as ckpt:
    with pytest.warns(UserWarning, match=r"checkpoint step 12 in .* is damaged: its params do not match the checksum "
                                         r"saved with them; trying the checkpoint before it"):
      params, batch_stats = ckpt.restore_weights(template.params, template.batch_stats)
    assert ckpt.restored_step == 6
    with pytest.raises(CheckpointError, match=r"step 12 .* is damaged: its params do not match"):
      ckpt.restore_weights(template.params, template.batch_stats, step=12)
  expected, _ = fit(new_state(), make_train_step(xent), data, steps=6, verbose=0)
  assert leaves_equal(params, expected.params) and leaves_equal(batch_stats, expected.batch_stats)
