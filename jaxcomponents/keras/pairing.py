"""Which Keras layer's weights go to which Flax module: `pair_layers`, the one pairing of Keras interop.

Flax modules with weights are known by their paths (in creation order),
Keras layers by their `KerasLayer` records. The pairing modes:

- "path": the module at the Keras layer's path (`bidirectional/forward_lstm`), as `from_keras` builds them; a
  sub-layer may sit one wrapper module deeper; those left over under one Keras layer pair in the order of their
  names (`Bidirectional(LSTM(name="encoder"))`: `backward_encoder`, `forward_encoder`);
- "name": equal names (a Keras 2 `conv1/conv` is Keras 3's `conv1_conv`); a name several layers share (the
  `query` of every attention layer) is qualified by its owner on both sides (`vit_0_atten_query`), and one that
  still repeats is an error, never a silent choice;
- "numbered": Keras's automatic names (`conv2d_7`) by base name and rank, whatever session numbered them;
- "order": creation order against Keras's topological order, as Keras's own `load_weights`;
- "auto": "name" when every module's name is a Keras layer's, else "numbered" when the base names agree, else
  "order".

Example:
  >>> import numpy as np
  >>> from jaxcomponents.keras.weight_files import KerasLayer
  >>> keras_layers = [KerasLayer("dense_3", {"kernel": np.ones((2, 2))}, "example")]
  >>> [(path, layer.name) for path, layer in pair_layers({("dense",): {}}, keras_layers, "numbered")]
  [(('dense',), 'dense_3')]
"""

from __future__ import annotations

import collections
import re
from collections.abc import Mapping, Sequence
from typing import Any

from jaxcomponents.errors import check_choice
from jaxcomponents.keras.weight_files import KerasLayer
from jaxcomponents.variable_trees import Path, describe_leaf

MATCH_MODES = ("auto", "name", "numbered", "order")
_NUMBERED = re.compile(r"^(.*?)(?:_(\d+))?$")


def numbered_ranks(names: Sequence[str]) -> list[tuple[str, int]]:
  """(base name, rank) per name: `conv2d_7` is the k-th `conv2d` when sorted by number, then position."""
  parsed = []
  for position, name in enumerate(names):
    base, number = _NUMBERED.match(name).groups()
    parsed.append((base, -1 if number is None else int(number), position))
  ranks: dict[int, tuple[str, int]] = {}
  counters: dict[str, int] = {}
  for base, _, position in sorted(parsed):
    ranks[position] = (base, counters.get(base, 0))
    counters[base] = counters.get(base, 0) + 1
  return [ranks[i] for i in range(len(names))]


def _by_path(flax_leaves: Mapping[Path, Any], keras_layers: Sequence[KerasLayer]) -> list[tuple[Path, KerasLayer]]:
  pairs, left, taken = [], {}, set()
  for layer in keras_layers:
    top, key = layer.path[0], layer.path[1:]
    found = [p for p in flax_leaves if p[:1] == (top,) and p[1:1 + len(key)] == key
             and len(p) - 1 - len(key) in (0, 1) and p not in taken]
    if len(found) == 1:
      pairs.append((found[0], layer))
      taken.add(found[0])
    else:
      left.setdefault(top, []).append(layer)
  for top in dict.fromkeys(layer.path[0] for layer in keras_layers):
    ours = sorted(p for p in flax_leaves if p[:1] == (top,) and p not in taken)
    theirs = sorted(left.get(top, []), key=lambda layer: layer.path)
    if len(ours) != len(theirs):
      theirs_paths = ['/'.join(layer.path) for layer in keras_layers if layer.path[0] == top]
      raise ValueError(f"Keras layer {top!r} has weights in {theirs_paths}, the module has layers "
                       f"{['/'.join(p) for p in flax_leaves if p[:1] == (top,)]}; they do not pair up.")
    pairs.extend(zip(ours, theirs))
  return pairs


