"""Keras interop: Keras models and weights computed by, and written back from, jaxcomponents."""
