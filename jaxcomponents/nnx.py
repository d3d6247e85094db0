"""Flax NNX front end: every jaxcomponents component and backbone as a stateful `nnx.Module`.

The library's modules are Flax Linen modules. `from_linen` and `from_variables`
wrap one in `LinenModule`, an `nnx.bridge.ToNNX` whose variables live as NNX
variables (`params` as `nnx.Param`, `batch_stats` as `nnx.BatchStat`), so
`nnx.Optimizer`, `nnx.jit`, `nnx.grad`, `nnx.state` and `nnx.split` work on it.
`to_variables` gives the Linen variables dict back (for
`jaxcomponents.weights.save_npz` / `save_keras_h5`, or `module.apply`).

Calls follow the library's convention, `model(x, train=False)`: with
`train=True` dropout is active (a fresh key from the model's `'dropout'` stream
each call) and the batch statistics, and any other non-`params` collection,
update in place, as `module.apply(..., mutable=["batch_stats"])` would return
them. `model.train()` / `model.eval()` set the mode used when `train` is not
given; the default is inference, as in Linen.

With the same integer seed, `from_linen(module, x, rngs=seed)` starts from the
variables and dropout keys of `TrainState.create(module, tx, x, seed=seed)`
and its `make_train_step`, one training call per step.

Example:
  >>> import jax.numpy as jnp
  >>> from jaxcomponents.layers import Dense
  >>> model = from_linen(Dense(3, batch_norm=True), jnp.ones((2, 4)))
  >>> model(jnp.ones((2, 4)), train=True).shape
  (2, 3)
  >>> sorted(to_variables(model))
  ['batch_stats', 'params']

Importing this module changes nothing outside it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx
from flax.core import meta
from flax.nnx import traversals
from flax.nnx.bridge import variables as bridge_variables

from jaxcomponents.errors import is_int
from jaxcomponents.tree_paths import path_parts

__all__ = ["LinenModule", "from_linen", "from_variables", "to_variables"]

_OWN_ATTRIBUTES = ("deterministic",)


def _check_module(module: Any) -> nn.Module:
  if isinstance(module, type) and issubclass(module, nn.Module):
    raise ValueError(f"module={module.__name__} is not allowed; expected an instance of a flax.linen Module such as "
                     f"{module.__name__}(...), not the class.")
  if not isinstance(module, nn.Module):
    raise ValueError(f"module={module!r} is not allowed; expected a flax.linen Module, e.g. "
                     "jaxcomponents.layers.Dense(10) or jaxcomponents.models.ResNet50().")
  if module.scope is not None:
    raise ValueError(f"module={type(module).__name__}(...) is bound to variables; expected an unbound Linen module "
                     "(as constructed, not from inside `apply` or `bind`).")
  return module


def _check_train(train: Any) -> bool | None:
  if train is not None and not isinstance(train, bool):
    raise ValueError(f"train={train!r} is not allowed; expected True, False or None (the mode set by "
                     "model.train() / model.eval()).")
  return train


def _is_key(value: Any) -> bool:
  """A typed key (`jax.random.key`) or a raw one (`jax.random.PRNGKey`)."""
  if not isinstance(value, jax.Array):
    return False
  if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
    return value.shape == ()
  return value.dtype == jnp.uint32 and value.shape == (2,)


def _seed_keys(seed: int) -> tuple[jax.Array, jax.Array]:
  """(init key, dropout key) of a seed, as `TrainState.create(seed=...)` splits them."""
  init_key, dropout_key = jax.random.split(jax.random.key(seed))
  return init_key, dropout_key


def _streams(rngs: Any) -> nnx.Rngs:
  """The model's own key streams: a seed's keys, or the `nnx.Rngs` forked (as `nnx.bridge.ToNNX` forks it)."""
  if is_int(rngs):
    init_key, dropout_key = _seed_keys(rngs)
    return nnx.Rngs(params=init_key, dropout=dropout_key)
  if isinstance(rngs, nnx.Rngs):
    return rngs.fork()
  raise ValueError(f"rngs={_short(rngs)} is not allowed; expected an int seed or an nnx.Rngs.")


def _plain_variables(variables: Any, param: str = "variables") -> dict[str, Any]:
  """A Linen variables mapping (dict or FrozenDict) -> nested plain dicts of arrays, checked."""
  if not isinstance(variables, Mapping) or not all(
      isinstance(k, str) and isinstance(v, Mapping) for k, v in variables.items()):
    raise ValueError(f"{param}={_short(variables)} is not allowed; expected a Linen variables dict "
                     "{collection: {name: array or nested dict}}, e.g. {'params': ..., 'batch_stats': ...} "
                     "as module.init or jaxcomponents.weights.load_keras return.")
  flat = {}
  for key_path, leaf in jax.tree_util.tree_flatten_with_path(
      dict(variables), is_leaf=lambda x: isinstance(x, meta.AxisMetadata))[0]:
    path = path_parts(key_path)
    value = leaf.unbox() if isinstance(leaf, meta.AxisMetadata) else leaf
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
      raise ValueError(f"{param}[{'/'.join(path)}]={_short(leaf)} is not allowed; expected an array.")
    flat[path] = leaf if isinstance(leaf, meta.AxisMetadata) else jnp.asarray(leaf)
  return traversals.unflatten_mapping(flat)


def _short(value: Any) -> str:
  text = repr(value)
  return text if len(text) <= 80 else f"{text[:77]}..."


class LinenModule(nnx.bridge.ToNNX):
  """A Linen module with its variables as NNX state; built by `from_linen` or `from_variables`.

  The variables are attributes named by the Linen module's top-level names
  (`model.dense["kernel"]`, `model.batch_normalization["mean"]`), as in
  `nnx.bridge.ToNNX`. Building one directly follows the bridge:
  `LinenModule(module, rngs=nnx.Rngs(0)).lazy_init(x)`.

  Args:
    module: the Linen module.
    rngs: an int seed or `nnx.Rngs`: the key streams of training calls
      (`'dropout'`, and any other stream the module draws besides `'params'`),
      and of `lazy_init`'s `'params'`.
  """

  def __init__(self, module: nn.Module, *, rngs: nnx.Rngs | int = 0):
    super().__init__(_check_module(module))
    self.to_nnx__rngs = nnx.data(_streams(rngs))
    self.deterministic = True

  def __call__(self, *args: Any, train: bool | None = None, rngs: Any = None, method: Any = None,
               **kwargs: Any) -> Any:
    """Runs the Linen module on the current variables; `train=True` updates batch statistics.

    Args:
      *args: the module's positional inputs.
      train: training mode (True), inference (False) or the mode of
        `model.train()` / `model.eval()` (None). Passed on as `train=` when the
        module's method takes it.
      rngs: keys for this call only: `nnx.Rngs`, a key (the `'dropout'` key)
        or a dict `{stream: key}`; default: drawn from the model's streams in
        training, none in inference.
      method: a method of the Linen module other than `__call__`.
      **kwargs: the module's keyword inputs (`return_features=True`, `mask=...`).
    """
    module = self.to_nnx__module
    train = _check_train(train)
    if self._pytree__state.initializing:
      if train is not None:
        kwargs["train"] = train
      return self._init(*args, rngs=rngs, method=method, **kwargs)
    takes, position = _train_parameter(module, method)
    if position is not None and len(args) > position:  # train given positionally, as Linen modules allow
      if train is not None:
        raise ValueError(f"train={train!r} is not allowed with train also given as positional argument "
                         f"{position + 1} ({args[position]!r}); give it once.")
      train = _check_train(args[position])
    elif takes:
      kwargs["train"] = (not self.deterministic) if train is None else train
    training = (not self.deterministic) if train is None else train
    variables = to_variables(self)
    mutable = [c for c in variables if c != "params"] if training else []
    out = module.apply(variables, *args, rngs=self._call_rngs(rngs, training), method=method,
                       mutable=mutable or False, **kwargs)
    if not mutable:
      return out
    out, updates = out
    self._write(updates)
    return out

  def _init(self, *args: Any, rngs: Any = None, method: Any = None, **kwargs: Any) -> Any:
    if rngs is None:
      key = self.to_nnx__rngs.params()
    elif _is_key(rngs):
      key = rngs
    elif isinstance(rngs, nnx.Rngs):
      key = rngs.params()
    else:
      raise ValueError(f"rngs={rngs!r} is not allowed in lazy_init; expected None, a key or an nnx.Rngs.")
    out, variables = self.to_nnx__module.init_with_output({"params": key}, *args, method=method, **kwargs)
    self._load(_plain_variables(variables))
    return out

  def _load(self, variables: dict[str, Any]) -> None:
    """Replaces the model's state by Linen `variables` (checked plain dicts)."""
    names = sorted({name for collection in variables.values() for name in collection})
    reserved = [n for n in names if n in _OWN_ATTRIBUTES or n.startswith(("to_nnx__", "_pytree__"))
                or hasattr(type(self), n)]
    if reserved:
      raise ValueError(f"variables named {reserved} cannot be NNX attributes: they are names of "
                       f"{type(self).__name__}'s own attributes; rename those submodules of the Linen module.")
    for name in [n for n in vars(self) if not _is_own(n)]:
      delattr(self, name)
    for name, value in bridge_variables.linen_vars_to_nnx_attrs(variables).items():
      setattr(self, name, nnx.data(value))

  def _call_rngs(self, rngs: Any, training: bool) -> dict[str, jax.Array]:
    if rngs is None:
      if not training:
        return {}
      rngs = self.to_nnx__rngs
    if _is_key(rngs):
      return {"dropout": rngs}
    if isinstance(rngs, nnx.Rngs):
      keys = {name: stream() for name, stream in rngs.items() if name not in ("params", "default")}
      if "dropout" not in keys and "default" in rngs:
        keys["dropout"] = rngs.default()
      return keys
    if isinstance(rngs, Mapping) and all(isinstance(k, str) and _is_key(v) for k, v in rngs.items()):
      return dict(rngs)
    raise ValueError(f"rngs={_short(rngs)} is not allowed; expected None, nnx.Rngs, a key (for 'dropout') or a "
                     "dict {stream name: key}.")

  def _write(self, updates: Mapping[str, Any]) -> None:
    """Writes `apply`'s updated collections into the variables, in place where they exist."""
    current = traversals.flatten_mapping(_state_attributes(self))
    new = {}
    for collection, tree in updates.items():
      for path, value in traversals.flatten_mapping(dict(tree)).items():
        variable = current.get(path)
        if isinstance(variable, nnx.Variable) and nnx.variablelib.variable_name_from_type(
            type(variable), allow_register=True) == collection:
          variable.set_value(value.unbox() if isinstance(value, meta.AxisMetadata) else value)
        else:
          new.setdefault(collection, {})[path] = value
    if new:  # variables the call created: added as `ToNNX` adds them
      attributes = bridge_variables.linen_vars_to_nnx_attrs(
          {c: traversals.unflatten_mapping(flat) for c, flat in new.items()})
      for name, value in attributes.items():
        if isinstance(value, dict) and isinstance(getattr(self, name, None), dict):
          merged = traversals.flatten_mapping(getattr(self, name)) | traversals.flatten_mapping(value)
          value = traversals.unflatten_mapping(merged)
        setattr(self, name, nnx.data(value))


