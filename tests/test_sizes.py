"""binmark.sizes: (w, h) everywhere in Python; the command line's "HxW" text parsed in one place."""

from __future__ import annotations

import pytest

from binmark.sizes import as_size, parse_size


def test_python_sizes_are_width_first() -> None:
    assert as_size(64) == (64, 64) and as_size((48, 64)) == (48, 64)
    with pytest.raises(ValueError, match="a size is an int or a"):
        as_size("64")


def test_command_line_sizes_are_height_first_text() -> None:
    assert parse_size("256") == (256, 256)
    assert parse_size("256x192") == (192, 256)  # 256 tall, 192 wide, as COCO pose recipes write it
    assert parse_size("32X48") == (48, 32)
    for bad in ("big", "0", "3x", "1x2x3", "-4x4"):
        with pytest.raises(ValueError, match="is not a size; write H or HxW"):
            parse_size(bad)
