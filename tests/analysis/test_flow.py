"""gradient_flow verdicts: vanishing, residual, saturated, exploding, dead (issue #4)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdl import analysis
from jdl.nn import MLP


def _batch(n=32, d=8, classes=4, seed=1):
    x = jax.random.normal(jax.random.key(seed), (n, d))
    return {"x": x, "y": jnp.arange(n) % classes}


def _report(model, batch, **kw):
    v = model.init(jax.random.key(0), batch["x"][:1], train=False)
    return analysis.gradient_flow(model, v, batch, "cross_entropy", **kw), v


def test_100_layer_sigmoid_vanishes_and_residual_fixes_gradient_flow():
    batch = _batch()
    plain = MLP(widths=(8,) * 100, num_outputs=4, activation="sigmoid", kernel_init="standard")
    report, _ = _report(plain, batch)
    first, last = report.layers[0], report.layers[-1]
    # The 0.1^100 of backpropagation: the first layer's gradient is < 1e-10 of the last's.
    assert first.grad_norm < 1e-10 * last.grad_norm
    assert [r.verdict for r in report.layers[:50]] == ["vanishing"] * 50
    assert last.verdict == "healthy"
    assert "vanishing" in report.summary()
    assert "Dense_0" in str(report) and "vanishing" in str(report)

    # Post-activation skips, h + sigmoid(W h): skips carry the gradient down, so nothing
    # vanishes and the back-propagated gradient at the first layer stays within 10x of the
    # output layer's. But every branch adds a positive sigmoid output (mean ~0.5), so the
    # stream h drifts upward with depth and the deep branches' sigmoids saturate -- the
    # report says so.
    post = plain.clone(residual=True)
    rep_post, _ = _report(post, batch)
    assert rep_post.count("vanishing") == 0, str(rep_post)
    assert 0.1 < rep_post.layers[0].grad_ratio < 10, str(rep_post)
    assert rep_post.layers[-2].verdict == "saturated", str(rep_post)
    assert rep_post.count("saturated") > 50, rep_post.summary()

    # Pre-activation skips (He et al. 2016b), z + W sigmoid(z): the stream is a sum of
    # zero-mean Dense outputs and does not drift. Every layer is healthy, and the gradient
    # norms of the first and the last hidden layer are within 10x of each other.
    pre = plain.clone(residual="pre")
    rep_pre, _ = _report(pre, batch)
    assert rep_pre.count("healthy") == len(rep_pre.layers), rep_pre.summary()
    first, last = rep_pre.layers[0], rep_pre.layers[-2]
    assert 0.1 < first.grad_norm / last.grad_norm < 10, str(rep_pre)
    assert 0.1 < first.activation_grad_rms / last.activation_grad_rms < 10, str(rep_pre)
    # The saturation it reads is that of sigmoid(z), the real activation (sown by the MLP).
    assert 0 < max(r.saturated_fraction for r in rep_pre.layers[:-1]) < 0.5


def test_residual_with_batchnorm_every_layer_healthy():
    batch = _batch()
    model = MLP(
        widths=(8,) * 100,
        num_outputs=4,
        activation="sigmoid",
        kernel_init="standard",
        residual=True,
        batch_norm=True,
    )
    report, _ = _report(model, batch)
    assert report.count("healthy") == len(report.layers), report.summary()
    # The back-propagated gradient at the first layer is within 10x of the output layer's.
    assert 0.1 < report.layers[0].grad_ratio < 10
    # (Parameter-gradient norms, first hidden / last hidden layer, measured ~13x here.)
    dense = [r for r in report.layers if r.kind == "Dense"]
    assert 0.01 < dense[0].grad_norm / dense[-2].grad_norm < 100


def test_large_variance_sigmoid_is_saturated():
    batch = _batch()
    model = MLP(widths=(32,) * 10, num_outputs=4, activation="sigmoid", kernel_init=4.0)
    report, _ = _report(model, batch)
    hidden = report.layers[1:-1]
    assert all(r.saturated_fraction > 0.5 for r in hidden)
    assert [r.verdict for r in hidden] == ["saturated"] * len(hidden)


def test_large_variance_relu_is_exploding():
    batch = _batch()
    model = MLP(widths=(32,) * 12, num_outputs=4, activation="relu", kernel_init=1.0)
    report, _ = _report(model, batch)
    # dL/dO grows ~ (sqrt(32/2))^k going down: far beyond the 1e3 threshold at the input.
    assert report.layers[0].verdict == "exploding"
    assert report.layers[0].grad_ratio > analysis.EXPLODING_RATIO
    assert report.layers[-1].verdict == "healthy"


def test_exploding_gradient_is_named_before_saturation():
    # N(0, 1) weights, tanh, width 256: most units saturate, yet dL/dO still grows
    # ~sqrt(256) x (share of linear units) per layer going down -- beyond the 1e3 threshold.
    batch = {"x": jax.random.normal(jax.random.key(1), (64, 16)), "y": jnp.arange(64) % 4}
    model = MLP(widths=(256,) * 12, num_outputs=4, activation="tanh", kernel_init="normal(1.0)")
    report, _ = _report(model, batch)
    both = [
        r
        for r in report.layers
        if r.saturated_fraction >= analysis.SATURATED_FRACTION
        and r.grad_ratio > analysis.EXPLODING_RATIO
    ]
    assert both, report.summary()
    assert {r.verdict for r in both} == {"exploding"}


def test_iris_lr2_kills_relus_and_report_says_dead(iris):
    tr = iris["train"]
    model = MLP(widths=(16,), num_outputs=3)
    losses = {}
    for lr in (2.0, 1e-2, 1e-8):
        run = analysis.scan_fit(
            model, tr, "cross_entropy", optimizer=optax.sgd(lr), steps=300, metrics=()
        )
        losses[lr] = run.losses
        if lr == 2.0:
            report = analysis.gradient_flow(model, run.variables, tr, "cross_entropy")
    # lr = 2: every ReLU dead, loss frozen at ln 3.
    assert report["Dense_0"].dead_fraction == 1.0
    assert report["Dense_0"].verdict == "dead"
    assert losses[2.0][-1] == pytest.approx(np.log(3), abs=1e-3)
    assert np.ptp(losses[2.0][-50:]) < 1e-4
    # lr = 1e-2 converges, lr = 1e-8 stays flat.
    assert losses[1e-2][-1] < 0.6 * losses[1e-2][0]
    assert abs(losses[1e-8][-1] - losses[1e-8][0]) < 1e-4


def test_plot_and_thresholds_are_documented():
    import matplotlib

    matplotlib.use("Agg")
    batch = _batch()
    report, _ = _report(MLP(widths=(8,) * 4, num_outputs=4, activation="tanh"), batch)
    fig = report.plot()
    assert fig.axes[0].get_yscale() == "log"
    assert fig.axes[0].get_title() and fig.axes[1].get_title()
    doc = analysis.flow.__doc__
    for text in ("1e-3", "1e3", "50 %", "0.99"):
        assert text in doc


def test_activation_stats_dead_and_saturated_units():
    x = jax.random.normal(jax.random.key(1), (64, 8))
    relu = MLP(widths=(16, 16), num_outputs=2)
    v = relu.init(jax.random.key(0), x[:1], train=False)
    bias = v["params"]["Dense_1"]["bias"]
    # Kill the first 12 of 16 units of the second layer: a large negative bias.
    v["params"]["Dense_1"]["bias"] = bias.at[:12].set(-1e3)
    stats = analysis.activation_stats(relu, v, {"x": x})
    assert list(stats) == ["Dense_0", "Dense_1", "head"]
    assert stats["Dense_1"].dead_fraction == 0.75
    assert stats["Dense_0"].dead_fraction < 0.25
    assert stats["Dense_1"].counts.sum() == 64 * 16
    assert "dead" in str(stats)
    report = analysis.gradient_flow(relu, v, {"x": x, "y": jnp.arange(64) % 2}, "cross_entropy")
    assert report["Dense_1"].verdict == "dead"

    tanh = MLP(widths=(64, 64), num_outputs=2, activation="tanh", kernel_init=1.0)
    vt = tanh.init(jax.random.key(0), x[:1], train=False)
    st = analysis.activation_stats(tanh, vt, x)
    assert st["Dense_1"].saturated_fraction > 0.5
    assert st["head"].saturated_fraction == 0.0  # the output layer is never "saturated"
    manual = np.tanh(
        np.asarray(
            tanh.apply(vt, x, train=False, capture_intermediates=True)[1]["intermediates"][
                "Dense_1"
            ]["__call__"][0]
        )
    )
    assert st["Dense_1"].std == pytest.approx(float(manual.std()), rel=1e-4)
    assert st["Dense_1"].saturated_fraction == pytest.approx(
        float(np.mean(np.abs(manual) > 0.99)), abs=1e-6
    )
