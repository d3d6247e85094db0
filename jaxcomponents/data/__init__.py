"""Data: sources (embedded digits, IDX files, npz, image folders, TFDS) and Grain batch pipelines."""

from jaxcomponents.data.dataset import ArrayDataset, RecordDataset
from jaxcomponents.data.embedded import load_digits
from jaxcomponents.data.folders import image_folder_dataset, list_image_folder
from jaxcomponents.data.idx import load_idx_dataset, read_idx
from jaxcomponents.data.image import (
                                      decode_image,
                                      decode_random_resized_crop,
                                      flip_left_right,
                                      normalize,
                                      random_resized_crop,
                                      resize_image,
)
from jaxcomponents.data.npz_source import load_npz_dataset
from jaxcomponents.data.pipeline import BatchPipeline, check_labels
from jaxcomponents.data.prefetch import prefetch
from jaxcomponents.data.tfds_source import tfds_dataset
from jaxcomponents.data.transforms import augment

__all__ = [
    "ArrayDataset", "BatchPipeline", "RecordDataset", "augment", "check_labels", "decode_image",
    "decode_random_resized_crop", "flip_left_right", "image_folder_dataset", "list_image_folder", "load_digits",
    "load_idx_dataset", "load_npz_dataset", "normalize", "prefetch", "random_resized_crop", "read_idx",
    "resize_image", "tfds_dataset",
]
