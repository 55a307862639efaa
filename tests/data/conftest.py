"""Paths to the real-data fixtures (copied byte for byte from ../shared/fixtures; see its README
for their source and licences: test use only)."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES
