"""
L1 and L2 weight penalties
==========================

This tutorial shows what penalising the size of the weights does to a network. We train
the same MLP on 400 MNIST-1D examples with no penalty, with L2 penalties
(``jdl.fit(..., l2=...)``, adding ``l2 * sum(w**2)`` to the loss) and with L1 penalties
(``l1=``, adding ``l1 * sum(|w|)``), and look at the weights: L2 shrinks all of them
smoothly towards zero, L1 drives a large share of them (nearly half, at the stronger
penalty here) to practically zero and leaves the others large — a sparse network. Both
trade a little training fit for a smaller gap between training and validation.
"""

# %%
# Setup
# -----
# The penalties cover the kernels only: biases (and BatchNorm parameters) are left out, as
# :func:`jdl.losses.l1` and :func:`jdl.losses.l2` do by default. The reported ``loss`` is
# the data loss, without the penalty. ``coef * l2(params)`` is the same as weight decay of
# ``2 * coef`` per step for plain SGD.
import time

import matplotlib.pyplot as plt
import numpy as np

import jdl

full = jdl.data.as_arrays(jdl.data.load("mnist1d", split="train"))
subset = np.random.default_rng(0).permutation(len(full["y"]))[:400]
# jdl.data.from_arrays: a source over arrays, which jdl.fit reads like a loaded split.
train = jdl.data.from_arrays(full["x"][subset], full["y"][subset])
validation = jdl.data.load("mnist1d", split="test")

settings = {
    "none": {},
    "L2 1e-3": {"l2": 1e-3},
    "L2 1e-2": {"l2": 1e-2},
    "L1 1e-4": {"l1": 1e-4},
    "L1 1e-3": {"l1": 1e-3},
}

# %%
# Training
# --------
# Each run: MLP 40-128-128-10, Adam at 1e-3, batch 50, 60 epochs (480 steps), seed 0.
results = {}
for name, penalty in settings.items():
    start = time.perf_counter()
    history = jdl.fit(
        jdl.nn.MLP(widths=(128, 128), num_outputs=10),
        train,
        batch_size=50,
        optimizer=jdl.train.optimizer("adam", 1e-3),
        loss="cross_entropy",
        epochs=60,
        validation=validation,
        seed=0,
        verbose=0,
        **penalty,
    )
    params = history.variables["params"]
    kernels = np.concatenate(
        [np.ravel(params[layer]["kernel"]) for layer in ("Dense_0", "Dense_1")]
    )
    results[name] = {"history": history, "kernels": kernels, "seconds": time.perf_counter() - start}

# %%
# Numbers
# -------
# ``|w| < 0.01`` counts hidden-layer weights that are practically zero (the row ``none``
# shows how many are without any penalty; Adam never sets a weight to exactly zero, it
# makes it oscillate in a band of about the learning rate around zero).
print(
    f"{'penalty':9s} {'train acc':>9s} {'val acc':>8s} {'train loss':>10s} {'val loss':>8s} "
    f"{'||w||_2':>8s} {'mean |w|':>8s} {'|w|<0.01':>8s}"
)
for name, r in results.items():
    m, w = r["history"].metrics, r["kernels"]
    print(
        f"{name:9s} {m['accuracy'][-1]:9.1%} {m['val_accuracy'][-1]:8.1%} {m['loss'][-1]:10.3f} "
        f"{m['val_loss'][-1]:8.3f} {np.linalg.norm(w):8.2f} {np.mean(np.abs(w)):8.4f} "
        f"{np.mean(np.abs(w) < 0.01):8.1%}"
    )

# %%
# Weight distributions
# --------------------
# Histograms of the hidden-layer weights (log-scaled counts). L2 narrows the distribution;
# L1 piles nearly half of them up at zero and keeps long tails.
fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8))
bins = np.linspace(-0.6, 0.6, 121)
for name, color in (("none", "C0"), ("L2 1e-2", "C2"), ("L1 1e-3", "C4")):
    axes[0].hist(
        results[name]["kernels"], bins=bins, histtype="step", color=color, lw=1.5, label=name
    )
axes[0].set(
    yscale="log", xlabel="weight value", ylabel="count", title="Hidden-layer weights after training"
)
axes[0].legend()
for i, (name, r) in enumerate(results.items()):
    sorted_abs = np.sort(np.abs(r["kernels"]))
    axes[1].plot(np.linspace(0, 1, len(sorted_abs)), sorted_abs, color=f"C{i}", label=name)
axes[1].set(
    yscale="log",
    ylim=(1e-6, 1),
    xlabel="fraction of weights",
    ylabel="|w| (sorted)",
    title="Sorted weight magnitudes",
)
axes[1].legend(fontsize=9)
fig.tight_layout()

# %%
fig, ax = plt.subplots(figsize=(6, 3.6))
for i, (name, r) in enumerate(results.items()):
    h = r["history"]
    ax.plot(h.epochs, h.metrics["val_loss"], color=f"C{i}", label=f"{name}")
ax.set(xlabel="epoch", ylabel="validation cross-entropy", title="Validation loss with penalties")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()

# %%
# Takeaway
# --------
# A weight penalty expresses a preference for simple functions. L2 (``l2=``, weight decay)
# shrinks every weight in proportion to its size, so no weight grows large and the network
# is smoother; L1 (``l1=``) pushes every weight towards zero by the same amount, which
# zeroes a large share of them (nearly half at ``l1=1e-3`` here, against a few per cent
# without a penalty: the last column of the table) and gives sparse, prunable layers. Too
# strong a penalty underfits (the training accuracy drops); a modest one narrows the gap
# between training and validation loss. Tune the coefficient on the validation set. The
# checks below fail if these stop showing.
norm = {name: np.linalg.norm(r["kernels"]) for name, r in results.items()}
zeros = {name: np.mean(np.abs(r["kernels"]) < 0.01) for name, r in results.items()}
final = {name: {k: v[-1] for k, v in r["history"].metrics.items()} for name, r in results.items()}
gap = {name: f["val_loss"] - f["loss"] for name, f in final.items()}
assert norm["L2 1e-2"] < 0.5 * norm["none"] and norm["L2 1e-3"] < norm["none"], norm
# L1 zeroes far more weights than L2, though its weights are larger overall (long tails).
assert zeros["L1 1e-3"] > max(0.4, 2 * zeros["L2 1e-2"], 5 * zeros["none"]), zeros
assert norm["L1 1e-3"] > norm["L2 1e-2"], norm
assert final["L2 1e-2"]["accuracy"] < final["none"]["accuracy"] - 0.05, final  # underfits
assert all(gap[name] < gap["none"] for name in settings if name != "none"), gap
plt.show()
