"""300-W and 300-VW from their ibug ``.pts`` files (or mmpose's COCO-style JSON of them).

300-W layout (the ibug release): ``afw/``, ``helen/{trainset,testset}/``, ``lfpw/{trainset,
testset}/``, ``ibug/``, ``300W/{01_Indoor,02_Outdoor}/``, each with ``NAME.pts`` next to
``NAME.jpg`` or ``NAME.png``. Splits (the groups of HRNet-face's split files,
github.com/HRNet/HRNet-Facial-Landmark-Detection, README, ``data/300w/face_landmarks_300w_*.csv``;
the private test set: Sagonas et al., "300 Faces In-The-Wild Challenge: database and results",
Image and Vision Computing 47, 2016):

=============  ================================================  =======
split          folders                                           images
=============  ================================================  =======
train          afw, helen/trainset, lfpw/trainset                 3,148
common         helen/testset, lfpw/testset                          554
challenging    ibug                                                 135
full / val     common + challenging (HRNet-face's "valid")          689
test           300W/01_Indoor, 300W/02_Outdoor (private test)       600
all            every ``.pts`` under the root
=============  ================================================  =======

Each sample's ``subset`` names the split group it came from, for per-subset NME reports.

300-VW layout: ``VIDEO/annot/FRAME.pts`` with ``VIDEO/imgs/FRAME.jpg``; split "val"/"all" = every
frame.

Coordinates: ``.pts`` values follow MATLAB's 1-based convention (the 300-W site, as quoted
secondhand in blog.csdn.net/u010087338/article/details/134395794; HRNet-face shifts them by one in
lib/datasets/face300w.py) — origin 1. mmpose's 300-W/300-VW JSONs copy the ``.pts`` values
unchanged, so they are read with origin 1 too and a face gets the same 0-based coordinates through
either file. The box is the landmark box.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from binmark.data.io import read_pts
from binmark.data.loaders import register_dataset
from binmark.data.loaders.coco import read_coco_style
from binmark.data.loaders.common import check_split
from binmark.data.records import LandmarkDataset, Record, make_record
from binmark.data.skeletons import Skeleton, skeleton

__all__ = ["load_300w", "load_300vw", "SPLITS_300W"]

ORIGIN = 1.0
_COMMON = ("helen/testset", "lfpw/testset")
SPLITS_300W: dict[str, tuple[tuple[str, str], ...]] = {
    "train": tuple(("train", f) for f in ("afw", "helen/trainset", "lfpw/trainset")),
    "common": tuple(("common", f) for f in _COMMON),
    "challenging": (("challenging", "ibug"),),
    "full": tuple(("common", f) for f in _COMMON) + (("challenging", "ibug"),),
    "test": tuple(("test", f) for f in ("300W/01_Indoor", "300W/02_Outdoor")),
    "all": (("all", "."),),
}
SPLITS_300W["val"] = SPLITS_300W["full"]


def _image_for(pts: Path, folder: Path | None) -> Path:
    base = folder if folder is not None else pts.parent
    for ext in (".jpg", ".png", ".jpeg", ".JPG", ".PNG"):
        candidate = base / (pts.stem + ext)
        if candidate.is_file():
            return candidate
    return base / (pts.stem + ".jpg")  # reported as missing at load


def pts_records(
    files: Iterable[Path], schema: Skeleton, origin: float, subset: str, image_folder: Path | None = None
) -> list[Record]:
    """One record per ``.pts`` file; the image has the same stem (``image_folder`` or alongside)."""
    return [
        make_record(
            schema, read_pts(f), [True] * schema.num_keypoints, entry=f"landmark file {f}",
            origin=origin, image_path=_image_for(f, image_folder), image_id=str(f.with_suffix("")),
            subset=subset,
        )
        for f in files
    ]


def _json_or_pts(
    name: str, ann_file: Path, image_dir: Path | None, origin: float | None
) -> LandmarkDataset:
    o = ORIGIN if origin is None else origin
    if ann_file.suffix.lower() == ".json":
        return read_coco_style(ann_file, skeleton("300w"), image_dir or ann_file.parent, name, o)
    records = pts_records([ann_file], skeleton("300w"), o, "file", image_dir)
    return LandmarkDataset(name, skeleton("300w"), records, info={"ann_file": str(ann_file)})


@register_dataset("300w")
def load_300w(
    root: Path | None, split: str, ann_file: Path | None, image_dir: Path | None, origin: float | None
) -> LandmarkDataset:
    """300-W (see the module docstring); ``ann_file`` may be a ``.pts`` or an mmpose JSON."""
    if ann_file is not None:
        return _json_or_pts("300w", ann_file, image_dir, origin)
    check_split("300w", split, tuple(SPLITS_300W))
    if root is None:
        raise ValueError("300-W needs a root folder (the ibug release) or an ann_file")
    records = []
    for subset, folder in SPLITS_300W[split]:
        where = root / folder
        if not where.is_dir():
            raise FileNotFoundError(f"300-W split {split!r} needs folder {where}, which does not exist")
        pattern = "**/*.pts" if folder == "." else "*.pts"
        records += pts_records(sorted(where.glob(pattern)), skeleton("300w"), ORIGIN if origin is None else origin, subset)
    if not records:
        raise FileNotFoundError(f"no .pts files found for 300-W split {split!r} under {root}")
    return LandmarkDataset("300w", skeleton("300w"), records, info={"split": split})


@register_dataset("300vw")
def load_300vw(
    root: Path | None, split: str, ann_file: Path | None, image_dir: Path | None, origin: float | None
) -> LandmarkDataset:
    """300-VW frames: ``VIDEO/annot/*.pts`` with ``VIDEO/imgs/*.jpg``, or mmpose's JSON."""
    if ann_file is not None:
        return _json_or_pts("300vw", ann_file, image_dir, origin)
    check_split("300vw", split, ("val", "all"))
    if root is None:
        raise ValueError("300-VW needs a root folder or an ann_file")
    records = []
    for annot in sorted(p for p in root.glob("*/annot") if p.is_dir()):
        records += pts_records(
            sorted(annot.glob("*.pts")), skeleton("300w"), ORIGIN if origin is None else origin,
            annot.parent.name, annot.parent / "imgs",
        )
    if not records:
        raise FileNotFoundError(f"no VIDEO/annot/*.pts files found under {root}")
    return LandmarkDataset("300vw", skeleton("300w"), records, info={"split": split})
