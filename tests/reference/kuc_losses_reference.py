"""Writes keras-unet-collection's `losses` on fixed inputs to `unet/kuc_losses_all.npz` (tests/test_kuc_losses.py).

Runs in the keras-unet-collection environment (TensorFlow 2.15, see make_unet_references.py):

  /tmp/kuc-venv/bin/python tests/reference/kuc_losses_reference.py

Every case calls one function of `keras_unet_collection.losses` (or TensorFlow's `tf.image.ssim` /
`tf.image.ssim_multiscale`, which kuc's `ms_ssim` wraps) with keyword arguments on named inputs, and records its
output under `<case>/out`; cases marked `grad` also record the gradient of the output's sum with respect to
`y_pred` under `<case>/grad` (TensorFlow's `GradientTape`). Each input is stored once, under `input/<name>`:
images as uint8, which the functions receive as `u8 / 255` in float32 (a case naming `<name>:uint8` receives the
uint8 image itself), other inputs as float32. The JSON `config` holds the cases, each input's encoding (`image` or
`float32`) and kuc's public function names.
"""

from __future__ import annotations

import inspect
import json
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unet", "kuc_losses_all.npz")

# case -> (function, keyword arguments, (y_true input, y_pred input), record the gradient)
CASES = {}


def case(function: str, label: str, inputs: tuple[str, str], grad: bool = False, **kwargs) -> None:
  CASES[f"{function}:{label}"] = (function, kwargs, inputs, grad)


MAPS, B1, ZEROS, ONES = ("maps_t", "maps_p"), ("b1_t", "b1_p"), ("zeros", "zeros"), ("ones", "ones")
for _fn in ("dice_coef", "dice", "tversky_coef", "tversky", "focal_tversky", "iou_seg"):
  case(_fn, "maps", MAPS, grad=_fn in ("dice", "tversky", "focal_tversky", "iou_seg"))
  case(_fn, "batch1", B1)
  case(_fn, "empty", ZEROS)
  case(_fn, "all_ones", ONES)
  case(_fn, "empty_true", ("zeros", "zeros_p"))
case("dice", "const1", MAPS, const=1.0)
case("tversky_coef", "alpha03", MAPS, alpha=0.3)
case("tversky", "alpha03_const", MAPS, alpha=0.3, const=1e-3)
case("focal_tversky", "alpha07_gamma2", MAPS, grad=True, alpha=0.7, gamma=2.0)

case("ms_ssim", "c2_filter3", ("c2_t", "c2_p"), grad=True, max_val=1.0, filter_size=3)
case("ms_ssim", "odd_sizes", ("odd_t", "odd_p"), grad=True, max_val=2.0, filter_size=3, filter_sigma=0.8, k1=0.02,
     k2=0.05, power_factors=[0.5, 0.3, 0.2])
case("ms_ssim", "defaults_batch1", ("big_t", "big_p"), max_val=1.0)
case("ms_ssim", "squeezed_channel", ("sq_t", "sq_p"), grad=True, max_val=1.0, filter_size=2,
     power_factors=[0.7, 0.3])
case("ms_ssim", "uint8", ("odd_t:uint8", "odd_p:uint8"), max_val=255, filter_size=3, power_factors=[0.6, 0.4])
case("ms_ssim", "identical", ("c2_t", "c2_t"), max_val=1.0, filter_size=3)
case("ssim", "odd", ("odd_t", "odd_p"), max_val=1.0, filter_size=5)
case("ssim", "index_map", ("odd_t", "odd_p"), max_val=1.0, filter_size=5, filter_sigma=1.0, return_index_map=True)
case("ssim_multiscale", "per_image", ("sq_t", "sq_p"), max_val=1.0, filter_size=2, power_factors=[0.7, 0.3])

for _mode in ("giou", "iou"):
  case("iou_box_coef", _mode, ("boxes_t", "boxes_p"), mode=_mode)
  case("iou_box", _mode, ("boxes_t", "boxes_p"), grad=True, mode=_mode)
  case("iou_box", f"{_mode}_nested", ("boxes3_t", "boxes3_p"), mode=_mode)
  case("iou_box", f"{_mode}_batch1", ("box1_t", "box1_p"), mode=_mode)

case("triplet_1d", "margin5", ("trip_dummy", "trip"), grad=True, N=4)
case("triplet_1d", "margin05", ("trip_dummy", "trip"), grad=True, N=4, margin=0.5)
case("triplet_1d", "n1", ("trip1_dummy", "trip1"), N=1, margin=1.0)

case("crps2d_tf", "maps", ("crps_t", "crps_p"), grad=True)
case("crps2d_tf", "batch1_rows", ("crps_b1_t", "crps_b1_p"), grad=True)
case("crps2d_tf", "channels2", ("crps_c2_t", "crps_c2_p"), factor=0.2)
case("crps2d_np", "nan", ("crps_nan_t", "crps_nan_p"))
case("crps2d_np", "batch1_rows", ("crps_b1_t", "crps_b1_p"))
case("crps2d_np", "channels2", ("crps_c2_t", "crps_c2_p"), factor=0.2)


