"""`summary`: a Keras-style table of a module's layers, output shapes and parameter counts."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
from flax.traverse_util import flatten_dict


def summary(module: nn.Module, sample, *, print_fn: Callable[[str], Any] | None = print) -> str:
  """Prints and returns a table of `module`'s submodules in call order, as Keras's `model.summary()`.

  Each row is a submodule (named as its Keras layer for the weighted layers of
  jaxcomponents' models), its class, its output shape for `sample` and its
  parameter count, batch statistics included as Keras counts them. The totals
  split trainable (`params`) from non-trainable variables (`batch_stats`), so
  they equal Keras's for the backbones. Nothing is computed: shapes come from
  `jax.eval_shape`.

  Args:
    module: a Flax module called as `module(x)`.
    sample: an input batch (an array, or anything with `.shape` and `.dtype`).
    print_fn: where the table goes (None: only returned).

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxcomponents.layers import Dense
    >>> print(summary(Dense(4), jnp.zeros((1, 3)), print_fn=None).splitlines()[-3])
    Total params: 16
  """
  calls: list[tuple[tuple[str, ...], str, Any]] = []

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__" and context.module.path:
      kind = getattr(context.module, "class_name", None) or type(context.module).__name__  # a Keras graph's layer
      calls.append((tuple(context.module.path), kind,
                    jax.tree.map(lambda a: tuple(a.shape), out)))
    return out

  def init():
    with nn.intercept_methods(record):
      return module.init(jax.random.key(0), sample)

  variables = flatten_dict(jax.eval_shape(init))
  counts: dict[tuple[str, ...], list[int]] = {}  # module path -> [trainable, non-trainable]
  for (collection, *path), leaf in variables.items():
    for depth in range(len(path)):
      counts.setdefault(tuple(path[:depth]), [0, 0])[collection != "params"] += math.prod(leaf.shape)
  rows, seen = [], set()
  for path, kind, shape in calls:
    if path in seen:
      continue
    seen.add(path)
    rows.append(("  " * (len(path) - 1) + f"{path[-1]} ({kind})", _shape(shape), sum(counts.get(path, [0, 0]))))
  trainable, frozen = counts.get((), [0, 0])
  width = max([len(r[0]) for r in rows] + [len("Layer (type)")]) + 2
  shape_width = max([len(r[1]) for r in rows] + [len("Output Shape")]) + 2
  rule = "=" * (width + shape_width + 14)
  lines = [f'Model: "{type(module).__name__}"', rule,
           f"{'Layer (type)':<{width}}{'Output Shape':<{shape_width}}{'Param #':>14}", rule]
  lines += [f"{name:<{width}}{shape:<{shape_width}}{count:>14,}" for name, shape, count in rows]
  lines += [rule, f"Total params: {trainable + frozen:,}", f"Trainable params: {trainable:,}",
            f"Non-trainable params: {frozen:,}"]
  table = "\n".join(lines)
  if print_fn is not None:
    print_fn(table)
  return table


def _shape(shape) -> str:
  if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape):
    return str(shape)
  leaves = jax.tree.leaves(shape, is_leaf=lambda s: isinstance(s, tuple) and all(isinstance(d, int) for d in s))
  return ", ".join(str(s) for s in leaves) if len(leaves) <= 3 else f"{len(leaves)} arrays"
