"""jaxcomponents: Keras's deep-learning components, backbones and U-Nets as JAX/Flax Linen modules.

Importing the package first lets it choose the CPU fast paths before JAX
starts (`jaxcomponents.fast_cpu`; `JAXCOMPONENTS_FAST_CPU=0` turns them off).
"""

from jaxcomponents import fast_cpu as _fast_cpu  # noqa: F401  (sets XLA's CPU options before JAX starts)
