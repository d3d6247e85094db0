"""Keras weights in and out of jaxcomponents modules.

- `from_keras(model_or_path)`: a whole Keras Sequential/Functional model -> (module, variables);
  `compare_with_keras` reports layer by layer; `to_keras` writes variables back into the Keras model.
- `load_keras(module, source, sample_input)`: a live `keras.Model` or a legacy `.h5` file -> variables.
- `save_keras_h5(path, module, variables, sample_input)`: variables -> a legacy `.h5` Keras loads.
- `save_npz` / `load_npz`: portable `.npz` archives.
- `load_imagenet(backbone, input_shape)`: Keras's ImageNet weights (`hub` finds, caches and verifies the files);
  `init_unet(unet, x)`: a U-Net's variables with its backbone's weights; `decode_predictions`: Keras's class names.
- `graft(variables, "backbone", pretrained)`: pretrained variables into a bigger model.
"""

from jaxcomponents.weights.convert import CONVERSION_RULES, convert_layers, load_keras
from jaxcomponents.weights.from_keras import ParityReport, compare_with_keras, from_keras, to_keras
from jaxcomponents.weights.graft import graft
from jaxcomponents.weights.imagenet import decode_predictions, init_unet, load_imagenet
from jaxcomponents.weights.keras_export import save_keras_h5
from jaxcomponents.weights.keras_layers import KerasLayer, layers_from_h5, layers_from_model
from jaxcomponents.weights.npz import load_npz, save_npz

__all__ = [
    "CONVERSION_RULES", "KerasLayer", "ParityReport", "compare_with_keras", "convert_layers", "decode_predictions",
    "from_keras", "graft", "init_unet", "layers_from_h5", "layers_from_model", "load_imagenet", "load_keras",
    "load_npz", "save_keras_h5", "save_npz", "to_keras",
]
