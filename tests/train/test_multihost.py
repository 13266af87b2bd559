"""Two processes x 2 CPU devices (jax.distributed, gloo) train like one process.

The test starts two copies of ``multihost_worker.py`` — each with two simulated CPU
devices, joined into one 4-device cluster over ``127.0.0.1`` — which train a BatchNorm
MLP on the same global batches (each process reading its half of every batch) with
``parallelize(train_step, "sharded")``, ``"pmap"`` and ``jdl.fit`` (default strategy,
validation, checkpoints, resume). Meanwhile this process runs the same code on one device
with ``"jit"``; parameters and metrics must agree to float tolerance.
"""

from __future__ import annotations

import cluster_harness as harness
import multihost_worker as worker
import numpy as np
import pytest

NUM_PROCESSES = 2
TIMEOUT_S = 420  # the whole cluster run; ~30 s on an idle 2-core machine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Run the workers (and the single-process reference meanwhile); their results."""
    out = tmp_path_factory.mktemp("multihost")
    procs, logs = harness.start(worker.__file__, NUM_PROCESSES, [str(out)], out)
    try:
        reference = worker.reference()
        harness.wait_all(procs, logs, TIMEOUT_S)
    finally:
        harness.stop(procs)
    results = [dict(np.load(out / f"process_{i}.npz")) for i in range(NUM_PROCESSES)]
    return reference, results, out


def _assert_matches(results: dict, prefix: str, reference: dict, ref_prefix: str) -> None:
    keys = sorted(k for k in reference if k.startswith(f"{ref_prefix}/"))
    assert keys, f"no reference entries under {ref_prefix!r}"
    for key in keys:
        got = results[prefix + key[len(ref_prefix) :]]
        np.testing.assert_allclose(got, reference[key], rtol=1e-5, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("strategy", ["sharded", "pmap"])
def test_parallel_step_over_two_processes_matches_jit(cluster, strategy):
    reference, results, _ = cluster
    for per_process in results:
        assert int(per_process[f"{strategy}/step"]) == worker.STEPS
        _assert_matches(per_process, strategy, reference, "jit")
    # The loss really changed (the comparison is not between two untrained models).
    losses = reference["jit/losses"]
    assert losses[-1] < 0.8 * losses[0]


def test_fit_over_two_processes_matches_one(cluster):
    reference, results, _ = cluster
    steps_per_epoch = 192 // worker.GLOBAL_BATCH
    for per_process in results:
        assert int(per_process["fit_sharded/step"]) == worker.FIT_EPOCHS * steps_per_epoch
        assert set(per_process) >= {
            "fit_sharded/metrics/loss",
            "fit_sharded/metrics/val_loss",
            "fit_sharded/metrics/val_accuracy",
        }
        _assert_matches(per_process, "fit_sharded", reference, "fit_jit")


def test_resume_over_two_processes_matches_uninterrupted_run(cluster):
    reference, results, out = cluster
    steps_per_epoch = 192 // worker.GLOBAL_BATCH
    saved = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    assert saved[-1] == (worker.FIT_EPOCHS + 1) * steps_per_epoch
    for per_process in results:
        _assert_matches(per_process, "resumed", reference, "resumed")


def test_fit_feed_gives_each_process_its_part_of_jdl_data_batches(monkeypatch):
    """fit's in-memory feed cuts every global batch exactly as jdl.data.batches does."""
    import jax

    import jdl
    from jdl.train import feed as feed_lib

    source, _ = worker.make_data()
    feed = feed_lib._make_feed(source)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    parts = []
    for index in range(2):
        monkeypatch.setattr(jax, "process_index", lambda index=index: index)
        ours = list(feed_lib._epoch_batches(feed, 32, seed=5, epoch=1))
        theirs = list(jdl.data.batches(source, 32, seed=5, num_epochs=2))[len(ours) :]
        assert len(ours) == len(theirs) == 192 // 32
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a["x"], b["x"])
            np.testing.assert_array_equal(a["y"], b["y"])
        parts.append(ours)
    # The two halves of each global batch are disjoint and together the whole batch.
    single = list(jdl.data.batches(source, 32, seed=5, num_epochs=2, shard_count=1, shard_index=0))
    for a, b, whole in zip(*parts, single[len(parts[0]) :], strict=True):
        np.testing.assert_array_equal(np.concatenate([a["x"], b["x"]]), whole["x"])


def test_global_batch_not_divisible_by_processes_is_rejected(monkeypatch):
    import jax

    from jdl.train import feed as feed_lib

    source, _ = worker.make_data()
    monkeypatch.setattr(jax, "process_count", lambda: 3)
    with pytest.raises(ValueError, match="does not split evenly over 3 processes"):
        next(feed_lib._epoch_batches(feed_lib._make_feed(source), 32, seed=0, epoch=0))
