"""from_keras: whole Keras models (random ones of every supported layer, applications) compute what Keras computes."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.keras_model_zoo import FAMILIES, randomize, random_input, random_model

import keras  # noqa: E402  (after keras_model_zoo chose the JAX backend)

from jaxcomponents import optimizers  # noqa: E402
from jaxcomponents.keras.graph import KerasGraph  # noqa: E402
from jaxcomponents.training import TrainState, make_train_step  # noqa: E402
from jaxcomponents.weights import compare_with_keras, from_keras, to_keras  # noqa: E402

L = keras.layers


def outputs_close(module, variables, model, x, tol=1e-5):
  ours = module.apply(variables, *(x if isinstance(x, list) else [x]))
  theirs = model(x)
  ours, theirs = (list(v) if isinstance(v, (list, tuple)) else [v] for v in (ours, theirs))
  assert len(ours) == len(theirs)
  for a, b in zip(ours, theirs):
    b = np.asarray(b)
    assert a.shape == b.shape
    np.testing.assert_allclose(np.asarray(a), b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_models_equal_keras_layer_by_layer(family, seed):
  model = random_model(family, seed)
  x = random_input(model, seed)
  module, variables = from_keras(model, check=x)  # raises naming the first layer that differs
  report = compare_with_keras(module, variables, model, x)
  assert report.first_divergent is None and len(report.layers) >= 3, str(report)
  outputs_close(module, variables, model, x)


@pytest.mark.parametrize("family", FAMILIES)
def test_random_models_through_keras_files(family, tmp_path):
  model = random_model(family, 7)
  x = random_input(model, 7)
  model.save(tmp_path / "model.keras")
  module, variables = from_keras(tmp_path / "model.keras", check=x)
  outputs_close(module, variables, model, x)


# Keras 3 cannot read back its own legacy .h5 of a model with masks (its mask operations are not layers).
@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "sequence"])
def test_random_models_through_legacy_h5_files(family, tmp_path):
  model = random_model(family, 8)
  x = random_input(model, 8)
  model.save(tmp_path / "model.h5")
  module, variables = from_keras(str(tmp_path / "model.h5"))
  outputs_close(module, variables, model, x)


def test_masks_reach_the_recurrent_layers_and_pooling():
  ids = keras.Input((6,))
  x = L.Embedding(9, 4, mask_zero=True)(ids)
  x = L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode=None)
  forward, backward = x(L.Embedding(9, 4, mask_zero=True, name="second")(ids))
  pooled = L.GlobalAveragePooling1D()(L.Concatenate()([forward, backward]))
  model = keras.Model(ids, L.Dense(2)(pooled))
  randomize(model, 0)
  data = random_input(model, 0)
  module, variables = from_keras(model, check=data)
  outputs_close(module, variables, model, data)
  unmasked = np.where(data == 0, 5.0, data).astype(np.float32)  # the padding matters: masks are applied
  assert not np.allclose(module.apply(variables, data), module.apply(variables, unmasked))


@pytest.mark.parametrize("merge", [L.Multiply, L.Maximum, L.Minimum])
def test_multiply_maximum_and_minimum_merge_masked_inputs_as_keras(merge):
  a, b = keras.Input((6,)), keras.Input((6,))
  masked = [L.Embedding(9, 3, mask_zero=True, name=f"masked_{i}")(ids) for i, ids in enumerate((a, b))]
  plain = L.Embedding(9, 3, name="plain")(a)
  both = merge(name="both")(masked)  # every input masked: Keras also gives the output a mask
  one = merge(name="one")([masked[0], plain])  # one input masked
  model = keras.Model([a, b], L.Concatenate()([L.LSTM(2)(both), L.GlobalAveragePooling1D()(one)]))
  randomize(model, 4)
  ids = [np.array([[3, 1, 0, 0, 5, 0], [0, 2, 2, 0, 0, 7]]), np.array([[1, 0, 2, 0, 0, 4], [0, 0, 3, 3, 0, 1]])]
  module, variables = from_keras(model, check=ids)
  outputs_close(module, variables, model, ids)


@pytest.mark.parametrize("merge", [L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum])
def test_merges_of_inputs_of_different_ranks_add_axes_after_the_batch_as_keras(merge):
  a, b = keras.Input((3,)), keras.Input((2, 3))
  model = keras.Model([a, b], merge()([a, b]))
  rng = np.random.default_rng(5)
  x = [rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(2, 2, 3)).astype(np.float32)]  # batch 2 = 2:
  module, variables = from_keras(model)  # plain broadcasting would line the batch up with b's second axis
  outputs_close(module, variables, model, x)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_center_crop_and_resizing_to_the_targets_aspect_ratio_as_keras(data_format):
  image = keras.Input((7, 10, 2) if data_format == "channels_last" else (2, 7, 10))
  options = dict(data_format=data_format)
  outputs = [L.CenterCrop(4, 6, **options)(image),  # a crop
             L.CenterCrop(8, 8, **options)(image),  # taller than the image: cropped to 1:1, then resized
             L.Resizing(4, 6, crop_to_aspect_ratio=True, **options)(image),
             L.Resizing(6, 3, pad_to_aspect_ratio=True, fill_value=0.5, interpolation="bicubic", **options)(image),
             L.Resizing(3, 9, pad_to_aspect_ratio=True, **options)(image)]
  model = keras.Model(image, [L.Activation("glu")(L.Flatten()(y)) for y in outputs])  # glu halves the features
  x = np.random.default_rng(1).normal(size=(2, *image.shape[1:])).astype(np.float32)
  module, variables = from_keras(model, check=x)
  outputs_close(module, variables, model, x)


def test_random_augmentation_inside_a_model_is_the_identity_at_inference_and_refused_in_training():
  augment = keras.Sequential([L.RandomFlip("horizontal"), L.RandomRotation(0.1), L.RandomZoom(0.1),
                              L.RandomContrast(0.2)], name="augment")
  image = keras.Input((8, 8, 3), dtype="uint8")
  model = keras.Model(image, L.Dense(2)(L.Flatten()(L.Rescaling(1 / 255.0)(augment(image)))))
  randomize(model, 3)
  x = np.random.default_rng(2).integers(0, 256, size=(4, 8, 8, 3)).astype(np.uint8)
  module, variables = from_keras(model, check=x)
  np.testing.assert_allclose(module.apply(variables, x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
  state = TrainState.create(module, optimizers.get("sgd"), variables=variables)
  with pytest.raises(ValueError, match=r"random_flip \(RandomFlip\) draws a random augmentation in training, which "
                                       r"jaxcomponents does not compute"):
    make_train_step(lambda y, p: jnp.mean((y - p) ** 2, axis=-1))(state, {"x": x, "y": np.zeros((4, 2))})


@pytest.mark.parametrize("layer", [lambda: L.RandomContrast(0.2), lambda: L.RandomBrightness(0.1), L.RandomInvert,
                                   lambda: L.RandomPosterization((1, 8)), L.RandomFlip])
def test_colour_augmentations_pass_integer_images_on_in_their_dtype_at_inference_as_keras(layer):
  """Keras's colour layers cast only in training: a uint8 image stays uint8 (and wraps in an Add after it)."""
  image = keras.Input((4, 4, 3), dtype="uint8")
  augmented = layer()(image)
  model = keras.Model(image, L.Add()([augmented, augmented]))
  x = np.random.default_rng(3).integers(0, 256, size=(2, 4, 4, 3)).astype(np.uint8)
  module, variables = from_keras(model)
  got, want = module.apply(variables, x), model(x, training=False)
  assert got.dtype == want.dtype
  np.testing.assert_array_equal(got, want)


