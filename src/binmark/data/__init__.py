"""Data: keypoint schemas, the standard datasets' own files, crops, augmentation, synthetic data.

- ``skeleton(name)`` / ``Skeleton.from_coco(category)``: keypoint schemas.
- ``load(name, root, split, ann_file=None, image_dir=None, on_error="raise")``: a dataset as a
  sequence of sample dicts (fields in :mod:`binmark.data.records`), read from its released files.
- ``synthetic(kind, n, seed=0, image_size=256)``: procedural faces ("face") and bodies ("pose").
- ``TopDownDataset``: samples → (image, heatmaps, weights, meta) for a DataLoader.
"""

from binmark.data.augment import Augment, AugmentDraw
from binmark.data.dataset import IMAGENET_MEAN, IMAGENET_STD, TopDownDataset, normalize
from binmark.data.loaders import DATASETS, datasets, load, register_dataset
from binmark.data.records import LandmarkDataset, Record, make_record
from binmark.data.skeletons import SKELETONS, Skeleton, infer_flip_pairs, skeleton
from binmark.data.synthetic import RENDERERS, SyntheticDataset, synthetic

__all__ = [
    "Augment",
    "AugmentDraw",
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LandmarkDataset",
    "RENDERERS",
    "Record",
    "SKELETONS",
    "Skeleton",
    "SyntheticDataset",
    "TopDownDataset",
    "datasets",
    "infer_flip_pairs",
    "load",
    "make_record",
    "normalize",
    "register_dataset",
    "skeleton",
    "synthetic",
]