def inputs() -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """The named inputs, as stored, and how each is stored (`image`: uint8, or `float32`)."""
  rng = np.random.default_rng(2024)
  stored, encoding = {}, {}

  def add(name, value, how="float32"):
    stored[name], encoding[name] = value, how

  def image(shape):
    return rng.integers(0, 256, shape, dtype=np.uint8)

  def blurred(u8):  # a prediction near the target: the target plus bounded noise
    return np.clip(u8.astype(np.int32) + rng.integers(-60, 61, u8.shape), 0, 255).astype(np.uint8)

  add("maps_t", (rng.uniform(size=(3, 8, 8, 2)) < 0.35).astype(np.float32))
  add("maps_p", rng.uniform(size=(3, 8, 8, 2)).astype(np.float32))
  add("b1_t", (rng.uniform(size=(1, 8, 8, 1)) < 0.35).astype(np.float32))
  add("b1_p", rng.uniform(size=(1, 8, 8, 1)).astype(np.float32))
  add("zeros", np.zeros((2, 8, 8, 1), np.float32))
  add("ones", np.ones((2, 8, 8, 1), np.float32))
  add("zeros_p", rng.uniform(size=(2, 8, 8, 1)).astype(np.float32))
  for name, shape in (("c2", (2, 48, 48, 2)), ("odd", (2, 45, 37, 3)), ("big", (1, 161, 161, 2)),
                      ("sq", (3, 40, 40, 1))):
    target = image(shape)
    add(f"{name}_t", target, "image")
    add(f"{name}_p", blurred(target), "image")
  # [y_min, x_min, y_max, x_max]: overlapping, disjoint, identical, inverted (empty), nested, sharing an edge,
  # both empty.
  add("boxes_t", np.array([[0, 0, 4, 4], [0, 0, 1, 1], [1, 2, 3, 5], [2, 2, 5, 6], [0, 0, 10, 10], [0, 0, 2, 2],
                           [1, 1, 1, 1]], np.float32))
  add("boxes_p", np.array([[1, 1, 5, 6], [3, 3, 4, 5], [1, 2, 3, 5], [4, 5, 1, 2], [2, 3, 4, 7], [0, 2, 2, 4],
                           [2, 2, 2, 2]], np.float32))
  corners = rng.uniform(0, 8, size=(2, 2, 3, 2)).astype(np.float32)
  add("boxes3_t", np.concatenate([corners[0], corners[0] + rng.uniform(0.5, 4, (2, 3, 2))], -1).astype(np.float32))
  add("boxes3_p", np.concatenate([corners[1], corners[1] + rng.uniform(0.5, 4, (2, 3, 2))], -1).astype(np.float32))
  add("box1_t", np.array([[0.5, 1.0, 3.0, 4.5]], np.float32))
  add("box1_p", np.array([[1.0, 0.0, 2.5, 3.0]], np.float32))
  add("trip", rng.normal(size=(5, 12)).astype(np.float32))
  add("trip_dummy", np.zeros((5, 1), np.float32))
  add("trip1", rng.normal(size=(3, 3)).astype(np.float32))
  add("trip1_dummy", np.zeros((3, 1), np.float32))
  add("crps_t", rng.uniform(size=(3, 8, 8, 1)).astype(np.float32))
  add("crps_p", rng.uniform(size=(3, 8, 8, 1)).astype(np.float32))
  add("crps_b1_t", rng.uniform(size=(1, 8, 8, 1)).astype(np.float32))
  add("crps_b1_p", rng.uniform(size=(1, 8, 8, 1)).astype(np.float32))
  add("crps_c2_t", rng.uniform(size=(2, 8, 8, 2)).astype(np.float32))
  add("crps_c2_p", rng.uniform(size=(2, 8, 8, 2)).astype(np.float32))
  nan_t, nan_p = rng.uniform(size=(3, 8, 8, 1)).astype(np.float32), rng.uniform(size=(3, 8, 8, 1)).astype(np.float32)
  nan_t[0, 1, 2, 0] = nan_t[2, 5, 5, 0] = np.nan
  nan_p[1, 0, 0, 0] = np.nan
  add("crps_nan_t", nan_t)
  add("crps_nan_p", nan_p)
  return stored, encoding


def decode(name: str, stored: dict[str, np.ndarray], encoding: dict[str, str]) -> np.ndarray:
  """Input `name` (`<name>:uint8`: an image as stored) as the functions receive it."""
  name, _, raw = name.partition(":")
  value = stored[name]
  return value.astype(np.float32) / np.float32(255) if encoding[name] == "image" and not raw else value


def main() -> None:
  import tensorflow as tf
  from keras_unet_collection import losses

  functions = {name: getattr(losses, name) for name in {c[0] for c in CASES.values()} if hasattr(losses, name)}
  functions.update(ssim=tf.image.ssim, ssim_multiscale=tf.image.ssim_multiscale)
  stored, encoding = inputs()
  arrays = {f"input/{name}": value for name, value in stored.items()}
  for name, (function, kwargs, (true_name, pred_name), grad) in CASES.items():
    y_true, y_pred = (decode(n, stored, encoding) for n in (true_name, pred_name))
    fn = functions[function]
    if function == "crps2d_np":
      arrays[f"{name}/out"] = np.asarray(fn(y_true, y_pred, **kwargs), np.float32)
      continue
    pred = tf.constant(y_pred)
    with tf.GradientTape() as tape:
      tape.watch(pred)
      out = fn(y_true, pred, **kwargs)
      total = tf.reduce_sum(out)
    arrays[f"{name}/out"] = out.numpy()
    if grad:
      arrays[f"{name}/grad"] = tape.gradient(total, pred).numpy()
  public = sorted(name for name, obj in vars(losses).items()
                  if inspect.isfunction(obj) and obj.__module__ == losses.__name__ and not name.startswith("_"))
  config = {"cases": {name: {"function": f, "kwargs": kw, "inputs": list(ins), "grad": g}
                      for name, (f, kw, ins, g) in CASES.items()},
            "encoding": encoding, "kuc_functions": public}
  np.savez_compressed(OUT, config=json.dumps(config), **arrays)
  print(f"{OUT}: {len(CASES)} cases, {os.path.getsize(OUT)} bytes")
  for name in CASES:
    print(f"  {name}: {np.array2string(arrays[name + '/out'].ravel()[:4], precision=6)}")


if __name__ == "__main__":
  main()
