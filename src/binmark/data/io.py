"""Reading the files datasets ship and the images people pass: images, JSON, ``.pts``, ``.mat``.

Every error names the file (and the line or field where it applies) and says what is wrong.

Images have one decoder, :func:`read_image`, used by the dataset loaders
(:meth:`binmark.data.records.Record.image`) and by inference (``binmark.inference.Localizer``,
``binmark predict``). It turns a path, a PIL image or a numpy array into contiguous (H, W, 3)
uint8 RGB by these rules (:func:`to_rgb8`):

- gray is replicated to three channels; alpha is dropped (gray + alpha, RGBA, palettes with
  transparency); other Pillow modes (palette, CMYK, YCbCr, 1-bit …) go through Pillow's RGB;
- 16 bits → 8 bits: v ↦ v >> 8 (the high byte; 65535 ↦ 255, v · 257 ↦ v exactly). This is
  what Pillow itself does when it decodes 16-bit colour PNG and TIFF files to RGB, so 16-bit
  gray files (Pillow's ``I;16*`` modes), 16-bit colour files and uint16 arrays all agree. An
  integer image is 16-bit when its type is uint16 or, for wider integer types (Pillow's ``I``
  mode), when a value exceeds 255; values are then clipped to 0–65535 first. Integer images
  with no value over 255 are taken as 8-bit (clipped to 0–255); booleans are 0 / 255;
- floats (Pillow's ``F`` mode) are intensities in [0, 1]: NaN ↦ 0, clipped, v ↦ round(v · 255)
  (halves up);
- EXIF orientation is applied to files unless ``exif=False`` (see :func:`read_image`).

Image errors are :class:`ImageReadError` (a ``ValueError``); a missing file is
:class:`MissingImageError`, which is also a ``FileNotFoundError``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "ImageReadError", "MissingImageError", "MAX_PIXELS", "read_image", "to_rgb8", "image_size",
    "read_json", "read_pts", "read_mat",
]  # fmt: skip

#: default pixel limit of :func:`read_image` for files: 89,478,485 px (Pillow's
#: ``Image.MAX_IMAGE_PIXELS``, ≈ 9459 × 9459; 256 MiB of RGBA). Pillow itself refuses files above
#: twice that (as a decompression bomb), so larger limits stop there.
MAX_PIXELS = 89_478_485

_COLORS = ("rgb", "bgr")


class ImageReadError(ValueError):
    """A file or array that is not a readable image (the message names it and says why)."""


class MissingImageError(ImageReadError, FileNotFoundError):
    """An image file that does not exist: both an :class:`ImageReadError` and a ``FileNotFoundError``."""


def _to_uint8(a: np.ndarray, where: str) -> np.ndarray:
    """Pixel values → uint8 by the module's rules (16-bit, other integers, booleans, floats)."""
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind == "b":
        return a.astype(np.uint8) * np.uint8(255)
    if a.dtype.kind in "ui":
        sixteen = (a.dtype.kind == "u" and a.dtype.itemsize == 2) or (a.size > 0 and a.max() > 255)
        if not sixteen:
            return np.clip(a, 0, 255).astype(np.uint8)
        return (np.clip(a, 0, 65535).astype(np.uint16) >> 8).astype(np.uint8)
    if a.dtype.kind == "f":
        return np.floor(np.clip(np.nan_to_num(a, nan=0.0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise ImageReadError(f"{where}: unsupported pixel type {a.dtype}")


def to_rgb8(image: np.ndarray, color: str = "rgb", where: str = "image") -> np.ndarray:
    """An array image as contiguous (H, W, 3) uint8 RGB, by the module's conversion rules.

    Args:
        image: (H, W), (H, W, 1), (H, W, 2) (gray + alpha), (H, W, 3) or (H, W, 4) (alpha last);
            uint8, uint16 (any byte order), other integers, booleans or floats in [0, 1].
        color: channel order of 3/4-channel input: "rgb" or "bgr" (OpenCV's).
        where: names the input in errors.

    Raises:
        ValueError: ``color`` is neither "rgb" nor "bgr".
        ImageReadError: the shape or pixel type is not an image's.
    """
    if color not in _COLORS:
        raise ValueError(f"color must be one of {_COLORS}, got {color!r}")
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] in (1, 2):  # gray, gray + alpha
        a = a[:, :, 0]
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or min(a.shape[:2]) < 1:
        raise ImageReadError(f"{where}: expected an (H, W[, C]) image with 1-4 channels, got shape {a.shape}")
    a = _to_uint8(a[:, :, :3], where)
    if color == "bgr":
        a = a[:, :, ::-1]
    return np.ascontiguousarray(a)


def _from_pil(im: Image.Image, where: str) -> np.ndarray:
    """A PIL image of any mode → (H, W, 3) uint8 RGB (modes numpy cannot read go through RGB)."""
    if im.mode not in ("1", "L", "LA", "RGB", "RGBA", "I", "F") and not im.mode.startswith("I;16"):
        im = im.convert("RGBA" if im.mode in ("P", "PA") else "RGB")
    return to_rgb8(np.asarray(im), "rgb", where)


@contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """``Image.open`` (header only until ``load``), with every failure as an :class:`ImageReadError`.

    Pillow's decompression-bomb warning is silenced (callers check the size themselves); its
    error, above twice its limit, is reported as a refusal.
    """
    if path.exists() and not path.is_file():  # a folder, or a FIFO (reading it would block)
        raise ImageReadError(f"image {path}: not a regular file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                yield im
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise MissingImageError(f"image {path} does not exist") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"image {path}: refused as a decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"image {path} is unreadable or truncated ({exc})") from None


def read_image(source: Any, color: str = "rgb", *, exif: bool = True, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image (path, PIL image or array) into contiguous (H, W, 3) uint8 RGB.

    Conversion follows the module's rules (gray replicated, alpha dropped, 16 bits by v >> 8,
    floats in [0, 1]). Decoding of files is complete: a truncated file is an
    error, not a partial image.

    Args:
        source: a path (str or Path), a ``PIL.Image.Image`` (its pixels as they are) or a numpy
            array (see :func:`to_rgb8`).
        color: channel order of array input, "rgb" or "bgr"; files and PIL images are RGB.
        exif: apply a file's EXIF orientation tag, so the pixels are upright as viewers show them.
            On by default because callers with photographs (the Localizer, ``binmark predict``)
            want what the user sees; dataset loaders pass ``exif=False``, because annotations are
            made on the stored pixels (as HRNet reads them). Ignored for PIL images and arrays.
        max_pixels: files declaring more pixels (width × height, from the header) are refused
            before any pixel is decoded (a small file can declare a gigapixel image).

    Raises:
        MissingImageError: the file does not exist (also a ``FileNotFoundError``).
        ImageReadError: the path is not a regular file, the file is not an image, is truncated or
            is over ``max_pixels`` (or Pillow's decompression-bomb limit); the array's shape or
            pixel type is not an image's; ``source`` is of another type.
        ValueError: ``color`` is neither "rgb" nor "bgr".
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        with _opened(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise ImageReadError(
                    f"image {path}: {w} × {h} = {w * h:,} pixels is over the limit of {max_pixels:,} "
                    "(raise it with --max-pixels / max_pixels= if the image is genuine)"
                )
            im.load()
            return _from_pil(ImageOps.exif_transpose(im) if exif else im, f"image {path}")
    if isinstance(source, Image.Image):
        return _from_pil(source, "PIL image")
    if isinstance(source, np.ndarray):
        return to_rgb8(source, color, "array image")
    raise ImageReadError(f"unsupported image type {type(source).__name__}: pass a path, a PIL image or a numpy array")


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) in px of an image file as stored (no EXIF rotation), from its header only.

    Raises:
        MissingImageError: the file does not exist.
        ImageReadError: not a regular file, or not a readable image.
    """
    with _opened(Path(path)) as im:
        return im.size


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
