"""A stranger's file is read with bounded memory: bombs are refused by what they declare, named with the limit.

Each bomb is built small (DEFLATE streams of zeros repeated block by block,
HDF5 datasets declared without data), and each refusal is measured in a
fresh Python: its peak resident memory grows by megabytes where the file
declares gigabytes.
"""

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib

import h5py
import jax
import numpy as np
import PIL.Image
import pytest

from jaxcomponents import cli, limits
from jaxcomponents.data import image as image_ops
from jaxcomponents.data import decode_image, decode_random_resized_crop, list_image_folder, load_npz_dataset, read_idx
from jaxcomponents.layers import Dense
from jaxcomponents.limits import LimitExceededError, get_limits, set_limits, using_limits
from jaxcomponents.weights import from_keras, layers_from_h5, load_keras, load_npz, save_npz

_MIB, _GIB = 1 << 20, 1 << 30
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SMALL_GROWTH_MIB = 64  # what a refusal may cost: headers, messages, small buffers


# ---------------------------------------------------------------------------------------------------------------
# Bomb makers


def _deflated(prefix: bytes, zeros: int) -> bytes:
  """A raw DEFLATE stream of `prefix` then `zeros` zero bytes, without compressing the zeros one by one.

  A block compressing 1 MiB of zeros after a full flush refers only to itself, so copies of it chain.
  """
  parts = []
  if prefix:
    first = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts.append(first.compress(prefix) + first.flush(zlib.Z_FULL_FLUSH))
  block = zlib.compressobj(9, zlib.DEFLATED, -15)
  parts.append((block.compress(bytes(_MIB)) + block.flush(zlib.Z_FULL_FLUSH)) * (zeros // _MIB))
  last = zlib.compressobj(9, zlib.DEFLATED, -15)
  parts.append(last.compress(bytes(zeros % _MIB)) + last.flush())
  return b"".join(parts)


def _checksum_of_zeros(checksum, prefix: bytes, zeros: int) -> int:
  value = checksum(prefix, checksum(b""))
  chunk = bytes(64 * _MIB)
  for _ in range(zeros // len(chunk)):
    value = checksum(chunk, value)
  return checksum(bytes(zeros % len(chunk)), value)


def _write_zip(path, members) -> None:
  """A zip64 archive of `(name, content)` members (stored) and `(name, prefix, zeros)` members (deflated)."""
  entries, central, offset = [], [], 0
  with open(path, "wb") as f:
    for member in members:
      if len(member) == 2:
        name, content = member
        method, data, crc, size = 0, content, zlib.crc32(content), len(content)
      else:
        name, prefix, zeros = member
        method, data = 8, _deflated(prefix, zeros)
        crc, size = _checksum_of_zeros(zlib.crc32, prefix, zeros), len(prefix) + zeros
      name = name.encode()
      extra = struct.pack("<HHQQ", 1, 16, size, len(data))
      f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, method, 0, 33, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                          len(name), len(extra)) + name + extra)
      f.write(data)
      central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0, 33, crc, 0xFFFFFFFF,
                                 0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0, offset) + name + extra)
      offset += 30 + len(name) + len(extra) + len(data)
      entries.append(name)
    directory = b"".join(central)
    f.write(directory)
    f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(directory), offset, 0))


def _write_gzip(path, prefix: bytes, zeros: int) -> None:
  size = len(prefix) + zeros
  trailer = struct.pack("<II", _checksum_of_zeros(zlib.crc32, prefix, zeros), size & 0xFFFFFFFF)
  with open(path, "wb") as f:
    f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + _deflated(prefix, zeros) + trailer)


