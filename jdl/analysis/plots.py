"""Figures of the analysis reports (matplotlib, imported lazily).

Sizes: the documentation shows a figure at most ~730 px wide (its content width at a
1280 px window), so a 100-dpi figure ``W`` inches wide is scaled by ``7.3 / W``. The figures
here are at most :data:`MAX_WIDTH` inches wide and use no text smaller than
:data:`SMALL_FONT` points, so every label stays at least ~9 px tall on screen. New figures
use matplotlib's constrained layout: a ``fig.suptitle`` (the ``title=`` of the ``plot()``
methods, or one added afterwards) is laid out above the panel titles, not over them.
"""

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

#: Widest figure (inches) drawn by default: shown at 730 px, text is scaled by >= 0.73.
MAX_WIDTH = 10.0
#: Smallest font (points) used: 9 pt at 100 dpi x 0.73 is ~9 px on screen.
SMALL_FONT = 9

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


def _figure(fig: Figure | None, figsize: tuple[float, float], title: str | None) -> Figure:
    """A new constrained-layout figure, or ``fig`` switched to constrained layout."""
    if fig is None:
        fig = _plt().figure(figsize=figsize, layout="constrained")
    elif fig.get_layout_engine() is None:
        fig.set_layout_engine("constrained")
    if title:
        fig.suptitle(title)
    return fig


def _positive(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    return np.where(arr > 0, arr, np.nan)


def _plot_gradient_flow(
    report: GradientFlow,
    *,
    fig: Figure | None = None,
    max_histograms: int = 6,
    title: str | None = None,
) -> Figure:
    """Left: gradient norms by depth (log scale), coloured by verdict. Right: histograms."""
    fig = _figure(fig, (MAX_WIDTH, 4.0), title)
    ax, ax_h = fig.subplots(1, 2, width_ratios=(1.15, 1))
    layers = report.layers
    depth = np.arange(len(layers))
    raw = np.asarray([r.grad_norm for r in layers], float)
    norms = _positive(raw)
    ax.semilogy(depth, norms, "-", color="0.6", label="parameter gradient norm")
    ax.semilogy(
        depth,
        _positive([r.activation_grad_rms for r in layers]),
        "--",
        color="0.3",
        label="rms dLoss/dO (back-propagated)",
    )
    # A norm of exactly 0 (the gradient underflowed, or no unit passes any) has no place on
    # a log axis: those layers are drawn as hollow triangles on a labelled line a decade
    # below the smallest non-zero norm.
    zero = raw == 0
    floor = np.nanmin(norms) / 10 if np.any(np.isfinite(norms)) else 1.0
    if zero.any():
        ax.axhline(floor, color="0.5", ls=":", lw=1, label="norm exactly 0 (drawn here)")
    for verdict, color in _COLORS.items():
        idx = np.asarray([i for i, r in enumerate(layers) if r.verdict == verdict], int)
        if idx.size == 0:
            continue
        shown = idx[~zero[idx]]
        ax.scatter(shown, norms[shown], color=color, s=18, zorder=3, label=verdict)
        if zero[idx].any():
            ax.scatter(
                idx[zero[idx]],
                np.full(int(zero[idx].sum()), floor),
                marker="v",
                facecolors="none",
                edgecolors=color,
                s=22,
                zorder=3,
                label=None if shown.size else verdict,
            )
    ax.set_xlabel("layer (input -> output)")
    ax.set_ylabel("norm (log scale)")
    ax.set_title("Gradient flow by depth")
    ax.legend(fontsize=SMALL_FONT)
    _histograms(
        ax_h,
        [r for r in layers if r.counts is not None],
        max_histograms,
        activation=report.activation,
        output=getattr(report, "output_layers", ()),
    )
    return fig


def _histograms(
    ax: Axes,
    layers: Sequence[LayerReport | LayerActivations],
    max_layers: int,
    *,
    activation: str | None = None,
    output: Sequence[str] = (),
    title: str | None = None,
) -> Axes:
    """One row per hidden layer (input at the top), each histogram scaled to its own peak.

    A ridgeline rather than overlaid curves: the layers' spreads differ by orders of
    magnitude (and a layer whose units are constant over the batch is a set of spikes), so
    overlaid curves on one y-axis are a tangle in which only the widest layer is visible.
    The output layer (``output``: its logits) is left out, it is not an activation.
    """
    # Members of one group (``Dense_3`` + ``BatchNorm_3``) share their activation: one row.
    hidden: list[tuple[str, Any]] = []
    left_out = set(output)
    for layer in layers:
        if layer.name in left_out:
            continue
        if hidden and _same_histogram(hidden[-1][1], layer):
            hidden[-1] = (f"{hidden[-1][0]} + {layer.name}", hidden[-1][1])
        else:
            hidden.append((layer.name, layer))
    what = f"{activation} activations" if activation else "layer outputs"
    ax.set_title(title or f"{what[0].upper()}{what[1:]}, hidden layers")
    if not hidden:
        ax.text(0.5, 0.5, "no hidden-layer activations captured", ha="center", va="center")
        ax.set_axis_off()
        return ax
    idx = np.unique(np.linspace(0, len(hidden) - 1, min(max_layers, len(hidden))).astype(int))
    cmap = _plt().get_cmap("viridis")
    ticks, names = [], []
    for row, i in enumerate(idx):
        name, layer = hidden[i]
        base = -float(row)
        counts = np.asarray(layer.counts, float)
        edges = np.asarray(layer.edges, float)
        color = cmap(0.85 * row / max(1, len(idx) - 1))
        peak = counts.max() if counts.size else 0.0
        span = edges[-1] - edges[0] if edges.size else 0.0
        if peak > 0 and span > 1e-5 * max(1.0, abs(edges[0])):
            ax.stairs(base + 0.85 * counts / peak, edges, baseline=base, fill=True,
                      color=color, alpha=0.35)  # fmt: skip
            ax.stairs(base + 0.85 * counts / peak, edges, baseline=base, color=color, lw=1)
        elif edges.size:  # every entry has the same value: one spike
            ax.vlines(edges[0], base, base + 0.85, color=color, lw=2)
        ticks.append(base)
        names.append(name)
    ax.set_yticks(ticks, names, fontsize=SMALL_FONT)
    ax.set_ylim(-len(idx) + 0.8, 1.0)
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel("activation value (each row scaled to its peak)")
    ax.grid(axis="x", alpha=0.3)
    return ax


def _same_histogram(a: Any, b: Any) -> bool:
    return np.array_equal(np.asarray(a.counts), np.asarray(b.counts)) and np.array_equal(
        np.asarray(a.edges), np.asarray(b.edges)
    )


def _plot_activation_histograms(
    stats: ActivationStats,
    *,
    ax: Axes | None = None,
    max_layers: int = 8,
    title: str | None = None,
) -> Axes:
    """Histograms of the activations of up to ``max_layers`` evenly spaced hidden layers."""
    if ax is None:
        ax = _figure(None, (6.5, 0.9 + 0.45 * min(max_layers, max(len(stats), 1))), None).subplots()
    return _histograms(
        ax,
        list(stats.values()),
        max_layers,
        activation=stats.activation,
        output=getattr(stats, "output_layers", ()),
        title=title,
    )


def _plot_signal_propagation(
    sp: SignalPropagation,
    *,
    axes: Sequence[Axes] | None = None,
    label: str | None = None,
    log: bool = True,
    title: str | None = None,
) -> Sequence[Axes]:
    """Brock et al.'s three panels: squared channel mean, channel variance, residual variance."""
    if axes is None:
        axes = _figure(None, (MAX_WIDTH, 3.6), None).subplots(1, 3)
    fig = _figure(axes[0].figure, (MAX_WIDTH, 3.6), title)
    panels = (
        (sp.mean_sq, "Squared channel mean", "mean over channels"),
        (sp.variance, "Channel variance", "mean over channels"),
        (sp.residual_variance, "Residual-branch variance", "mean over channels"),
    )
    for ax, (values, name, ylabel) in zip(axes, panels, strict=True):
        ax.plot(sp.depth, values, marker="o", ms=3, label=label)
        if log:
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("block (depth)")
        ax.set_ylabel(ylabel)
    if label:
        # One legend for the three panels, below them (the curves fill the panels): a
        # later call drawing into the same axes replaces it with one naming every curve.
        for legend in list(fig.legends):
            legend.remove()
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3),
                   fontsize=SMALL_FONT)  # fmt: skip
    return axes


