"""Fixtures of the stress suite (``nox -s stress``, opt-in: ``JDL_STRESS=1``): a small
filesystem to fill, and the figures each test reports, printed at the end of the run."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

#: ``(test, line)`` pairs, printed under "jdl stress figures" by the terminal summary.
_FIGURES: list[tuple[str, str]] = []


@pytest.fixture
def figures(request) -> Callable[[str], None]:
    """``figures(line)``: a figure for the run's summary (also printed at once, for ``-s``)."""
    name = request.node.name

    def report(line: str) -> None:
        _FIGURES.append((name, line))
        print(f"[stress] {name}: {line}", flush=True)

    return report


def pytest_terminal_summary(terminalreporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("jdl stress figures")
    for name, line in _FIGURES:
        terminalreporter.write_line(f"{name}: {line}")


@pytest.fixture
def small_disk(tmp_path) -> Callable[[str], contextlib.AbstractContextManager[Path]]:
    """``with small_disk("8m") as path``: a tmpfs of that size mounted at ``path`` (and
    unmounted after the block); the test is skipped where it cannot be mounted."""

    @contextlib.contextmanager
    def mount(size: str) -> Iterator[Path]:
        if not sys.platform.startswith("linux"):
            pytest.skip(f"a full disk is made with a tmpfs mount (Linux); this is {sys.platform}")
        path = tmp_path / f"disk-{size}"
        path.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "jdl-stress", str(path)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(
                f"cannot mount a {size} tmpfs at {path} to fill it (needs root or "
                f"CAP_SYS_ADMIN): {done.stderr.strip() or done.returncode}"
            )
        try:
            yield path
        finally:
            subprocess.run(["umount", "--lazy", str(path)], check=True)

    return mount


@pytest.fixture
def fill() -> Callable[..., Path]:
    """``fill(directory, leave=0)``: see :func:`_fill`."""
    return _fill


def _fill(directory: Path, leave: int = 0) -> Path:
    """Fill the filesystem of ``directory`` up to ``leave`` free bytes with one file (its path:
    delete it to free the space)."""
    filler = directory / f".filler-{leave}"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        chunk = b"\0" * (1 << 16)
        while True:
            try:
                os.write(fd, chunk)
            except OSError:
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler
