"""Every loss by name gives what the Keras loss class of that name gives: options, weights, masks, reductions."""

import zlib

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from keras.src.backend import set_keras_mask

from jaxcomponents import losses, regularizers
from tests.helpers import assert_close

B, C = 6, 5
RNG = np.random.default_rng(0)


def _probs(shape, rng):
  """Softmax probabilities with saturated rows (entries ~1e-20 and exactly 0 and 1)."""
  p = np.array(jax.nn.softmax(rng.normal(0, 3, shape).astype(np.float32), axis=-1))
  p[0] = 0.0
  p[0, ..., 0] = 1.0
  p[1] = np.asarray(jax.nn.softmax(np.linspace(-40, 40, shape[-1], dtype=np.float32)))
  return p.astype(np.float32)


def _binary_probs(shape, rng):
  p = rng.uniform(0, 1, shape).astype(np.float32)
  flat = p.reshape(-1)
  flat[:6] = [0.0, 1.0, 1e-9, 1 - 1e-9, 1e-7, 0.9999999]
  return p


def _one_hot(shape, rng):
  return np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], shape[:-1])]


def _inputs(kind, rng, shape=(B, C)):
  if kind == "regression":
    return rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)
  if kind == "positive":
    return rng.uniform(0, 3, shape).astype(np.float32), rng.uniform(0, 3, shape).astype(np.float32)
  if kind == "hinge01":
    return rng.integers(0, 2, shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)
  if kind == "hinge_pm1":
    return np.sign(rng.normal(size=shape)).astype(np.float32), rng.normal(size=shape).astype(np.float32)
  if kind == "distribution":
    return _probs(shape, rng), _probs(shape, rng)[::-1].copy()
  if kind == "cosine":
    y_true, y_pred = rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)
    y_pred[0] = 0.0
    return y_true, y_pred
  if kind == "one_hot_probs":
    return _one_hot(shape, rng), _probs(shape, rng)
  if kind == "one_hot_logits":
    return _one_hot(shape, rng), rng.normal(0, 5, shape).astype(np.float32)
  if kind == "sparse_probs":
    return rng.integers(0, shape[-1], shape[:-1]), _probs(shape, rng)
  if kind == "sparse_logits":
    return rng.integers(0, shape[-1], shape[:-1]), rng.normal(0, 5, shape).astype(np.float32)
  if kind == "binary_probs":
    return rng.integers(0, 2, shape).astype(np.float32), _binary_probs(shape, rng)
  if kind == "binary_logits":
    return rng.integers(0, 2, shape).astype(np.float32), rng.normal(0, 5, shape).astype(np.float32)
  if kind == "ctc":  # labels 1..C-1 padded with the blank 0 (one label sequence empty), logits over 7 steps
    labels = rng.integers(1, shape[-1], (shape[0], 4))
    labels[np.arange(4)[None] >= rng.integers(0, 5, (shape[0], 1))] = 0
    labels[1, 1] = labels[1, 0]  # a repeated label needs a blank between them
    return labels, rng.normal(0, 2, (shape[0], 7, shape[-1])).astype(np.float32)
  if kind == "circle":  # integer labels and L2-normalised embeddings
    embeddings = rng.normal(size=(shape[0], 4)).astype(np.float32)
    return rng.integers(0, 3, shape[0]), embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
  raise AssertionError(kind)


KERAS_CLASSES = {
    "mean_squared_error": keras.losses.MeanSquaredError,
    "mean_absolute_error": keras.losses.MeanAbsoluteError,
    "mean_absolute_percentage_error": keras.losses.MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": keras.losses.MeanSquaredLogarithmicError,
    "cosine_similarity": keras.losses.CosineSimilarity,
    "huber": keras.losses.Huber,
    "log_cosh": keras.losses.LogCosh,
    "hinge": keras.losses.Hinge,
    "squared_hinge": keras.losses.SquaredHinge,
    "categorical_hinge": keras.losses.CategoricalHinge,
    "kl_divergence": keras.losses.KLDivergence,
    "poisson": keras.losses.Poisson,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "binary_focal_crossentropy": keras.losses.BinaryFocalCrossentropy,
    "categorical_focal_crossentropy": keras.losses.CategoricalFocalCrossentropy,
    "categorical_generalized_cross_entropy": keras.losses.CategoricalGeneralizedCrossEntropy,
    "dice": keras.losses.Dice,
    "tversky": keras.losses.Tversky,
    "ctc": keras.losses.CTC,
    "circle": keras.losses.Circle,
}

