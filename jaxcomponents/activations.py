"""Activations by their Keras names, in one table.

The functions compute what `keras.activations.<name>` computes, with Keras's
defaults where they differ from JAX's (exact GELU, Keras 3's hard sigmoid,
leaky ReLU slope 0.2). keras-unet-collection's spellings (Keras 2 layer
classes: "ReLU", "LeakyReLU", "ELU", "GELU", "Softmax", "Sigmoid") are aliases
with that library's mathematics, which differs for "GELU" (tanh approximation)
and "LeakyReLU" (slope 0.3); the U-Net uses them.

Example:
  >>> import jax.numpy as jnp
  >>> get("relu6")(jnp.array([-1.0, 7.0])).tolist()
  [0.0, 6.0]
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxcomponents.errors import check_choice

Activation = Callable[[jax.Array], jax.Array]


def linear(x: jax.Array) -> jax.Array:
  return x


def relu6(x: jax.Array) -> jax.Array:
  return jnp.clip(x, 0.0, 6.0)


def hard_sigmoid(x: jax.Array) -> jax.Array:
  return relu6(x + 3.0) / 6.0


def hard_silu(x: jax.Array) -> jax.Array:
  return x * hard_sigmoid(x)


def leaky_relu(x: jax.Array) -> jax.Array:
  return jax.nn.leaky_relu(x, negative_slope=0.2)


def gelu(x: jax.Array) -> jax.Array:
  return jax.nn.gelu(x, approximate=False)


def softmax(x: jax.Array) -> jax.Array:
  return jax.nn.softmax(x, axis=-1)


def log_softmax(x: jax.Array) -> jax.Array:
  return jax.nn.log_softmax(x, axis=-1)


def mish(x: jax.Array) -> jax.Array:
  return x * jnp.tanh(jax.nn.softplus(x))


def tanh_shrink(x: jax.Array) -> jax.Array:
  return x - jnp.tanh(x)


def gelu_tanh(x: jax.Array) -> jax.Array:
  """keras-unet-collection's `GELU`: the tanh approximation."""
  return 0.5 * x * (1.0 + jnp.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))


def leaky_relu_layer(x: jax.Array) -> jax.Array:
  """Keras's `LeakyReLU()` layer: slope 0.3 (the function `leaky_relu` has 0.2)."""
  return jax.nn.leaky_relu(x, negative_slope=0.3)


ACTIVATIONS: dict[str, Activation] = {
    "linear": linear,
    "relu": jax.nn.relu,
    "relu6": relu6,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "celu": jax.nn.celu,
    "gelu": gelu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "leaky_relu": leaky_relu,
    "softplus": jax.nn.softplus,
    "softsign": jax.nn.soft_sign,
    "hard_sigmoid": hard_sigmoid,
    "hard_silu": hard_silu,
    "hard_swish": hard_silu,
    "hard_tanh": jax.nn.hard_tanh,
    "exponential": jnp.exp,
    "mish": mish,
    "log_sigmoid": jax.nn.log_sigmoid,
    "tanh_shrink": tanh_shrink,
}

# keras-unet-collection's spellings: Keras 2 layer classes with their layer defaults, where the mathematics can
# differ from the function of the same lower-case name ("GELU" is the tanh approximation, "LeakyReLU" slope 0.3).
# The U-Net takes these, so that it computes what keras-unet-collection computes.
KERAS_UNET_COLLECTION_ALIASES: dict[str, Activation] = {
    "ReLU": jax.nn.relu, "LeakyReLU": leaky_relu_layer, "ELU": jax.nn.elu, "GELU": gelu_tanh,
    "Softmax": softmax, "Sigmoid": jax.nn.sigmoid,
}
ACTIVATIONS.update(KERAS_UNET_COLLECTION_ALIASES)


def get(name: str | Activation | None, param: str = "activation") -> Activation:
  """Returns the activation function for a Keras name, `None` or a callable.

  Args:
    name: a key of `ACTIVATIONS`, `None` (linear) or a callable (returned as is).
    param: the argument name to report in errors.

  Raises:
    ValueError: if `name` is not a known activation.
  """
  if name is None:
    return linear
  if callable(name):
    return name
  return ACTIVATIONS[check_choice(param, name, ACTIVATIONS)]
