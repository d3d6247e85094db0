"""keras-unet-collection's `losses` module against its own numbers (tests/reference/unet/kuc_losses_all.npz).

The reference holds keras-unet-collection 0.1.13's outputs (TensorFlow 2.15 on the CPU) on fixed inputs, edge
cases included, and TensorFlow's gradients for one case of each loss; kuc_losses_reference.py writes it.
"""

from __future__ import annotations

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcomponents import losses_segmentation as seg
from jaxcomponents.training import TrainState, make_train_step

with np.load(os.path.join(os.path.dirname(__file__), "reference", "unet", "kuc_losses_all.npz")) as _data:
  REFERENCE = {key: _data[key] for key in _data.files}
CONFIG = json.loads(str(REFERENCE["config"]))
CASES = CONFIG["cases"]
TENSORFLOW = {"ssim": seg.ssim, "ssim_multiscale": seg.ssim_multiscale}
# TensorFlow's own MS-SSIM differs by up to 3.5e-6 between its oneDNN and Eigen CPU kernels on these inputs (the
# coarsest scale's variances cancel, and its Gaussian window and local means differ in the last bit): (MS-)SSIM
# values match within 1e-5 of their [0, 1] range, their gradients within 1e-4 of the largest. Everything else
# within 1e-5 of the output scale.
SSIM_FUNCTIONS = ("ms_ssim", "ssim", "ssim_multiscale")


def _input(name: str) -> np.ndarray:
  """A reference input as the functions receive it: images as `u8 / 255` (as uint8 when named `<name>:uint8`)."""
  name, _, raw = name.partition(":")
  value = REFERENCE[f"input/{name}"]
  return value.astype(np.float32) / np.float32(255) if CONFIG["encoding"][name] == "image" and not raw else value


def _call(case: dict):
  """The twin of a case's function, with its keyword arguments (keras-unet-collection's reduction)."""
  name = case["function"]
  if name in TENSORFLOW:
    return TENSORFLOW[name], dict(case["kwargs"])
  return seg.KERAS_UNET_COLLECTION[name], dict(case["kwargs"], per_example=False)


def _assert_close(actual, expected, tol: float, absolute: bool = False) -> None:
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape, f"shape {actual.shape} != keras-unet-collection's {expected.shape}"
  finite = np.isfinite(expected)
  np.testing.assert_array_equal(actual[~finite], expected[~finite])  # kuc's empty-mask infinities
  scale = 1.0 if absolute else max(float(np.max(np.abs(expected[finite]), initial=0.0)), 1e-6)
  err = float(np.max(np.abs(actual[finite] - expected[finite]), initial=0.0))
  assert err <= tol * scale, f"max error {err:.3g} exceeds {tol} x {scale:.3g}"


def test_every_kuc_function_has_a_twin_and_its_losses_a_registered_name():
  assert sorted(seg.KERAS_UNET_COLLECTION) == CONFIG["kuc_functions"]
  covered = {case["function"] for case in CASES.values()}
  assert covered >= set(seg.KERAS_UNET_COLLECTION) | set(TENSORFLOW)
  not_losses = {"dice_coef", "tversky_coef", "iou_box_coef", "crps2d_np"}
  renamed = {"dice": "kuc_dice", "tversky": "kuc_tversky"}  # Keras's dice and tversky keep those names
  for kuc_name, fn in seg.KERAS_UNET_COLLECTION.items():
    if kuc_name not in not_losses:
      assert seg.LOSSES[renamed.get(kuc_name, kuc_name)] is fn
  assert seg.LOSSES["dice"] is seg.dice and seg.LOSSES["tversky"] is seg.tversky


