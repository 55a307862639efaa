"""Atomic writes: permissions follow the umask; a killed save's temporary file is removed later."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from binmark.fileio import atomic_open, atomic_write, remove_orphans


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_written_files_get_the_umask_permissions(tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        atomic_write(tmp_path / "a.json", "{}")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask == (tmp_path / "plain").stat().st_mode & 0o777


def test_a_save_killed_midway_leaves_a_temporary_file_the_next_writer_removes(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from binmark.fileio import atomic_open\n"
        f"with atomic_open({str(tmp_path / 'ckpt.pt')!r}) as f:\n"
        "    f.write(b'x' * 1000); f.flush(); print('writing', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".ckpt.pt.") and not (tmp_path / "ckpt.pt").exists()
    with atomic_open(tmp_path / "other.json", "w") as f:  # the first write into the folder cleans it
        f.write("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json"]


def test_live_writers_temporary_files_are_kept(tmp_path: Path) -> None:
    mine = tmp_path / f".x.{os.getpid()}.{'0' * 16}.tmp"
    mine.write_bytes(b"")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        theirs = tmp_path / f".y.{other.pid}.{'1' * 16}.tmp.mp4"
        theirs.write_bytes(b"")
        user = tmp_path / ".notes.tmp"  # not our naming: never touched
        user.write_bytes(b"")
        assert remove_orphans(tmp_path) == []
        assert mine.exists() and theirs.exists() and user.exists()
    finally:
        other.kill()
        other.wait()
    time.sleep(0.1)
    assert remove_orphans(tmp_path) == [theirs] and user.exists()