def _write_png_of_zeros(path, width: int, height: int) -> None:
  """A black 8-bit grayscale PNG: a few hundred kilobytes for 20000 x 20000."""
  raw = height * (width + 1)  # a filter byte and `width` pixels per row, all zero
  idat = b"\x78\xda" + _deflated(b"", raw) + struct.pack(">I", _checksum_of_zeros(zlib.adler32, b"", raw))

  def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

  header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _npy_header(shape, dtype) -> bytes:
  import io

  buffer = io.BytesIO()
  np.lib.format.write_array_header_1_0(buffer, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                "shape": tuple(shape)})
  return buffer.getvalue()


_CHILD = """
import json, resource, sys
scope = {}
exec(sys.argv[1], scope)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
  exec(sys.argv[2], scope)
  outcome = "returned"
except Exception as error:
  outcome = f"{type(error).__name__}: {error}"
growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"outcome": outcome, "growth_mib": growth / 1024}))
"""


def _in_child(setup: str, call: str) -> tuple[str, float]:
  """Runs `setup`, then `call`, in a fresh Python; returns (what `call` raised, its peak memory growth in MiB)."""
  env = dict(os.environ, PYTHONPATH=_REPO, JAX_PLATFORMS="cpu", KERAS_BACKEND="jax")
  done = subprocess.run([sys.executable, "-c", _CHILD, setup, call], capture_output=True, text=True, env=env,
                        timeout=120, check=True, cwd=_REPO)
  report = json.loads(done.stdout.strip().splitlines()[-1])
  return report["outcome"], report["growth_mib"]


# ---------------------------------------------------------------------------------------------------------------
# Limits: one place, explicit, restored


def test_limits_are_set_explicitly_checked_and_restored():
  assert get_limits().max_image_pixels == 2 * PIL.Image.MAX_IMAGE_PIXELS == 178_956_970
  assert get_limits().max_bytes == 4 * _GIB and get_limits().max_expansion == 100
  with using_limits(max_image_pixels=10, max_bytes=5) as inside:
    assert inside == get_limits() and (inside.max_image_pixels, inside.max_bytes) == (10, 5)
  assert get_limits() == limits.Limits()
  before = set_limits(max_expansion=1000)
  try:
    assert get_limits().max_expansion == 1000
  finally:
    set_limits(max_expansion=before.max_expansion)
  with pytest.raises(ValueError, match=r"max_pixels=10 is not allowed; the limits are max_image_pixels, max_bytes"):
    set_limits(max_pixels=10)
  with pytest.raises(ValueError, match=r"max_bytes=0 is not allowed; expected a positive integer"):
    set_limits(max_bytes=0)


def test_importing_and_decoding_change_nothing_outside_jaxcomponents():
  outcome, _ = _in_child(  # the dependencies first: JAX and OpenCV set environment variables of their own
      "import os, cv2, grain, jax, keras, PIL.Image\n"
      "environment, pillow = dict(os.environ), PIL.Image.MAX_IMAGE_PIXELS",
      "import io, numpy, jaxcomponents, jaxcomponents.limits, jaxcomponents.data, jaxcomponents.weights\n"
      "buffer = io.BytesIO(); PIL.Image.new('RGB', (4, 3)).save(buffer, 'PNG')\n"
      "jaxcomponents.data.decode_image(buffer.getvalue())\n"
      "assert dict(os.environ) == environment, set(os.environ.items()) ^ set(environment.items())\n"
      "assert PIL.Image.MAX_IMAGE_PIXELS == pillow")
  assert outcome == "returned", outcome


# ---------------------------------------------------------------------------------------------------------------
# 1. A .keras archive whose member inflates to 5 GiB


