"""``binmark export`` and ``binmark bench`` end to end on small models."""

from __future__ import annotations

import json

import onnx
import pytest
import torch

from binmark.cli import main
from binmark.deploy import bench
from binmark.deploy import load
from binmark.quant import as_spec
from binmark.models import Architecture
from binmark.train.checkpoint import save_checkpoint


@pytest.mark.slow
def test_export_writes_bmk_and_checked_onnx(tmp_path, capsys) -> None:
    # a checkpoint of the older shape: the quant spec beside the options
    arch = {"name": "hourglass", "num_keypoints": 16, "options": {"depth": 2, "width": 32}, "quant": as_spec("bulat17").to_dict()}
    model = Architecture.from_dict(arch).build().eval()
    save_checkpoint(tmp_path / "last.pt", {"model": model.state_dict(), "arch": arch})
    assert main(["export", str(tmp_path / "last.pt"), str(tmp_path / "m.bmk"), "--onnx", str(tmp_path / "m.onnx"), "--input-size", "32"]) == 0
    assert "ONNX Runtime matches" in capsys.readouterr().out
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")))
    packed = load(tmp_path / "m.bmk")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert packed(x)[-1].shape == model(x)[-1].shape == (2, 16, 8, 8)


def test_export_of_a_missing_checkpoint_is_one_line_error(tmp_path, capsys) -> None:
    assert main(["export", str(tmp_path / "none.pt"), str(tmp_path / "m.bmk")]) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_writes_table_json_and_png(tmp_path, capsys) -> None:
    """Every engine runs in its own process; the per-op table and the reference layer are there."""
    args = ["bench", "hourglass", "--quant", "bulat17", "--depth", "2", "--width", "32", "--input-size", "64",
            "--batch", "1", "2", "--runs", "2", "--warmup", "1", "--out", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    for label in ("PyTorch fp32", "ONNX Runtime fp32", "PyTorch int8", "OpenVINO int8", "OpenVINO default", "OpenVINO fp32", "OpenVINO binary IR",
                  "binmark fake-quant", "binmark modules", "binmark fused exact", "binmark fused fast"):  # fmt: skip
        assert label in out
    result = json.loads((tmp_path / "bench.json").read_text())
    assert {r["batch"] for r in result["rows"]} == {1, 2}
    assert not result["skipped"]
    assert {r["variant"] for r in result["rows"]} == set(bench.VARIANTS)
    assert all(r["median_ms"] > 0 and r["file_bytes"] > 0 for r in result["rows"])
    assert result["kernels"]["ops"] and result["kernels"]["reference"]["gmacs"] > 0
    assert "faster than PyTorch fp32" in out or "slower" in out
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_skips_rows_whose_packages_are_missing(monkeypatch) -> None:
    monkeypatch.setattr(bench, "_missing", lambda packages: ["openvino"] if "openvino" in packages else [])
    result = bench.bench("hourglass", 4, {"quant": "bulat17", "depth": 1, "width": 16}, (16, 16), (1,), 1, 1, 0,
                         ("openvino_int8", "packed_exact"), progress=False)  # fmt: skip
    assert "openvino" in result["skipped"]["openvino_int8"]
    assert [r["variant"] for r in result["rows"]] == ["packed_exact"]
