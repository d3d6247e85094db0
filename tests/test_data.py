"""Data sources and pipelines: IDX, Keras npz, image folders, TFDS, embedded digits, batching."""

import gzip

import jax
import numpy as np
import pytest

from jaxcomponents.data import (ArrayDataset, augment, image_folder_dataset, load_digits, load_idx_dataset,
                                load_npz_dataset, prefetch, read_idx, tfds_dataset)


def write_idx(path, array):
  header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
  data = header + array.astype(np.uint8).tobytes()
  with (gzip.open(path, "wb") if str(path).endswith(".gz") else open(path, "wb")) as f:
    f.write(data)


def fake_idx_dir(directory, n_train=12, n_test=5):
  rng = np.random.default_rng(0)
  arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28)),
            "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train),
            "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
            "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test)}
  directory.mkdir(parents=True, exist_ok=True)
  for name, array in arrays.items():
    write_idx(directory / name, array)
  return arrays


def test_idx_files_gzipped_or_not(tmp_path):
  arrays = fake_idx_dir(tmp_path / "fmnist")
  (x, y), (xt, yt) = load_idx_dataset("fashion_mnist", tmp_path / "fmnist")
  np.testing.assert_array_equal(x, arrays["train-images-idx3-ubyte.gz"])
  np.testing.assert_array_equal(yt, arrays["t10k-labels-idx1-ubyte"])
  assert x.dtype == np.uint8 and xt.shape == (5, 28, 28)


def test_idx_damage_is_reported_by_name(tmp_path):
  fake_idx_dir(tmp_path)
  path = tmp_path / "t10k-images-idx3-ubyte"
  path.write_bytes(path.read_bytes()[:-7])
  with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte is damaged: 3929 bytes where its header \(5, 28, 28\) promises 3936"):
    load_idx_dataset("mnist", tmp_path)
  path.write_bytes(b"\x01\x02\x03\x04")
  with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte is not an IDX file: bad magic"):
    read_idx(path)


def test_idx_headers_are_checked_before_the_body_is_decompressed(tmp_path):
  import gzip
  import tracemalloc

  big = tmp_path / "not-idx.gz"  # 64 MB of zeros: a 64 KB file
  with gzip.open(big, "wb") as f:
    f.write(b"\x7fELF" + bytes(64 << 20))
  promising = tmp_path / "promising.gz"  # a header promising 2**31 bytes, then 10
  with gzip.open(promising, "wb") as f:
    f.write(b"\x00\x00\x08\x01" + (2**31).to_bytes(4, "big") + bytes(10))
  tracemalloc.start()
  try:
    with pytest.raises(ValueError, match=r"not-idx.gz is not an IDX file: bad magic number 7f454c46"):
      read_idx(big)
    with pytest.raises(ValueError, match=r"promising.gz is damaged: 18 bytes where its header \(2147483648,\) "
                                         r"promises 2147483656"):
      read_idx(promising)
    assert tracemalloc.get_traced_memory()[1] < 16 << 20  # peak: neither body was read whole
  finally:
    tracemalloc.stop()


def test_missing_dataset_says_where_it_looked(tmp_path, monkeypatch):
  monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
  with pytest.raises(FileNotFoundError, match=r"mnist not found; .* in: .*nowhere, .*keras/datasets/mnist, "
                                              r".*keras/datasets, /usr/share/datasets/mnist\. Get it with"):
    load_idx_dataset("mnist", tmp_path / "nowhere")


def test_keras_cache_npz(tmp_path, monkeypatch):
  monkeypatch.setenv("KERAS_HOME", str(tmp_path))
  (tmp_path / "datasets").mkdir()
  x = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
  np.savez(tmp_path / "datasets" / "mnist.npz", x_train=x, y_train=np.array([1, 2]), x_test=x[:1],
           y_test=np.array([3]))
  (xtr, ytr), (xte, yte) = load_idx_dataset("mnist")
  np.testing.assert_array_equal(xtr, x)
  assert yte.tolist() == [3]


def test_npz_arrays(tmp_path):
  np.savez(tmp_path / "mine.npz", images=np.zeros((3, 2)), labels=np.arange(3))
  x, y = load_npz_dataset(tmp_path / "mine.npz", x_key="images", y_key="labels")
  assert x.shape == (3, 2) and y.tolist() == [0, 1, 2]
  with pytest.raises(ValueError, match=r"mine.npz has arrays \['images', 'labels'\]; expected x_train"):
    load_npz_dataset(tmp_path / "mine.npz")
  (tmp_path / "bad.npz").write_bytes(b"junk")
  with pytest.raises(ValueError, match=r"bad.npz is not a readable .npz archive"):
    load_npz_dataset(tmp_path / "bad.npz")


