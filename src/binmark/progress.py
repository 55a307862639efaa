"""Progress that works everywhere: a tqdm bar on a terminal, plain lines elsewhere.

Under nohup, CI or a cluster scheduler stderr is a file: a bar's carriage returns pile up or, with
tqdm's default, nothing is shown at all. There :func:`bar` prints one line every
:data:`PROGRESS_SECONDS` (what, count, rate, ETA) and a last one at the end of a long job.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from tqdm import tqdm

__all__ = ["PROGRESS_SECONDS", "bar", "on_terminal", "duration"]

#: seconds between plain progress lines when stderr is not a terminal
PROGRESS_SECONDS = 30.0


def on_terminal() -> bool:
    """Whether stderr is a terminal (bars) or not (plain lines)."""
    return sys.stderr.isatty()


def duration(seconds: float) -> str:
    """'1h02m', '3m05s', '12s', or '?' when not finite."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class _Lines:
    """tqdm's update / set_postfix / set_postfix_str / close, as periodic plain lines."""

    def __init__(self, total: int | None, desc: str, unit: str) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n, self.postfix, self.printed = 0, "", False
        self.start = self.last = time.monotonic()

    def __iter__(self) -> Any:
        raise TypeError("iterate over the items and call update(); plain progress wraps no iterable")

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= PROGRESS_SECONDS:
            self._line()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def _line(self) -> None:
        elapsed = time.monotonic() - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        of = f"/{self.total}" if self.total else ""
        eta = f", ETA {duration((self.total - self.n) / rate)}" if self.total and rate > 0 else ""
        extra = f" [{self.postfix}]" if self.postfix else ""
        print(f"{self.desc}: {self.n}{of} {self.unit} ({rate:.3g} {self.unit}/s{eta}){extra}", file=sys.stderr, flush=True)
        self.last, self.printed = time.monotonic(), True

    def close(self) -> None:
        if self.printed:  # a long job ends with its final count
            self._line()


def bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True, leave: bool = False) -> Any:
    """A progress reporter with tqdm's ``update``, ``set_postfix``, ``set_postfix_str`` and
    ``close``: a tqdm bar on a terminal, :data:`PROGRESS_SECONDS`-periodic lines otherwise, or
    nothing when ``enabled`` is False."""
    if not enabled:
        return tqdm(total=total, disable=True)
    if on_terminal():
        return tqdm(total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True, file=sys.stderr)
    return _Lines(total, desc, unit)
