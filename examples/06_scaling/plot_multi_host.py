"""
Training on several hosts
=========================

This tutorial shows how the same :func:`jdl.fit` runs on several machines ("hosts" or
"processes"), each with its own devices, and demonstrates it for real on this one machine:
two Python processes, two simulated CPU devices each, talk to each other over localhost
with Gloo collectives and train one model together with ``strategy="sharded"``. Each
process reads only its own slice of every global batch, yet both end with the parameters
that a single process training on one device with ``strategy="jit"`` gets, to float
precision.
"""

# %%
# What changes on several hosts
# -----------------------------
# Almost nothing in the training code. Every host runs the *same* script, which first calls
# ``jax.distributed.initialize`` so the processes find each other:
#
# .. code-block:: python
#
#     import jax
#
#     jax.distributed.initialize()  # on a TPU pod, SLURM or Kubernetes: found automatically
#     # elsewhere: jax.distributed.initialize("10.0.0.1:1234", num_processes=4, process_id=i)
#
#     history = jdl.fit(model, train, batch_size=1024, strategy="sharded", ...)
#
# After that ``jax.devices()`` lists the devices of *all* processes and
# ``jax.local_devices()`` this process' own. The ``"sharded"`` strategy builds its ``"data"``
# mesh over all of them. ``batch_size`` is the *global* batch: every process computes the
# same shuffled order of the examples (it depends only on the seed and the epoch) and reads
# only its contiguous part of each global batch — process ``i`` of ``n`` gets examples
# ``[i * b / n, (i + 1) * b / n)`` — which :func:`jdl.data.batches` (``shard_index``,
# ``shard_count``, by default ``jax.process_index()`` and ``jax.process_count()``) and ``fit``
# do for you. ``jax.make_array_from_process_local_data`` then stitches the parts into one
# global array without moving data between hosts; the gradient all-reduce crosses the
# network. Only the metrics are fetched back, so every process ends with the same History.
# Let process 0 alone write logs and files; Orbax checkpoints are multi-host aware.
#
# The demo
# --------
# On CPU, JAX needs a cross-process collectives backend: Gloo, switched on with
# ``jax.config.update("jax_cpu_collectives_implementation", "gloo")`` before
# ``initialize``. Each worker below also reports which examples of the first global batch it
# reads, and process 0 saves its final parameters for the comparison.
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import jax
import matplotlib.pyplot as plt
import numpy as np

import jdl

WORKER = textwrap.dedent(
    """
    import json, sys

    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    port, process_id, out_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process_id)

    import numpy as np

    import jdl

    print(f"process {jax.process_index()} of {jax.process_count()}: "
          f"{jax.local_device_count()} local devices, {jax.device_count()} in total",
          flush=True)

    indices = jdl.data.from_arrays(np.arange(4000), np.arange(4000))  # example i is i
    first = next(jdl.data.batches(indices, batch_size=8, shuffle=True, seed=0))
    print(f"process {process_id}: my part of global batch 0 = examples {first['x'].tolist()}",
          flush=True)

    history = jdl.fit(jdl.nn.get_model("mnist1d_mlp"),
                      jdl.data.load("mnist1d", split="train"), batch_size=100, epochs=2,
                      validation=jdl.data.load("mnist1d", split="test"),
                      optimizer=jdl.train.optimizer("adam", 1e-2), loss="cross_entropy",
                      strategy="sharded", seed=0, verbose=0)
    print(f"process {process_id}: loss per epoch {np.round(history.metrics['loss'], 6).tolist()}"
          f", val_accuracy {history.metrics['val_accuracy']}", flush=True)
    if process_id == 0:
        leaves = jax.tree_util.tree_leaves(history.variables)
        np.savez(f"{out_dir}/params.npz", *[np.asarray(leaf) for leaf in leaves])
    print("RESULT " + json.dumps({"process": process_id, "indices": first["x"].tolist(),
                                  "metrics": history.metrics}), flush=True)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


with tempfile.TemporaryDirectory() as tmp:
    worker = os.path.join(tmp, "worker.py")
    with open(worker, "w") as f:
        f.write(WORKER)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    port = free_port()
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, worker, str(port), str(i), tmp],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    elapsed = time.perf_counter() - start
    for p, (out, err) in zip(procs, outputs, strict=True):
        if p.returncode != 0:
            raise RuntimeError(f"worker failed ({p.returncode}):\n{out}\n{err}")
    with np.load(os.path.join(tmp, "params.npz")) as saved:
        multi_host_params = [saved[f"arr_{i}"] for i in range(len(saved.files))]

results = {}
for out, _ in outputs:
    for line in out.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            results[r["process"]] = r
        else:
            print(line)
print(f"(two processes, port {port}, {elapsed:.1f} s in all)")

# %%
# The reference: one process, one device
# --------------------------------------
# The same ``fit`` here, in this single-device process, with ``strategy="jit"``:
reference = jdl.fit(
    jdl.nn.get_model("mnist1d_mlp"),
    jdl.data.load("mnist1d", split="train"),
    batch_size=100,
    epochs=2,
    validation=jdl.data.load("mnist1d", split="test"),
    optimizer=jdl.train.optimizer("adam", 1e-2),
    loss="cross_entropy",
    strategy="jit",
    seed=0,
    verbose=0,
)
reference_params = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(reference.variables)]
max_diff = max(
    float(np.max(np.abs(a - b))) for a, b in zip(multi_host_params, reference_params, strict=True)
)
print(f"1 process x 1 device (jit): loss per epoch {np.round(reference.metrics['loss'], 6)}")
print(
    f"2 processes x 2 devices (sharded) vs 1 device (jit): max |params difference| = {max_diff:.2e}"
)
assert max_diff < 1e-4, max_diff

# %%
# Who reads what
# --------------
# The 8 examples of the first shuffled global batch (batch size 8 for the picture): process
# 0 reads the first four, process 1 the last four, and each process splits its part over its
# two local devices.
order = jdl.data.epoch_order(4000, seed=0, epoch=0)[:8]
fig, ax = plt.subplots(figsize=(9, 2.6))
for slot, example in enumerate(order):
    process, local = divmod(slot, 4)  # 4 examples per process, 2 per local device
    device = local // 2  # this process' local device 0 or 1
    shade = 0.3 + 0.3 * device
    ax.add_patch(plt.Rectangle((slot, 0), 0.95, 1, color=f"C{process}", alpha=shade))
    ax.text(slot + 0.47, 0.5, f"#{example}\nlocal dev {device}", ha="center", va="center")
    assert example in results[process]["indices"], (example, results[process]["indices"])
for process in (0, 1):
    label = f"process {process} (its two local devices shaded)"
    ax.plot([], [], "s", color=f"C{process}", alpha=0.6, label=label)
ax.set(
    xlim=(0, 8),
    ylim=(0, 1),
    xlabel="position in the global batch",
    yticks=[],
    title="Global batch 0: which process and device reads each example",
)
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.6), ncol=2, fontsize=8)
fig.tight_layout()

# %%
# Takeaway
# --------
# Scaling from one device to many hosts is a deployment change, not a code change: call
# ``jax.distributed.initialize()`` first, use ``strategy="sharded"``, give ``fit`` the
# *global* batch size, and let every process run the same script. Each process reads only
# its part of each global batch, gradients are all-reduced across processes, and the result
# is the model a single device would have trained on the same global batches.
