"""One process of the two-process FSDP test (``test_fsdp_multiprocess.py`` starts it).

Run as ``python fsdp_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR``: joins the cluster
(:mod:`cluster_harness`), trains with ``strategy="fsdp"`` for 2 epochs with a
``Checkpoint`` in ``OUT_DIR/ck`` (a directory every process sees), resumes to 3 epochs
from it, and writes the losses and the gathered parameters to
``OUT_DIR/process_<id>.npz``. The test runs :func:`run_fit` with ``"jit"`` in one
process and compares.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def _fit(strategy: str, epochs: int, **kwargs):
    import flax.linen as nn
    from conftest import blobs

    import jdl

    class WideMLP(nn.Module):
        @nn.compact
        def __call__(self, x, *, train: bool):
            x = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Dense(256)(x)))
            return nn.Dense(3)(x)

    return jdl.fit(
        WideMLP(), blobs(128, features=64), batch_size=32, loss="cross_entropy",
        optimizer=jdl.train.optimizer("momentum", 0.05), epochs=epochs,
        validation=blobs(40, seed=1, features=64), verbose=0, strategy=strategy, **kwargs,
    )  # fmt: skip


def run_fit(strategy: str, checkpoints: Path | None = None) -> dict[str, np.ndarray]:
    """3 epochs (2, saved, then resumed to 3 where ``checkpoints`` is given); the losses,
    the parameters gathered onto the host, and how many parameters were sharded."""
    from jax.experimental import multihost_utils

    from jdl._core.tree import leaf_paths
    from jdl.train.callbacks import Checkpoint

    if checkpoints is None:
        history = _fit(strategy, 3)
    else:
        _fit(strategy, 2, callbacks=[Checkpoint(checkpoints)])
        history = _fit(strategy, 3, callbacks=[Checkpoint(checkpoints)], resume=True)
    out = {f"metrics/{k}": np.asarray(v, np.float64) for k, v in history.metrics.items()}
    sharded = 0
    for path, leaf in leaf_paths(history.state.arrays).items():
        if getattr(leaf, "is_fully_addressable", True):
            out[f"state/{path}"] = np.asarray(leaf)
        else:  # a sharded global array: every process gathers all of it
            sharded += 1
            out[f"state/{path}"] = np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
    out["sharded"] = np.asarray(sharded)
    # what a checkpoint hands Orbax: device arrays, never host (numpy) copies of the state
    import jax

    from jdl.train.checkpoint import _saveable

    saved = jax.tree_util.tree_leaves(_saveable(history.state.arrays))
    out["host_copies"] = np.asarray(sum(not isinstance(x, jax.Array) for x in saved))
    return out


def main(process_id: int, num_processes: int, port: int, out_dir: str) -> None:
    from cluster_harness import join

    join(process_id, num_processes, port)
    import jax

    results = run_fit("fsdp", Path(out_dir) / "ck")
    np.savez(Path(out_dir) / f"process_{process_id}.npz", **results)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
