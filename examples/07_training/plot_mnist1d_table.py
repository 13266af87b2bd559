"""
Reproducing the MNIST-1D table (Greydanus 2020) with ``jdl.fit``
================================================================

This tutorial reproduces the baseline table of *Scaling down deep learning with
MNIST-1D* (Greydanus 2020) — logistic regression 32 %, MLP 68 %, CNN 94 %, GRU 91 %
test accuracy — with jdl's models, jdl's bundled copy of the dataset and ``jdl.fit``,
using the paper's setup: Adam, learning rate 1e-2, batch size 100, 6,000 steps, and the
best test accuracy seen during training, averaged over three seeds. It shows how much
of the gap between the models comes from their *inductive bias* alone: all four see
the same 4,000 training sequences of 40 numbers.

The full run (6,000 steps × 4 models × 3 seeds) takes about four CPU-minutes, so by
default — and when these pages are built — the script runs a shortened schedule of 1,000
steps and one seed, which already shows the ordering. Run the paper's full setup with
``JDL_DOCS_FULL=1 python examples/07_training/plot_mnist1d_table.py`` (or choose with the
``JDL_MNIST1D_STEPS`` and ``JDL_MNIST1D_SEEDS`` environment variables).

.. list-table:: Recorded full run (jdl 0.1.0.dev0, JAX 0.10.2, 2-core Intel Xeon CPU,
   2026-11-22; test accuracy every 250 steps, best value, mean of seeds 0, 1, 2)
   :header-rows: 1
   :class: jdl-numbers

   * - model
     - params
     - paper %
     - jdl %
     - seeds %
     - accept
   * - logistic
     - 410
     - 32
     - 33.2
     - 33.6, 33.0, 33.1
     - yes
   * - mlp
     - 15,210
     - 68
     - 67.6
     - 67.9, 68.2, 66.8
     - yes
   * - cnn
     - 5,210
     - 94
     - 94.1
     - 95.4, 93.3, 93.7
     - yes
   * - gru
     - 5,110
     - 91
     - 90.1
     - 92.1, 88.7, 89.5
     - yes
"""

# %%
# The four models
# ---------------
# The paper's models, rebuilt from jdl's building blocks with the paper's sizes:
#
# * logistic regression: one linear layer, 40 × 10 + 10 = 410 parameters;
# * MLP: two hidden ReLU layers of 100 units (15,210 parameters);
# * CNN: three 1-D convolutions of 25 channels (kernels 5, 3, 3; stride 2; padding 1)
#   and a linear head on the flattened 5 × 25 feature map (5,210 parameters);
# * GRU: a bidirectional GRU with 6 units per direction whose whole output sequence
#   (40 steps × 12 numbers) feeds a linear head (5,110 parameters).
from __future__ import annotations

import os
import time

import jax
import matplotlib.pyplot as plt
import numpy as np

import jdl

PAPER = {"logistic": 32.0, "mlp": 68.0, "cnn": 94.0, "gru": 91.0}
ACCEPT = {"logistic": (31.0, 34.0), "mlp": (62.0, 70.0), "cnn": (91.0, 100.0), "gru": (88.0, 100.0)}


def paper_models() -> dict[str, jdl.nn.MLP | jdl.nn.CNN | jdl.nn.RNNClassifier]:
    """The four baselines of the MNIST-1D paper, as jdl models."""
    return {name: jdl.nn.get_model(f"mnist1d_{name}") for name in PAPER}


class TestAccuracyEvery(jdl.train.callbacks.Callback):
    """Record the test accuracy every ``every`` steps, as the paper's training code does.

    A callback sees the metrics that ``jdl.fit`` fetches every ``log_every`` steps; when
    the step count reaches a multiple of ``every`` it evaluates the current parameters on
    the whole test set in one jitted call.
    """

    def __init__(self, model, test, every: int = 250):
        arrays = jdl.data.as_arrays(test)
        x, y = arrays["x"], arrays["y"]
        self.every, self.steps, self.accuracies = every, [], []
        self._accuracy = jax.jit(
            lambda variables: jdl.metrics.accuracy(model.apply(variables, x, train=False), y)
        )

    def on_metrics(self, run, first_step, metrics):
        if run.step % self.every == 0:
            self.steps.append(run.step)
            self.accuracies.append(float(self._accuracy(run.state.variables)))


def best_test_accuracy(model, train, test, *, steps: int, seed: int) -> tuple[float, object]:
    """Train with the paper's setup; return the best test accuracy (%) and its record.

    The test set is evaluated every 250 steps, as in the paper's code, and the best value
    is reported, as in the paper's table.
    """
    record = TestAccuracyEvery(model, test, every=250 if steps >= 1000 else 40)
    history = jdl.fit(
        model,
        train,
        batch_size=100,
        optimizer=jdl.train.optimizer("adam", 1e-2),
        loss="cross_entropy",
        steps=steps,
        callbacks=[record],
        seed=seed,
        strategy="jit",
        verbose=0,
        log_every=10,  # metrics reach the host (and the callback) every 10 steps
    )
    record.history = history
    return 100.0 * max(record.accuracies), record


