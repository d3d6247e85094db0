"""Streaming metrics give Keras's results over the same data fed in batches of unequal sizes."""

import re
import warnings

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from keras.src.trainers.compile_utils import get_metric

from jaxcomponents import losses, metrics
from tests.helpers import assert_close

SIZES = (6, 1, 9)
N, C = sum(SIZES), 4


def _data(kind, rng):
  if kind == "binary":
    y_true = rng.integers(0, 2, (N, 1))
    y_pred = rng.uniform(0, 1, (N, 1)).astype(np.float32)
    y_pred[:4, 0] = [0.0, 0.5, 1.0, 0.3]  # on thresholds
    return y_true, y_pred
  if kind == "binary_flat":
    return rng.integers(0, 2, (N,)), rng.uniform(0, 1, (N,)).astype(np.float32)
  if kind == "logits":
    return rng.integers(0, 2, (N,)), rng.normal(0, 2, (N,)).astype(np.float32)
  if kind == "multilabel":
    return rng.integers(0, 2, (N, 3)), rng.uniform(0, 1, (N, 3)).astype(np.float32)
  if kind == "sparse":
    return rng.integers(0, C, (N,)), np.asarray(jax.nn.softmax(rng.normal(size=(N, C)))).astype(np.float32)
  if kind == "sparse_col":
    return rng.integers(0, C, (N, 1)), np.asarray(jax.nn.softmax(rng.normal(size=(N, C)))).astype(np.float32)
  if kind == "one_hot":
    return np.eye(C)[rng.integers(0, C, N)], np.asarray(jax.nn.softmax(rng.normal(size=(N, C)))).astype(np.float32)
  if kind == "labels":
    y_true = rng.integers(0, C, (N,))
    return y_true, np.where(rng.uniform(size=N) < 0.6, y_true, rng.integers(0, C, N))
  if kind == "segmentation":
    return rng.integers(0, C, (N, 3, 3)), rng.normal(size=(N, 3, 3, C)).astype(np.float32)
  if kind == "positive":
    return rng.uniform(0, 3, (N, 3)).astype(np.float32), rng.uniform(0, 3, (N, 3)).astype(np.float32)
  if kind == "logits_col":
    return rng.integers(0, 2, (N, 1)), rng.normal(0, 2, (N, 1)).astype(np.float32)
  if kind == "sparse_logits":
    return rng.integers(0, C, (N,)), rng.normal(0, 2, (N, C)).astype(np.float32)
  if kind == "regression":
    return rng.normal(size=(N, 3)).astype(np.float32), rng.normal(size=(N, 3)).astype(np.float32)
  raise AssertionError(kind)


