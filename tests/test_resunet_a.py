"""ResUNet-a against keras-unet-collection's own numbers (2-D) and a Keras 3 twin of its code in 3-D.

The 2-D references in tests/reference/unet come from keras-unet-collection
0.1.13 on TensorFlow 2.15 (`tests/reference/kuc_configs/resunet_a.py`). In
3-D, `resunet_a_base` below is keras-unet-collection's `resunet_a_2d` written
with Keras 3's layers of any rank from `tests/kuc_keras3.py`'s blocks, with
`ASPP_conv` and `Sep_CONV_stack` here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from keras import layers

from jaxcomponents.models.resunet_a import ResUNetA, dilation_per_level, resunet_a_2d, resunet_a_3d
from tests import kuc_keras3, kuc_references
from tests.helpers import random_input
from tests.reference.kuc_configs.resunet_a import CONFIGS, TRAIN

pytestmark = pytest.mark.usefixtures("highest_precision")  # Keras parity at full float32 (conftest.py)


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_keras_unet_collection(name):
  reference = kuc_references.load(name)
  kuc_references.check_reference(resunet_a_2d(**reference.config["kwargs"]), reference)
  assert ("train" in reference.config) == (name in TRAIN)


def test_references_cover_every_variant():
  configs = [kuc_references.load(name).config for name in CONFIGS]
  seen = kuc_references.variants(configs)
  assert seen("pool", True) == {"true", "false", '"max"', '"ave"'}
  assert seen("unpool", True) == {"true", "false", '"bilinear"', '"nearest"'}
  assert seen("batch_norm", True) == {"true", "false"}
  assert {len(c["kwargs"]["filter_num"]) for c in configs} == {1, 2, 3, 4}
  # ReLU: the ASPP's separable branches, whatever `activation` is
  assert seen("activation", "ReLU") == {f'"{a}"' for a in ("LeakyReLU", "PReLU", "ELU", "GELU", "Snake")}
  assert seen("output_activation", "Softmax") == {'"Softmax"', '"Sigmoid"', "null", '"PReLU"', '"Snake"'}
  flat = [c["kwargs"] for c in configs if isinstance(c["kwargs"]["dilation_num"][0], int)]
  assert any(len(k["dilation_num"]) > 1 and len(k["filter_num"]) >= 4 for k in flat)  # every branch of kuc's rule
  per_level = [c["kwargs"] for c in configs if isinstance(c["kwargs"]["dilation_num"][0], list)]
  assert {len(k["dilation_num"]) > len(k["filter_num"]) for k in per_level} == {True, False}  # extra levels: a quirk
  assert TRAIN and set(TRAIN) <= set(CONFIGS)


def test_dilation_rates_per_level_follow_keras_unet_collection():
  assert dilation_per_level([1, 3, 15, 31], 6) == ((1, 3, 15, 31),) * 2 + ((1, 3, 15),) * 2 + ((1,),) * 2
  assert dilation_per_level([2], 3) == ((2,), (2,), (1,))
  assert dilation_per_level(((1,), [2, 3], (4,), (5,)), 3) == ((1,), (2, 3), (4,), (5,))
  model = resunet_a_2d((16, 16, 1), [2, 2, 2], [[1], [2], [1, 3], [5]], 2)
  assert model.dilation_num == ((1,), (2,), (1, 3), (5,))


# ----- Keras 3 twin of keras-unet-collection's ResUNet-a, any rank -----


def Sep_CONV_stack(X, channel, kernel_size=3, stack_num=1, dilation_rate=1, activation="ReLU", batch_norm=False,
                   name="sep_conv"):
  """kuc's Sep_CONV_stack; in 3-D the depthwise step is Conv3D with one group per channel."""
  rank = len(X.shape) - 2
  for i in range(stack_num):
    if rank == 2:
      X = layers.DepthwiseConv2D(kernel_size, dilation_rate=dilation_rate, padding="same", use_bias=not batch_norm,
                                 name=f"{name}_{i}_depthwise")(X)
    else:
      X = layers.Conv3D(X.shape[-1], kernel_size, dilation_rate=dilation_rate, padding="same", groups=X.shape[-1],
                        use_bias=not batch_norm, name=f"{name}_{i}_depthwise")(X)
    if batch_norm:
      X = kuc_keras3.BatchNormalization(name=f"{name}_{i}_depthwise_BN")(X)
    X = kuc_keras3.activation_layer(activation, f"{name}_{i}_depthwise_activation")(X)
    X = kuc_keras3.conv(rank, channel, 1, padding="same", use_bias=not batch_norm, name=f"{name}_{i}_pointwise")(X)
    if batch_norm:
      X = kuc_keras3.BatchNormalization(name=f"{name}_{i}_pointwise_BN")(X)
    X = kuc_keras3.activation_layer(activation, f"{name}_{i}_pointwise_activation")(X)
  return X


