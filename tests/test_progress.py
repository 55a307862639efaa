"""Progress off a terminal: periodic plain lines with count, rate and ETA; silent when short."""

from __future__ import annotations

import binmark.progress as progress


def test_plain_lines_when_stderr_is_not_a_terminal(monkeypatch, capsys) -> None:
    clock = iter(range(0, 10_000, 10))  # each call 10 s later
    monkeypatch.setattr(progress.time, "monotonic", lambda: float(next(clock)))
    bar = progress.bar(100, "eval", "img")  # capsys: stderr is not a terminal
    assert not progress.on_terminal()
    for _ in range(10):
        bar.update(10)
    bar.set_postfix_str("fused")
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert 2 <= len(lines) <= 6  # every 30 s (3 updates here), plus the final count
    assert lines[0].startswith("eval: 30/100 img (") and "img/s, ETA " in lines[0]
    assert lines[-1].startswith("eval: 100/100 img") and lines[-1].endswith("[fused]")


def test_a_short_job_prints_nothing(capsys) -> None:
    bar = progress.bar(3, "bench", "engine")
    for _ in range(3):
        bar.update(1)
    bar.close()
    assert capsys.readouterr().err == ""


def test_durations() -> None:
    assert [progress.duration(s) for s in (5, 65, 3725, float("inf"))] == ["5s", "1m05s", "1h02m", "?"]
