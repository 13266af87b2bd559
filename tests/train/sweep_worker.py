"""One process of the two-process sweep test (``test_sweep_multiprocess.py`` starts it).

Run as ``python sweep_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR``: joins the
cluster (:mod:`cluster_harness`), runs :func:`run_sweep` and writes its per-configuration
losses and parameters to ``OUT_DIR/process_<id>.npz``. The test runs the same function in
one process and compares.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def run_sweep() -> dict[str, np.ndarray]:
    """A sweep of 2 learning rates of a BatchNorm MLP, with validation; its results."""
    from conftest import blobs

    import jdl
    from jdl._core.tree import leaf_paths

    result = jdl.train.sweep(
        jdl.nn.MLP(widths=(16,), num_outputs=3, batch_norm=True),
        blobs(192, seed=0),
        batch_size=32,
        loss="cross_entropy",
        optimizer="sgd",
        learning_rates=[0.05, 0.2],
        epochs=2,
        validation=blobs(70, seed=1),
        log_every=3,
        verbose=0,
    )
    out = {}
    for i, history in enumerate(result.histories):
        for key, values in history.metrics.items():
            out[f"{i}/{key}"] = np.asarray(values, np.float64)
        for path, leaf in leaf_paths(history.variables).items():
            out[f"{i}/variables/{path}"] = np.asarray(leaf)
    return out


def main(process_id: int, num_processes: int, port: int, out_dir: str) -> None:
    from cluster_harness import join

    join(process_id, num_processes, port)
    import jax

    results = run_sweep()
    np.savez(Path(out_dir) / f"process_{process_id}.npz", **results)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
