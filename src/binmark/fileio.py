"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A reader never sees a half-written file, and a crash leaves the previous version intact. Files
get the permissions any new file gets (``0o666`` less the umask), as ``open()`` would give them.
Temporary files are named ``.NAME.PID.TOKEN.tmp[.SUFFIX]``; those of a process that is no longer
running (a save killed midway) are removed the first time this process writes into that folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "atomic_open", "temp_path", "remove_orphans"]

_ORPHAN = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{16}\.tmp(\.[A-Za-z0-9]+)?$")
_cleaned: set[Path] = set()
_lock = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it where Linux exposes it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _lock:  # elsewhere: set and restore (the only portable way to read it)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_orphans(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files in ``folder`` left by writers that are no longer running.

    Returns:
        the removed paths.
    """
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            m = _ORPHAN.match(entry.name)
            if m and entry.is_file(follow_symlinks=False) and int(m["pid"]) != os.getpid() and not _alive(int(m["pid"])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def _clean_once(folder: Path) -> None:
    key = folder.resolve()
    with _lock:
        if key in _cleaned:
            return
        _cleaned.add(key)
    remove_orphans(key)


def temp_path(target: str | os.PathLike[str], suffix: str = "") -> Path:
    """A fresh temporary path next to ``target`` for writers that need a file name (e.g. a video
    writer choosing its container by ``suffix``, ".mp4"); rename it onto ``target`` when done."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_once(target.parent)
    return target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp{suffix}"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` atomically.

    Args:
        path: the final file; its folder is created if missing.
        mode: "wb" or "w" (text, UTF-8).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    target = Path(path)
    tmp = temp_path(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666 & ~_umask())
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` (bytes, or str as UTF-8) to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