def test_integer_images_resize_into_their_own_dtype_as_keras():
  image = keras.Input((7, 6, 1), dtype="uint8")
  outputs = [L.Resizing(14, 12)(image), L.Resizing(3, 4, interpolation="bicubic", antialias=True)(image),
             L.UpSampling2D(2, interpolation="bilinear")(image)]
  model = keras.Model(image, outputs)
  x = np.random.default_rng(0).integers(0, 256, size=(2, 7, 6, 1)).astype(np.uint8)
  module, variables = from_keras(model)
  for ours, theirs in zip(module.apply(variables, x), model(x)):
    assert ours.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_the_mask_attention_passes_on_is_computed_as_keras():
  ids = keras.Input((5,))
  x = L.Embedding(9, 4, mask_zero=True)(ids)
  model = keras.Model(ids, L.GlobalAveragePooling1D()(L.Attention()([x, x])))
  randomize(model, 5)
  data = np.array([[3, 1, 0, 0, 5], [0, 2, 2, 7, 0]])
  module, variables = from_keras(model, check=data)
  outputs_close(module, variables, model, data)


def test_each_layer_computes_in_its_dtype_policy_and_casts_its_inputs_as_keras():
  image = keras.Input((6, 6, 3))
  x = L.Conv2D(4, 3, dtype="mixed_bfloat16")(image)
  x = L.LayerNormalization(dtype="bfloat16")(L.Dense(5, dtype="mixed_float16")(x))
  x = L.AveragePooling2D(2)(L.LayerNormalization()(x))  # float32 layers: Keras casts their half inputs up
  model = keras.Model(image, L.Dense(3, activation="softmax")(L.Flatten()(x)))
  randomize(model, 6)
  data = np.random.default_rng(6).normal(size=(2, 6, 6, 3)).astype("float32")
  module, variables = from_keras(model)
  ours = module.apply(variables, data, method=module.layer_outputs)
  probe = keras.Model(image, [layer.output for layer in model.layers[1:]])
  for layer, expected in zip(model.layers[1:], probe(data)):
    got = ours[layer.name]
    assert got.dtype == expected.dtype, (layer.name, got.dtype, expected.dtype)
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(expected, np.float32), rtol=1e-6, atol=1e-6)


