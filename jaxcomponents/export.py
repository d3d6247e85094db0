"""A module with its variables as a file that runs without jaxcomponents: StableHLO, ONNX or a SavedModel.

`export` bakes the variables into the computation (a function of the inputs
only, in inference mode) and, by default, leaves the leading (batch) dimension
of every input symbolic, so the file runs at any batch size. `load_stablehlo`
and `load_onnx` read the first two back; TensorFlow loads a SavedModel with
`tf.saved_model.load`.

Example:
  >>> import os, tempfile, jax, jax.numpy as jnp
  >>> from jaxcomponents.layers import Dense
  >>> model = Dense(2)
  >>> variables = model.init(jax.random.key(0), jnp.ones((4, 3)))
  >>> with tempfile.TemporaryDirectory() as folder:
  ...   path = export(model, variables, jnp.ones((4, 3)), os.path.join(folder, "dense.stablehlo"))
  ...   load_stablehlo(path)(jnp.ones((5, 3))).shape
  (5, 2)
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.extend.core as jex_core
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcomponents import extras
from jaxcomponents.errors import check_choice
from jaxcomponents.ops import platform
from jaxcomponents.training.predict import apply_inference

FORMATS = ("stablehlo", "onnx", "saved_model")
BATCH = ("symbolic", "fixed")
BATCH_SYMBOL = "batch"


def export(module: nn.Module, variables: Mapping[str, Any], sample_input: Any, path: str | os.PathLike, *,
           format: str = "stablehlo", batch: str = "symbolic") -> str:
  """Writes `module` with `variables`, called in inference mode, as a file in `format`; returns its path.

  The file computes `module.apply(variables, *inputs, train=False)` (without
  `train` for a module that takes none) from the inputs alone. Only XLA's
  operations are traced (`jaxcomponents.ops.platform.portable()`), never a call
  into jaxcomponents' native library, so the file runs where the library is absent.

  Formats:
    "stablehlo": `jax.export`'s serialised computation, for `load_stablehlo`
      (or `jax.export.deserialize`).
    "onnx": an ONNX model through jax2onnx, floating inputs in float32, traced
      with XLA's reference formulations (`platform.plain()`); for `load_onnx`
      or any ONNX runtime.
    "saved_model": a TensorFlow SavedModel directory with a `serving_default`
      signature (`jax2tf`); needs TensorFlow, which jaxcomponents does not install.

  Args:
    module: a Flax Linen module.
    variables: its variables, `{"params": ..., "batch_stats": ...}`.
    sample_input: an input array, or a tuple of arrays for a module called with
      several; gives the shapes and dtypes (its values are not used).
    path: the file to write (a directory for "saved_model"); replaced when
      complete, so a failed export leaves no half-written file.
    format: "stablehlo", "onnx" or "saved_model".
    batch: "symbolic": the leading dimension of every input is one symbolic
      size, `batch`, shared by all inputs; "fixed": the sample's shapes exactly.

  Returns:
    `path`, as a string.

  Raises:
    ValueError: for an argument not allowed, naming it, its value and what is allowed.
    ModuleNotFoundError: when the format's dependency is missing, naming what to install.

  Example:
    export(model, variables, x[:1], "model.onnx", format="onnx")
    outputs = load_onnx("model.onnx")(x)  # any batch size
  """
  check_choice("format", format, FORMATS)
  check_choice("batch", batch, BATCH)
  if not isinstance(module, nn.Module):
    raise ValueError(f"module={type(module).__name__} is not allowed; expected a flax.linen.Module.")
  if not isinstance(variables, Mapping):
    raise ValueError(f"variables={type(variables).__name__} is not allowed; expected the module's variables, "
                     "a mapping such as {'params': ..., 'batch_stats': ...}.")
  if not isinstance(path, (str, os.PathLike)):
    raise ValueError(f"path={path!r} is not allowed; expected a str or os.PathLike.")
  inputs = _inputs(sample_input, batch)
  path = os.fspath(path)

  def forward(*xs):
    return apply_inference(module.apply, variables, *xs)

  writer = {"stablehlo": _write_stablehlo, "onnx": _write_onnx, "saved_model": _write_saved_model}[format]
  writer(forward, inputs, batch, path, name=type(module).__name__)
  return path


def load_stablehlo(path: str | os.PathLike) -> Callable[..., Any]:
  """The computation `export(..., format="stablehlo")` wrote, as a function of the inputs (`Exported.call`).

  Example:
    forward = load_stablehlo("model.stablehlo")
    y = forward(x)  # any batch size if exported with batch="symbolic"
  """
  extras.require("flatbuffers", "export", "reading a StableHLO export")
  with open(os.fspath(path), "rb") as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  return exported.call


def load_onnx(path: str | os.PathLike) -> Callable[..., Any]:
  """The ONNX model at `path` in ONNX Runtime (CPU), as a function of its inputs that returns NumPy arrays.

  Inputs are converted to the dtypes the model declares. The function returns
  the one output, or a tuple when the model has several.

  Example:
    forward = load_onnx("model.onnx")
    y = forward(x)
  """
  ort = extras.require("onnxruntime", "export", "running an ONNX model")
  session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
  declared = session.get_inputs()

  def forward(*inputs):
    if len(inputs) != len(declared):
      raise ValueError(f"{len(inputs)} inputs given; the model at {os.fspath(path)!r} takes {len(declared)} "
                       f"({', '.join(i.name for i in declared)}).")
    feeds = {i.name: np.asarray(x, dtype=_ORT_DTYPES.get(i.type)) for i, x in zip(declared, inputs)}
    outputs = session.run(None, feeds)
    return outputs[0] if len(outputs) == 1 else tuple(outputs)

  return forward


_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
               "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_}


def _inputs(sample_input: Any, batch: str) -> tuple[jax.ShapeDtypeStruct, ...]:
  """The inputs' shapes and dtypes, the leading dimension one shared symbol when `batch` is "symbolic"."""
  samples = tuple(sample_input) if isinstance(sample_input, (tuple, list)) else (sample_input,)
  if not samples or not all(hasattr(x, "shape") and hasattr(x, "dtype") for x in samples):
    raise ValueError(f"sample_input={_describe(sample_input)} is not allowed; expected an array or a non-empty "
                     "tuple of arrays, as the module is called with.")
  if batch == "symbolic" and any(len(x.shape) == 0 for x in samples):
    raise ValueError(f"sample_input={_describe(sample_input)} is not allowed with batch='symbolic': every input "
                     "needs a leading (batch) dimension; or pass batch='fixed'.")
  (symbol,) = jax.export.symbolic_shape(BATCH_SYMBOL) if batch == "symbolic" else (None,)
  return tuple(jax.ShapeDtypeStruct((symbol, *x.shape[1:]) if symbol is not None else tuple(x.shape),
                                    jax.dtypes.canonicalize_dtype(x.dtype)) for x in samples)


