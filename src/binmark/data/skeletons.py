"""Keypoint schemas: names, flip pairs, benchmark normalizers, and colours/limbs for drawing.

A :class:`Skeleton` is a value that augmentation (flip), metrics (normalizers, groups) and drawing
all read. Joint orders and flip pairs follow the benchmarks' reference code; indices are 0-based:
MPII and COCO — HRNet (github.com/leoxiaobin/deep-high-resolution-net.pytorch,
lib/dataset/{mpii,coco}.py; COCO sigmas from github.com/cocodataset/cocoapi,
PythonAPI/pycocotools/cocoeval.py); LSP — the joint order in github.com/bearpaw/pytorch-pose,
miscs/gen_lsp.m (flip pairs derived from it); faces — github.com/open-mmlab/mmpose,
configs/_base_/datasets/{300w,aflw,wflw,cofw}.py.

Normalizers (``Skeleton.normalizer``) name what each benchmark divides errors by:

========  =========================================================================================
head      MPII PCKh: the head-box diagonal (× 0.6, applied by the metric) — from the annotations
torso     LSP PCK@0.2: ‖left shoulder − right hip‖ of the ground truth (``Skeleton.torso``)
area      COCO OKS: the instance's segment area with per-keypoint ``sigmas``
ocular    inter-ocular distance between the outer eye corners ``Skeleton.ocular`` (300-W, WFLW, COFW)
box       AFLW-19: the face-box size of the annotation (``box_size``)
bbox      AFLW2000-3D: √(w·h) of the ground-truth landmark box
========  =========================================================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from binmark._registry import Registry

__all__ = ["Skeleton", "SKELETONS", "skeleton", "infer_flip_pairs"]

RGB = tuple[int, int, int]
LEFT: RGB = (0, 200, 0)  # mmpose's visualizer colours: left green, right orange, centre blue
RIGHT: RGB = (255, 128, 0)
CENTRE: RGB = (51, 153, 255)
NORMALIZERS = ("head", "torso", "area", "ocular", "box", "bbox", "none")

_SIDE_WORD = re.compile(r"(?<![a-z])(left|right)(?![a-z])", re.IGNORECASE)


def _swap_side(name: str) -> str | None:
    """'left_knee' → 'right_knee'; None when the name has no left/right word."""
    if not _SIDE_WORD.search(name):
        return None

    def swap(m: re.Match[str]) -> str:
        word = m.group(0)
        other = "right" if word.lower() == "left" else "left"
        return other.upper() if word.isupper() else other.capitalize() if word[0].isupper() else other

    return _SIDE_WORD.sub(swap, name)


def infer_flip_pairs(names: Sequence[str]) -> list[tuple[int, int]]:
    """Flip pairs from names that differ only by the word left/right ('left_eye' ↔ 'right_eye').

    The word must stand alone (delimited by start, end, or a non-letter), in any case.
    """
    index = {n: i for i, n in enumerate(names)}
    pairs = []
    for i, name in enumerate(names):
        other = _swap_side(name)
        j = index.get(other) if other is not None else None
        if j is not None and i < j:
            pairs.append((i, j))
    return pairs


def _side_colour(name: str, index: int, pairs: Sequence[tuple[int, int]]) -> RGB:
    m = _SIDE_WORD.search(name)
    if m:
        return LEFT if m.group(0).lower() == "left" else RIGHT
    for a, b in pairs:  # unnamed sides: the first of a pair is the subject's right (300-W, WFLW)
        if index == a:
            return RIGHT
        if index == b:
            return LEFT
    return CENTRE


@dataclass(frozen=True)
class Skeleton:
    """A keypoint schema.

    Args:
        name: schema name ("mpii", "300w", a custom name, …).
        keypoints: K keypoint names, in annotation order.
        flip_pairs: index pairs (i, j) swapped by a horizontal flip.
        limbs: index pairs drawn as lines.
        normalizer: the benchmark's error normalizer (see the module docstring).
        ocular: (i, j) outer eye corners for inter-ocular normalization, or None.
        pupils: two index groups whose centroids are the pupils, or None.
        torso: (i, j) for the LSP torso normalizer, or None.
        sigmas: per-keypoint OKS sigmas (COCO), or None.

    Raises:
        ValueError: duplicate names, or pairs with out-of-range, repeated or self indices.
    """

    name: str
    keypoints: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...] = ()
    limbs: tuple[tuple[int, int], ...] = ()
    normalizer: str = "none"
    ocular: tuple[int, int] | None = None
    pupils: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    torso: tuple[int, int] | None = None
    sigmas: tuple[float, ...] | None = None
    colors: tuple[RGB, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        k = len(self.keypoints)
        if k == 0:
            raise ValueError(f"skeleton {self.name!r} has no keypoints")
        if len(set(self.keypoints)) != k:
            dupes = sorted({n for n in self.keypoints if self.keypoints.count(n) > 1})
            raise ValueError(f"skeleton {self.name!r}: duplicate keypoint names {dupes}")
        seen: set[int] = set()
        for a, b in self.flip_pairs:
            self._check_index(a, "flip_pairs")
            self._check_index(b, "flip_pairs")
            if a == b or a in seen or b in seen:
                raise ValueError(
                    f"skeleton {self.name!r}: flip pair ({a}, {b}) repeats an index or pairs a "
                    "point with itself; each point may appear in at most one pair"
                )
            seen.update((a, b))
        for a, b in self.limbs:
            self._check_index(a, "limbs")
            self._check_index(b, "limbs")
        if self.normalizer not in NORMALIZERS:
            raise ValueError(
                f"skeleton {self.name!r}: normalizer {self.normalizer!r} is not one of {NORMALIZERS}"
            )
        if self.sigmas is not None and len(self.sigmas) != k:
            raise ValueError(f"skeleton {self.name!r}: {len(self.sigmas)} sigmas for {k} keypoints")
        if not self.colors:
            colors = tuple(_side_colour(n, i, self.flip_pairs) for i, n in enumerate(self.keypoints))
            object.__setattr__(self, "colors", colors)

    def _check_index(self, i: int, what: str) -> None:
        if not isinstance(i, int) or not 0 <= i < len(self.keypoints):
            raise ValueError(
                f"skeleton {self.name!r}: {what} index {i!r} is out of range 0..{len(self.keypoints) - 1}"
            )

    @property
    def num_keypoints(self) -> int:
        """K."""
        return len(self.keypoints)

    @property
    def flip_permutation(self) -> list[int]:
        """``perm`` such that ``flipped[i] = original[perm[i]]`` after a horizontal flip."""
        perm = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def index(self, name: str) -> int:
        """Index of a keypoint name."""
        try:
            return self.keypoints.index(name)
        except ValueError:
            raise ValueError(f"skeleton {self.name!r} has no keypoint {name!r}") from None

    @classmethod
    def from_coco(
        cls,
        category: Mapping[str, Any],
        flip_pairs: Sequence[Sequence[int]] | None = None,
        sigmas: Sequence[float] | None = None,
        name: str | None = None,
    ) -> Skeleton:
        """A custom skeleton from a COCO-format category.

        Args:
            category: a COCO ``categories`` entry with ``keypoints`` (names) and optionally
                ``skeleton`` (1-based index pairs, as COCO writes them).
            flip_pairs: 0-based pairs; inferred from left/right names when None.
            sigmas: OKS sigmas, one per keypoint (None: the metric's default applies).
            name: schema name (default: the category's ``name``).
        """
        names = category.get("keypoints")
        if not names or not all(isinstance(n, str) for n in names):
            raise ValueError(
                f"COCO category {category.get('name', '?')!r} has no keypoint names: a custom "
                "skeleton needs the category's 'keypoints' list"
            )
        links = category.get("skeleton") or []
        limbs = tuple((int(a) - 1, int(b) - 1) for a, b in links)
        pairs = infer_flip_pairs(names) if flip_pairs is None else [tuple(p) for p in flip_pairs]
        return cls(
            name=name or str(category.get("name", "custom")),
            keypoints=tuple(names),
            flip_pairs=tuple((int(a), int(b)) for a, b in pairs),
            limbs=limbs,
            normalizer="area",
            sigmas=tuple(float(s) for s in sigmas) if sigmas is not None else None,
        )


SKELETONS: Registry[Skeleton] = Registry("skeleton")


def skeleton(name: str) -> Skeleton:
    """The schema registered as ``name``: mpii, lsp, coco, 300w, aflw19, aflw2000, wflw, cofw."""
    return SKELETONS.get(name)


def _add(s: Skeleton) -> None:
    SKELETONS.register(s.name)(s)


def _chain(*idx: int, closed: bool = False) -> list[tuple[int, int]]:
    links = list(zip(idx[:-1], idx[1:]))
    return links + [(idx[-1], idx[0])] if closed else links


# --- bodies -------------------------------------------------------------------------------------
MPII_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis",
    "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder",
    "left_shoulder", "left_elbow", "left_wrist",
)  # fmt: skip
_add(
    Skeleton(
        "mpii",
        MPII_NAMES,
        tuple(infer_flip_pairs(MPII_NAMES)),
        limbs=tuple(
            _chain(0, 1, 2, 6) + _chain(5, 4, 3, 6) + _chain(6, 7, 8, 9)
            + _chain(10, 11, 12, 7) + _chain(15, 14, 13, 7)
        ),
        normalizer="head",
    )
)

LSP_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "neck", "head_top",
)  # fmt: skip
_add(
    Skeleton(
        "lsp",
        LSP_NAMES,
        tuple(infer_flip_pairs(LSP_NAMES)),
        limbs=tuple(
            _chain(0, 1, 2) + _chain(5, 4, 3) + _chain(2, 8) + _chain(3, 9) + _chain(2, 3)
            + _chain(6, 7, 8, 12) + _chain(11, 10, 9, 12) + _chain(12, 13)
        ),
        normalizer="torso",
        torso=(9, 2),  # left shoulder ↔ right hip (CPM run_benchmark.m, "evalLSP_official")
    )
)

COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
COCO_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
    0.087, 0.087, 0.089, 0.089,
)  # fmt: skip  (pycocotools Params.setKpParams)
COCO_LINKS_1BASED = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip
_add(
    Skeleton(
        "coco",
        COCO_NAMES,
        tuple(infer_flip_pairs(COCO_NAMES)),
        limbs=tuple((a - 1, b - 1) for a, b in COCO_LINKS_1BASED),
        normalizer="area",
        sigmas=COCO_SIGMAS,
    )
)


# --- faces --------------------------------------------------------------------------------------
def _numbered(prefix: str, n: int) -> list[str]:
    return [f"{prefix}_{i}" for i in range(n)]


# 300-W / iBUG 68 points; "right" is the subject's right (the left of the image).
FACE68_NAMES = tuple(
    _numbered("jaw", 17) + _numbered("right_brow", 5) + _numbered("left_brow", 5)
    + _numbered("nose_bridge", 4) + _numbered("nose_base", 5) + _numbered("right_eye", 6)
    + _numbered("left_eye", 6) + _numbered("outer_lip", 12) + _numbered("inner_lip", 8)
)
FACE68_FLIP = (
    (0, 16), (1, 15), (2, 14), (3, 13), (4, 12), (5, 11), (6, 10), (7, 9), (17, 26), (18, 25),
    (19, 24), (20, 23), (21, 22), (31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42),
    (40, 47), (41, 46), (48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63),
    (65, 67),
)  # fmt: skip  (mmpose 300w.py; face-alignment shuffle_lr)
FACE68_LIMBS = tuple(
    _chain(*range(0, 17)) + _chain(*range(17, 22)) + _chain(*range(22, 27))
    + _chain(*range(27, 31)) + _chain(*range(31, 36)) + _chain(*range(36, 42), closed=True)
    + _chain(*range(42, 48), closed=True) + _chain(*range(48, 60), closed=True)
    + _chain(*range(60, 68), closed=True)
)
FACE68_PUPILS = (tuple(range(36, 42)), tuple(range(42, 48)))
for _name, _norm in (("300w", "ocular"), ("aflw2000", "bbox")):
    _add(
        Skeleton(
            _name,
            FACE68_NAMES,
            FACE68_FLIP,
            FACE68_LIMBS,
            normalizer=_norm,
            ocular=(36, 45),
            pupils=FACE68_PUPILS,
        )
    )

AFLW19_NAMES = (
    "left_brow_left", "left_brow_center", "left_brow_right", "right_brow_left",
    "right_brow_center", "right_brow_right", "left_eye_left", "left_eye_center",
    "left_eye_right", "right_eye_left", "right_eye_center", "right_eye_right", "nose_left",
    "nose_center", "nose_right", "mouth_left", "mouth_center", "mouth_right", "chin",
)  # fmt: skip  (AFLW's 21 points less the two ears; AFLW names sides as seen in the image)
_add(
    Skeleton(
        "aflw19",
        AFLW19_NAMES,
        ((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9), (12, 14), (15, 17)),
        limbs=tuple(
            _chain(0, 1, 2) + _chain(3, 4, 5) + _chain(6, 7, 8) + _chain(9, 10, 11)
            + _chain(12, 13, 14) + _chain(15, 16, 17)
        ),
        normalizer="box",
        ocular=(6, 11),
        pupils=((7,), (10,)),
    )
)

WFLW_NAMES = tuple(
    _numbered("contour", 33) + _numbered("right_brow", 9) + _numbered("left_brow", 9)
    + _numbered("nose_bridge", 4) + _numbered("nose_base", 5) + _numbered("right_eye", 8)
    + _numbered("left_eye", 8) + _numbered("outer_lip", 12) + _numbered("inner_lip", 8)
    + ["right_pupil", "left_pupil"]
)
WFLW_FLIP = tuple((i, 32 - i) for i in range(16)) + (
    (33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47),
    (60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73), (55, 59),
    (56, 58), (76, 82), (77, 81), (78, 80), (87, 83), (86, 84), (88, 92), (89, 91), (95, 93),
    (96, 97),
)  # fmt: skip  (HRNet-face MATCHED_PARTS, mmpose wflw.py)
_add(
    Skeleton(
        "wflw",
        WFLW_NAMES,
        WFLW_FLIP,
        limbs=tuple(
            _chain(*range(0, 33)) + _chain(*range(33, 42), closed=True)
            + _chain(*range(42, 51), closed=True) + _chain(*range(51, 55))
            + _chain(*range(55, 60)) + _chain(*range(60, 68), closed=True)
            + _chain(*range(68, 76), closed=True) + _chain(*range(76, 88), closed=True)
            + _chain(*range(88, 96), closed=True)
        ),
        normalizer="ocular",
        ocular=(60, 72),
        pupils=((96,), (97,)),
    )
)

# COFW's 29 points are published without names; they are numbered, with the benchmark's pairs.
_add(
    Skeleton(
        "cofw",
        tuple(f"cofw_{i:02d}" for i in range(29)),
        ((0, 1), (4, 6), (2, 3), (5, 7), (8, 9), (10, 11), (12, 14), (16, 17), (13, 15),
         (18, 19), (22, 23)),  # fmt: skip  (mmpose cofw.py, HRNet-face)
        normalizer="ocular",
        ocular=(8, 9),
        pupils=((16,), (17,)),
    )
)
