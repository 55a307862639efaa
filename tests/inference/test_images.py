"""read_image: every supported source and pixel format becomes upright (H, W, 3) uint8 RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from binmark.inference import ImageReadError, read_image, to_rgb8


def _rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "array,expected",
    [
        (np.full((4, 5), 7, np.uint8), np.full((4, 5, 3), 7, np.uint8)),  # grayscale
        (np.full((4, 5, 1), 7, np.uint8), np.full((4, 5, 3), 7, np.uint8)),
        (np.dstack([np.full((4, 5), 9, np.uint8), np.zeros((4, 5), np.uint8)]), np.full((4, 5, 3), 9, np.uint8)),  # gray + alpha
        (np.full((4, 5, 4), [1, 2, 3, 0], np.uint8), np.full((4, 5, 3), [1, 2, 3], np.uint8)),  # RGBA: alpha dropped
        (np.full((4, 5, 3), 65535, np.uint16), np.full((4, 5, 3), 255, np.uint8)),  # 16-bit
        (np.full((4, 5, 3), 0x8000, np.uint16), np.full((4, 5, 3), 128, np.uint8)),
        (np.full((4, 5, 3), 0.5, np.float32), np.full((4, 5, 3), 128, np.uint8)),  # float in [0, 1]
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


@pytest.mark.parametrize("mode", ["RGB", "L", "LA", "RGBA", "P", "I;16", "CMYK"])
def test_files_of_every_mode(tmp_path: Path, mode: str) -> None:
    base = Image.fromarray(_rgb())
    img = base.convert(mode) if mode != "I;16" else Image.fromarray((np.asarray(base.convert("L")).astype(np.uint16) * 257))
    suffix = ".jpg" if mode == "CMYK" else ".png"
    img.save(tmp_path / f"a{suffix}")
    out = read_image(tmp_path / f"a{suffix}")
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    if mode in ("L", "I;16"):
        assert np.array_equal(out[..., 0], np.asarray(base.convert("L")))  # 16-bit scaled back exactly
    if mode in ("RGB", "RGBA"):
        assert np.array_equal(out, _rgb())


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = np.zeros((20, 30, 3), np.uint8)
    stored[2:6, 2:6] = 255  # a white block near the stored top-left corner
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    img.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out = read_image(tmp_path / "rot.jpg")
    assert out.shape == (30, 20, 3)  # displayed upright: portrait
    y, x = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
    assert y < 8 and x > 12  # the block is now near the top-right corner, as a viewer shows it


def test_pil_images_are_accepted() -> None:
    assert np.array_equal(read_image(Image.fromarray(_rgb())), _rgb())


def test_unreadable_sources_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"not an image")
    good = tmp_path / "ok.png"
    Image.fromarray(_rgb()).save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    with pytest.raises(ImageReadError, match="bad.png: not a readable image"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "none.png")
    with pytest.raises(ImageReadError, match="shape"):
        to_rgb8(np.zeros((2, 3, 5), np.uint8))
    with pytest.raises(ImageReadError, match="unsupported image type"):
        read_image(42)