def ASPP_conv(X, channel, activation="ReLU", batch_norm=True, name="aspp"):
  """kuc's ASPP_conv: its align-corners resize of the one pooled pixel is a broadcast, UpSampling's repeat here."""
  rank = len(X.shape) - 2
  b4 = getattr(layers, f"GlobalAveragePooling{rank}D")(keepdims=True, name=f"{name}_avepool_b4")(X)
  branches = []
  for branch, inputs in (("b4", b4), ("b0", X)):
    Y = kuc_keras3.conv(rank, channel, 1, padding="same", use_bias=not batch_norm, name=f"{name}_conv_{branch}")(
        inputs)
    if batch_norm:
      Y = kuc_keras3.BatchNormalization(name=f"{name}_conv_{branch}_BN")(Y)
    branches.append(kuc_keras3.activation_layer(activation, f"{name}_conv_{branch}_activation")(Y))
  branches[0] = getattr(layers, f"UpSampling{rank}D")(tuple(X.shape[1:-1]), name=f"{name}_resize_b4")(branches[0])
  for rate in (6, 9, 12):
    branches.append(Sep_CONV_stack(X, channel, kernel_size=3, stack_num=1, activation="ReLU", dilation_rate=rate,
                                   batch_norm=True, name=f"{name}_sepconv_r{rate}"))
  return layers.concatenate(branches)


def ResUNET_a_block(X, channel, kernel_size=3, dilation_num=(1,), activation="ReLU", batch_norm=False,
                    name="res_a_block"):
  X_res = [kuc_keras3.CONV_stack(X, channel, kernel_size=kernel_size, stack_num=2, dilation_rate=d,
                                 activation=activation, batch_norm=batch_norm, name=f"{name}_stack{i}")
           for i, d in enumerate(dilation_num)]
  return layers.add(X_res) if len(X_res) > 1 else X_res[0]


