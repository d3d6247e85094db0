"""How far a converted model is from Keras, layer by layer: `compare_with_keras`.

Example:
  print(compare_with_keras(module, variables, keras_model, x))
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from collections.abc import Mapping
from typing import Any

from jaxcomponents.keras.graph import KerasGraph


def functional(model):
  """The model as a functional graph; a Sequential's masks become explicit operations on the way."""
  if type(model).__name__ != "Sequential":
    return model
  import keras  # pylint: disable=import-outside-toplevel
  if not getattr(model, "inputs", None):
    raise ValueError(f"the Sequential model {model.name!r} has no input shape; start it with keras.Input(shape).")
  return keras.Model(single(model.inputs), single(model.outputs), name=model.name)


def single(tensors):
  """One tensor alone, as Keras expects a single-input model's inputs, else the list."""
  return tensors[0] if len(tensors) == 1 else tensors


@dataclasses.dataclass(frozen=True)
class LayerDifference:
  """How far one layer's output is from Keras's: `max_abs`, and `max_rel` (max_abs over Keras's max |output|)."""

  name: str
  class_name: str
  max_abs: float
  max_rel: float


@dataclasses.dataclass(frozen=True)
class ParityReport:
  """`compare_with_keras`'s answer: one row per compared layer, in the order they run."""

  layers: tuple[LayerDifference, ...]
  first_divergent: str | None
  atol: float
  rtol: float

  def __str__(self) -> str:
    width = max([len(r.name) for r in self.layers] + [5])
    lines = [f"{'layer':<{width}}  {'class':<24} {'max abs':>10} {'max rel':>10}"]
    for r in self.layers:
      mark = "  <- first to differ" if r.name == self.first_divergent else ""
      lines.append(f"{r.name:<{width}}  {r.class_name:<24} {r.max_abs:10.3e} {r.max_rel:10.3e}{mark}")
    verdict = ("every layer agrees" if self.first_divergent is None
               else f"first layer to differ: {self.first_divergent}")
    return "\n".join(lines + [f"{verdict} (atol {self.atol:g}, rtol {self.rtol:g})"])


def _as_list(x) -> list:
  return list(x) if isinstance(x, (list, tuple)) else [x]


def compare_with_keras(module, variables: Mapping[str, Any], keras_model, x, *, atol: float = 1e-5,
                       rtol: float = 1e-5) -> ParityReport:
  """Compares every layer's output of `module` (a `KerasGraph`) with Keras's on input `x`.

  A layer differs when its largest absolute difference exceeds
  `atol + rtol * max |Keras output|`. Layers called more than once (shared)
  and layers with several outputs are compared through what follows them;
  the model's outputs are compared last (rows `output 0`, ...).

  Example:
    print(compare_with_keras(module, variables, keras_model, x))
  """
  import keras  # pylint: disable=import-outside-toplevel

  graph = functional(keras_model)
  inputs = [np.asarray(v) for v in _as_list(x)]
  ours = module.apply(variables, *inputs, method=KerasGraph.layer_outputs)
  compared = []
  for layer in graph.layers:
    if layer.name not in ours or type(layer).__name__ == "InputLayer" or hasattr(layer, "layers"):
      continue  # a nested model's `output` is its own graph's tensor: compared through what follows it
    try:
      output = layer.output
    except (AttributeError, ValueError, RuntimeError):  # shared: no single output
      continue
    if isinstance(output, (list, tuple)):
      continue
    compared.append((layer, output))
  given = inputs if len(inputs) > 1 else inputs[0]
  outputs = keras.tree.flatten(graph.outputs)  # a dict of outputs by sorted key, as Keras flattens it
  # Every layer with one output, then the model's outputs (which a model ending in a layer with several has).
  probe = keras.Model(single(graph.inputs), [o for _, o in compared] + outputs)
  theirs = _as_list(probe.predict(given, verbose=0)) if len(compared) + len(outputs) > 1 \
      else [probe.predict(given, verbose=0)]
  finals = module.apply(variables, *inputs)
  finals = [finals[k] for k in sorted(finals)] if isinstance(finals, dict) else jax.tree.leaves(finals)
  rows, first = [], None
  named = [(layer.name, type(layer).__name__, ours[layer.name]) for layer, _ in compared]
  named += [(f"output {i}", "model output", value) for i, value in enumerate(finals)]
  for (name, class_name, value), reference in zip(named, theirs):
    same_shape = np.shape(value) == np.shape(reference)
    diff = float(np.max(np.abs(np.asarray(value, np.float64) - np.asarray(reference, np.float64)), initial=0.0)) \
        if same_shape else float("inf")
    scale = float(np.max(np.abs(np.asarray(reference, np.float64)), initial=0.0))
    rows.append(LayerDifference(name, class_name, diff, diff / scale if scale else diff))
    if first is None and diff > atol + rtol * scale:
      first = name
  return ParityReport(tuple(rows), first, atol, rtol)


__all__ = ["LayerDifference", "ParityReport", "compare_with_keras", "functional", "single"]