def test_nested_models_shared_layers_and_named_recurrent_layers():
  inner_in = keras.Input((5,))
  inner = keras.Model(inner_in, L.Dense(4, name="inner_dense")(L.Dense(6, activation="tanh")(inner_in)),
                      name="encoder")
  seq = keras.Input((4, 3))
  rnn = L.Bidirectional(L.LSTM(3, name="encoder_lstm"), name="both_ways")(seq)
  a, b = keras.Input((5,)), keras.Input((5,))
  stem = keras.Sequential([keras.Input((5,)), L.Dense(3, name="stem_dense"), L.LayerNormalization()], name="stem")
  merged = L.Concatenate()([inner(a), inner(b), rnn, stem(a)])
  model = keras.Model([a, b, seq], [L.Dense(2, name="head_a")(merged), L.Dense(1, name="head_b")(merged)])
  randomize(model, 3)
  rng = np.random.default_rng(0)
  x = [rng.normal(size=(2, 5)).astype("float32"), rng.normal(size=(2, 5)).astype("float32"),
       rng.normal(size=(2, 4, 3)).astype("float32")]
  module, variables = from_keras(model)
  assert set(variables["params"]) >= {"encoder", "both_ways", "head_a", "head_b", "stem"}
  assert "inner_dense" in variables["params"]["encoder"]
  outputs_close(module, variables, model, x)


def test_normalization_adapted_statistics_and_preprocessing():
  inputs = keras.Input((8, 8, 3))
  norm = L.Normalization()
  norm.adapt(np.random.default_rng(0).normal(2.0, 3.0, (16, 8, 8, 3)).astype("float32"))
  x = L.Resizing(6, 6)(L.Rescaling(0.5, offset=0.1)(norm(inputs)))
  x = L.UpSampling2D(2, interpolation="bilinear")(x)
  model = keras.Model(inputs, L.GlobalMaxPooling2D()(L.Conv2D(2, 3)(x)))
  randomize(model, 1)
  norm.adapt(np.random.default_rng(0).normal(2.0, 3.0, (16, 8, 8, 3)).astype("float32"))
  data = np.random.default_rng(1).normal(2.0, 3.0, (2, 8, 8, 3)).astype("float32")
  module, variables = from_keras(model, check=data)
  outputs_close(module, variables, model, data)


# Two live keras.applications models through from_keras, read from the model objects and compiled whole; all 40
# are compared with Keras's recorded outputs in tests/test_applications_all.py (ConvNeXtTiny and MobileNetV3Small
# compiled whole there too).
@pytest.mark.parametrize("name, size", [("MobileNetV2", 32), ("VGG16", 32)])
def test_keras_applications(name, size):
  options = {"alpha": 0.35} if name == "MobileNetV2" else {}
  model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=5, **options)
  randomize(model, 0)
  for variable in model.weights:  # keep activations in range through the deep stacks
    if variable.path.endswith(("kernel", "gamma")):
      variable.assign(np.asarray(variable) * 0.3)
  x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
  module, variables = from_keras(model)
  outputs = jax.jit(lambda v, x: module.apply(v, x, method=KerasGraph.layer_outputs))(variables, x)
  last_conv = [layer.name for layer in model.layers if isinstance(layer, L.Conv2D) and layer.name in outputs][-1]
  for name, reference in ((last_conv, keras.Model(model.input, model.get_layer(last_conv).output)(x)),
                          (model.layers[-1].name, model(x))):
    reference = np.asarray(reference)
    np.testing.assert_allclose(outputs[name], reference, rtol=1e-5, atol=1e-5 * float(np.abs(reference).max()))


