"""Peak memory of a piece of work on the CPU.

Two measures, because they answer different questions:

- :func:`peak_live_bytes`: the largest growth of the bytes held by live CPU tensors while a
  callable runs, from PyTorch's own allocator accounting (the profiler's memory events). It is what
  ``torch.cuda.max_memory_allocated`` reports on a GPU, and it does not depend on the C allocator.
- :func:`peak_resident_mib`: the process's peak resident set (``ru_maxrss``), what the operating
  system sees. On Linux with glibc it also holds the free memory the C allocator keeps in its
  heap (freed tensors whose pages it has not given back), which for training on the CPU was
  about 1 GB above the live bytes in ``benchmarks/train_memory.py``.
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["peak_live_bytes", "peak_resident_mib"]


def peak_live_bytes(fn: Callable[[], Any]) -> int:
    """Run ``fn()`` once; the peak, in bytes, of the CPU tensor memory allocated inside ``fn`` and
    alive at the same time (tensors from before ``fn`` are not counted, even when ``fn`` frees them).

    Uses ``torch.profiler`` with ``profile_memory=True`` (the "Total Allocated" of its memory
    events), so ``fn`` runs slower than usual: time it separately.
    """
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path, encoding="utf-8") as fh:
            events = json.load(fh)["traceEvents"]
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]" and "Total Allocated" in e.get("args", {})]
    return int(max(totals, default=0))


def peak_resident_mib() -> float:
    """The process's peak resident set so far, in MiB (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
