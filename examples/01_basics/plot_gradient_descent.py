"""
Gradient descent and learning rates on Iris
===========================================

This tutorial shows what the learning rate does to gradient descent on the Iris flowers
(a Dense–Dense–Softmax network, full-batch SGD on the raw features): at 2 the ReLUs die and
the loss freezes, at 1e-2 it converges, at 1e-8 nothing moves. It then compares SGD,
momentum, RMSProp, Adagrad and Adam, shows how mini-batches trade a noisier gradient for
more updates per epoch, and runs a learning-rate range test, the idea behind
:func:`jdl.analysis.lr_find`.
"""

# %%
# The problem
# -----------
# ``jdl.data.load("iris")``: 120 training and 30 test flowers, four measurements in
# centimetres each (not standardised: values from 0.1 to 7.9), three species. The network
# is one hidden layer of 16 ReLU units and a 3-way softmax output. With the whole training
# set as one batch, each epoch is exactly one gradient-descent step
# :math:`\theta \leftarrow \theta - \eta\, \nabla_\theta L(\theta)`.
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jdl
import jdl.analysis

train_source = jdl.data.load("iris", split="train")
test_source = jdl.data.load("iris", split="test")
train = jdl.data.as_arrays(train_source)
print("features: min", train["x"].min(axis=0), "max", train["x"].max(axis=0))

model = jdl.nn.MLP(widths=(16,), num_outputs=3, activation="relu")
STEPS = 200


def full_batch(optimizer, seed=0, steps=STEPS):
    return jdl.fit(
        model,
        train_source,
        batch_size=len(train_source),
        optimizer=optimizer,
        loss="cross_entropy",
        epochs=steps,
        seed=seed,
        verbose=0,
    )


def test_accuracy(history):
    return jdl.evaluate(model, history.variables, test_source)["accuracy"]


def dead_fraction(variables):
    """Fraction of hidden ReLUs that output 0 for every training example."""
    p = variables["params"]["Dense_0"]
    hidden = jax.nn.relu(train["x"] @ p["kernel"] + p["bias"])
    return float(jnp.mean(jnp.all(hidden == 0, axis=0)))


# %%
# Three learning rates
# --------------------
runs = {lr: full_batch(jdl.train.optimizer("sgd", lr)) for lr in (2.0, 1e-2, 1e-8)}
for lr, h in runs.items():
    print(
        f"lr={lr:g}: final loss {h.metrics['loss'][-1]:.4f}, test accuracy "
        f"{test_accuracy(h):.1%}, dead ReLUs {dead_fraction(h.variables):.0%}"
    )
# lr 2 kills every ReLU (within three steps; rates of 0.5 and 1 kill them all too) and
# leaves the loss at ln 3; lr 1e-2 trains; lr 1e-8 leaves the loss where it started.
final = {lr: h.metrics["loss"][-1] for lr, h in runs.items()}
assert dead_fraction(runs[2.0].variables) > 0.9 and abs(final[2.0] - np.log(3)) < 0.02, final
assert final[1e-2] < 0.5 and test_accuracy(runs[1e-2]) > 0.9, final
assert abs(final[1e-8] - runs[1e-8].metrics["loss"][0]) < 1e-4, runs[1e-8].metrics["loss"][::50]

fig, ax = plt.subplots(figsize=(6.5, 3.5))
for lr, h in runs.items():
    ax.plot(h.epochs, h.metrics["loss"], lw=2, label=f"learning rate {lr:g}")
ax.axhline(np.log(3), color="0.5", ls=":", label="ln 3 (uniform guess)")
ax.set(
    xlabel="step (full batch)",
    ylabel="training cross-entropy",
    yscale="log",
    title="SGD on raw Iris features at three learning rates",
)
ax.legend(fontsize=8)
fig.tight_layout()