def test_keras_archive_member_bomb_is_refused_by_its_declared_size(tmp_path):
  bomb = tmp_path / "bomb.keras"
  _write_zip(bomb, [("config.json", b"{}"), ("metadata.json", b"{}"), ("model.weights.h5", b"", 5 * _GIB)])
  assert bomb.stat().st_size < 6 * _MIB
  with zipfile.ZipFile(bomb) as archive:  # a real archive: zipfile would inflate all 5 GiB
    assert archive.getinfo("model.weights.h5").file_size == 5 * _GIB
  x = np.zeros((1, 3), np.float32)
  expected = (r"bomb.keras: archive member 'model.weights.h5' declares 5.0 GiB \(5,368,709,120 bytes\), over the "
              r"limit of 4.0 GiB .*max_bytes=4,294,967,296.*set_limits\(max_bytes=\.\.\.\)")
  with pytest.raises(LimitExceededError, match=expected):
    load_keras(Dense(4), bomb, x)
  with pytest.raises(LimitExceededError, match=expected):
    from_keras(bomb)  # checked before Keras reads it
  outcome, growth = _in_child(
      "import numpy as np; from jaxcomponents.layers import Dense; from jaxcomponents.weights import load_keras",
      f"load_keras(Dense(4), {str(bomb)!r}, np.zeros((1, 3), np.float32))")
  assert outcome.startswith("LimitExceededError: ") and growth < _SMALL_GROWTH_MIB, (outcome, growth)


def test_zip_member_under_the_size_cap_is_refused_by_its_expansion(tmp_path):
  bomb = tmp_path / "inflating.keras"
  _write_zip(bomb, [("config.json", b"{}"), ("model.weights.h5", b"", _GIB)])
  expected = (r"inflating.keras: archive member 'model.weights.h5' declares 1.0 GiB .*over the limit of 100 times "
              r"the .* it stores, or 256.0 MiB if more .*max_expansion=100")
  with pytest.raises(LimitExceededError, match=expected):
    layers_from_h5(bomb)
  assert len(bomb.read_bytes()) < 2 * _MIB


def _write_lying_zip(path, members, liar: str, inflates_to: int) -> None:
  """A stored zip whose member `liar` is deflated and declares its true size, but its stream inflates to
  `inflates_to` bytes (zipfile inflates up to 2 GiB at once before cutting to what a member declares)."""
  central, offset = [], 0
  with open(path, "wb") as f:
    for name, content in members.items():
      data, method = (_deflated(content, inflates_to - len(content)), 8) if name == liar else (content, 0)
      encoded = name.encode()
      header = (20, 0, method, 0, 33, zlib.crc32(content), len(data), len(content), len(encoded))
      f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, *header, 0) + encoded + data)
      central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *header, 0, 0, 0, 0, 0, offset) + encoded)
      offset += 30 + len(encoded) + len(data)
    directory = b"".join(central)
    f.write(directory + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), len(directory),
                                    offset, 0))


def test_keras_archive_member_inflating_past_what_it_declares_is_refused_while_inflating(tmp_path, keras_files):
  _, paths = keras_files
  with zipfile.ZipFile(paths[".keras"]) as archive:
    members = {name: archive.read(name) for name in archive.namelist()}
  liar = tmp_path / "liar.keras"
  _write_lying_zip(liar, members, "model.weights.h5", 2 * _GIB)
  assert liar.stat().st_size < 4 * _MIB
  expected = r"liar.keras is not a readable zip archive \(member 'model.weights.h5' inflates to more than the .* it " \
             r"declares: a decompression bomb"
  with pytest.raises(ValueError, match=expected):
    from_keras(liar)  # refused before Keras, which would inflate the 2 GiB too, reads it
  outcome, growth = _in_child("from jaxcomponents.weights import from_keras", f"from_keras({str(liar)!r})")
  assert outcome.startswith("UnreadableFileError: ") and growth < _SMALL_GROWTH_MIB, (outcome, growth)
  honest = tmp_path / "honest.keras"
  _write_lying_zip(honest, members, "model.weights.h5", len(members["model.weights.h5"]))
  model, variables = from_keras(honest)  # the same archive, deflated honestly, reads as Keras's
  (kernel,) = [leaf for leaf in jax.tree.leaves(variables) if np.shape(leaf) == (3, 4)]
  np.testing.assert_array_equal(kernel, keras_files[0].get_weights()[0])


