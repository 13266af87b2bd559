"""Fixtures for jdl.data tests (the session data directory ``data_dir`` is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def fresh_dir(tmp_path: Path) -> Path:
    """An empty per-test data directory, for tests that must watch a preparation."""
    return tmp_path / "fresh-data"
