"""Data: sources (embedded digits, IDX files, npz, image folders, TFDS) and fixed-shape batch pipelines."""

from jaxcomponents.data.dataset import ArrayDataset, RecordDataset, check_labels
from jaxcomponents.data.embedded import load_digits
from jaxcomponents.data.folders import image_folder_dataset, list_image_folder
from jaxcomponents.data.idx import load_idx_dataset, read_idx
from jaxcomponents.data.npz_source import load_npz_dataset
from jaxcomponents.data.prefetch import prefetch
from jaxcomponents.data.tfds_source import tfds_dataset
from jaxcomponents.data.transforms import augment, resize_image

__all__ = [
    "ArrayDataset", "RecordDataset", "augment", "check_labels", "image_folder_dataset", "list_image_folder",
    "load_digits", "load_idx_dataset", "load_npz_dataset", "prefetch", "read_idx", "resize_image", "tfds_dataset",
]
