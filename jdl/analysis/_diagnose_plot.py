"""The figure of :meth:`jdl.analysis.Diagnosis.plot` (private; matplotlib imported lazily)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from jdl.analysis.flow import EXPLODING_RATIO, VANISHING_RATIO
from jdl.analysis.plots import MAX_WIDTH, SMALL_FONT, _figure, _plot_lr_find, _positive

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _not_run(ax: Axes, title: str, why: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, f"not run:\n{why}", ha="center", va="center", transform=ax.transAxes,
            fontsize=SMALL_FONT, wrap=True)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def _why(diagnosis: Any, stage: str) -> str:
    return diagnosis.skipped.get(stage, "stage not requested")


def plot_diagnosis(
    diagnosis: Any, *, fig: Figure | None = None, title: str | None = None
) -> Figure:
    """Four panels: gradient ratio by layer at init, dead fraction at init and after
    training, the overfit check's loss curve, the lr range test with the given rate."""
    fig = _figure(fig, (MAX_WIDTH, 7.0), title)
    (ax_g, ax_d), (ax_o, ax_l) = fig.subplots(2, 2)
    flow = diagnosis.details.get("gradient_flow")
    if flow is None:
        _not_run(ax_g, "Gradient ratio at initialisation", _why(diagnosis, "init"))
        _not_run(ax_d, "Dead units", _why(diagnosis, "init"))
    else:
        depth = np.arange(len(flow.layers))
        ax_g.semilogy(depth, _positive([r.grad_ratio for r in flow.layers]), "o-", ms=3)
        ax_g.axhline(VANISHING_RATIO, color="tab:blue", ls=":", label="vanishing below")
        ax_g.axhline(EXPLODING_RATIO, color="tab:red", ls=":", label="exploding above")
        ax_g.set_xlabel("layer (input -> output)")
        ax_g.set_ylabel("dLoss/dO rms / output layer's")
        ax_g.set_title("Gradient ratio at initialisation")
        ax_g.legend(fontsize=SMALL_FONT)
        ax_d.plot(depth, [r.dead_fraction for r in flow.layers], "o-", ms=3, label="at init")
        after = diagnosis.details.get("activations_after")
        if after is not None:
            index = {r.name: i for i, r in enumerate(flow.layers)}
            pts = sorted((index[n], s.dead_fraction) for n, s in after.items() if n in index)
            if pts:
                ax_d.plot(*zip(*pts, strict=True), "s--", ms=3, label="after the overfit run")
        ax_d.set_ylim(-0.05, 1.05)
        for ax in (ax_g, ax_d):
            ax.xaxis.get_major_locator().set_params(integer=True)
        ax_d.set_xlabel("layer (input -> output)")
        ax_d.set_ylabel("fraction of dead units")
        ax_d.set_title("Dead units")
        ax_d.legend(fontsize=SMALL_FONT)
    overfit = diagnosis.details.get("overfit")
    if overfit is None:
        _not_run(ax_o, "Overfit check", _why(diagnosis, "overfit"))
    else:
        ax_o.semilogy(np.arange(1, len(overfit.losses) + 1), _positive(overfit.losses))
        ax_o.set_xlabel("step")
        ax_o.set_ylabel("loss (log scale)")
        status = "passed" if overfit.passed else "FAILED"
        ax_o.set_title(f"Overfit check ({status})")
    finder = diagnosis.details.get("lr_find")
    if finder is None:
        _not_run(ax_l, "Learning-rate range test", _why(diagnosis, "lr_find"))
    else:
        _plot_lr_find(finder, ax=ax_l)
        lr = next((f.evidence.get("learning_rate") for f in diagnosis.findings
                   if f.evidence.get("learning_rate") is not None), None)  # fmt: skip
        if lr is not None:
            ax_l.axvline(lr, color="black", ls="-", lw=1.5, label=f"given {lr:.2g}")
            ax_l.legend(fontsize=SMALL_FONT, loc="lower left")
    return fig