def _is_own(name: str) -> bool:
  return name in _OWN_ATTRIBUTES or name.startswith(("to_nnx__", "_pytree__"))


def _state_attributes(model: nnx.bridge.ToNNX) -> dict[str, Any]:
  return {k: v for k, v in vars(model).items() if not _is_own(k)}


def _train_parameter(module: nn.Module, method: Any) -> tuple[bool, int | None]:
  """Whether the method takes `train` (by name or `**kwargs`), and its positional index after `self`."""
  fn = getattr(type(module), method, None) if isinstance(method, str) else method
  fn = fn if fn is not None else type(module).__call__
  try:
    parameters = list(inspect.signature(fn).parameters.values())
  except (TypeError, ValueError):
    return False, None
  if parameters and parameters[0].name == "self":
    parameters = parameters[1:]
  positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
  positional += getattr(fn, "deprecated_positional", ())  # keyword-only now, still taken positionally
  takes = any(p.name == "train" or p.kind is p.VAR_KEYWORD for p in parameters)
  return takes, positional.index("train") if "train" in positional else None


def from_linen(module: nn.Module, *sample_inputs: Any, rngs: nnx.Rngs | int = 0, **kwargs: Any) -> LinenModule:
  """Initialises a Linen module on sample inputs and returns it as an NNX module.

  Args:
    module: a Linen module, e.g. `jaxcomponents.layers.Dense(10)` or `jaxcomponents.models.MobileNetV2()`.
    *sample_inputs: inputs to initialise with, as for `module.init`.
    rngs: an int seed: the initial variables and dropout keys of
      `TrainState.create(module, tx, x, seed=rngs)` (the init key is the first
      half of `jax.random.split(jax.random.key(rngs))`); or an `nnx.Rngs`,
      whose `params` stream initialises and whose other streams (forked) give
      the dropout keys.
    **kwargs: keyword inputs for the initialising call.

  Raises:
    ValueError: for a bad module, no sample input or a bad `rngs`.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxcomponents.layers import Dense
    >>> model = from_linen(Dense(3), jnp.ones((2, 4)), rngs=0)
    >>> model.dense["kernel"].shape
    (4, 3)
  """
  _check_module(module)
  if not sample_inputs:
    raise ValueError(f"sample_inputs=() is not allowed; expected at least one input to initialise "
                     f"{type(module).__name__} with, e.g. from_linen(module, jnp.ones((1, 28, 28, 1))).")
  model = LinenModule(module, rngs=rngs)
  init_key = rngs.params() if isinstance(rngs, nnx.Rngs) else _seed_keys(rngs)[0]
  nnx.bridge.lazy_init(model, *sample_inputs, rngs=init_key, **kwargs)
  return model