def test_image_folders(tmp_path):
  from PIL import Image

  rng = np.random.default_rng(0)
  for cls, n in (("cats", 3), ("dogs", 2)):
    (tmp_path / cls).mkdir()
    for i in range(n):
      Image.fromarray(rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
  data, classes = image_folder_dataset(tmp_path, (16, 16), batch_size=2, shuffle=False)
  assert classes == ["cats", "dogs"]
  batches = list(data.epoch(0))
  assert [b["x"].shape for b in batches] == [(2, 16, 16, 3)] * 3
  assert np.concatenate([b["y"] for b in batches])[:5].tolist() == [0, 0, 0, 1, 1]
  assert batches[-1]["mask"].tolist() == [1.0, 0.0]
  # float32: the resized values unrounded, as Keras's image_dataset_from_directory gives them (its bilinear resize,
  # without antialiasing, is keras.ops.image.resize's)
  import keras

  floats, _ = image_folder_dataset(tmp_path, (16, 16), batch_size=5, shuffle=False, dtype="float32")
  first = next(iter(floats.epoch(0)))["x"]
  source = np.asarray(Image.open(tmp_path / "cats" / "0.png"), np.float32)
  expected = keras.ops.image.resize(source, (16, 16), interpolation="bilinear", antialias=False)
  assert first.dtype == np.float32 and not np.allclose(first[0], np.round(first[0]))
  np.testing.assert_allclose(first[0], expected, atol=1e-3)
  with pytest.raises(ValueError, match=r"dtype='float64' is not allowed"):
    image_folder_dataset(tmp_path, (16, 16), batch_size=2, dtype="float64")
  (tmp_path / "dogs" / "broken.jpg").write_bytes(b"not an image")
  data, _ = image_folder_dataset(tmp_path, (16, 16), batch_size=6, shuffle=False)
  with pytest.raises(ValueError, match=r"broken.jpg is not a readable image"):
    list(data.epoch(0))


def test_tfds_data_source_with_mock_data():
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=7):
    data = tfds_dataset("cifar10", "train", batch_size=4, image_size=(8, 8), seed=1)
    batches = list(data.epoch(0))
  assert len(batches) == 2
  assert batches[0]["x"].shape == (4, 8, 8, 3) and batches[0]["x"].dtype == np.uint8
  assert batches[1]["mask"].tolist() == [1.0, 1.0, 1.0, 0.0]
  assert all(0 <= y < 10 for b in batches for y in b["y"])


def test_missing_tfds_dataset_says_how_to_prepare(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"(?s)not prepared .*`tfds build mnist --file_format=array_record`"):
    tfds_dataset("mnist", "train", 8, data_dir=tmp_path)


def test_last_batch_is_padded_and_masked_and_shuffling_is_deterministic():
  x, y = np.arange(10)[:, None], np.arange(10)
  data = ArrayDataset(x, y, batch_size=4, seed=3)
  epoch0 = list(data.epoch(0))
  assert [b["x"].shape for b in epoch0] == [(4, 1)] * 3
  assert epoch0[-1]["mask"].tolist() == [1, 1, 0, 0]
  real = np.concatenate([b["y"][b["mask"] > 0] for b in epoch0])
  assert sorted(real.tolist()) == list(range(10))
  again = list(ArrayDataset(x, y, batch_size=4, seed=3).epoch(0))
  assert all(np.array_equal(a["y"], b["y"]) for a, b in zip(epoch0, again))
  other = np.concatenate([b["y"] for b in data.epoch(1)])
  assert not np.array_equal(other, np.concatenate([b["y"] for b in epoch0]))
  assert len(ArrayDataset(x, y, batch_size=4, drop_remainder=True)) == 2


def test_labels_out_of_range_are_an_error():
  with pytest.raises(ValueError, match=r"y has labels outside \[0, 5\): e.g. \[7, -1\] at indices \[2, 4\]"):
    ArrayDataset(np.zeros((5, 2)), np.array([0, 1, 7, 2, -1]), batch_size=2, num_classes=5)


def test_prefetch_yields_device_arrays_and_reraises():
  out = list(prefetch({"x": np.full((2,), i)} for i in range(3)))
  assert [int(b["x"][0]) for b in out] == [0, 1, 2] and isinstance(out[0]["x"], jax.Array)

  def broken():
    yield {"x": np.zeros(2)}
    raise RuntimeError("disk on fire")

  with pytest.raises(RuntimeError, match="disk on fire"):
    list(prefetch(broken()))


def test_augment_is_deterministic_per_key_and_varies_per_image():
  images = np.broadcast_to(np.arange(8, dtype=np.float32)[None, None, :, None], (4, 8, 8, 1))
  a = augment(jax.random.key(0), images, crop_size=(6, 6), max_brightness=0.1)
  b = augment(jax.random.key(0), images, crop_size=(6, 6), max_brightness=0.1)
  np.testing.assert_array_equal(a, b)
  assert a.shape == (4, 6, 6, 1)
  assert len({float(v) for v in np.asarray(a)[:, 0, 0, 0]}) > 1


def test_embedded_digits_are_real_and_offline():
  (x, y), (xt, yt) = load_digits()
  assert x.shape[1:] == (8, 8) and len(x) + len(xt) == 1797
  assert set(np.unique(y)) == set(range(10))
  assert x.max() == 255 and x.min() == 0
