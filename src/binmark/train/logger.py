"""Run logs: JSON lines of every metric, TensorBoard scalars, progress bars. Rank 0 only.

``OUTPUT_DIR/log.jsonl`` gets one JSON object per line (``{"step": …, "loss": …}`` or
``{"event": "config", …}``), flushed at once so a killed run keeps its log; a resumed run appends.
TensorBoard event files go to ``OUTPUT_DIR/tb``. Progress: tqdm bars on a terminal; otherwise
(nohup, CI, cluster jobs) a plain line on stderr every
:data:`binmark.progress.PROGRESS_SECONDS` and at each epoch's end, with the whole run's ETA.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from binmark import progress

__all__ = ["RunLogger"]


class RunLogger:
    """JSON-lines + TensorBoard logger for one run directory; a no-op when ``enabled`` is False."""

    def __init__(self, out: Path, enabled: bool = True) -> None:
        self.enabled = enabled
        self.plain = enabled and not progress.on_terminal()  # no bars: print progress lines instead
        self._last_line = time.monotonic()
        self._tb: Any = None
        self._file = None
        if enabled:
            out.mkdir(parents=True, exist_ok=True)
            self._file = (out / "log.jsonl").open("a", encoding="utf-8")
            self._tb_dir = out / "tb"

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(record, default=_plain) + "\n")
        self._file.flush()

    def event(self, kind: str, **fields: Any) -> None:
        """A non-numeric record (config, resume, …)."""
        self._write({"event": kind, "time": time.time(), **fields})

    def scalars(self, step: int, **values: Any) -> None:
        """Metrics at a step: to the JSON lines and, when numeric, to TensorBoard."""
        if not self.enabled:
            return
        self._write({"step": step, "time": time.time(), **values})
        writer = self._writer()
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                writer.add_scalar(key, value, step)

    def _writer(self) -> Any:
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self._tb_dir))
        return self._tb

    def progress(self, total: int, desc: str) -> Any:
        """A progress bar (only on a terminal, and only on rank 0; elsewhere :meth:`heartbeat`
        prints the lines)."""
        return progress.bar(total, desc, enabled=self.enabled and not self.plain)

    def heartbeat(self, line: Callable[[], str], force: bool = False) -> None:
        """Print ``line()`` to stderr when progress bars are off and
        :data:`binmark.progress.PROGRESS_SECONDS` have passed since the last line (or ``force``);
        ``line`` is only called then."""
        if not self.plain or (not force and time.monotonic() - self._last_line < progress.PROGRESS_SECONDS):
            return
        print(line(), file=sys.stderr, flush=True)
        self._last_line = time.monotonic()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._file is not None:
            self._file.close()
            self._file = None


def _plain(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)
