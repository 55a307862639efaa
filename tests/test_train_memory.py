"""benchmarks/train_memory.py: a child run gives a full row (with the block allocator, as binmark
train runs), and the step count is checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "train_memory.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=300)


def test_child_reports_memory_live_bytes_and_step_time() -> None:
    name = "hourglass 1-stack HPM, binary packed"
    done = _run("--child", name, "--batch", "2", "--size", "64", "--steps", "3")
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["name"] == name and row["batch"] == 2 and row["steps"] == 3 and row["allocator"] == "block"
    assert row["peak_mb"] >= 0 and row["live_mb"] > 0 and row["step_s"] > 0


def test_fewer_than_two_steps_is_an_error_naming_the_option() -> None:
    done = _run("--steps", "1", "--only", "nothing")
    assert done.returncode != 0 and "--steps must be at least 2" in done.stderr
