"""lr_find: one scanned run, EMA smoothing, divergence stop, a suggestion that trains Iris."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdl import analysis
from jdl.analysis.scanning import evaluate_arrays
from jdl.nn import MLP


def test_lr_find_on_iris_suggests_a_learning_rate_that_trains(iris):
    model = MLP(widths=(16,), num_outputs=3)  # Dense - Dense - softmax (in the loss)
    res = analysis.lr_find(model, iris["train"], "cross_entropy", optimizer="sgd", steps=100)
    assert len(res.lrs) <= 100 and res.lrs[0] == 1e-7
    # The smoothed loss falls below its start, then rises again past its minimum.
    assert res.smoothed.min() < 0.9 * res.smoothed[0]
    assert res.smoothed[-1] > res.smoothed.min()
    # The schedule is exponential: constant ratio between steps.
    assert np.allclose(res.lrs[1:] / res.lrs[:-1], (1e8) ** (1 / 99))
    # Bias-corrected EMA: the first smoothed value equals the first loss.
    assert res.smoothed[0] == pytest.approx(res.losses[0], rel=1e-5)
    assert 1e-3 < res.suggestion < 1.0, res
    assert res.suggestion <= res.lr_min / 10 + 1e-12

    run = analysis.scan_fit(
        model, iris["train"], "cross_entropy", optimizer=optax.sgd(res.suggestion), steps=2000
    )
    test = iris["test"]
    acc = evaluate_arrays(
        run.state, jnp.asarray(test["x"]), jnp.asarray(test["y"]), "cross_entropy"
    )["accuracy"]
    assert acc >= 0.95, (res.suggestion, acc)


def test_lr_find_plot_and_callable_optimizer(iris):
    import matplotlib

    matplotlib.use("Agg")
    res = analysis.lr_find(
        MLP(widths=(8,), num_outputs=3),
        iris["train"],
        "cross_entropy",
        optimizer=lambda lr: optax.adam(lr),
        steps=30,
        batch_size=32,
    )
    ax = res.plot()
    assert ax.get_xscale() == "log" and ax.get_title()
    assert "suggestion" in str(res)
