"""XLA options for jaxcomponents' own jitted functions, set per computation instead of process-wide.

jaxlib 0.10 hands 2-D float32 convolutions to YNNPACK, which is 6-10x slower
than XLA's own (Eigen) convolution for unpadded convolutions and kernel
gradients. The library's own jitted functions (the train and evaluation
steps, `predict`, `Model`'s inference) are compiled with YNNPACK kept for the
matrix products and reductions only: XLA's default set of YNNPACK fusions
without `individual_convolution`, the per-computation form of the XLA flag
`--xla_cpu_experimental_ynn_fusion_type=-individual_convolution`, which
`jaxcomponents.cpu.tune()` sets for the whole process. Nothing outside those
computations changes.

No option is passed when the default backend is not the CPU, on jaxlib
releases it was not verified on (XLA refuses an option it does not know),
when `XLA_FLAGS` sets it (the user's choice stands), or when the CPU fast paths
are off (`JAXCOMPONENTS_FAST_CPU=0`).

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

# The jaxlib releases, inclusive, the option was verified on (on 0.10, XLA gives YNNPACK the convolutions).
VERIFIED_JAXLIB = ((0, 10), (0, 10))
YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
# XLA's default YNNPACK fusions on those releases less individual convolutions (the compiled programs are equal to
# those of the XLA flag; tests/test_compiler_options.py checks it).
YNN_FUSIONS = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"


def jaxlib_version() -> tuple[int, ...]:
  """The installed jaxlib's (major, minor)."""
  import jaxlib  # pylint: disable=import-outside-toplevel
  return tuple(int(part) for part in re.findall(r"\d+", jaxlib.__version__)[:2])


def verified_release() -> bool:
  """Whether the installed jaxlib is one the option was verified on (its XLA gives YNNPACK the convolutions)."""
  return VERIFIED_JAXLIB[0] <= jaxlib_version() <= VERIFIED_JAXLIB[1]


def options() -> dict[str, str] | None:
  """The XLA options jaxcomponents compiles its own computations with here and now; None for XLA's defaults."""
  if not platform.enabled() or not verified_release() or YNN_OPTION in os.environ.get("XLA_FLAGS", ""):
    return None
  if jax.default_backend() != "cpu":
    return None
  return {YNN_OPTION: YNN_FUSIONS}


def jit(fun: Callable[..., Any], **kwargs: Any) -> Any:
  """`jax.jit(fun, **kwargs)` with `options()`: for jaxcomponents' own steps and forward passes."""
  return jax.jit(fun, compiler_options=options(), **kwargs)
