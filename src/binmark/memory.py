"""Peak memory of a piece of work on the CPU, as live tensor bytes.

:func:`peak_live_bytes` is the largest amount of CPU tensor memory a callable holds at once, from
PyTorch's allocator accounting (the profiler's memory events, from PyTorch's allocator and from
:mod:`binmark.allocator`'s): what ``torch.cuda.max_memory_allocated`` reports on a GPU,
independent of the C allocator. The process's peak resident set
(``resource.getrusage(...).ru_maxrss``), what the operating system sees, also holds the free memory
the allocators keep: with glibc's heap, for CU-Net training at batch 8 on the CPU, about 1.2 GB
above the live bytes, with binmark's block allocator about 0.2 GB (``benchmarks/train_memory.py``
reports both).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["peak_live_bytes"]


def peak_live_bytes(fn: Callable[[], Any]) -> int:
    """Run ``fn()`` once; the peak, in bytes, of the CPU tensor memory allocated inside ``fn`` and
    alive at the same time (tensors from before ``fn`` are not counted, even when ``fn`` frees them).

    Uses ``torch.profiler`` with ``profile_memory=True`` (its memory events: address and bytes,
    summed per address, so that several allocators' events add up), so ``fn`` runs slower than
    usual: time it separately.
    """
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path, encoding="utf-8") as fh:
            events = json.load(fh)["traceEvents"]
    memory = sorted((e for e in events if e.get("name") == "[memory]" and "Bytes" in e.get("args", {})), key=lambda e: e["ts"])
    held: dict[int, int] = {}  # address → bytes allocated there inside fn
    live = peak = 0
    for e in memory:
        address, size = e["args"]["Addr"], int(e["args"]["Bytes"])
        if size > 0:
            held[address] = size
            live += size
            peak = max(peak, live)
        elif address in held:  # a free of a tensor from before fn is not counted
            live -= held.pop(address)
    return peak