# %%
# At :math:`\eta = 2` the first steps are so large that every hidden unit's pre-activation
# becomes negative for every flower: the ReLUs output 0, their gradient is 0, and they can
# never recover. (Even at initialisation about a third of the units are dead: the raw
# features are all positive, so a unit with mostly negative weights never fires.) The
# network is left predicting one constant distribution, and the loss is stuck at (or near)
# :math:`\ln 3`. At :math:`\eta = 10^{-8}` the weights barely move in 200
# steps. :math:`\eta = 10^{-2}` is in the useful range — the job of the learning rate is to
# be as large as possible *without* breaking training.
#
# Five optimisers
# ---------------
# Plain SGD uses the raw gradient. **Momentum** keeps a running sum of past gradients, so
# consistent directions build up speed. **Adagrad** divides each parameter's step by the
# root of the sum of its past squared gradients (steps shrink over time), **RMSProp** by
# a moving average of them (they don't), and **Adam** combines momentum with RMSProp's
# scaling (plus a bias correction). :func:`jdl.train.optimizer` builds each by name; all
# get the same learning rate here, 1e-2.
names = ("sgd", "momentum", "rmsprop", "adagrad", "adam")
# (plain SGD at 1e-2 is the run above: reuse it)
optimisers = {
    name: runs[1e-2] if name == "sgd" else full_batch(jdl.train.optimizer(name, 1e-2))
    for name in names
}
fig, ax = plt.subplots(figsize=(6.5, 3.5))
for name, h in optimisers.items():
    ax.plot(h.epochs, h.metrics["loss"], lw=2, label=name)
    print(f"{name:8s} final loss {h.metrics['loss'][-1]:.4f}, test accuracy {test_accuracy(h):.1%}")
opt_loss = {name: h.metrics["loss"][-1] for name, h in optimisers.items()}
# At this learning rate momentum, RMSProp and Adam end with well under half plain SGD's
# loss; Adagrad, whose steps shrink as it goes, does no better than SGD here.
assert max(opt_loss[n] for n in ("momentum", "rmsprop", "adam")) < 0.5 * opt_loss["sgd"], opt_loss
ax.set(
    xlabel="step (full batch)",
    ylabel="training cross-entropy",
    yscale="log",
    title="Optimisers at learning rate 1e-2",
)
ax.legend(fontsize=8)
fig.tight_layout()

# %%
# The adaptive methods scale each parameter's step by its own gradient history, which
# matters here because the raw features have very different scales. One learning rate does
# not suit all of them equally, though: each optimiser has its own good range.
#
# Mini-batches
# ------------
# Computing the gradient on a random *mini-batch* of :math:`B` examples instead of all
# :math:`N` gives a noisy but unbiased estimate, at a cost proportional to :math:`B`. Its
# variance falls like :math:`1/B` — times :math:`(N - B)/(N - 1)`, since a batch holds
# distinct examples, which makes it exactly 0 at :math:`B = N`. We measure it directly with
# ``jax.grad`` on 256 random mini-batches per size, at the initial parameters.
state = jdl.train.create_state(model, optax.sgd(1e-2), {"x": train["x"][:1]}, seed=0)


def flat_grad(params, x, y):
    g = jax.grad(lambda p: jdl.losses.cross_entropy(model.apply({"params": p}, x, train=False), y))(
        params
    )
    return jnp.concatenate([v.ravel() for v in jax.tree_util.tree_leaves(g)])


x_all, y_all = jnp.asarray(train["x"]), jnp.asarray(train["y"])
full = flat_grad(state.params, x_all, y_all)
rng = np.random.default_rng(0)
sizes, noise = (1, 2, 4, 8, 16, 32, 64), []
for size in sizes:
    idx = np.stack([rng.choice(len(train["x"]), size, replace=False) for _ in range(256)])
    grads = jax.vmap(lambda i: flat_grad(state.params, x_all[i], y_all[i]))(idx)
    noise.append(float(jnp.mean(jnp.sum((grads - full) ** 2, axis=1))))

batch_runs = {}
for size in (120, 30, 8):
    batch_runs[size] = jdl.fit(
        model,
        train_source,
        batch_size=size,
        optimizer=jdl.train.optimizer("sgd", 1e-2),
        loss="cross_entropy",
        epochs=40,
        verbose=0,
    )

fig, (ax_n, ax_l) = plt.subplots(1, 2, figsize=(10, 3.5))
ax_n.loglog(sizes, noise, "o-", label="measured")
n_train = len(train["x"])
b = np.array(sizes)
ax_n.loglog(b, noise[0] / b * (n_train - b) / (n_train - 1), "k:", label="∝ (N − B) / (B (N − 1))")
ax_n.set(xlabel="mini-batch size B", ylabel="E ||g_B − g||²", title="Gradient noise falls like 1/B")
ax_n.legend(fontsize=9)
for size, h in batch_runs.items():
    ax_l.plot(
        h.epochs, h.metrics["loss"], lw=2, label=f"B = {size} ({120 // size} steps per epoch)"
    )
