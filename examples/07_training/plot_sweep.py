"""
Many runs at once: learning-rate, seed and init-scale sweeps with ``jdl.train.sweep``
=====================================================================================

This tutorial trains one model under many settings at the same time. ``jdl.train.sweep``
stacks K copies of the training state and runs ``jax.vmap(train_step)`` — one compiled
program, one call per step for all K configurations instead of K calls for K separate
``jdl.fit`` runs (whether that is faster depends on K, the model, the machine and its
load: the timing below says what it is worth here). We use it to draw the classic
"final loss versus learning rate" curve of an MLP on MNIST-1D, to measure how much of a
result is luck of the seed, and to see what the scale of the initial weights does.
"""

# %%
# A learning-rate sweep
# ---------------------
# Eight learning rates, from 1e-4 to about 1.3, for the same MLP with Adam. Every
# configuration sees the same batches in the same order, so the only difference between
# the curves is the learning rate.
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import jdl

full = os.environ.get("JDL_DOCS_FULL") == "1"
EPOCHS = 20 if full else 5

train = jdl.data.load("mnist1d", split="train")
test = jdl.data.load("mnist1d", split="test")
model = jdl.nn.get_model("mnist1d_mlp")  # the MNIST-1D paper's MLP: 40-100-100-10
learning_rates = [1e-4 * 3.8**i for i in range(8)]

start = time.perf_counter()
lr_sweep = jdl.train.sweep(
    model,
    train,
    batch_size=100,
    loss="cross_entropy",
    optimizer="adam",
    learning_rates=learning_rates,
    epochs=EPOCHS,
    validation=test,
    verbose=0,
)
sweep_seconds = time.perf_counter() - start
print(lr_sweep.table(["loss", "val_loss", "val_accuracy"]))
best_config, best_history = lr_sweep.best("val_accuracy")
print(f"best learning rate: {best_config['learning_rate']:.3g}")

# %%
# The U-shaped curve: too small a learning rate barely moves in the budget, too large a
# one oscillates or diverges (a diverged run would show as a missing point: its loss is
# NaN, and it never disturbs the other runs).
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
ax1.loglog(learning_rates, lr_sweep.final("loss"), "o-", label="training loss (last epoch)")
ax1.loglog(learning_rates, lr_sweep.final("val_loss"), "s--", label="test loss")
ax1.set(xlabel="learning rate", ylabel="cross-entropy", title="Final loss vs learning rate")
ax1.legend()
lr_sweep.plot("val_accuracy", ax=ax2)
ax2.set_yscale("linear")
ax2.set(ylabel="test accuracy", title="Test accuracy by epoch")
fig.tight_layout()
# The U: the best test loss is inside the range, well below both ends (the largest rate's
# may be NaN, hence "not <=").
val_loss = lr_sweep.final("val_loss")
i_best = int(np.nanargmin(val_loss))
assert 0 < i_best < len(learning_rates) - 1, val_loss
assert val_loss[0] > val_loss[i_best] + 0.5 and not val_loss[-1] <= val_loss[i_best] + 0.5, val_loss

# %%
# How much faster than one run after another?
# -------------------------------------------
# The same four learning rates, trained one ``jdl.fit`` after another and then as one
# sweep; both timings include compilation and per-epoch evaluation, which is what a user
# waits for. The fits share their compiled initialisation (same model, same shapes) but
# each compiles its own step; the sweep compiles one vmapped step for all four. At this
# size the two are close, and the ratio moves with the machine's load, so it is printed,
# not checked here: ``benchmarks/bench_sweep.py`` measures it side by side.
four = learning_rates[2:6]
kw = dict(batch_size=100, loss="cross_entropy", epochs=2, validation=test, verbose=0)
start = time.perf_counter()
for lr in four:
    jdl.fit(model, train, optimizer=jdl.train.optimizer("adam", lr), strategy="jit", **kw)
sequential = time.perf_counter() - start
start = time.perf_counter()
jdl.train.sweep(model, train, optimizer="adam", learning_rates=four, **kw)
vmapped = time.perf_counter() - start
print(f"4 runs one after another: {sequential:.1f} s; one sweep of 4: {vmapped:.1f} s "
      f"(ratio {sequential / vmapped:.2f})")  # fmt: skip

# %%
# Seeds and initial scales
# ------------------------
# A sweep over seeds shows the spread that comes from the initialisation and dropout
# alone; a sweep over ``init_scales`` multiplies every initial weight matrix. Tiny
# initial weights start the network near a constant function and slow the start; large
# ones saturate the softmax and give a huge initial loss.
seed_scale = jdl.train.sweep(
    model,
    train,
    batch_size=100,
    loss="cross_entropy",
    optimizer="adam",
    learning_rates=[best_config["learning_rate"]],
    seeds=[0, 1, 2],
    init_scales=[0.01, 1.0, 10.0],
    epochs=EPOCHS,
    validation=test,
    verbose=0,
)
print(seed_scale.table(["loss", "val_accuracy"]))
final_loss, final_accuracy = seed_scale.final("loss"), seed_scale.final("val_accuracy")
final = {
    (c["seed"], c["init_scale"]): (loss, accuracy)
    for c, loss, accuracy in zip(seed_scale.configs, final_loss, final_accuracy, strict=True)
}
for seed in (0, 1, 2):  # every seed: tiny weights lag behind, large ones end with a huge loss
    assert final[seed, 0.01][1] < final[seed, 1.0][1] - 0.05, final
    assert final[seed, 10.0][0] > 10 * final[seed, 1.0][0], final
seed_spread = np.ptp([final[seed, 1.0][1] for seed in (0, 1, 2)])
print(f"test accuracy at init scale 1 varies by {100 * seed_spread:.1f} points across seeds")

fig, ax = plt.subplots(figsize=(6, 4))
for scale, color in zip((0.01, 1.0, 10.0), ("C0", "C1", "C3"), strict=True):
    runs = [h for c, h in zip(seed_scale.configs, seed_scale.histories, strict=True)
            if c["init_scale"] == scale]  # fmt: skip
    curves = np.array([h.metrics["val_accuracy"] for h in runs])
    epochs = runs[0].epochs
    ax.plot(epochs, curves.mean(0), color=color, label=f"init scale {scale:g}")
    ax.fill_between(epochs, curves.min(0), curves.max(0), color=color, alpha=0.2)
ax.set(
    xlabel="epoch", ylabel="test accuracy", title="Three seeds per initial scale (band: min-max)"
)
ax.legend()
fig.tight_layout()
plt.show()

# %%
# Takeaway
# --------
# ``jdl.train.sweep`` turns "try a few settings" into one compiled program: each
# configuration trains exactly as its own ``jdl.fit`` would (a test checks this), a
# diverging one cannot spoil the others, and it makes one call per step for all of them.
# Sweep learning rates first — it is the setting
# that matters most — and look at several seeds before trusting a difference of a point
# or two: here the seed alone moved the test accuracy by more than that, the learning rate
# by many times more (the checks below fail otherwise).
print(f"learning-rate sweep of 8: {sweep_seconds:.1f} s")
lr_accuracy = lr_sweep.final("val_accuracy")
assert seed_spread > 0.01, seed_spread
assert lr_accuracy[i_best] - lr_accuracy[0] > 5 * seed_spread, (lr_accuracy, seed_spread)
