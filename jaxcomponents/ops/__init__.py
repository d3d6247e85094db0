"""The numerics below the layers: each operation with its plain XLA reference and its CPU formulations.

* `platform`: `on_cpu(fast, plain, ...)` picks a formulation when a computation
  is lowered; `portable()` keeps native calls out of serialised computations,
  `plain()` traces XLA's reference operations only (for ONNX).
* `conv`, `pooling`: convolutions and pooling as Keras computes them.
* `random`: dropout masks with JAX's bits, without the CPU's looped Threefry.
* `window_taps`: sliding windows as strided slices.
* `onednn`, `barrier`, `native`: the native library's calls (oneDNN
  convolutions, a fusion barrier); the Linux x86-64 package carries the library.
* `compiler`: the XLA options the library's own jitted functions compile with.

No module here imports flax or does I/O at import or while tracing.
"""
