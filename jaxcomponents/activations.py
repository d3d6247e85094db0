"""Activations by their Keras names, in one table.

The functions compute what `keras.activations.<name>` computes, with Keras's
defaults where they differ from JAX's (exact GELU, Keras 3's hard sigmoid,
leaky ReLU slope 0.2).

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
