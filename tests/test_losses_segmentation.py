"""Segmentation losses and metrics against Keras 3 and keras-unet-collection's own numbers."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest

from jaxcomponents import losses_segmentation as seg
from jaxcomponents.metrics_segmentation import BinaryIoU, mean_iou

rng = np.random.default_rng(0)
Y_TRUE = (rng.uniform(size=(3, 6, 6, 2)) < 0.4).astype(np.float32)
Y_PRED = rng.uniform(0.01, 0.99, size=(3, 6, 6, 2)).astype(np.float32)
ONE_HOT = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (3, 6, 6))]
PROBS = rng.dirichlet(np.ones(3), size=(3, 6, 6)).astype(np.float32)


def _per_pixel_mean(values):
  return np.asarray(values).reshape(values.shape[0], -1).mean(axis=1)


@pytest.mark.parametrize("ours, keras_loss, y_true, y_pred", [
    (seg.dice, lambda t, p: keras.losses.dice(t, p, axis=(1, 2, 3)), Y_TRUE, Y_PRED),
    (seg.get("tversky", alpha=0.3, beta=0.7),
     lambda t, p: keras.losses.tversky(t, p, alpha=0.3, beta=0.7, axis=(1, 2, 3)), Y_TRUE, Y_PRED),
    (seg.get("binary_focal_crossentropy", apply_class_balancing=True, gamma=3.0),
     lambda t, p: _per_pixel_mean(keras.losses.binary_focal_crossentropy(t, p, apply_class_balancing=True,
                                                                         gamma=3.0)), Y_TRUE, Y_PRED),
    (seg.get("categorical_focal_crossentropy", label_smoothing=0.1),
     lambda t, p: _per_pixel_mean(keras.losses.categorical_focal_crossentropy(t, p, label_smoothing=0.1)),
     ONE_HOT, PROBS),
    (seg.binary_crossentropy, lambda t, p: _per_pixel_mean(keras.losses.binary_crossentropy(t, p)), Y_TRUE, Y_PRED),
    (seg.categorical_crossentropy, lambda t, p: _per_pixel_mean(keras.losses.categorical_crossentropy(t, p)),
     ONE_HOT, PROBS),
])
def test_losses_match_keras(ours, keras_loss, y_true, y_pred):
  np.testing.assert_allclose(ours(y_true, y_pred), np.asarray(keras_loss(y_true, y_pred)), rtol=1e-5, atol=1e-6)


def test_sparse_categorical_crossentropy_on_label_maps():
  labels = ONE_HOT.argmax(-1)
  np.testing.assert_allclose(seg.sparse_categorical_crossentropy(labels, PROBS),
                             seg.categorical_crossentropy(ONE_HOT, PROBS), rtol=1e-6)


def test_losses_match_keras_unet_collection():
  ref = np.load(os.path.join(os.path.dirname(__file__), "reference", "unet", "kuc_losses.npz"))
  t, p = ref["y_true"], ref["y_pred"]
  np.testing.assert_allclose(seg.kuc_dice(t, p, per_example=False), ref["dice"], rtol=1e-5)
  np.testing.assert_allclose(seg.jaccard(t, p, per_example=False), ref["iou_seg"], rtol=1e-5)
  np.testing.assert_allclose(seg.focal_tversky(t, p, alpha=0.7, gamma=1.0, per_example=False), ref["tversky"],
                             rtol=1e-5)
  np.testing.assert_allclose(seg.focal_tversky(t, p, alpha=0.7, per_example=False), ref["focal_tversky"], rtol=1e-5)
  assert seg.jaccard(t, p).shape == (3,) and float(seg.jaccard(np.zeros((1, 2, 2, 1)), np.zeros((1, 2, 2, 1)))[0]) == 1


def test_combined_and_errors():
  both = seg.combined((seg.dice, 1.0), (seg.get("iou"), 0.5))
  np.testing.assert_allclose(both(Y_TRUE, Y_PRED), seg.dice(Y_TRUE, Y_PRED) + 0.5 * seg.jaccard(Y_TRUE, Y_PRED),
                             rtol=1e-6)
  with pytest.raises(ValueError, match=r"name='lovasz'.*'dice'"):
    seg.get("lovasz")
  with pytest.raises(ValueError, match=r"same shape"):
    seg.dice(Y_TRUE, Y_PRED[..., :1])
  with pytest.raises(ValueError, match=r"target_class_ids"):
    BinaryIoU(target_class_ids=(2,))


@pytest.mark.parametrize("ids, threshold", [((0, 1), 0.5), ((1,), 0.3)])
def test_binary_iou_matches_keras(ids, threshold):
  ours, theirs = BinaryIoU(ids, threshold), keras.metrics.BinaryIoU(ids, threshold)
  state = ours.init()
  for i in range(3):
    state = ours.update(state, Y_TRUE[i:i + 1], Y_PRED[i:i + 1])
    theirs.update_state(Y_TRUE[i:i + 1], Y_PRED[i:i + 1])
  np.testing.assert_allclose(ours.result(state), float(theirs.result()), rtol=1e-6)


def test_mean_iou_on_softmax_maps_matches_keras():
  labels = ONE_HOT.argmax(-1)
  ours, theirs = mean_iou(3), keras.metrics.MeanIoU(3, sparse_y_pred=False)
  state = ours.update(ours.init(), labels, PROBS)
  theirs.update_state(labels, PROBS)
  np.testing.assert_allclose(ours.result(state), float(theirs.result()), rtol=1e-6)
