"""lr_find: one scanned run, EMA stop, a lag-free trend, a suggestion that trains Iris."""

from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdl import analysis
from jdl.analysis.lr_range import _centred_average, _range_program, _read_curve
from jdl.analysis.scanning import evaluate_arrays
from jdl.nn import MLP


@pytest.mark.parametrize("seed", range(5))
def test_lr_find_on_iris_suggests_a_learning_rate_that_trains(iris, seed):
    model = MLP(widths=(16,), num_outputs=3)  # Dense - Dense - softmax (in the loss)
    res = analysis.lr_find(
        model, iris["train"], "cross_entropy", optimizer="sgd", steps=100, seed=seed
    )
    assert len(res.lrs) <= 100 and res.lrs[0] == 1e-7
    # The loss falls below its start, then stops improving: past lr ~0.2 full-batch SGD on
    # the raw features spikes and collapses onto ln 3 (dead ReLUs). The lagging EMA may
    # still be falling there; the lag-free trend rises past its minimum.
    assert res.trend.min() < 0.9 * res.trend[0]
    assert res.outcome == "rose" and res.found_edge, res
    assert res.trend[-1] > res.trend.min()
    # The schedule is exponential: constant ratio between steps.
    assert np.allclose(res.lrs[1:] / res.lrs[:-1], (1e8) ** (1 / 99))
    # Bias-corrected EMA: the first smoothed value equals the first loss.
    assert res.smoothed[0] == pytest.approx(res.losses[0], rel=1e-5)
    assert 1e-3 < res.suggestion < 1.0, res
    assert res.suggestion <= res.lr_min / 10 + 1e-12

    run = analysis.scan_fit(
        model,
        iris["train"],
        "cross_entropy",
        optimizer=optax.sgd(res.suggestion),
        steps=2000,
        seed=seed,
    )
    test = iris["test"]
    acc = evaluate_arrays(
        run.state, jnp.asarray(test["x"]), jnp.asarray(test["y"]), "cross_entropy"
    )["accuracy"]
    assert acc >= 0.95, (res.suggestion, acc)


@pytest.mark.filterwarnings("ignore:lr_find")
def test_repeating_the_test_reuses_its_compiled_program_and_gives_the_same_curve(iris):
    model = MLP(widths=(8,), num_outputs=3)
    run = functools.partial(analysis.lr_find, data=iris["train"], loss="cross_entropy", steps=30)
    first = run(model, seed=0)
    hits = _range_program.cache_info().hits
    again = run(model, seed=1)
    assert _range_program.cache_info().hits == hits + 1
    assert not np.array_equal(first.losses, again.losses)  # another seed, another curve
    # An unhashable setting (a list field) is built afresh for the call: the same curve.
    fresh = run(MLP(widths=[8], num_outputs=3), seed=1)
    assert _range_program.cache_info().hits == hits + 1
    np.testing.assert_array_equal(fresh.losses, again.losses)
    assert fresh.suggestion == again.suggestion


def _curve(values):
    lrs = 1e-7 * (1e8 ** (1 / (len(values) - 1))) ** np.arange(len(values))
    return lrs, np.asarray(values, np.float64)


def _ema(losses, beta=0.98):
    avg, out = 0.0, []
    for i, v in enumerate(losses):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** (i + 1)))
    return np.asarray(out)


def test_spike_then_collapse_onto_a_plateau_is_read_as_the_edge_not_as_still_falling():
    # The shape Iris gives at a too-large rate: flat, a fall, a spike, a collapse onto ln 3.
    # The EMA is still falling at the end (the premise that used to fail) and never reaches
    # 4x its minimum; the edge is the minimum before the spike.
    flat, fall = np.full(40, 3.0), np.linspace(3.0, 0.6, 30)
    spike = [7.9, 5.4, 0.9, 0.6, 1.5, 8.5]
    lrs, losses = _curve(np.concatenate([flat, fall, spike, np.full(24, math.log(3))]))
    smoothed = _ema(losses)
    assert smoothed[-1] == smoothed.min() and smoothed.max() < 4 * smoothed.min()
    res = _read_curve(lrs, losses, smoothed, diverged=False)
    assert res.outcome == "rose"
    # Within half the averaging window (2 steps) before the last point of the fall.
    assert lrs[67] - 1e-12 <= res.lr_min <= lrs[69] + 1e-12
    assert res.suggestion == pytest.approx(res.lr_min / 10)
    assert res.lr_steep <= res.lr_min


def test_plateau_without_a_spike_ends_the_range_where_it_starts():
    losses = np.concatenate([np.linspace(2.0, 1.1, 60), np.full(40, 1.1)])
    lrs, losses = _curve(losses)
    res = _read_curve(lrs, losses, _ema(losses), diverged=False)
    assert res.outcome == "plateaued"
    assert 55 <= int(np.argmin(np.abs(lrs - res.lr_min))) <= 60
    assert res.suggestion == pytest.approx(res.lr_min / 10)


def test_no_edge_in_the_range_is_said_and_the_steepest_descent_is_suggested(iris):
    model = MLP(widths=(16,), num_outputs=3)
    with pytest.warns(UserWarning, match="still falling.*Raise end_lr"):
        res = analysis.lr_find(model, iris["train"], "cross_entropy", end_lr=1e-3)
    assert res.outcome == "falling" and not res.found_edge
    assert res.suggestion == res.lr_steep <= 1e-3
    assert "no edge" in str(res) and "extend end_lr" in str(res)
    with pytest.warns(UserWarning, match="did not fall"):
        flat = analysis.lr_find(model, iris["train"], "cross_entropy", end_lr=1e-5)
    assert flat.outcome == "flat"


def test_centred_average_has_no_lag_and_skips_non_finite_values():
    values = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    np.testing.assert_allclose(_centred_average(values, 3), [1.5, 1.5, 3.0, 4.5, 4.5])
    ramp = np.arange(10.0)
    np.testing.assert_allclose(_centred_average(ramp, 5)[2:-2], ramp[2:-2])
    assert np.isinf(_centred_average(np.array([np.inf, np.nan]), 1)).all()


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
    fig = res.plot()
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_title()
    assert "suggestion" in str(res)
    labels = [line.get_label() for line in ax.get_lines()]
    assert any("trend" in label for label in labels), labels
