"""The training checks of :func:`jdl.analysis.diagnose` (private): units that died in the
overfit run, the given learning rate against :func:`lr_find`, the overfit check itself."""

from __future__ import annotations

import math

from jdl.analysis._diagnose_checks import Finding, lr_text, names_text
from jdl.analysis.activations import ActivationStats
from jdl.analysis.flow import DEAD_FRACTION, GradientFlow
from jdl.analysis.lr_range import LRFinder
from jdl.analysis.overfit import OverfitResult

#: A dead fraction after training at least this much above the one at initialisation counts
#: as units that died during training.
DIED_MARGIN = 0.25
#: The given learning rate is "too high" above ``HIGH_LR_FACTOR x`` lr_find's edge (or when
#: the overfit run diverged or killed units).
HIGH_LR_FACTOR = 10.0
#: The given learning rate is "too low" below ``suggestion / LOW_LR_FACTOR`` of lr_find.
LOW_LR_FACTOR = 100.0


def died_layers(flow: GradientFlow, after: ActivationStats) -> dict[str, tuple[float, float]]:
    """``{layer: (dead at init, dead after training)}`` for hidden layers whose units died."""
    before = {r.name: r.dead_fraction for r in flow.layers}
    died = {}
    for name, s in after.items():
        if name in after.output_layers:
            continue
        b = before.get(name, 0.0)
        if s.dead_fraction >= DEAD_FRACTION and s.dead_fraction >= b + DIED_MARGIN:
            died[name] = (b, s.dead_fraction)
    return died


def _finder_evidence(finder: LRFinder | None) -> dict[str, float | str]:
    if finder is None:
        return {}
    return {
        "lr_find_suggestion": finder.suggestion,
        "lr_find_edge": finder.lr_min,
        "lr_find_outcome": finder.outcome,
    }


def _lower(finder: LRFinder | None) -> str:
    if finder is not None and finder.found_edge:
        return f"lower the learning rate to ~{finder.suggestion:.2g} (lr_find)"
    return "lower the learning rate 10x"


def dead_after_training_finding(
    overfit: OverfitResult,
    died: dict[str, tuple[float, float]],
    finder: LRFinder | None,
    lr: float | None,
    activation: str | None,
) -> Finding:
    """Units that died in the overfit run (``died`` from :func:`died_layers`)."""
    worst = max(a for _, a in died.values())
    act = (activation or "hidden").replace("relu", "ReLU")
    at = f" with lr {lr_text(lr)}" if lr is not None else ""
    cause = f": the learning rate {lr_text(lr)} is too high" if lr is not None else ""
    return Finding(
        "dead_after_training", "error",
        f"{worst:.0%} of the {act} units in {names_text(list(died))} are dead after "
        f"{overfit.steps} steps{at}{cause} (loss {overfit.initial_loss:.3g} -> "
        f"{overfit.final_loss:.3g})",
        f"{_lower(finder)}, or use leaky_relu.",
        {"layers": {k: {"init": b, "after": a} for k, (b, a) in died.items()},
         "learning_rate": lr, "final_loss": overfit.final_loss, **_finder_evidence(finder)},
    )  # fmt: skip


def learning_rate_finding(
    overfit: OverfitResult, finder: LRFinder | None, lr: float
) -> Finding | None:
    """The given learning rate: too high (diverged, or 10x past lr_find's edge), too low
    (100x below its suggestion), or fine."""
    ev = {"learning_rate": lr, "initial_loss": overfit.initial_loss,
          "final_loss": overfit.final_loss, **_finder_evidence(finder)}  # fmt: skip
    diverged = not math.isfinite(overfit.final_loss) or overfit.final_loss > overfit.initial_loss
    edge = finder is not None and finder.found_edge
    if diverged or (edge and lr > HIGH_LR_FACTOR * finder.lr_min):
        why = "the loss diverged in the overfit run" if diverged else (
            f"over {HIGH_LR_FACTOR:g}x the edge of stability found by lr_find "
            f"({finder.lr_min:.2g})"
        )  # fmt: skip
        severity = "warning" if overfit.passed else "error"
        return Finding(
            "learning_rate", severity, f"learning rate {lr_text(lr)} is too high: {why}",
            f"{_lower(finder)}.", ev,
        )  # fmt: skip
    if edge and lr < finder.suggestion / LOW_LR_FACTOR:
        moved = overfit.final_loss <= 0.9 * overfit.initial_loss
        return Finding(
            "learning_rate", "warning" if moved else "error",
            f"learning rate {lr_text(lr)} is too low: {finder.suggestion / lr:.3g}x below "
            f"lr_find's suggestion (loss {overfit.initial_loss:.3g} -> "
            f"{overfit.final_loss:.3g} in {overfit.steps} steps)",
            f"raise the learning rate to ~{finder.suggestion:.2g} (lr_find).", ev,
        )  # fmt: skip
    if finder is None:
        return None
    return Finding("learning_rate", "info", f"learning rate {lr_text(lr)}; {finder}.", "", ev)


def overfit_finding(overfit: OverfitResult, examples: int) -> Finding:
    """Whether the few examples were memorised (with the overfit check's first hint)."""
    ev = {"initial_loss": overfit.initial_loss, "final_loss": overfit.final_loss,
          "accuracy": overfit.accuracy, "steps": overfit.steps, "examples": examples}  # fmt: skip
    loss = f"loss {overfit.initial_loss:.3g} -> {overfit.final_loss:.3g} in {overfit.steps} steps"
    if overfit.passed:
        return Finding("overfit", "info", f"memorised {examples} examples: {loss}.", "", ev)
    hints = [h for h in overfit.hints if not h.startswith("the loss at initialisation")]
    return Finding(
        "overfit", "error",
        f"cannot memorise {examples} examples: {loss}"
        + ("" if overfit.accuracy is None else f", accuracy {overfit.accuracy:.0%}"),
        hints[0] if hints else "see the findings above.",
        {**ev, "hints": hints},
    )  # fmt: skip


def training_findings(
    overfit: OverfitResult,
    died: dict[str, tuple[float, float]],
    finder: LRFinder | None,
    lr: float | None,
    activation: str | None,
    examples: int,
) -> list[Finding]:
    """Units that died in training (which names the learning rate), else the learning
    rate against lr_find; and the overfit check."""
    out = []
    if died:
        out.append(dead_after_training_finding(overfit, died, finder, lr, activation))
    elif lr is not None and (f := learning_rate_finding(overfit, finder, lr)):
        out.append(f)
    out.append(overfit_finding(overfit, examples))
    return out