CASES = [
    ("accuracy", {}, "binary"),
    ("accuracy", {}, "sparse"),
    ("acc", {}, "sparse_col"),
    ("accuracy", {}, "one_hot"),
    ("Accuracy", {}, "labels"),
    ("binary_accuracy", {}, "binary"),
    ("binary_accuracy", {"threshold": 0.3}, "multilabel"),
    ("categorical_accuracy", {}, "one_hot"),
    ("sparse_categorical_accuracy", {}, "sparse"),
    ("sparse_categorical_accuracy", {}, "sparse_col"),
    ("top_k_categorical_accuracy", {"k": 2}, "one_hot"),
    ("sparse_top_k_categorical_accuracy", {"k": 2}, "sparse"),
    ("sparse_top_k_categorical_accuracy", {}, "sparse"),
    ("precision", {}, "binary"),
    ("precision", {"thresholds": [0.2, 0.5, 0.7]}, "multilabel"),
    ("precision", {"top_k": 2}, "multilabel"),
    ("precision", {"class_id": 1}, "one_hot"),
    ("recall", {}, "binary_flat"),
    ("recall", {"thresholds": [0.0, 0.5, 1.0]}, "binary"),
    ("recall", {"top_k": 1, "class_id": 2}, "one_hot"),
    ("auc", {}, "binary"),
    ("auc", {}, "multilabel"),
    ("auc", {"curve": "PR"}, "binary_flat"),
    ("auc", {"curve": "PR", "summation_method": "majoring", "num_thresholds": 50}, "binary"),
    ("auc", {"summation_method": "minoring", "thresholds": [0.1, 0.4, 0.45, 0.9]}, "binary"),
    ("auc", {"from_logits": True}, "logits"),
    ("auc", {"multi_label": True, "num_labels": 3}, "multilabel"),
    ("auc", {"multi_label": True, "num_labels": 3, "label_weights": [1.0, 0.5, 2.0], "curve": "PR"}, "multilabel"),
    ("auc", {"multi_label": True}, "multilabel"),  # labels counted from the first batch, as Keras
    ("mean_iou", {"num_classes": C}, "labels"),
    ("mean_iou", {"num_classes": C, "ignore_class": 0}, "labels"),
    ("mean_io_u", {"num_classes": C, "sparse_y_pred": False}, "segmentation"),
    ("mean_absolute_error", {}, "regression"),
    ("mse", {}, "regression"),
    ("mape", {}, "regression"),
    ("msle", {}, "positive"),
    ("hinge", {}, "binary"),
    ("squared_hinge", {}, "multilabel"),
    ("categorical_hinge", {}, "one_hot"),
    ("kl_divergence", {}, "one_hot"),
    ("poisson", {}, "positive"),
    ("LogCoshError", {}, "regression"),
    ("bce", {}, "binary"),
    ("binary_crossentropy", {"from_logits": True, "label_smoothing": 0.1}, "logits_col"),
    ("categorical_crossentropy", {}, "one_hot"),
    ("categorical_crossentropy", {"label_smoothing": 0.2, "axis": -1}, "one_hot"),
    ("sparse_categorical_crossentropy", {}, "sparse"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse_logits"),
    ("cosine_similarity", {}, "regression"),
    ("root_mean_squared_error", {}, "regression"),
    ("pearson_correlation", {}, "regression"),
    ("concordance_correlation", {}, "regression"),
    ("true_positives", {}, "binary"),
    ("false_positives", {"thresholds": [0.2, 0.5, 0.7]}, "multilabel"),
    ("true_negatives", {}, "binary_flat"),
    ("false_negatives", {"thresholds": 0.3}, "binary"),
    ("iou", {"num_classes": C, "target_class_ids": [0, 2]}, "labels"),
    ("binary_iou", {}, "binary"),
    ("BinaryIoU", {"target_class_ids": [1], "threshold": 0.3}, "binary_flat"),
    ("one_hot_iou", {"num_classes": C, "target_class_ids": [1, 3]}, "one_hot"),
    ("one_hot_mean_iou", {"num_classes": C, "ignore_class": 1}, "one_hot"),
    ("f1_score", {}, "one_hot"),
    ("f1_score", {"average": "macro", "threshold": 0.3}, "multilabel"),
    ("FBetaScore", {"beta": 2.0, "average": "weighted", "threshold": 0.5}, "multilabel"),
    ("fbeta_score", {"average": "micro", "beta": 0.5}, "one_hot"),
    ("r2_score", {}, "regression"),
    ("r2_score", {"class_aggregation": "variance_weighted_average"}, "regression"),
    ("R2Score", {"class_aggregation": None}, "regression"),
    ("precision_at_recall", {"recall": 0.6}, "binary"),
    ("precision_at_recall", {"recall": 0.5, "num_thresholds": 1}, "binary"),
    ("recall_at_precision", {"precision": 0.5, "num_thresholds": 50}, "binary_flat"),
    ("sensitivity_at_specificity", {"specificity": 0.7}, "binary"),
    ("specificity_at_sensitivity", {"sensitivity": 0.4, "class_id": 2}, "one_hot"),
]

KERAS = {
    "exact_accuracy": keras.metrics.Accuracy, "binary_accuracy": keras.metrics.BinaryAccuracy,
    "categorical_accuracy": keras.metrics.CategoricalAccuracy,
    "sparse_categorical_accuracy": keras.metrics.SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": keras.metrics.TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": keras.metrics.SparseTopKCategoricalAccuracy,
    "precision": keras.metrics.Precision, "recall": keras.metrics.Recall, "auc": keras.metrics.AUC,
    "mean_iou": keras.metrics.MeanIoU, "mean_absolute_error": keras.metrics.MeanAbsoluteError,
    "mean_squared_error": keras.metrics.MeanSquaredError,
    "mean_absolute_percentage_error": keras.metrics.MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": keras.metrics.MeanSquaredLogarithmicError,
    "hinge": keras.metrics.Hinge, "squared_hinge": keras.metrics.SquaredHinge,
    "categorical_hinge": keras.metrics.CategoricalHinge, "kl_divergence": keras.metrics.KLDivergence,
    "poisson": keras.metrics.Poisson, "logcosh": keras.metrics.LogCoshError,
    "binary_crossentropy": keras.metrics.BinaryCrossentropy,
    "categorical_crossentropy": keras.metrics.CategoricalCrossentropy,
    "sparse_categorical_crossentropy": keras.metrics.SparseCategoricalCrossentropy,
    "cosine_similarity": keras.metrics.CosineSimilarity, "root_mean_squared_error": keras.metrics.RootMeanSquaredError,
    "pearson_correlation": keras.metrics.PearsonCorrelation,
    "concordance_correlation": keras.metrics.ConcordanceCorrelation,
    "true_positives": keras.metrics.TruePositives, "false_positives": keras.metrics.FalsePositives,
    "true_negatives": keras.metrics.TrueNegatives, "false_negatives": keras.metrics.FalseNegatives,
    "iou": keras.metrics.IoU, "binary_iou": keras.metrics.BinaryIoU, "one_hot_iou": keras.metrics.OneHotIoU,
    "one_hot_mean_iou": keras.metrics.OneHotMeanIoU, "f1_score": keras.metrics.F1Score,
    "fbeta_score": keras.metrics.FBetaScore, "r2_score": keras.metrics.R2Score,
    "precision_at_recall": keras.metrics.PrecisionAtRecall, "recall_at_precision": keras.metrics.RecallAtPrecision,
    "sensitivity_at_specificity": keras.metrics.SensitivityAtSpecificity,
    "specificity_at_sensitivity": keras.metrics.SpecificityAtSensitivity,
}


def _keras_metric(name, kwargs, y_true, y_pred):
  canonical = metrics.ALIASES[name]
  if canonical == "accuracy":
    return get_metric("accuracy", y_true, y_pred)  # what model.compile(metrics=["accuracy"]) picks
  return KERAS[canonical](**kwargs)


def _batches(*arrays):
  start = 0
  for size in SIZES:
    yield tuple(None if a is None else a[start:start + size] for a in arrays)
    start += size


def _stream(metric, y_true, y_pred, weight=None, update=None):
  update = update or metric.update
  state = metric.init()
  for t, p, w in _batches(y_true, y_pred, weight):
    state = update(state, t, p, w)
  return metric.result(state)


@pytest.mark.parametrize("name,kwargs,kind", CASES,
                         ids=[f"{n}-{k}-{'-'.join(map(str, kw.items()))}" for n, kw, k in CASES])
def test_streams_like_keras_over_unequal_batches(name, kwargs, kind):
  rng = np.random.default_rng(len(name) * 31 + len(kind))
  y_true, y_pred = _data(kind, rng)
  ours = metrics.get(name, **kwargs)
  is_iou = isinstance(ours, metrics.IoU)  # an integer confusion matrix: Keras truncates the weights
  weight = (rng.integers(0, 3, N) if is_iou else rng.uniform(0, 2, N)).astype(np.float32)
  weight[[2, 5, 11]] = 0.0
  keras_metric = _keras_metric(name, kwargs, y_true, y_pred)
  # Keras cannot broadcast a per-example weight over pixels: give it per-pixel weights.
  keras_w = weight if y_true.ndim < 3 else np.broadcast_to(weight[:, None, None], y_true.shape)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # MeanIoU warns about float weights cast to its int dtype
    for t, p, bw in _batches(y_true, y_pred, keras_w):
      keras_metric.update_state(t, p, sample_weight=bw)
  assert_close(_stream(ours, y_true, y_pred, weight), np.asarray(keras_metric.result()), tol=1e-5)
  # No weights is weights of one, in Keras as here.
  assert_close(_stream(ours, y_true, y_pred), _stream(ours, y_true, y_pred, np.ones(N, np.float32)), tol=1e-6)


def test_sparse_top_k_accuracy_from_sorted_ids_and_keras_objects_keep_their_arguments():
  rng = np.random.default_rng(7)
  scores = rng.normal(size=(3, 10, 6)).astype(np.float32)
  ids = np.argsort(-scores, axis=-1)[..., :4].astype(np.int32)  # the top 4 class ids, highest first
  labels = rng.integers(0, 6, size=(3, 10))
  weights = rng.uniform(size=(3, 10)).astype(np.float32)
  cases = [(keras.metrics.SparseTopKCategoricalAccuracy(k=2, from_sorted_ids=True), ids),
           (keras.metrics.CosineSimilarity(axis=0), scores),  # axis lives outside the Keras config
           (keras.metrics.SparseTopKCategoricalAccuracy(k=3), scores)]
  for keras_metric, y_pred in cases:
    ours = metrics.get(keras_metric)
    cosine = isinstance(keras_metric, keras.metrics.CosineSimilarity)
    y_true, w = (scores[..., ::-1], [None] * 3) if cosine else (labels, weights)  # axis 0: a value per feature
    state = ours.init()
    for b in range(3):
      keras_metric.update_state(y_true[b], y_pred[b], sample_weight=w[b])
      state = ours.update(state, y_true[b], y_pred[b], w[b])
    assert_close(ours.result(state), np.asarray(keras_metric.result()), tol=1e-6)
  huber = keras.losses.Huber(delta=2.0)  # delta too
  y_true, y_pred = scores[0], scores[1] * 3
  assert_close(losses.get(huber)(y_true, y_pred), np.asarray(huber(y_true, y_pred)), tol=1e-6)


@pytest.mark.parametrize("shape", [(6,), (4, 5)])  # labels per example, and per time step
@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_crossentropy_metric_with_ignore_class_as_keras(shape, weighted):
  """Keras's metric leaves the ignored labels out only of weighted means (without weights it averages their
  zero losses in)."""
  rng = np.random.default_rng(len(shape) + 2 * weighted)
  keras_metric = keras.metrics.SparseCategoricalCrossentropy(ignore_class=2, from_logits=True)
  ours = metrics.get(keras_metric)
  state = ours.init()
  for _ in range(3):
    y_true, y_pred = rng.integers(0, 4, size=shape), rng.normal(size=(*shape, 4)).astype(np.float32)
    weight = rng.uniform(size=shape).astype(np.float32) if weighted else None
    keras_metric.update_state(y_true, y_pred, sample_weight=weight)
    state = ours.update(state, y_true, y_pred, weight)
  assert_close(ours.result(state), np.asarray(keras_metric.result()), tol=1e-6)


@pytest.mark.parametrize("name,kwargs,kind", [("accuracy", {}, "sparse"), ("auc", {}, "binary"),
                                              ("precision", {}, "binary"), ("mean_iou", {"num_classes": C}, "labels"),
                                              ("mae", {}, "regression")])
def test_zero_weight_padding_is_left_out_inside_jit(name, kwargs, kind):
  rng = np.random.default_rng(1)
  y_true, y_pred = _data(kind, rng)
  metric = metrics.get(name, **kwargs)
  plain = _stream(metric, y_true, y_pred)
  # Pad every batch to 10 with garbage examples of weight 0; one compiled update serves every batch.
  update = jax.jit(metric.update, donate_argnums=0)  # the state may be donated, as a train step does
  state = metric.init()
  for t, p in _batches(y_true, y_pred):
    pad = 10 - len(t)
    garbage_t = np.concatenate([t, np.roll(t, 1, axis=0)[:1].repeat(pad, 0)])
    garbage_p = np.concatenate([p, (1 - p[:1]).repeat(pad, 0)])
    state = update(state, garbage_t, garbage_p, np.r_[np.ones(len(t)), np.zeros(pad)].astype(np.float32))
  assert jax.tree.structure(state) == jax.tree.structure(metric.init())
  assert_close(metric.result(state), plain, tol=1e-6)
  assert update._cache_size() == 1


def test_metrics_are_hashable_values():
  assert metrics.get("auc") == metrics.get("AUC") and hash(metrics.get("auc")) == hash(metrics.get("AUC"))
  assert metrics.get("mae") == metrics.get("MeanAbsoluteError")


def test_errors_name_the_parameter_value_and_allowed_values():
  with pytest.raises(ValueError, match=r"name='acuracy' is not allowed; expected one of .*'accuracy'"):
    metrics.get("acuracy")
  with pytest.raises(ValueError, match=r"k=2 is not an argument of metric 'categorical_accuracy'; expected "
                                       r"no arguments"):
    metrics.get("categorical_accuracy", k=2)
  with pytest.raises(ValueError, match=r"num_thresholds=1 is not allowed; expected an integer > 1"):
    metrics.get("auc", num_thresholds=1)
  with pytest.raises(ValueError, match=r"curve='ROCK' is not allowed; expected one of 'ROC', 'PR', 'PRGAIN'"):
    metrics.get("auc", curve="ROCK")
  with pytest.raises(ValueError, match=r"metric 'mean_iou' needs the argument num_classes"):
    metrics.get("mean_iou")
  with pytest.raises(ValueError, match=r"num_labels=0 is not allowed; expected a positive integer"):
    metrics.get("auc", multi_label=True, num_labels=0)
  with pytest.raises(ValueError, match=r"thresholds=\[1.5\] is not allowed; expected a float in \[0, 1\] or a "
                                       r"non-empty list"):
    metrics.get("precision", thresholds=[1.5])
  with pytest.raises(ValueError, match=r"k=0 is not allowed"):
    metrics.get("sparse_top_k_categorical_accuracy", k=0)


@pytest.mark.parametrize("spelling", ["accuracy", "acc", "Accuracy", "ACC"])
def test_compile_reads_every_spelling_of_accuracy_as_keras_compile_does(spelling):
  """Keras's compile lower-cases the name: "Accuracy" there is the accuracy chosen by shape, not the exact class."""
  y_true = np.array([2, 0, 1], np.int32)
  y_pred = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.5, 0.4, 0.1]], np.float32)
  def once(metric):
    return float(metric.result(metric.update(metric.init(), y_true, y_pred, None)))
  assert once(metrics.compile_metric(spelling)) == pytest.approx(2 / 3)
  assert once(metrics.get("Accuracy")) == 0.0  # Keras's class: exact equality of labels and scores


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["mae", "mse", "pearson_correlation", "concordance_correlation"])
def test_error_metrics_compute_in_the_inputs_dtype_as_keras(name, dtype):
  rng = np.random.default_rng(41)
  y_true, y_pred = (jnp.asarray(rng.normal(size=(6, 5)), dtype) for _ in range(2))
  metric = metrics.get(name)
  keras_metric = keras.metrics.get(name)
  if not hasattr(keras_metric, "update_state"):
    keras_metric = keras.metrics.MeanMetricWrapper(keras_metric)
  keras_metric.update_state(np.asarray(y_true), np.asarray(y_pred))
  got = metric.result(metric.update(metric.init(), y_true, y_pred))
  np.testing.assert_allclose(float(got), float(keras_metric.result()), rtol=1e-6)


