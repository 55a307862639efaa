"""binmark.data.io.read_image, the one image decoder: every supported source and pixel format
becomes (H, W, 3) uint8 RGB by the same rules, whether a dataset loader or the Localizer asks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from binmark.data.io import MAX_PIXELS, ImageReadError, MissingImageError, image_size, read_image, to_rgb8
from binmark.data.records import Record


def _rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)


def _rgb16() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)


def _record(path: Path) -> Record:
    return Record(np.zeros((1, 2)), np.ones(1, bool), np.zeros(2), 1.0, entry="test entry 0", image_path=path)


@pytest.mark.parametrize(
    "array,expected",
    [
        (np.full((4, 5), 7, np.uint8), np.full((4, 5, 3), 7, np.uint8)),  # grayscale
        (np.full((4, 5, 1), 7, np.uint8), np.full((4, 5, 3), 7, np.uint8)),
        (np.dstack([np.full((4, 5), 9, np.uint8), np.zeros((4, 5), np.uint8)]), np.full((4, 5, 3), 9, np.uint8)),  # gray + alpha
        (np.full((4, 5, 4), [1, 2, 3, 0], np.uint8), np.full((4, 5, 3), [1, 2, 3], np.uint8)),  # RGBA: alpha dropped
        (np.full((4, 5, 3), 65535, np.uint16), np.full((4, 5, 3), 255, np.uint8)),  # 16-bit: v >> 8
        (np.full((4, 5, 3), 0x8000, np.uint16), np.full((4, 5, 3), 128, np.uint8)),
        (np.full((4, 5, 3), 0x01FF, np.uint16), np.full((4, 5, 3), 1, np.uint8)),  # the high byte, not rounded
        (np.full((4, 5, 3), 0x01FF, ">u2"), np.full((4, 5, 3), 1, np.uint8)),  # big-endian (Pillow's I;16B)
        (np.full((4, 5), 1000, np.int32), np.full((4, 5, 3), 3, np.uint8)),  # wide ints over 255: 16-bit
        (np.full((4, 5), 200, np.int32), np.full((4, 5, 3), 200, np.uint8)),  # wide ints within 0-255: 8-bit
        (np.full((4, 5), -5, np.int16), np.zeros((4, 5, 3), np.uint8)),  # clipped
        (np.ones((4, 5), bool), np.full((4, 5, 3), 255, np.uint8)),  # as Pillow's 1-bit mode
        (np.full((4, 5, 3), 0.5, np.float32), np.full((4, 5, 3), 128, np.uint8)),  # float in [0, 1]
        (np.full((4, 5), np.nan, np.float64), np.zeros((4, 5, 3), np.uint8)),
        (np.full((4, 5), 7.0, np.float64), np.full((4, 5, 3), 255, np.uint8)),
    ],
)
def test_arrays_of_every_kind(array: np.ndarray, expected: np.ndarray) -> None:
    out = read_image(array)
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.array_equal(out, expected)


def test_bgr_order_is_swapped() -> None:
    img = _rgb()
    assert np.array_equal(read_image(img[..., ::-1], color="bgr"), img)
    with pytest.raises(ValueError, match="color"):
        read_image(img, color="rgba")


@pytest.mark.parametrize("mode", ["RGB", "L", "LA", "RGBA", "P", "1", "I;16", "I", "CMYK"])
def test_files_of_every_mode(tmp_path: Path, mode: str) -> None:
    base = Image.fromarray(_rgb())
    gray16 = np.asarray(base.convert("L")).astype(np.uint16) * 257
    img = {"I;16": Image.fromarray(gray16), "I": Image.fromarray(gray16.astype(np.int32))}.get(mode) or base.convert(mode)
    suffix = {"CMYK": ".jpg", "I": ".tif"}.get(mode, ".png")  # PNG cannot store mode I
    img.save(tmp_path / f"a{suffix}")
    out = read_image(tmp_path / f"a{suffix}")
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    if mode in ("L", "I;16", "I"):
        assert np.array_equal(out[..., 0], np.asarray(base.convert("L")))  # 16-bit scaled back exactly
    if mode in ("RGB", "RGBA"):
        assert np.array_equal(out, _rgb())
    if mode == "1":
        assert set(np.unique(out)) <= {0, 255}


def test_16_bit_files_and_arrays_decode_to_the_same_pixels(tmp_path: Path) -> None:
    rgb16 = _rgb16()
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[..., ::-1])  # Pillow reads 16-bit colour as 8-bit RGB
    Image.fromarray(rgb16[..., 0]).save(tmp_path / "gray16.png")  # Pillow reads it as mode I;16
    assert Image.open(tmp_path / "gray16.png").mode == "I;16"
    assert np.array_equal(read_image(tmp_path / "rgb16.png"), read_image(rgb16))
    assert np.array_equal(read_image(rgb16), (rgb16 >> 8).astype(np.uint8))
    assert np.array_equal(read_image(tmp_path / "gray16.png"), read_image(rgb16[..., 0]))
    assert np.array_equal(read_image(tmp_path / "gray16.png"), read_image(Image.open(tmp_path / "gray16.png")))


@pytest.mark.parametrize("name", ["photo.jpg", "gray16.png", "palette.png"])
def test_loader_and_localizer_see_the_same_pixels(tmp_path: Path, name: str) -> None:
    """Without EXIF, a dataset sample (Record.image, exif off) and the Localizer's input (exif on)
    are the same array."""
    from binmark.inference import Localizer

    from ..inference.conftest import SPEC, DotNet

    path = tmp_path / name
    {
        "photo.jpg": lambda: Image.fromarray(_rgb()).save(path, quality=90),
        "gray16.png": lambda: Image.fromarray(_rgb16()[..., 0]).save(path),
        "palette.png": lambda: Image.fromarray(_rgb()).convert("P").save(path),
    }[name]()
    seen = []

    def capture(image: np.ndarray) -> np.ndarray:
        seen.append(image)
        return np.zeros((0, 4))

    Localizer(DotNet(), spec=SPEC, detector=capture).predict(path)
    assert len(seen) == 1 and np.array_equal(seen[0], _record(path).image())
    assert np.array_equal(read_image(path, exif=False), read_image(path))


def _rotated_jpeg(path: Path) -> None:
    stored = np.zeros((20, 30, 3), np.uint8)
    stored[2:6, 2:6] = 255  # a white block near the stored top-left corner
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    img.save(path, exif=exif, quality=95)


def test_exif_orientation_is_applied_by_default(tmp_path: Path) -> None:
    _rotated_jpeg(tmp_path / "rot.jpg")
    out = read_image(tmp_path / "rot.jpg")
    assert out.shape == (30, 20, 3)  # displayed upright: portrait
    y, x = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
    assert y < 8 and x > 12  # the block is now near the top-right corner, as a viewer shows it


def test_loaders_read_the_stored_pixels(tmp_path: Path) -> None:
    """Annotations refer to the stored pixels: Record.image leaves EXIF orientation alone."""
    _rotated_jpeg(tmp_path / "rot.jpg")
    stored = read_image(tmp_path / "rot.jpg", exif=False)
    assert stored.shape == (20, 30, 3)
    assert np.array_equal(_record(tmp_path / "rot.jpg").image(), stored)
    assert image_size(tmp_path / "rot.jpg") == (30, 20)  # (w, h) as stored


def test_pil_images_are_accepted() -> None:
    assert np.array_equal(read_image(Image.fromarray(_rgb())), _rgb())
    assert read_image(Image.fromarray(_rgb()).convert("CMYK")).shape == (20, 30, 3)


def test_unreadable_sources_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"not an image")
    good = tmp_path / "ok.png"
    Image.fromarray(_rgb()).save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    with pytest.raises(ImageReadError, match="bad.png is unreadable"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(ImageReadError, match="cut.png is unreadable or truncated"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(tmp_path)
    with pytest.raises(ImageReadError, match="shape"):
        to_rgb8(np.zeros((2, 3, 5), np.uint8))
    with pytest.raises(ImageReadError, match="unsupported pixel type"):
        to_rgb8(np.zeros((2, 3), np.complex64))
    with pytest.raises(ImageReadError, match="unsupported image type"):
        read_image(42)
    with pytest.raises(ImageReadError, match="bad.png is unreadable"):
        image_size(tmp_path / "bad.png")


def test_a_missing_file_is_both_an_image_error_and_file_not_found(tmp_path: Path) -> None:
    for call in (read_image, image_size, lambda p: _record(p).image()):
        with pytest.raises(MissingImageError, match=r"image .*none.png does not exist") as info:
            call(tmp_path / "none.png")
        assert isinstance(info.value, ImageReadError) and isinstance(info.value, FileNotFoundError)
        assert isinstance(info.value, ValueError)
    with pytest.raises(FileNotFoundError, match=r"none.png does not exist \(needed by test entry 0\)"):
        _record(tmp_path / "none.png").image()


def _png_header(w: int, h: int) -> bytes:
    """A PNG declaring w × h RGB pixels with (almost) no data: a decompression bomb's shape."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_pixel_limits_are_checked_from_the_header(tmp_path: Path) -> None:
    (tmp_path / "big.png").write_bytes(_png_header(10_000, 10_000))  # 1e8 px: over MAX_PIXELS only
    (tmp_path / "bomb.png").write_bytes(_png_header(200_000, 200_000))  # over Pillow's own hard limit
    Image.fromarray(_rgb()).save(tmp_path / "ok.png")
    assert 10_000 * 10_000 > MAX_PIXELS
    with pytest.raises(ImageReadError, match="100,000,000 pixels is over the limit of 89,478,485"):
        read_image(tmp_path / "big.png")
    with pytest.raises(ImageReadError, match="bomb.png: refused as a decompression bomb"):
        read_image(tmp_path / "bomb.png")
    with pytest.raises(ImageReadError, match="over the limit of 100"):
        read_image(tmp_path / "ok.png", max_pixels=100)
    assert read_image(tmp_path / "ok.png", max_pixels=600).shape == (20, 30, 3)
