"""The tutorials in examples/ run and reach the numbers they claim."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, tmp_path: Path) -> tuple[str, float]:
    env = {**os.environ, "MPLBACKEND": "Agg", "JDL_DATA_DIR": str(tmp_path / "data")}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, elapsed


def test_digits_mlp_example_reaches_95_percent_within_a_minute(tmp_path):
    out, elapsed = _run("train_digits_mlp.py", tmp_path)
    match = re.search(r"test accuracy: ([\d.]+)%", out)
    assert match, out
    assert float(match.group(1)) >= 95.0, out
    # Includes interpreter start-up, JAX import, compilation and preparing the dataset.
    assert elapsed < 60, f"took {elapsed:.1f} s"