# ---------------------------------------------------------------------------------------------------------------
# 2. HDF5 datasets declaring far more than the file holds, or than the module expects


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
  """A Keras Dense(4) on 3 inputs in every file format, and the same with a (20000, 25000) kernel declared."""
  import keras

  folder = tmp_path_factory.mktemp("keras_files")
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
  model.set_weights([np.arange(12, dtype=np.float32).reshape(3, 4) / 7, np.arange(4, dtype=np.float32)])
  paths = {suffix: folder / f"model{suffix}" for suffix in (".keras", ".h5", ".weights.h5")}
  model.save(paths[".keras"])
  model.save(paths[".h5"])
  model.save_weights(paths[".weights.h5"])
  for suffix in (".h5", ".weights.h5"):
    paths["bomb" + suffix] = folder / f"bomb{suffix}"
    shutil.copy(paths[suffix], paths["bomb" + suffix])
    _declare_a_huge_kernel(paths["bomb" + suffix])
  with zipfile.ZipFile(paths[".keras"]) as archive:
    members = {name: archive.read(name) for name in archive.namelist()}
  inner = folder / "inner.weights.h5"
  inner.write_bytes(members["model.weights.h5"])
  _declare_a_huge_kernel(inner)
  members["model.weights.h5"] = inner.read_bytes()
  paths["bomb.keras"] = folder / "bomb.keras"
  with zipfile.ZipFile(paths["bomb.keras"], "w") as archive:  # stored, as Keras writes it
    for name, content in members.items():
      archive.writestr(name, content)
  return model, paths


def _declare_a_huge_kernel(path) -> None:
  """Replaces the (3, 4) kernel by a (20000, 25000) float32 dataset (1.9 GiB declared, nothing stored)."""
  with h5py.File(path, "r+") as f:
    found = []
    f.visititems(lambda name, node: found.append(name) if getattr(node, "shape", None) == (3, 4) else None)
    del f[found[0]]
    f.create_dataset(found[0], shape=(20000, 25000), dtype="f4", chunks=(1000, 1000))
  assert os.path.getsize(path) < 64 * 1024


@pytest.mark.parametrize("kind", [".h5", ".weights.h5", ".keras"])
def test_normal_keras_files_still_load_exactly(keras_files, kind):
  model, paths = keras_files
  variables = load_keras(Dense(4), paths[kind], np.zeros((1, 3), np.float32))
  kernel, bias = (np.asarray(w) for w in model.get_weights())
  assert np.array_equal(variables["params"]["dense"]["kernel"], kernel)
  assert np.array_equal(variables["params"]["dense"]["bias"], bias)


@pytest.mark.parametrize("kind", ["bomb.h5", "bomb.weights.h5", "bomb.keras"])
def test_hdf5_shape_bomb_is_refused_before_reading(keras_files, kind):
  _, paths = keras_files
  path = str(paths[kind])
  x = np.zeros((1, 3), np.float32)
  declared = r"\(20000, 25000\) float32 declares 1.9 GiB \(2,000,000,000 bytes\), over the limit of 100 times the"
  with pytest.raises(LimitExceededError, match=rf"{kind}(:model.weights.h5)?: dataset .* {declared}"):
    load_keras(Dense(4), path, x)
  if kind != "bomb.weights.h5":  # a model file: from_keras checks it before Keras reads it
    with pytest.raises(LimitExceededError, match=declared):
      from_keras(path)
  setup = "import numpy as np; from jaxcomponents.layers import Dense; from jaxcomponents.weights import load_keras"
  outcome, growth = _in_child(setup, f"load_keras(Dense(4), {path!r}, np.zeros((1, 3), np.float32))")
  assert outcome.startswith("LimitExceededError: ") and growth < _SMALL_GROWTH_MIB, (outcome, growth)
  # With the limits raised for this file, its shapes are compared with the module's before anything is read.
  raised = "from jaxcomponents.limits import using_limits\nwith using_limits(expansion_floor_bytes=1 << 32):\n  "
  outcome, growth = _in_child(setup, raised + f"load_keras(Dense(4), {path!r}, np.zeros((1, 3), np.float32))")
  assert "mis-shaped" in outcome and "module expects (3, 4)" in outcome and "(20000, 25000)" in outcome, outcome
  assert growth < _SMALL_GROWTH_MIB, growth