ax_l.set(
    xlabel="epoch",
    ylabel="training cross-entropy",
    yscale="log",
    title="SGD, lr 1e-2: smaller batches, more steps",
)
ax_l.legend(fontsize=9)
fig.tight_layout()
expected = noise[0] / b * (n_train - b) / (n_train - 1)
print("gradient noise, measured / (N - B) / (B (N - 1)):", np.round(noise / expected, 2))
batch_loss = {size: round(h.metrics["loss"][-1], 3) for size, h in batch_runs.items()}
print("training loss after 40 epochs by batch size:", batch_loss)
assert np.all(np.abs(np.array(noise) / expected - 1) < 0.15), np.array(noise) / expected
assert batch_loss[8] < batch_loss[30] < batch_loss[120], batch_loss

# %%
# Per epoch, small batches make much more progress — more (noisier) steps for the same
# number of examples seen. On hardware that processes a large batch as fast as a small one
# the balance shifts back towards larger batches with larger learning rates.
#
# Finding a learning rate
# -----------------------
# The learning-rate range test (Smith, 2015) trains for a few hundred steps while raising
# the learning rate exponentially, from :math:`10^{-6}` to :math:`10`, and records the
# loss. The loss first stays flat (too small), then falls (useful range), then shoots up
# (too large). A good learning rate sits in the falling part, roughly a tenth of the
# rate at which the loss is lowest. :func:`jdl.analysis.lr_find` runs this test for any
# model in one compiled program (see the "understanding training" tutorials); here it is
# first written out in a few lines, then called.
lrs = np.geomspace(1e-6, 10, 200)


def full_loss(params):
    logits = model.apply({"params": params}, train["x"], train=False)
    return jdl.losses.cross_entropy(logits, train["y"])


@jax.jit
def sgd_step(params, lr):
    loss, grads = jax.value_and_grad(full_loss)(params)
    return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), loss


params, losses = state.params, []
for lr in lrs:
    params, loss = sgd_step(params, lr)
    losses.append(float(loss))
losses = np.array(losses)
smooth = np.empty_like(losses)
avg = 0.0
for i, value in enumerate(losses):  # exponential moving average, bias-corrected
    avg = 0.9 * avg + 0.1 * (value if np.isfinite(value) else 1e9)
    smooth[i] = avg / (1 - 0.9 ** (i + 1))
best = lrs[np.argmin(smooth)]
print(f"lowest smoothed loss at lr={best:.2g}; suggestion ≈ lr/10 = {best / 10:.2g}")

fig, ax = plt.subplots(figsize=(6.5, 3.5))
ax.semilogx(lrs, np.clip(losses, None, 5), color="0.7", label="loss at each step")
ax.semilogx(lrs, np.clip(smooth, None, 5), lw=2, label="smoothed")
ax.axvline(best / 10, color="C3", ls="--", label=f"suggested lr ≈ {best / 10:.2g}")
ax.set(
    xlabel="learning rate (raised every step)",
    ylabel="training cross-entropy",
    title="Learning-rate range test on Iris",
)
ax.legend(fontsize=8)
fig.tight_layout()

# %%
# The same test with :func:`jdl.analysis.lr_find`, which also stops once the loss diverges
# and offers a suggestion from the shape of the curve:
finder = jdl.analysis.lr_find(
    model, train_source, "cross_entropy", optimizer="sgd", start_lr=1e-6, end_lr=10.0, steps=200
)
print(finder)
# Both tests land in the useful range that the three learning rates above bracketed.
assert 3e-3 < best / 10 < 0.3 and 3e-3 < finder.suggestion < 0.3, (best, finder.suggestion)

# %%
# Takeaway
# --------
# The learning rate is the most important setting of gradient descent: too large and the
# network is destroyed in a few steps (dead ReLUs, loss stuck at :math:`\ln 3`), too small
# and nothing happens. Momentum and the adaptive methods RMSProp and Adam get much further
# than plain SGD at the same rate (Adagrad, whose steps shrink, did not: each optimiser has
# its own good range), mini-batches buy many cheap noisy steps instead of few exact ones
# (gradient noise ∝ 1/B), and a learning-rate range test finds a good value in one short
# run (the checks along the way fail otherwise).
