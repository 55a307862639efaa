"""COFW from its ``.mat`` files (images inside), or mmpose's COCO-style JSON.

Files: ``COFW_train_color.mat`` (``IsTr``, ``phisTr``, ``bboxesTr``) and ``COFW_test_color.mat``
(``IsT``, ``phisT``, ``bboxesT``), MATLAB v5 or v7.3. ``phis`` rows hold 29 x, 29 y and 29
occlusion flags (1 = occluded) in 1-based pixels; ``bboxes`` rows are (x, y, w, h); ``Is`` is a
cell array of the images (grayscale or colour) (mmpose ``parse_cofw_dataset.py``).

Every point is annotated, occluded ones included: ``visible`` is all True and the flags become
``occluded``. mmpose's JSON writes v = 2 visible / 1 occluded and is already 0-based (its converter
subtracted 1). Splits: "train", "test" (= "val"). The crop box is the landmark box (HRNet-face).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from binmark.data.io import read_mat
from binmark.data.loaders import register_dataset
from binmark.data.loaders.coco import read_coco_style
from binmark.data.loaders.common import check_split, find_file
from binmark.data.records import LandmarkDataset, make_record
from binmark.data.skeletons import skeleton

__all__ = ["load_cofw"]

ORIGIN = 1.0
_KEYS = {"train": ("IsTr", "phisTr", "bboxesTr"), "test": ("IsT", "phisT", "bboxesT")}


def _image(cell: Any, from_hdf5: bool) -> np.ndarray:
    img = np.asarray(cell)
    if from_hdf5:
        img = img.T  # HDF5 stores MATLAB arrays transposed
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"COFW image has shape {img.shape}, expected (H, W) or (H, W, 3)")
    return np.ascontiguousarray(img.astype(np.uint8))


def _rows(value: Any, width: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    return arr.T if arr.shape[0] == width and arr.shape[-1] != width else arr


@register_dataset("cofw")
def load_cofw(
    root: Path | None, split: str, ann_file: Path | None, image_dir: Path | None, origin: float | None
) -> LandmarkDataset:
    """COFW (see the module docstring)."""
    check_split("cofw", split, ("train", "test", "val"))
    part = "train" if split == "train" else "test"
    schema = skeleton("cofw")
    if ann_file is not None and ann_file.suffix.lower() == ".json":
        return read_coco_style(ann_file, schema, image_dir or ann_file.parent, "cofw", origin or 0.0)
    path = find_file(root, ann_file, [f"COFW_{part}_color.mat"], "COFW file")
    o = ORIGIN if origin is None else origin
    mat = read_mat(path)
    keys = next((k for k in _KEYS.values() if all(x in mat for x in k)), None)
    if keys is None:
        raise ValueError(f"COFW file {path} has neither IsTr/phisTr/bboxesTr nor IsT/phisT/bboxesT")
    images, phis, boxes = mat[keys[0]], _rows(mat[keys[1]], 87), _rows(mat[keys[2]], 4)
    from_hdf5 = isinstance(images, list)
    cells = images if from_hdf5 else list(np.asarray(images, dtype=object).ravel())
    if not (len(cells) == len(phis) == len(boxes)) or phis.shape[1] != 87:
        raise ValueError(
            f"COFW file {path}: {len(cells)} images, {phis.shape} landmarks and {len(boxes)} boxes "
            "do not line up (expected N images, N × 87, N × 4)"
        )
    records = []
    for i, (cell, row, box) in enumerate(zip(cells, phis, boxes)):
        records.append(
            make_record(
                schema, np.stack([row[:29], row[29:58]], axis=1), [True] * 29,
                entry=f"COFW file {path}, face {i}", origin=o, pixels=_image(cell, from_hdf5),
                image_id=i + 1, occluded=row[58:] > 0.5,
                bbox=np.concatenate([box[:2] - o, box[2:]]),
            )
        )
    return LandmarkDataset("cofw", schema, records, info={"ann_file": str(path)})
