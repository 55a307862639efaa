"""binmark's CPU block allocator: large tensors from memory segments of their own.

With glibc's ``malloc``, PyTorch's large CPU tensors share the heap with the many small objects an
autograd graph keeps from forward to backward (nodes, saved-variable records, tensor headers).
Those are carved out of the holes that freed tensors leave, the holes stop fitting the next
tensors, and the heap grows: training CU-Net N=8 W1A1 (memory-efficient) at batch 8 touched 2.7×
the memory live at its peak. Replaying that step's allocations through glibc without the small
long-lived ones peaks at 866 MB instead of 2,258 MB (docs/training.md, "Training memory").

:func:`enable_block_allocator` installs, for the rest of the process, an allocator
(``src/binmark/csrc/block_allocator.cpp``, through ``c10::SetCPUAllocator``) that serves every
request of 256 KiB or more from 64 MiB segments only large tensors use (best fit, 4 KiB
granularity, freed blocks merged with free neighbours) and passes smaller ones to PyTorch's
allocator. Values are unchanged (it only decides where tensors live). Memory stays with the
process for reuse, as the CUDA caching allocator keeps it; :func:`release_free_memory` gives free
pages back. Training on the CPU enables it (``train.block_allocator``, default true).

The C++ file is compiled against the installed torch on first use (about a second; the C++
compiler from ``$CXX``, else ``c++``) and cached in ``$XDG_CACHE_HOME/binmark`` (default
``~/.cache/binmark``). Linux only; where it cannot be built, a warning says why and PyTorch's
allocator stays.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch

__all__ = ["enable_block_allocator", "block_allocator_enabled", "block_allocator_stats", "release_free_memory"]

SOURCE = Path(__file__).resolve().parent / "csrc" / "block_allocator.cpp"

_lib: ctypes.CDLL | None = None
_enabled = False


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "binmark"


def _compile_command(output: str) -> list[str]:
    """The compiler call that builds the shared library against the imported torch."""
    torch_dir = Path(torch.__file__).resolve().parent
    return [
        os.environ.get("CXX", "c++"), "-O2", "-std=c++17", "-fno-rtti", "-fPIC", "-shared", "-fvisibility=hidden",
        f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
        f"-I{torch_dir / 'include'}", str(SOURCE), f"-L{torch_dir / 'lib'}", "-lc10",
        f"-Wl,-rpath,{torch_dir / 'lib'}", "-o", output,
    ]  # fmt: skip


def _load() -> ctypes.CDLL | None:
    """The built library (compiled once per source, torch version and compiler), or None with a
    warning saying why it cannot be had."""
    global _lib
    if _lib is not None:
        return _lib
    if not sys.platform.startswith("linux"):
        warnings.warn("binmark's block allocator runs on Linux only; PyTorch's CPU allocator stays", stacklevel=3)
        return None
    key = hashlib.sha256(
        SOURCE.read_bytes() + "\0".join([torch.__version__, *_compile_command("")]).encode()
    ).hexdigest()[:16]
    target = _cache_dir() / f"block_allocator-{key}.so"
    if not target.exists():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
            os.close(fd)
            done = subprocess.run(_compile_command(tmp), capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                os.unlink(tmp)
                warnings.warn(
                    f"binmark's block allocator did not build ({SOURCE}):\n{done.stderr.strip()[-2000:]}\n"
                    "Set CXX to a working C++17 compiler; PyTorch's CPU allocator stays", stacklevel=3
                )
                return None
            os.replace(tmp, target)  # atomic: a parallel build finds a whole file or none
        except (OSError, subprocess.TimeoutExpired) as exc:
            warnings.warn(
                f"binmark's block allocator could not be built into {target.parent}: {exc}. Set CXX to a C++17 "
                "compiler and XDG_CACHE_HOME to a writable folder; PyTorch's CPU allocator stays", stacklevel=3
            )
            return None
    try:
        lib = ctypes.CDLL(str(target))
    except OSError as exc:
        warnings.warn(
            f"binmark's block allocator ({target}) did not load: {exc}. Delete the file to rebuild it; "
            "PyTorch's CPU allocator stays", stacklevel=3
        )
        return None
    lib.binmark_blocks_enable.restype = None
    lib.binmark_blocks_stats.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint64)]
    lib.binmark_blocks_release.restype = ctypes.c_uint64
    _lib = lib
    return lib


def enable_block_allocator() -> bool:
    """Serve CPU tensors of 256 KiB or more from binmark's block allocator for the rest of the
    process (idempotent; tensors allocated before keep their memory). False, with a warning, where
    it cannot be built or run (not Linux, no C++ compiler)."""
    global _enabled
    if _enabled:
        return True
    lib = _load()
    if lib is None:
        return False
    lib.binmark_blocks_enable()
    _enabled = True
    return True


def block_allocator_enabled() -> bool:
    """Whether this process's CPU tensors come from the block allocator."""
    return _enabled


def block_allocator_stats() -> dict[str, int]:
    """``{"live": bytes in live blocks, "mapped": bytes mapped}`` of the block allocator (both 0
    while it is not enabled). Mapped pages count in the resident set once touched, until given
    back by :func:`release_free_memory`."""
    if not _enabled or _lib is None:
        return {"live": 0, "mapped": 0}
    live, mapped = ctypes.c_uint64(), ctypes.c_uint64()
    _lib.binmark_blocks_stats(ctypes.byref(live), ctypes.byref(mapped))
    return {"live": live.value, "mapped": mapped.value}


def release_free_memory() -> int:
    """Give the pages of the block allocator's free memory back to the operating system (e.g.
    between training and evaluation); returns the bytes given back (0 while not enabled). Their
    next use costs a page fault each."""
    if not _enabled or _lib is None:
        return 0
    return int(_lib.binmark_blocks_release())