def test_references_cover_the_variants():
  by_function = {}
  for name, case in CASES.items():
    by_function.setdefault(case["function"], []).append((name.split(":")[1], case))
  for function in ("dice_coef", "dice", "tversky_coef", "tversky", "focal_tversky", "iou_seg"):
    assert {"maps", "batch1", "empty", "all_ones", "empty_true"} <= {label for label, _ in by_function[function]}
  ms_ssim = [case["kwargs"] for _, case in by_function["ms_ssim"]]
  assert {"filter_sigma", "k1", "k2", "power_factors"} <= set().union(*ms_ssim)
  assert {"c2_t", "odd_t", "big_t", "sq_t", "odd_t:uint8"} <= {c["inputs"][0] for _, c in by_function["ms_ssim"]}
  assert {case["kwargs"]["mode"] for _, case in by_function["iou_box"]} == {"giou", "iou"}
  grads = {case["function"] for case in CASES.values() if case["grad"]}
  assert grads == {"dice", "tversky", "focal_tversky", "iou_seg", "ms_ssim", "iou_box", "triplet_1d", "crps2d_tf"}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_kuc(name):
  case = CASES[name]
  fn, kwargs = _call(case)
  y_true, y_pred = (_input(n) for n in case["inputs"])
  ssim_like = case["function"] in SSIM_FUNCTIONS
  _assert_close(fn(y_true, y_pred, **kwargs), REFERENCE[f"{name}/out"], 1e-5, absolute=ssim_like)
  if case["grad"]:
    grad = jax.grad(lambda p: jnp.sum(fn(y_true, p, **kwargs)))(jnp.asarray(y_pred))
    _assert_close(grad, REFERENCE[f"{name}/grad"], 1e-4 if ssim_like else 1e-5)


@pytest.mark.parametrize("fn, kwargs", [
    (seg.dice_coef, {}), (seg.kuc_dice, {"const": 1.0}), (seg.tversky_coef, {"alpha": 0.3}),
    (seg.kuc_tversky, {}), (seg.focal_tversky, {"alpha": 0.7}), (seg.iou_seg, {}), (seg.crps2d_tf, {}),
    (seg.crps2d_np, {"factor": 0.2}),
])
def test_per_example_losses_are_each_example_alone(fn, kwargs):
  y_true, y_pred = _input("maps_t"), _input("maps_p")
  per_example = fn(y_true, y_pred, **kwargs)
  assert per_example.shape == (3,)
  if fn in (seg.crps2d_tf, seg.crps2d_np):  # kuc averages a batch of one map over its rows: compare the mean
    np.testing.assert_allclose(np.mean(per_example), fn(y_true, y_pred, per_example=False, **kwargs), rtol=1e-6)
  else:
    alone = [fn(y_true[i:i + 1], y_pred[i:i + 1], per_example=False, **kwargs) for i in range(3)]
    np.testing.assert_allclose(per_example, alone, rtol=1e-6)


@pytest.mark.parametrize("fn", [seg.dice_coef, seg.kuc_dice, seg.kuc_tversky, seg.focal_tversky, seg.iou_seg,
                                seg.crps2d_tf, seg.crps2d_np])
def test_a_label_map_without_its_channel_axis_is_read_as_kuc_squeezes_it(fn):
  """kuc squeezes `y_true` and `y_pred`: a `(n, h, w)` map against `(n, h, w, 1)` predictions is the same pair."""
  y_true, y_pred = _input("maps_t")[..., :1], _input("maps_p")[..., :1]
  for per_example in (True, False):
    expected = fn(y_true, y_pred, per_example=per_example)
    np.testing.assert_allclose(fn(y_true[..., 0], y_pred, per_example=per_example), expected, rtol=1e-6)
    np.testing.assert_allclose(fn(y_true, y_pred[..., 0], per_example=per_example), expected, rtol=1e-6)


def test_a_batch_pooled_metric_is_the_mean_of_its_batches_as_keras():
  """kuc's scores as metrics (`metrics=[dice_batch]`, one value per batch): Keras averages the batches' values."""
  from jaxcomponents import Model
  from jaxcomponents.layers import Convolution

  def dice_batch(y_true, y_pred):
    return seg.dice_coef(y_true, y_pred, per_example=False)

  x = np.random.default_rng(11).uniform(size=(12, 4, 4, 1)).astype(np.float32)
  y = (x > 0.5).astype(np.float32)
  model = Model(Convolution(1, 1, activation="sigmoid"))
  model.compile(optimizer=optax.sgd(0.0), loss="mse", metrics=[dice_batch])
  history = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
  predictions = model.predict(x, verbose=0)
  expected = np.mean([dice_batch(y[i:i + 4], predictions[i:i + 4]) for i in range(0, 12, 4)])
  np.testing.assert_allclose(history.history["dice_batch"], [expected], rtol=1e-5)


def test_per_example_ms_ssim_reads_each_map_as_one_image():
  kwargs = CASES["ssim_multiscale:per_image"]["kwargs"]
  y_true, y_pred = _input("sq_t"), _input("sq_p")  # (3, 40, 40, 1): kuc squeezes it into one (3, 40, 40) image
  expected = 1.0 - REFERENCE["ssim_multiscale:per_image/out"]
  _assert_close(seg.ms_ssim(y_true, y_pred, **kwargs), expected, 1e-5, absolute=True)
  several = CASES["ms_ssim:c2_filter3"]  # several channels: nothing to squeeze, the same values either way
  _assert_close(seg.ms_ssim(*(_input(n) for n in several["inputs"]), **several["kwargs"]),
                REFERENCE["ms_ssim:c2_filter3/out"], 1e-5, absolute=True)
  boxes = seg.iou_box(_input("box1_t"), _input("box1_p"))
  assert boxes.shape == (1,) and seg.iou_box(_input("boxes3_t"), _input("boxes3_p")).shape == (2,)


@pytest.mark.parametrize("name, options, y_true, y_pred", [
    ("ms_ssim", {"max_val": 1.0, "filter_size": 3, "power_factors": (0.5, 0.3, 0.2)}, "odd_t", "odd_p"),
    ("kuc_tversky", {"alpha": 0.3}, "maps_t", "maps_p"),
    ("iou_seg", {}, "maps_t", "maps_p"),
    ("iou_box", {"mode": "giou"}, "boxes3_t", "boxes3_p"),
    ("triplet_1d", {"N": 4, "margin": 5.0}, "trip_dummy", "trip"),
    ("crps2d_tf", {"factor": 0.1}, "crps_t", "crps_p"),
    ("focal_tversky", {}, "maps_t", "maps_p"),
])
def test_registered_kuc_losses_train_under_jit(name, options, y_true, y_pred):
  loss = seg.get(name, **options)
  y_true, y_pred = jnp.asarray(_input(y_true)), jnp.asarray(_input(y_pred))
  value, grad = jax.jit(jax.value_and_grad(lambda p: jnp.mean(loss(y_true, p))))(y_pred)
  np.testing.assert_allclose(value, jnp.mean(loss(y_true, y_pred)), rtol=2e-5)
  assert loss(y_true, y_pred).shape == (len(y_pred),) and bool(jnp.all(jnp.isfinite(grad)))
  assert float(jnp.max(jnp.abs(grad))) > 0


class _TinySegmenter(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool = False):
    return nn.sigmoid(nn.Conv(2, (3, 3))(x))


def test_ms_ssim_trains_a_model():
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(4, 16, 16, 2)).astype(np.float32)
  y = x[..., ::-1].copy()
  loss = seg.combined((seg.get("ms_ssim", max_val=1.0, filter_size=3, power_factors=(0.5, 0.5)), 1.0),
                      (seg.get("kuc_dice"), 1.0))
  state = TrainState.create(_TinySegmenter(), optax.adam(3e-2), x[:1])
  step = make_train_step(loss)
  losses = []
  for _ in range(20):
    state, results = step(state, {"x": x, "y": y})
    losses.append(float(results["loss"]))
  assert np.all(np.isfinite(losses)) and losses[-1] < 0.9 * losses[0], losses


def test_dtype_computes_in_that_dtype():
  y_true, y_pred = _input("maps_t"), _input("maps_p")
  half = seg.iou_seg(y_true, y_pred, dtype=jnp.float16)
  assert half.dtype == jnp.float16
  np.testing.assert_allclose(half, seg.iou_seg(y_true, y_pred), rtol=2e-3)
  boxes = seg.iou_box(_input("boxes_t"), _input("boxes_p"), dtype="bfloat16")
  assert boxes.dtype == jnp.bfloat16


MAPS = np.full((2, 8, 8, 1), 0.5, np.float32)


