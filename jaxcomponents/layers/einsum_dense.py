"""Keras's `EinsumDense`: a dense layer whose product is an einsum equation.

The weights are Keras's: `kernel`, shaped by the equation's weight term, and
`bias` (with `bias_axes`), shaped over the output from its first bias axis on,
with 1 in the axes that are not bias axes, so it broadcasts from the right.

Example:
  >>> import jax, jax.numpy as jnp
  >>> layer = EinsumDense("abc,cde->abde", output_shape=(None, 2, 4), bias_axes="de")
  >>> variables = layer.init(jax.random.key(0), jnp.ones((1, 5, 3)))
  >>> jax.tree.map(jnp.shape, variables["params"])
  {'bias': (2, 4), 'kernel': (3, 2, 4)}
  >>> layer.apply(variables, jnp.ones((1, 5, 3))).shape
  (1, 5, 2, 4)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomponents import activations, initializers
from jaxcomponents.layers.init_fields import InitializerLike, freeze_configs
from jaxcomponents.layers.precision import PrecisionFields

_FORMS = (  # (pattern, ellipsis side) of the equations Keras accepts
    (re.compile(r"([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)"), None),
    (re.compile(r"\.\.\.([a-zA-Z]+),([a-zA-Z]+)->\.\.\.([a-zA-Z]+)"), "left"),
    (re.compile(r"([a-zA-Z]{2,})\.\.\.,([a-zA-Z]+)->([a-zA-Z]+)\.\.\."), "right"),
)


def einsum_dense_shapes(equation: str, bias_axes: str | None, input_shape: Sequence[int | None],
                        output_shape: int | Sequence[int | None]):
  """The kernel shape, the bias shape (None without `bias_axes`), and the kernel's input and output axes.

  As Keras's `EinsumDense.build` reads them: the kernel's axes that appear in
  the output take their sizes from `output_shape` (the output without the batch
  axis and the axes an ellipsis stands for), the others from the input.

  Raises:
    ValueError: naming the equation, the axis and the sizes that do not fit.

  Example:
    >>> einsum_dense_shapes("...b,bc->...c", "c", (None, 7, 3), 4)
    ((3, 4), (4,), (0,), (1,))
  """
  for pattern, side in _FORMS:
    found = pattern.fullmatch(equation) if isinstance(equation, str) else None
    if found:
      break
  else:
    raise ValueError(f"equation={equation!r} is not allowed; expected the form 'ab,bc->ac', '...ab,bc->...ac' "
                     "or 'ab...,bc->ac...'.")
  input_spec, weight_spec, output_spec = found.groups()
  partial = [output_shape] if isinstance(output_shape, int) else list(output_shape)
  elided = len(input_shape) - len(input_spec)
  if elided < 0 or (side is None and elided):
    raise ValueError(f"equation={equation!r} names {len(input_spec)} input axes; the input has shape "
                     f"{tuple(input_shape)}.")
  expected = len(output_spec) if side == "left" else len(output_spec) - 1
  if len(partial) != expected:
    raise ValueError(f"output_shape={output_shape!r} has {len(partial)} sizes; equation={equation!r} needs "
                     f"{expected} (the output axes but the batch axis and those '...' stands for).")
  # The output's axes, indexed as the output spec names them.
  if side == "left":
    output_sizes = dict(zip(output_spec, partial))
    input_sizes = dict(zip(input_spec, input_shape[elided:]))
  else:
    output_sizes = dict(zip(output_spec, [input_shape[0], *partial]))
    input_sizes = dict(zip(input_spec, input_shape))
  for axis in input_spec:
    if axis in output_sizes and output_sizes[axis] is not None and output_sizes[axis] != input_sizes[axis]:
      raise ValueError(f"output_shape={output_shape!r} gives axis {axis!r} of equation={equation!r} size "
                       f"{output_sizes[axis]}; the input has {input_sizes[axis]} there.")
  for axis in output_spec:
    if axis not in input_spec and axis not in weight_spec:
      raise ValueError(f"equation={equation!r}: output axis {axis!r} is in neither the input nor the kernel.")
  kernel, input_axes, output_axes = [], [], []
  for i, axis in enumerate(weight_spec):
    if axis in output_sizes:
      size = output_sizes[axis]
      output_axes.append(i)
    elif axis in input_sizes:
      size = input_sizes[axis]
      input_axes.append(i)
    else:
      raise ValueError(f"equation={equation!r}: kernel axis {axis!r} is in neither the input nor the output.")
    if size is None:
      raise ValueError(f"equation={equation!r}, output_shape={output_shape!r}: the size of kernel axis {axis!r} "
                       "is unknown; give it in output_shape.")
    kernel.append(size)
  bias = None
  if bias_axes is not None:
    if not isinstance(bias_axes, str) or not bias_axes or any(a not in output_spec for a in bias_axes):
      raise ValueError(f"bias_axes={bias_axes!r} is not allowed; expected axes of the output {output_spec!r} "
                       f"of equation={equation!r}.")
    first = min(output_spec.index(a) for a in bias_axes)
    bias = [output_sizes[a] if a in bias_axes else 1 for a in output_spec[first:]]
    if side != "left":
      bias += [1] * elided
    if None in bias:
      raise ValueError(f"bias_axes={bias_axes!r}: the size of a bias axis is unknown; give it in output_shape.")
  return tuple(kernel), None if bias is None else tuple(bias), tuple(input_axes), tuple(output_axes)


class EinsumDense(PrecisionFields):
  """`einsum(equation, x, kernel)`, plus a bias over `bias_axes`, then the activation, as Keras's `EinsumDense`.

  Attributes:
    equation: `'ab,bc->ac'`, `'...ab,bc->...ac'` or `'ab...,bc->ac...'`: input, kernel and output axes.
    output_shape: the output's sizes but the batch axis and the axes of `...` (None where the input gives it).
    activation: a Keras activation name, a callable or None (linear).
    bias_axes: the output axes with a bias (a string of the equation's letters), or None (no bias).
    kernel_init, bias_init: Keras's `kernel_initializer` and `bias_initializer`: a Keras name, config or
      initializer object, or a Flax initializer (`jaxcomponents.initializers.get`); a variance-scaling one counts
      its fans over the kernel's input and output axes, as Keras's (defaults: `glorot_uniform`, `zeros`; None:
      `glorot_uniform`, as Keras's `add_weight` given none).
    dtype, param_dtype, precision: keyword-only; see `jaxcomponents.layers.precision`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> layer = EinsumDense("ab,bc->ac", output_shape=4, bias_axes="c", activation="relu")
    >>> variables = layer.init(jax.random.key(0), jnp.ones((2, 3)))
    >>> layer.apply(variables, jnp.ones((2, 3))).shape
    (2, 4)
  """

  equation: str
  output_shape: int | Sequence[int | None]
  activation: str | activations.Activation | None = None
  bias_axes: str | None = None
  kernel_init: InitializerLike | None = "glorot_uniform"
  bias_init: InitializerLike | None = "zeros"

  def __post_init__(self):
    freeze_configs(self, ("kernel_init", "bias_init"))
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    act = activations.get(self.activation)
    kernel_shape, bias_shape, input_axes, output_axes = einsum_dense_shapes(
        self.equation, self.bias_axes, x.shape, self.output_shape)
    kernel_init = initializers.get(self.kernel_init, "kernel_init", fan_axes=(input_axes, output_axes))
    kernel = self.param("kernel", kernel_init, kernel_shape, self.param_dtype)
    bias = None
    if bias_shape is not None:
      bias = self.param("bias", initializers.get(self.bias_init, "bias_init"), bias_shape, self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = jnp.einsum(self.equation, x, kernel, precision=self.precision)
    if bias is not None:
      y = y + bias
    return act(y)


__all__ = ["EinsumDense", "einsum_dense_shapes"]