CASES = [
    ("mse", {}, "regression"),
    ("mae", {}, "regression"),
    ("mape", {}, "regression"),
    ("msle", {}, "positive"),
    ("msle", {}, "regression"),
    ("cosine_similarity", {}, "cosine"),
    ("cosine_similarity", {"axis": 0}, "cosine"),
    ("huber", {}, "regression"),
    ("huber", {"delta": 0.3}, "regression"),
    ("log_cosh", {}, "regression"),
    ("hinge", {}, "hinge01"),
    ("hinge", {}, "hinge_pm1"),
    ("squared_hinge", {}, "hinge01"),
    ("categorical_hinge", {}, "one_hot_logits"),
    ("kld", {}, "distribution"),
    ("poisson", {}, "positive"),
    ("binary_crossentropy", {}, "binary_probs"),
    ("binary_crossentropy", {"label_smoothing": 0.2}, "binary_probs"),
    ("binary_crossentropy", {"from_logits": True}, "binary_logits"),
    ("binary_crossentropy", {"from_logits": True, "label_smoothing": 0.1, "axis": 0}, "binary_logits"),
    ("categorical_crossentropy", {}, "one_hot_probs"),
    ("categorical_crossentropy", {"label_smoothing": 0.1}, "one_hot_probs"),
    ("categorical_crossentropy", {"from_logits": True}, "one_hot_logits"),
    ("categorical_crossentropy", {"from_logits": True, "label_smoothing": 0.3}, "one_hot_logits"),
    ("sparse_categorical_crossentropy", {}, "sparse_probs"),
    ("sparse_categorical_crossentropy", {"from_logits": True}, "sparse_logits"),
    ("sparse_categorical_crossentropy", {"from_logits": True, "axis": 1}, "sparse_logits"),
    ("binary_focal_crossentropy", {}, "binary_probs"),
    ("binary_focal_crossentropy", {"apply_class_balancing": True, "alpha": 0.3, "gamma": 1.5,
                                   "label_smoothing": 0.1}, "binary_probs"),
    ("binary_focal_crossentropy", {"from_logits": True, "axis": 0}, "binary_logits"),
    ("categorical_focal_crossentropy", {}, "one_hot_probs"),
    ("categorical_focal_crossentropy", {"alpha": 0.5, "gamma": 3.0, "label_smoothing": 0.2}, "one_hot_probs"),
    ("categorical_focal_crossentropy", {"from_logits": True}, "one_hot_logits"),
    ("categorical_generalized_cross_entropy", {"q": 0.5}, "sparse_probs"),
    ("categorical_generalized_cross_entropy", {"q": 0.8}, "sparse_probs"),
    ("dice", {}, "binary_probs"),
    ("dice", {"axis": 1}, "binary_probs"),
    ("dice", {"axis": (0, 1)}, "binary_probs"),
    ("tversky", {}, "binary_probs"),
    ("tversky", {"alpha": 0.3, "beta": 0.7, "axis": -1}, "binary_probs"),
    ("ctc", {}, "ctc"),
    ("circle", {}, "circle"),
    ("circle", {"gamma": 10.0, "margin": 0.25, "remove_diagonal": False}, "circle"),
]


def _keras_loss(name, **options):
  return KERAS_CLASSES[losses.ALIASES[name]](**options)


@pytest.mark.parametrize("name,options,kind", CASES, ids=lambda v: str(v) if not isinstance(v, dict) else
                         ",".join(f"{k}={x}" for k, x in v.items()) or "defaults")