def _name_keys(flax_paths: Sequence[Path], keras_layers: Sequence[KerasLayer]) -> tuple[list[str], list[str]]:
  """Each side's names for "name" pairing: the layer's own name, qualified by its owner where names repeat."""
  flax_names = [path[-1] if path else "" for path in flax_paths]
  keras_names = [layer.name.replace("/", "_") for layer in keras_layers]
  repeated = {name for names in (flax_names, keras_names)
              for name, count in collections.Counter(names).items() if count > 1}
  flax_keys = [f"{path[-2]}_{name}" if name in repeated and len(path) > 1 else name
               for path, name in zip(flax_paths, flax_names)]
  keras_keys = [f"{layer.path[0]}_{name}" if name in repeated and len(layer.path) > 1 else name
                for layer, name in zip(keras_layers, keras_names)]
  return flax_keys, keras_keys


def _refuse_repeated(match: str, flax_keys: Sequence[Any], keras_keys: Sequence[Any]) -> None:
  repeated = sorted({str(key) for keys in (flax_keys, keras_keys)
                     for key, count in collections.Counter(keys).items() if count > 1})
  if repeated:
    raise ValueError(f"match={match!r} but these layer names repeat in the module or in the Keras source: "
                     f"{repeated}; name the layers apart, or pair them in order (match='order').")


def pair_layers(flax_leaves: Mapping[Path, Any], keras_layers: Sequence[KerasLayer], match: str
                ) -> list[tuple[Path, KerasLayer]]:
  """(Flax module path, Keras layer) pairs; see the module's docstring for `match`.

  Raises:
    ValueError: naming the layers that do not pair up.
  """
  if match == "path":
    return _by_path(flax_leaves, keras_layers)
  check_choice("match", match, MATCH_MODES)
  flax_names = [path[-1] if path else "" for path in flax_leaves]
  keras_names = [layer.name for layer in keras_layers]
  flax_qualified, keras_qualified = _name_keys(list(flax_leaves), keras_layers)
  if match == "auto":
    if len(set(flax_qualified)) == len(flax_qualified) and set(flax_qualified) <= set(keras_qualified):
      match = "name"
    elif sorted(numbered_ranks(flax_names)) == sorted(numbered_ranks(keras_names)):
      match = "numbered"
    else:
      match = "order"
  if match in ("name", "numbered"):
    flax_keys = flax_qualified if match == "name" else numbered_ranks(flax_names)
    keras_keys = keras_qualified if match == "name" else numbered_ranks(keras_names)
    _refuse_repeated(match, flax_keys, keras_keys)
    by_key = dict(zip(keras_keys, keras_layers))
    missing = [n for n, k in zip(flax_names, flax_keys) if k not in by_key]
    if missing:
      raise ValueError(
          f"match={match!r} but these Flax layers have no Keras layer of the same "
          f"{'name' if match == 'name' else 'numbered name'}: {missing}; Keras layers with weights: {keras_names}."
      )
    return [(path, by_key[key]) for path, key in zip(flax_leaves, flax_keys)]
  if any(layer.positional for layer in keras_layers):
    raise ValueError(
        f"match={match!r} pairs layers in order, but a Keras 3 weights file does not record the order of "
        f"layers of different classes; name the Flax layers as the Keras layers ({keras_names}) or keep Keras's "
        f"numbered names, or load the Keras model and pass it (or use weights.from_keras).")
  if len(flax_leaves) != len(keras_layers):
    flax_list = "\n".join(f"  {'/'.join(p)}: {describe_leaf(v)}" for p, v in flax_leaves.items())
    keras_list = "\n".join(
        f"  {l.name}: {', '.join(f'{k}{v.shape}' for k, v in l.weights.items())}" for l in keras_layers
    )
    raise ValueError(
        f"Layer count mismatch: the Flax module has {len(flax_leaves)} layers with weights, "
        f"the Keras source {len(keras_layers)} (paired in order because the names differ).\n"
        f"Flax layers:\n{flax_list}\nKeras layers:\n{keras_list}"
    )
  return list(zip(flax_leaves, keras_layers))


__all__ = ["MATCH_MODES", "numbered_ranks", "pair_layers"]
