"""Image and map sizes: written (w, h), width first, everywhere in binmark."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["as_size"]


def as_size(size: int | Sequence[int]) -> tuple[int, int]:
    """(w, h) from one int (a square) or a (w, h) pair.

    Raises:
        ValueError: not an int or a pair of positive ints.
    """
    if isinstance(size, int) and not isinstance(size, bool):
        w = h = size
    else:
        try:
            w, h = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(f"a size is an int or a (w, h) pair, got {size!r}") from None
    if w < 1 or h < 1:
        raise ValueError(f"sizes must be positive, got {size!r}")
    return w, h