def resunet_a_base(input_size, filter_num, dilation_num, n_labels, aspp_num_down=256, aspp_num_up=128,
                   activation="ReLU", output_activation="Softmax", batch_norm=True, pool=True, unpool=True,
                   name="resunet"):
  """kuc's resunet_a_2d (with resunet_a_2d_base and ResUNET_a_right) in any rank; dilation rates spread per level
  by kuc's rule, written out here."""
  depth = len(filter_num)
  if isinstance(dilation_num[0], int):
    middle = (depth - 2) // 2 + 1
    dilation_num = [list(dilation_num) if i <= 1 else list(dilation_num[:-1]) if i <= middle else [1]
                    for i in range(depth)]
  inputs = keras.Input(input_size)
  rank = len(input_size) - 1
  X = kuc_keras3.conv(rank, filter_num[0], 1, padding="same", use_bias=True, name=f"{name}_input_mapping")(inputs)
  X = kuc_keras3.activation_layer(activation, f"{name}_input_activation")(X)
  X_skip = [X]
  X = ResUNET_a_block(X, filter_num[0], dilation_num=dilation_num[0], activation=activation, batch_norm=batch_norm,
                      name=f"{name}_res0")
  X_skip.append(X)
  for i, f in enumerate(filter_num[1:]):
    X = kuc_keras3.encode_layer(X, f, 2, pool, activation=activation, batch_norm=batch_norm, name=f"{name}_down{i}")
    X = ResUNET_a_block(X, f, dilation_num=dilation_num[i + 1], activation=activation, batch_norm=batch_norm,
                        name=f"{name}_resblock_{i + 1}")
    X_skip.append(X)
  X = ASPP_conv(X, aspp_num_down, activation=activation, batch_norm=batch_norm, name=f"{name}_aspp_bottom")
  X_skip, dilation_up = X_skip[:-1][::-1], dilation_num[:-1][::-1]
  for i, f in enumerate(filter_num[:-1][::-1]):
    X = kuc_keras3.decode_layer(X, f, 2, unpool, activation=activation, batch_norm=batch_norm,
                                name=f"{name}_up{i}_decode")
    X = layers.concatenate([X, X_skip[i]], axis=-1, name=f"{name}_up{i}_concat")
    X = ResUNET_a_block(X, f, dilation_num=dilation_up[i], activation=activation, batch_norm=batch_norm,
                        name=f"{name}_up{i}_resblock")
  X = layers.concatenate([X_skip[-1], X], name=f"{name}_concat_out")
  X = ASPP_conv(X, aspp_num_up, activation=activation, batch_norm=batch_norm, name=f"{name}_aspp_out")
  outputs = kuc_keras3.CONV_output(X, n_labels, kernel_size=1, activation=output_activation, name=f"{name}_output")
  return keras.Model(inputs, outputs, name=f"{name}_model")


TWINS = {
    "3d_per_level_ave_snake": (resunet_a_3d, dict(
        input_size=(8, 8, 4, 1), filter_num=[3, 2], dilation_num=[[1, 3], [2]], n_labels=3, aspp_num_down=2,
        aspp_num_up=2, activation="Snake", output_activation=None, pool="ave", unpool=True, name="res3d")),
    "3d_strided_transpose_prelu": (resunet_a_3d, dict(
        input_size=(4, 4, 8, 2), filter_num=[2, 3], dilation_num=[1, 2], n_labels=2, aspp_num_down=2,
        aspp_num_up=3, activation="PReLU", output_activation="Sigmoid", batch_norm=False, pool=False,
        unpool=False)),
}


@pytest.mark.parametrize("name", TWINS)
def test_matches_its_keras3_twin(name, tmp_path):
  build, kwargs = TWINS[name]
  x = random_input((2, *kwargs["input_size"]), seed=len(name))
  kuc_keras3.check_twin(build(**kwargs), resunet_a_base(**kwargs), x, tmp_path / f"{name}.h5", seed=len(name))


def test_3d_depthwise_step_is_a_grouped_convolution():
  """Keras 3 has no DepthwiseConv3D: the 3-D separable branch's depthwise layer has Conv3D(groups=channels)'s
  kernel, the 2-D one DepthwiseConv2D's `depthwise_kernel`."""
  model = resunet_a_3d((4, 4, 4, 1), [3], [1], 2, aspp_num_down=2, aspp_num_up=2)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 4, 4, 4, 1)))["params"]
  aspp = shapes["resunet_aspp_bottom"]["resunet_aspp_bottom_sepconv_r6"]
  assert aspp["resunet_aspp_bottom_sepconv_r6_0_depthwise"]["kernel"].shape == (3, 3, 3, 1, 3)
  model = resunet_a_2d((4, 4, 1), [3], [1], 2, aspp_num_down=2, aspp_num_up=2)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 4, 4, 1)))["params"]
  aspp = shapes["resunet_aspp_bottom"]["resunet_aspp_bottom_sepconv_r6"]
  assert aspp["resunet_aspp_bottom_sepconv_r6_0_depthwise"]["depthwise_kernel"].shape == (3, 3, 3, 1)