def test_matches_keras_class_and_function(name, options, kind):
  rng = np.random.default_rng(zlib.crc32(f"{name}{kind}".encode()))
  y_true, y_pred = _inputs(kind, rng)
  expected = float(_keras_loss(name, **options)(y_true, y_pred))
  got = losses.get(name, **options)(y_true, y_pred)
  assert got.shape == () and np.isfinite(float(got))
  assert_close(got, expected, tol=1e-5)
  # Per-sample values equal Keras's function form (keras.losses.get(name)) where it takes no options.
  per_sample = losses.get(name, reduction="none", **options)(y_true, y_pred)
  if not options:
    assert_close(per_sample, np.asarray(keras.losses.get(name)(y_true, y_pred)), tol=1e-5)
  assert_close(per_sample, np.asarray(_keras_loss(name, reduction=None, **options)(y_true, y_pred)), tol=1e-5)


@pytest.mark.parametrize("name,kind,shape", [
    ("categorical_crossentropy", "one_hot_probs", (3, 4, 5)),
    ("sparse_categorical_crossentropy", "sparse_logits", (3, 4, 5)),
    ("binary_crossentropy", "binary_probs", (B, 1)),
    ("mse", "regression", (B, 1)),
])
def test_other_ranks_match_keras(name, kind, shape):
  rng = np.random.default_rng(3)
  y_true, y_pred = _inputs(kind, rng, shape)
  options = {"from_logits": True} if kind.endswith("logits") else {}
  if shape[-1] == 1:  # Keras expands (batch,) labels against (batch, 1) predictions.
    y_true = y_true[:, 0]
  assert_close(losses.get(name, **options)(y_true, y_pred), float(_keras_loss(name, **options)(y_true, y_pred)),
               tol=1e-5)


def test_categorical_crossentropy_axis_matches_keras():
  rng = np.random.default_rng(4)
  y_true, y_pred = _inputs("one_hot_logits", rng, (3, 4, 5))
  y_true, y_pred = np.moveaxis(y_true, -1, 1), np.moveaxis(y_pred, -1, 1)
  options = {"from_logits": True, "axis": 1}
  assert_close(losses.get("categorical_crossentropy", **options)(y_true, y_pred),
               float(keras.losses.CategoricalCrossentropy(**options)(y_true, y_pred)), tol=1e-5)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None])
@pytest.mark.parametrize("weight_shape", [(B,), (B, 1), ()])
def test_sample_weight_and_reductions_match_keras(reduction, weight_shape):
  rng = np.random.default_rng(5)
  y_true, y_pred = _inputs("sparse_logits", rng)
  weight = rng.uniform(0, 2, weight_shape).astype(np.float32)
  keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)
  loss = losses.get("sparse_categorical_crossentropy", from_logits=True, reduction=reduction)
  expected = np.asarray(keras_loss(y_true, y_pred, sample_weight=weight))
  assert_close(loss(y_true, y_pred, sample_weight=weight), expected, tol=1e-5)


def test_sample_weight_with_per_entry_losses_matches_keras():
  rng = np.random.default_rng(6)
  y_true, y_pred = _inputs("regression", rng, (4, 3, 2))
  weight = rng.uniform(0, 2, (4, 3)).astype(np.float32)
  assert_close(losses.get("mse")(y_true, y_pred, sample_weight=weight),
               float(keras.losses.MeanSquaredError()(y_true, y_pred, sample_weight=weight)), tol=1e-5)


