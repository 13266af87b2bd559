"""Resident memory stays flat: over a 20,000-step ``fit`` (its own process, RSS sampled
every 1,000 steps), and over many checkpoint saves (moved here from
tests/train/test_checkpoint_memory.py; benchmarks/checkpoint_memory.py has the numbers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optax
import pytest

from jdl.nn import MLP
from jdl.train import create_state, save_state

from ._workers import rss_kib

pytestmark = pytest.mark.stress

WORKER = Path(__file__).with_name("_workers.py")
STEPS = 20_000
#: The first checkpoint (step 2,000) loads Orbax's machinery (~6 MiB): growth is measured
#: from the first sample after it.
WARM_UP_STEPS = 3_000
#: A leak of one small array or metrics dict per step is 300 B or more (a NumPy scalar
#: alone is 32 B, a dict of two 100+); measured: about 140 B/step, from the allocator
#: growing its arenas in steps and the per-epoch history.
BYTES_PER_STEP = 300


def test_resident_memory_of_a_20000_step_run_stays_flat(tmp_path, figures):
    out = tmp_path / "rss.json"
    done = subprocess.run(
        [sys.executable, str(WORKER), "rss", str(STEPS), str(out)],
        capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    steps, kib = (np.array(column) for column in zip(*record["samples"], strict=True))
    assert record["steps"] == STEPS and steps[-1] == STEPS and len(steps) >= 20
    after = steps >= WARM_UP_STEPS
    slope = np.polyfit(steps[after], kib[after] * 1024.0, 1)[0]  # bytes per step
    warm = kib[after][0]
    figures(
        f"RSS over {STEPS:,} steps ({record['seconds']:.0f} s): {kib[0] / 1024:.1f} MiB before "
        f"training, {warm / 1024:.1f} MiB at step {steps[after][0]:,} (warm), "
        f"{kib[-1] / 1024:.1f} MiB at the end, max {kib.max() / 1024:.1f} MiB; growth after "
        f"warm-up {(kib[-1] - warm) / 1024:.2f} MiB, fitted {slope:.0f} B/step "
        f"(bound {BYTES_PER_STEP})"
    )
    assert slope < BYTES_PER_STEP, (
        f"resident memory grows {slope:.0f} B/step after warm-up (expected < {BYTES_PER_STEP}); "
        f"samples (step, KiB): {record['samples']}"
    )


def test_resident_memory_stays_flat_over_many_saves(tmp_path, figures):
    """Resident memory over 400 saves after a warm-up."""
    state = create_state(MLP(widths=(8,), num_outputs=3), optax.adam(1e-3), np.zeros((2, 5)), 0)
    for i in range(100):
        save_state(tmp_path, state.replace(step=i), max_to_keep=3)
    start = rss_kib()
    for i in range(100, 500):
        save_state(tmp_path, state.replace(step=i), max_to_keep=3)
    per_save = (rss_kib() - start) / 400
    figures(f"RSS over 400 checkpoint saves: {per_save:.1f} KiB per save (bound 15)")
    # Measured: ~28 KiB per save in this window before the bound, ~6 after (mostly warm-up:
    # benchmarks/checkpoint_memory.py finds ~0.3 KiB/save from save 500 on).
    assert per_save < 15, f"resident memory grew {per_save:.1f} KiB per save (expected < 15)"
