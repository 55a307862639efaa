"""Helpers every loader uses: locating files in a standard layout and checking split names."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["find_file", "check_split", "image_folder"]


def find_file(
    root: Path | None, given: Path | None, candidates: Sequence[str], what: str
) -> Path:
    """The annotation file to read: ``given`` if set, else the first candidate under ``root``.

    Raises:
        FileNotFoundError: naming every path that was tried.
    """
    if given is not None:
        if not given.is_file():
            raise FileNotFoundError(f"{what} {given} does not exist")
        return given
    if root is None:
        raise ValueError(f"no root folder and no ann_file given: cannot find the {what}")
    tried = [root / c for c in candidates]
    for path in tried:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"no {what} found under {root}; tried: {', '.join(str(t) for t in tried)} "
        "(pass ann_file=... to point at it)"
    )


def check_split(dataset: str, split: str, allowed: Sequence[str]) -> None:
    """Refuse a split name the dataset does not have."""
    if split not in allowed:
        raise ValueError(f"dataset {dataset!r} has no split {split!r}; choose one of: {', '.join(allowed)}")


def image_folder(image_dir: Path | None, root: Path | None, default: str, ann_file: Path) -> Path:
    """Where image paths are relative to: ``image_dir``, else ``root/default``, else the
    annotation file's folder."""
    if image_dir is not None:
        return image_dir
    if root is not None and (root / default).is_dir():
        return root / default
    return ann_file.parent
