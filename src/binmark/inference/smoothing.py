"""Temporal smoothing of landmarks on video: the One-Euro filter.

Casiez, Roussel and Vogel, "1€ Filter: A Simple Speed-based Low-pass Filter for Noisy Input in
Interactive Systems", CHI 2012. A first-order low-pass filter whose cutoff rises with the signal's
speed: still landmarks are smoothed hard (no jitter), moving ones follow with little lag.
``min_cutoff`` (Hz) sets the smoothing at rest, ``beta`` how fast the cutoff grows with speed
(units of the signal per second), ``d_cutoff`` (Hz) smooths the speed estimate.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["OneEuroFilter"]


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter over arrays of any fixed shape (e.g. (K, 2) landmarks in pixels).

    Args:
        min_cutoff: cutoff frequency at rest, Hz (lower: smoother, more lag).
        beta: speed coefficient (higher: less lag on fast motion).
        d_cutoff: cutoff of the derivative's filter, Hz.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"OneEuroFilter needs min_cutoff > 0, d_cutoff > 0, beta >= 0; got {min_cutoff}, {d_cutoff}, {beta}")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        """Forget the history (a new track starts)."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def __call__(self, x: np.ndarray, dt: float) -> np.ndarray:
        """Filter the next sample ``x``, taken ``dt`` seconds after the previous one."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        if dt <= 0:
            raise ValueError(f"OneEuroFilter: dt must be > 0 s, got {dt}")
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        a = _alpha(self.min_cutoff + self.beta * np.abs(self._dx), dt)
        self._x = self._x + a * (x - self._x)
        return self._x.copy()
