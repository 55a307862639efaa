"""Shared test helpers."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


def real_values_with_zeros(shape: tuple[int, ...] = (4, 64), clip: float = 1.0) -> torch.Tensor:
    """Random values in [-2, 2] with exact 0, ±clip and ±1 planted (larq's test-input idea)."""
    x = torch.rand(*shape, dtype=torch.float64) * 4.0 - 2.0
    flat = x.view(-1)
    planted = torch.tensor([0.0, clip, -clip, 1.0, -1.0, 0.5, -0.5], dtype=torch.float64)
    flat[: planted.numel()] = planted
    return x


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (TimeoutError) instead of hanging when the block runs longer than ``seconds``: the
    bound of every test of a case that used to hang (SIGALRM; main thread, POSIX)."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s: this hangs")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
