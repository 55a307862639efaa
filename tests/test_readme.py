"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code: str, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples may write files (model.bmk)
    if "demo_out/model.bmk" in code:  # the Localizer example: what `make demo` leaves, and a photo
        _demo_files(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})


def _demo_files(root: Path) -> None:
    """An (untrained) packed face model where ``make demo`` writes it, and a real photograph."""
    import shutil

    import matplotlib.cbook

    from binmark.deploy import pack
    from binmark.inference import InferenceSpec
    from binmark.models import build

    model = build("hourglass", 68, quant="bulat17", stacks=1, depth=2, width=16).eval()
    pack(model, InferenceSpec("300w", input_size=64, heatmap_size=16, sigma=1.0)).save(root / "demo_out" / "model.bmk")
    shutil.copy(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), root / "photo.jpg")
