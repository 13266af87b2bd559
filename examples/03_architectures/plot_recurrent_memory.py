"""
Recurrence and memory: simple RNN vs LSTM vs GRU
=================================================

This tutorial shows why gated recurrent cells exist. We train the three cells of
:class:`jdl.nn.RNNClassifier` — ``"simple"`` (``h' = tanh(W x + U h + b)``), ``"lstm"`` and
``"gru"`` — on a synthetic memory task whose required memory length, the *lag*, we choose:
a bit must be remembered for ``lag`` steps while random distractor bits keep arriving. At a
short lag every cell solves it; as the lag grows the simple RNN takes longer and then stays
at chance (50 %) within the budget, while the LSTM and GRU, whose gates can hold a value
unchanged for many steps, still learn it.

The default budget (500 steps per run) keeps the page fast; set ``JDL_DOCS_FULL=1`` for
2,000 steps and an extra, longer lag.
"""

# %%
# The task
# --------
# Each sequence has ``T`` steps with two features: a random bit ``±1`` at every step, and
# a marker that is 1 at exactly one step, ``T - lag``, and 0 elsewhere. The label is the bit
# seen at the marked step. To answer, the network must notice the marker, store that bit,
# and keep it through ``lag - 1`` later bits that look exactly like it. All lags use the
# same sequence length ``T`` (only the marker moves), so one compiled step serves them all.
import functools
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jdl

FULL = os.environ.get("JDL_DOCS_FULL") == "1"
LAGS = (5, 15, 30, 60) if FULL else (5, 15, 30)
STEPS = 2000 if FULL else 500
EVAL_EVERY = 25
T = max(LAGS)
CELLS = ("simple", "lstm", "gru")


