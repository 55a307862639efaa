"""Drawing landmarks and preview grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from binmark.data import load, skeleton
from binmark.draw import draw_keypoints, grid, preview_grid, write_png

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_points_and_limbs_are_drawn_in_the_schema_colours() -> None:
    schema = skeleton("mpii")
    img = np.zeros((100, 100, 3), dtype=np.uint8)
    kp = np.zeros((16, 2))
    kp[0], kp[1] = [20, 20], [80, 20]  # right ankle → right knee is a limb
    vis = np.zeros(16, bool)
    vis[[0, 1]] = True
    out = draw_keypoints(img, kp, schema, vis, radius=3)
    assert img.max() == 0  # the input is not modified
    assert tuple(out[20, 50]) == schema.colors[0]  # limb midpoint, right side colour
    assert tuple(out[20, 20]) == schema.colors[0]  # point centre
    assert out[60, 60].max() == 0  # hidden point at (0, 0) drawn hollow away from here


def test_hidden_points_are_hollow() -> None:
    schema = skeleton("coco")
    img = np.zeros((50, 50, 3), dtype=np.uint8)
    kp = np.full((17, 2), 25.0)
    out = draw_keypoints(img, kp, schema, np.zeros(17, bool), radius=6)
    assert out[25, 25].max() == 0 and out[25, 31].max() > 0


def test_grid_and_errors() -> None:
    tiles = [np.full((10, 20, 3), i * 40, dtype=np.uint8) for i in range(5)]
    g = grid(tiles, columns=2, gap=2)
    assert g.shape == (3 * 12 + 2, 2 * 22 + 2, 3)
    assert g[2, 2].tolist() == [0, 0, 0] and g[14, 24].tolist() == [120, 120, 120]
    with pytest.raises(ValueError, match="same size"):
        grid([tiles[0], np.zeros((5, 5, 3), np.uint8)])


def test_preview_of_a_real_dataset_round_trips_through_png(tmp_path: Path) -> None:
    ds = load("cofw", ann_file=FIXTURES / "cofw/test_cofw.json", image_dir=FIXTURES / "cofw")
    img = preview_grid(ds, ds.skeleton, count=16, columns=4, crop=96)
    assert img.shape == (4 + 100, 2 * 100 + 4, 3)  # two tiles: the grid uses two columns
    write_png(str(tmp_path / "p.png"), img)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "p.png")), img)
