"""Multi-process training over 127.0.0.1: 2 processes x 4 CPU devices equal 1 process x 8 devices.

Each child is a real process that calls `initialize_distributed` (jax.distributed
with gloo collectives) and `fit`, bounded by a timeout.
"""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from jaxcomponents.data import ArrayDataset
from jaxcomponents.data import pipeline
from jaxcomponents.training import initialize_distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 240


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def launch(tmp_path, name, processes, devices, *extra, expect_failure=False):
  """Runs the worker in `processes` processes with `devices` CPU devices each; returns each one's results.

  With `expect_failure`, checks that every process failed and returns their output instead.
  """
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
  port = free_port()
  outs = [tmp_path / f"{name}-{p}.npz" for p in range(processes)]
  children = [subprocess.Popen([sys.executable, "-m", "tests.distributed_worker", str(out), "--processes",
                                str(processes), "--process-id", str(p), "--port", str(port), *extra],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
              for p, out in enumerate(outs)]
  try:
    logs = [child.communicate(timeout=TIMEOUT_S)[0] for child in children]
  finally:
    for child in children:
      child.kill()
  for child, log in zip(children, logs):
    assert (child.returncode != 0) if expect_failure else (child.returncode == 0), log[-3000:]
  if expect_failure:
    return logs
  return [dict(np.load(out)) for out in outs]


def leaves(result):
  return [result[f"leaf_{i}"] for i in range(sum(k.startswith("leaf_") for k in result))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("distributed")
  return {"1x8": launch(tmp, "1x8", 1, 8), "2x4": launch(tmp, "2x4", 2, 4), "1x1": launch(tmp, "1x1", 1, 1)}


def test_two_processes_equal_one_process_with_as_many_devices(runs):
  (single,), pair = runs["1x8"], runs["2x4"]
  assert (int(single["devices"]), int(single["processes"])) == (8, 1)
  assert [(int(r["devices"]), int(r["processes"])) for r in pair] == [(8, 2), (8, 2)]
  assert int(single["step"]) == int(pair[0]["step"]) == 14  # 2 epochs of 7 batches (100 = 6 x 16 + 4)
  for a, b, c in zip(leaves(single), leaves(pair[0]), leaves(pair[1])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(b, c)  # both processes hold the same replicated state


def test_one_device_agrees_within_float_tolerance(runs):
  (eight,), (one,) = runs["1x8"], runs["1x1"]
  for a, b in zip(leaves(eight), leaves(one)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_processes_read_disjoint_parts_that_make_up_the_single_process_batches(runs):
  (single,), (first, second) = runs["1x8"], runs["2x4"]
  batches = single["indices"].reshape(-1, 16)
  assert np.array_equal(np.concatenate([first["indices"].reshape(-1, 8), second["indices"].reshape(-1, 8)], 1),
                        batches)
  real = lambda r: set(r["indices"][r["mask"] > 0].tolist())
  assert real(first).isdisjoint(real(second)) and real(first) | real(second) == set(range(100))


def test_a_two_process_checkpoint_resumes_in_two_processes_identically(runs, tmp_path):
  ckpt = str(tmp_path / "ckpt")
  launch(tmp_path, "first", 2, 4, "--checkpoint-dir", ckpt, "--steps", "5")
  resumed = launch(tmp_path, "resumed", 2, 4, "--checkpoint-dir", ckpt, "--resume")
  assert int(resumed[0]["step"]) == 14
  for a, b in zip(leaves(runs["2x4"][0]), leaves(resumed[0])):
    np.testing.assert_array_equal(a, b)


def test_processes_given_different_datasets_fail_with_both_sizes(tmp_path):
  logs = launch(tmp_path, "disagree", 2, 1, "--disagree", expect_failure=True)
  for log in logs:
    assert "the processes were given different datasets (process 0: size=100, batch_size=16" in log
    assert "process 1: size=101" in log


def test_an_unreachable_coordinator_is_an_error_within_the_timeout():
  code = ("from jaxcomponents.training import initialize_distributed\n"
          f"initialize_distributed('127.0.0.1:{free_port()}', num_processes=2, process_id=1, timeout_s=3)")
  done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert done.returncode != 0
  assert ("RuntimeError: could not join the multi-process run: the coordinator at coordinator_address='127.0.0.1:"
          in done.stderr)
  assert "did not answer within timeout_s=3" in done.stderr


@pytest.mark.parametrize("kwargs, message", [
    (dict(coordinator_address="localhost"), r"coordinator_address='localhost' is not allowed; expected 'host:port'"),
    (dict(coordinator_address="h:1", num_processes=2, process_id=2),
     r"process_id=2 is not allowed with num_processes=2; expected an integer in \[0, 2\)"),
    (dict(coordinator_address="h:1", num_processes=0), r"num_processes=0 is not allowed"),
])
def test_bad_distributed_arguments_name_the_value(kwargs, message):
  with pytest.raises(ValueError, match=message):
    initialize_distributed(**kwargs)


def test_a_single_process_run_needs_no_coordinator():
  assert initialize_distributed() is False


def test_a_global_batch_must_divide_by_the_process_count(monkeypatch):
  monkeypatch.setattr(pipeline, "process_layout", lambda: (0, 3))
  with pytest.raises(ValueError, match=r"batch_size=16 is not allowed on 3 processes; the global batch must be a "
                                       r"multiple of the process count 3"):
    next(ArrayDataset(np.zeros((40, 1)), np.zeros(40), batch_size=16).epoch(0))


def test_a_process_with_nothing_to_read_is_an_error(monkeypatch):
  monkeypatch.setattr(pipeline, "process_layout", lambda: (0, 4))
  monkeypatch.setattr(pipeline, "_check_processes_agree", lambda spec: None)
  with pytest.raises(ValueError, match=r"5 examples in batches of 8 leave process 3 of 4 nothing to read; use at "
                                       r"least 7 examples"):
    next(ArrayDataset(np.zeros((5, 1)), np.zeros(5), batch_size=8).epoch(0))