def reproduce(steps: int = 6000, seeds: int = 3) -> dict[str, dict[str, object]]:
    """Run every model for ``seeds`` seeds; return per-model results."""
    train, test = jdl.data.load("mnist1d", split="train"), jdl.data.load("mnist1d", split="test")
    results = {}
    for name, model in paper_models().items():
        start = time.perf_counter()
        runs = [best_test_accuracy(model, train, test, steps=steps, seed=s) for s in range(seeds)]
        accuracies = [acc for acc, _ in runs]
        params = jdl.nn.count_params(runs[0][1].history.variables["params"])
        results[name] = {
            "accuracies": accuracies,
            "mean": float(np.mean(accuracies)),
            "params": params,
            "seconds": time.perf_counter() - start,
            "record": runs[0][1],
        }
    return results


def format_table(results: dict[str, dict[str, object]], steps: int, seeds: int) -> str:
    """The reproduced table next to the paper's numbers."""
    lines = [
        f"MNIST-1D, Adam 1e-2, batch 100, {steps} steps, best test accuracy, "
        f"mean of {seeds} seed(s)",
        f"{'model':<9}{'params':>8}{'paper %':>9}{'jdl %':>8}{'seeds %':>24}{'accept':>10}",
    ]
    for name, r in results.items():
        low, high = ACCEPT[name]
        per_seed = " ".join(f"{a:.1f}" for a in r["accuracies"])
        verdict = "yes" if low <= r["mean"] <= high else "NO"
        if steps != 6000:  # the acceptance ranges are for the paper's full schedule
            verdict = "(short)"
        lines.append(
            f"{name:<9}{r['params']:>8,}{PAPER[name]:>9.0f}{r['mean']:>8.1f}{per_seed:>24}"
            f"{verdict:>10}"
        )
    return "\n".join(lines)


# %%
# Training
# --------
# The paper's code measures the test accuracy every 250 steps and its table reports the
# best of those measurements. A small callback (``TestAccuracyEvery`` above) does the
# same inside ``jdl.fit``: callbacks see the metrics each time they are fetched from the
# device, here every 10 steps, so there is still no host synchronisation per step.
full = os.environ.get("JDL_DOCS_FULL") == "1"
STEPS = 6000 if full else int(os.environ.get("JDL_MNIST1D_STEPS", 1000))
SEEDS = 3 if full else int(os.environ.get("JDL_MNIST1D_SEEDS", 1))

if __name__ == "__main__":
    print(f"devices: {jax.devices()}")
    results = reproduce(STEPS, SEEDS)
    print(format_table(results, STEPS, SEEDS))
    for name, r in results.items():
        print(f"{name}: {r['seconds']:.1f} s for {SEEDS} run(s)")

# %%
# Learning curves
# ---------------
# Test accuracy every 250 steps for the first seed of each model. The MLP memorises:
# after 1,000 steps its training accuracy is far above its test accuracy (more than 15
# points: checked at the end), and on the full schedule its test accuracy peaks early and
# slides, which is why the paper reports the best value (on the shortened default
# schedule it is still creeping up). The CNN's locality and weight sharing give it a
# large, lasting lead.
if __name__ == "__main__":
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in results.items():
        record = r["record"]
        ax.plot(record.steps, 100 * np.asarray(record.accuracies), marker="o", ms=3, label=name)
        ax.axhline(PAPER[name], ls=":", lw=1, color=ax.lines[-1].get_color())
    ax.set(
        xlabel="training step",
        ylabel="test accuracy (%)",
        title="MNIST-1D: test accuracy during training (dotted: paper)",
        ylim=(0, 100),
    )
    ax.legend()
    fig.tight_layout()
    plt.show()

# %%
# Takeaway
# --------
# With the same data, optimiser and budget, the model's structure decides the result:
# a linear model cannot go far past a third of the digits, an MLP memorises the training
# set (and overfits), while a CNN — a few thousand parameters that look for the same
# local patterns everywhere — and a GRU that reads the sequence in order reach more
# than 85 %. ``jdl.fit`` reproduces the paper's table with jdl's models in a few
# minutes of CPU time. The checks below hold on the default schedule (1,000 steps, one
# seed) and, for the full one, also the paper's acceptance ranges of the table above.
if __name__ == "__main__" and STEPS >= 1000:
    acc = {name: r["mean"] for name, r in results.items()}
    mlp_train = 100 * float(results["mlp"]["record"].history.metrics["accuracy"][-1])
    LOGISTIC_BELOW, CONV_RNN_ABOVE, GAP = 40.0, 85.0, 15.0  # % and points
    print(
        f"checked: logistic below {LOGISTIC_BELOW:.0f} %, MLP training accuracy "
        f"{mlp_train:.1f} % more than {GAP:.0f} points above its test accuracy, CNN and "
        f"GRU above {CONV_RNN_ABOVE:.0f} % and {GAP:.0f} points above the MLP"
    )
    assert acc["logistic"] < LOGISTIC_BELOW, acc  # not far past a third
    assert acc["mlp"] > acc["logistic"] + 20.0, acc
    assert mlp_train > acc["mlp"] + GAP, (mlp_train, acc)  # the MLP memorises
    assert min(acc["cnn"], acc["gru"]) > max(CONV_RNN_ABOVE, acc["mlp"] + GAP), acc
    if STEPS == 6000:
        assert all(ACCEPT[n][0] <= a <= ACCEPT[n][1] for n, a in acc.items()), acc
