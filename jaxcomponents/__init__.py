"""jaxcomponents: Keras's deep-learning components, backbones and U-Nets as JAX/Flax Linen modules.

Importing it changes nothing outside it, and imports nothing heavy: `jaxcomponents.Model` (Keras's `Model` API
over any Flax module) and `jaxcomponents.summary` load on first use. Its layers choose their own CPU
formulations when a computation is lowered (`jaxcomponents.ops`); `jaxcomponents.cpu.tune()` is the one
explicit, process-wide tuning call.
"""

import importlib


def __getattr__(name):
  if name in ("Model", "load_model"):
    return getattr(importlib.import_module("jaxcomponents.training.model"), name)
  if name == "summary":  # the module, callable as its function: jaxcomponents.summary(module, sample)
    return importlib.import_module("jaxcomponents.summary")
  raise AttributeError(f"module 'jaxcomponents' has no attribute {name!r}")
