"""Reading images for inference: any common file or array in, (H, W, 3) uint8 RGB out.

Handled: paths (decoded by Pillow, EXIF orientation applied so the pixels are upright as a viewer
shows them), PIL images, numpy arrays in RGB or BGR order; grayscale, grayscale + alpha, RGBA
(alpha dropped), palette images, 16-bit integers (scaled to 8 bits) and floats in [0, 1].

Files larger than ``max_pixels`` (default :data:`MAX_PIXELS`, Pillow's own decompression-bomb
warning threshold) are refused from their header, before any pixel is decoded: a small file can
declare a gigapixel image.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ImageReadError", "MAX_PIXELS", "to_rgb8", "read_image"]

#: default pixel limit of :func:`read_image` for files: 89,478,485 px (Pillow's
#: ``Image.MAX_IMAGE_PIXELS``, ≈ 9459 × 9459; 256 MiB of RGBA). Pillow itself refuses files above
#: twice that, so larger limits stop there.
MAX_PIXELS = 89_478_485


class ImageReadError(ValueError):
    """A file or array that is not a readable image."""


def _to_uint8(a: np.ndarray, where: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return (a >> 8).astype(np.uint8)
    if a.dtype in (np.int32, np.int64, np.uint32) and a.size and a.max() > 255:  # PIL's "I" mode (16-bit PNGs)
        return (np.clip(a, 0, 65535) >> 8).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
        return np.clip(a, 0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        return (np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise ImageReadError(f"{where}: unsupported pixel type {a.dtype}")


def to_rgb8(image: np.ndarray, color: str = "rgb", where: str = "image") -> np.ndarray:
    """An array image as contiguous (H, W, 3) uint8 RGB.

    Args:
        image: (H, W), (H, W, 1), (H, W, 2) (gray + alpha), (H, W, 3) or (H, W, 4); uint8,
            uint16 (scaled by 1/257 ≈ >> 8), other ints (clipped to 0–255) or floats in [0, 1].
        color: channel order of 3/4-channel input: "rgb" or "bgr" (OpenCV's).
        where: names the input in errors.
    """
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] == 2:  # gray + alpha
        a = a[:, :, 0]
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or min(a.shape[:2]) < 1:
        raise ImageReadError(f"{where}: expected an (H, W[, C]) image with 1-4 channels, got shape {a.shape}")
    a = _to_uint8(a[:, :, :3], where)
    if color == "bgr":
        a = a[:, :, ::-1]
    return np.ascontiguousarray(a)


def read_image(source: Any, color: str = "rgb", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Any supported image (path, PIL image, array) as (H, W, 3) uint8 RGB.

    Args:
        source: a path (str or Path), a ``PIL.Image.Image`` or a numpy array.
        color: channel order of array input ("rgb" or "bgr"); ignored for files and PIL images.
        max_pixels: files declaring more pixels (width × height) are refused before decoding.

    Raises:
        ImageReadError: the file is missing, not a regular file, truncated, not an image or over
            ``max_pixels``, or the array's shape or type is not an image's.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.exists() and not path.is_file():
            raise ImageReadError(f"{path}: not a regular file")
        try:
            with warnings.catch_warnings():  # the size is checked below, against max_pixels
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    w, h = im.size
                    if w * h > max_pixels:
                        raise ImageReadError(
                            f"{path}: {w} × {h} = {w * h:,} pixels is over the limit of {max_pixels:,} "
                            "(raise it with --max-pixels / max_pixels= if the image is genuine)"
                        )
                    im.load()
                    return _from_pil(ImageOps.exif_transpose(im), str(path))
        except FileNotFoundError:
            raise ImageReadError(f"{path}: no such file") from None
        except Image.DecompressionBombError as exc:
            raise ImageReadError(f"{path}: refused as a decompression bomb ({exc})") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            if isinstance(exc, ImageReadError):
                raise
            raise ImageReadError(f"{path}: not a readable image ({exc})") from None
    if isinstance(source, Image.Image):
        return _from_pil(source, "PIL image")
    if isinstance(source, np.ndarray):
        return to_rgb8(source, color, "array image")
    raise ImageReadError(f"unsupported image type {type(source).__name__}: pass a path, a PIL image or a numpy array")


def _from_pil(im: Any, where: str) -> np.ndarray:
    if im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
        im = im.convert("RGBA" if im.mode in ("P", "PA") else "RGB")
    return to_rgb8(np.asarray(im), "rgb", where)
