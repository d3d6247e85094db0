"""The Grain batch pipeline: process parts, threads and workers, resume, host image operations."""

import gc

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxcomponents.data import (
  ArrayDataset,
  RecordDataset,
  decode_image,
  decode_random_resized_crop,
  flip_left_right,
  image_folder_dataset,
  normalize,
  pipeline,
  random_resized_crop,
  resize_image,
)
from jaxcomponents.data import image as image_ops
from jaxcomponents.data.image import IMAGENET_MEAN, IMAGENET_STD


@pytest.fixture(params=["opencv", "pillow-numpy"])
def image_backend(request, monkeypatch):
  """Runs a test with OpenCV decoding and resizing, then with Pillow and NumPy alone (OpenCV not installed)."""
  if request.param == "pillow-numpy":
    monkeypatch.setattr(image_ops, "_opencv", lambda: None)
  else:
    assert image_ops._opencv() is not None, "the data extra installs OpenCV"
  return request.param


@pytest.fixture(autouse=True)
def finalize_worker_pools():
  """Runs the finalizers of Grain's worker pools here, not inside a later test (TFDS's mock breaks their imports)."""
  yield
  gc.collect()


def batches(data, epoch=0, start=0):
  return [{k: np.asarray(v) for k, v in b.items()} for b in data.epoch(epoch, start=start)]


def same(a, b):
  return len(a) == len(b) and all(np.array_equal(u[k], v[k]) for u, v in zip(a, b) for k in ("x", "y", "mask"))


def noisy_flip(x, rng):  # module level: worker processes unpickle it
  return flip_left_right(x, rng) + rng.integers(0, 3)


def square_record(i):
  return np.full((2, 2), i, np.int32), np.int32(i % 3)


def test_process_parts_concatenate_to_the_single_process_batches(monkeypatch):
  x, y = np.arange(45 * 6).reshape(45, 3, 2), np.arange(45)
  whole = batches(ArrayDataset(x, y, 12, seed=4, augment=noisy_flip))
  monkeypatch.setattr(pipeline, "_check_processes_agree", lambda spec: None)
  parts = []
  for p in range(3):
    monkeypatch.setattr(pipeline, "process_layout", lambda p=p: (p, 3))
    parts.append(batches(ArrayDataset(x, y, 12, seed=4, augment=noisy_flip)))
  joined = [{k: np.concatenate([part[i][k] for part in parts]) for k in ("x", "y", "mask")} for i in range(4)]
  assert same(whole, joined)
  assert [b["mask"].sum() for b in parts[2]] == [4, 4, 4, 1]  # 45 = 3 x 12 + 9: process 2 reads 44 and 3 repeats


def test_threads_and_worker_processes_give_the_same_batches():
  x, y = np.arange(30 * 4).reshape(30, 2, 2), np.arange(30)
  plain = batches(ArrayDataset(x, y, 8, seed=2, augment=noisy_flip, threads=0), epoch=1)
  threaded = batches(ArrayDataset(x, y, 8, seed=2, augment=noisy_flip, threads=3), epoch=1)
  workers = batches(RecordDataset(list(range(30)), square_record, 8, seed=2, workers=2), epoch=1)
  records = batches(RecordDataset(list(range(30)), square_record, 8, seed=2, threads=0), epoch=1)
  assert same(plain, threaded) and same(workers, records)
  assert not same(plain, batches(ArrayDataset(x, y, 8, seed=2, augment=noisy_flip), epoch=0))


def test_an_epoch_started_at_a_batch_is_the_rest_of_the_epoch():
  data = ArrayDataset(np.arange(100).reshape(50, 2, 1), np.arange(50), 8, seed=9, augment=noisy_flip)
  assert same(batches(data, epoch=3)[5:], batches(data, epoch=3, start=5))


