"""The binmark command line: exit codes, one-line errors, summary output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import binmark
from binmark.cli import main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "binmark.cli", *args], capture_output=True, text=True, check=False
    )


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"binmark {binmark.__version__}"


@pytest.mark.parametrize("argv", [["--help"], ["summary", "--help"], ["summary", "hourglass", "--help"], ["demo", "--help"]])
def test_help(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0 and "usage: binmark" in capsys.readouterr().out


def test_summary_of_the_binary_hpm_hourglass(capsys) -> None:
    code = main(["summary", "hourglass", "--block", "hpm", "--quant", "bulat17", "--stacks", "1",
                 "--keypoints", "16"])
    out = capsys.readouterr().out
    assert code == 0
    assert "6,236,304" in out and "binary MACs" in out and "packed size" in out


def test_summary_json_and_layers(capsys) -> None:
    assert main(["summary", "hourglass", "--width", "32", "--depth", "2", "--input-size", "32x48",
                 "--quant", "xnor", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["input_size"] == [1, 3, 32, 48] and data["params_by_bits"]["1"] > 0
    assert main(["summary", "hourglass", "--width", "16", "--depth", "1", "--input-size", "8",
                 "--layers", "--no-post-relu"]) == 0
    assert "stem.conv" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["summary", "hourglass", "--block", "foo"], "invalid choice: 'foo'"),
        (["summary", "hourglass", "--stacks", "two"], "invalid int value: 'two'"),
        (["summary", "hourglass", "--width", "12"], "width must be divisible by 8, got 12"),
        (["summary", "hourglass", "--input-size", "100"], "divisible by 64"),
        (["summary", "hourglass", "--input-size", "big"], "'big' is not a size"),
        (["summary", "nomodel"], "invalid choice: 'nomodel'"),
    ],
)
def test_wrong_arguments_exit_2_with_one_line(argv: list[str], reason: str) -> None:
    result = _run(*argv)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_other_failures_exit_1_without_traceback(monkeypatch, capsys) -> None:
    import binmark.cli as cli

    def boom(args):
        raise FileNotFoundError("model file /nope.bmk does not exist")

    monkeypatch.setattr(cli, "_cmd_demo", boom)
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "binmark: error: model file /nope.bmk does not exist"


def test_data_preview_of_a_dataset(tmp_path) -> None:
    from pathlib import Path

    fixtures = Path(__file__).resolve().parent / "fixtures"
    out = tmp_path / "grid.png"
    code = main(["data", "preview", "wflw", "--ann-file", str(fixtures / "wflw/test_wflw.json"),
                 "--image-dir", str(fixtures / "wflw"), "--out", str(out), "--size", "64"])
    assert code == 0 and out.is_file() and out.stat().st_size > 1000


def test_data_preview_bad_source() -> None:
    result = _run("data", "preview", "imagenet")
    assert result.returncode == 2 and "invalid choice: 'imagenet'" in result.stderr