def _describe(value: Any) -> str:
  if isinstance(value, (tuple, list)):
    return "(" + ", ".join(_describe(v) for v in value) + ")"
  if hasattr(value, "shape") and hasattr(value, "dtype"):
    return f"{type(value).__name__}(shape={tuple(value.shape)}, dtype={value.dtype})"
  return repr(value)


def _write_atomically(path: str, write: Callable[[str], None]) -> None:
  """`write(path + ".partial")`, then that file (or directory) replaces `path`."""
  partial = f"{path}.partial"
  _remove(partial)
  try:
    write(partial)
    if os.path.isdir(partial) and os.path.isdir(path):  # a directory cannot replace a non-empty one
      old = f"{path}.replaced"
      _remove(old)
      os.replace(path, old)
      os.replace(partial, path)
      _remove(old)
    else:
      os.replace(partial, path)
  finally:
    _remove(partial)


def _remove(path: str) -> None:
  if os.path.isdir(path) and not os.path.islink(path):
    shutil.rmtree(path)
  elif os.path.lexists(path):
    os.remove(path)


def _write_bytes(path: str, data: bytes) -> None:
  def write(target):
    with open(target, "wb") as f:
      f.write(data)

  _write_atomically(path, write)


# StableHLO ----------------------------------------------------------------------------------------------------------

