"""Training augmentation as in the seeds' recipes: scale, rotation (often none), flip, colour.

Defaults follow the seed authors' FAN trainer (github.com/1adrianb/face-alignment-training,
``dataset-images.lua``): scale s = 1 + N(0, 0.3) clipped to [0.7, 1.3]; rotation N(0, 30°) clipped
to ±60° and applied with probability 0.4 (set to 0 with probability 0.6); horizontal flip
with probability 0.5 (with the skeleton's left/right swap); per-channel colour × U(0.7, 1.3).
Other recipes are the same fields with other values:

=================  =========================  ===============================================
recipe             scale                      rotation / colour
=================  =========================  ===============================================
FAN (default)      linear, σ 0.3, clip 0.3    σ 30°, clip 60°, p 0.4; colour 0.7–1.3
hourglass, CU-Net  log2, σ 0.25, clip 0.5     σ 30°, clip 60°, p 0.4; colour 0.6–1.4
HRNet (MPII)       linear, σ 0.25, clip 0.25  σ 30°, clip 60°, p 0.6; no colour (1.0–1.0)
=================  =========================  ===============================================

Every draw comes from a generator the dataset seeds with (seed, epoch, index), so a sample's
augmentation does not depend on which DataLoader worker renders it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Augment", "AugmentDraw"]

SCALE_MODES = ("linear", "log2")


@dataclass(frozen=True)
class AugmentDraw:
    """One sample's augmentation: box scale factor, rotation (degrees), flip, colour gains."""

    scale: float = 1.0
    rotation: float = 0.0
    flip: bool = False
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Augment:
    """Augmentation ranges (see the module docstring for the recipes).

    Args:
        scale_sigma: σ of the scale draw g.
        scale_limit: g is clipped to ±scale_limit.
        scale_mode: "linear" (box × (1 + g)) or "log2" (box × 2^g).
        rotation_sigma: σ of the rotation, degrees.
        rotation_limit: rotation clipped to ±limit, degrees.
        rotation_prob: probability that a sample is rotated at all.
        flip_prob: probability of a horizontal flip.
        color_low, color_high: per-channel gain range.
    """

    scale_sigma: float = 0.3
    scale_limit: float = 0.3
    scale_mode: str = "linear"
    rotation_sigma: float = 30.0
    rotation_limit: float = 60.0
    rotation_prob: float = 0.4
    flip_prob: float = 0.5
    color_low: float = 0.7
    color_high: float = 1.3

    def __post_init__(self) -> None:
        if self.scale_mode not in SCALE_MODES:
            raise ValueError(f"Augment.scale_mode={self.scale_mode!r} is not one of {SCALE_MODES}")
        for name in ("scale_sigma", "scale_limit", "rotation_sigma", "rotation_limit"):
            if getattr(self, name) < 0:
                raise ValueError(f"Augment.{name}={getattr(self, name)} must be >= 0")
        for name in ("rotation_prob", "flip_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Augment.{name}={getattr(self, name)} must be a probability in [0, 1]")
        if self.scale_mode == "linear" and self.scale_limit >= 1:
            raise ValueError(f"Augment.scale_limit={self.scale_limit} must be < 1 in linear mode")
        if not 0 < self.color_low <= self.color_high:
            raise ValueError(
                f"Augment colour range [{self.color_low}, {self.color_high}] must satisfy 0 < low <= high"
            )

    def draw(self, rng: np.random.Generator) -> AugmentDraw:
        """One sample's augmentation parameters."""
        g = float(np.clip(rng.normal(0.0, self.scale_sigma), -self.scale_limit, self.scale_limit))
        scale = 1.0 + g if self.scale_mode == "linear" else 2.0**g
        rot = float(np.clip(rng.normal(0.0, self.rotation_sigma), -self.rotation_limit, self.rotation_limit))
        if rng.random() >= self.rotation_prob:
            rot = 0.0
        flip = bool(rng.random() < self.flip_prob)
        color = tuple(float(c) for c in rng.uniform(self.color_low, self.color_high, size=3))
        return AugmentDraw(scale, rot, flip, color)  # type: ignore[arg-type]
