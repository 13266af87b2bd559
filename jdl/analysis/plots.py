"""Figures of the analysis reports (matplotlib, imported lazily)."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from jdl.analysis.activations import ActivationStats, LayerActivations
    from jdl.analysis.flow import GradientFlow, LayerReport
    from jdl.analysis.inits import InitComparison
    from jdl.analysis.lr_range import LRFinder
    from jdl.analysis.signal import SignalPropagation

_COLORS = {
    "healthy": "tab:green",
    "vanishing": "tab:blue",
    "exploding": "tab:red",
    "dead": "black",
    "saturated": "tab:orange",
}


def _plt() -> ModuleType:
    import matplotlib.pyplot as plt

    return plt


def _positive(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    return np.where(arr > 0, arr, np.nan)


def _plot_gradient_flow(
    report: GradientFlow, *, fig: Figure | None = None, max_histograms: int = 6
) -> Figure:
    """Left: gradient norms by depth (log scale), coloured by verdict. Right: histograms."""
    plt = _plt()
    fig = fig or plt.figure(figsize=(12, 4.2))
    ax, ax_h = fig.subplots(1, 2)
    layers = report.layers
    depth = np.arange(len(layers))
    ax.semilogy(
        depth,
        _positive([r.grad_norm for r in layers]),
        "-",
        color="0.6",
        label="parameter gradient norm",
    )
    ax.semilogy(
        depth,
        _positive([r.activation_grad_rms for r in layers]),
        "--",
        color="0.3",
        label="rms dLoss/dO (back-propagated)",
    )
    norms = _positive([r.grad_norm for r in layers])
    floor = np.nanmin(norms) if np.any(np.isfinite(norms)) else 1.0
    for verdict, color in _COLORS.items():
        idx = [i for i, r in enumerate(layers) if r.verdict == verdict]
        if idx:
            vals = np.where(np.isnan(norms[idx]), floor, norms[idx])
            ax.scatter(idx, vals, color=color, s=18, zorder=3, label=verdict)
    ax.set_xlabel("layer (input -> output)")
    ax.set_ylabel("norm (log scale)")
    ax.set_title("Gradient flow by depth")
    ax.legend(fontsize=8)
    _histograms(ax_h, [r for r in layers if r.counts is not None], max_histograms)
    fig.tight_layout()
    return fig


def _histograms(
    ax: Axes, layers: Sequence[LayerReport | LayerActivations], max_layers: int
) -> Axes:
    if not layers:
        ax.set_title("no activations captured")
        return ax
    idx = np.unique(np.linspace(0, len(layers) - 1, min(max_layers, len(layers))).astype(int))
    cmap = _plt().get_cmap("viridis")
    for j, i in enumerate(idx):
        layer = layers[i]
        counts = np.asarray(layer.counts, float)
        edges = np.asarray(layer.edges, float)
        centers = (edges[:-1] + edges[1:]) / 2
        total = counts.sum() or 1.0
        ax.plot(centers, counts / total, color=cmap(j / max(1, len(idx) - 1)), label=layer.name)
    ax.set_xlabel("activation value")
    ax.set_ylabel("fraction of entries")
    ax.set_title("Activation histograms by layer")
    ax.legend(fontsize=8)
    return ax


def _plot_activation_histograms(
    stats: ActivationStats, *, ax: Axes | None = None, max_layers: int = 8
) -> Axes:
    """Histograms of the activations of up to ``max_layers`` evenly spaced layers."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    return _histograms(ax, list(stats.values()), max_layers)


def _plot_signal_propagation(
    sp: SignalPropagation,
    *,
    axes: Sequence[Axes] | None = None,
    label: str | None = None,
    log: bool = True,
) -> Sequence[Axes]:
    """Brock et al.'s three panels: squared channel mean, channel variance, residual variance."""
    plt = _plt()
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (
        (sp.mean_sq, "average squared channel mean"),
        (sp.variance, "average channel variance"),
        (sp.residual_variance, "residual-branch variance"),
    )
    for ax, (values, title) in zip(axes, panels, strict=True):
        ax.plot(sp.depth, values, marker="o", ms=3, label=label)
        if log:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("block (depth)")
        ax.set_ylabel(title.split(" ", 1)[1] if " " in title else title)
        if label:
            ax.legend(fontsize=8)
    return axes


def _plot_lr_find(res: LRFinder, *, ax: Axes | None = None) -> Axes:
    """Raw loss, its EMA and its lag-free trend against learning rate, suggestion marked."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    ax.semilogx(res.lrs, res.losses, color="0.75", label="loss (raw)")
    ax.semilogx(res.lrs, res.smoothed, color="tab:blue", label="loss (EMA, bias-corrected)")
    ax.semilogx(res.lrs, res.trend, color="tab:orange", label="trend (centred average)")
    ax.axvline(res.suggestion, color="tab:green", ls="--", label=f"suggestion {res.suggestion:.2g}")
    if res.found_edge:
        ax.axvline(res.lr_min, color="tab:red", ls=":", label=f"edge {res.lr_min:.2g}")
    finite = res.trend[np.isfinite(res.trend)]
    if finite.size:
        lo, hi = finite.min(), finite.max()
        ax.set_ylim(lo - 0.05 * (hi - lo + 1e-9), min(hi, 4 * max(lo, 1e-9)) * 1.05 + 1e-9)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss")
    ax.set_title("Learning-rate range test")
    ax.legend(fontsize=8)
    return ax


def _plot_init_comparison(cmp: InitComparison, *, fig: Figure | None = None) -> Figure:
    """Activation std and back-propagated gradient by layer, one line per initialiser."""
    plt = _plt()
    fig = fig or plt.figure(figsize=(11, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for label, report in cmp.reports.items():
        depth = np.arange(1, len(report.layers) + 1)
        ax1.semilogy(
            depth, _positive([r.activation_std for r in report.layers]), marker="o", label=label
        )
        ax2.semilogy(
            depth,
            _positive([r.activation_grad_rms for r in report.layers]),
            marker="o",
            label=label,
        )
    ax1.set_title("Activation std by layer")
    ax1.set_xlabel("layer")
    ax1.set_ylabel("std (log)")
    ax2.set_title("Back-propagated gradient rms(dLoss/dO) by layer")
    ax2.set_xlabel("layer")
    ax2.set_ylabel("rms (log)")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig
