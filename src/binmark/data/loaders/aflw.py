"""AFLW-19 and AFLW2000-3D.

AFLW-19 (Zhu et al.'s 19-point protocol on AFLW), three forms:

- ``AFLWinfo_release.mat`` (SAN's generator reads it): ``bbox`` N × (x1, x2, y1, y2), ``data``
  N × 38 (19 x then 19 y), ``mask_new`` N × 19 visibility, ``nameList`` image paths under
  ``flickr/``, ``ra`` a 1-based permutation whose first 20,000 entries are the training set.
  ``box_size`` = √(w·h) of the face box (SAN's "GTB" face size).
- HRNet-face CSV rows ``image, scale, box_size, center_w, center_h, x0, y0, … x18, y18``
  (``face_landmarks_aflw_{train,test,test_frontal}.csv``); 1-based like HRNet-face reads it.
- mmpose's COCO-style JSON (``box_size`` field; 0-based).

Splits: "train", "test" (= "val"), "test_frontal" (AFLW-Frontal: every one of the 19 points
visible and strictly inside the face box, SAN's rule). ``visible`` is ``mask_new``.

AFLW2000-3D: ``AFLW2000/imageNNNNN.mat`` with ``pt3d_68`` (3 × 68; rows x, y, z; the 2-D
evaluation uses x, y) and ``Pose_Para`` [pitch, yaw, roll, …] in radians, next to the ``.jpg``.
Every point is annotated. Samples carry ``yaw``/``pitch``/``roll`` in degrees (3DDFA's yaw bins) and
``bbox``, the landmark box (its √(w·h) is the benchmark normalizer). The 3DDFA-fitted points are
taken as 0-based (origin 0).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from binmark.data.io import read_mat
from binmark.data.loaders import register_dataset
from binmark.data.loaders.coco import read_coco_style
from binmark.data.loaders.common import check_split, find_file
from binmark.data.records import LandmarkDataset, Record, make_record
from binmark.data.skeletons import skeleton

__all__ = ["load_aflw19", "load_aflw2000"]

AFLW_TRAIN = 20000
AFLW_SPLITS = ("train", "test", "val", "test_frontal")


def _mat_strings(cell: Any) -> list[str]:
    return [str(np.asarray(c).ravel()[0]) for c in np.asarray(cell, dtype=object).ravel()]


def _frontal(kp: np.ndarray, vis: np.ndarray, box: np.ndarray) -> bool:
    x, y, w, h = box
    inside = (kp[:, 0] > x) & (kp[:, 0] < x + w) & (kp[:, 1] > y) & (kp[:, 1] < y + h)
    return bool(vis.all() and inside.all())


def _aflw_mat(path: Path, images: Path, split: str, origin: float) -> list[Record]:
    mat = read_mat(path)
    missing = [k for k in ("bbox", "data", "mask_new", "nameList", "ra") if k not in mat]
    if missing:
        raise ValueError(f"AFLW file {path} lacks variable(s) {missing}")
    data = np.asarray(mat["data"], dtype=np.float64)
    coords = np.stack([data[:, :19], data[:, 19:38]], axis=-1)  # (N, 19, 2)
    mask = np.asarray(mat["mask_new"]).astype(bool)
    x1, x2, y1, y2 = np.asarray(mat["bbox"], dtype=np.float64).T
    boxes = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    names = _mat_strings(mat["nameList"])
    order = np.asarray(mat["ra"]).ravel().astype(int) - 1
    chosen = order[:AFLW_TRAIN] if split == "train" else order[AFLW_TRAIN:]
    schema = skeleton("aflw19")
    out = []
    for i in chosen:
        box = boxes[i] - np.array([origin, origin, 0, 0])
        rec = make_record(
            schema, coords[i], mask[i], entry=f"AFLW file {path}, face {i}", origin=origin,
            image_path=images / names[i], image_id=names[i], bbox=box,
            box_size=float(np.sqrt(max(box[2] * box[3], 0.0))),
        )
        if split != "test_frontal" or _frontal(rec.keypoints, mask[i], box):
            out.append(rec)
    return out


def _aflw_csv(path: Path, images: Path, origin: float) -> list[Record]:
    schema = skeleton("aflw19")
    out = []
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    start = 1 if rows and not _is_number(rows[0][1]) else 0  # optional header row
    for n, row in enumerate(rows[start:], start=start + 1):
        where = f"AFLW file {path}, line {n}"
        try:
            scale, box_size, cx, cy = (float(v) for v in row[1:5])
            coords = np.asarray([float(v) for v in row[5:]]).reshape(-1, 2)
        except (ValueError, IndexError):
            raise ValueError(f"{where}: expected 'image, scale, box_size, center_w, center_h, x0, y0, …'") from None
        out.append(
            make_record(
                schema, coords, [True] * len(coords), entry=where, origin=origin, center=(cx, cy),
                scale=scale, image_path=images / row[0], image_id=row[0], box_size=box_size,
            )
        )
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@register_dataset("aflw19")
def load_aflw19(
    root: Path | None, split: str, ann_file: Path | None, image_dir: Path | None, origin: float | None
) -> LandmarkDataset:
    """AFLW-19 from ``AFLWinfo_release.mat``, HRNet-face's CSV or mmpose's JSON."""
    check_split("aflw19", split, AFLW_SPLITS)
    split = "test" if split == "val" else split
    path = find_file(root, ann_file, ["AFLWinfo_release.mat"], "AFLW annotation file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return read_coco_style(path, skeleton("aflw19"), image_dir or path.parent, "aflw19", origin or 0.0)
    if suffix == ".csv":
        records = _aflw_csv(path, image_dir or path.parent, 1.0 if origin is None else origin)
    else:
        images = image_dir or (root / "flickr" if root is not None else path.parent / "flickr")
        records = _aflw_mat(path, images, split, 1.0 if origin is None else origin)
    return LandmarkDataset("aflw19", skeleton("aflw19"), records, info={"ann_file": str(path), "split": split})


def _aflw2000_record(mat_path: Path, origin: float) -> Record:
    mat = read_mat(mat_path)
    if "pt3d_68" not in mat:
        raise ValueError(f"AFLW2000-3D file {mat_path} has no 'pt3d_68' variable")
    pts = np.asarray(mat["pt3d_68"], dtype=np.float64)
    if pts.shape == (68, 3):  # some re-saved copies are transposed
        pts = pts.T
    if pts.ndim != 2 or pts.shape[0] < 2:
        raise ValueError(f"AFLW2000-3D file {mat_path}: pt3d_68 has shape {pts.shape}, expected (3, 68)")
    extras: dict[str, Any] = {"image_id": mat_path.stem}
    if "Pose_Para" in mat:
        pitch, yaw, roll = np.degrees(np.asarray(mat["Pose_Para"], dtype=np.float64).ravel()[:3])
        extras.update(pitch=float(pitch), yaw=float(yaw), roll=float(roll))
    rec = make_record(
        skeleton("aflw2000"), pts[:2].T, [True] * pts.shape[1], entry=f"AFLW2000-3D file {mat_path}",
        origin=origin, image_path=mat_path.with_suffix(".jpg"), **extras,
    )
    lo, hi = rec.keypoints.min(axis=0), rec.keypoints.max(axis=0)
    rec.extras["bbox"] = np.concatenate([lo, hi - lo])
    return rec


@register_dataset("aflw2000")
def load_aflw2000(
    root: Path | None, split: str, ann_file: Path | None, image_dir: Path | None, origin: float | None
) -> LandmarkDataset:
    """AFLW2000-3D: every ``.mat`` in ``AFLW2000/`` (or ``root`` itself), or a COCO-style JSON."""
    o = 0.0 if origin is None else origin
    if ann_file is not None and ann_file.suffix.lower() == ".json":
        return read_coco_style(ann_file, skeleton("aflw2000"), image_dir or ann_file.parent, "aflw2000", o)
    check_split("aflw2000", split, ("val", "test", "all"))
    if ann_file is not None:
        files = [ann_file]
    else:
        if root is None:
            raise ValueError("AFLW2000-3D needs a root folder or an ann_file")
        folder = root / "AFLW2000" if (root / "AFLW2000").is_dir() else root
        files = sorted(folder.glob("*.mat"))
        if not files:
            raise FileNotFoundError(f"no AFLW2000-3D .mat files in {folder}")
    records = [_aflw2000_record(f, o) for f in files]
    return LandmarkDataset("aflw2000", skeleton("aflw2000"), records, info={"files": len(files)})
