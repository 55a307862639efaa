"""MPII Human Pose from the widely used JSON conversion, with head boxes for PCKh.

Files (HRNet layout, or mmpose's names): ``annot/{train,valid,test,trainval}.json`` or
``annotations/mpii_{train,val,test,trainval}.json``; images in ``images/``; head boxes for the
validation split in ``annot/gt_valid.mat`` or ``annotations/mpii_gt_val.mat``, or next to the
annotation file under either name.

A JSON entry: ``image``, ``center`` [x, y], ``scale`` (box side / 200), ``joints`` 16 × [x, y],
``joints_vis`` 16 × 0/1, in MATLAB's **1-based** pixels; unannotated joints are [-1, -1] with
vis 0. As HRNet and the original hourglass code do, the center moves down by 15·scale px before
conversion (the MPII person centre sits high on the body); the 1.25 box padding of those pipelines
is the crop's ``padding`` (binmark.data.dataset), not applied here.

Head sizes (``head_size``, px): the head-box diagonal ‖headbox[1] − headbox[0]‖ from the
``.mat`` file's ``headboxes_src`` (2 × 2 × N, in the JSON's entry order), **before** PCKh's 0.6
factor; or, where a JSON entry carries it, its ``head_size`` / ``normalizer`` field (the CU-Net
conversion's name for the same quantity).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from binmark.data.io import read_json, read_mat
from binmark.data.loaders import register_dataset
from binmark.data.loaders.common import check_split, find_file, image_folder
from binmark.data.records import LandmarkDataset, make_record
from binmark.data.skeletons import skeleton

__all__ = ["load_mpii", "read_head_sizes"]

ORIGIN = 1.0
CENTER_SHIFT = 15.0  # px per unit of scale (HRNet mpii.py, hg-train mpii.lua)
_SPLIT_FILES = {
    "train": ("annot/train.json", "annotations/mpii_train.json"),
    "val": ("annot/valid.json", "annotations/mpii_val.json"),
    "test": ("annot/test.json", "annotations/mpii_test.json"),
    "trainval": ("annot/trainval.json", "annotations/mpii_trainval.json"),
}
_HEAD_FILES = ("annot/gt_valid.mat", "annotations/mpii_gt_val.mat")


def read_head_sizes(path: Path, count: int) -> np.ndarray:
    """Head-box diagonals (px, before the 0.6 factor) from a ``gt_valid.mat``-style file.

    Args:
        path: the ``.mat`` file with ``headboxes_src`` of shape (2, 2, N).
        count: the number of JSON entries it must match.
    """
    mat = read_mat(path)
    if "headboxes_src" not in mat:
        raise ValueError(f"head-box file {path} has no 'headboxes_src' variable")
    boxes = np.asarray(mat["headboxes_src"], dtype=np.float64)
    if boxes.ndim != 3 or boxes.shape[:2] != (2, 2):
        raise ValueError(f"head-box file {path}: headboxes_src has shape {boxes.shape}, expected (2, 2, N)")
    if boxes.shape[2] != count:
        raise ValueError(
            f"head-box file {path} has {boxes.shape[2]} head boxes but the annotation file has "
            f"{count} entries; they must be the same split in the same order"
        )
    return np.linalg.norm(boxes[1] - boxes[0], axis=0)


def _find_head_boxes(root: Path | None, ann_file: Path) -> Path | None:
    """The validation head-box file: in the standard layout, or next to the annotation file."""
    places = [root / f for f in _HEAD_FILES] if root is not None else []
    places += [ann_file.parent / Path(f).name for f in _HEAD_FILES]
    return next((p for p in places if p.is_file()), None)


def _entry_head_size(entry: dict[str, Any]) -> float | None:
    for key in ("head_size", "normalizer"):
        if key in entry:
            return float(entry[key])
    return None


@register_dataset("mpii")
def load_mpii(
    root: Path | None, split: str, ann_file: Path | None, image_dir: Path | None, origin: float | None
) -> LandmarkDataset:
    """MPII from its JSON conversion (see the module docstring)."""
    check_split("mpii", split, tuple(_SPLIT_FILES))
    path = find_file(root, ann_file, _SPLIT_FILES[split], "MPII annotation file")
    folder = image_folder(image_dir, root, "images", path)
    entries = read_json(path)
    if not isinstance(entries, list):
        raise ValueError(f"annotation file {path}: expected a JSON list of person entries")
    head_file = _find_head_boxes(root, path) if split == "val" else None
    heads = read_head_sizes(head_file, len(entries)) if head_file else None
    schema = skeleton("mpii")
    o = ORIGIN if origin is None else origin
    records = []
    for i, e in enumerate(entries):
        where = f"annotation file {path}, entry {i} ({e.get('image', '?')})"
        try:
            scale = float(e["scale"])
            center = np.asarray(e["center"], dtype=np.float64).copy()
            name = e["image"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where}: needs 'image', 'center' and 'scale'") from None
        if center[0] != -1:
            center[1] += CENTER_SHIFT * scale
        joints = e.get("joints", np.zeros((schema.num_keypoints, 2)))
        vis = e.get("joints_vis", np.zeros(schema.num_keypoints))
        head = heads[i] if heads is not None else _entry_head_size(e)
        extras: dict[str, Any] = {"image_id": int(Path(name).stem) if Path(name).stem.isdigit() else name}
        if head is not None:
            extras["head_size"] = float(head)
        records.append(
            make_record(
                schema, joints, vis, entry=where, origin=o,
                center=center if center[0] != -1 else None, scale=scale if center[0] != -1 else None,
                image_path=folder / name, **extras,
            )
        )
    return LandmarkDataset("mpii", schema, records, info={"ann_file": str(path), "head_boxes": str(head_file)})