def test_hdf5_links_out_of_the_file_are_refused(tmp_path, keras_files):
  _, paths = keras_files
  linked = tmp_path / "linked.weights.h5"
  shutil.copy(paths[".weights.h5"], linked)
  with h5py.File(linked, "r+") as f:
    f["layers/elsewhere"] = h5py.ExternalLink(str(paths[".h5"]), "/")
  with pytest.raises(ValueError, match=r"linked.weights.h5: /?layers/elsewhere is an external link .*file itself only"):
    load_keras(Dense(4), linked, np.zeros((1, 3), np.float32))


# ---------------------------------------------------------------------------------------------------------------
# .npz: members inflating to gigabytes, headers declaring more than their member holds, pickles


def test_npz_bombs_are_refused_before_loading(tmp_path):
  bomb = tmp_path / "bomb.npz"
  _write_zip(bomb, [("x.npy", _npy_header((5 * _GIB,), np.uint8), 5 * _GIB)])
  with pytest.raises(LimitExceededError, match=r"bomb.npz: archive member 'x.npy' declares 5.0 GiB .*max_bytes"):
    load_npz(bomb)
  with pytest.raises(LimitExceededError, match=r"bomb.npz: archive member 'x.npy' declares 5.0 GiB"):
    load_npz_dataset(bomb, x_key="x", y_key="x")
  outcome, growth = _in_child("from jaxcomponents.weights import load_npz", f"load_npz({str(bomb)!r})")
  assert outcome.startswith("LimitExceededError: ") and growth < _SMALL_GROWTH_MIB, (outcome, growth)

  lying = tmp_path / "lying.npz"  # a header declaring 80 GB over 80 bytes: numpy would allocate from the header
  with zipfile.ZipFile(lying, "w") as archive:
    archive.writestr("x.npy", _npy_header((10**5, 10**5), np.float64) + bytes(80))
  with pytest.raises(ValueError, match=r"lying.npz' is not a readable .npz archive \(member 'x.npy' is damaged: its "
                                       r"header declares \(100000, 100000\) float64 \(74.5 GiB"):
    load_npz(lying)
  with pytest.raises(ValueError, match=r"lying.npz is not a readable .npz archive \(member 'x.npy' is damaged"):
    load_npz_dataset(lying, x_key="x", y_key="x")

  pickled = tmp_path / "pickled.npz"
  np.savez(pickled, x=np.array([{"a": 1}], dtype=object))
  with pytest.raises(ValueError, match=r"member 'x.npy' holds Python objects \(object\).*allow_pickle=False"):
    load_npz(pickled)


def test_npz_shapes_are_compared_with_the_module_before_reading(tmp_path):
  huge = tmp_path / "huge.npz"  # a real (20000, 25000) kernel of zeros: 1.9 GiB in 2 MiB
  _write_zip(huge, [("params/dense/kernel.npy", _npy_header((20000, 25000), np.float32), 2 * 10**9),
                    ("params/dense/bias.npy", _npy_header((4,), np.float32) + bytes(16))])
  x = np.zeros((1, 3), np.float32)
  with pytest.raises(LimitExceededError, match=r"huge.npz: archive member 'params/dense/kernel.npy' declares 1.9 GiB"):
    load_npz(huge, Dense(4), x)
  setup = ("import numpy as np; from jaxcomponents.layers import Dense; from jaxcomponents.weights import load_npz\n"
           "from jaxcomponents.limits import using_limits")
  outcome, growth = _in_child(setup, "with using_limits(expansion_floor_bytes=1 << 32):\n"
                                     f"  load_npz({str(huge)!r}, Dense(4), np.zeros((1, 3), np.float32))")
  assert outcome.startswith("ValueError: ") and "mis-shaped" in outcome, outcome
  assert "params/dense/kernel: module expects (3, 4)" in outcome and "has (20000, 25000)" in outcome, outcome
  assert growth < _SMALL_GROWTH_MIB, growth


