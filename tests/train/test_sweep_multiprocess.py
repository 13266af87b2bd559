"""``jdl.train.sweep`` over 2 processes x 2 CPU devices, and over 4 x 1, equals the
one-process sweep.

Each process reads its half of every global batch; the sweep's step is data-parallel
over the devices of both processes (as ``fit``'s), so both report the one-process losses.
"""

from __future__ import annotations

import numpy as np
import pytest
import sweep_worker
from cluster_harness import start, stop, wait_all

TIMEOUT_S = 300


@pytest.mark.parametrize("processes, local_devices", [(2, 2), (4, 1)])
def test_a_multi_process_sweep_equals_one_process_sweep(tmp_path, processes, local_devices):
    procs, logs = start(
        sweep_worker.__file__, processes, [str(tmp_path)], tmp_path, local_devices=local_devices
    )
    try:
        reference = sweep_worker.run_sweep()
        wait_all(procs, logs, TIMEOUT_S)
    finally:
        stop(procs)
    assert {k for k in reference if k.endswith("/val_loss")} == {"0/val_loss", "1/val_loss"}
    for i in range(processes):
        got = dict(np.load(tmp_path / f"process_{i}.npz"))
        assert set(got) == set(reference)
        for key, want in reference.items():
            np.testing.assert_allclose(got[key], want, rtol=1e-5, atol=1e-5, err_msg=key)
