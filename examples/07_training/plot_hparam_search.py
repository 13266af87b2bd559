"""
Tuning beyond the learning rate: ``sweep(params=...)`` and ``search``
=====================================================================

A learning-rate sweep (see the sweep tutorial) is where tuning starts, not where it
ends. This tutorial tunes two other kinds of hyper-parameter on scikit-learn's digits:

* ones that keep every shape the same — momentum, weight decay and dropout rates here;
  label smoothing, a model's temperature — which ``jdl.train.sweep(params=...)`` trains *side
  by side in one vmapped program*, each configuration exactly as its own ``jdl.fit``;
* ones that change shapes — the width and depth of the network, the batch size — which
  need one program each: ``jdl.train.search`` builds one model per configuration and
  trains it with ``jdl.fit`` (a grid, or a random sample of it).

Both return the same :class:`jdl.train.SweepResult`, so the table, the plot and
``best()`` read the same.
"""

# %%
# Momentum × weight decay in one program
# --------------------------------------
# SGD with momentum and weight decay as ``torch.optim.SGD`` applies them (the decay
# added to the gradient of the weight matrices). Written as a function of the learning
# rate and the swept hyper-parameters, it is called with *traced* values: the nine
# configurations below are one compiled training step, vmapped over nine states.
import time

import flax.linen as nn
import matplotlib.pyplot as plt
import numpy as np
import optax

import jdl

train = jdl.data.load("digits", split="train")
test = jdl.data.load("digits", split="test")


def sgd(learning_rate, momentum, weight_decay):
    """SGD with momentum; L2 weight decay on the kernels (not biases)."""
    decay = optax.add_decayed_weights(weight_decay, mask=jdl.losses.kernel_mask)
    return optax.chain(decay, optax.sgd(learning_rate, momentum=momentum))


start = time.perf_counter()
grid = jdl.train.sweep(
    jdl.nn.MLP(widths=(64,), num_outputs=10),
    train,
    batch_size=32,
    loss="cross_entropy",
    optimizer=sgd,
    learning_rates=[0.01],
    params={"momentum": [0.0, 0.5, 0.9], "weight_decay": [0.0, 1e-3, 1e-2]},
    epochs=8,
    validation=test,
    verbose=0,
)
print(f"9 configurations in one program: {time.perf_counter() - start:.1f} s")
print(grid.table(["loss", "val_loss", "val_accuracy"]))

# %%
# The table's columns are every swept setting, so the grid can be read as a matrix.
# At this budget (8 epochs at learning rate 0.01) momentum decides almost everything:
# plain SGD has not got far, momentum 0.9 is ten times the effective step. Weight decay
# is a regulariser: it pays when a network overfits, and this short run does not.
accuracy = grid.final("val_accuracy").reshape(3, 3)  # rows: momentum, columns: decay
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
image = ax1.imshow(100 * accuracy, cmap="viridis", vmin=50, vmax=100)
ax1.set(xticks=range(3), xticklabels=["0", "1e-3", "1e-2"], xlabel="weight decay",
        yticks=range(3), yticklabels=["0", "0.5", "0.9"], ylabel="momentum",
        title="Test accuracy (%)")  # fmt: skip
for (i, j), value in np.ndenumerate(100 * accuracy):
    ax1.text(j, i, f"{value:.1f}", ha="center", va="center", color="w")
fig.colorbar(image, ax=ax1)
grid.plot("val_loss", ax=ax2)
fig.tight_layout()

momentum_spread = accuracy[:, 0].max() - accuracy[:, 0].min()  # no decay, momentum varies
decay_spread = max(row.max() - row.min() for row in accuracy)  # momentum fixed, decay varies
print(f"momentum moves test accuracy by {100 * momentum_spread:.1f} points, "
      f"weight decay by at most {100 * decay_spread:.1f}")  # fmt: skip

