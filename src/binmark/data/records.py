"""Annotated instances (``Record``), their validation, and the dataset sequence around them.

Coordinates: every sample binmark hands out uses **0-based pixel coordinates (x, y)**, where the
integer coordinate k is the centre of pixel k. Files written in MATLAB's 1-based convention are
converted in exactly one place, :func:`make_record`, by subtracting the loader's ``origin``.

A sample (``LandmarkDataset[i]``) is a dict with:

- ``image``: (H, W, 3) uint8 RGB;
- ``keypoints``: (K, 2) float64, 0-based pixels; points that are not annotated are (0, 0);
- ``visible``: (K,) bool, True where the point is annotated (and usable as a target);
- ``center``: (2,) float64 and ``scale``: float, the dataset's person/face box as centre and
  side / 200 px (the crop adds its own padding, see :mod:`binmark.data.transforms`);
- ``image_id``, ``image_path``, ``index``, and the dataset's extras where it defines them:
  ``head_size`` (MPII head-box diagonal in px, *before* PCKh's 0.6 factor), ``bbox`` (x, y, w, h),
  ``occluded`` ((K,) bool), ``area``, ``box_size``, ``subset``, ``attributes``, ``yaw``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from binmark.data.io import ImageReadError, read_image
from binmark.data.skeletons import Skeleton

__all__ = ["Record", "LandmarkDataset", "make_record", "check_inside", "ON_ERROR"]

log = logging.getLogger("binmark.data")

ON_ERROR = ("raise", "skip")


@dataclass
class Record:
    """One annotated instance, without its pixels (see the module docstring for the fields)."""

    keypoints: np.ndarray
    visible: np.ndarray
    center: np.ndarray
    scale: float
    entry: str
    image_path: Path | None = None
    pixels: np.ndarray | None = None  # images embedded in the annotation file (COFW .mat)
    image_size: tuple[int, int] | None = None  # (w, h) when the annotation states it
    extras: dict[str, Any] = field(default_factory=dict)

    def image(self) -> np.ndarray:
        """Decode (or return) the instance's image, (H, W, 3) uint8 RGB, as stored.

        EXIF orientation is not applied: annotations are made on the stored pixels (as HRNet
        reads them). Errors are :func:`binmark.data.io.read_image`'s, naming the entry too; a
        missing file is both an ``ImageReadError`` and a ``FileNotFoundError``.
        """
        if self.pixels is not None:
            return self.pixels
        if self.image_path is None:
            raise ValueError(f"{self.entry}: no image file and no embedded pixels")
        try:
            return read_image(self.image_path, exif=False)
        except ImageReadError as exc:
            raise type(exc)(f"{exc} (needed by {self.entry})") from None


def make_record(
    skeleton: Skeleton,
    keypoints: Any,
    visible: Any,
    *,
    entry: str,
    origin: float = 0.0,
    center: Any = None,
    scale: float | None = None,
    **fields: Any,
) -> Record:
    """Validate one annotation and convert it to 0-based pixels.

    Args:
        skeleton: the schema; the keypoint count must match it.
        keypoints: (K, 2) coordinates as written in the file.
        visible: (K,) truthy where the point is annotated.
        entry: where the annotation comes from ("FILE, entry N"), used in every error.
        origin: the file's pixel origin: 1 for MATLAB 1-based files, 0 otherwise. Subtracted
            from keypoints and center.
        center, scale: the dataset's box (file convention); derived from the landmark box when
            None (center = box centre, scale = longer side / 200).
        **fields: ``image_path``, ``pixels``, ``image_size`` and extras (anything else).

    Raises:
        ValueError: wrong keypoint count, NaN or infinite coordinates of an annotated point,
            no annotated point to derive a box from, or a non-positive scale.
    """
    k = skeleton.num_keypoints
    try:
        kp = np.asarray(keypoints, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{entry}: keypoint coordinates must be numbers, got {str(keypoints)[:80]}") from None
    if kp.ndim != 2 or kp.shape[1] != 2 or kp.shape[0] != k:
        count = kp.shape[0] if kp.ndim >= 1 else 0
        raise ValueError(
            f"{entry} has {count} keypoints, skeleton {skeleton.name!r} expects {k}"
        )
    vis = np.asarray(visible).reshape(-1).astype(bool)
    if vis.shape != (k,):
        raise ValueError(f"{entry} has {vis.size} visibility flags, skeleton {skeleton.name!r} expects {k}")
    bad = np.flatnonzero(vis & ~np.isfinite(kp).all(axis=1))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{entry}: keypoint {i} ({skeleton.keypoints[i]}) is annotated but its coordinates "
            f"are {kp[i].tolist()}"
        )
    kp = np.where(vis[:, None], kp - origin, 0.0)
    if center is None or scale is None:
        if not vis.any():
            raise ValueError(f"{entry}: no annotated keypoint and no center/scale to place a box")
        lo, hi = kp[vis].min(axis=0), kp[vis].max(axis=0)
        c = (lo + hi) / 2.0
        s = float(max(hi - lo)) / 200.0
    else:
        c = np.asarray(center, dtype=np.float64).reshape(2) - origin
        s = float(scale)
    if not np.isfinite(c).all() or not np.isfinite(s) or s <= 0:
        raise ValueError(f"{entry}: center {c.tolist()} / scale {s} do not describe a box")
    known = {"image_path", "pixels", "image_size"}
    extras = {key: v for key, v in fields.items() if key not in known}
    return Record(
        keypoints=kp,
        visible=vis,
        center=c,
        scale=s,
        entry=entry,
        image_path=Path(fields["image_path"]) if fields.get("image_path") is not None else None,
        pixels=fields.get("pixels"),
        image_size=fields.get("image_size"),
        extras=extras,
    )


def check_inside(record: Record, skeleton: Skeleton, width: int, height: int) -> None:
    """Refuse annotated points far outside the image: beyond one image size past any border.

    Points slightly outside the image are legitimate (truncated people, faces at the border);
    points further out than that are a broken annotation or a wrong origin.
    """
    kp, vis = record.keypoints, record.visible
    far = vis & (
        (kp[:, 0] < -width) | (kp[:, 0] > 2 * width) | (kp[:, 1] < -height) | (kp[:, 1] > 2 * height)
    )
    if far.any():
        i = int(np.flatnonzero(far)[0])
        raise ValueError(
            f"{record.entry}: keypoint {i} ({skeleton.keypoints[i]}) at "
            f"({kp[i, 0]:.1f}, {kp[i, 1]:.1f}) is far outside the {width}x{height} image"
        )


class LandmarkDataset(Sequence[dict[str, Any]]):
    """A sequence of samples: annotations parsed up front, images decoded on access.

    Args:
        name: dataset name.
        skeleton: the keypoint schema.
        records: the annotated instances.
        skipped: (entry, reason) of instances left out, reported by ``on_error="skip"``.
        info: counts and notes from the loader (e.g. crowd annotations ignored).
    """

    def __init__(
        self,
        name: str,
        skeleton: Skeleton,
        records: Sequence[Record],
        skipped: Iterable[tuple[str, str]] = (),
        info: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.skeleton = skeleton
        self.records = list(records)
        self.skipped = list(skipped)
        self.info = dict(info or {})

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:  # type: ignore[override]
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"dataset indices are integers, got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} samples")
        rec = self.records[int(index)]
        image = rec.image()
        check_inside(rec, self.skeleton, image.shape[1], image.shape[0])
        sample = {
            "image": image,
            "keypoints": rec.keypoints.copy(),
            "visible": rec.visible.copy(),
            "center": rec.center.copy(),
            "scale": rec.scale,
            "image_path": str(rec.image_path) if rec.image_path is not None else "",
            "index": int(index) % len(self),
        }
        sample.update(rec.extras)
        return sample

    def verify(self, on_error: str = "raise") -> LandmarkDataset:
        """Check every instance's image before use.

        ``"raise"`` only checks that the image files exist (cheap). ``"skip"`` decodes every
        image and drops instances whose image is missing, unreadable or truncated, or whose
        points fall far outside it; they are listed in ``skipped`` and logged.
        """
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        if on_error == "raise":
            for rec in self.records:
                if rec.pixels is None and (rec.image_path is None or not rec.image_path.is_file()):
                    raise FileNotFoundError(f"image {rec.image_path} does not exist (needed by {rec.entry})")
            return self
        kept = []
        for rec in self.records:
            try:
                image = rec.image()
                check_inside(rec, self.skeleton, image.shape[1], image.shape[0])
            except (FileNotFoundError, ValueError) as exc:
                self.skipped.append((rec.entry, str(exc)))
                continue
            kept.append(rec)
        self.records = kept
        if self.skipped:
            shown = "; ".join(f"{e}: {r}" for e, r in self.skipped[:5])
            more = f" (and {len(self.skipped) - 5} more)" if len(self.skipped) > 5 else ""
            log.warning("%s: skipped %d instance(s): %s%s", self.name, len(self.skipped), shown, more)
        return self

    def __repr__(self) -> str:
        return (
            f"LandmarkDataset({self.name!r}, {len(self)} samples, skeleton={self.skeleton.name!r}"
            + (f", {len(self.skipped)} skipped" if self.skipped else "")
            + ")"
        )
