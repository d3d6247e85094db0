"""jaxcomponents: Keras's deep-learning components, backbones and U-Nets as JAX/Flax Linen modules.

Importing it changes nothing outside it. Its layers choose their own CPU
formulations when a computation is lowered (`jaxcomponents.ops`);
`jaxcomponents.cpu.tune()` is the one explicit, process-wide tuning call.
"""

