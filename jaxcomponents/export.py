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
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.extend.core as jex_core
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import source_info_util

from jaxcomponents import extras, files
from jaxcomponents.errors import check_choice
from jaxcomponents.ops import platform
from jaxcomponents.inference import apply_inference

FORMATS = ("stablehlo", "onnx", "saved_model")
BATCH = ("symbolic", "fixed")
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
BATCH_SYMBOL = "batch"
SAVED_MODEL = files.folder_with("saved_model.pb", "a SavedModel folder",
                                ("saved_model.pbtxt", "variables", "assets", "assets.extra", "fingerprint.pb"))


def export(module: nn.Module, variables: Mapping[str, Any], sample_input: Any, path: str | os.PathLike, *,
           format: str = "stablehlo", batch: str = "symbolic", platforms: Sequence[str] | None = None,
           overwrite: bool = False) -> str:
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
      or any ONNX runtime. Operations ONNX cannot hold (callbacks into Python,
      Fourier transforms and other complex arithmetic) are refused before
      anything is written, and the written model is loaded in ONNX Runtime
      (or, without it, checked by `onnx.checker`) before it takes `path`.
    "saved_model": a TensorFlow SavedModel directory with a `serving_default`
      signature (`jax2tf`); needs TensorFlow, which jaxcomponents does not install.

  Args:
    module: a Flax Linen module.
    variables: its variables, `{"params": ..., "batch_stats": ...}`.
    sample_input: an input array, or a tuple of arrays for a module called with
      several; gives the shapes and dtypes (its values are not used).
    path: the file to write (a folder for "saved_model"). It is written beside
      and renamed into place when complete (`jaxcomponents.files.write_beside`):
      a failed export leaves nothing at `path` and no temporary file.
    format: "stablehlo", "onnx" or "saved_model".
    batch: "symbolic": the leading dimension of every input is one symbolic
      size, `batch`, shared by all inputs; "fixed": the sample's shapes exactly.
    platforms: "stablehlo" only: the platforms the file runs on, any of "cpu", "cuda", "rocm" and "tpu"
      (`jax.export`'s multi-platform lowering, made on any machine, no accelerator needed); None: this
      process's default backend.
    overwrite: replace an existing export at `path` (a file; for "saved_model",
      a folder holding saved_model.pb). A folder holding anything else, or any
      folder where a file is to go, is never replaced.

  Returns:
    `path`, as a string.

  Raises:
    ValueError: for an argument not allowed, naming it, its value and what is
      allowed; for an operation the format cannot hold, naming it and the format.
    FileExistsError: `path` exists and `overwrite` is False, or it is not an
      export of this format (checked before tracing; nothing is written).
    ModuleNotFoundError: when the format's dependency is missing, naming what to install.

  Example:
    export(model, variables, x[:1], "model.onnx", format="onnx")
    outputs = load_onnx("model.onnx")(x)  # any batch size
    export(model, trained, x[:1], "model.onnx", format="onnx", overwrite=True)  # replaces it
  """
  check_choice("format", format, FORMATS)
  check_choice("batch", batch, BATCH)
  platforms = check_platforms(platforms, format)
  if not isinstance(module, nn.Module):
    raise ValueError(f"module={type(module).__name__} is not allowed; expected a flax.linen.Module.")
  if not isinstance(variables, Mapping):
    raise ValueError(f"variables={type(variables).__name__} is not allowed; expected the module's variables, "
                     "a mapping such as {'params': ..., 'batch_stats': ...}.")
  if not isinstance(path, (str, os.PathLike)):
    raise ValueError(f"path={path!r} is not allowed; expected a str or os.PathLike.")
  inputs = _inputs(sample_input, batch)
  path = os.fspath(path)
  kind = SAVED_MODEL if format == "saved_model" else files.FILE
  files.check_target(path, kind, overwrite=overwrite)  # before minutes of tracing

  def forward(*xs):
    return apply_inference(module.apply, variables, *xs)

  def write_into_place(write: Callable[[str], object]) -> None:
    files.write_beside(path, write, kind, overwrite=overwrite)

  if format == "stablehlo":
    _write_stablehlo(forward, inputs, write_into_place, platforms=platforms)
  else:
    writer = {"onnx": _write_onnx, "saved_model": _write_saved_model}[format]
    writer(forward, inputs, batch, write_into_place, name=type(module).__name__)
  return path


def check_platforms(platforms: Sequence[str] | None, format: str = "stablehlo") -> tuple[str, ...] | None:
  """`platforms` as a tuple (None stays None), else `ValueError` naming the value and what is allowed."""
  if platforms is None:
    return None
  if format != "stablehlo":
    raise ValueError(f"platforms={platforms!r} is not allowed with format={format!r}; only a StableHLO export "
                     "holds several platforms (format='stablehlo').")
  given = (platforms,) if isinstance(platforms, str) else tuple(platforms) if isinstance(platforms, Sequence) else ()
  if not given or len(set(given)) != len(given) or any(p not in PLATFORMS for p in given):
    raise ValueError(f"platforms={platforms!r} is not allowed; expected a non-empty list of distinct platforms "
                     f"from {', '.join(PLATFORMS)}.")
  return given


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


def _bytes_writer(data: bytes) -> Callable[[str], None]:
  def write(target: str) -> None:
    with open(target, "wb") as f:
      f.write(data)

  return write


# StableHLO ----------------------------------------------------------------------------------------------------------

def _write_stablehlo(forward, inputs, write_into_place, *, platforms):
  extras.require("flatbuffers", "export", "serialising a StableHLO export")
  with platform.portable():
    exported = jax.export.export(jax.jit(forward), platforms=platforms)(*inputs)
  write_into_place(_bytes_writer(exported.serialize()))


# ONNX ---------------------------------------------------------------------------------------------------------------

# Primitives an ONNX file cannot hold: why, and what to do instead. jax2onnx converts some of them into models ONNX
# Runtime refuses to load (a Fourier transform) or fails inside its C++ code (a callback).
_CALLBACK = "a call back into Python, which a file cannot make; compute it with JAX operations instead"
_COMPLEX = "in complex numbers, which ONNX Runtime does not run; export it as format='stablehlo' instead"
_NOT_IN_ONNX = {
    "pure_callback": _CALLBACK,
    "io_callback": _CALLBACK,
    "debug_callback": "a call back into Python (jax.debug), which a file cannot make; remove it",
    "ffi_call": "a call into a native library, which a file cannot make; export it as format='stablehlo' instead",
    "fft": f"a Fourier transform, {_COMPLEX}",
}
_NO_PLUGIN = re.compile(r"No plugins registered for primitive '([^']+)'")


def _write_onnx(forward, inputs, batch, write_into_place, *, name):
  del batch
  jax2onnx = extras.require("jax2onnx", "export", "an ONNX export")
  inputs = tuple(jax.ShapeDtypeStruct(x.shape, jnp.float32 if jnp.issubdtype(x.dtype, jnp.floating) else x.dtype)
                 for x in inputs)
  with platform.plain():  # no `lax.platform_dependent`, which has no ONNX equivalent
    closed = jax.make_jaxpr(forward)(*inputs)
  _refuse_what_onnx_cannot_hold(closed.jaxpr, name)
  try:
    model = jax2onnx.to_onnx(_onnx_replay(closed), inputs, model_name=name)
  except NotImplementedError as error:
    missing = _NO_PLUGIN.search(str(error))
    if missing is None:
      raise
    raise ValueError(f"format='onnx' cannot hold {name}: jax2onnx has no conversion for its primitive "
                     f"{missing.group(1)!r}; export it as format='stablehlo' (nothing was written).") from error
  write_into_place(_verified_onnx_writer(model.SerializeToString(), name))


def _refuse_what_onnx_cannot_hold(jaxpr: jex_core.Jaxpr, name: str) -> None:
  """Raises ValueError, naming the primitive and where it is called, for one ONNX cannot hold."""
  equations = list(_equations(jaxpr))
  refused = [(eqn, _NOT_IN_ONNX[eqn.primitive.name]) for eqn in equations if eqn.primitive.name in _NOT_IN_ONNX]
  refused += [(eqn, f"it computes {_COMPLEX}") for eqn in equations
              if any(jnp.issubdtype(getattr(v.aval, "dtype", np.float32), jnp.complexfloating) for v in eqn.outvars)]
  if refused:
    eqn, reason = refused[0]
    where = source_info_util.summarize(eqn.source_info)
    raise ValueError(f"format='onnx' cannot hold primitive {eqn.primitive.name!r} of {name}"
                     f"{f' (at {where})' if where else ''}: {reason} (nothing was written).")


def _equations(jaxpr: jex_core.Jaxpr):
  """Every equation of `jaxpr` and of the computations it calls (loop bodies, branches, `jit`)."""
  for eqn in jaxpr.eqns:
    yield eqn
    for inner in jex_core.jaxprs_in_params(eqn.params):
      yield from _equations(inner)


def _verified_onnx_writer(data: bytes, name: str) -> Callable[[str], None]:
  """Writes `data`, then loads it in ONNX Runtime (without it: `onnx.checker`) and raises if that fails."""

  def write(target: str) -> None:
    _bytes_writer(data)(target)
    try:
      import onnxruntime  # pylint: disable=import-outside-toplevel
    except ImportError:
      onnxruntime = None
    try:
      if onnxruntime is not None:
        checker = f"ONNX Runtime {onnxruntime.__version__}"
        onnxruntime.InferenceSession(target, providers=["CPUExecutionProvider"])
      else:
        import onnx  # pylint: disable=import-outside-toplevel
        checker = f"onnx.checker {onnx.__version__}"
        onnx.checker.check_model(target, full_check=True)
    except Exception as error:  # ONNX Runtime and onnx raise their own exception types
      detail = " ".join(str(error).replace(target, os.path.basename(target)).split())
      raise ValueError(f"format='onnx': the model jax2onnx made of {name} is refused by {checker} ({detail}); "
                       "export it as format='stablehlo' (nothing was written).") from error

  return write


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

def _write_saved_model(forward, inputs, batch, write_into_place, *, name):
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
    write_into_place(lambda target: tf.saved_model.save(saved, target, signatures={"serving_default": concrete}))