@pytest.mark.parametrize("kwargs, message", [
    (dict(threads=-1), r"threads=-1 is not allowed; expected a non-negative integer"),
    (dict(workers=1.5), r"workers=1.5 is not allowed"),
    (dict(seed=-3), r"seed=-3 is not allowed; expected an integer in \[0, 2\*\*32\)"),
])
def test_bad_pipeline_arguments_name_the_value(kwargs, message):
  with pytest.raises(ValueError, match=message):
    ArrayDataset(np.zeros((4, 1)), np.zeros(4), 2, **kwargs)


@pytest.mark.parametrize("method, jax_method", [("bilinear", "linear"), ("nearest", "nearest")])
@pytest.mark.parametrize("shape, size", [((13, 17, 3), (5, 9)), ((6, 5), (11, 16)), ((8, 8, 1), (8, 3)),
                                         ((9, 7, 8), (4, 12)), ((300, 280, 3), (224, 224))])
def test_resize_computes_what_keras_resizing_computes(method, jax_method, shape, size, image_backend):
  image = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
  expected = jax.image.resize(jnp.asarray(image), (*size, *shape[2:]), jax_method, antialias=False)
  # jax.image.resize places its taps in float32 to about 1e-5 of a pixel: up to 0.005 of a grey level apart.
  np.testing.assert_allclose(resize_image(image, size, method), expected, rtol=1e-5, atol=1e-2)
  if image_backend == "opencv":
    with pytest.MonkeyPatch.context() as patch:
      patch.setattr(image_ops, "_opencv", lambda: None)
      without = resize_image(image, size, method)
    np.testing.assert_allclose(resize_image(image, size, method), without, rtol=1e-6, atol=1e-4)
  pixels = image.astype(np.uint8)
  as_uint8 = resize_image(pixels, size, method)
  assert as_uint8.dtype == np.uint8 and as_uint8.shape == (*size, *shape[2:])
  expected = np.round(jax.image.resize(jnp.asarray(pixels, jnp.float32), as_uint8.shape, jax_method, antialias=False))
  off = np.abs(as_uint8.astype(float) - expected)
  assert off.max() <= 1 and off.mean() < 0.05, (off.max(), off.mean())  # ties at .5 may round either way


def test_resize_rejects_an_unknown_method():
  with pytest.raises(ValueError, match=r"method='cubic' is not allowed; expected one of 'bilinear', 'nearest'"):
    resize_image(np.zeros((4, 4)), (2, 2), "cubic")


@pytest.mark.parametrize("shape, mean, std", [((5, 7, 3), None, None), ((2, 4, 6, 3), None, None),
                                             ((4, 6), 127.5, 127.5), ((3, 4, 2), [1.0, 2.0], [3.0, 4.0])])
def test_normalize_is_mean_and_std_per_channel(shape, mean, std):
  image = np.random.default_rng(1).integers(0, 256, shape).astype(np.uint8)
  mean = IMAGENET_MEAN if mean is None else np.asarray(mean, np.float32)
  std = IMAGENET_STD if std is None else np.asarray(std, np.float32)
  out = normalize(image, mean, std)
  assert out.dtype == np.float32 and out.shape == shape
  np.testing.assert_allclose(out, (image.astype(np.float64) - mean) / std, rtol=1e-6, atol=1e-5)


