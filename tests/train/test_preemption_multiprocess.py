"""SIGTERM to one process of a 2-process run (a cluster's preemption notice): every process
stops after the same step, the checkpoint of that step is saved, and each returns
(``on_sigterm="return"``: exit 0) or exits 143 -- none hangs (issue #12)."""

from __future__ import annotations

import re
import signal
import time

import cluster_harness as harness
import preempt_worker
import pytest

import jdl
from jdl.train import latest_step

TIMEOUT_S = 240


def _preempt(tmp_path, mode):
    procs, logs = harness.start(preempt_worker.__file__, 2, [str(tmp_path), mode], tmp_path)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not all("ready" in log.read_text() for log in logs if log.exists()):
            assert time.monotonic() < deadline, [harness.tail(log) for log in logs]
            assert all(p.poll() is None for p in procs), [harness.tail(log) for log in logs]
            time.sleep(0.2)
        time.sleep(0.5)
        procs[1].send_signal(signal.SIGTERM)  # one process only gets the notice
        sent = time.monotonic()
        codes = [p.wait(timeout=60) for p in procs]
        elapsed = time.monotonic() - sent
    finally:
        harness.stop(procs)
    return codes, [log.read_text() for log in logs], elapsed


@pytest.mark.parametrize("mode, code", [("return", 0), ("exit", 143)])
def test_sigterm_to_one_process_stops_every_process_after_the_same_step(tmp_path, mode, code):
    codes, outputs, elapsed = _preempt(tmp_path, mode)
    assert codes == [code, code], outputs
    pattern = r"preempted (\d+)" if mode == "return" else r"exit 143 after step (\d+)"
    steps = [int(re.search(pattern, out).group(1)) for out in outputs]
    assert steps[0] == steps[1] > 0, outputs
    assert latest_step(tmp_path / "checkpoints") == steps[0]  # saved at the stop step
    if mode == "return":  # each process called save_model; process 0 wrote it
        assert all("model saved" in out for out in outputs), outputs
        model, variables = jdl.load_model(tmp_path / "model")
        assert model == jdl.nn.MLP(widths=(16,), num_outputs=3) and "params" in variables
    print(f"{mode}: both stopped after step {steps[0]}, {elapsed:.1f} s after the signal")
