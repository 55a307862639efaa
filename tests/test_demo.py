"""binmark.demo: the shipped recipe is the demo's, and a model that does not beat the mean shape
fails the demo."""

from __future__ import annotations

import json
from pathlib import Path

from binmark.train import load_config


def test_shipped_demo_recipe_is_the_demo(tmp_path: Path) -> None:
    from binmark.demo import demo_config

    from_file = load_config(Path(__file__).resolve().parents[1] / "configs/synthetic/face_hpm_binary.yaml", [f"output_dir={tmp_path / 'run'}"])
    assert from_file == demo_config(tmp_path)


def test_demo_reports_failure_when_the_model_does_not_beat_the_baseline(tmp_path: Path, capsys) -> None:
    from binmark.demo import run_demo

    tiny = {
        "model": {"options": {"stacks": 1, "depth": 2, "width": 16, "block": "hpm"}},
        "data": {"train": {"size": 16, "seed": 0}, "val": {"size": 8, "seed": 1}, "num_workers": 0},
        "train": {"batch_size": 8, "log_every": 1},
        "stages": [{"name": "binary", "epochs": 1, "quant": "bulat17", "lr": 0.0}],
    }
    code = run_demo(tmp_path, tiny)
    out = capsys.readouterr().out
    assert code == 1 and "FAILED" in out  # an untrained model cannot beat the mean shape
    assert {"report.md", "ced.png", "predictions.png", "report.json", "config.yaml"} <= {p.name for p in tmp_path.iterdir()}
    assert "does not beat the mean-shape baseline" in (tmp_path / "report.md").read_text()
    summary = json.loads((tmp_path / "report.json").read_text())
    assert summary["model"]["NME"] > summary["mean_shape"]["NME"] * 0.6
