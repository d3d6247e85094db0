"""Bounds on what jaxcomponents reads from a file, so that a stranger's file cannot exhaust memory.

Every reader of weights (`.keras`, `.h5`, `.weights.h5`, `.npz`), datasets
(IDX, `.npz`) and images checks what a file *declares* (an archive member's
size, an array's shape, an image's width and height) against these limits
before it allocates anything, and reads compressed streams piece by piece:

- `max_image_pixels` (178,956,970): the most pixels an image may declare
  before it is decoded, twice Pillow's `MAX_IMAGE_PIXELS` (where Pillow
  raises its `DecompressionBombError`); about 537 MB as RGB.
- `max_bytes` (4 GiB): the most one array, archive member or decompressed
  stream may declare (where Keras begins its own bomb checks).
- `max_expansion` (100): how many times its size on disk a file, archive
  member or HDF5 dataset may expand to in memory. Keras writes its files
  uncompressed; DEFLATE cannot exceed about 1032 times.
- `expansion_floor_bytes` (256 MiB): sizes up to this are never refused for
  their expansion (a small array of zeros compresses to almost nothing).

A file over a limit raises `LimitExceededError` (a `ValueError`) naming the
file, what it declares and the limit. To read a file you trust, raise the
limit for a block or for the process; importing jaxcomponents changes
nothing, and worker processes start with the defaults (`image_folder_dataset`
hands its image limit to its workers):

  >>> with using_limits(max_image_pixels=400_000_000):
  ...   get_limits().max_image_pixels
  400000000
  >>> get_limits().max_image_pixels
  178956970
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

from jaxcomponents.errors import check_positive_int

_PILLOW_MAX_IMAGE_PIXELS = 1024 * 1024 * 1024 // 4 // 3  # PIL.Image.MAX_IMAGE_PIXELS's default, written out
_READ_PIECE = 1 << 22  # streams are read in pieces of 4 MiB


@dataclasses.dataclass(frozen=True)
class Limits:
  """The limits in force; see the module's docstring for what each bounds."""

  max_image_pixels: int = 2 * _PILLOW_MAX_IMAGE_PIXELS
  max_bytes: int = 1 << 32
  max_expansion: int = 100
  expansion_floor_bytes: int = 1 << 28


_current = Limits()


def get_limits() -> Limits:
  """The limits in force.

  Example:
    >>> get_limits().max_expansion
    100
  """
  return _current


def set_limits(**changes: int) -> Limits:
  """Changes limits for the whole process (names as `Limits`' fields); returns the limits before.

  Raises:
    ValueError: for a name that is not a limit, or a value that is not a positive integer.

  Example:
    >>> before = set_limits(max_bytes=16 << 30)
    >>> _ = set_limits(**dataclasses.asdict(before))
  """
  global _current
  names = [f.name for f in dataclasses.fields(Limits)]
  for name, value in changes.items():
    if name not in names:
      raise ValueError(f"{name}={value!r} is not allowed; the limits are {', '.join(names)}.")
    check_positive_int(name, value)
  before, _current = _current, dataclasses.replace(_current, **changes)
  return before


@contextlib.contextmanager
def using_limits(**changes: int) -> Iterator[Limits]:
  """Changes limits inside a `with` block (for every thread of the process), restoring them after.

  Example:
    >>> with using_limits(max_expansion=1000) as limits:
    ...   limits.max_expansion
    1000
  """
  before = set_limits(**changes)
  try:
    yield _current
  finally:
    set_limits(**dataclasses.asdict(before))


class LimitExceededError(ValueError):
  """A file declares (or holds) more than a limit allows.

  Attributes:
    path: the file.
    declared: what it declares (bytes, or pixels for `max_image_pixels`).
    limit: the limit's value.
    setting: the name of the limit (a field of `Limits`).
  """

  def __init__(self, path: str, what: str, declared: int, limit: int, setting: str, *, bound: str | None = None,
               verb: str = "declares"):
    self.path, self.declared, self.limit, self.setting = path, declared, limit, setting
    self._arguments = (path, what, declared, limit, setting, bound, verb)
    unit = _pixels if setting == "max_image_pixels" else human_bytes
    super().__init__(
        f"{path}: {what} {verb} {unit(declared)}, over the limit of {bound or unit(limit)} "
        f"(jaxcomponents.limits {setting}={limit:,}). A damaged file or a decompression bomb? If you trust the "
        f"file, raise the limit: jaxcomponents.limits.set_limits({setting}=...), or for one block "
        f"`with jaxcomponents.limits.using_limits({setting}=...):`.")

  def __reduce__(self):  # raised in a worker process, it travels back whole
    path, what, declared, limit, setting, bound, verb = self._arguments
    return _limit_exceeded, (path, what, declared, limit, setting, bound, verb)