def test_product_module_builds_the_same_model():
  kuc = resunet_a_2d((8, 8, 2), [2, 4], [[1, 2], [3]], 2, aspp_num_down=2, aspp_num_up=3, batch_norm=False)
  product = ResUNetA(filter_num=[2, 4], dilation_num=[[1, 2], [3]], n_labels=2, aspp_num_down=2, aspp_num_up=3,
                     batch_norm=False)
  x = random_input((1, 8, 8, 2))
  variables = jax.jit(kuc.init)(jax.random.key(0), x)
  both = jax.jit(lambda v, x: (product.apply(v, x), kuc.apply(v, x)))(variables, x)
  np.testing.assert_array_equal(*both)


BAD_ARGUMENTS = [  # ResUNet-a's own arguments and rules; the shared ones are SegmentationFields' checks
    (dict(input_size=(None, 32, 3)), r"input_size=\(None, 32, 3\) is not allowed; ResUNet-a needs a fixed size"),
    (dict(input_size=(32, 32, None)), r"input_size=\(32, 32, None\) is not allowed; ResUNet-a needs a fixed size"),
    (dict(input_size=(30, 32, 3)), r"height 30 is not divisible by 2\*\*\(depth - 1\) = 4"),
    (dict(dilation_num=[]), r"dilation_num=\[\] is not allowed; expected a list of positive integer rates"),
    (dict(dilation_num=[1, 0]), r"dilation_num=\[1, 0\] is not allowed"),
    (dict(dilation_num=[[1], [2]]), r"dilation_num=\[\[1\], \[2\]\] is not allowed: it gives 2 levels, .*depth 3"),
    (dict(dilation_num=[[1], 2, [3]]), r"dilation_num=\[\[1\], 2, \[3\]\] is not allowed"),
    (dict(dilation_num=[[1], [], [3]]), r"dilation_num=\[\[1\], \[\], \[3\]\] is not allowed"),
    (dict(filter_num=[2, 2, 2, 2], input_size=(16, 16, 1), dilation_num=[3]),
     r"dilation_num=\[3\] is not allowed with depth 4: levels 2 to 2 .* none"),
    (dict(aspp_num_down=0), r"aspp_num_down=0 is not allowed; expected a positive integer"),
    (dict(aspp_num_up=2.5), r"aspp_num_up=2.5 is not allowed"),
    (dict(activation="Sigmoid"), r"activation='Sigmoid' is not allowed"),  # kuc's eval finds no such layer
]


@pytest.mark.parametrize("arguments, message", BAD_ARGUMENTS)
def test_bad_arguments_are_refused(arguments, message):
  kwargs = dict(input_size=(32, 32, 1), filter_num=[2, 2, 2], dilation_num=[1, 2], n_labels=2)
  with pytest.raises(ValueError, match=message):
    resunet_a_2d(**{**kwargs, **arguments})


def test_3d_arguments_and_calls_are_checked():
  with pytest.raises(ValueError, match=r"unpool='bilinear' is not allowed"):
    resunet_a_3d((8, 8, 8, 1), [2, 2], [1], 2, unpool="bilinear")
  with pytest.raises(ValueError, match=r"input_size=\(8, 8, 1\) is not allowed; expected \(depth, height, width"):
    resunet_a_3d((8, 8, 1), [2, 2], [1], 2)
  with pytest.raises(ValueError, match=r"depth 6 is not divisible by 2\*\*\(depth - 1\) = 4"):
    resunet_a_3d((6, 8, 8, 1), [2, 2, 2], [1], 2)
  model = resunet_a_2d((8, 8, 1), [2, 2], [1], 2)
  with pytest.raises(ValueError, match=r"the model was built for input_size=\(8, 8, 1\)"):
    model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 1)))
  with pytest.raises(ValueError, match=r"width 5 is not divisible"):
    ResUNetA(filter_num=[2, 2], dilation_num=[1], n_labels=2).init(jax.random.key(0), jnp.zeros((1, 8, 5, 1)))
