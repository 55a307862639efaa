"""Paths to the real-data fixtures in tests/fixtures (data files from github.com/open-mmlab/mmpose,
tests/data/; tests/fixtures/README.md gives their source and licences: test use only)."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES
