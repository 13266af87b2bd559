"""Initialisation (Glorot & Bengio 2010): Jacobian singular values, gradient ratios,
saturation under N(0, 1) and shrinking activations under N(0, 0.01^2)."""

from __future__ import annotations

import numpy as np

from jdl import analysis
from jdl.nn import MLP


def test_glorot_bengio_standard_vs_normalised(digits):
    # The paper's 5-layer tanh net, at width 128 instead of 1000 (the singular values and
    # gradient ratios do not depend on the width).
    batch = {"x": digits["x"][:128], "y": digits["y"][:128]}
    model = MLP(widths=(128,) * 5, num_outputs=10, activation="tanh")
    cmp = analysis.compare_inits(
        model,
        ["standard", "glorot", "normal(1.0)", "normal(0.01)"],
        batch,
        num_examples=4,
    )
    sv = {k: np.mean(list(v.values())) for k, v in cmp.singular_values.items()}
    assert 0.4 < sv["standard"] < 0.6, sv
    assert 0.75 < sv["glorot"] < 0.9, sv

    def ratio(label):  # back-propagated gradient, layer 1 / layer 5
        layers = cmp.reports[label].layers
        return layers[0].activation_grad_rms / layers[4].activation_grad_rms

    assert ratio("standard") < 0.2
    assert ratio("glorot") > 0.8

    # N(0, 1): most tanh units saturate from the third layer on (~45 % in the second).
    big = cmp.reports["normal(1.0)"].layers
    assert all(r.saturated_fraction > 0.5 for r in big[2:5]), [r.saturated_fraction for r in big]
    assert all(r.verdict == "saturated" for r in big[2:5])
    # N(0, 0.01^2): activations shrink towards zero layer by layer.
    stds = [r.activation_std for r in cmp.reports["normal(0.01)"].layers[:5]]
    assert all(b < 0.5 * a for a, b in zip(stds, stds[1:], strict=False)), stds
    text = str(cmp)
    assert "mean Jacobian singular value" in text and "standard" in text


def test_compare_inits_plot(digits):
    import matplotlib

    matplotlib.use("Agg")
    batch = {"x": digits["x"][:32], "y": digits["y"][:32]}
    cmp = analysis.compare_inits(
        lambda init: MLP(widths=(16,) * 3, num_outputs=10, kernel_init=init),
        {"He": "he", "Glorot": "glorot"},
        batch,
        singular_values=False,
    )
    fig = cmp.plot()
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["He", "Glorot"]