def test_random_resized_crops_are_deterministic_and_decode_only_what_they_need(tmp_path, image_backend):
  rng = np.random.default_rng(0)
  i, j = np.indices((300, 400))
  photo = (127.5 + 120 * np.sin(np.stack([i / 23, j / 31, (i + j) / 41], -1))).astype(np.uint8)  # smooth
  Image.fromarray(photo).save(tmp_path / "a.jpg", quality=95)
  Image.fromarray(photo).save(tmp_path / "a.png")
  decoded = decode_image(tmp_path / "a.png")
  assert np.array_equal(decoded, photo)
  crop = random_resized_crop(decoded, (32, 48), np.random.default_rng(5))
  assert crop.shape == (32, 48, 3) and np.array_equal(crop, random_resized_crop(decoded, (32, 48),
                                                                                 np.random.default_rng(5)))
  # A PNG decodes in full: the same box, the same resize.
  assert np.array_equal(decode_random_resized_crop(tmp_path / "a.png", (32, 48), np.random.default_rng(5)), crop)
  fast = decode_random_resized_crop(tmp_path / "a.jpg", (32, 48), np.random.default_rng(5))
  assert fast.shape == (32, 48, 3) and fast.dtype == np.uint8
  # The same box, decoded at 1/4 scale: JPEG's own averaging, close to the full-size crop on smooth content.
  assert np.abs(fast.astype(float) - crop).mean() < 4
  big = np.asarray(Image.fromarray(photo).resize((1600, 1200), Image.BICUBIC))
  Image.fromarray(big).save(tmp_path / "big.jpg", quality=95)
  for seed in range(4):  # crops of 224 from 1600x1200 decode at 1/2 or 1/4 scale
    fast = decode_random_resized_crop(tmp_path / "big.jpg", (224, 224), np.random.default_rng(seed))
    full = random_resized_crop(decode_image(tmp_path / "big.jpg"), (224, 224), np.random.default_rng(seed))
    assert fast.shape == (224, 224, 3) and np.abs(fast.astype(float) - full).mean() < 4
  data = (tmp_path / "a.jpg").read_bytes()
  assert decode_random_resized_crop(data, (8, 8), rng).shape == (8, 8, 3)
  assert normalize(np.full((2, 2, 3), 255, np.uint8)).dtype == np.float32
  (tmp_path / "bad.jpg").write_bytes(b"nope")
  with pytest.raises(ValueError, match=r"bad.jpg is not a readable image"):
    decode_random_resized_crop(tmp_path / "bad.jpg", (8, 8), rng)


def test_opencv_and_pillow_decode_the_same_pixels(tmp_path):
  photo = (np.indices((120, 160)).sum(0)[..., None] * [1, 3, 5] % 256).astype(np.uint8)
  Image.fromarray(photo).save(tmp_path / "a.jpg", quality=90)
  Image.fromarray(np.dstack([photo, photo[..., :1]])).save(tmp_path / "rgba.png")
  Image.fromarray(photo[..., 0]).save(tmp_path / "gray.png")
  Image.fromarray(photo).save(tmp_path / "a.gif")
  for name in ("a.jpg", "rgba.png", "gray.png", "a.gif"):
    with_opencv = decode_image(tmp_path / name)
    for reduce in (1, 2, 4):
      data = (tmp_path / name).read_bytes()
      assert image_ops._decode(data, name, reduce).shape[:2] == (
          (-(-120 // reduce), -(-160 // reduce)) if name.endswith(".jpg") else (120, 160))
    with pytest.MonkeyPatch.context() as patch:
      patch.setattr(image_ops, "_opencv", lambda: None)
      with_pillow = decode_image(tmp_path / name)
      reduced = {r: image_ops._decode((tmp_path / name).read_bytes(), name, r) for r in (2, 4)}
    assert with_opencv.shape == (120, 160, 3) and with_opencv.dtype == np.uint8
    assert np.array_equal(with_opencv, with_pillow), name
    for r, pixels in reduced.items():
      assert np.array_equal(image_ops._decode((tmp_path / name).read_bytes(), name, r), pixels), (name, r)
  crops = [decode_random_resized_crop(tmp_path / "a.jpg", (40, 40), np.random.default_rng(7)) for _ in range(2)]
  assert np.array_equal(*crops)


def test_image_folders_skip_hidden_folders_and_read_with_workers(tmp_path):
  rng = np.random.default_rng(1)
  for cls in ("cats", "dogs", ".ipynb_checkpoints"):
    (tmp_path / cls).mkdir()
    for i in range(3):
      Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
  data, classes = image_folder_dataset(tmp_path, (8, 8), 4, seed=3, workers=2, augment=flip_left_right)
  assert classes == ["cats", "dogs"] and data.size == 6
  same_in_thread, _ = image_folder_dataset(tmp_path, (8, 8), 4, seed=3, augment=flip_left_right)
  assert same(batches(data), batches(same_in_thread))
