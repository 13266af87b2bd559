"""A checkpoint directory that not every process sees fails fast, on every process, with a
message that says so (issue #12); one shared directory works.

Two local processes (``jax.distributed`` over gloo on 127.0.0.1, the harness of
``test_multihost.py``) run this file as a script. Each first trains with a ``Checkpoint``
callback into a directory of its own (two local directories: what separate hosts with local
disks have), then calls ``save_state`` into it, then trains into one directory both see.
Without the check, Orbax's collective save crashes both processes with a
``sync_global_devices`` name mismatch, or hangs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_multihost import _free_port, _tail, _worker_env

NUM_PROCESSES = 2
TIMEOUT_S = 300  # both scenarios; ~20 s on an idle 2-core machine
NOT_SHARED = "is not shared by all processes"


def _attempt(fn) -> str:
    """``"ok"``, or the message of the ``ValueError`` that ``fn()`` raised."""
    try:
        fn()
    except ValueError as err:
        return str(err)
    return "ok"


def worker(process_id: int, port: int, root: str) -> None:
    """One process: the three attempts, written to ``root/result_<id>.json``."""
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        f"127.0.0.1:{port}",
        num_processes=NUM_PROCESSES,
        process_id=process_id,
        initialization_timeout=60,
    )
    import multihost_worker as mw
    import numpy as np

    import jdl

    own = str(Path(root) / f"local_{process_id}")
    shared = str(Path(root) / "shared")
    state = jdl.train.create_state(
        mw.make_model(), mw.make_optimizer(), np.zeros((2, 5), np.float32)
    )
    result = {
        "fit_own": _attempt(lambda: mw.run_fit("sharded", own, epochs=1)),
        "save_own": _attempt(lambda: jdl.train.save_state(own, state)),
        "fit_shared": _attempt(lambda: mw.run_fit("sharded", shared, epochs=1)),
        "latest_shared": jdl.train.latest_step(shared),
    }
    (Path(root) / f"result_{process_id}.json").write_text(json.dumps(result))
    jax.distributed.shutdown()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared_dir")
    port = _free_port()
    procs, logs = [], []
    try:
        for i in range(NUM_PROCESSES):
            logs.append(root / f"process_{i}.log")
            with open(logs[-1], "w") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, __file__, str(i), str(port), str(root)],
                        cwd=Path(__file__).parent,
                        env=_worker_env(),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                )
        deadline = time.monotonic() + TIMEOUT_S
        for i, proc in enumerate(procs):
            try:
                code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                pytest.fail(f"process {i} still running after {TIMEOUT_S} s:\n{_tail(logs[i])}")
            if code != 0:
                pytest.fail(f"process {i} exited with {code}:\n{_tail(logs[i])}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    found = [json.loads((root / f"result_{i}.json").read_text()) for i in range(NUM_PROCESSES)]
    return root, found


def test_directories_not_shared_fail_on_every_process_before_saving(results):
    root, found = results
    for i, result in enumerate(found):
        for attempt in ("fit_own", "save_own"):
            message = result[attempt]
            assert NOT_SHARED in message, (i, attempt, message)
            assert str(root / f"local_{i}") in message, message  # its own path
            assert "process(es) 1 of 2 do not see process 0's files" in message, message
            assert "a shared filesystem or an object store (gs://...)" in message, message
        # Nothing was saved, and the marker is gone.
        assert not (root / f"local_{i}").exists() or not any((root / f"local_{i}").iterdir())


def test_a_shared_directory_checkpoints_as_before(results):
    root, found = results
    for result in found:
        assert result["fit_shared"] == "ok", result
        assert result["latest_shared"] is not None and result["latest_shared"] > 0, result
    assert found[0]["latest_shared"] == found[1]["latest_shared"]
    names = sorted(p.name for p in (root / "shared").iterdir())
    assert names == [str(found[0]["latest_shared"])], names  # no marker left beside it


if __name__ == "__main__":
    worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
