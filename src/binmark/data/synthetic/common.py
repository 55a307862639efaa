"""Drawing helpers shared by the synthetic face and pose renderers.

Everything takes an explicit ``numpy.random.Generator`` so that a sample is a pure function of
(seed, index). Images are (H, W, 3) uint8 RGB; coordinates are 0-based pixels (x, y).
"""

from __future__ import annotations

import functools

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
    """A cluttered background: a colour gradient, smooth noise, and random shapes and lines.

    The gradient and the noise are smooth, so they are built on a coarse grid and upsampled.
    """
    c0 = np.array(random_color(rng), dtype=np.float32)
    c1 = np.array(random_color(rng), dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    cells = size // 16 + 2
    ramp = np.linspace(0.0, 1.0, cells, dtype=np.float32)
    t = (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None] + 1.0) / 2.0
    coarse = c0 + (c1 - c0) * t[..., None]
    coarse += rng.standard_normal((cells, cells, 3), dtype=np.float32) * rng.uniform(5, 30)
    img = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img, 0, 255, out=img).astype(np.uint8)
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
        ys, xs = np.nonzero(shape)
        if ys.size == 0:
            continue
        color = np.array(random_color(rng), dtype=np.float32)
        texture = rng.standard_normal((ys.size, 1), dtype=np.float32) * rng.uniform(2, 20)
        img[ys, xs] = np.clip(color + texture, 0, 255).astype(np.uint8)
        mask |= shape
    return mask > 0


def apply_lighting(rng: np.random.Generator, img: np.ndarray, strength: float = 0.5) -> np.ndarray:
    """Multiply by a smooth directional light field in [1 - strength, 1 + strength/2]."""
    h, w = img.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    xs = np.linspace(-0.5, 0.5, w, dtype=np.float32)
    ys = np.linspace(-0.5, 0.5, h, dtype=np.float32)
    t = np.cos(angle) * xs[None, :] + np.sin(angle) * ys[:, None] + 0.5
    gain = (1.0 - strength * rng.uniform(0.2, 1.0) * t) * rng.uniform(0.8, 1.2)
    out = img.astype(np.float32) * gain[..., None]
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _noise_bank(height: int, width: int) -> np.ndarray:
    """Fixed unit Gaussian noise twice the image size (read-only), cut at random offsets."""
    bank = np.random.default_rng(20261121).standard_normal((2 * height, 2 * width, 3), dtype=np.float32)
    bank.flags.writeable = False
    return bank


def finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Camera effects: optional Gaussian blur, then sensor noise.

    The noise is a window of a fixed noise bank at a random offset and strength: drawing fresh
    Gaussian noise for every pixel cost more than the rest of a sample.
    """
    if rng.random() < 0.5:
        sigma = rng.uniform(0.3, 1.5)
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    h, w = img.shape[:2]
    y, x = int(rng.integers(0, h + 1)), int(rng.integers(0, w + 1))
    noisy = _noise_bank(h, w)[y : y + h, x : x + w] * np.float32(rng.uniform(1, 8))
    noisy += img
    return np.clip(noisy, 0, 255, out=noisy).astype(np.uint8)
