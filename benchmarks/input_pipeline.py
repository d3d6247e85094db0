"""Images per second of an ImageNet-style input pipeline: jaxcomponents (Grain) against tf.data.

The work, per image: read a JPEG file, decode, random resized crop to 224x224
(Inception-style box: area 8-100 %, aspect 3/4-4/3), random horizontal flip,
normalise to float32 with ImageNet's mean and deviation, batch 64. Two ways
of decoding, each side with its own library:
  - "crop": decode only what the crop needs (libjpeg's reduced-scale
    decoding, `decode_random_resized_crop`; TensorFlow's `decode_and_crop_jpeg`),
  - "full": decode the whole image, then crop and resize.
The images are real photographs (scikit-learn's two sample images) cut into
ImageNet-sized JPEGs (about 500x375, quality 90), written once to a folder.

    python -m benchmarks.input_pipeline                      # jaxcomponents, then tf.data from .venv-tf
    python -m benchmarks.input_pipeline --images 512 --tf-python .venv-tf/bin/python

Writes benchmarks/results/input_pipeline.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

BATCH = 64
SIZE = (224, 224)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_images(folder: str, count: int) -> list[str]:
  """ImageNet-sized JPEGs cut from scikit-learn's sample photographs (deterministic)."""
  from PIL import Image
  from sklearn.datasets import load_sample_images

  photos = load_sample_images().images
  rng = np.random.default_rng(0)
  os.makedirs(folder, exist_ok=True)
  paths = []
  for i in range(count):
    photo = photos[i % len(photos)]
    h, w = rng.integers(300, 420), rng.integers(380, 600)
    top, left = rng.integers(0, photo.shape[0] - 280), rng.integers(0, photo.shape[1] - 360)
    crop = Image.fromarray(photo[top:top + 280, left:left + 360]).resize((int(w), int(h)), Image.BICUBIC)
    if rng.random() < 0.5:
      crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    path = os.path.join(folder, f"{i:05d}.jpg")
    if not os.path.exists(path):
      crop.save(path, quality=90)
    paths.append(path)
  return paths


def path_and_label(path: str):
  return path, np.int32(0)


class ImageNetTrainAugment:
  """(path, rng) -> normalised random resized crop, maybe flipped; a class so worker processes can unpickle it."""

  def __init__(self, decode: str):
    self.decode = decode

  def __call__(self, path: str, rng: np.random.Generator) -> np.ndarray:
    from jaxcomponents.data import (decode_image, decode_random_resized_crop, flip_left_right, normalize,
                                    random_resized_crop)

    if self.decode == "crop":
      image = decode_random_resized_crop(path, SIZE, rng)
    else:
      image = random_resized_crop(decode_image(path), SIZE, rng)
    return normalize(flip_left_right(image, rng))


def time_batches(batches, count: int) -> float:
  """Images per second over `count` batches after the first (which includes start-up)."""
  iterator = iter(batches)
  next(iterator)
  start = time.perf_counter()
  for _ in range(count):
    batch = next(iterator)
  assert batch[0].shape == (BATCH, *SIZE, 3) and batch[0].dtype == np.float32
  return count * BATCH / (time.perf_counter() - start)


def run_jaxcomponents(paths: list[str], decode: str, threads: int, workers: int, batches: int) -> float:
  from jaxcomponents.data import RecordDataset

  data = RecordDataset(paths, path_and_label, BATCH, seed=0, augment=ImageNetTrainAugment(decode),
                       threads=threads, workers=workers, drop_remainder=True)

  return time_batches(((b["x"], b["y"]) for b in data.stream(0, batches + 1)), batches)


def run_tf(paths: list[str], decode: str, parallel: int, batches: int) -> float:
  import tensorflow as tf

  mean = tf.constant([0.485, 0.456, 0.406]) * 255.0
  std = tf.constant([0.229, 0.224, 0.225]) * 255.0

  def load(path):
    data = tf.io.read_file(path)
    shape = tf.io.extract_jpeg_shape(data)
    begin, size, _ = tf.image.sample_distorted_bounding_box(
        shape, tf.zeros([0, 0, 4]), area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3),
        max_attempts=10, use_image_if_no_bounding_boxes=True)
    if decode == "crop":
      window = tf.stack([begin[0], begin[1], size[0], size[1]])
      image = tf.io.decode_and_crop_jpeg(data, window, channels=3)
    else:
      image = tf.slice(tf.io.decode_jpeg(data, channels=3), begin, size)
    image = tf.image.resize(image, SIZE, method="bilinear")
    image = tf.image.random_flip_left_right(image)
    return (image - mean) / std, tf.constant(0, tf.int32)

  calls = tf.data.AUTOTUNE if parallel == 0 else parallel
  ds = (tf.data.Dataset.from_tensor_slices(paths).repeat().shuffle(len(paths), seed=0)
        .map(load, num_parallel_calls=calls).batch(BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
  return time_batches(ds.as_numpy_iterator(), batches)


def jc_configs():
  for decode in ("crop", "full"):
    yield decode, "threads=0 (one thread)", dict(threads=0, workers=0)
    yield decode, "threads=2", dict(threads=2, workers=0)
    yield decode, "workers=1", dict(threads=1, workers=1)
    yield decode, "workers=2", dict(threads=1, workers=2)


def tf_configs():
  for decode in ("crop", "full"):
    for parallel, name in ((1, "num_parallel_calls=1"), (2, "num_parallel_calls=2"), (0, "AUTOTUNE")):
      yield decode, name, dict(parallel=parallel)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--images", type=int, default=512)
  parser.add_argument("--batches", type=int, default=24, help="timed batches per configuration")
  parser.add_argument("--folder", default=os.path.join(tempfile.gettempdir(), "jaxcomponents-pipeline-bench"))
  parser.add_argument("--tf-python", default=os.path.join(ROOT, ".venv-tf", "bin", "python"))
  parser.add_argument("--framework", choices=("jaxcomponents", "tf", "both"), default="both")
  parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "input_pipeline"))
  args = parser.parse_args(argv)
  if args.framework == "tf":  # the images were written by the jaxcomponents side
    paths = sorted(os.path.join(args.folder, f) for f in os.listdir(args.folder))[:args.images]
  else:
    paths = make_images(args.folder, args.images)
  rows = []
  if args.framework in ("jaxcomponents", "both"):
    for decode, name, options in jc_configs():
      rate = run_jaxcomponents(paths, decode, batches=args.batches, **options)
      rows.append({"framework": "jaxcomponents (Grain)", "decode": decode, "setting": name, "images_per_s": rate})
      print(f"jaxcomponents  {decode:4s}  {name:24s} {rate:8.1f} images/s", flush=True)
  if args.framework == "tf":
    for decode, name, options in tf_configs():
      rate = run_tf(paths, decode, batches=args.batches, **options)
      rows.append({"framework": "tf.data", "decode": decode, "setting": name, "images_per_s": rate})
      print(f"tf.data        {decode:4s}  {name:24s} {rate:8.1f} images/s", flush=True)
    print("ROWS " + json.dumps(rows))
    return
  if args.framework == "both":
    if os.path.exists(args.tf_python):
      done = subprocess.run([args.tf_python, "-m", "benchmarks.input_pipeline", "--framework", "tf", "--images",
                             str(args.images), "--batches", str(args.batches), "--folder", args.folder],
                            cwd=ROOT, capture_output=True, text=True, timeout=1800)
      lines = [line for line in done.stdout.splitlines() if line.startswith("ROWS ")]
      if done.returncode or not lines:
        raise RuntimeError(f"the tf.data run failed:\n{done.stderr[-3000:]}")
      rows += json.loads(lines[-1][5:])
      print("\n".join(line for line in done.stdout.splitlines() if not line.startswith("ROWS ")))
    else:
      print(f"no TensorFlow Python at {args.tf_python} (make tf-venv): tf.data not measured")
  write_report(rows, args)


def write_report(rows, args):
  import grain

  meta = {"date": time.strftime("%Y-%m-%d"), "cpu_count": os.cpu_count(), "machine": platform.processor() or
          platform.machine(), "python": platform.python_version(), "grain": getattr(grain, "__version__", "?"),
          "images": args.images, "timed_batches": args.batches, "batch": BATCH, "size": SIZE,
          "command": "python -m benchmarks.input_pipeline " + " ".join(sys.argv[1:])}
  with open(args.out + ".json", "w") as f:
    json.dump({"meta": meta, "rows": rows}, f, indent=1)
  best = {}
  for row in rows:
    key = (row["framework"], row["decode"])
    best[key] = max(best.get(key, 0.0), row["images_per_s"])
  lines = [f"# Input pipeline: images per second ({meta['date']}, {meta['cpu_count']} CPU cores)", "",
           f"Command: `{meta['command']}`. JPEGs of about 500x375 -> random resized crop 224x224, flip, normalise "
           f"(float32), batches of {BATCH}; {args.batches} batches timed after the first. Grain {meta['grain']}.", "",
           "| framework | decode | setting | images/s |", "|---|---|---|---:|"]
  lines += [f"| {r['framework']} | {r['decode']} | {r['setting']} | {r['images_per_s']:.1f} |" for r in rows]
  lines += ["", "Best of each:", "", "| framework | decode | images/s |", "|---|---|---:|"]
  lines += [f"| {fw} | {decode} | {rate:.1f} |" for (fw, decode), rate in sorted(best.items())]
  with open(args.out + ".md", "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
