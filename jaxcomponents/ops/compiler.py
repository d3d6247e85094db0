"""XLA options for jaxcomponents' own jitted functions, set per computation instead of process-wide.

The library's own jitted functions (the train and evaluation steps,
`predict`, `Model`'s inference) compile with two XLA options on the CPU:

* YNNPACK kept for the matrix products and reductions only. jaxlib 0.10
  hands 2-D float32 convolutions to YNNPACK, which is 6-10x slower than XLA's
  own (Eigen) convolution for unpadded convolutions and kernel gradients. The
  option is XLA's default set of YNNPACK fusions without
  `individual_convolution`: the per-computation form of the XLA flag
  `--xla_cpu_experimental_ynn_fusion_type=-individual_convolution`, which
  `jaxcomponents.cpu.tune()` sets for the whole process.
* Temporaries in heaps of at most 8 MiB instead of one combined block.
  XLA:CPU allocates each execution's temporaries afresh with malloc, and
  glibc maps a block above its adaptive threshold (32 MiB at most) afresh and
  unmaps it when freed, so each training step faulted its memory in again
  (the seed CNN at batch 128: 8,900 page faults a step; 0 to 1,200 in 8 MiB
  heaps, as glibc's adaptive thresholds follow the order of the frees). One
  buffer larger than 32 MiB still gets a block of its own, mapped afresh:
  only `tune()`'s malloc settings keep those.

Nothing outside those computations changes. No option is passed when the
default backend is not the CPU, on jaxlib releases they were not verified on
(XLA refuses an option it does not know), when `XLA_FLAGS` sets one (the
user's choice stands), or when the CPU fast paths are off
(`JAXCOMPONENTS_FAST_CPU=0`).

Example:
  >>> import jax.numpy as jnp
  >>> double = jit(lambda x: 2 * x)
  >>> double(jnp.ones(2)).tolist()
  [2.0, 2.0]
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import jax

from jaxcomponents.ops import platform

# The jaxlib releases, inclusive, the options were verified on (on 0.10, XLA gives YNNPACK the convolutions).
VERIFIED_JAXLIB = ((0, 10), (0, 10))
YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
# XLA's default YNNPACK fusions on those releases less individual convolutions (the compiled programs are equal to
# those of the XLA flag; tests/test_compiler_options.py checks it).
YNN_FUSIONS = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"
HEAP_OPTION = "xla_multiheap_size_constraint_per_heap"
HEAP_BYTES = 8 << 20


def jaxlib_version() -> tuple[int, ...]:
  """The installed jaxlib's (major, minor)."""
  import jaxlib  # pylint: disable=import-outside-toplevel
  return tuple(int(part) for part in re.findall(r"\d+", jaxlib.__version__)[:2])


def verified_release() -> bool:
  """Whether the installed jaxlib is one the options were verified on (its XLA gives YNNPACK the convolutions)."""
  return VERIFIED_JAXLIB[0] <= jaxlib_version() <= VERIFIED_JAXLIB[1]


def options() -> dict[str, str | int] | None:
  """The XLA options jaxcomponents compiles its own computations with here and now; None for XLA's defaults."""
  if not platform.enabled() or not verified_release() or jax.default_backend() != "cpu":
    return None
  flags = os.environ.get("XLA_FLAGS", "")
  chosen = {name: value for name, value in ((YNN_OPTION, YNN_FUSIONS), (HEAP_OPTION, HEAP_BYTES)) if name not in flags}
  return chosen or None


def jit(fun: Callable[..., Any], **kwargs: Any) -> Any:
  """`jax.jit(fun, **kwargs)` with `options()`: for jaxcomponents' own steps and forward passes."""
  return jax.jit(fun, compiler_options=options(), **kwargs)