def test_an_empty_threshold_list_is_refused():
  for name in ("precision", "recall"):
    with pytest.raises(ValueError, match=r"thresholds=\[\] is not allowed; expected a float in \[0, 1\] or a "
                                         r"non-empty list of them"):
      metrics.get(name, thresholds=[])


@pytest.mark.parametrize("num_regressors,rows", [(2, N), (5, 2), (1, 2)])  # adjusted; too many; n - 1 regressors
def test_adjusted_r2_score_as_keras_and_padding_left_out(num_regressors, rows):
  rng = np.random.default_rng(43)
  y_true, y_pred = (rng.normal(size=(rows, 3)).astype(np.float32) for _ in range(2))
  ours, theirs = metrics.get("r2_score", num_regressors=num_regressors), keras.metrics.R2Score(
      num_regressors=num_regressors)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Keras warns where it falls back to the plain score
    theirs.update_state(y_true, y_pred)
    want = np.asarray(theirs.result())
  assert_close(ours.result(ours.update(ours.init(), y_true, y_pred)), want, tol=1e-5)
  # A padded batch: rows of weight 0 count neither in the sums nor in the adjusted score's sample count.
  padded = [np.concatenate([a, np.repeat(a[:1], 3, 0) + 5.0]) for a in (y_true, y_pred)]
  weight = np.r_[np.ones(rows), np.zeros(3)].astype(np.float32)
  assert_close(jax.jit(lambda *a: ours.result(ours.update(ours.init(), *a)))(*padded, weight), want, tol=1e-5)


