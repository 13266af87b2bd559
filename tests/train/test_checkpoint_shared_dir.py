"""A checkpoint directory that not every process sees fails fast, on every process, with a
message that says so (issue #12); one shared directory works.

Two local processes (``jax.distributed`` over gloo on 127.0.0.1, started by
``cluster_harness``) run this file as a script. Each first trains with a ``Checkpoint``
callback into a directory of its own (two local directories: what separate hosts with local
disks have), then calls ``save_state`` into it, then trains into one directory both see.
Without the check, Orbax's collective save crashes both processes with a
``sync_global_devices`` name mismatch, or hangs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cluster_harness as harness
import pytest

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


def worker(process_id: int, num_processes: int, port: int, root: str) -> None:
    """One process: the three attempts, written to ``root/result_<id>.json``."""
    import jax

    harness.join(process_id, num_processes, port)
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
    procs, logs = harness.start(__file__, NUM_PROCESSES, [str(root)], root)
    try:
        harness.wait_all(procs, logs, TIMEOUT_S)
    finally:
        harness.stop(procs)
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
    worker(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
