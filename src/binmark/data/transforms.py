"""The top-down crop: an affine map from image pixels to network-input pixels, and its inverse.

Convention: 0-based pixel coordinates, integer k = centre of pixel k, so pixel k covers
[k − ½, k + ½]. A crop of ``output_size = (w, h)`` takes a box centred on ``center`` that is
``scale · pixel_std`` pixels tall and ``scale · pixel_std · w / h`` wide (the 200-px reference box
of MPII and the hourglass papers: ``pixel_std = 200``), rotated by ``rotation`` degrees
counter-clockwise as seen on screen (the image content turns anticlockwise), and maps it exactly
onto [−½, w − ½] × [−½, h − ½]: the box centre lands on ((w − 1)/2, (h − 1)/2).

This is the pixel-centre-exact mapping (as in UDP, Huang et al., CVPR 2020); HRNet's
``get_affine_transform`` maps the centre to (w/2, h/2), half a pixel off.

A horizontal flip of the crop is the map x → w − 1 − x composed after it, with the keypoints'
left/right labels swapped by the skeleton's flip permutation.

Boxes (x, y, w, h) follow COCO: (x, y) is the top-left corner of the box's top-left pixel and the
box covers w × h whole pixels, so in binmark's pixel-centre coordinates it spans
[x − ½, x + w − ½] and its centre is (x + w/2 − ½, y + h/2 − ½) (:func:`box_center_scale`).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from binmark.sizes import as_size

__all__ = [
    "PIXEL_STD",
    "box_center_scale",
    "crop_matrix",
    "flip_matrix",
    "compose",
    "invert",
    "transform_points",
    "warp",
    "flip_keypoints",
]

PIXEL_STD = 200.0


def box_center_scale(box: Sequence[float], output_size: int | Sequence[int] = 1) -> tuple[np.ndarray, float]:
    """The crop box of a (x, y, w, h) box (COCO convention, see the module docstring).

    Args:
        box: (x, y, w, h) pixels; w, h > 0.
        output_size: the crop's (w, h): the box is widened or heightened to its aspect ratio so
            that all of it fits (a wide person in a tall crop); 1 keeps the longer side.

    Returns:
        ``(center, scale)``: (2,) float64 pixel-centre coordinates, and the fitted box's height
        / :data:`PIXEL_STD` (no padding).
    """
    x, y, w, h = (float(v) for v in box)
    if not (w > 0 and h > 0):
        raise ValueError(f"box {list(box)} needs positive width and height (x, y, w, h)")
    w_out, h_out = as_size(output_size)
    center = np.array([x + w / 2.0 - 0.5, y + h / 2.0 - 0.5])
    return center, max(h, w * h_out / w_out) / PIXEL_STD


def crop_matrix(
    center: Sequence[float],
    scale: float,
    output_size: int | Sequence[int],
    rotation: float = 0.0,
    pixel_std: float = PIXEL_STD,
) -> np.ndarray:
    """The 2×3 affine matrix from image pixels to crop pixels (see the module docstring).

    Args:
        center: (x, y) box centre in image pixels.
        scale: box height / ``pixel_std``.
        output_size: crop size (w, h) in pixels, or one int for a square.
        rotation: degrees; positive turns the image content anticlockwise in the crop.
        pixel_std: the reference box side (200 px).

    Returns:
        (2, 3) float64 matrix M with [x', y'] = M @ [x, y, 1].
    """
    w, h = as_size(output_size)
    if scale <= 0 or not np.isfinite(scale):
        raise ValueError(f"crop scale must be a positive number, got {scale}")
    zoom = h / (scale * pixel_std)
    theta = np.deg2rad(rotation)
    # y grows downward, so an anticlockwise turn on screen is a clockwise one in (x, y) algebra.
    cos, sin = np.cos(theta) * zoom, np.sin(theta) * zoom
    cx, cy = float(center[0]), float(center[1])
    linear = np.array([[cos, sin], [-sin, cos]])
    offset = np.array([(w - 1) / 2.0, (h - 1) / 2.0]) - linear @ np.array([cx, cy])
    return np.hstack([linear, offset[:, None]])


def flip_matrix(width: int) -> np.ndarray:
    """The 2×3 affine matrix of a horizontal flip inside a ``width``-px wide image: x → w − 1 − x."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2×3 matrix of ``outer ∘ inner`` (apply ``inner`` first)."""
    last = np.array([[0.0, 0.0, 1.0]])
    return (np.vstack([outer, last]) @ np.vstack([inner, last]))[:2]


def invert(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2×3 affine matrix."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine matrix to (..., 2) points; returns float64 of the same shape."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def warp(
    image: np.ndarray,
    matrix: np.ndarray,
    output_size: int | Sequence[int],
    border_value: int | tuple[int, ...] = 0,
) -> np.ndarray:
    """Resample ``image`` through ``matrix`` (bilinear, constant border) into ``output_size``."""
    w, h = as_size(output_size)
    return cv2.warpAffine(
        image,
        np.asarray(matrix, dtype=np.float64),
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border_value,
    )


def flip_keypoints(
    keypoints: np.ndarray, visible: np.ndarray, width: int, permutation: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror (K, 2) keypoints in a ``width``-px image and swap left/right labels.

    Args:
        keypoints: (K, 2) 0-based pixels.
        visible: (K,) flags, permuted alongside.
        width: image width, px.
        permutation: ``Skeleton.flip_permutation``.
    """
    perm = np.asarray(permutation)
    kp = np.asarray(keypoints, dtype=np.float64)[perm].copy()
    kp[:, 0] = width - 1 - kp[:, 0]
    return kp, np.asarray(visible)[perm].copy()