def test_f1_and_r2_states_take_their_shape_from_the_first_batch():
  f1, r2 = metrics.get("f1_score"), metrics.get("r2_score")
  assert f1.init() == {} and r2.init() == {}
  assert metrics.get("f1_score", average="micro").init()["true_positives"].shape == ()
  state = f1.update(f1.init(), np.eye(4)[[0, 1]], np.eye(4)[[0, 2]])
  assert state["true_positives"].shape == (4,)
  with pytest.raises(ValueError, match=r"FBetaScore has no result before its first update"):
    f1.result(f1.init())
  with pytest.raises(ValueError, match=r"R2Score expects 2D inputs of shape \(batch_size, output_dim\); got y_true of "
                                       r"shape \(2, 2, 1\)"):
    r2.update(r2.init(), np.zeros((2, 2, 1)), np.zeros((2, 2, 1)))


def test_iou_target_class_ids_are_any_sequence_of_ids_as_keras_reads_them():
  want = metrics.get("iou", num_classes=3, target_class_ids=[1, 2])
  assert metrics.get("iou", num_classes=3, target_class_ids=np.array([1, 2])) == want
  assert metrics.get("iou", num_classes=3, target_class_ids=range(1, 3)) == want


def test_new_metric_options_are_checked_as_keras():
  for call, message in [
      (lambda: metrics.get("f1_score", average="mean"), r"average='mean' is not allowed; expected one of None, "
                                                        r"'micro', 'macro', 'weighted'"),
      (lambda: metrics.get("fbeta_score", beta=2), r"beta=2 is not allowed; expected a Python float > 0"),
      (lambda: metrics.get("f1_score", threshold=0.0), r"threshold=0.0 is not allowed; expected None or a Python "
                                                       r"float in \(0, 1\]"),
      (lambda: metrics.get("r2_score", class_aggregation="median"), r"class_aggregation='median' is not allowed"),
      (lambda: metrics.get("r2_score", num_regressors=-1), r"num_regressors=-1 is not allowed; expected an integer"),
      (lambda: metrics.get("precision_at_recall", recall=1.5), r"recall=1.5 is not allowed; expected a float in "
                                                               r"\[0, 1\]"),
      (lambda: metrics.get("precision_at_recall"), r"metric 'precision_at_recall' needs the argument recall"),
      (lambda: metrics.get("recall_at_precision", precision=0.5, num_thresholds=0), r"num_thresholds=0 is not allowed"),
      (lambda: metrics.get("iou", num_classes=3, target_class_ids=[3]), r"target_class_ids=\[3\] is not allowed; "
                                                                        r"expected a non-empty list of class ids in "
                                                                        r"\[0, 3\)"),
      (lambda: metrics.get("iou", num_classes=3), r"metric 'iou' needs the argument target_class_ids"),
  ]:
    with pytest.raises(ValueError, match=message):
      call()