def test_zero_weights_count_in_the_divisor_as_in_keras_but_a_mask_does_not():
  rng = np.random.default_rng(7)
  y_true, y_pred = _inputs("one_hot_logits", rng)
  real = np.array([1, 1, 1, 1, 0, 0], np.float32)
  y_pred_padded = y_pred.copy()
  y_pred_padded[4:] = 1e3  # garbage in the padding
  loss = losses.get("categorical_crossentropy", from_logits=True)
  keras_loss = keras.losses.CategoricalCrossentropy(from_logits=True)
  weighted = loss(y_true, y_pred_padded, sample_weight=real)
  assert_close(weighted, float(keras_loss(y_true, y_pred_padded, sample_weight=real)), tol=1e-5)
  real_only = float(loss(y_true[:4], y_pred[:4]))
  assert_close(weighted, real_only * 4 / 6, tol=1e-5)
  # The mask: the mean over the real examples, whatever the padding holds, as Keras's masking.
  masked = loss(y_true, y_pred_padded, mask=real)
  assert_close(masked, real_only, tol=1e-5)
  keras_pred = jnp.asarray(y_pred_padded)
  set_keras_mask(keras_pred, jnp.asarray(real, bool))
  assert_close(masked, float(keras_loss(y_true, keras_pred)), tol=1e-5)
  # Weights and a mask together, as Keras combines them.
  weight = rng.uniform(0.5, 2, (B,)).astype(np.float32)
  assert_close(loss(y_true, y_pred_padded, sample_weight=weight, mask=real),
               float(keras_loss(y_true, keras_pred, sample_weight=weight)), tol=1e-5)
  # reduction="mean_with_sample_weight" also turns 0/1 weights into a mask (Keras's own reduction).
  mean_w = losses.get("categorical_crossentropy", from_logits=True, reduction="mean_with_sample_weight")
  assert_close(mean_w(y_true, y_pred_padded, sample_weight=real), real_only, tol=1e-5)


def test_ignore_class_matches_keras():
  rng = np.random.default_rng(8)
  y_true, y_pred = _inputs("sparse_logits", rng, (4, 3, C))
  y_true[0, :2] = -1
  y_true[2, 1] = -1
  options = {"from_logits": True, "ignore_class": -1}
  weight = rng.uniform(0.5, 2, (4, 3)).astype(np.float32)
  loss = losses.get("sparse_categorical_crossentropy", **options)
  keras_loss = keras.losses.SparseCategoricalCrossentropy(**options)
  assert_close(loss(y_true, y_pred), float(keras_loss(y_true, y_pred)), tol=1e-5)
  assert_close(loss(y_true, y_pred, sample_weight=weight),
               float(keras_loss(y_true, y_pred, sample_weight=weight)), tol=1e-5)
  grads = jax.grad(lambda p: loss(y_true, p))(jnp.asarray(y_pred))
  assert np.all(np.isfinite(grads)) and np.all(np.asarray(grads)[0, :2] == 0)


@pytest.mark.parametrize("name,kind", [("binary_crossentropy", "binary_probs"),
                                       ("categorical_crossentropy", "one_hot_probs"),
                                       ("sparse_categorical_crossentropy", "sparse_probs"),
                                       ("kld", "distribution")])
def test_saturated_probabilities_give_finite_jitted_values_and_grads(name, kind):
  y_true, y_pred = _inputs(kind, np.random.default_rng(9))
  loss = losses.get(name)
  value, grads = jax.jit(jax.value_and_grad(lambda p: loss(y_true, p)))(jnp.asarray(y_pred))
  assert np.isfinite(float(value)) and np.all(np.isfinite(grads))
  assert_close(value, float(_keras_loss(name)(y_true, y_pred)), tol=1e-5)


def test_aliases_and_class_names_resolve_to_the_same_loss():
  assert losses.get("mse") == losses.get("MeanSquaredError") == losses.get("mean_squared_error")
  assert losses.get("kld").name == "kl_divergence" and losses.get("BCE").name == "binary_crossentropy"
  assert losses.get("Huber", delta=2.0) == losses.get("huber", delta=2.0)


