"""Records of Keras's adaptive pooling layers (Keras 3.12+): see `jaxcomponents.keras.record`.

`AdaptiveAveragePooling1D/2D/3D` and `AdaptiveMaxPooling1D/2D/3D`, channels_last and channels_first.
"""

from __future__ import annotations

from jaxcomponents.errors import is_int
from jaxcomponents.keras.config import as_tuple
from jaxcomponents.keras.record import KerasClass
from jaxcomponents.layers.adaptive_pooling import DATA_FORMATS, adaptive_pool


def _adaptive(kind: str, dims: int) -> KerasClass:
  def build(config, name, options):
    size = as_tuple(config["output_size"])
    size = size * dims if len(size) == 1 else size
    fmt = config.get("data_format") or "channels_last"
    return lambda x, train: adaptive_pool(x, kind, size, fmt)

  def check(config) -> list[str]:
    problems = []
    size = as_tuple(config.get("output_size"))
    if len(size) not in (1, dims) or any(not is_int(s) or s < 1 for s in size):
      problems.append(f"output_size={config.get('output_size')!r} (only a positive int or {dims} of them)")
    if (config.get("data_format") or "channels_last") not in DATA_FORMATS:
      problems.append(f"data_format={config.get('data_format')!r} (only {' or '.join(map(repr, DATA_FORMATS))})")
    return problems
  return KerasClass(build, check=check)


RECORDS: dict[str, KerasClass] = {
    **{f"AdaptiveAveragePooling{d}D": _adaptive("avg", d) for d in (1, 2, 3)},
    **{f"AdaptiveMaxPooling{d}D": _adaptive("max", d) for d in (1, 2, 3)},
}
