"""
Training an MLP on digits with plain JAX and Optax
===================================================

This tutorial trains a small multi-layer perceptron on the bundled ``"digits"``
dataset (1,797 handwritten 8x8 digits from scikit-learn, 1,437 for training and 360
for testing) and reaches over 95 % test accuracy in a few seconds on a laptop CPU.

It uses only three pieces of jdl — a model (:class:`jdl.nn.MLP`), a dataset
(:func:`jdl.data.load`) and a batch iterator (:func:`jdl.data.batches`) — and writes
the training step by hand with ``jax.jit``, ``jax.grad`` and an Optax optimiser, so you
can see everything a training loop does. Later tutorials hand the loop to ``jdl.fit``.
"""

# %%
# Data
# ----
# ``jdl.data.load`` returns a random-access data source: ``len(source)`` examples,
# each a dict with ``"x"`` (an 8x8x1 image scaled to [0, 1]) and ``"y"`` (the digit).
# The data are generated locally on first use and cached; no network is needed.
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jdl

train_source = jdl.data.load("digits", split="train")
test_source = jdl.data.load("digits", split="test")
print(f"{len(train_source)} training and {len(test_source)} test examples")
print("one example:", {k: np.shape(v) for k, v in train_source[0].items()})

# %%
# Model
# -----
# Two hidden layers of 128 ReLU units and a 10-way output layer that produces logits.
# A flax.linen model is a pure function of explicit variables: ``init`` makes them,
# ``apply`` uses them.
model = jdl.nn.MLP(widths=(128, 128), num_outputs=10, activation="relu", kernel_init="he")
variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)), train=False)
params = variables["params"]
print("parameters:", jdl.nn.count_params(params))

# %%
# Training step
# -------------
# The loss is the softmax cross-entropy of the logits (``jdl.losses.cross_entropy``).
# ``jax.value_and_grad`` differentiates it with respect to the parameters and Adam turns
# the gradient into an update. ``jax.jit`` compiles the whole step once; ``donate_argnums``
# lets XLA reuse the memory of the old parameters and optimiser state.
optimizer = optax.adam(1e-3)
opt_state = optimizer.init(params)


def loss_fn(params, batch):
    logits = model.apply({"params": params}, batch["x"], train=True)
    return jdl.losses.cross_entropy(logits, batch["y"])


@jax.jit
def accuracy(params, x, y):
    return jdl.metrics.accuracy(model.apply({"params": params}, x, train=False), y)


def train_step(params, opt_state, batch):
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


train_step = jax.jit(train_step, donate_argnums=(0, 1))

# %%
# Training loop
# -------------
# ``jdl.data.batches`` shuffles with a seed (the same seed gives the same order), drops the
# last partial batch so every step has the same shape (one compilation), and yields dicts
# of numpy arrays. Losses stay on the device and are fetched once per epoch.
start = time.perf_counter()
epochs, losses_per_epoch = 30, []
for epoch in range(epochs):
    epoch_losses = []
    for batch in jdl.data.batches(train_source, batch_size=64, shuffle=True, seed=epoch):
        params, opt_state, loss = train_step(params, opt_state, batch)
        epoch_losses.append(loss)
    losses_per_epoch.append(float(jnp.mean(jnp.stack(epoch_losses))))
elapsed = time.perf_counter() - start

test = jdl.data.as_arrays(test_source)
test_accuracy = float(accuracy(params, test["x"], test["y"]))
print(f"trained {epochs} epochs in {elapsed:.1f} s; final training loss {losses_per_epoch[-1]:.4f}")
ACCURACY_ABOVE = 0.95  # what the text promises
print(f"test accuracy: {test_accuracy:.2%} (checked: above {ACCURACY_ABOVE:.0%})")
assert test_accuracy > ACCURACY_ABOVE, test_accuracy

# %%
# Loss curve
# ----------
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(range(1, epochs + 1), losses_per_epoch, label="training loss")
ax.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="MLP on digits")
ax.legend()
fig.tight_layout()

# %%
# Takeaway
# --------
# A training loop in JAX is a pure function ``(params, opt_state, batch) -> (params,
# opt_state, loss)`` compiled once with ``jax.jit``. jdl supplies the model, the data and
# the loss; everything else is plain JAX and Optax, and a two-hidden-layer MLP already
# classifies over 95 % of the held-out digits correctly.
