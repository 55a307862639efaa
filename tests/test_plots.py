"""PNG plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from binmark.plots import plot_ced


def test_ced_plot_is_a_png(tmp_path: Path) -> None:
    out = tmp_path / "ced.png"
    rng = np.random.default_rng(0)
    plot_ced({"model": rng.uniform(0, 0.08, 100), "mean shape": rng.uniform(0.05, 0.2, 100)}, out, 0.1)
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] > 300 and img.size[1] > 200
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind
