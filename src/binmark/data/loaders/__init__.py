"""``load(name, root, split)``: the standard datasets, read from their own released files.

Each loader is registered under the dataset's name and reads the files as their users have them
on disk (the layouts are in ``docs/data.md``); ``ann_file`` and ``image_dir`` override the standard
layout. Loaders parse and validate all annotations up front and decode images on access.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from binmark._registry import Registry
from binmark.data.records import LandmarkDataset

__all__ = ["DATASETS", "register_dataset", "load", "datasets"]

Loader = Callable[..., LandmarkDataset]

DATASETS: Registry[Loader] = Registry("dataset")


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Register ``fn(root, split, ann_file, image_dir, origin) -> LandmarkDataset``."""
    return DATASETS.register(name)


def datasets() -> list[str]:
    """Names of the datasets ``load`` reads."""
    return DATASETS.names()


def load(
    name: str,
    root: str | Path | None = None,
    split: str = "val",
    ann_file: str | Path | None = None,
    image_dir: str | Path | None = None,
    on_error: str = "raise",
    origin: float | None = None,
) -> LandmarkDataset:
    """Load a dataset as a sequence of samples (see :mod:`binmark.data.records` for the fields).

    Args:
        name: one of :func:`datasets` ("mpii", "lsp", "coco", "coco_custom", "300w", "300vw",
            "aflw19", "aflw2000", "wflw", "cofw").
        root: the dataset folder in its standard layout (docs/data.md).
        split: "train", "val", "test", or a dataset-specific subset ("common", "challenging",
            "full" for 300-W; "test_largepose" … for WFLW; "test_frontal" for AFLW-19).
        ann_file: an annotation file to read instead of the standard one.
        image_dir: the folder image paths are relative to (default: the standard one, or the
            annotation file's folder).
        on_error: "raise" (default: a missing image file is an error at load time) or "skip"
            (decode every image now; drop and report instances whose image is missing,
            unreadable or truncated, or whose points fall far outside it).
        origin: override the annotation file's pixel origin (1 for MATLAB 1-based files); the
            default is the format's documented convention.

    Raises:
        ValueError: unknown dataset, split or on_error value, or a malformed annotation (the
            message names the file and the entry).
        FileNotFoundError: a missing annotation or image file.
    """
    loader = DATASETS.get(name)
    ds = loader(
        Path(root) if root is not None else None,
        split,
        Path(ann_file) if ann_file is not None else None,
        Path(image_dir) if image_dir is not None else None,
        origin,
    )
    return ds.verify(on_error)


def _register_all() -> None:
    from binmark.data.loaders import aflw, coco, cofw, ibug, mpii, lsp, wflw  # noqa: F401


_register_all()
