"""The convolutions whose CPU formulations are checked against the plain XLA path (tests/test_ops_cpu.py).

`compute(name)` traces the case afresh, so the path is whatever
`JAXCOMPONENTS_FAST_CPU` says when it is called.
"""

from __future__ import annotations

import jax
import numpy as np

from jaxcomponents.layers import Convolution
from jaxcomponents.tree_paths import path_string

CASES = {
    f"{kind}_{dims}d_{padding}_s{strides}_d{dilation}": dict(kind=kind, dims=dims, padding=padding, strides=strides,
                                                             kernel_dilation=dilation)
    for kind, dims_list in (("conv", (1, 2, 3)), ("transpose", (1, 2, 3)), ("separable", (1, 2)),
                            ("depthwise", (1, 2)))
    for dims in dims_list
    for padding in ("SAME", "VALID") + (("CAUSAL",) if dims == 1 and kind != "transpose" else ())
    for strides, dilation in ((1, 1), (2, 1), (1, 2))
    if not (dims == 3 and dilation == 2)
}
# Windows larger than their input (VGG16's and ResNet50's last blocks at small sizes): the im2col path, or oneDNN.
CASES.update({f"conv_2d_small_{h}x{w}_{padding}_d{dilation}": dict(kind="conv", dims=2, padding=padding, strides=1,
                                                                   kernel_dilation=dilation, spatial=(h, w))
              for h, w in ((2, 2), (1, 3)) for padding in ("SAME",) for dilation in (1, 2)})
# Feature groups, depth multipliers, an output padding (its transposed convolution has no oneDNN form: the padding of
# the convolution it transposes would be negative) and bfloat16.
CASES.update({
    "conv_2d_SAME_s1_d1_groups4": dict(kind="conv", dims=2, padding="SAME", feature_group_count=4),
    "depthwise_2d_SAME_s2_d1_m2": dict(kind="depthwise", dims=2, padding="SAME", strides=2, depth_multiplier=2),
    "separable_1d_VALID_s1_d2_m3": dict(kind="separable", dims=1, padding="VALID", kernel_dilation=2,
                                          depth_multiplier=3),
    "transpose_2d_VALID_s2_d1_op1": dict(kind="transpose", dims=2, padding="VALID", strides=2, output_padding=1),
    "conv_2d_SAME_s2_d1_bf16": dict(kind="conv", dims=2, padding="SAME", strides=2, dtype="bfloat16"),
    "depthwise_2d_VALID_s1_d1_bf16": dict(kind="depthwise", dims=2, padding="VALID", dtype="bfloat16"),
    "transpose_2d_SAME_s2_d1_bf16": dict(kind="transpose", dims=2, padding="SAME", strides=2, dtype="bfloat16"),
})
# What oneDNN computes (tests/test_ops_cpu.py lowers its size thresholds): every plain convolution (but a dilated
# window reaching across half its input or more, which stays with XLA: `conv._onednn_geometry`), the transposed
# ones (its deconvolution), the depthwise ones over 2 axes (grouped), and the depthwise (2-D) and 1x1 pointwise
# convolutions inside separable ones.
ONEDNN_CASES = sorted([name for name in CASES if name.startswith("conv_") and not
                       (name.startswith("conv_2d_small_") and name.endswith("_d2"))] + [
    "transpose_1d_SAME_s2_d1", "transpose_2d_VALID_s2_d1", "transpose_2d_SAME_s1_d2", "transpose_3d_SAME_s2_d1",
    "transpose_1d_VALID_s1_d1", "transpose_2d_VALID_s2_d1_op1", "transpose_2d_SAME_s2_d1_bf16",
    "depthwise_2d_SAME_s2_d1", "depthwise_2d_VALID_s1_d2", "depthwise_2d_SAME_s2_d1_m2",
    "depthwise_2d_VALID_s1_d1_bf16", "separable_1d_SAME_s2_d1", "separable_2d_VALID_s1_d2",
    "separable_1d_VALID_s1_d2_m3"])


def compute(name: str, float32_reference: bool = False) -> dict[str, np.ndarray]:
  """Forward output, input gradient and parameter gradients of one case.

  `float32_reference`: a bfloat16 case computed in float32 from the same
  (bfloat16-rounded) inputs, parameters and output gradient.
  """
  case = dict(CASES[name])
  spatial = case.pop("spatial", {1: (13,), 2: (11, 10), 3: (7, 6, 7)}[case["dims"]])
  dtype = case.pop("dtype", "float32")
  rounded = (lambda v: v.astype(dtype).astype("float32")) if float32_reference else (lambda v: v.astype(dtype))
  # 32 channels: jaxlib 0.10 hands only convolutions with more than 16 to YNNPACK.
  features = None if case["kind"] == "depthwise" else 32
  layer = Convolution(features, 3, **case)
  x = rounded(jax.random.normal(jax.random.key(0), (2, *spatial, 32)))
  variables = jax.tree.map(rounded, layer.init(jax.random.key(1), x))
  y = layer.apply(variables, x)
  g = rounded(jax.random.normal(jax.random.key(2), y.shape))

  @jax.jit
  def forward_and_gradients(variables, x):
    y, vjp = jax.vjp(lambda v, x: layer.apply(v, x), variables, x)
    dvariables, dx = vjp(g)
    return y, dx, dvariables

  compiled = forward_and_gradients.lower(variables, x).compile()
  y, dx, dvariables = compiled(variables, x)
  hlo = compiled.as_text()
  out = {"y": np.asarray(y, np.float32), "dx": np.asarray(dx, np.float32),
         "convolutions": np.asarray(hlo.count(" convolution(")),
         "onednn": np.asarray(hlo.count('custom_call_target="jc_onednn_conv'))}
  out.update({f"d/{path_string(path)}": np.asarray(leaf, np.float32)
              for path, leaf in jax.tree_util.tree_flatten_with_path(dvariables["params"])[0]})
  return out