def memory_task(n: int, lag: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` sequences of length ``T``; the label is the bit at step ``T - lag``."""
    rng = np.random.default_rng(seed)
    bits = rng.choice(np.float32([-1.0, 1.0]), size=(n, T))
    marker = np.zeros((n, T), np.float32)
    marker[:, T - lag] = 1.0
    return {"x": np.stack([bits, marker], axis=-1), "y": (bits[:, T - lag] > 0).astype(np.int32)}


train = [memory_task(2048, lag, seed=i) for i, lag in enumerate(LAGS)]
test = [memory_task(512, lag, seed=100 + i) for i, lag in enumerate(LAGS)]
print(f"T = {T} steps, lags {LAGS}; x {train[0]['x'].shape}, y {train[0]['y'].shape}")
print("first sequence, lag", LAGS[0], ": bits", train[0]["x"][0, -8:, 0], "label", train[0]["y"][0])

# %%
# Training every lag at once
# --------------------------
# We use jdl's pure pieces instead of ``jdl.fit``: :func:`jdl.train.create_state` makes one
# state per lag, we stack them, and ``jax.vmap`` of :func:`jdl.train.train_step` trains the
# models for all lags side by side in one compiled program (one compilation per cell).
# Every run starts from the same initial parameters (seed 0) and sees the same batch
# indices; Adam with learning rate 3e-3, batches of 64, hidden size 32.
BATCH, HIDDEN, LR = 64, 32, 3e-3
test_batch = {k: jnp.stack([d[k] for d in test]) for k in ("x", "y")}


@jax.jit
def test_accuracy(state, batch):
    """Test accuracy of each of the stacked models on its own lag's test set."""

    def one(single_state, x, y):
        outputs = single_state.model.apply(single_state.variables, x, train=False)
        return jdl.metrics.accuracy(outputs, y)

    return jax.vmap(one)(state, batch["x"], batch["y"])


curves, params, timings = {}, {}, {}
for cell in CELLS:
    start = time.perf_counter()
    model = jdl.nn.RNNClassifier(num_outputs=2, cell=cell, hidden_size=HIDDEN)
    tx = jdl.train.optimizer("adam", LR)
    sample = {"x": train[0]["x"][:1], "y": train[0]["y"][:1]}
    state = jdl.train.create_state(model, tx, sample, seed=0)
    params[cell] = jdl.nn.count_params(state.params)
    state = jax.tree_util.tree_map(lambda a: jnp.stack([a] * len(LAGS)), state)
    step = jax.jit(
        jax.vmap(functools.partial(jdl.train.train_step, loss_fn="cross_entropy")),
        donate_argnums=0,
    )

    rng = np.random.default_rng(0)
    accuracy = []
    for step_number in range(STEPS):
        idx = rng.integers(0, len(train[0]["y"]), BATCH)
        batch = {k: np.stack([d[k][idx] for d in train]) for k in ("x", "y")}
        state, _ = step(state, batch)
        if (step_number + 1) % EVAL_EVERY == 0:
            accuracy.append(test_accuracy(state, test_batch))
    curves[cell] = np.asarray(jnp.stack(accuracy))  # (evaluations, lags)
    timings[cell] = time.perf_counter() - start

# %%
# Results
# -------
# Test accuracy after training, and the first step at which it reached 95 %:
print(f"{'cell':7s} {'params':>7s} " + " ".join(f"lag {lag:>3d}" for lag in LAGS) + "   time")
for cell in CELLS:
    final = " ".join(f"{a:7.1%}" for a in curves[cell][-1])
    print(f"{cell:7s} {params[cell]:7d} {final}   {timings[cell]:.1f} s")
for cell in CELLS:
    solved = []
    for j, lag in enumerate(LAGS):
        hit = np.flatnonzero(curves[cell][:, j] >= 0.95)
        solved.append(
            f"lag {lag}: " + (f"step {(hit[0] + 1) * EVAL_EVERY}" if hit.size else "never")
        )
    print(f"{cell:7s} reaches 95 % at", ", ".join(solved))

# %%
# The learning curves: one panel per lag, one line per cell.
evaluated = np.arange(1, len(curves[CELLS[0]]) + 1) * EVAL_EVERY
fig, axes = plt.subplots(1, len(LAGS), figsize=(3.4 * len(LAGS), 3.2), sharey=True)
for j, (ax, lag) in enumerate(zip(axes, LAGS, strict=True)):
    for cell in CELLS:
        ax.plot(evaluated, curves[cell][:, j], label=cell)
    ax.axhline(0.5, color="gray", ls=":", lw=1, label="chance")
    ax.set(title=f"remember for {lag} steps", xlabel="training step")
axes[0].set_ylabel("test accuracy")
axes[-1].legend(loc="center right")
fig.suptitle("Memory task: the simple RNN fails at long lags, gated cells do not")
fig.tight_layout()

# %%
# Why the gates help
# ------------------
# In the simple RNN every step rewrites the whole state through ``tanh(W x + U h)``: the
# stored bit is mixed with each new distractor, and the gradient that would teach the
# network to keep it is multiplied by ``U^T diag(1 - h^2)`` once per step, so it shrinks
# geometrically with the lag (the vanishing-gradient problem through time). The LSTM's cell
# state is updated *additively*, ``c' = f * c + i * g``: with the forget gate ``f`` near 1
# and the input gate ``i`` near 0 it copies the stored value unchanged, and the gradient
# flows back through that copy undiminished. The GRU's update gate ``z`` does the same with
# ``h' = z * h + (1 - z) * candidate``. The price is parameters: an LSTM has four sets of
# weights per unit, a GRU three, a simple RNN one (see the table above).

# %%
# Takeaway
# --------
# All three cells are recurrent, so all three *could* remember; what differs is whether
# gradient descent can find a solution. The simple RNN learns short dependencies and fails
# at long ones within the same budget; LSTM and GRU, whose gates let information (and its
# gradient) pass through many steps unchanged, learn them. Reach for a gated cell (or a
# convolution/attention over the whole sequence) whenever the task needs memory over more
# than a handful of steps. The checks below fail if the simple RNN stops solving the two
# shortest lags (the longer one later) or starts solving the longest, or if a gated cell
# fails any lag.
final = {cell: curves[cell][-1] for cell in CELLS}  # test accuracy per lag after training
assert min(final["simple"][:2]) >= 0.95, final
solved_at = [np.flatnonzero(curves["simple"][:, j] >= 0.95)[0] for j in (0, 1)]
assert solved_at[0] < solved_at[1], solved_at  # a longer lag takes the simple RNN longer
assert curves["simple"][:, -1].max() < 0.75, curves["simple"][:, -1]  # near chance throughout
assert min(final["lstm"]) >= 0.95 and min(final["gru"]) >= 0.95, final
plt.show()
