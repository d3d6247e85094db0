"""One writer per folder: a lock file naming its holder (process id, host, start time).

`fit` takes the lock of its `checkpoint_dir` before writing anything there and
gives it back when it returns. A second run into the folder is refused with an
error naming the holder. A lock left by a process that has died (on this host)
is reclaimed with a warning; one held from another host cannot be checked, so
the error says which file to delete once that run has ended.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import time
import uuid
import warnings
from typing import Any

LOCK_FILE = ".jaxcomponents.lock"
_MAX_LOCK_BYTES = 4096


class FolderInUseError(OSError):
  """Another run holds the folder's lock; the message names it and what to do."""


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's live process
    return True
  return True


def _parse(data: bytes) -> dict[str, Any]:
  try:
    record = json.loads(data)
  except ValueError:
    return {}
  return record if isinstance(record, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
  return f"process {holder.get('pid')} on host {holder.get('host')!r}, started {holder.get('started')}"


class FolderLock:
  """The lock of `directory` (which must exist); `acquire` before writing, `release` after.

  Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder, FolderLock(folder) as lock:
    ...   lock.holder()["pid"] == os.getpid()
    True
  """

  def __init__(self, directory: str | os.PathLike):
    self.path = os.path.join(os.fspath(directory), LOCK_FILE)
    self._token: str | None = None

  @property
  def held(self) -> bool:
    return self._token is not None

  def holder(self) -> dict[str, Any] | None:
    """The lock file's record, `{}` if it cannot be read as one, None if there is no lock.

    Raises:
      FolderInUseError: if the lock's name is taken by a link or a folder, which no run writes.
    """
    if os.path.islink(self.path) or (os.path.lexists(self.path) and not os.path.isfile(self.path)):
      what = "a symbolic link" if os.path.islink(self.path) else "not a file"
      raise FolderInUseError(f"{self.path} is {what}, not a lock a run wrote; remove it if no run is writing "
                             f"into {os.path.dirname(self.path)}.")
    try:
      with open(self.path, "rb") as f:
        return _parse(f.read(_MAX_LOCK_BYTES))
    except FileNotFoundError:
      return None

  def acquire(self) -> None:
    """Takes the lock, reclaiming a dead process's lock with a warning.

    Raises:
      FolderInUseError: a live run (or one on another host) holds it.
    """
    if self.held:
      return
    token = uuid.uuid4().hex
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "token": token}
    for _ in range(3):
      try:
        descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        self._reclaim_if_stale()
        continue
      with os.fdopen(descriptor, "w") as f:
        json.dump(record, f)
        f.flush()
        os.fsync(f.fileno())
      self._token = token
      return
    raise FolderInUseError(f"{self.path} keeps being taken by other runs; run one at a time in "
                           f"{os.path.dirname(self.path)}.")

  def _reclaim_if_stale(self) -> None:
    holder = self.holder()
    if holder is None:  # released meanwhile
      return
    pid, host = holder.get("pid"), holder.get("host")
    folder = os.path.dirname(self.path)
    if not holder:  # unreadable: being written by a run starting now, or left half-written by a crash
      with contextlib.suppress(FileNotFoundError):
        if time.time() - os.path.getmtime(self.path) < 5:
          time.sleep(0.2)
          return
    elif host != socket.gethostname():
      raise FolderInUseError(
          f"{folder} is in use by another run ({_describe(holder)}; its lock is {self.path}). Wait for it to end, "
          "or use another folder; if that run has ended without releasing the lock, delete the lock file.")
    elif isinstance(pid, int) and _alive(pid):
      raise FolderInUseError(
          f"{folder} is in use by another run ({_describe(holder)}); two runs writing checkpoints into one folder "
          f"would mix them. Wait for it to end, or use another folder (if no such run is going on, delete {self.path}).")
    # Move the stale lock aside, then make sure what was moved is the stale one (another run may have replaced it).
    aside = f"{self.path}.stale-{uuid.uuid4().hex}"
    try:
      os.rename(self.path, aside)
    except FileNotFoundError:
      return
    with open(aside, "rb") as f:
      moved = _parse(f.read(_MAX_LOCK_BYTES))
    if moved != holder:
      os.rename(aside, self.path)  # a live run's fresh lock: put it back
      raise FolderInUseError(f"{folder} was taken by another run meanwhile; use another folder.")
    os.remove(aside)
    warnings.warn(f"{folder} held a lock of a run that has ended ({_describe(holder) if holder else 'unreadable'}); "
                  "reclaimed it.", stacklevel=4)

  def release(self) -> None:
    """Gives the lock back (only a lock this object took is removed)."""
    if not self.held:
      return
    holder = self.holder()
    if holder is not None and holder.get("token") == self._token:
      os.remove(self.path)
    self._token = None

  def __enter__(self) -> "FolderLock":
    self.acquire()
    return self

  def __exit__(self, *exc: Any) -> None:
    self.release()
