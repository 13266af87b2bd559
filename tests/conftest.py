"""Shared pytest configuration.

Tests marked ``multidevice`` need 8 (simulated) devices; `nox -s tests` runs them in a
second pytest pass with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``. In a plain
``pytest`` run on one device they are skipped, never silently passed.
"""

from __future__ import annotations

import jax
import pytest


def pytest_collection_modifyitems(config, items):
    if jax.device_count() >= 8:
        return
    skip = pytest.mark.skip(
        reason=f"needs 8 devices, found {jax.device_count()}: run with "
        "XLA_FLAGS=--xla_force_host_platform_device_count=8 (nox -s tests does)"
    )
    for item in items:
        if "multidevice" in item.keywords:
            item.add_marker(skip)
