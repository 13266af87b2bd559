"""Task runner: `nox -s lint tests` is what CI runs (see README.md and .ci/run)."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.error_on_missing_interpreters = True

SOURCES = ["jdl", "tests", "examples", "noxfile.py"]
MULTIDEVICE_FLAGS = "--xla_force_host_platform_device_count=8"


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite on one CPU device, then its multi-device part on 8 simulated devices."""
    session.install("-e", ".[test]")
    env = {"JAX_PLATFORMS": "cpu"}
    args = session.posargs or []
    session.run("pytest", "-m", "not multidevice", *args, env=env)
    session.run(
        "pytest",
        "-m",
        "multidevice",
        *args,
        env={**env, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {MULTIDEVICE_FLAGS}".strip()},
    )
