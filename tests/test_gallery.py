"""Every tutorial of the gallery (``examples/**/plot_*.py``) runs to completion.

Each script runs in its own subprocess, as a reader would run it (``python plot_x.py``),
with the non-interactive matplotlib backend, in a temporary working directory (so a
tutorial that writes files leaves nothing in the repository) and with the session's
dataset cache. The docs build (``nox -s docs``) executes the same scripts again inside
Sphinx; this test names the one that broke without a docs build.

Select these tests alone with ``pytest -m gallery``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("**/plot_*.py"))
#: A tutorial should take well under a minute on a 2-core machine; this bound only
#: catches one that runs away (the machine may be busy).
TIME_LIMIT_S = 300


def test_the_gallery_has_tutorials():
    assert len(SCRIPTS) >= 5, f"found only {[s.name for s in SCRIPTS]} under {EXAMPLES}"


@pytest.mark.gallery
@pytest.mark.parametrize("script", SCRIPTS, ids=[str(s.relative_to(EXAMPLES)) for s in SCRIPTS])
def test_tutorial_runs(script: Path, tmp_path: Path):
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIME_LIMIT_S,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"{script.name} did not finish within {TIME_LIMIT_S} s:\n{err.stdout}")
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, (
        f"{script.relative_to(EXAMPLES)} exited with {proc.returncode} after {elapsed:.0f} s\n"
        f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
    )


def _checks(script: Path) -> list[ast.stmt]:
    """The script's checks: ``assert`` statements and ``np.testing.assert_*`` calls."""
    found = []
    for node in ast.walk(ast.parse(script.read_text(), filename=str(script))):
        if isinstance(node, ast.Assert):
            found.append(node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr.startswith("assert_"):
                found.append(node)
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(s.relative_to(EXAMPLES)) for s in SCRIPTS])
def test_tutorial_checks_its_takeaway(script: Path):
    """Each tutorial asserts the claim its takeaway makes, so the docs build fails when the
    output stops proving it (the checks themselves run in ``test_tutorial_runs``)."""
    text = script.read_text()
    assert "Takeaway" in text, f"{script.name} has no Takeaway section"
    assert _checks(script), f"{script.name} states a takeaway but checks none of it"
