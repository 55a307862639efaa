"""Leeds Sports Pose (LSP) and LSP-extended from their ``joints.mat`` files.

Layout: ``lsp_dataset/joints.mat`` (``joints``: 3 × 14 × 2000, rows x, y, flag) with
``lsp_dataset/images/im0001.jpg`` …; ``lspet_dataset/joints.mat`` (14 × 3 × 10000, columns x, y,
flag) with ``lspet_dataset/images/im00001.jpg`` … (bearpaw ``gen_lsp.m``).

Splits (the standard use): "train" = LSP images 1–1000 plus all of LSPET when present; "val" and
"test" = LSP images 1001–2000 (the PCK@0.2 test set). A file of LSP's shape with 2,000 images keeps
this split; any other ``joints.mat`` (LSPET, or a subset in LSP's layout) is used whole.

Flags: LSP annotates every joint, occluded ones included, so ``visible`` is all True and the flag
becomes ``occluded`` (flag 1, as bearpaw's v = 1 − flag reads it). LSPET's flag is used as
``visible`` (1 = annotated and visible), as bearpaw does. Coordinates are MATLAB 1-based (origin 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from binmark.data.io import read_mat
from binmark.data.loaders import register_dataset
from binmark.data.loaders.common import check_split, find_file
from binmark.data.records import LandmarkDataset, Record, make_record
from binmark.data.skeletons import skeleton

__all__ = ["load_lsp"]

ORIGIN = 1.0
LSP_TRAIN = 1000  # LSP images 1..1000 train, 1001..2000 test


def _joints(path: Path) -> tuple[np.ndarray, bool]:
    """(N, 14, 3) joints and whether the file is LSP (3 × 14 × N) rather than LSPET (14 × 3 × N)."""
    mat = read_mat(path)
    if "joints" not in mat:
        raise ValueError(f"LSP file {path} has no 'joints' variable")
    j = np.asarray(mat["joints"], dtype=np.float64)
    if j.ndim == 3 and j.shape[:2] == (3, 14):
        return j.transpose(2, 1, 0), True
    if j.ndim == 3 and j.shape[:2] == (14, 3):
        return j.transpose(2, 0, 1), False
    raise ValueError(f"LSP file {path}: 'joints' has shape {j.shape}, expected (3, 14, N) or (14, 3, N)")


def _records(path: Path, images: Path, split: str | None, origin: float) -> list[Record]:
    """Records of one joints file; ``split`` selects LSP's standard halves (None: all images)."""
    joints, is_lsp = _joints(path)
    indices = range(len(joints))
    if is_lsp and split is not None and len(joints) == 2 * LSP_TRAIN:
        indices = range(LSP_TRAIN) if split == "train" else range(LSP_TRAIN, 2 * LSP_TRAIN)
    schema = skeleton("lsp")
    digits = 4 if is_lsp else 5
    out = []
    for i in indices:
        flags = joints[i, :, 2]
        visible = np.ones(14, dtype=bool) if is_lsp else flags > 0
        extras = {"occluded": flags > 0} if is_lsp else {}
        out.append(
            make_record(
                schema, joints[i, :, :2], visible, entry=f"LSP file {path}, image {i + 1}",
                origin=origin, image_path=images / f"im{i + 1:0{digits}d}.jpg", image_id=i + 1,
                **extras,
            )
        )
    return out


@register_dataset("lsp")
def load_lsp(
    root: Path | None, split: str, ann_file: Path | None, image_dir: Path | None, origin: float | None
) -> LandmarkDataset:
    """LSP / LSP-extended (see the module docstring)."""
    check_split("lsp", split, ("train", "val", "test"))
    o = ORIGIN if origin is None else origin
    path = find_file(root, ann_file, ["lsp_dataset/joints.mat"], "LSP joints file")
    images = image_dir if image_dir is not None else path.parent / "images"
    records = _records(path, images, split, o)
    if split == "train" and ann_file is None and root is not None:
        extended = root / "lspet_dataset" / "joints.mat"
        if extended.is_file():
            records += _records(extended, extended.parent / "images", None, o)
    return LandmarkDataset("lsp", skeleton("lsp"), records, info={"ann_file": str(path)})
