"""
Learning rates and the LR range test
====================================

Learning rate on Iris, with a Dense-Dense-softmax network and full-batch SGD on the *raw*
features, three learning rates trained at once by one :func:`jdl.train.sweep`: ``lr = 2``
kills every ReLU within a few steps and the loss freezes at ``ln 3`` (the gradient-flow
report says "dead"), ``lr = 1e-2`` converges, ``lr = 1e-8`` stays flat.
Then :func:`jdl.analysis.lr_find` -- Smith's learning-rate range test as one compiled
``lax.scan`` -- suggests a learning rate, which we use to train, and one more sweep over a
log grid of learning rates checks the suggestion against the best rate of the grid.
"""

# %%
import math

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jdl

train = jdl.data.as_arrays(jdl.data.load("iris", "train"))
test = jdl.data.as_arrays(jdl.data.load("iris", "test"))
model = jdl.nn.MLP(widths=(16,), num_outputs=3)

# %%
# Three learning rates, one sweep
# -------------------------------
# :func:`jdl.train.sweep` trains the three configurations at once (one vmapped, compiled
# program). A batch of 120 is the whole training set, so every step is full-batch SGD and
# every "epoch" is one step.
iris = jdl.data.load("iris", "train")
lrs = [2.0, 1e-2, 1e-8]
sweep = jdl.train.sweep(
    model,
    iris,
    batch_size=len(iris),
    loss="cross_entropy",
    optimizer="sgd",
    learning_rates=lrs,
    steps=500,
    log_every=500,
    verbose=0,
)
runs = dict(zip(lrs, sweep.histories, strict=True))
for lr, history in runs.items():
    print(f"lr {lr:g}: final loss {history.metrics['loss'][-1]:.4f}")
print(f"ln 3 = {math.log(3):.4f}")
# Too large: the loss froze at ln 3; too small: it did not move.
assert abs(runs[2.0].metrics["loss"][-1] - math.log(3)) < 1e-3
assert abs(runs[1e-8].metrics["loss"][-1] / runs[1e-8].metrics["loss"][0] - 1) < 1e-3
fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
for lr, history in runs.items():
    ax.plot(history.steps, history.metrics["loss"], label=f"lr = {lr:g}")
ax.set_yscale("log")  # lr 2 spikes to ~100 first; a linear axis hides lr 1e-2 vs 1e-8
ax.set_xlabel("step")
ax.set_ylabel("training loss (log scale)")
ax.set_title("Iris, raw features, full-batch SGD")
ax.legend()
plt.show()

# %%
# Why ``lr = 2`` is stuck: the report on the trained weights.
flow = jdl.analysis.gradient_flow(model, runs[2.0].variables, train, "cross_entropy")
print(flow)
assert "dead" in str(flow)

# %%
# The range test
# --------------
# 100 steps, learning rate growing exponentially from 1e-7 to 10, stop once the
# EMA-smoothed loss passes 4x its minimum. The EMA lags ~49 steps behind the loss, so the
# suggestion reads a lag-free centred average (the "trend"): the *edge* is the lowest trend
# before the loss first rises 1.5x above its best so far (here: the spike just before the
# collapse onto ln 3; ``res`` prints where), and the suggestion is a tenth of it. ``res.outcome``
# says what the curve showed; a range with no edge ("falling", "flat") warns.
res = jdl.analysis.lr_find(model, train, "cross_entropy", optimizer="sgd")
print(res)
# sphinx_gallery_thumbnail_number = 2
res.plot()
plt.show()

run = jdl.analysis.scan_fit(
    model, train, "cross_entropy", optimizer=optax.sgd(res.suggestion), steps=2000
)
logits = model.apply(run.variables, jnp.asarray(test["x"]), train=False)
acc = float(jnp.mean(jnp.argmax(logits, -1) == test["y"]))
print(f"trained with lr {res.suggestion:.3g}: test accuracy {acc:.1%}")
# One short run found the edge; the suggestion is a tenth of it.
assert res.found_edge and len(res.lrs) <= 100
assert math.isclose(res.suggestion, res.lr_min / 10)

# %%
# How good is the suggestion?
# ---------------------------
# One more :func:`jdl.train.sweep` (one vmapped program): eleven learning rates, half
# decades from 1e-4 to 10, at the same budget (2000 full-batch SGD steps), each evaluated
# on the test split.
grid = [float(lr) for lr in np.geomspace(1e-4, 10.0, 11)]
search = jdl.train.sweep(
    model,
    iris,
    batch_size=len(iris),
    loss="cross_entropy",
    optimizer="sgd",
    learning_rates=grid,
    steps=2000,
    validation=jdl.data.load("iris", "test"),
    log_every=2000,
    verbose=0,
)
grid_acc = search.final("val_accuracy")
for lr, a in zip(grid, grid_acc, strict=True):
    print(f"lr {lr:8.3g}: test accuracy {a:.1%}")
best = int(np.argmax(grid_acc))
print(f"sweep's best: lr {grid[best]:.3g}, test accuracy {grid_acc[best]:.1%}")
# The suggestion trains within 3 points of the grid's best; the rates from 1 up kill the
# ReLUs and end at chance.
WITHIN = 0.03
print(f"checked: the suggestion's test accuracy is within {100 * WITHIN:.0f} points of it")
assert acc >= grid_acc[best] - WITHIN, (acc, grid[best], grid_acc[best])
assert all(a < 0.5 for lr, a in zip(grid, grid_acc, strict=True) if lr >= 1)
fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
ax.semilogx(grid, grid_acc, marker="o", label="sweep (2000 steps each)")
ax.axvline(res.suggestion, color="tab:green", ls="--", label=f"suggestion {res.suggestion:.2g}")
ax.axvline(res.lr_min, color="tab:red", ls=":", label=f"edge {res.lr_min:.2g}")
ax.set_xlabel("learning rate (log scale)")
ax.set_ylabel("test accuracy")
ax.set_title("Iris: test accuracy after 2000 full-batch SGD steps")
ax.legend()
plt.show()

# %%
# Takeaway
# --------
# Too large a learning rate can do permanent damage (dead ReLUs), too small does nothing.
# The range test finds the scale in one short run: pick a rate about ten times below where
# the loss stops improving. Here that rate trains as well as the best of eleven rates
# trained for the full budget (within 3 points of test accuracy).
