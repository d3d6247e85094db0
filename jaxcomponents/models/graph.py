"""Run a network written as a graph of layer calls in Keras's topological layer order.

Keras orders a functional model's layers by their depth (the longest path to
the output, deepest first), ties broken by a depth-first walk from the output.
Weight files list layers in that order and `load_weights` pairs them in that
order. A branching network (InceptionV3) written as a `LayerGraph` creates its
Flax layers in exactly that order, so Keras files load and export in order.
"""

from __future__ import annotations

from collections.abc import Callable

import jax


class LayerGraph:
  """A DAG of calls: `add(fn, *inputs)` returns a node id; node 0 is the input.

  Example:
    >>> g = LayerGraph()
    >>> a = g.add(lambda x: x + 1, g.input)
    >>> b = g.add(lambda x: x * 2, g.input)
    >>> c = g.add(lambda x, y: x - y, a, b)
    >>> int(g.run(3, c)[c])
    -2
  """

  input = 0

  def __init__(self):
    self.fns: list[Callable[..., jax.Array] | None] = [None]
    self.parents: list[tuple[int, ...]] = [()]

  def add(self, fn: Callable[..., jax.Array], *inputs: int) -> int:
    self.fns.append(fn)
    self.parents.append(tuple(inputs))
    return len(self.fns) - 1

  def keras_order(self, output: int) -> list[int]:
    """Node ids in Keras's order: depth to `output` descending, then depth-first pre-order from it."""
    visit: dict[int, int] = {}
    stack = [output]
    while stack:
      node = stack.pop()
      if node in visit:
        continue
      visit[node] = len(visit)
      stack.extend(reversed(self.parents[node]))
    depth = {output: 0}
    for node in self._outputs_to_inputs(output):
      for parent in self.parents[node]:
        depth[parent] = max(depth.get(parent, 0), depth[node] + 1)
    return sorted(visit, key=lambda n: (-depth[n], visit[n]))

  def _outputs_to_inputs(self, output: int) -> list[int]:
    """A reverse topological order of the nodes `output` depends on."""
    order, done = [], set()

    def post(node):
      if node in done:
        return
      done.add(node)
      for parent in self.parents[node]:
        post(parent)
      order.append(node)

    post(output)
    return order[::-1]

  def run(self, x: jax.Array, output: int) -> dict[int, jax.Array]:
    """Computes every node `output` depends on from `x`, calling layers in Keras's order."""
    values = {self.input: x}
    for node in self.keras_order(output):
      if node != self.input:
        values[node] = self.fns[node](*(values[p] for p in self.parents[node]))
    return values