def _write_stablehlo(forward, inputs, batch, path, *, name):
  del batch, name  # in `inputs`; jax.export names nothing
  extras.require("flatbuffers", "export", "serialising a StableHLO export")
  with platform.portable():
    exported = jax.export.export(jax.jit(forward))(*inputs)
  _write_bytes(path, exported.serialize())


# ONNX ---------------------------------------------------------------------------------------------------------------

def _write_onnx(forward, inputs, batch, path, *, name):
  del batch
  jax2onnx = extras.require("jax2onnx", "export", "an ONNX export")
  inputs = tuple(jax.ShapeDtypeStruct(x.shape, jnp.float32 if jnp.issubdtype(x.dtype, jnp.floating) else x.dtype)
                 for x in inputs)
  with platform.plain():  # no `lax.platform_dependent`, which has no ONNX equivalent
    closed = jax.make_jaxpr(forward)(*inputs)
  model = jax2onnx.to_onnx(_onnx_replay(closed), inputs, model_name=name)
  _write_bytes(path, model.SerializeToString())


def _onnx_replay(closed: jex_core.ClosedJaxpr) -> Callable[..., Any]:
  """The computation JAX traced, as a function that binds its operations again, for jax2onnx to convert.

  jax2onnx converts the operations of this replay, not the module's Python
  code: while tracing it replaces functions such as `jnp.shape` (whose
  replacement returns an array, which `flax.linen.scan` cannot take as a shape)
  and `flax.linen.avg_pool` (keyword arguments only). Two operations are
  rewritten into equal ones that convert (jax2onnx 0.17, ONNX Runtime 1.32):

  - max pooling over a rank-4 array (`reduce_window_max`) becomes ONNX
    `MaxPool` over all four axes, which ONNX Runtime does not run (it pools
    1 to 3 axes): the axes with a window of 1 are merged into one.
  - `lax.pad` of an array with a symbolic dimension fails in jax2onnx's
    conversion: it becomes a concatenation with the padding value.

  Calls (`jit`, custom derivatives) are inlined, so the rewrites reach inside;
  loops (`scan`) and their bodies are converted as traced.
  """

  def evaluate(jaxpr, consts, args):
    env = {}

    def read(var):
      return var.val if isinstance(var, jex_core.Literal) else env[var]

    env.update(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    for eqn in jaxpr.eqns:
      values = [read(v) for v in eqn.invars]
      inner = _inlined_jaxpr(eqn)
      if inner is not None:
        outs = evaluate(inner.jaxpr, inner.consts, values)
      elif eqn.primitive is lax.reduce_window_max_p:
        outs = [_max_pool_over_few_axes(*values, **eqn.params)]
      elif eqn.primitive is lax.pad_p:
        outs = [_pad_by_concatenation(*values, **eqn.params)]
      else:
        out = eqn.primitive.bind(*values, **eqn.primitive.get_bind_params(eqn.params))
        outs = out if eqn.primitive.multiple_results else [out]
      for var, value in zip(eqn.outvars, outs):
        if not isinstance(var, jex_core.DropVar):
          env[var] = value
    return [read(v) for v in jaxpr.outvars]

  def replay(*args):
    outputs = evaluate(closed.jaxpr, closed.consts, args)
    return outputs[0] if len(outputs) == 1 else tuple(outputs)

  return replay


def _inlined_jaxpr(eqn) -> jex_core.ClosedJaxpr | None:
  """The called computation of a `jit` or custom-derivative call (its forward pass), else None."""
  key = {"jit": "jaxpr", "pjit": "jaxpr", "custom_jvp_call": "call_jaxpr", "custom_vjp_call": "call_jaxpr"}
  inner = eqn.params.get(key.get(eqn.primitive.name, ""))
  return inner if isinstance(inner, jex_core.ClosedJaxpr) else None


def _max_pool_over_few_axes(x, *, window_dimensions: Sequence[int], window_strides: Sequence[int],
                            padding: Sequence[tuple[int, int]], base_dilation: Sequence[int],
                            window_dilation: Sequence[int]):
  """`reduce_window_max` with the axes it does not pool (window, stride 1, no padding) merged into one."""
  params = dict(window_dimensions=tuple(window_dimensions), window_strides=tuple(window_strides),
                padding=tuple(tuple(p) for p in padding), base_dilation=tuple(base_dilation),
                window_dilation=tuple(window_dilation))
  per_axis = list(zip(*params.values()))
  pooled = [a for a, (w, s, p, b, d) in enumerate(per_axis) if (w, s, p, b, d) != (1, 1, (0, 0), 1, 1)]
  kept = [a for a in range(x.ndim) if a not in pooled]
  if x.ndim <= 3 or len(pooled) > 2 or not kept:
    return lax.reduce_window_max_p.bind(x, **params)
  order = kept + pooled
  moved = lax.transpose(x, order)
  kept_shape = moved.shape[:len(kept)]
  merged = moved.reshape(math.prod(kept_shape), *moved.shape[len(kept):])
  merged_params = {k: (v[kept[0]], *(v[a] for a in pooled)) for k, v in params.items()}
  y = lax.reduce_window_max_p.bind(merged, **merged_params)
  return lax.transpose(y.reshape(*kept_shape, *y.shape[1:]), np.argsort(order).tolist())


def _pad_by_concatenation(x, value, *, padding_config: Sequence[tuple[int, int, int]]):
  """`lax.pad` as concatenation with the padding value, for shapes with a symbolic dimension."""
  if platform.static_shape(tuple(x.shape)) or any(i != 0 or lo < 0 or hi < 0 for lo, hi, i in padding_config):
    return lax.pad(x, value, padding_config)
  for axis, (lo, hi, _) in enumerate(padding_config):
    before, after = ([lax.broadcast_in_dim(value, (*x.shape[:axis], int(n), *x.shape[axis + 1:]), ())] if n else []
                     for n in (lo, hi))
    if before or after:
      x = lax.concatenate([*before, x, *after], axis)
  return x


# SavedModel ---------------------------------------------------------------------------------------------------------

def _write_saved_model(forward, inputs, batch, path, *, name):
  tf = extras.require("tensorflow", None, "a TensorFlow SavedModel export", package="tensorflow-cpu")
  from jax.experimental import jax2tf  # pylint: disable=import-outside-toplevel  # imports TensorFlow

  shapes = None
  if batch == "symbolic":
    shapes = [f"({', '.join([BATCH_SYMBOL, *map(str, x.shape[1:])])})" for x in inputs]
  with platform.portable():
    converted = jax2tf.convert(forward, polymorphic_shapes=shapes, with_gradient=False)
    signature = [tf.TensorSpec((None, *x.shape[1:]) if batch == "symbolic" else x.shape,
                               tf.as_dtype(np.dtype(x.dtype)), name=f"input_{i}" if len(inputs) > 1 else "input")
                 for i, x in enumerate(inputs)]
    saved = tf.Module(name=name)
    saved.serve = tf.function(converted, autograph=False, input_signature=signature)
    concrete = saved.serve.get_concrete_function()  # traces (and lowers) the computation here
    _write_atomically(path, lambda target: tf.saved_model.save(saved, target,
                                                                signatures={"serving_default": concrete}))