CLASSES = [(name, kwargs) for name, kwargs, _ in CASES if metrics.ALIASES[name] != "accuracy"]  # not a class


@pytest.mark.parametrize("name,kwargs", CLASSES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CLASSES)])
def test_a_metric_object_has_kerass_default_name(name, kwargs):
  """What `compile(metrics=[metric])` logs it as, Keras's name for an unnamed object of the class."""
  keras_name = KERAS[metrics.ALIASES[name]](**kwargs).name
  assert metrics.get(name, **kwargs).name == re.sub(r"_\d+$", "", keras_name)  # Keras numbers repeated names


@pytest.mark.parametrize("name,keras_class", [("true_positives", keras.metrics.TruePositives),
                                              ("precision", keras.metrics.Precision), ("recall", keras.metrics.Recall),
                                              ("auc", keras.metrics.AUC)])
@pytest.mark.parametrize("shape", [(4, 4, 3), (2, 5, 3)])
def test_a_column_of_weights_weighs_each_example_of_a_sequence_as_keras(name, keras_class, shape):
  """`(batch, 1)` weights on `(batch, steps, classes)`: one weight per example (with batch == steps they were
  spread along the steps; otherwise refused)."""
  rng = np.random.default_rng(0)
  y_true, y_pred = rng.integers(0, 2, shape).astype("float32"), rng.uniform(size=shape).astype("float32")
  weight = rng.uniform(size=(shape[0], 1)).astype("float32")
  reference = keras_class()
  reference.update_state(y_true, y_pred, weight)
  metric = metrics.get(name)
  assert_close(metric.result(metric.update(metric.init(), y_true, y_pred, weight)), reference.result(), tol=1e-6)


