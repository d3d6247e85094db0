"""A fusion barrier for the CPU formulations: a value computed into memory once, by a native no-op call."""

from __future__ import annotations

import jax

from jaxcomponents.ops import native, platform


@jax.custom_jvp
def materialized(x: jax.Array) -> jax.Array:
  """`x`, computed into memory once, for code on the CPU path (inside `on_cpu`'s `fast`).

  XLA:CPU fuses a cheap producer into every consumer and recomputes it there.
  When a consumer reads each value several times (a pooling gradient hands each
  window's value to all its inputs), the whole producer (a dropout mask's random
  bits, say) is recomputed for every read. Where the native library is built,
  `x` goes through its `jc_fusion_barrier` call, which returns its input buffer
  and makes XLA compute `x` first; elsewhere `x` is returned as it is.
  Differentiates as the identity.

  Example:
    >>> import jax.numpy as jnp
    >>> platform.on_cpu(lambda x: materialized(x * 2), lambda x: x * 2, jnp.ones(3)).tolist()
    [2.0, 2.0, 2.0]
  """
  if not (platform.native_calls_allowed(x) and native.available()):
    return x
  return jax.ffi.ffi_call("jc_fusion_barrier", jax.ShapeDtypeStruct(x.shape, x.dtype), input_output_aliases={0: 0},
                          vmap_method="broadcast_all")(x)


@materialized.defjvp
def _materialized_jvp(primals, tangents):
  return materialized(primals[0]), tangents[0]
