"""``binmark report``: a page with config, curves and the benchmark's plots for face and pose runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from binmark.cli import main
from binmark.plots import plot_pck_curves, plot_per_joint, plot_training_curves, read_log
from binmark.train import Trainer, load_config

from .train.conftest import TINY


def _png(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


@pytest.mark.slow
@pytest.mark.parametrize("dataset,plots,metric", [("synthetic_face", ["ced.png", "per_joint.png"], "NME"),
                                                  ("synthetic_pose", ["pckh.png", "per_joint.png"], "Mean")])  # fmt: skip
def test_report_of_a_run(tmp_path: Path, dataset: str, plots: list[str], metric: str, capsys) -> None:
    run = tmp_path / "run"
    Trainer(load_config(None, TINY + [f"data.dataset={dataset}", "train.epochs=1", f"output_dir={run}"])).fit()
    bench = {"model": {"name": "hourglass", "options": {}, "input_size": [64, 64]},
             "machine": {"cpu": "test CPU", "isa": ["avx2"], "threads": 1, "ghz": 3.0},
             "rows": [{"variant": "pytorch_fp32", "label": "PyTorch fp32", "batch": 1, "median_ms": 3.0, "per_image_ms": 3.0,
                       "peak_mb": 10.0, "file_bytes": 2e6},
                      {"variant": "packed_fast", "label": "binmark fused fast", "batch": 1, "median_ms": 1.0, "per_image_ms": 1.0,
                       "peak_mb": 5.0, "file_bytes": 1e5}], "skipped": {}}  # fmt: skip
    (run / "bench.json").write_text(json.dumps(bench))
    assert main(["report", str(run)]) == 0
    out = run / "report"
    for name in ["training.png", "bench.png", *plots]:
        w, h = _png(out / name)
        assert w > 200 and h > 100
    md = (out / "report.md").read_text()
    assert "binmark fused fast" in md and "## Config" in md and f"| {metric} |" in md and "![" in md
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and all(f'src="{p}"' in html for p in plots)
    assert json.loads((out / "eval.json").read_text())["metrics"][metric] >= 0


def test_report_needs_a_run_folder(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 1
    assert "log.jsonl does not exist" in capsys.readouterr().err


def test_plots_write_pngs(tmp_path: Path) -> None:
    plot_pck_curves({"a": ([0, 0.25, 0.5], [0, 60, 90])}, tmp_path / "p.png")
    plot_per_joint(["x", "y", "z"], [10.0, float("nan"), 30.0], tmp_path / "j.png", "PCKh@0.5 (%)")
    log = tmp_path / "log.jsonl"
    lines = [{"event": "config", "config": {}}, {"step": 1, "loss": 9.0, "stage": "old"},
             {"event": "config", "config": {}}, {"step": 1, "loss": 2.0, "stage": "s"}, {"step": 2, "loss": 1.0, "stage": "s"},
             {"step": 2, "stage": "s", "val/NME": 5.0}]  # fmt: skip
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n{cut")
    records = read_log(log)
    assert [r.get("loss") for r in records if "loss" in r] == [2.0, 1.0]  # the latest run only; the cut line is ignored
    assert plot_training_curves(records, tmp_path / "t.png") == ["val/NME"]
    for name in ("p.png", "j.png", "t.png"):
        _png(tmp_path / name)
