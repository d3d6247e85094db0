"""Writing a file or folder beside its target, then renaming it into place.

jaxcomponents' writers (`export`, `save_model`, `save_keras_h5`, the command
line's `convert` and `export`) go through `write_beside`, which guarantees:

- a failed or interrupted write leaves the target as it was: nothing half-written
  appears under the target's name;
- the write happens in a fresh folder with a unique name beside the target
  (`.<name>.partial-<random>`), so nobody else's file (a `<name>.partial`
  included) is ever touched, and it is removed whatever happens (short of the
  process being killed);
- an existing target is replaced only with `overwrite=True`, and only when it
  is of the kind being written (a file for a file; for a folder, one holding
  the kind's marker file, such as a SavedModel's `saved_model.pb`, and nothing
  but what such a writer writes): a folder holding anything else is never
  replaced. An empty folder counts as free.

Example:
  >>> import os, tempfile
  >>> def write_greeting(staged):
  ...   with open(staged, "w") as f:
  ...     f.write("hello")
  >>> with tempfile.TemporaryDirectory() as folder:
  ...   path = write_beside(os.path.join(folder, "greeting.txt"), write_greeting)
  ...   sorted(os.listdir(folder)), open(path).read()
  (['greeting.txt'], 'hello')
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import shutil
import tempfile
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Kind:
  """What a writer writes: a file, or a folder recognised by a marker file inside it.

  Attributes:
    description: how messages name it, e.g. "a SavedModel folder (holding saved_model.pb)".
    folder: True when the writer makes a folder.
    marker: for a folder, the file whose presence shows an existing folder is one
      of this kind, so that `overwrite=True` may replace it.
    contents: for a folder, the names (glob patterns) the writer puts in it: a
      folder holding anything else (a user's notes) is never replaced.
  """

  description: str
  folder: bool = False
  marker: str | None = None
  contents: tuple[str, ...] = ()

  @property
  def noun(self) -> str:
    return "folder" if self.folder else "file"


FILE = Kind("a file")


def folder_with(marker: str, description: str, contents: tuple[str, ...] = ()) -> Kind:
  """The kind of a folder that holds `marker` and only `contents` (glob patterns; `marker` is one of them).

  Example:
    >>> folder_with("saved_model.pb", "a SavedModel folder", ("variables", "assets")).contents
    ('saved_model.pb', 'variables', 'assets')
  """
  return Kind(f"{description} (holding {marker})", folder=True, marker=marker, contents=(marker, *contents))


def check_target(path: str | os.PathLike, kind: Kind = FILE, *, overwrite: bool = False) -> str:
  """Raises unless `write_beside(path, ..., kind, overwrite=overwrite)` may put its result at `path`.

  Returns `path` as an absolute path. Nothing is written.

  Raises:
    FileExistsError: `path` exists and `overwrite` is False, or it exists and
      is not of `kind` (then it is never replaced), naming it and what to do.

  Example:
    check_target("model.onnx", overwrite=False)  # before minutes of tracing
  """
  path = os.path.abspath(os.fspath(path))
  if not os.path.lexists(path) or (kind.folder and _is_empty_folder(path)):
    return path
  if not _is_of_kind(path, kind):
    raise FileExistsError(f"{path} exists and is not {kind.description}; choose another {kind.noun} "
                          "(nothing was written).")
  foreign = _foreign_entries(path, kind)
  if foreign:
    raise FileExistsError(f"{path} is {kind.description}, but it also holds {foreign[:3]}"
                          f"{' ...' if len(foreign) > 3 else ''}, which replacing it would delete; move them, or "
                          "choose another folder (nothing was written).")
  if not overwrite:
    raise FileExistsError(f"{path} exists; pass overwrite=True to replace it (nothing was written).")
  return path


def write_beside(path: str | os.PathLike, write: Callable[[str], object], kind: Kind = FILE, *,
                 overwrite: bool = False) -> str:
  """Calls `write(staged)` for a path beside `path`, then renames what it wrote into place; returns `path`.

  `staged` has the same base name as `path` (so suffix-minded writers such as
  Keras's see the name they expect) inside a fresh folder in `path`'s parent,
  and does not exist yet. Missing parent folders are created (and removed
  again, when empty, if the write fails). `write` may check what it wrote and
  raise: then nothing appears at `path`.

  Args:
    path: the file or folder to write.
    write: writes the file or folder at the path it is given.
    kind: what `write` makes (`FILE`, or `folder_with(marker, ...)`).
    overwrite: replace an existing `path` of `kind`; a target of another kind is never replaced.

  Returns:
    `path`, absolute.

  Raises:
    FileExistsError: as `check_target`, before `write` is called (and again
      before the rename, should the target have appeared meanwhile).
    FileNotFoundError: `write` made nothing at the path it was given.
    ValueError: `write` made a file where a folder was expected, or the reverse.

  Example:
    write_beside("weights.npz", lambda staged: np.savez(staged, **arrays), overwrite=True)
  """
  path = check_target(path, kind, overwrite=overwrite)
  parent, name = os.path.split(path)
  created = _make_folders(parent)
  try:
    # The result is written inside a private folder, not as the temporary name itself: mkdtemp's folder is
    # readable by its owner only, which a saved folder should not inherit.
    staging = tempfile.mkdtemp(prefix=f".{name}.partial-", dir=parent)
  except BaseException:
    _remove_empty_folders(created)
    raise
  try:
    staged = os.path.join(staging, name)
    write(staged)
    if not os.path.lexists(staged):
      raise FileNotFoundError(f"writing {path} made nothing (nothing was written).")
    if os.path.isdir(staged) != kind.folder:
      raise ValueError(f"writing {path} made a {'folder' if os.path.isdir(staged) else 'file'}, not "
                       f"{kind.description} (nothing was written).")
    check_target(path, kind, overwrite=overwrite)
    _move_into_place(staged, path, staging)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    _remove_empty_folders(created)
    raise
  shutil.rmtree(staging, ignore_errors=True)
  return path


def _move_into_place(staged: str, path: str, staging: str) -> None:
  """Renames `staged` to `path`; an existing folder at `path` is moved into `staging` first (and goes with it)."""
  if os.path.isdir(path) and not os.path.islink(path) and not _is_empty_folder(path):
    aside = os.path.join(staging, ".replaced")
    os.rename(path, aside)
    try:
      os.rename(staged, path)
    except BaseException:
      os.rename(aside, path)
      raise
  else:
    os.replace(staged, path)


def _is_of_kind(path: str, kind: Kind) -> bool:
  if kind.folder:
    return os.path.isdir(path) and not os.path.islink(path) and os.path.isfile(os.path.join(path, kind.marker))
  return os.path.isfile(path)


def _foreign_entries(path: str, kind: Kind) -> list[str]:
  """What a folder of `kind` holds that its writer does not write (nothing for a file, or a kind without a list)."""
  if not kind.folder or not kind.contents:
    return []
  return sorted(name for name in os.listdir(path)
                if not any(fnmatch.fnmatchcase(name, pattern) for pattern in kind.contents))


def _is_empty_folder(path: str) -> bool:
  try:
    return os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path)
  except OSError:
    return False


def _make_folders(folder: str) -> list[str]:
  """Creates `folder` and its missing parents; returns those created, deepest first."""
  missing = []
  while folder and not os.path.isdir(folder):
    missing.append(folder)
    parent = os.path.dirname(folder)
    if parent == folder:
      break
    folder = parent
  if missing:
    os.makedirs(missing[0], exist_ok=True)
  return missing


def _remove_empty_folders(created: list[str]) -> None:
  for folder in created:
    try:
      os.rmdir(folder)
    except OSError:
      return