# %%
# Dropout rates and what a sweep cannot trace
# -------------------------------------------
# A traced hyper-parameter must reach arithmetic only. jdl's models read their dropout
# rate inside the computation (their Dropout layer takes a traced rate), so three rates
# are one program too, each equal to its own ``fit``. ``flax.linen.Dropout`` itself tests
# ``rate == 0.0`` in Python: a model built on it cannot have its rate traced, and
# ``sweep`` refuses it before training starts, naming it and what to use instead.
drop = jdl.train.sweep(
    jdl.nn.MLP(widths=(64,), num_outputs=10, dropout=0.1),
    train,
    batch_size=32,
    loss="cross_entropy",
    optimizer="adam",
    learning_rates=[0.003],
    params={"dropout": [0.0, 0.3, 0.6]},
    epochs=4,
    validation=test,
    verbose=0,
)
print(drop.table(["loss", "val_accuracy"]))


class FlaxDropoutMLP(nn.Module):
    dropout: float = 0.1

    @nn.compact
    def __call__(self, x, *, train):
        h = nn.relu(nn.Dense(64)(x.reshape(x.shape[0], -1)))
        return nn.Dense(10)(nn.Dropout(self.dropout, deterministic=not train)(h))


try:
    jdl.train.sweep(FlaxDropoutMLP(), train, batch_size=32, loss="cross_entropy",
                    optimizer="sgd", learning_rates=[0.01], params={"dropout": [0.0, 0.2]},
                    steps=1, verbose=0)  # fmt: skip
    refused = None
except ValueError as err:
    refused = str(err)
    print(refused)

# %%
# Width and depth: one fit per configuration
# ------------------------------------------
# Shapes change, so each configuration is its own program. ``build(config)`` makes the
# model; ``trials=4`` draws four distinct configurations of the 3 × 3 grid at random
# (``trials=None`` would train all nine). The optimiser is the sweep's best.
best_config, _ = grid.best("val_accuracy")
print("best of the sweep:", best_config)
optimizer = sgd(0.01, best_config["momentum"], best_config["weight_decay"])

start = time.perf_counter()
shapes = jdl.train.search(
    lambda c: jdl.nn.MLP(widths=(c["width"],) * c["depth"], num_outputs=10),
    train,
    space={"width": [8, 32, 128], "depth": [1, 2, 3]},
    trials=4,
    batch_size=32,
    loss="cross_entropy",
    optimizer=optimizer,
    epochs=8,
    validation=test,
    verbose=0,
)
print(f"4 fits: {time.perf_counter() - start:.1f} s")
print(shapes.table(["loss", "val_accuracy"]))
fig = shapes.plot("val_accuracy")
fig.axes[0].set_yscale("linear")

# %%
# Takeaway
# --------
# Sweep what keeps shapes in one program — ``params={"momentum": [...],
# "weight_decay": [...]}`` or ``{"dropout": [...]}`` costs about one run, whatever the
# grid — and search what changes them (or what a model reads as a Python number). Here
# momentum was worth over twenty points of test accuracy and weight decay under two
# within the budget, each step of dropout raised the training loss, and the network's
# shape still separated the best from the worst trial by more than five points (the
# checks below fail otherwise). Read such a table for *which* setting moves the result
# before tuning the ones that do not.
best_shape, best_run = shapes.best("val_accuracy")
worst = shapes.final("val_accuracy").min()
print(f"best shape {best_shape}: {100 * best_run.metrics['val_accuracy'][-1]:.1f} % "
      f"vs worst {100 * worst:.1f} %")  # fmt: skip
assert momentum_spread > 0.2 and decay_spread < 0.02, (momentum_spread, decay_spread)
train_losses = drop.final("loss")  # dropout's noise raises the training loss, rate by rate
assert train_losses[0] < train_losses[1] < train_losses[2], drop.table(["loss"])
assert refused is not None and "'dropout'" in refused and "search" in refused, refused
assert best_run.metrics["val_accuracy"][-1] - worst > 0.05, shapes.table(["val_accuracy"])
plt.show()