def test_normal_npz_files_still_load_exactly(tmp_path):
  variables = {"params": {"dense": {"kernel": np.arange(12, dtype=np.float32).reshape(3, 4),
                                    "bias": np.arange(4, dtype=np.float16)}}}
  save_npz(tmp_path / "w.npz", variables)
  loaded = load_npz(tmp_path / "w.npz")
  for name in ("kernel", "bias"):
    value = loaded["params"]["dense"][name]
    assert value.dtype == variables["params"]["dense"][name].dtype
    assert np.array_equal(value, variables["params"]["dense"][name])
  np.savez_compressed(tmp_path / "data.npz", x=np.zeros((64, 28, 28), np.uint8), y=np.arange(64))
  x, y = load_npz_dataset(tmp_path / "data.npz")
  assert x.shape == (64, 28, 28) and y.tolist() == list(range(64))


# ---------------------------------------------------------------------------------------------------------------
# 3. IDX: a header promising (2**32 - 1)**3 bytes, a body inflating to gigabytes


def test_idx_header_promising_too_much_is_refused_before_reading(tmp_path):
  bomb = tmp_path / "train-images-idx3-ubyte.gz"
  header = b"\x00\x00\x08\x03" + (2**32 - 1).to_bytes(4, "big") * 3
  _write_gzip(bomb, header, 1536 * _MIB)
  assert bomb.stat().st_size < 2 * _MIB
  with pytest.raises(LimitExceededError, match=r"train-images-idx3-ubyte.gz: its header \(4294967295, 4294967295, "
                                               r"4294967295\) uint8 declares .* over the limit of 4.0 GiB"):
    read_idx(bomb)
  outcome, growth = _in_child("from jaxcomponents.data import read_idx", f"read_idx({str(bomb)!r})")
  assert outcome.startswith("LimitExceededError: ") and growth < _SMALL_GROWTH_MIB, (outcome, growth)


def test_idx_body_inflating_past_the_expansion_limit_is_stopped_while_reading(tmp_path):
  bomb = tmp_path / "inflating-idx1-ubyte.gz"  # a 3 GiB header (under the size cap) over 1.5 GiB of zeros
  _write_gzip(bomb, b"\x00\x00\x08\x01" + (3 * _GIB).to_bytes(4, "big"), 1536 * _MIB)
  outcome, growth = _in_child("from jaxcomponents.data import read_idx", f"read_idx({str(bomb)!r})")
  assert outcome.startswith("LimitExceededError: ") and "inflating-idx1-ubyte.gz: its decompressed body" in outcome
  assert "max_expansion=100" in outcome
  assert growth < get_limits().expansion_floor_bytes / _MIB + 128, growth  # the floor read, far below 3 GiB


def test_normal_idx_files_still_load_exactly(tmp_path):
  import gzip

  images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
  with gzip.open(tmp_path / "images.gz", "wb") as f:
    f.write(b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in images.shape) + images.tobytes())
  assert np.array_equal(read_idx(tmp_path / "images.gz"), images)
  values = np.linspace(-1, 1, 6).astype(">f4")
  (tmp_path / "floats").write_bytes(b"\x00\x00\x0d\x01" + (6).to_bytes(4, "big") + values.tobytes())
  assert np.array_equal(read_idx(tmp_path / "floats"), values.astype(np.float32))


# ---------------------------------------------------------------------------------------------------------------
# 4-5. Images: a 20000 x 20000 PNG of a few hundred kilobytes; empty, cut and garbage files


