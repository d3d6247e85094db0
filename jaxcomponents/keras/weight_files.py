"""Keras layers with weights, read from a live `keras.Model` or a Keras file.

Every source becomes the same list of `KerasLayer` records, one per layer that
owns weights. Layers that hold other layers' weights are expanded: a nested
model into its layers, a `Bidirectional` into its forward and backward layers.
No Keras import is needed to read a file:

- legacy `.h5` (weights-only or full model, Keras 2 and 3 writers): layers in
  Keras's topological order, weights by name;
- Keras 3 `.weights.h5` and the `.keras` archive (its `model.weights.h5`):
  layers by name, weights by position only (`KerasLayer.positional`), named
  when they meet the Flax layer they go to (`name_positional_weights`). These
  files do not record the order of layers of different classes.

A file is read with bounded memory (`jaxcomponents.limits`): every dataset's
declared size is checked against the file's size before anything is read,
and inside `open_keras_file` the weights are `StoredArray`s, read only once
their shapes have been compared with the module's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from jaxcomponents import limits

KNOWN_WEIGHT_NAMES = frozenset({
    "kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance",
    "depthwise_kernel", "pointwise_kernel", "recurrent_kernel",
})
# Weight names of files written before Keras 2 (e.g. VGG16's `block1_conv1_W_1:0`).
_OLD_WEIGHT_NAMES = {
    "W": "kernel", "b": "bias", "gamma": "gamma", "beta": "beta",
    "running_mean": "moving_mean", "running_std": "moving_variance",
    "moving_mean": "moving_mean", "moving_variance": "moving_variance",
}
_UNNAMED = re.compile(r"^variable(_\d+)?$")
_OLD_NAME = re.compile(r"^.*?_(%s)(_\d+)?$" % "|".join(sorted(_OLD_WEIGHT_NAMES, key=len, reverse=True)))


@dataclasses.dataclass(frozen=True, eq=False)
class StoredArray:
  """An array of an open weights file, read only when used (`np.asarray`): its shape and dtype are the file's.

  Attributes:
    dataset: the HDF5 dataset.
    origin: the file, for error messages.
  """

  dataset: Any
  origin: str

  @property
  def shape(self) -> tuple[int, ...]:
    return tuple(self.dataset.shape)

  @property
  def dtype(self) -> np.dtype:
    return self.dataset.dtype

  def __array__(self, dtype=None, copy=None):
    try:
      value = np.asarray(self.dataset[()])
    except (OSError, ValueError) as e:
      raise ValueError(f"{self.origin}: cannot read dataset {self.dataset.name} ({e}); the file is damaged.") from e
    return value if dtype is None else value.astype(dtype, copy=False)


@dataclasses.dataclass(frozen=True)
class KerasLayer:
  """One Keras layer's weights.

  Attributes:
    name: the layer's Keras name (the inner layer's name for nested models and
      for the halves of `Bidirectional`).
    weights: short weight name (`kernel`, `gamma`, ...) -> value (an array, or a `StoredArray` inside
      `open_keras_file`), in Keras's order.
    origin: where the weights came from, for error messages.
    positional: the weights are keyed by position ("0", "1", ...), as Keras 3
      files store them; `name_positional_weights` names them.
    path: the top-level layer's name and the sub-layers below it that own the weights
      (`("bidirectional", "forward_lstm")`), where known.
  """

  name: str
  weights: dict[str, np.ndarray]
  origin: str
  positional: bool = False  # weights keyed "0", "1", ... in Keras's order (Keras 3 files)
  path: tuple[str, ...] = ()


def short_weight_name(weight_name: str) -> str:
  """Returns the Keras short name of a stored weight path.

  Example:
    >>> short_weight_name("block1_conv1/block1_conv1_W_1:0")
    'kernel'
    >>> short_weight_name("layer_scale/variable_3")  # Keras 3 numbers the weights it names for you
    'variable'
  """
  leaf = weight_name.split("/")[-1].split(":")[0]
  if leaf in KNOWN_WEIGHT_NAMES:
    return leaf
  if _UNNAMED.match(leaf):
    return "variable"
  match = _OLD_NAME.match(leaf)
  if match:
    return _OLD_WEIGHT_NAMES[match.group(1)]
  return leaf


def weight_keys(layer_name: str, weight_names: Sequence[str]) -> list[tuple[tuple[str, ...], str]]:
  """(the sub-layers below `layer_name` that own it, its short name) of each stored weight path of one layer.

  An RNN's cell (`lstm/lstm_cell/kernel`) is its layer's, so path parts ending in `_cell` are dropped, unless
  two weights would then share a key (stacked cells, `rnn/gru_cell/kernel` and `rnn/simple_rnn_cell/kernel`).

  Example:
    >>> weight_keys("bidirectional", ["bidirectional/forward_lstm/lstm_cell/kernel"])
    [(('forward_lstm',), 'kernel')]
  """
  def keys(drop_cells: bool):
    found = []
    for weight_name in weight_names:
      parts = weight_name.split(":")[0].split("/")[:-1]
      if layer_name in parts:
        parts = parts[parts.index(layer_name) + 1:]
      found.append((tuple(p for p in parts if not (drop_cells and p.endswith("_cell"))),
                    short_weight_name(weight_name)))
    return found

  dropped = keys(True)
  return dropped if len(set(dropped)) == len(dropped) else keys(False)


def split_layer(layer_name: str, named_values: Sequence[tuple[str, np.ndarray]], origin: str,
                slash_names: bool = False) -> list[KerasLayer]:
  """Splits one Keras layer's weights into the layers that really own them.

  Weight paths are `layer/[inner_layer/][x_cell/]name`: weights sharing the
  same inner path belong to one leaf layer, named after its innermost layer.
  With `slash_names` (files Keras 2 wrote), an inner path of several parts is
  one layer name with slashes, as Keras 2 named some layers (DenseNet's
  `conv1/conv`, read from a nested model's weights `conv1/conv/kernel:0`).
  """
  groups: dict[tuple[str, ...], dict[str, np.ndarray]] = {}
  keys = weight_keys(layer_name, [weight_name for weight_name, _ in named_values])
  for (key, short), (weight_name, value) in zip(keys, named_values):
    leaf = groups.setdefault(key, {})
    if short in leaf:
      raise ValueError(f"{origin}: layer {layer_name!r} stores weight {short!r} twice.")
    leaf[short] = value if isinstance(value, StoredArray) else np.asarray(value)
  return [KerasLayer(_leaf_name(key, layer_name, slash_names), weights, f"{origin}:{layer_name}",
                     path=(layer_name, *key))
          for key, weights in groups.items()]


def _leaf_name(key: tuple[str, ...], layer_name: str, slash_names: bool) -> str:
  if not key:
    return layer_name
  if not slash_names or key[-1].startswith(("forward_", "backward_")):  # a Bidirectional half: `forward_lstm`
    return key[-1]
  return "/".join(key)


def layers_from_model(model, skip: Callable[[Any], bool] = lambda layer: False) -> list[KerasLayer]:
  """Reads the weighted layers of a live `keras.Model` in topological order (but those `skip` says)."""
  layers = []
  for layer in model.layers:
    variables = list(layer.trainable_weights) + list(layer.non_trainable_weights)
    if variables and not skip(layer):
      named = [(v.path, np.asarray(v.numpy() if hasattr(v, "numpy") else v)) for v in variables]
      layers.extend(split_layer(layer.name, named, f"keras model {model.name!r}"))
  return layers


def _attribute_list(group, name: str) -> list[str]:
  """Reads a string-list attribute that Keras may have chunked as name0, name1, ..."""
  if name in group.attrs:
    values = list(group.attrs[name])
  else:
    values, chunk = [], 0
    while f"{name}{chunk}" in group.attrs:
      values.extend(group.attrs[f"{name}{chunk}"])
      chunk += 1
  return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


_NUMBERED_KEY = re.compile(r"^(.*?)(?:_(\d+))?$")


def _stored(path: str, group, name: str) -> StoredArray:
  """The dataset `group[name]` as a `StoredArray` (no links followed); raises naming the file if it is not one."""
  import h5py

  node = limits.h5_child(path, group, name)
  if not isinstance(node, h5py.Dataset) or node.dtype.kind not in "biuf":
    raise ValueError(f"{path}: {node.name} is not an array of numbers ({type(node).__name__}"
                     f"{f' of {node.dtype}' if isinstance(node, h5py.Dataset) else ''}); the file is not Keras's.")
  return StoredArray(node, path)


def _keras3_layers(root, origin: str) -> list[KerasLayer]:
  """The weighted layers of a Keras 3 weights file: every `vars` group with arrays, named by its layer.

  Groups are keyed by class (`dense`, `dense_1`, ...) in each class's creation
  order; the layer's own name is the `name` attribute of its `vars` group (for
  an RNN cell, its layer's).
  """
  import h5py

  def key(name: str):
    base, number = _NUMBERED_KEY.match(name).groups()
    return base, -1 if number is None else int(number)

  layers: list[KerasLayer] = []
  seen = set()

  def walk(group, owner: str):
    if group.id in seen:
      raise ValueError(f"{origin}: group {group.name} is reached twice (a cycle of links?); the file is damaged.")
    seen.add(group.id)
    own = limits.h5_child(origin, group, "vars") if "vars" in group else None
    name = owner
    if isinstance(own, h5py.Group):
      name = str(own.attrs.get("name", owner))
      if name.endswith("_cell") and owner:
        name = owner
      arrays = [k for k in own if isinstance(limits.h5_child(origin, own, k), h5py.Dataset)]
      if not all(k.isdigit() for k in arrays):
        raise ValueError(f"{origin}: {own.name} holds arrays named {sorted(arrays)[:5]}; Keras 3 numbers them 0, 1, "
                         f"...: the file is not Keras's.")
      arrays.sort(key=int)
      if arrays:
        layers.append(KerasLayer(name, {k: _stored(origin, own, k) for k in arrays}, f"{origin}:{own.name}",
                                 positional=True))
    children = [k for k in group if k != "vars" and isinstance(limits.h5_child(origin, group, k), h5py.Group)]
    for child in sorted(children, key=key):
      walk(group[child], name)

  walk(root, "")
  return layers


def _archive_weights(path: str) -> bytes:
  """The `model.weights.h5` of a `.keras` archive, every member's declared and inflated size checked first.

  Raises:
    ValueError: naming the file, if it is not a readable `.keras` archive with `model.weights.h5` (a
      `limits.LimitExceededError` if a member declares more than `jaxcomponents.limits` allows).
  """
  try:
    with zipfile.ZipFile(path) as archive:
      limits.check_zip_members(path, archive)
      for other in archive.namelist():  # Keras reads them whole: each must inflate to no more than it declares
        if other != "model.weights.h5":
          limits.read_zip_member(path, archive, other)
      return limits.read_zip_member(path, archive, "model.weights.h5")
  except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, OSError, EOFError) as e:
    raise ValueError(f"{path!r} is not a readable .keras archive with model.weights.h5 ({e}); was it cut short, "
                     f"or is it not a Keras file?") from e


@contextlib.contextmanager
def _open_h5(path: str):
  """(open HDF5 file, its name for messages) of a Keras file, every dataset's declared size checked."""
  import h5py

  if not os.path.exists(path):
    raise FileNotFoundError(f"Keras weights file {path!r} does not exist.")
  if path.endswith(".keras") or zipfile.is_zipfile(path):
    contents = _archive_weights(path)
    source, budget = io.BytesIO(contents), limits.ReadBudget(f"{path}:model.weights.h5", len(contents))
  else:
    source, budget = path, limits.file_budget(path)
  try:
    handle = h5py.File(source, "r")
  except OSError as e:
    raise ValueError(f"{budget.path!r} is not a readable HDF5 file ({e}); was it cut short or corrupted?") from e
  with handle as f:
    limits.check_h5_file(budget.path, f, budget)
    yield f, budget.path


def check_keras_file(path: str | os.PathLike) -> None:
  """Raises, naming the file, if a Keras file is cut short, not Keras's, or declares more than the limits allow.

  Reads no array: only the archive's and the HDF5 file's structure and declared sizes (`jaxcomponents.limits`).

  Raises:
    FileNotFoundError: if `path` does not exist.
    ValueError: naming the file and what is wrong with it.
  """
  with _open_h5(os.fspath(path)):
    pass


def name_positional_weights(layer: KerasLayer, table: dict[str, tuple[str, str]],
                            targets: set[tuple[str, str]]) -> KerasLayer:
  """A Keras 3 layer's positional weights named by `table` (Keras's order), keeping the names going to `targets`."""
  if not layer.positional:
    return layer
  names = [name for name, target in table.items() if target in targets]
  if len(names) != len(layer.weights):
    raise ValueError(f"{layer.origin}: {len(layer.weights)} weights cannot be the Flax layer's "
                     f"{len(names)} ({', '.join(names)}).")
  values = [layer.weights[k] for k in sorted(layer.weights, key=int)]
  return dataclasses.replace(layer, weights=dict(zip(names, values)), positional=False)


@contextlib.contextmanager
def open_keras_file(path: str | os.PathLike) -> Iterator[list[KerasLayer]]:
  """The weighted layers of a Keras `.h5` weights or model file (legacy or Keras 3) or a `.keras` archive.

  The file stays open inside the `with` block, where the weights are
  `StoredArray`s: nothing is read until an array is used, and every dataset's
  declared size has been checked against the file's (`jaxcomponents.limits`).

  Raises:
    FileNotFoundError: if `path` does not exist.
    ValueError: if the file is not a readable Keras file (a `limits.LimitExceededError` if it declares more
      than the limits allow).

  Example:
    with open_keras_file("model.weights.h5") as layers:
      shapes = {layer.name: {k: v.shape for k, v in layer.weights.items()} for layer in layers}
  """
  with _open_h5(os.fspath(path)) as (f, name):
    yield _h5_layers(f, name)


def _h5_layers(f, path: str) -> list[KerasLayer]:
  """The weighted layers of an open Keras HDF5 file, as `StoredArray`s."""
  import h5py

  if "layer_names" not in f.attrs and "model_weights" not in f and isinstance(f.get("layers"), h5py.Group):
    return _keras3_layers(f, path)
  root = limits.h5_child(path, f, "model_weights") if "model_weights" in f else f
  layer_names = _attribute_list(root, "layer_names")
  if not layer_names:
    raise ValueError(
        f"{path!r} is not a Keras .h5 weights file: its root has neither a 'layer_names' attribute (legacy) "
        f"nor a 'layers' group (Keras 3)."
    )
  version = root.attrs.get("keras_version", f.attrs.get("keras_version", b""))
  keras2 = not (version.decode() if isinstance(version, bytes) else str(version)).startswith("3")
  layers = []
  for layer_name in layer_names:
    if layer_name not in root:
      raise ValueError(f"{path!r} lists layer {layer_name!r} but has no group for it; the file is damaged.")
    group = limits.h5_child(path, root, layer_name)
    try:
      named = [(w, _stored(path, group, w)) for w in _attribute_list(group, "weight_names")]
    except (KeyError, OSError) as e:
      raise ValueError(f"{path!r}: cannot read the weights of layer {layer_name!r} ({e}); the file is damaged.") from e
    layers.extend(split_layer(layer_name, named, path, slash_names=keras2))
  return layers


def layers_from_h5(path: str | os.PathLike) -> list[KerasLayer]:
  """Reads the weighted layers of a Keras `.h5` weights or model file (legacy or Keras 3) or a `.keras` archive.

  Every array is read (`open_keras_file` reads only those used).

  Raises:
    FileNotFoundError: if `path` does not exist.
    ValueError: if the file is not a readable Keras file (a `limits.LimitExceededError` if it declares more
      than the limits allow).
  """
  with open_keras_file(path) as layers:
    return [dataclasses.replace(layer, weights={k: np.asarray(v) for k, v in layer.weights.items()})
            for layer in layers]
