"""``fit(strategy="fsdp")`` over 2 processes x 2 CPU devices (and 4 x 1), saved after 2
epochs and resumed to 3 from the sharded checkpoint, equals 3 epochs of ``"jit"`` in one
process."""

from __future__ import annotations

import fsdp_worker
import numpy as np
import pytest
from cluster_harness import start, stop, wait_all

TIMEOUT_S = 300


@pytest.mark.parametrize("processes, local_devices", [(2, 2), (4, 1)])
def test_multi_process_fsdp_fit_and_resume_equal_one_process_jit(
    tmp_path, processes, local_devices
):
    procs, logs = start(
        fsdp_worker.__file__, processes, [str(tmp_path)], tmp_path, local_devices=local_devices
    )
    try:
        reference = fsdp_worker.run_fit("jit")
        wait_all(procs, logs, TIMEOUT_S)
    finally:
        stop(procs)
    for i in range(processes):
        got = dict(np.load(tmp_path / f"process_{i}.npz"))
        # Dense_0's kernel and its momentum were sharded over the 4 devices of the processes
        assert int(got.pop("sharded")) >= 2
        assert set(got) == set(reference) - {"sharded"}
        for key, want in reference.items():
            if key != "sharded":
                np.testing.assert_allclose(got[key], want, rtol=1e-4, atol=1e-4, err_msg=key)