@pytest.fixture(scope="module")
def png_bomb(tmp_path_factory):
  path = tmp_path_factory.mktemp("images") / "bomb.png"
  _write_png_of_zeros(path, 20000, 20000)
  assert path.stat().st_size < 512 * 1024
  return path


@pytest.mark.parametrize("decoder", ["opencv", "pillow"])
def test_image_bomb_is_refused_from_its_header(png_bomb, decoder, monkeypatch):
  if decoder == "pillow":
    monkeypatch.setattr(image_ops, "_opencv", lambda: None)
  else:
    assert image_ops._opencv() is not None
  expected = (r"bomb.png: its header \(20000 x 20000\) declares 400,000,000 pixels, over the limit of 178,956,970 "
              r"pixels .*set_limits\(max_image_pixels=\.\.\.\)")
  with pytest.raises(LimitExceededError, match=expected):
    decode_image(png_bomb)
  with pytest.raises(LimitExceededError, match=expected):
    decode_random_resized_crop(png_bomb, (8, 8), np.random.default_rng(0))
  no_opencv = "; import jaxcomponents.data.image as m; m._opencv = lambda: None" if decoder == "pillow" else ""
  outcome, growth = _in_child(f"from jaxcomponents.data import decode_image{no_opencv}",
                              f"decode_image({str(png_bomb)!r})")
  assert outcome.startswith("LimitExceededError: ") and growth < _SMALL_GROWTH_MIB, (outcome, growth)


def test_an_image_over_the_limit_is_named_from_a_worker_process_too(png_bomb, tmp_path):
  from jaxcomponents.data import image_folder_dataset

  for name in ("a", "b"):
    (tmp_path / name).mkdir()
  PIL.Image.new("RGB", (8, 8)).save(tmp_path / "b" / "fine.png")
  shutil.copy(png_bomb, tmp_path / "a" / "bomb.png")
  data, _ = image_folder_dataset(tmp_path, (8, 8), 2, shuffle=False, threads=0, workers=1)
  with pytest.raises(LimitExceededError, match=r"a/bomb.png: its header \(20000 x 20000\) declares") as caught:
    list(data.epoch(0))  # raised in the worker, it comes back whole
  assert caught.value.setting == "max_image_pixels" and caught.value.limit == get_limits().max_image_pixels


def test_the_pixel_limit_is_the_only_one_and_can_be_raised(png_bomb, tmp_path):
  pillow_limit = PIL.Image.MAX_IMAGE_PIXELS
  with pytest.raises(PIL.Image.DecompressionBombError):  # Pillow alone refuses it too (at twice its limit)...
    PIL.Image.open(png_bomb)
  with image_ops._open(png_bomb.read_bytes(), "bomb.png", max_pixels=400_000_000) as opened:
    assert opened.size == (20000, 20000)  # ...but ours is the limit: raised, it lets the header through
  assert PIL.Image.MAX_IMAGE_PIXELS == pillow_limit
  small = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
  PIL.Image.fromarray(small).save(tmp_path / "small.png")
  with using_limits(max_image_pixels=599):
    with pytest.raises(LimitExceededError, match=r"small.png: its header \(30 x 20\) declares 600 pixels"):
      decode_image(tmp_path / "small.png")
    assert np.array_equal(decode_image(tmp_path / "small.png", max_pixels=600), small)
  assert np.array_equal(decode_image(tmp_path / "small.png"), small)


