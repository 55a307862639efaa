"""COCO-format keypoint JSON: COCO itself, custom skeletons, and the mmpose-style conversions.

One reader serves every COCO-style file: ``person_keypoints_*.json``, any custom keypoint JSON
(``"coco_custom"``, skeleton from its category), and the COCO-style JSONs that mmpose users have
for the face sets and MPII. Top-down samples are made from the ground-truth boxes:

- one sample per annotation; ``iscrowd`` annotations and annotations without a labelled keypoint
  are left out, as COCOeval ignores them (their counts are in ``dataset.info``);
- ``keypoints`` are K × (x, y, v): v > 0 is annotated (``visible``), v = 1 is labelled but not
  visible (``occluded``), v = 0 is not labelled;
- the box is the annotation's ``center``/``scale`` when the file has them (mmpose's face files),
  otherwise its ``bbox`` clipped to the image (HRNet's ``_box2cs`` cleaning in
  ``lib/dataset/coco.py`` of github.com/leoxiaobin/deep-high-resolution-net.pytorch) and read in
  the COCO box convention of :func:`binmark.data.transforms.box_center_scale` — the same as the
  Localizer's boxes —, otherwise the landmark box. The centre equals HRNet's (x + (w − 1)/2);
  the size is w (the pixels the box covers) where HRNet takes w − 1 (its inclusive extents), a
  1 px larger box (see docs/data.md).

Coordinates are 0-based in COCO files (the COCO format) and in mmpose's face conversions except
300-W/300-VW, whose JSONs copy the 1-based ``.pts`` values (origin 1; see docs/data.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from binmark.data.io import read_json
from binmark.data.loaders import register_dataset
from binmark.data.loaders.common import check_split, find_file, image_folder
from binmark.data.records import LandmarkDataset, Record, check_inside, make_record
from binmark.data.skeletons import Skeleton, skeleton
from binmark.data.transforms import box_center_scale

__all__ = ["read_coco_style", "load_coco", "load_coco_custom", "clean_bbox"]


def clean_bbox(bbox: Any, width: int, height: int) -> np.ndarray | None:
    """A (x, y, w, h) box clipped to a ``width`` × ``height`` image (COCO box convention: the
    image spans [0, width] × [0, height]); None when nothing of it is left."""
    x, y, w, h = (float(v) for v in bbox)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(float(width), x + w), min(float(height), y + h)
    if x2 <= x1 or y2 <= y1 or w <= 0 or h <= 0:
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1])


def _pick_category(data: Mapping[str, Any], path: Path, category_id: int | None) -> Mapping[str, Any]:
    cats = [c for c in data.get("categories", []) if c.get("keypoints")]
    if category_id is not None:
        cats = [c for c in cats if c.get("id") == category_id]
    if not cats:
        raise ValueError(
            f"annotation file {path}: no category with keypoint names"
            + (f" and id {category_id}" if category_id is not None else "")
            + "; a custom skeleton needs categories[].keypoints"
        )
    return cats[0]


def _box(ann: Mapping[str, Any], size: tuple[int, int] | None) -> tuple[Any, Any, np.ndarray | None]:
    """(center, scale, cleaned bbox) in the file's convention; center/scale None → landmarks."""
    box = None
    if "bbox" in ann and size is not None:
        box = clean_bbox(ann["bbox"], *size)
    if "center" in ann and "scale" in ann:
        return ann["center"], float(ann["scale"]), box
    if box is not None:
        center, scale = box_center_scale(box)
        return center, scale, box
    return None, None, box


def _entry(path: Path, i: int, ann: Mapping[str, Any]) -> str:
    return f"annotation file {path}, annotation {i} (id {ann.get('id', '?')})"


