"""Data: sources and pipelines that feed the training loop."""

from jaxcomponents.data.arrays import ArrayDataset

__all__ = ["ArrayDataset"]