def from_variables(module: nn.Module, variables: Mapping[str, Any], *sample_inputs: Any,
                   rngs: nnx.Rngs | int = 0) -> LinenModule:
  """Returns a Linen module and its variables (`load_keras`, `load_imagenet`, `module.init`) as an NNX module.

  Args:
    module: the Linen module the variables belong to.
    variables: a Linen variables dict, `{"params": ..., "batch_stats": ...}`.
    *sample_inputs: optional inputs, as for `module.init`: when given, the
      variables are checked against the module (missing, unexpected and
      mis-shaped variables are one error) and cast to its dtypes.
    rngs: an int seed (the dropout keys of `TrainState.create(..., seed=rngs)`)
      or an `nnx.Rngs` (forked) for the training calls' keys.

  Raises:
    ValueError: for a bad module, variables that are not a variables dict or
      do not fit the module, or a bad `rngs`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxcomponents.layers import Dense
    >>> layer, x = Dense(3), jnp.ones((2, 4))
    >>> variables = layer.init(jax.random.key(0), x)
    >>> model = from_variables(layer, variables, x)
    >>> bool((model(x) == layer.apply(variables, x)).all())
    True
  """
  model = LinenModule(module, rngs=rngs)
  variables = _plain_variables(variables)
  if sample_inputs:
    variables = _fit(module, variables, sample_inputs)
  model._load(variables)
  return model


