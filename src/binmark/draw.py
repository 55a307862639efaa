"""Drawing landmarks on images: skeleton limbs and points in the schema's colours, and grids.

Coordinates are 0-based pixels (x, y); drawing is sub-pixel accurate (cv2 fixed point).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from binmark.data.skeletons import Skeleton
from binmark.fileio import atomic_write

__all__ = ["draw_keypoints", "grid", "preview_grid", "write_png"]

_SHIFT = 4


def _fixed(p: np.ndarray) -> tuple[int, int]:
    return int(round(p[0] * (1 << _SHIFT))), int(round(p[1] * (1 << _SHIFT)))


def draw_keypoints(
    image: np.ndarray,
    keypoints: np.ndarray,
    skeleton: Skeleton,
    visible: np.ndarray | None = None,
    radius: float | None = None,
) -> np.ndarray:
    """A copy of ``image`` with limbs and points drawn.

    Args:
        image: (H, W, 3) uint8 RGB.
        keypoints: (K, 2) pixels.
        skeleton: the schema (limbs and colours).
        visible: (K,) bool; hidden points are drawn hollow and their limbs are left out.
        radius: point radius in px (default: scaled to the image size).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    out = np.ascontiguousarray(image.copy())
    kp = np.asarray(keypoints, dtype=np.float64)
    vis = np.ones(len(kp), bool) if visible is None else np.asarray(visible, bool)
    r = radius if radius is not None else max(1.5, min(out.shape[:2]) / 120)
    thick = max(1, int(round(r / 1.5)))
    for a, b in skeleton.limbs:
        if vis[a] and vis[b]:
            color = tuple(int((ca + cb) / 2) for ca, cb in zip(skeleton.colors[a], skeleton.colors[b]))
            cv2.line(out, _fixed(kp[a]), _fixed(kp[b]), color, thick, cv2.LINE_AA, _SHIFT)
    for i, p in enumerate(kp):
        if not np.isfinite(p).all():
            continue
        rr = int(round(r * (1 << _SHIFT)))
        if vis[i]:
            cv2.circle(out, _fixed(p), rr, (255, 255, 255), -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(out, _fixed(p), int(rr * 0.7), skeleton.colors[i], -1, cv2.LINE_AA, _SHIFT)
        else:
            cv2.circle(out, _fixed(p), rr, skeleton.colors[i], thick, cv2.LINE_AA, _SHIFT)
    return out


def grid(images: Sequence[np.ndarray], columns: int = 4, gap: int = 4) -> np.ndarray:
    """Tile equally sized (H, W, 3) images row by row with a ``gap``-px white border."""
    if not images:
        raise ValueError("grid needs at least one image")
    h, w = images[0].shape[:2]
    if any(im.shape[:2] != (h, w) for im in images):
        raise ValueError("grid images must all have the same size")
    rows = -(-len(images) // columns)
    canvas = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap, 3), 255, dtype=np.uint8)
    for i, im in enumerate(images):
        y, x = gap + (i // columns) * (h + gap), gap + (i % columns) * (w + gap)
        canvas[y : y + h, x : x + w] = im
    return canvas


def write_png(path: str, image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB image as PNG, atomically."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not encode {path} as PNG")
    atomic_write(path, buf.tobytes())


def preview_grid(
    samples: Sequence[dict], schema: Skeleton, count: int = 16, columns: int = 4, crop: int | None = None
) -> np.ndarray:
    """A grid of the first ``count`` samples with their landmarks drawn.

    Args:
        samples: a dataset (sequence of sample dicts).
        schema: its skeleton.
        count: how many samples.
        columns: grid columns.
        crop: show each sample's box (padding 1.25, as training crops it) at this size in px;
            None shows whole images, which must then all have the same size.
    """
    from binmark.data.transforms import crop_matrix, transform_points, warp

    tiles = []
    for i in range(min(count, len(samples))):
        s = samples[i]
        image, kp = s["image"], s["keypoints"]
        if crop is not None:
            m = crop_matrix(s["center"], s["scale"] * 1.25, crop)
            image, kp = warp(image, m, crop), transform_points(kp, m)
        tiles.append(draw_keypoints(image, kp, schema, s["visible"]))
    return grid(tiles, min(columns, len(tiles)))
