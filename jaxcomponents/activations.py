"""Activations by their Keras names, in one registry (`ACTIVATIONS`).

The functions compute what `keras.activations.<name>` computes, with Keras's
defaults where they differ from JAX's (exact GELU, Keras 3's hard sigmoid,
leaky ReLU slope 0.2). The names are Keras's function names and its aliases
"swish" and "hard_swish" (`keras.activations.get`). keras-unet-collection's
spellings (Keras 2 layer classes: "ReLU", "GELU", ...) are not Keras activation
names: the U-Net resolves them (`jaxcomponents.models.unet_blocks`), so here
"GELU" is an error, never the tanh approximation in place of Keras's exact "gelu".

Example:
  >>> import jax.numpy as jnp
  >>> get("relu6")(jnp.array([-1.0, 7.0])).tolist()
  [0.0, 6.0]
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxcomponents.registry import Registry

Activation = Callable[[jax.Array], jax.Array]


def linear(x: jax.Array) -> jax.Array:
  return x


# `jax.nn`'s forms, as Keras's JAX backend calls them: their gradients at the kinks (0 at x = 0 and 6 for relu6) are
# Keras's, where a `jnp.clip` would split them.
def relu6(x: jax.Array) -> jax.Array:
  return jax.nn.relu6(x)


def hard_sigmoid(x: jax.Array) -> jax.Array:
  return jax.nn.hard_sigmoid(x)


def hard_silu(x: jax.Array) -> jax.Array:
  return jax.nn.hard_silu(x)


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


def squareplus(x: jax.Array) -> jax.Array:
  return jax.nn.squareplus(x, b=4)


def soft_shrink(x: jax.Array) -> jax.Array:
  return jnp.where(x > 0.5, x - 0.5, jnp.where(x < -0.5, x + 0.5, 0.0))


def hard_shrink(x: jax.Array) -> jax.Array:
  return jnp.where(jnp.abs(x) > 0.5, x, 0.0)


def sparsemax(x: jax.Array) -> jax.Array:
  """Keras's `sparsemax` over the last axis, as every Keras backend computes it.

  Keras's threshold sums the cumulative sums over the support (Martins & Astudillo's takes the last one), so the
  two differ where more than one entry is kept; this is Keras's.
  """
  ranked = -jnp.sort(-x, axis=-1)
  cumulative = jnp.cumsum(ranked, axis=-1)
  k = jnp.arange(1, x.shape[-1] + 1)
  support = ranked - (cumulative - 1) / k > 0
  count = jnp.sum(support, axis=-1, keepdims=True)
  tau = (jnp.sum(jnp.where(support, cumulative, 0.0), axis=-1, keepdims=True) - 1) / count
  return jnp.maximum(x - tau, 0.0)


def gelu_tanh(x: jax.Array) -> jax.Array:
  """keras-unet-collection's `GELU`: the tanh approximation."""
  return 0.5 * x * (1.0 + jnp.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))


def leaky_relu_layer(x: jax.Array) -> jax.Array:
  """Keras's `LeakyReLU()` layer: slope 0.3 (the function `leaky_relu` has 0.2)."""
  return jax.nn.leaky_relu(x, negative_slope=0.3)


# keras-unet-collection's spellings, named in the error only: the U-Net resolves them (models/unet_blocks.py).
_NOT_KERAS = {name: f"{name!r} is keras-unet-collection's spelling (a Keras 2 layer class): UNet(activation={name!r}) "
                    "takes it; Keras's activation names are lower-case."
              for name in ("ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "Snake", "Softmax", "Sigmoid")}

ACTIVATIONS = Registry("activation", param="activation", values=True, none="linear", name_notes=_NOT_KERAS)
for _name, _fn, _aliases in (
    ("linear", linear, ()), ("relu", jax.nn.relu, ()), ("relu6", relu6, ()), ("sigmoid", jax.nn.sigmoid, ()),
    ("tanh", jnp.tanh, ()), ("softmax", softmax, ()), ("log_softmax", log_softmax, ()), ("elu", jax.nn.elu, ()),
    ("selu", jax.nn.selu, ()), ("celu", jax.nn.celu, ()), ("gelu", gelu, ()), ("silu", jax.nn.silu, ("swish",)),
    ("leaky_relu", leaky_relu, ()), ("softplus", jax.nn.softplus, ()), ("softsign", jax.nn.soft_sign, ()),
    ("hard_sigmoid", hard_sigmoid, ()), ("hard_silu", hard_silu, ("hard_swish",)), ("hard_tanh", jax.nn.hard_tanh, ()),
    ("exponential", jnp.exp, ()), ("mish", mish, ()), ("log_sigmoid", jax.nn.log_sigmoid, ()),
    ("tanh_shrink", tanh_shrink, ()), ("squareplus", squareplus, ()), ("soft_shrink", soft_shrink, ()),
    ("hard_shrink", hard_shrink, ()), ("sparse_plus", jax.nn.sparse_plus, ()),
    ("sparse_sigmoid", jax.nn.sparse_sigmoid, ()), ("sparsemax", sparsemax, ()), ("glu", jax.nn.glu, ()),
):
  ACTIVATIONS.register(_name, _fn, aliases=_aliases)
del _name, _fn, _aliases


def get(name: str | dict | Activation | None, param: str = "activation") -> Activation:
  """Returns the activation function for a Keras name, config, `None` or a callable (`keras.activations.get`).

  Args:
    name: a name in `ACTIVATIONS`, a serialized Keras function (`{"class_name": "function", "config": "relu"}`),
      `None` (linear) or a callable (returned as is).
    param: the argument name to report in errors.

  Raises:
    ValueError: if `name` is not a Keras activation name (keras-unet-collection's "GELU", "ReLU", ... included).

  Example:
    >>> get({"class_name": "function", "config": "swish"}) is get("silu")
    True
  """
  return ACTIVATIONS.get(name, param)
