"""Times the seed CNN's expensive operations alone: convolution forward, both gradients, max-pool gradient.

Run it to compare jaxcomponents' CPU formulations with the plain XLA path,
with the default import and tuned (benchmarks/fast_cpu.md has the figures):

  python -m benchmarks.conv_ops                            # jaxcomponents' CPU formulations
  python -m benchmarks.conv_ops --tune                     # after jaxcomponents.cpu.tune()
  JAXCOMPONENTS_FAST_CPU=0 python -m benchmarks.conv_ops   # the plain XLA path

Each figure is the median of `--repeats` synchronised calls of one jitted
function, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jaxcomponents.cpu

if __name__ == "__main__" and "--tune" in sys.argv:  # first, before JAX starts: tune() changes the process
  jaxcomponents.cpu.tune()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxcomponents.layers.pooling import max_pool  # noqa: E402
from jaxcomponents.ops import conv as conv_ops  # noqa: E402


def median_ms(fn, *args, repeats: int = 20) -> float:
  """Median wall time of `fn(*args)` in milliseconds, after one compiling call."""
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return round(float(np.median(times)) * 1e3, 2)


def measure(batch: int = 128, repeats: int = 20) -> dict[str, float]:
  """The seed CNN's second convolution (26x26x32 -> 24x24x32, VALID), its first, and its max pool."""
  keys = jax.random.split(jax.random.key(0), 6)
  results = {}
  for name, x_shape, w_shape in (("conv2", (batch, 26, 26, 32), (3, 3, 32, 32)),
                                 ("conv1", (batch, 28, 28, 1), (3, 3, 1, 32))):
    x, w = jax.random.normal(keys[0], x_shape), jax.random.normal(keys[1], w_shape)
    conv = lambda x, w: conv_ops.conv_general_dilated(x, w, (1, 1), "VALID",  # noqa: E731
                                                      dimension_numbers=conv_ops.channels_last(2))
    g = jax.random.normal(keys[2], conv(x, w).shape)
    results[f"{name} forward"] = median_ms(conv, x, w, repeats=repeats)
    results[f"{name} input gradient"] = median_ms(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0],
                                                  x, w, g, repeats=repeats)
    results[f"{name} kernel gradient"] = median_ms(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0],
                                                   x, w, g, repeats=repeats)
  x = jax.random.normal(keys[3], (batch, 24, 24, 32))
  g = jax.random.normal(keys[4], (batch, 12, 12, 32))
  results["max pool 2x2 gradient"] = median_ms(lambda x, g: jax.vjp(lambda x: max_pool(x, 2), x)[1](g)[0], x, g,
                                               repeats=repeats)
  return results


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--tune", action="store_true", help="call jaxcomponents.cpu.tune() first")
  args = parser.parse_args(argv)
  print(json.dumps({"cpu": jaxcomponents.cpu.status(), "ms": measure(args.batch, args.repeats)}, indent=1))


if __name__ == "__main__":
  main()