def _plot_lr_find(res: LRFinder, *, ax: Axes | None = None, log_loss: bool = True) -> Axes:
    """Raw loss, its EMA and its lag-free trend against learning rate, suggestion marked."""
    if ax is None:
        ax = _figure(None, (7.0, 4.2), None).subplots()
    ax.semilogx(res.lrs, res.losses, color="0.7", lw=1, label="loss (raw)")
    ax.semilogx(res.lrs, res.smoothed, color="tab:blue", label="loss (EMA, bias-corrected)")
    ax.semilogx(res.lrs, res.trend, color="tab:orange", label="trend (centred average)")
    ax.axvline(res.suggestion, color="tab:green", ls="--", label=f"suggestion {res.suggestion:.2g}")
    if res.found_edge:
        ax.axvline(res.lr_min, color="tab:red", ls=":", label=f"edge {res.lr_min:.2g}")
    if log_loss:
        ax.set_yscale("log")
    losses = np.asarray(res.losses, float)
    trend = np.asarray(res.trend, float)
    lrs = np.asarray(res.lrs, float)
    # The useful part: from just below the lowest raw loss up to a little above the highest
    # trend before the edge (the starting loss and the descent); what the loss does past
    # the edge (the divergence) runs off the top, and the axes say so.
    before = np.isfinite(trend) & (lrs <= res.lr_min)
    finite = losses[np.isfinite(losses)]
    if finite.size and before.any():
        lo = max(finite.min(), 1e-12) if log_loss else finite.min()
        hi = max(1.3 * trend[before].max(), lo * 1.01 + 1e-9)
        if log_loss:
            ax.set_ylim(lo / 1.15, hi)
        else:
            ax.set_ylim(lo - 0.05 * (hi - lo), hi)
        if finite.max() > hi:
            ax.plot([], [], " ", label="(higher losses, past the edge, off the top)")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss (log scale)" if log_loss else "loss")
    ax.set_title("Learning-rate range test")
    ax.legend(fontsize=SMALL_FONT, loc="lower left")
    return ax


def _plot_init_comparison(
    cmp: InitComparison, *, fig: Figure | None = None, title: str | None = None
) -> Figure:
    """Activation std and back-propagated gradient by layer, one line per initialiser."""
    fig = _figure(fig, (9.0, 3.8), title)
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
    ax1.set_ylabel("std (log scale)")
    ax2.set_title("Back-propagated gradient by layer")
    ax2.set_xlabel("layer")
    ax2.set_ylabel("rms dLoss/dO (log scale)")
    ax1.legend(fontsize=SMALL_FONT)
    ax2.legend(fontsize=SMALL_FONT)
    return fig