def test_errors_name_the_parameter_value_and_allowed_values():
  with pytest.raises(ValueError, match=r"name='mean_sqared_error' is not allowed; expected one of .*'mse'"):
    losses.get("mean_sqared_error")
  with pytest.raises(ValueError, match=r"label_smoothing=0.1 is not an argument of loss 'mean_squared_error'; "
                                       r"expected one of: reduction"):
    losses.get("mse", label_smoothing=0.1)
  with pytest.raises(ValueError, match=r"from_logit=True is not an argument of loss 'categorical_crossentropy'; "
                                       r"expected one of: from_logits, label_smoothing, axis, reduction\. "
                                       r"Did you mean from_logits\?"):
    losses.get("categorical_crossentropy", from_logit=True)
  with pytest.raises(ValueError, match=r"reduction='avg' is not allowed; expected one of"):
    losses.get("mse", reduction="avg")
  with pytest.raises(ValueError, match=r"label_smoothing=1.5 is not allowed"):
    losses.get("binary_crossentropy", label_smoothing=1.5)
  with pytest.raises(ValueError, match=r"from_logits='yes' is not allowed"):
    losses.get("binary_crossentropy", from_logits="yes")
  with pytest.raises(ValueError, match=r"y_true has shape \(6,\) but y_pred has shape \(6, 5\)"):
    losses.get("categorical_crossentropy")(np.zeros(B), np.ones((B, C)))


# Regularizers: penalties added to the loss, as keras.regularizers computes them per variable.


def _params():
  rng = np.random.default_rng(10)
  return {"block": {"dense": {"kernel": rng.normal(size=(3, 4)).astype(np.float32),
                              "bias": rng.normal(size=(4,)).astype(np.float32)}},
          "head": {"kernel": rng.normal(size=(4, 2)).astype(np.float32)}}


@pytest.mark.parametrize("name,factors,keras_regularizer", [
    ("l1", {}, keras.regularizers.L1()),
    ("l2", {}, keras.regularizers.L2()),
    ("l1_l2", {}, keras.regularizers.L1L2(l1=0.01, l2=0.01)),
    ("L1L2", {"l1": 0.0, "l2": 0.3}, keras.regularizers.L1L2(l2=0.3)),
    ("l1", {"l1": 0.2}, keras.regularizers.L1(0.2)),
])
def test_regularizers_match_keras_summed_over_variables(name, factors, keras_regularizer):
  params = _params()
  expected = sum(float(keras_regularizer(leaf)) for leaf in jax.tree.leaves(params))
  assert_close(regularizers.get(name, **factors)(params), expected, tol=1e-6)
  kernels = [params["block"]["dense"]["kernel"], params["head"]["kernel"]]
  only_kernels = regularizers.select(regularizers.get(name, **factors), "kernel$")
  assert_close(jax.jit(only_kernels)(params), sum(float(keras_regularizer(k)) for k in kernels), tol=1e-6)


def test_regularizer_selection_by_predicate_and_errors():
  params = _params()
  matrices = regularizers.select(regularizers.l2(), lambda path, leaf: leaf.ndim == 2 and path.startswith("block"))
  assert_close(matrices(params), float(keras.regularizers.L2()(params["block"]["dense"]["kernel"])), tol=1e-6)
  assert regularizers.l2() == regularizers.get("L2") and regularizers.l1_l2().l1 == 0.01
  with pytest.raises(ValueError, match=r"include='kernal' selects no parameter; parameter paths are e.g. "
                                       r"\['block/dense/bias'"):
    regularizers.select(regularizers.l2(), "kernal")(params)
  with pytest.raises(ValueError, match=r"name='l3' is not allowed; expected one of 'l1', 'L1'"):
    regularizers.get("l3")
  with pytest.raises(ValueError, match=r"l1=0.1 is not an argument of regularizer 'l2'; expected one of: l2\."):
    regularizers.get("l2", l1=0.1)
  with pytest.raises(ValueError, match=r"l2=-1.0 is not allowed; expected a finite float >= 0"):
    regularizers.l2(-1.0)


@pytest.mark.parametrize("weight_shape", [(2, 1), (1, 4), (2, 4)])
def test_mean_with_sample_weight_divides_by_the_weights_as_given_as_keras(weight_shape):
  rng = np.random.default_rng(31)
  y_true, y_pred = rng.normal(size=(2, 4, 3)).astype(np.float32), rng.normal(size=(2, 4, 3)).astype(np.float32)
  weight = rng.uniform(0.5, 2, weight_shape).astype(np.float32)
  expected = keras.losses.MeanSquaredError(reduction="mean_with_sample_weight")(y_true, y_pred, sample_weight=weight)
  assert_close(losses.get("mse", reduction="mean_with_sample_weight")(y_true, y_pred, sample_weight=weight),
               np.asarray(expected), tol=1e-5)


