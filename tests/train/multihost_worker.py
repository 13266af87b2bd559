"""One process of the two-process training test (``test_multihost.py`` starts it).

Run as ``python multihost_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` and ``JAX_PLATFORMS=cpu`` in the
environment: the process joins a ``jax.distributed`` cluster on ``127.0.0.1:PORT`` with
gloo CPU collectives, so the cluster has ``2 * NUM_PROCESSES`` devices, and trains the
same BatchNorm model on the same global batches

- with its own loop over :func:`jdl.data.batches` (this process's slice of every global
  batch), compiled by ``parallelize(train_step, "sharded")`` and ``"pmap"``;
- with ``jdl.fit`` and its default strategy, ``"sharded"`` (validation, a ``Checkpoint``
  callback saving every epoch);
- with ``jdl.fit(..., resume=True)`` continuing the sharded run from its checkpoint;

then writes the final parameters and metrics to ``OUT_DIR/process_<id>.npz``. The test
compares them with a single-process ``"jit"`` run made by the same functions here
(:func:`reference`), so both sides share the model, data and hyper-parameters.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

STEPS = 10
GLOBAL_BATCH = 32
FIT_EPOCHS = 2
LEARNING_RATE = 0.1


def make_model():
    """A small jdl MLP with BatchNorm (statistics depend on the whole global batch)."""
    import jdl

    return jdl.nn.MLP(widths=(16, 16), num_outputs=3, batch_norm=True)


def make_data():
    """Train (192 examples) and validation (70, not a multiple of the batch) sources."""
    from conftest import blobs

    return blobs(192, seed=0), blobs(70, seed=1)


def make_optimizer():
    """Momentum SGD: Adam divides by tiny second moments and amplifies float noise."""
    import jdl

    return jdl.train.optimizer("momentum", LEARNING_RATE)


def flat(tree, prefix: str) -> dict[str, np.ndarray]:
    """``{prefix/path: array}`` for every leaf of a pytree of host-readable arrays."""
    from jdl._core.tree import leaf_paths

    return {f"{prefix}/{path}": np.asarray(leaf) for path, leaf in leaf_paths(tree).items()}


def manual_loop(strategy: str) -> dict[str, np.ndarray]:
    """``STEPS`` steps of ``parallelize(train_step, strategy)`` on ``jdl.data.batches``.

    Each process reads its part of every global batch (``shard_index``/``shard_count``
    default to ``jax.process_index()``/``jax.process_count()``).
    """
    import jax

    import jdl
    from jdl.train import create_state, parallelize, train_step

    train, _ = make_data()
    batches = list(jdl.data.batches(train, GLOBAL_BATCH, seed=3, num_epochs=2))[:STEPS]
    local = GLOBAL_BATCH // jax.process_count()
    assert all(len(b["x"]) == local for b in batches), [len(b["x"]) for b in batches]
    state = create_state(make_model(), make_optimizer(), batches[0], seed=0)
    step = parallelize(functools.partial(train_step, loss_fn="cross_entropy"), strategy)
    losses = []
    for batch in batches:
        state, metrics = step(state, batch)
        losses.append(metrics["loss"])
    state = step.unreplicate(state)
    return {
        **flat(state.variables, f"{strategy}/variables"),
        f"{strategy}/losses": np.asarray(jax.device_get(losses)),
        f"{strategy}/step": np.asarray(state.step),
    }


def run_fit(strategy: str, checkpoint_dir: str | None = None, **kwargs):
    """``jdl.fit`` on the shared data; returns the History."""
    import jdl

    train, val = make_data()
    callbacks = [jdl.train.Checkpoint(checkpoint_dir)] if checkpoint_dir else []
    return jdl.fit(
        make_model(),
        train,
        batch_size=GLOBAL_BATCH,
        optimizer=make_optimizer(),
        loss="cross_entropy",
        validation=val,
        callbacks=callbacks,
        strategy=strategy,
        seed=0,
        verbose=0,
        log_every=4,
        **kwargs,
    )


def fit_results(strategy: str, history, name: str | None = None) -> dict[str, np.ndarray]:
    """The History's per-epoch metrics and final variables, keyed by ``name``."""
    name = name or f"fit_{strategy}"
    out = flat(history.variables, f"{name}/variables")
    for key, values in history.metrics.items():
        out[f"{name}/metrics/{key}"] = np.asarray(values, dtype=np.float64)
    out[f"{name}/step"] = np.asarray(history.steps[-1])
    return out


def reference() -> dict[str, np.ndarray]:
    """The single-process ``"jit"`` run of everything :func:`main` does on the cluster."""
    results = manual_loop("jit")
    history = run_fit("jit", epochs=FIT_EPOCHS)
    results.update(fit_results("jit", history))
    # What the resumed cluster run must equal: one uninterrupted run of one more epoch.
    results.update(fit_results("jit", run_fit("jit", epochs=FIT_EPOCHS + 1), name="resumed"))
    return results


def main(process_id: int, num_processes: int, port: int, out_dir: str) -> None:
    import jax
    from cluster_harness import join

    join(process_id, num_processes, port)
    import jdl

    assert jax.process_count() == num_processes, jax.process_count()
    assert jax.local_device_count() == 2, jax.local_devices()
    assert jax.device_count() == 2 * num_processes, jax.devices()

    results = {}
    for strategy in ("sharded", "pmap"):
        results.update(manual_loop(strategy))
    assert jdl.train.default_strategy() == "sharded"

    # fit with the default strategy ("sharded" here) and a checkpoint every epoch; then
    # a run asked for one more epoch resumes from the last checkpoint.
    ckpt = str(Path(out_dir) / "checkpoints")
    history = run_fit(None, ckpt, epochs=FIT_EPOCHS)
    results.update(fit_results("sharded", history))
    resumed = run_fit("sharded", ckpt, epochs=FIT_EPOCHS + 1, resume=True)
    results.update(fit_results("sharded", resumed, name="resumed"))

    np.savez(Path(out_dir) / f"process_{process_id}.npz", **results)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