def _keypoints(ann: Mapping[str, Any], entry: str) -> np.ndarray:
    """An annotation's ``keypoints`` as (K, 3) (x, y, v), checked: numbers, whole triples, and
    COCO's visibility flags 0 (not labelled), 1 (labelled, not visible), 2 (visible) only.

    Raises:
        ValueError: naming ``entry`` and the keypoint.
    """
    raw = ann["keypoints"]
    if not isinstance(raw, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
        raise ValueError(f"{entry}: 'keypoints' must be a list of numbers (x, y, v triples), got {str(raw)[:80]}")
    flat = np.asarray(raw, dtype=np.float64)
    if flat.ndim != 1 or flat.size % 3:
        raise ValueError(f"{entry}: 'keypoints' has {flat.size} values, not a flat list of (x, y, v) triples")
    kpv = flat.reshape(-1, 3)
    bad = np.flatnonzero(~np.isin(kpv[:, 2], (0.0, 1.0, 2.0)))
    if bad.size:
        j = int(bad[0])
        raise ValueError(f"{entry}: keypoint {j} has visibility flag {kpv[j, 2]:g}; COCO's flags are 0 (not labelled), "
                         "1 (labelled, not visible) and 2 (visible)")  # fmt: skip
    return kpv


def _record(
    ann: Mapping[str, Any], kpv: np.ndarray, entry: str, images: Mapping[Any, Any], folder: Path,
    schema: Skeleton, origin: float,
) -> Record:
    """One annotation, its (K, 3) keypoints already checked by :func:`_keypoints`."""
    if ann.get("image_id") not in images:
        raise ValueError(f"{entry}: image_id {ann.get('image_id')!r} is not in the file's images")
    img = images[ann["image_id"]]
    size = (int(img["width"]), int(img["height"])) if "width" in img and "height" in img else None
    center, scale, box = _box(ann, size)
    extras: dict[str, Any] = {"image_id": ann["image_id"], "ann_id": ann.get("id")}
    if box is not None:
        extras["bbox"] = np.concatenate([box[:2] - origin, box[2:]])
    for key in ("area", "box_size"):
        if key in ann:
            extras[key] = float(ann[key])
    record = make_record(
        schema, kpv[:, :2], kpv[:, 2] > 0, entry=entry, origin=origin, center=center, scale=scale,
        image_path=folder / img["file_name"], image_size=size,
        occluded=kpv[:, 2] == 1, **extras,
    )
    if size is not None:
        check_inside(record, schema, *size)
    return record


def read_coco_style(
    path: Path,
    schema: Skeleton | None,
    folder: Path,
    name: str,
    origin: float = 0.0,
    category_id: int | None = None,
) -> LandmarkDataset:
    """Read a COCO-style keypoint JSON into top-down samples (see the module docstring).

    Args:
        path: the JSON file.
        schema: the skeleton, or None to take it from the file's category (custom skeletons).
        folder: image ``file_name`` values are relative to this folder.
        name: dataset name for the result.
        origin: the file's pixel origin (0 for COCO; 1 for files holding 1-based values).
        category_id: keep only this category's annotations (default: all).
    """
    data = read_json(path)
    if not isinstance(data, dict) or "annotations" not in data or "images" not in data:
        raise ValueError(f"annotation file {path} is not COCO-style: it needs 'images' and 'annotations'")
    if schema is None:
        schema = Skeleton.from_coco(_pick_category(data, path, category_id))
    images = {img["id"]: img for img in data["images"]}
    records, crowd, empty = [], 0, 0
    for i, ann in enumerate(data["annotations"]):
        if category_id is not None and ann.get("category_id") != category_id:
            continue
        if ann.get("iscrowd", 0):
            crowd += 1
            continue
        entry = _entry(path, i, ann)
        kpv = _keypoints(ann, entry) if "keypoints" in ann else None
        if kpv is None or not (kpv[:, 2] > 0).any():
            empty += 1
            continue
        records.append(_record(ann, kpv, entry, images, folder, schema, origin))
    info = {"crowd_ignored": crowd, "no_keypoints_ignored": empty, "ann_file": str(path)}
    return LandmarkDataset(name, schema, records, info=info)


@register_dataset("coco")
def load_coco(
    root: Path | None, split: str, ann_file: Path | None, image_dir: Path | None, origin: float | None
) -> LandmarkDataset:
    """COCO person keypoints: ``annotations/person_keypoints_{train,val}2017.json`` and images in
    ``{train,val}2017/``."""
    check_split("coco", split, ("train", "val"))
    path = find_file(root, ann_file, [f"annotations/person_keypoints_{split}2017.json"], "COCO keypoint file")
    folder = image_folder(image_dir, root, f"{split}2017", path)
    return read_coco_style(path, skeleton("coco"), folder, "coco", 0.0 if origin is None else origin, 1)


@register_dataset("coco_custom")
def load_coco_custom(
    root: Path | None, split: str, ann_file: Path | None, image_dir: Path | None, origin: float | None
) -> LandmarkDataset:
    """Any COCO keypoint JSON with its own skeleton: ``annotations/{split}.json`` and images in
    ``images/`` (or ``ann_file`` / ``image_dir``); the skeleton comes from the first category
    with keypoint names, flip pairs inferred from left/right names."""
    path = find_file(root, ann_file, [f"annotations/{split}.json"], "COCO-format keypoint file")
    folder = image_folder(image_dir, root, "images", path)
    return read_coco_style(path, None, folder, "coco_custom", 0.0 if origin is None else origin)