def test_numpy_scalar_arguments_are_the_python_numbers_keras_reads():
  from jaxcomponents import metrics
  assert losses.get("categorical_crossentropy", label_smoothing=np.float64(0.25), from_logits=np.bool_(True)) == \
      losses.get("categorical_crossentropy", label_smoothing=0.25, from_logits=True)
  assert losses.get("sparse_categorical_crossentropy", ignore_class=np.int64(0)) == \
      losses.get("sparse_categorical_crossentropy", ignore_class=0)
  y_true, y_pred = np.array([[0, 0, 1.0]]), np.array([[0.5, 0.3, 0.2]])
  metric = metrics.get("top_k_categorical_accuracy", k=np.int64(2))
  assert float(metric.result(metric.update(metric.init(), y_true, y_pred))) == 0.0
  with pytest.raises(ValueError, match=r"name='my_loss' is not an argument of loss 'mean_squared_error'"):
    losses.get("mse", name="my_loss")


@pytest.mark.parametrize("name,options,message", [
    ("categorical_generalized_cross_entropy", {"q": 1.0}, r"q=1.0 is not allowed .* expected a float in \(0, 1\)"),
    ("categorical_generalized_cross_entropy", {"q": 0}, r"q=0 is not allowed"),
    ("dice", {"axis": 1.5}, r"axis=1.5 is not allowed .* expected None \(every axis\), an integer axis or a tuple"),
    ("tversky", {"axis": ()}, r"axis=\(\) is not allowed"),
    ("binary_focal_crossentropy", {"gamma": float("nan")}, r"gamma=nan is not allowed .* expected a finite float"),
    ("binary_focal_crossentropy", {"apply_class_balancing": 1}, r"apply_class_balancing=1 is not allowed"),
    ("categorical_focal_crossentropy", {"beta": 0.5}, r"beta"),
])
def test_the_focal_dice_and_tversky_options_are_checked(name, options, message):
  with pytest.raises(ValueError, match=message):
    losses.get(name, **options)


def test_a_keras_loss_class_is_built_with_its_defaults_and_another_dtype_is_refused():
  assert losses.get(keras.losses.Huber) == losses.get(keras.losses.Huber()) == losses.get("huber")
  assert losses.get(keras.losses.SparseCategoricalCrossentropy) == losses.get("sparse_categorical_crossentropy")
  with pytest.raises(ValueError, match=r"has dtype='bfloat16'; jaxcomponents computes Keras's losses in float32 only"):
    losses.get(keras.losses.CategoricalCrossentropy(dtype="bfloat16"))


@pytest.mark.parametrize("keras_loss,ours", [
    (lambda: keras.losses.CosineSimilarity(axis=(1, 2)), lambda: losses.get("cosine_similarity", axis=(1, 2))),
    (lambda: keras.losses.Huber(delta=0.0), lambda: losses.get("huber", delta=0.0)),
])
def test_argument_values_keras_takes_are_taken(keras_loss, ours):
  rng = np.random.default_rng(0)
  y_true, y_pred = rng.normal(size=(4, 3, 5)).astype("float32"), rng.normal(size=(4, 3, 5)).astype("float32")
  assert_close(ours()(y_true, y_pred), keras_loss()(y_true, y_pred), tol=1e-6)


def test_an_ignore_class_given_as_a_whole_float_is_the_class_keras_ignores():
  rng = np.random.default_rng(1)
  y_true, y_pred = rng.integers(0, 3, (6,)), np.asarray(jax.nn.softmax(rng.normal(size=(6, 3)))).astype("float32")
  expected = keras.losses.SparseCategoricalCrossentropy(ignore_class=1.0)(y_true, y_pred)
  assert_close(losses.get("sparse_categorical_crossentropy", ignore_class=1.0)(y_true, y_pred), expected, tol=1e-6)
  with pytest.raises(ValueError, match=r"ignore_class=1.5 is not allowed"):
    losses.get("sparse_categorical_crossentropy", ignore_class=1.5)
