"""Shared pytest configuration.

Tests marked ``multidevice`` need 8 (simulated) devices; `nox -s tests` runs them in a
second pytest pass with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``. In a plain
``pytest`` run on one device they are skipped, never silently passed. Tests marked
``stress`` (tests/stress) are skipped unless ``JDL_STRESS=1`` (`nox -s stress` sets it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import jax
import pytest


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's cache of bundled datasets (also ``$JDL_DATA_DIR``).

    ``JDL_DATA_DIR`` and ``XDG_CACHE_HOME`` point into pytest's temporary directory for the
    whole session, so no test writes into the user's home directory, and each bundled
    dataset is generated at most once per session.
    """
    root = tmp_path_factory.mktemp("jdl-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JDL_DATA_DIR", str(root))
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield root


def pytest_collection_modifyitems(config, items):
    if not os.environ.get("JDL_STRESS"):
        stress = pytest.mark.skip(reason="the stress suite is opt-in: JDL_STRESS=1 (nox -s stress)")
        for item in items:
            if "stress" in item.keywords:
                item.add_marker(stress)
    if jax.device_count() >= 8:
        return
    skip = pytest.mark.skip(
        reason=f"needs 8 devices, found {jax.device_count()}: run with "
        "XLA_FLAGS=--xla_force_host_platform_device_count=8 (nox -s tests does)"
    )
    for item in items:
        if "multidevice" in item.keywords:
            item.add_marker(skip)