def _limit_exceeded(path, what, declared, limit, setting, bound, verb) -> LimitExceededError:
  return LimitExceededError(path, what, declared, limit, setting, bound=bound, verb=verb)


class UnreadableFileError(ValueError):
  """A file that is damaged, cut short or not of the format expected.

  Attributes:
    path: the file.
    reason: why it cannot be read.
  """

  def __init__(self, path: str, kind: str, reason: str):
    self.path, self.reason, self._kind = path, reason, kind
    super().__init__(f"{path} is not a readable {kind} ({reason}).")

  def __reduce__(self):  # raised in a worker process, it travels back whole
    return type(self), (self.path, self._kind, self.reason)


def human_bytes(n: int) -> str:
  """`n` bytes for a reader.

  Example:
    >>> human_bytes(5 << 30)
    '5.0 GiB (5,368,709,120 bytes)'
  """
  short = _short_bytes(n)
  return short if short.endswith(" bytes") else f"{short} ({n:,} bytes)"


def _short_bytes(n: int) -> str:
  for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
    if n >= size:
      return f"{n / size:.1f} {unit}"
  return f"{n} bytes"


def _pixels(n: int) -> str:
  return f"{n:,} pixels"


def check_image_pixels(path: str, width: int, height: int, max_pixels: int | None = None) -> None:
  """Raises `LimitExceededError` if a `width` x `height` image has more than `max_pixels` (default: the limit).

  Example:
    >>> check_image_pixels("photo.jpg", 4000, 3000)
  """
  limit = _current.max_image_pixels if max_pixels is None else max_pixels
  if width * height > limit:
    raise LimitExceededError(path, f"its header ({width} x {height})", width * height, limit, "max_image_pixels")


class ReadBudget:
  """What one file may make jaxcomponents allocate; every declared size is charged before it is read.

  One item (an array, an archive member, a stream) may declare at most
  `max_bytes`, and at most `max_expansion` times what it stores when that is
  known; all items together at most `max_expansion` times the file's size on
  disk. Sizes up to `expansion_floor_bytes` pass the expansion checks. The
  limits are those in force when the budget is made.

  Example:
    >>> budget = ReadBudget("weights.h5", stored_bytes=1000)
    >>> budget.charge("dataset /dense/kernel", 400, stored_bytes=400)
    >>> try:
    ...   budget.charge("dataset /dense/bias", 10 ** 12)
    ... except LimitExceededError as error:
    ...   print(error.setting)
    max_bytes
  """

  def __init__(self, path: str, stored_bytes: int):
    self.path, self.stored_bytes, self.charged = path, stored_bytes, 0
    self.limits = _current

  def _allowed(self, stored_bytes: int) -> int:
    return max(self.limits.expansion_floor_bytes, self.limits.max_expansion * stored_bytes)

  def _bound(self, stored: str) -> str:
    return f"{self.limits.max_expansion} times {stored}, or {_short_bytes(self.limits.expansion_floor_bytes)} if more"

  def check_size(self, what: str, declared_bytes: int) -> None:
    """Raises `LimitExceededError` if one item declares more than `max_bytes`; charges nothing."""
    if declared_bytes > self.limits.max_bytes:
      raise LimitExceededError(self.path, what, declared_bytes, self.limits.max_bytes, "max_bytes")

  def charge(self, what: str, declared_bytes: int, stored_bytes: int | None = None) -> None:
    """Counts `declared_bytes` for `what` (stored in `stored_bytes` on disk, when known), or raises.

    Raises:
      LimitExceededError: naming the file, `what`, its size and the limit it exceeds.
    """
    limits = self.limits
    self.check_size(what, declared_bytes)
    if stored_bytes is not None and declared_bytes > self._allowed(stored_bytes):
      raise LimitExceededError(self.path, what, declared_bytes, limits.max_expansion, "max_expansion",
                               bound=self._bound(f"the {human_bytes(stored_bytes)} it stores"))
    if self.charged + declared_bytes > self._allowed(self.stored_bytes):
      raise LimitExceededError(
          self.path, what, self.charged + declared_bytes, limits.max_expansion, "max_expansion",
          verb="brings the total read from the file to",
          bound=self._bound(f"the file's {human_bytes(self.stored_bytes)} on disk"))
    self.charged += declared_bytes


def file_budget(path: str) -> ReadBudget:
  """A `ReadBudget` for the file at `path`, by its size on disk."""
  return ReadBudget(path, os.path.getsize(path))


def read_at_most(stream, size: int, budget: ReadBudget, what: str):
  """Up to `size` bytes of `stream` as a uint8 array, read in pieces each charged to `budget`.

  Nothing is allocated from `size` alone: a header promising more than the
  stream holds costs only what the stream holds (and what `budget` allows).

  Example:
    >>> import io
    >>> read_at_most(io.BytesIO(b"abc"), 10, ReadBudget("<bytes>", 3), "the stream").tobytes()
    b'abc'
  """
  import numpy as np

  pieces = []
  while size > 0:
    piece = stream.read(min(size, _READ_PIECE))
    if not piece:
      break
    budget.charge(what, len(piece))
    pieces.append(piece)
    size -= len(piece)
  out = np.empty(sum(len(p) for p in pieces), np.uint8)
  start = 0
  pieces.reverse()
  while pieces:  # freed once copied, while `out`'s pages are committed as filled: the peak is the data and a piece
    piece = pieces.pop()
    out[start:start + len(piece)] = np.frombuffer(piece, np.uint8)
    start += len(piece)
  return out


def check_zip_members(path: str, archive: zipfile.ZipFile) -> ReadBudget:
  """Charges every member's declared size to the archive's `ReadBudget` (by what each stores, too); returns it.

  A member read in pieces (`ZipExtFile.read(n)`, as numpy reads a `.npy`)
  then costs at most what it declares; one read whole goes through
  `read_zip_member`, since `zipfile` inflates up to 2 GiB at once before
  cutting a member to its declared size.

  Raises:
    LimitExceededError: naming the archive and the member that declares more than the limits allow.
  """
  budget = file_budget(path)
  for info in archive.infolist():
    budget.charge(f"archive member {info.filename!r}", info.file_size, info.compress_size)
  return budget


_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a zip member's local header: its name and extra field follow


def read_zip_member(path: str, archive: zipfile.ZipFile, name: str) -> bytes:
  """The bytes of member `name` of an archive `check_zip_members` has passed, inflated piece by piece.

  A deflated member whose stream inflates to more than the size it declares
  is refused when it passes that size (`zipfile` would inflate up to 2 GiB at
  once before cutting to the declared size, and so would Keras reading it).

  Raises:
    UnreadableFileError: naming the file and member, for a stream longer than declared, or damaged.
  """
  info = archive.getinfo(name)
  if info.compress_type == zipfile.ZIP_STORED:  # read as stored: at most its declared size
    with archive.open(info) as member:
      return member.read(info.file_size)
  if info.compress_type != zipfile.ZIP_DEFLATED:
    raise UnreadableFileError(path, "zip archive", f"member {name!r} is compressed with method {info.compress_type}; "
                              "only stored and deflated members are read")
  inflate, pieces, inflated = zlib.decompressobj(-zlib.MAX_WBITS), [], 0
  with open(path, "rb") as f:
    f.seek(info.header_offset)
    header = f.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
      raise UnreadableFileError(path, "zip archive", f"member {name!r} has no local header where the index says")
    name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
    f.seek(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)
    left = info.compress_size
    while left > 0 or inflate.unconsumed_tail:
      data = inflate.unconsumed_tail or f.read(min(left, _READ_PIECE))
      if not data:
        break
      if not inflate.unconsumed_tail:
        left -= len(data)
      piece = inflate.decompress(data, _READ_PIECE)
      inflated += len(piece)
      if inflated > info.file_size:
        raise UnreadableFileError(path, "zip archive", f"member {name!r} inflates to more than the "
                                  f"{human_bytes(info.file_size)} it declares: a decompression bomb, or a damaged "
                                  "archive")
      pieces.append(piece)
  data = b"".join(pieces)
  if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
    raise UnreadableFileError(path, "zip archive", f"member {name!r} is damaged: it does not inflate to the "
                              f"{human_bytes(info.file_size)} it declares with its checksum")
  return data


_NPZ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError)


@dataclasses.dataclass(frozen=True, eq=False)
class NpyMember:
  """An array of an open `.npz` archive, read only when used (`np.asarray`): its shape and dtype are its header's.

  Attributes:
    path: the archive.
    archive: the open archive.
    info: the member.
    shape, dtype: what its `.npy` header declares (checked against what the member holds).
  """

  path: str
  archive: zipfile.ZipFile
  info: zipfile.ZipInfo
  shape: tuple[int, ...]
  dtype: Any

  def __array__(self, dtype=None, copy=None):
    import numpy as np

    try:
      with self.archive.open(self.info) as member:
        value = np.lib.format.read_array(member, allow_pickle=False)
    except _NPZ_ERRORS as e:
      raise UnreadableFileError(self.path, ".npz archive", f"member {self.info.filename!r}: {e}") from e
    return value if dtype is None else value.astype(dtype, copy=False)


