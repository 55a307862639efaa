"""Drawing helpers shared by the synthetic face and pose renderers.

Everything takes an explicit ``numpy.random.Generator`` so that a sample is a pure function of
(seed, index). Images are (H, W, 3) uint8 RGB; coordinates are 0-based pixels (x, y).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "random_color",
    "background",
    "draw_occluders",
    "apply_lighting",
    "finish",
]

SHIFT = 4  # cv2 fixed-point bits: sub-pixel accurate polygon and line vertices
_ONE = 1 << SHIFT


def to_fixed(points: np.ndarray) -> np.ndarray:
    """Float (x, y) points → cv2 fixed-point int32 with ``SHIFT`` fractional bits."""
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32)


def random_color(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    """A random RGB colour with channels in [low, high)."""
    return tuple(int(v) for v in rng.integers(low, high, size=3))  # type: ignore[return-value]


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A cluttered background: a colour gradient, smooth noise, and random shapes and lines."""
    c0 = np.array(random_color(rng), dtype=np.float32)
    c1 = np.array(random_color(rng), dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    t = (np.cos(angle) * xx + np.sin(angle) * yy + 1.0) / 2.0
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    noise = rng.normal(0, 1, size=(size // 16 + 2, size // 16 + 2, 3)).astype(np.float32)
    noise = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    img += noise * rng.uniform(5, 30)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 12))):
        color = random_color(rng)
        kind = rng.integers(0, 3)
        if kind == 0:
            p0 = to_fixed(rng.uniform(-0.1, 1.1, 2) * size)
            p1 = to_fixed(rng.uniform(-0.1, 1.1, 2) * size)
            cv2.line(img, tuple(p0), tuple(p1), color, int(rng.integers(1, 8)), cv2.LINE_AA, SHIFT)
        elif kind == 1:
            c = to_fixed(rng.uniform(0, 1, 2) * size)
            axes = to_fixed(rng.uniform(0.03, 0.25, 2) * size)
            cv2.ellipse(img, tuple(c), tuple(axes), float(rng.uniform(0, 180)), 0, 360, color, -1,
                        cv2.LINE_AA, SHIFT)
        else:
            pts = to_fixed(rng.uniform(0, 1, (int(rng.integers(3, 6)), 2)) * size)
            cv2.fillPoly(img, [pts], color, cv2.LINE_AA, SHIFT)
    return img


def draw_occluders(
    rng: np.random.Generator, img: np.ndarray, count: int, region: tuple[float, float, float, float]
) -> np.ndarray:
    """Draw ``count`` opaque textured shapes inside ``region`` = (x0, y0, x1, y1) pixels.

    Returns:
        (H, W) bool mask of the occluded pixels (to mark hidden keypoints).
    """
    h, w = img.shape[:2]
    mask = np.zeros((h, w), dtype=np.uint8)
    x0, y0, x1, y1 = region
    for _ in range(count):
        shape = np.zeros((h, w), dtype=np.uint8)
        c = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
        r = rng.uniform(0.08, 0.25) * max(x1 - x0, y1 - y0)
        if rng.random() < 0.5:
            axes = to_fixed(np.array([r, r * rng.uniform(0.3, 1.0)]))
            cv2.ellipse(shape, tuple(to_fixed(c)), tuple(axes), float(rng.uniform(0, 180)), 0, 360,
                        255, -1, cv2.LINE_8, SHIFT)
        else:
            angle = rng.uniform(0, np.pi)
            d = np.array([np.cos(angle), np.sin(angle)])
            n = np.array([-d[1], d[0]])
            half_l, half_w = r, r * rng.uniform(0.2, 0.6)
            corners = [c + sx * half_l * d + sy * half_w * n for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
            cv2.fillPoly(shape, [to_fixed(np.array(corners))], 255, cv2.LINE_8, SHIFT)
        color = np.array(random_color(rng), dtype=np.float32)
        texture = rng.normal(0, rng.uniform(2, 20), size=(h, w, 1)).astype(np.float32)
        region_mask = shape > 0
        painted = np.clip(color + texture, 0, 255).astype(np.uint8)
        img[region_mask] = painted[region_mask]
        mask |= shape
    return mask > 0


def apply_lighting(rng: np.random.Generator, img: np.ndarray, strength: float = 0.5) -> np.ndarray:
    """Multiply by a smooth directional light field in [1 - strength, 1 + strength/2]."""
    h, w = img.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (np.cos(angle) * (xx / max(w - 1, 1) - 0.5) + np.sin(angle) * (yy / max(h - 1, 1) - 0.5)) + 0.5
    gain = 1.0 - strength * rng.uniform(0.2, 1.0) * t
    gain = gain * rng.uniform(0.8, 1.2)
    return np.clip(img.astype(np.float32) * gain[..., None], 0, 255).astype(np.uint8)


def finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Camera effects: optional Gaussian blur, then sensor noise."""
    if rng.random() < 0.5:
        sigma = rng.uniform(0.3, 1.5)
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    noise = rng.normal(0, rng.uniform(1, 8), size=img.shape).astype(np.float32)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