def _fit(module: nn.Module, variables: dict[str, Any], sample_inputs: tuple[Any, ...]) -> dict[str, Any]:
  """`variables` checked against the module's (`jaxcomponents.weights`' message) and cast to its dtypes."""
  from jaxcomponents.keras.convert import init_shapes  # pylint: disable=import-outside-toplevel
  from jaxcomponents.variable_trees import fit_to

  shapes, _ = init_shapes(module, sample_inputs)
  flat = traversals.flatten_mapping(variables)
  produced = {path: (meta.unbox(leaf), "variables") for path, leaf in flat.items()}
  fitted = traversals.flatten_mapping(fit_to(meta.unbox(shapes), produced,
                                             f"variables do not fit {type(module).__name__}"))
  return traversals.unflatten_mapping({
      path: flat[path].replace_boxed(value) if isinstance(flat[path], meta.AxisMetadata) else value
      for path, value in fitted.items()})


def to_variables(model: nnx.Module) -> dict[str, Any]:
  """Returns an NNX-wrapped Linen module's variables as a Linen variables dict.

  The result is what `module.apply` takes and what `jaxcomponents.weights.save_npz`
  and `save_keras_h5` save: `{"params": ..., "batch_stats": ...}` holding the
  current values (after NNX training, the trained ones).

  Raises:
    ValueError: if `model` is not a `LinenModule` (or `nnx.bridge.ToNNX`).

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxcomponents.layers import Dense
    >>> variables = to_variables(from_linen(Dense(3), jnp.ones((2, 4))))
    >>> variables["params"]["dense"]["kernel"].shape
    (4, 3)
  """
  if not isinstance(model, nnx.bridge.ToNNX):
    raise ValueError(f"model={type(model).__name__}(...) is not allowed; expected an NNX module built by "
                     "jaxcomponents.nnx.from_linen or from_variables (an nnx.bridge.ToNNX).")
  return bridge_variables.nnx_attrs_to_linen_vars(_state_attributes(model))