@pytest.mark.parametrize("metric", [keras.metrics.SparseCategoricalAccuracy, keras.metrics.AUC])
def test_a_keras_metric_class_is_built_with_its_defaults_as_keras_builds_it(metric):
  assert metrics.get(metric) == metrics.get(metric())


def test_auc_takes_thresholds_outside_zero_and_one_as_keras_and_a_class_id_out_of_range_is_refused():
  rng = np.random.default_rng(2)
  y_true, y_pred = rng.integers(0, 2, (8,)).astype("float32"), rng.uniform(size=(8,)).astype("float32")
  reference = keras.metrics.AUC(thresholds=[0.2, 1.5, -0.3])
  reference.update_state(y_true, y_pred)
  auc = metrics.get("auc", thresholds=[0.2, 1.5, -0.3])
  assert_close(auc.result(auc.update(auc.init(), y_true, y_pred)), reference.result(), tol=1e-6)
  with pytest.raises(ValueError, match=r"thresholds=\[1.5\] is not allowed; expected a float in \[0, 1\]"):
    metrics.get("precision", thresholds=[1.5])
  precision = metrics.get("precision", class_id=7)
  with pytest.raises(ValueError, match=r"class_id=7 is not allowed for y_pred of shape \(3, 3\); expected an "
                                       r"integer in \[-3, 3\)"):
    precision.update(precision.init(), np.eye(3), np.eye(3))
  y_true, y_pred = np.eye(3)[[0, 2, 2, 1]], rng.uniform(size=(4, 3)).astype("float32")
  reference = keras.metrics.Precision(class_id=-1)
  reference.update_state(y_true, y_pred)
  last = metrics.get("precision", class_id=-1)  # the last class, as Keras (and JAX) index it
  assert_close(last.result(last.update(last.init(), y_true, y_pred)), reference.result(), tol=1e-6)


@pytest.mark.parametrize("name,options,message", [
    ("auc", {"summation_method": "MAJORING"}, r"summation_method='MAJORING' is not allowed"),  # Keras refuses it
    ("auc", {"curve": "Roc"}, r"curve='Roc' is not allowed"),
    ("auc", {"label_weights": [1.0, -0.5]}, r"label_weights=\(1.0, -0.5\) is not allowed; expected non-negative"),
    ("binary_accuracy", {"threshold": float("nan")}, r"threshold=nan is not allowed; expected a finite float"),
])
def test_values_keras_refuses_or_documents_as_wrong_are_refused_by_name(name, options, message):
  with pytest.raises(ValueError, match=message):
    metrics.get(name, **options)
  assert metrics.get("auc", summation_method="Majoring") == metrics.get("auc", summation_method="majoring")
