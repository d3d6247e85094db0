"""The one name registry: aliases, signature-checked arguments, one error form, Keras's identifier forms; and every
registry built on it resolves every name it lists, and Keras's own names for what it implements."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from keras.src.utils.naming import to_snake_case

from jaxcomponents import activations, losses, losses_segmentation, metrics, metrics_segmentation, optimizers
from jaxcomponents import regularizers
from jaxcomponents.models.unet_blocks import KERAS_UNET_COLLECTION_ACTIVATIONS, OUTPUT_ACTIVATIONS
from jaxcomponents.registry import ANY, REQUIRED, Registry, snake_case

# ---------------------------------------------------------------------------- the mechanism


def _power(y_true, y_pred, exponent=2.0, axis=-1):
  return jnp.sum(jnp.abs(y_true - y_pred) ** exponent, axis=axis)


def _needs_size(size, fill=0.0):
  return (size, fill)


def _toy(**options):
  r = Registry("toy", inputs=("y_true", "y_pred"), make=lambda name, fn, arguments: (name, arguments), **options)
  r.register("mean_power_error", _power, keras_class="MeanPowerError", aliases=("mpe", "MPE"))
  r.register("needs_size", _needs_size, keras_class="NeedsSize")
  return r


def test_names_aliases_and_class_names_resolve_to_one_entry():
  r = _toy()
  assert [r.canonical(n) for n in ("mean_power_error", "mpe", "MPE", "MeanPowerError")] == ["mean_power_error"] * 4
  assert list(r) == ["mean_power_error", "mpe", "MPE", "MeanPowerError", "needs_size", "NeedsSize"]
  assert r["MPE"] is _power and r.names == ("mean_power_error", "needs_size")
  assert dict(r.aliases)["mpe"] == "mean_power_error"
  assert "mean_power_error_" not in r and "Mpe" not in r


def test_snake_case_of_class_names_is_keras_s_and_declared_names_win():
  for name in ("MeanIoU", "AUC", "L1L2", "TopKCategoricalAccuracy", "SparseCategoricalCrossentropy", "KLDivergence",
               "RMSprop", "BinaryIoU", "R2Score", "MeanSquaredError", "OneHotMeanIoU", "ABcDEf", "X2Y"):
    assert snake_case(name) == to_snake_case(name), name
  r = Registry("metric", snake_case_classes=True)
  r.register("exact", lambda: "exact", keras_class="Accuracy")  # derives "accuracy" ...
  r.register("accuracy", lambda: "by shape")  # ... which a declared name then takes over
  r.register("iou", lambda: "iou", keras_class="MeanIoU")
  assert r.get("accuracy") == "by shape" and r.get("Accuracy") == "exact" and r.canonical("mean_io_u") == "iou"
  with pytest.raises(ValueError, match=r"metric name 'accuracy' is declared twice: for 'accuracy' and 'other'"):
    r.register("other", lambda: None, aliases=("accuracy",))


def test_any_case_lists_one_spelling_per_name():
  r = Registry("optimizer", any_case=True)
  r.register("rmsprop", lambda rho=0.9: rho, keras_class="RMSprop")
  assert list(r) == ["rmsprop"] and r.get("RMSPROP", rho=0.5) == 0.5 and r["RMSprop"]() == 0.9
  with pytest.raises(ValueError, match=r"name='rms' is not allowed; expected one of 'rmsprop' \(in any case\)\."):
    r.get("rms")


def test_arguments_are_read_from_the_signature():
  r = _toy(common={"reduction": "sum"})
  assert r.arguments("mpe") == {"exponent": 2.0, "axis": -1, "reduction": "sum"}
  assert r.arguments("needs_size") == {"size": REQUIRED, "fill": 0.0, "reduction": "sum"}
  assert r.resolve("MPE", {"exponent": 1.0}) == ("mean_power_error", {"exponent": 1.0})


def test_one_error_form_for_names_and_arguments():
  r = _toy(name_notes={"Power": "'Power' is spelled elsewhere."})
  with pytest.raises(ValueError, match=r"^name='mean_power_eror' is not allowed; expected one of 'mean_power_error', "
                                       r"'mpe', 'MPE', 'MeanPowerError', 'needs_size', 'NeedsSize'\. "
                                       r"Did you mean 'mean_power_error'\?$"):
    r.get("mean_power_eror")
  with pytest.raises(ValueError, match=r"^loss='Power' is not allowed; expected one of .*'NeedsSize'\. 'Power' is "
                                       r"spelled elsewhere\.$"):
    r.get("Power", param="loss")
  with pytest.raises(ValueError, match=r"^exponant=3 is not an argument of toy 'mean_power_error'; expected one of: "
                                       r"exponent, axis\. Did you mean exponent\?$"):
    r.get("mpe", exponant=3)
  with pytest.raises(ValueError, match=r"^toy 'needs_size' needs the argument size; it has no default\.$"):
    r.get("NeedsSize", fill=1.0)
  empty = Registry("metric", argument_notes={"dtype": "Metrics compute in float32."})
  empty.register("acc", lambda: 1)
  with pytest.raises(ValueError, match=r"^k=2 is not an argument of metric 'acc'; expected no arguments\.$"):
    empty.get("acc", k=2)
  with pytest.raises(ValueError, match=r"^dtype='int8' is not an argument of metric 'acc'; expected no arguments\. "
                                       r"Metrics compute in float32\.$"):
    empty.get("acc", dtype="int8")
  with pytest.raises(ValueError, match=r"^name=3 is not allowed; expected a metric name \(one of 'acc'\), a Keras "
                                       r"config dict \{'class_name': \.\.\., 'config': \{\.\.\.\}\} or a callable\.$"):
    empty.get(3)


def test_keras_identifier_forms_config_dicts_functions_and_pass_through():
  r = _toy(config_keys={"name": ANY, "dtype": (None, "float32")})
  assert r.get({"class_name": "MeanPowerError", "config": {"exponent": 1.0, "name": "mine", "dtype": "float32"}},
               axis=0) == r.get("mpe", exponent=1.0, axis=0)
  function = {"module": "builtins", "class_name": "function", "config": "mpe", "registered_name": "function"}
  assert r.get(function) == ("mean_power_error", {})
  assert r.get({"class_name": "needs_size", "config": {"size": 3}}) == ("needs_size", {"size": 3})
  with pytest.raises(ValueError, match=r"^dtype='int32' is not an argument of toy 'mean_power_error'"):
    r.get({"class_name": "MeanPowerError", "config": {"dtype": "int32"}})  # not at a value that changes nothing
  with pytest.raises(ValueError, match=r"^name=\{'config': \{\}\} is not allowed; expected a toy name"):
    r.get({"config": {}})
  with pytest.raises(ValueError, match=r"^name=None is not allowed; expected a toy name"):
    r.get(None)
  custom = lambda y_true, y_pred: y_pred
  assert r.get(custom) is custom
  with pytest.raises(ValueError, match=r"^axis=0 is not allowed with name=<function .*>; arguments go with a toy name "
                                       r"or config dict, not with a callable\.$"):
    r.get(custom, axis=0)
  values = Registry("activation", param="activation", values=True, none="linear")
  values.register("linear", lambda x: x)
  assert values.get(None) is values["linear"] and values.get({"class_name": "function", "config": "linear"})(2) == 2


# ---------------------------------------------------------------------------- every registry, every name it lists

X = np.linspace(-2.0, 2.0, 12, dtype=np.float32).reshape(4, 3)
PROBS = np.asarray(jax.nn.softmax(X), np.float32)
ONE_HOT = np.eye(3, dtype=np.float32)[[0, 2, 1, 2]]
LABELS = np.array([0, 2, 1, 2])
MAPS = (np.linspace(0.05, 0.95, 2 * 4 * 4 * 2, dtype=np.float32).reshape(2, 4, 4, 2),
        np.eye(2, dtype=np.float32)[np.arange(32) % 2].reshape(2, 4, 4, 2))


@pytest.mark.parametrize("name", list(losses.LOSSES))
def test_every_loss_name_resolves(name):
  loss = losses.get(name)
  assert isinstance(loss, losses.Loss) and loss.name == losses.ALIASES[name]
  y_true, y_pred = (LABELS, PROBS) if loss.name in ("sparse_categorical_crossentropy",
                                                     "categorical_generalized_cross_entropy") else (ONE_HOT, PROBS)
  if loss.name == "ctc":  # label sequences, and logits over time steps
    y_true, y_pred = ONE_HOT[:, :2].astype(np.int32) + 1, np.stack([PROBS] * 5, axis=1)
  if loss.name == "circle":  # class labels, and unit-norm embeddings
    y_true, y_pred = np.array([0, 1, 0, 1]), PROBS / np.linalg.norm(PROBS, axis=1, keepdims=True)
  assert np.isfinite(float(loss(y_true, y_pred)))


@pytest.mark.parametrize("name", list(metrics.METRICS))
def test_every_metric_name_resolves(name):
  canonical = metrics.ALIASES[name]
  required = {"mean_iou": {"num_classes": 3}, "iou": {"num_classes": 3, "target_class_ids": [1]},
              "one_hot_iou": {"num_classes": 3, "target_class_ids": [1]}, "one_hot_mean_iou": {"num_classes": 3},
              "sensitivity_at_specificity": {"specificity": 0.5}, "specificity_at_sensitivity": {"sensitivity": 0.5},
              "precision_at_recall": {"recall": 0.5}, "recall_at_precision": {"precision": 0.5}}
  metric = metrics.get(name, **required.get(canonical, {}))
  sparse = ("sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy", "sparse_categorical_crossentropy")
  y_true, y_pred = {"mean_iou": (LABELS, LABELS), "iou": (LABELS, LABELS),
                    **{key: (LABELS, PROBS) for key in sparse}}.get(canonical, (ONE_HOT, PROBS))
  assert np.all(np.isfinite(np.asarray(metric.result(metric.update(metric.init(), y_true, y_pred)))))


@pytest.mark.parametrize("name", list(optimizers.OPTIMIZERS) + ["SGD", "RMSprop", "AdamW", "ADAM"])
def test_every_optimizer_name_resolves(name):
  tx = optimizers.get(name)
  params = {"w": jnp.ones(3)}
  updates, _ = tx.update({"w": jnp.full(3, 0.5)}, tx.init(params), params)
  assert np.all(np.asarray(updates["w"]) < 0)


@pytest.mark.parametrize("name", list(activations.ACTIVATIONS))
def test_every_activation_name_resolves(name):
  assert activations.get(name) is activations.ACTIVATIONS[name]
  assert np.all(np.isfinite(np.asarray(activations.get(name)(X.reshape(3, 4)))))  # an even last axis: glu halves it


@pytest.mark.parametrize("name", list(regularizers.REGULARIZERS))
def test_every_regularizer_name_resolves(name):
  penalty = regularizers.get(name, **({"l1": 0.1} if regularizers.ALIASES[name] == "l1l2" else {}))
  assert float(penalty({"w": X})) > 0


# Segmentation losses whose call needs a required argument or other inputs than maps: (options, (y_true, y_pred)).
SEGMENTATION_LOSS_CALLS = {
    "ms_ssim": ({"max_val": 1.0, "filter_size": 2, "power_factors": (0.5, 0.5)}, MAPS[::-1]),
    "iou_box": ({}, (np.array([[0, 0, 2, 2], [1, 1, 3, 3]], np.float32), np.ones((2, 4), np.float32))),
    "triplet_1d": ({"N": 1}, (None, np.ones((2, 3), np.float32))),
}


@pytest.mark.parametrize("name", list(losses_segmentation.LOSSES))
def test_every_segmentation_loss_name_resolves(name):
  y_pred, y_true = MAPS
  if name == "sparse_categorical_crossentropy":
    y_true = np.argmax(y_true, axis=-1)
  options, (y_true, y_pred) = SEGMENTATION_LOSS_CALLS.get(name, ({}, (y_true, y_pred)))
  assert losses_segmentation.get(name, **options)(y_true, y_pred).shape == (2,)


@pytest.mark.parametrize("name", list(metrics_segmentation.METRICS))
def test_every_segmentation_metric_name_resolves(name):
  binary = metrics_segmentation.METRICS.canonical(name) == "binary_iou"
  metric = metrics_segmentation.get(name, **({} if binary else {"num_classes": 2}))
  y_pred, one_hot = MAPS
  y_true = one_hot if binary else np.argmax(one_hot, axis=-1)
  assert 0.0 <= float(metric.result(metric.update(metric.init(), y_true, y_pred))) <= 1.0


@pytest.mark.parametrize("name", list(KERAS_UNET_COLLECTION_ACTIVATIONS))
def test_every_keras_unet_collection_spelling_resolves_in_the_unet_only(name):
  assert callable(KERAS_UNET_COLLECTION_ACTIVATIONS.get(name)) and name not in activations.ACTIVATIONS
  layers = (None, "PReLU", "Snake")  # built as layers with weights by the U-Net's blocks
  assert set(KERAS_UNET_COLLECTION_ACTIVATIONS) == {a for a in OUTPUT_ACTIVATIONS if a not in layers}


# ---------------------------------------------------------------------------- Keras's names and configs

# Keras's `get` names whose object this library also implements resolve to that implementation. The one deliberate
# difference: "accuracy" is compile's shape-chosen accuracy (keras/src/trainers/compile_utils.py `get_metric`),
# where `keras.metrics.get("accuracy")` is the exact `Accuracy`.
KERAS_TABLES = [
    (losses.LOSSES, keras.src.losses.ALL_OBJECTS_DICT, ()),
    (metrics.METRICS, keras.src.metrics.ALL_OBJECTS_DICT, ("accuracy",)),
    # keras.optimizers.Lamb is a class keras.optimizers.get does not list: reached by its class name only.
    (optimizers.OPTIMIZERS, {**keras.src.optimizers.ALL_OBJECTS_DICT, "Lamb": keras.optimizers.Lamb}, ()),
    (regularizers.REGULARIZERS, keras.src.regularizers.ALL_OBJECTS_DICT, ()),
    (activations.ACTIVATIONS, keras.src.activations.ALL_OBJECTS_DICT, ()),
]


@pytest.mark.parametrize("registry, keras_names, exceptions", KERAS_TABLES, ids=lambda v: getattr(v, "kind", ""))
def test_keras_names_resolve_to_the_same_thing(registry, keras_names, exceptions):
  ours = {}
  for name in registry.names:
    entry = registry.entry(name)
    ours.update({entry.name: entry.name, **({entry.keras_class: entry.name} if entry.keras_class else {})})
  resolved = 0
  for keras_name, obj in keras_names.items():
    target = ours.get(obj.__name__)
    if target is None or keras_name in exceptions:
      continue
    assert registry.canonical(keras_name) == target, keras_name
    resolved += 1
  assert resolved >= len(registry.names)  # every entry is reached by at least one Keras name


@pytest.mark.parametrize("keras_loss, name, options", [
    (keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), "categorical_crossentropy",
     {"from_logits": True, "label_smoothing": 0.1}),
    (keras.losses.SparseCategoricalCrossentropy(ignore_class=0, reduction="sum"), "sparse_categorical_crossentropy",
     {"ignore_class": 0, "reduction": "sum"}),
    (keras.losses.MeanSquaredError(), "mse", {}),
    (keras.losses.get("mae"), "mae", {}),
])
def test_keras_serialized_losses(keras_loss, name, options):
  assert losses.get(keras.losses.serialize(keras_loss)) == losses.get(name, **options)


@pytest.mark.parametrize("keras_metric, name, options", [
    (keras.metrics.AUC(curve="PR", num_thresholds=50), "auc", {"curve": "PR", "num_thresholds": 50}),
    (keras.metrics.MeanIoU(3, ignore_class=0), "mean_iou", {"num_classes": 3, "ignore_class": 0}),
    (keras.metrics.Precision(thresholds=[0.3, 0.6]), "precision", {"thresholds": [0.3, 0.6]}),
    (keras.metrics.TopKCategoricalAccuracy(k=2), "top_k_categorical_accuracy", {"k": 2}),
])
def test_keras_serialized_metrics(keras_metric, name, options):
  assert metrics.get(keras.metrics.serialize(keras_metric)) == metrics.get(name, **options)


def test_keras_serialized_optimizers_regularizers_and_activations():
  params, grads = {"w": jnp.arange(3.0)}, {"w": jnp.array([0.5, -1.0, 2.0])}
  for keras_optimizer, name, options in [
      (keras.optimizers.Adam(learning_rate=0.01, amsgrad=True, clipnorm=1.0), "adam",
       {"learning_rate": 0.01, "amsgrad": True, "clipnorm": 1.0}),
      (keras.optimizers.SGD(momentum=0.9, nesterov=True), "sgd", {"momentum": 0.9, "nesterov": True})]:
    from_config, by_name = optimizers.get(keras.optimizers.serialize(keras_optimizer)), optimizers.get(name, **options)
    updates = [tx.update(grads, tx.init(params), params)[0]["w"] for tx in (from_config, by_name)]
    np.testing.assert_allclose(*updates, rtol=1e-6)
  with pytest.raises(ValueError, match=r"loss_scale_factor=128.0 is not an argument of optimizer 'adam'; .* scale "
                                       r"the loss"):
    optimizers.get(keras.optimizers.serialize(keras.optimizers.Adam(loss_scale_factor=128.0)))
  l1l2 = keras.regularizers.serialize(keras.regularizers.L1L2(0.1, 0.2))
  assert regularizers.get(l1l2) == regularizers.L1L2(0.1, 0.2)
  assert regularizers.get(keras.regularizers.serialize(keras.regularizers.L2(0.3))) == regularizers.l2(0.3)
  assert activations.get(keras.layers.Dense(2, activation="swish").get_config()["activation"]) is jax.nn.silu
  function = {"module": "keras.activations", "class_name": "function", "config": "gelu", "registered_name": "gelu"}
  assert activations.get(function) is activations.gelu


def test_keras_3_class_l1l2_defaults_to_zero_and_keras_2_l1_l2_to_a_hundredth():
  params = {"w": X}
  assert float(regularizers.get("L1L2")(params)) == float(keras.regularizers.get("L1L2")(X)) == 0.0
  assert regularizers.get("l1l2") == regularizers.get("L1L2") == regularizers.L1L2()
  assert regularizers.get("l1_l2") == regularizers.L1L2(0.01, 0.01)
