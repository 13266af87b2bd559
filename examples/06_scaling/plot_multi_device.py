"""
The same training on 8 devices: ``jit``, ``sharded`` and ``pmap``
==================================================================

This tutorial shows that data parallelism in jdl is one argument: the same
:func:`jdl.fit` call trains on one device with ``strategy="jit"``, on every device with
``strategy="sharded"`` (``jax.jit`` with the batch split over a ``"data"`` mesh) or with
``strategy="pmap"`` (the classic ``jax.pmap``), and all three produce the same model — the
same losses, the same accuracy and parameters equal to float precision, BatchNorm included.
We simulate 8 devices on the CPU with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``;
on a machine with 8 GPUs or TPU cores the code is the same.
"""

# %%
# Why a subprocess
# ----------------
# JAX fixes the number of CPU devices when it starts, from the ``XLA_FLAGS`` environment
# variable, and this page is built by a process that already imported JAX with one device.
# So the demo is a small driver script, written to a temporary file and run in a fresh
# Python process with the flag set. Its output is printed below; its numbers come back as
# JSON for the figure. To run it yourself, save the driver and run
# ``XLA_FLAGS=--xla_force_host_platform_device_count=8 python driver.py``.
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np

DRIVER = textwrap.dedent(
    """
    import functools, json, time

    import jax
    import numpy as np

    import jdl

    print(f"{jax.device_count()} devices: {[str(d) for d in jax.devices()]}")
    train = jdl.data.load("mnist1d", split="train")
    test = jdl.data.load("mnist1d", split="test")
    # BatchNorm makes the comparison strict: its statistics must be those of the whole
    # global batch, not of one device's eighth of it.
    model = jdl.nn.MLP(widths=(100, 100), num_outputs=10, batch_norm=True)

    # --- 1. jdl.fit with each strategy --------------------------------------------
    results = {}
    for strategy in ("jit", "sharded", "pmap"):
        start = time.perf_counter()
        history = jdl.fit(model, train, batch_size=128, epochs=2, validation=test,
                          optimizer=jdl.train.optimizer("momentum", 0.05),
                          loss="cross_entropy", strategy=strategy, seed=0, verbose=0)
        seconds = time.perf_counter() - start
        results[strategy] = (history, seconds)
        m = history.metrics
        print(f"{strategy:8s} loss per epoch {np.round(m['loss'], 5)}  "
              f"val_acc {m['val_accuracy'][-1]:.3f}  ({seconds:.1f} s)")

    reference = results["jit"][0].variables
    report = {}
    for strategy, (history, seconds) in results.items():
        diff = jax.tree_util.tree_map(
            lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
            history.variables, reference)
        worst = max(jax.tree_util.tree_leaves(diff))
        print(f"{strategy:8s} max |params - params(jit)| = {worst:.2e}")
        report[strategy] = {"metrics": history.metrics, "max_diff": worst, "seconds": seconds}

    # --- 2. The same thing by hand with jdl.train.parallelize -----------------------
    step_fn = functools.partial(jdl.train.train_step, loss_fn="cross_entropy")
    batch = next(jdl.data.batches(train, batch_size=128, shuffle=False))
    state = jdl.train.create_state(model, jdl.train.optimizer("momentum", 0.05), batch, seed=0)
    for strategy in ("sharded", "pmap"):
        pstep = jdl.train.parallelize(step_fn, strategy, donate=False)  # reuse `state`
        placed = pstep.put_batch(batch)
        new_state, metrics = pstep(state, batch)
        if strategy == "sharded":
            x = jax.device_put(batch["x"], jax.sharding.NamedSharding(
                pstep.mesh, jax.sharding.PartitionSpec("data")))
            shards = [s.data.shape for s in x.addressable_shards]
            print(f"sharded: mesh {dict(pstep.mesh.shape)}, batch x {batch['x'].shape} -> "
                  f"{len(shards)} shards of {shards[0]}; params replicated on "
                  f"{len(new_state.step.sharding.device_set)} devices")
        else:
            print(f"pmap: batch x reshaped to {placed['x'].shape}; state carries a device "
                  f"axis, step {new_state.step.shape}; unreplicate -> "
                  f"{pstep.unreplicate(new_state).step.shape}")
        print(f"  one step: loss {float(metrics['loss']):.6f}")
    print("RESULTS " + json.dumps(report))
    """
)

with tempfile.TemporaryDirectory() as tmp:
    driver = os.path.join(tmp, "driver.py")
    with open(driver, "w") as f:
        f.write(DRIVER)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    start = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, driver], env=env, capture_output=True, text=True, timeout=600
    )
    elapsed = time.perf_counter() - start
if completed.returncode != 0:
    raise RuntimeError(f"the driver failed:\n{completed.stdout}\n{completed.stderr}")
lines = completed.stdout.splitlines()
print("\n".join(line for line in lines if not line.startswith("RESULTS ")))
print(f"(driver ran in {elapsed:.1f} s)")
report = json.loads(next(line for line in lines if line.startswith("RESULTS "))[8:])

# %%
# Reading the output
# ------------------
# * ``jit`` runs on one device; ``sharded`` splits each global batch of 128 into 8 shards
#   of 16 examples, one per device, keeps the parameters replicated, and lets XLA insert
#   the all-reduce of the gradients; ``pmap`` reshapes the batch to ``(8, 16, ...)`` and
#   averages gradients (and BatchNorm statistics) with ``lax.pmean`` over the ``"batch"``
#   axis.
# * Every strategy sees the same global batches in the same order (the order depends only
#   on the seed and the epoch), so the three runs are the same computation, summed in a
#   different order: their parameters agree up to float32 rounding (the differences are
#   printed above; the check below requires less than 1e-4).
# * We train with SGD + momentum here. With Adam the losses still agree closely, but the
#   biases of the Dense layers that feed a BatchNorm drift apart by up to the learning rate:
#   BatchNorm subtracts the mean, so those biases have no effect and their true gradient is
#   exactly zero. What each strategy computes instead is rounding noise, and Adam
#   divides every gradient by its own running magnitude, turning that noise into full-size
#   steps. Those biases change nothing in the outputs — but they are a reason to drop the
#   bias before a BatchNorm, and to compare runs on outputs, not raw parameters.
# * Simulated devices share this machine's two CPU cores, so here more devices are
#   *slower*; on real accelerators each device brings its own compute.
MAX_DIFF = 1e-4
print(f"checked: every strategy's parameters within {MAX_DIFF:.0e} of the others")
assert all(r["max_diff"] < MAX_DIFF for r in report.values()), report

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for i, (strategy, r) in enumerate(report.items()):
    epochs = np.arange(1, len(r["metrics"]["loss"]) + 1)
    style = {"marker": "os^"[i], "ms": 9 - 2 * i, "color": f"C{i}", "lw": 1.5}
    axes[0].plot(epochs, r["metrics"]["loss"], label=f"{strategy} (train)", **style)
    axes[0].plot(
        epochs, r["metrics"]["val_loss"], ls="--", label=f"{strategy} (validation)", **style
    )
axes[0].set(
    xlabel="epoch", ylabel="cross-entropy", title="Same curves for every strategy", xticks=epochs
)
axes[0].legend(fontsize=9)
names = list(report)
axes[1].bar(names, [max(r["max_diff"], 1e-12) for r in report.values()], color=["C0", "C1", "C2"])
axes[1].set(
    yscale="log",
    ylim=(1e-12, 1e-3),
    ylabel="max |params - params(jit)|",
    title="Final parameters vs the jit run",
    xlabel="strategy",
)
axes[1].annotate("0 (the reference)", (0, 1e-12), xytext=(0, 3e-12), ha="center")
fig.suptitle("MNIST-1D MLP with BatchNorm on 8 simulated devices")
fig.tight_layout()

# %%
# Takeaway
# --------
# Data parallelism changes where the examples of a global batch are processed, not what is
# computed: with jdl the same ``fit`` (or the same step wrapped by
# :func:`jdl.train.parallelize`) gives the same model on 1 or 8 devices. Prefer
# ``"sharded"`` — it is the default when several devices are visible, it is plain ``jax.jit``
# with shardings, and it works unchanged across hosts (next tutorial); ``"pmap"`` is there
# for code written in that style. Keep the global batch size a multiple of the device count.