@pytest.mark.parametrize("call, match", [
    (lambda: seg.iou_box(np.ones((2, 4)), np.ones((2, 4)), mode="GIoU"), r"mode='GIoU'.*'giou', 'iou'"),
    (lambda: seg.iou_box_coef(np.ones((2, 3)), np.ones((2, 3))), r"shape \(2, 3\).*last axis of 4"),
    (lambda: seg.iou_seg(MAPS, MAPS, dtype="int32"), r"dtype='int32'.*floating-point"),
    (lambda: seg.triplet_1d(None, np.ones((2, 6)), N=0), r"N=0.*positive integer"),
    (lambda: seg.triplet_1d(None, np.ones((2, 6)), N=2.5), r"N=2.5.*positive integer"),
    (lambda: seg.triplet_1d(None, np.ones((2, 7)), N=2), r"shape \(2, 7\).*\(batch, 6\)"),
    (lambda: seg.triplet_1d(None, np.ones((2, 6)), N=2, margin="5"), r"margin='5'.*real number"),
    (lambda: seg.focal_tversky(MAPS, MAPS, gamma=0), r"gamma=0.*non-zero"),
    (lambda: seg.kuc_dice(MAPS, MAPS, const=None), r"const=None.*real number"),
    (lambda: seg.tversky_coef(MAPS, MAPS, alpha="0.5"), r"alpha='0.5'.*real number"),
    (lambda: seg.crps2d_tf(MAPS, MAPS, factor=[0.1]), r"factor=\[0.1\].*real number"),
    (lambda: seg.crps2d_tf(MAPS[:1, :1, :1], MAPS[:1, :1, :1], per_example=False), r"squeezed to a scalar"),
    (lambda: seg.kuc_dice(MAPS, MAPS[..., :1, :]), r"y_true has shape .* y_pred has shape"),
    (lambda: seg.ms_ssim(MAPS, MAPS, max_val=1.0), r"\(2, 8, 8, 1\).*filter_size=11 over 5 scale.*161 x 161"),
    (lambda: seg.ms_ssim(np.ones((1, 160, 161, 2)), np.ones((1, 160, 161, 2)), max_val=1.0),
     r"scale 4 is 10 x 11; at least 161 x 161"),
    (lambda: seg.ms_ssim(MAPS, MAPS, max_val=1.0, filter_size=0), r"filter_size=0.*positive integer"),
    (lambda: seg.ms_ssim(MAPS, MAPS, max_val=1.0, filter_size=2.0), r"filter_size=2.0.*positive integer"),
    (lambda: seg.ms_ssim(MAPS, MAPS, max_val=1.0, power_factors=()), r"power_factors=\(\).*non-empty"),
    (lambda: seg.ms_ssim(MAPS, MAPS, max_val="1"), r"max_val='1'.*real number"),
    (lambda: seg.ms_ssim(MAPS, MAPS, max_val=1.0, filter_sigma=None), r"filter_sigma=None.*real number"),
    (lambda: seg.ms_ssim(MAPS[:1], MAPS[:1], max_val=1.0, filter_size=2, power_factors=(1.0,), per_example=False),
     r"squeezed to \(8, 8\).*per_example=True"),
    (lambda: seg.ms_ssim(MAPS[0], MAPS[0], max_val=1.0), r"shape \(8, 8, 1\).*\(batch, height, width, channels\)"),
    (lambda: seg.ssim(MAPS, MAPS, 1.0, filter_size=3, return_index_map="yes"), r"return_index_map='yes'"),
    (lambda: seg.ssim(MAPS[0, 0], MAPS[0, 0], 1.0), r"shapes \(8, 1\) and \(8, 1\).*\(\.\.\., height, width"),
    (lambda: seg.get("ms_ssim"), r"'ms_ssim' needs the argument max_val"),
    (lambda: seg.get("triplet_1d"), r"'triplet_1d' needs the argument N"),
])
def test_bad_arguments_name_the_parameter_and_value(call, match):
  with pytest.raises(ValueError, match=match):
    call()


@pytest.mark.parametrize("fn", [seg.crps2d_tf, seg.triplet_1d])
def test_a_batch_pooled_loss_evaluates_a_short_last_batch_at_its_own_size_as_keras(fn):
  """A loss over the whole batch (`per_example=False`) would count a padded batch's padding rows: evaluation
  gives the last batch at its own size, as Keras does, weighed by its size in the mean."""
  import functools

  from jaxcomponents import Model
  from jaxcomponents.layers import Dense

  rng = np.random.default_rng(12)
  triplet = fn is seg.triplet_1d
  x = rng.uniform(size=(7, 9) if triplet else (7, 6, 5)).astype(np.float32)
  y = rng.uniform(size=(7, 9) if triplet else (7, 6, 5)).astype(np.float32)
  loss = functools.partial(fn, per_example=False, **({"N": 3} if triplet else {}))
  model = Model(Dense(9 if triplet else 5))
  model.compile(optimizer=optax.sgd(0.0), loss=loss)
  predictions = model.predict(x, verbose=0)
  expected = (4 * loss(y[:4], predictions[:4]) + 3 * loss(y[4:], predictions[4:])) / 7
  np.testing.assert_allclose(model.evaluate(x, y, batch_size=4, verbose=0), expected, rtol=1e-5)
  history = model.fit(x, y, batch_size=7, epochs=1, verbose=0, validation_data=(x, y), validation_batch_size=4)
  np.testing.assert_allclose(history.history["val_loss"], [expected], rtol=1e-5)
