"""``fit(strategy="fsdp")`` over two processes x 2 CPU devices, saved after 2 epochs and
resumed to 3 from the sharded checkpoint, equals 3 epochs of ``"jit"`` in one process."""

from __future__ import annotations

import fsdp_worker
import numpy as np
from cluster_harness import start, stop, wait_all

TIMEOUT_S = 300


def test_two_process_fsdp_fit_and_resume_equal_one_process_jit(tmp_path):
    procs, logs = start(fsdp_worker.__file__, 2, [str(tmp_path)], tmp_path)
    try:
        reference = fsdp_worker.run_fit("jit")
        wait_all(procs, logs, TIMEOUT_S)
    finally:
        stop(procs)
    for i in range(2):
        got = dict(np.load(tmp_path / f"process_{i}.npz"))
        # Dense_0's kernel and its momentum were sharded over the 4 devices of 2 processes
        assert int(got.pop("sharded")) >= 2
        assert set(got) == set(reference) - {"sharded"}
        for key, want in reference.items():
            if key != "sharded":
                np.testing.assert_allclose(got[key], want, rtol=1e-4, atol=1e-4, err_msg=key)