@pytest.mark.parametrize("decoder", ["opencv", "pillow"])
def test_empty_cut_and_garbage_images_are_named(tmp_path, decoder, monkeypatch):
  if decoder == "pillow":
    monkeypatch.setattr(image_ops, "_opencv", lambda: None)
  PIL.Image.fromarray(np.full((64, 64, 3), 7, np.uint8)).save(tmp_path / "whole.jpg", quality=90)
  PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(tmp_path / "w.png")
  (tmp_path / "empty.png").write_bytes(b"")
  (tmp_path / "garbage.jpg").write_bytes(b"GIF89a but not really" * 3)
  (tmp_path / "cut.png").write_bytes((tmp_path / "w.png").read_bytes()[:200])
  (tmp_path / "header-only.jpg").write_bytes((tmp_path / "whole.jpg").read_bytes()[:400])
  for name in ("empty.png", "garbage.jpg", "cut.png"):
    with pytest.raises(ValueError, match=rf"{re.escape(str(tmp_path / name))} is not a readable image") as raised:
      decode_image(tmp_path / name)
    assert "buf.empty" not in str(raised.value)
  decoded = None
  try:  # libjpeg may fill in a cut JPEG (as OpenCV does, with gray); else it is named
    decoded = decode_image(tmp_path / "header-only.jpg")
  except ValueError as error:
    assert str(error).startswith(f"{tmp_path / 'header-only.jpg'} is not a readable image")
  assert decoded is None or decoded.shape == (64, 64, 3)
  assert decode_image(tmp_path / "whole.jpg").shape == (64, 64, 3)


# ---------------------------------------------------------------------------------------------------------------
# 6. Cut-short Keras model files: from_keras and the command line name the file


@pytest.mark.parametrize("kind", [".keras", ".h5"])
def test_truncated_model_files_are_named_by_from_keras_and_the_cli(keras_files, kind, tmp_path, capsys):
  _, paths = keras_files
  cut = tmp_path / f"cut{kind}"
  cut.write_bytes(paths[kind].read_bytes()[:paths[kind].stat().st_size // 2])
  expected = {".keras": r"cut.keras' is not a readable .keras archive with model.weights.h5 \(.*\); was it cut short",
              ".h5": r"cut.h5' is not a readable HDF5 file \(.*\); was it cut short or corrupted"}[kind]
  with pytest.raises(ValueError, match=expected):
    from_keras(cut)
  with pytest.raises(ValueError, match=expected):
    load_keras(Dense(4), cut, np.zeros((1, 3), np.float32))
  assert cli.main(["convert", str(cut), str(tmp_path / "out.npz")]) == 2
  error = capsys.readouterr().err
  assert "jaxcomponents convert: error:" in error and str(cut) in error and "Traceback" not in error
  not_keras = tmp_path / f"notes{kind}"
  not_keras.write_text("these are notes, not a model")
  with pytest.raises(ValueError, match=rf"notes{kind}' is not a readable"):
    from_keras(not_keras)


# ---------------------------------------------------------------------------------------------------------------
# 7. Image folders walk as Keras walks: links to sub-folders followed only when asked


def test_image_folders_follow_links_as_keras_does(tmp_path):
  from keras.src.utils.dataset_utils import index_directory

  from jaxcomponents.data.folders import IMAGE_EXTENSIONS

  def image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.new("RGB", (4, 4)).save(path)

  root, outside = tmp_path / "root", tmp_path / "outside"
  image(root / "cats" / "a.png")
  image(root / "cats" / "nested" / "b.png")
  image(root / "dogs" / "c.jpg")
  image(outside / "secret.png")
  image(tmp_path / "single" / "d.png")
  (root / "cats" / "linked").symlink_to(outside, target_is_directory=True)
  (root / "dogs" / "linked.png").symlink_to(tmp_path / "single" / "d.png")
  for follow_links in (False, True):
    files, classes = list_image_folder(root, follow_links=follow_links)
    keras_paths, keras_labels, keras_classes = index_directory(
        str(root), "inferred", formats=IMAGE_EXTENSIONS, shuffle=False, follow_links=follow_links, verbose=False)
    assert classes == keras_classes == ["cats", "dogs"]
    assert [p for p, _ in files] == list(keras_paths) and [label for _, label in files] == list(keras_labels)
    assert any(p.endswith("secret.png") for p, _ in files) == follow_links
  assert [os.path.relpath(p, root) for p, _ in list_image_folder(root)[0]] == [
      "cats/a.png", "cats/nested/b.png", "dogs/c.jpg", "dogs/linked.png"]
