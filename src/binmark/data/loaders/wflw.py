"""WFLW from its annotation text files (or mmpose's COCO-style JSON).

Layout: ``WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_{train,test}.txt``
and images under ``WFLW_images/``. A line holds 196 numbers (x0 y0 … x97 y97), the face rectangle
(x_min y_min x_max y_max), six 0/1 attributes — large pose, expression, illumination, make-up,
occlusion, blur — and the image path (WFLW: Wu et al., "Look at Boundary: A Boundary-Aware Face
Alignment Algorithm", CVPR 2018; line layout as read by github.com/open-mmlab/mmpose,
tools/dataset_converters/wflw2coco.py; attribute order as in github.com/ZhenglinZhou/STAR,
tools/split_wflw.py).

Splits: "train", "test" (= "val"), and the test subsets "test_largepose", "test_expression",
"test_illumination", "test_makeup", "test_occlusion", "test_blur" (faces with that attribute).
Samples carry ``attributes`` (dict of the six flags) and the rectangle as ``bbox``. The crop box is
the landmark box (as mmpose's converter does; one WFLW rectangle does not enclose its face).
Coordinates are taken as 0-based.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from binmark.data.loaders import register_dataset
from binmark.data.loaders.coco import read_coco_style
from binmark.data.loaders.common import check_split, find_file
from binmark.data.records import LandmarkDataset, make_record
from binmark.data.skeletons import skeleton

__all__ = ["load_wflw", "ATTRIBUTES"]

ATTRIBUTES = ("largepose", "expression", "illumination", "makeup", "occlusion", "blur")
SPLITS = ("train", "test", "val") + tuple(f"test_{a}" for a in ATTRIBUTES)
_FILE = "WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_{}.txt"
_TOKENS = 196 + 4 + 6 + 1


@register_dataset("wflw")
def load_wflw(
    root: Path | None, split: str, ann_file: Path | None, image_dir: Path | None, origin: float | None
) -> LandmarkDataset:
    """WFLW (see the module docstring)."""
    check_split("wflw", split, SPLITS)
    o = 0.0 if origin is None else origin
    schema = skeleton("wflw")
    if ann_file is not None and ann_file.suffix.lower() == ".json":
        return read_coco_style(ann_file, schema, image_dir or ann_file.parent, "wflw", o)
    part = "train" if split == "train" else "test"
    path = find_file(root, ann_file, [_FILE.format(part)], "WFLW annotation file")
    images = image_dir or (root / "WFLW_images" if root is not None else path.parent)
    wanted = split[5:] if split.startswith("test_") else None
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"WFLW file {path}, line {n}"
        if len(tokens) != _TOKENS:
            raise ValueError(f"{where} has {len(tokens)} fields, expected {_TOKENS} (196 coordinates, 4 box, 6 attributes, image)")
        try:
            values = np.asarray(tokens[:206], dtype=np.float64)
        except ValueError:
            raise ValueError(f"{where}: the first 206 fields must be numbers") from None
        attrs = {a: bool(v) for a, v in zip(ATTRIBUTES, values[200:206])}
        if wanted is not None and not attrs[wanted]:
            continue
        x1, y1, x2, y2 = values[196:200] - o
        records.append(
            make_record(
                schema, values[:196].reshape(98, 2), [True] * 98, entry=where, origin=o,
                image_path=images / tokens[206], image_id=tokens[206], attributes=attrs,
                bbox=np.array([x1, y1, x2 - x1, y2 - y1]),
            )
        )
    return LandmarkDataset("wflw", schema, records, info={"ann_file": str(path), "split": split})