def test_unsupported_layers_are_all_listed_before_building():
  @keras.saving.register_keras_serializable(package="tests")
  class Twice(L.Layer):
    def call(self, x):
      return 2 * x

  inputs = keras.Input((6, 6, 3))
  x = L.Lambda(lambda t: t + 1.0, name="plus_one")(inputs)
  x = L.BatchNormalization(renorm=True)(Twice(name="twice")(x))
  model = keras.Model(inputs, L.Flatten()(x))
  with pytest.raises(ValueError) as error:
    from_keras(model)
  message = str(error.value)
  assert "3 layer(s)" in message
  for text in ("plus_one (Lambda)", "a Lambda layer runs Python code", "custom_layers={'plus_one'",
               "twice (Twice)", "its class is not supported", "custom_layers={'Twice'",
               "renorm=True (only False)"):
    assert text in message


def test_check_names_the_first_layer_that_differs():
  model = random_model("dense", 4)
  x = random_input(model, 4)
  module, variables = from_keras(model)
  broken = jax.tree_util.tree_map(lambda v: v, variables)
  last = [layer.name for layer in model.layers if layer.weights][-1]
  broken["params"][last] = jax.tree_util.tree_map(lambda v: v + 1.0, broken["params"][last])
  report = compare_with_keras(module, broken, model, x)
  assert report.first_divergent == last
  assert f"first layer to differ: {last}" in str(report)


def test_bad_sources(tmp_path):
  with pytest.raises(ValueError, match="model_or_path=3 is not allowed"):
    from_keras(3)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    from_keras(tmp_path / "missing.keras")
  (tmp_path / "w.weights.h5").write_bytes(b"")
  with pytest.raises(ValueError, match="holds no architecture"):
    from_keras(tmp_path / "w.weights.h5")
  with pytest.raises(ValueError, match="has no input shape"):
    from_keras(keras.Sequential([L.Dense(2)]))


def test_trains_with_make_train_step_and_goes_back_to_keras(tmp_path):
  model = random_model("image2d", 5)
  x = random_input(model, 5)
  module, variables = from_keras(model)
  state = TrainState.create(module, optimizers.get("adam", learning_rate=1e-2), variables=variables)
  step = make_train_step("sparse_categorical_crossentropy")
  batch = {"x": jnp.asarray(x), "y": jnp.asarray([0, 1, 2])}
  losses = []
  for _ in range(5):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  assert losses[-1] < losses[0]
  trained = {"params": state.params, **({"batch_stats": state.batch_stats} if state.batch_stats else {})}
  to_keras(module, trained, model)
  outputs_close(module, trained, model, x)
  model.save(tmp_path / "trained.keras")
  model.save_weights(tmp_path / "trained.weights.h5")
  reloaded = keras.saving.load_model(tmp_path / "trained.keras")
  outputs_close(module, trained, reloaded, x)
  fresh = random_model("image2d", 5)
  fresh.load_weights(tmp_path / "trained.weights.h5")
  outputs_close(module, trained, fresh, x)


def test_the_graph_is_readable_json_and_the_module_hashable():
  model = random_model("graph", 0)
  module, _ = from_keras(model)
  config = json.loads(module.config)
  assert len(config["input_layers"]) == 2 and len(config["output_layers"]) == 2
  assert hash(module) == hash(KerasGraph(module.config, precision=module.precision))


def test_dropout_noise_shape_shares_one_draw_over_the_axes_of_size_one():
  inputs = keras.Input((4, 4, 6))
  model = keras.Model(inputs, L.Dropout(0.5, noise_shape=(None, 1, 1, 6))(inputs))
  module, variables = from_keras(model)
  x = np.ones((3, 4, 4, 6), np.float32)
  np.testing.assert_array_equal(module.apply(variables, x), x)  # inference: the identity
  y = np.asarray(module.apply(variables, x, train=True, rngs={"dropout": jax.random.key(0)}))
  assert set(np.unique(y)) == {0.0, 2.0}
  np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1, :1, :], y.shape))  # one draw per example and channel


def test_a_short_noise_shape_broadcasts_from_the_right_as_kerass_mask():
  """`noise_shape=(4, 1)` on `(batch, 4, 6)`: Keras's `(4, 1)` mask spans the batch and the last axis."""
  inputs = keras.Input((4, 6))
  module, variables = from_keras(keras.Model(inputs, L.Dropout(0.5, noise_shape=(4, 1))(inputs)))
  x = np.ones((3, 4, 6), np.float32)
  y = np.asarray(module.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)}))
  assert set(np.unique(y)) == {0.0, 2.0}
  np.testing.assert_array_equal(y, np.broadcast_to(y[:1, :, :1], y.shape))
