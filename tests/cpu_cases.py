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
                                                             dilation=dilation)
    for kind, dims_list in (("conv", (1, 2, 3)), ("transpose", (1, 2, 3)), ("separable", (1, 2)),
                            ("depthwise", (1, 2)))
    for dims in dims_list
    for padding in ("SAME", "VALID") + (("CAUSAL",) if dims == 1 and kind != "transpose" else ())
    for strides, dilation in ((1, 1), (2, 1), (1, 2))
    if not (dims == 3 and dilation == 2)
}
# Windows larger than their input (VGG16's and ResNet50's last blocks at small sizes): the im2col path, or oneDNN.
CASES.update({f"conv_2d_small_{h}x{w}_{padding}_d{dilation}": dict(kind="conv", dims=2, padding=padding, strides=1,
                                                                   dilation=dilation, spatial=(h, w))
              for h, w in ((2, 2), (1, 3)) for padding in ("SAME",) for dilation in (1, 2)})
# What oneDNN computes (tests/test_ops_cpu.py lowers its size threshold): every plain convolution, and the plain
# convolutions inside transposed (stride 1 after the zeros are written out) and separable (1x1 pointwise) ones.
ONEDNN_CASES = sorted([name for name in CASES if name.startswith("conv_")] + [
    "transpose_1d_SAME_s2_d1", "transpose_2d_VALID_s2_d1", "transpose_2d_SAME_s1_d2", "transpose_3d_SAME_s2_d1",
    "separable_1d_SAME_s2_d1", "separable_2d_VALID_s1_d2"])


def compute(name: str) -> dict[str, np.ndarray]:
  """Forward output, input gradient and parameter gradients of one case."""
  case = dict(CASES[name])
  spatial = case.pop("spatial", {1: (13,), 2: (11, 10), 3: (7, 6, 7)}[case["dims"]])
  # 32 channels: jaxlib 0.10 hands only convolutions with more than 16 to YNNPACK.
  features = None if case["kind"] == "depthwise" else 32
  layer = Convolution(features, 3, **case)
  x = jax.random.normal(jax.random.key(0), (2, *spatial, 32))
  variables = layer.init(jax.random.key(1), x)
  y = layer.apply(variables, x)
  g = jax.random.normal(jax.random.key(2), y.shape)

  @jax.jit
  def forward_and_gradients(variables, x):
    y, vjp = jax.vjp(lambda v, x: layer.apply(v, x), variables, x)
    dvariables, dx = vjp(g)
    return y, dx, dvariables

  compiled = forward_and_gradients.lower(variables, x).compile()
  y, dx, dvariables = compiled(variables, x)
  hlo = compiled.as_text()
  out = {"y": np.asarray(y), "dx": np.asarray(dx), "convolutions": np.asarray(hlo.count(" convolution(")),
         "onednn": np.asarray(hlo.count('custom_call_target="jc_onednn_conv'))}
  out.update({f"d/{path_string(path)}": np.asarray(leaf)
              for path, leaf in jax.tree_util.tree_flatten_with_path(dvariables["params"])[0]})
  return out
