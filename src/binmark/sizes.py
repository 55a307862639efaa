"""Image and map sizes: written (w, h), width first, everywhere in binmark."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

__all__ = ["as_size"]


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
