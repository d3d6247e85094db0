"""Keras weights in and out of jaxcomponents modules.

- `from_keras(model_or_path)`: a whole Keras Sequential/Functional model -> (module, variables);
  `compare_with_keras` reports layer by layer; `to_keras` writes variables back into the Keras model.
- `load_keras(module, source, sample_input)`: a live `keras.Model` or a Keras weights file -> variables.
- `save_keras_h5(path, module, variables, sample_input)`: variables -> a legacy `.h5` Keras loads.
- `save_npz` / `load_npz`: portable `.npz` archives.
- `load_imagenet(backbone, input_shape)`: Keras's ImageNet weights (`hub` finds, caches and verifies the files);
  `init_unet(unet, x)`: a U-Net's variables with its backbone's weights; `decode_predictions`: Keras's class names.
- `graft(variables, "backbone", pretrained)`: pretrained variables into a bigger model.

The Keras names live in the Keras interop package, `jaxcomponents.keras`, and are kept here as well.
"""

from typing import Any

# The old module `weights.from_keras` is loaded before the function of that name is bound here, so that loading it
# later (a doctest run, an old import) does not put the module in the function's place.
import jaxcomponents.weights.from_keras  # noqa: F401  pylint: disable=unused-import
from jaxcomponents.deprecation import warn
from jaxcomponents.keras.convert import convert_layers, load_keras
from jaxcomponents.keras.from_keras import from_keras, to_keras
from jaxcomponents.keras.parity import ParityReport, compare_with_keras
from jaxcomponents.keras.weight_files import KerasLayer, layers_from_h5, layers_from_model
from jaxcomponents.keras.write import save_keras_h5
from jaxcomponents.weights.graft import graft
from jaxcomponents.weights.imagenet import decode_predictions, init_unet, load_imagenet
from jaxcomponents.weights.npz import load_npz, save_npz

__all__ = [
    "KerasLayer", "ParityReport", "compare_with_keras", "convert_layers", "decode_predictions",
    "from_keras", "graft", "init_unet", "layers_from_h5", "layers_from_model", "load_imagenet", "load_keras",
    "load_npz", "save_keras_h5", "save_npz", "to_keras",
]


def __getattr__(name: str) -> Any:
  if name == "CONVERSION_RULES":  # one table per Keras class now lives in its record
    from jaxcomponents.keras.renaming import weight_tables  # pylint: disable=import-outside-toplevel
    warn("jaxcomponents.weights.CONVERSION_RULES is deprecated: each Keras class's renaming tables are its record's "
         "(jaxcomponents.keras.records.RECORDS[name].weights); jaxcomponents.keras.renaming.weight_tables() lists "
         "them all. The old name goes in the next release.")
    return weight_tables()
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
