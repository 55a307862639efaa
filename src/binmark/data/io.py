"""Reading the files datasets ship: images, JSON, ``.pts`` and MATLAB ``.mat``.

Every error names the file (and the line or field where it applies) and says what is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["read_image", "image_size", "read_json", "read_pts", "read_mat"]


def _to_uint8_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if img.mode == "F":
        arr = np.clip(np.round(np.asarray(img) * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if img.mode != "RGB":
        img = img.convert("RGB")  # L, LA, P, RGBA, CMYK, YCbCr … (alpha is dropped)
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def read_image(path: str | Path, exif: bool = False) -> np.ndarray:
    """Decode an image file into an (H, W, 3) uint8 RGB array.

    Grayscale is replicated to three channels, alpha is dropped, 16-bit images are scaled to 8
    bits. Decoding is complete: a truncated file is an error, not a partial image.

    Args:
        path: the image file.
        exif: apply the EXIF orientation tag. Dataset annotations are made on the stored pixels,
            so loaders leave it off (as HRNet does); prediction on user photos turns it on.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable image, or is truncated.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image {p} does not exist")
    try:
        with Image.open(p) as img:
            img.load()
            if exif:
                img = ImageOps.exif_transpose(img)
            return _to_uint8_rgb(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"image {p} is unreadable or truncated ({exc})") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image from its header, without decoding the pixels."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image {p} does not exist")
    try:
        with Image.open(p) as img:
            return img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"image {p} is unreadable ({exc})") from None


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; errors name the file, line and column."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"annotation file {p} does not exist")
    try:
        with p.open(encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"annotation file {p} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise ValueError(f"annotation file {p} is nested too deeply to be an annotation file") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"annotation file {p} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_pts(path: str | Path) -> np.ndarray:
    """Read an ibug ``.pts`` file (``version``, ``n_points: N``, ``{``, N lines ``x y``, ``}``).

    Returns:
        (N, 2) float64 array of the values as written (no origin shift).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"landmark file {p} does not exist")
    lines = [ln.strip() for ln in p.read_text(encoding="utf-8", errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    try:
        header = {k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[:2])}
        n = int(header["n_points"])
        start = lines.index("{") + 1
        end = lines.index("}", start)
    except (ValueError, KeyError, IndexError):
        raise ValueError(
            f"landmark file {p} is not in .pts format (expected 'version', 'n_points: N', "
            "'{', N lines 'x y', '}')"
        ) from None
    body = lines[start:end]
    if len(body) != n:
        raise ValueError(f"landmark file {p}: header says n_points {n} but {len(body)} points follow")
    points = np.empty((n, 2), dtype=np.float64)
    for i, ln in enumerate(body):
        parts = ln.split()
        try:
            points[i] = [float(parts[0]), float(parts[1])]
        except (ValueError, IndexError):
            raise ValueError(f"landmark file {p}: point {i} reads {ln!r}, expected 'x y'") from None
    return points


def read_mat(path: str | Path) -> dict[str, Any]:
    """Load a MATLAB ``.mat`` file (v5 through scipy; v7.3/HDF5 through h5py).

    Returns:
        A dict of the file's variables. v5 files come in scipy's layout. v7.3 arrays come as HDF5
        stores them, i.e. transposed relative to v5, and a cell array of references (e.g. COFW's
        images) comes as a list of the referenced arrays.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"MATLAB file {p} does not exist")
    import h5py
    import scipy.io

    if h5py.is_hdf5(p):  # MATLAB v7.3 files are HDF5 (with a 512-byte MATLAB header)
        return _read_hdf5_mat(p)
    try:
        return scipy.io.loadmat(str(p))
    except (ValueError, OSError, TypeError, NotImplementedError) as exc:
        raise ValueError(f"MATLAB file {p} is unreadable ({exc})") from None


def _read_hdf5_mat(path: Path) -> dict[str, Any]:
    import h5py

    with h5py.File(path, "r") as fh:
        out: dict[str, Any] = {}
        for key, item in fh.items():
            if not isinstance(item, h5py.Dataset):
                continue
            value = item[()]
            if item.dtype == h5py.ref_dtype:  # a cell array: dereference each element
                value = [fh[ref][()] for ref in np.asarray(value).ravel()]
            out[key] = value
        return out
