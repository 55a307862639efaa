"""A tiny recipe that trains in seconds on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY = [
    "model.options={stacks: 2, depth: 2, width: 16, block: hpm}",
    "model.quant=bulat17",
    "data.dataset=synthetic_face",
    "data.train={size: 48, seed: 0}",
    "data.val={size: 8, seed: 1}",
    "data.input_size=64",
    "data.heatmap_size=16",
    "data.sigma=1.0",
    "data.num_workers=0",
    "train.epochs=2",
    "train.batch_size=8",
    "train.log_every=1",
    "train.threads=1",
    "eval.batch_size=8",
]


@pytest.fixture()
def tiny(tmp_path: Path) -> list[str]:
    """Overrides for a tiny run writing into tmp_path/run."""
    return TINY + [f"output_dir={tmp_path / 'run'}"]
