"""Image and map sizes: (w, h), width first, everywhere in binmark's Python API and configs.

The command line writes sizes as text, height first as pose papers do ("256x192" is 256 tall and
192 wide); :func:`parse_size` is the one place that text becomes a (w, h) pair.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

__all__ = ["as_size", "parse_size"]


def as_size(size: int | Sequence[int]) -> tuple[int, int]:
    """(w, h) from one int (a square) or a (w, h) pair.

    Raises:
        ValueError: not an int or a pair of positive ints (a string such as "64" is neither).
    """
    def whole(v: object) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if whole(size):
        w = h = int(size)  # type: ignore[call-overload]
    else:
        ok = hasattr(size, "__len__") and not isinstance(size, (str, bytes)) and len(size) == 2
        if not ok or not all(whole(v) for v in size):
            raise ValueError(f"a size is an int or a (w, h) pair of ints, got {size!r}")
        w, h = (int(v) for v in size)
    if w < 1 or h < 1:
        raise ValueError(f"sizes must be positive, got {size!r}")
    return w, h


def parse_size(text: str) -> tuple[int, int]:
    """(w, h) from the command line's "H" (a square) or "HxW" text: "256" → (256, 256),
    "256x192" → (192, 256).

    Raises:
        ValueError: not one or two positive integers joined by "x".
    """
    try:
        sizes = [int(p) for p in text.lower().split("x")]
    except ValueError:
        sizes = []
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or min(sizes) < 1:
        raise ValueError(f"{text!r} is not a size; write H or HxW (height first), e.g. 256x192")
    return sizes[1], sizes[0]