def _npy_header(path: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> NpyMember:
  """A member's `.npy` header, refused if it declares Python objects or more than the member holds."""
  import numpy as np

  with archive.open(info) as member:
    major, _ = np.lib.format.read_magic(member)
    read_header = getattr(np.lib.format, f"read_array_header_{major}_0", np.lib.format.read_array_header_2_0)
    shape, _, dtype = read_header(member)
    header_bytes = member.tell()
  if dtype.hasobject:
    raise UnreadableFileError(path, ".npz archive", f"member {info.filename!r} holds Python objects ({dtype}); "
                              f"only arrays of numbers are read (allow_pickle=False)")
  declared = math.prod(shape) * dtype.itemsize
  if declared > info.file_size - header_bytes:
    raise UnreadableFileError(path, ".npz archive", f"member {info.filename!r} is damaged: its header declares "
                              f"{shape} {dtype} ({human_bytes(declared)}) in a member of {human_bytes(info.file_size)}")
  return NpyMember(path, archive, info, tuple(shape), dtype)


@contextlib.contextmanager
def open_npz(path: str) -> Iterator[dict[str, NpyMember]]:
  """The arrays of an `.npz` archive (its `.npy` members) by name, read only when used; no pickles.

  Before anything is read, every member's declared size is checked
  (`check_zip_members`) and each `.npy` header's shape and dtype must fit in
  what its member holds; inside the `with` block, `np.asarray` reads one.

  Raises:
    UnreadableFileError: naming the file, if it is not a readable `.npz`
      archive, or a member is damaged or holds Python objects.
    LimitExceededError: if a member declares more than the limits allow.

  Example:
    with open_npz("weights.npz") as arrays:
      kernel = np.asarray(arrays["params/dense/kernel"]) if arrays["params/dense/kernel"].shape == (3, 4) else None
  """
  try:
    archive = zipfile.ZipFile(path)
  except _NPZ_ERRORS as e:
    raise UnreadableFileError(path, ".npz archive", str(e)) from e
  with archive:
    try:
      check_zip_members(path, archive)
      members = {info.filename[:-len(".npy")]: _npy_header(path, archive, info)
                 for info in archive.infolist() if info.filename.endswith(".npy")}
    except (LimitExceededError, UnreadableFileError):
      raise
    except _NPZ_ERRORS as e:
      raise UnreadableFileError(path, ".npz archive", str(e)) from e
    yield members


def load_npz_arrays(path: str) -> dict[str, Any]:
  """Every array of an `.npz` archive, read as `open_npz` reads them (checked first, no pickles).

  Raises:
    UnreadableFileError: naming the file, if it is not a readable `.npz` archive.
    LimitExceededError: if a member declares more than the limits allow.

  Example:
    arrays = load_npz_arrays("mnist.npz")
  """
  import numpy as np

  with open_npz(path) as members:
    return {name: np.asarray(member) for name, member in members.items()}


def h5_child(path: str, group, name: str):
  """`group[name]` (an HDF5 group or dataset), refusing links: an external link reads another file.

  Raises:
    KeyError: if there is no `name`.
    ValueError: naming the file, for a soft or external link.
  """
  import h5py

  node = group
  for part in name.split("/"):
    if not part:
      continue
    link = node.get(part, getlink=True)
    if link is None:
      raise KeyError(name)
    if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
      raise ValueError(f"{path}: {node.name.rstrip('/')}/{part} is a {type(link).__name__}; jaxcomponents reads "
                       f"no links in weight files (an external link reads another file).")
    node = node[part]
  return node


def check_h5_file(path: str, root, budget: ReadBudget) -> None:
  """Charges every dataset of an open HDF5 file (each once) to `budget` (by what it stores, too), before any is read.

  Raises:
    ValueError: naming the file, for an external link or a dataset stored in other files (external or virtual);
      a `LimitExceededError` if the datasets declare more than the limits allow.
  """
  import h5py

  external, datasets = [], []  # gathered, then checked: an exception inside h5py's visit does not travel well
  root.visititems_links(lambda name, link: external.append((name, link)) if isinstance(link, h5py.ExternalLink)
                        else None)
  if external:
    name, link = external[0]
    raise ValueError(f"{path}: {name} is an external link (to {link.filename}); jaxcomponents reads weights from "
                     f"the file itself only.")
  root.visititems(lambda name, node: datasets.append((name, node)) if isinstance(node, h5py.Dataset) else None)
  for name, dataset in datasets:
    if dataset.external or dataset.is_virtual:
      raise ValueError(f"{path}: dataset {name} is stored in other files (external or virtual); jaxcomponents "
                       f"reads weights from the file itself only.")
    budget.charge(f"dataset {name} {tuple(dataset.shape)} {dataset.dtype}",
                  math.prod(dataset.shape) * dataset.dtype.itemsize, dataset.id.get_storage_size())
