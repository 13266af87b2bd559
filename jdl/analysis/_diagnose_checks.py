"""The checks of :func:`jdl.analysis.diagnose` (private): each reads the report of an
existing analysis and turns it into :class:`Finding` s with evidence, a verdict and a fix.

No check computes a statistic of its own: the numbers come from :func:`gradient_flow`,
:func:`activation_stats`, :func:`signal_propagation`, :func:`overfit_check`,
:func:`lr_find` and the data checks of :mod:`jdl.train.data_checks`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from jdl.analysis.flow import (
    DEAD_FRACTION,
    EXPLODING_RATIO,
    SATURATED_FRACTION,
    VANISHING_RATIO,
    GradientFlow,
)
from jdl.analysis.overfit import INIT_LOSS_TOLERANCE, output_loss_hints
from jdl.analysis.signal import SignalPropagation

#: Severities, most severe first.
SEVERITIES = ("error", "warning", "info")
#: The checks, in the order their findings are listed within a severity (causes before
#: the symptoms they produce: a label mismatch before everything, the overfit failure last).
CHECKS = (
    "labels",
    "output_loss",
    "dead_units",
    "exploding_gradients",
    "saturation",
    "vanishing_gradients",
    "depth_without_skips",
    "signal_propagation",
    "dead_after_training",
    "learning_rate",
    "overfit",
    "init_loss",
)
#: A network with at least this many weighted layers is checked for depth without skips.
DEEP_LAYERS = 20
#: ``var(out - in) / var(out)`` of a block (median over the network) from which the blocks
#: are taken not to carry their input (no skips): ~2 for uncorrelated input and output,
#: well below 1 when ``out = in + f(in)``.
NO_SKIP_RATIO = 1.0
#: A first-layer gradient ratio outside ``[1 / DEPTH_RATIO, DEPTH_RATIO]`` in a deep plain
#: net is flagged (the signal has grown or shrunk 10x on its way to the input).
DEPTH_RATIO = 10.0


@dataclasses.dataclass(frozen=True)
class Finding:
    """One finding of :func:`jdl.analysis.diagnose`.

    Attributes:
      check: the check's name (one of ``CHECKS``, e.g. ``"saturation"``).
      severity: ``"error"`` (the network will not train well), ``"warning"`` (it may train,
        worse than it could) or ``"info"`` (a passed check, with its numbers).
      verdict: one line: what was found.
      fix: what to change (empty for a passed check).
      evidence: the numbers the verdict rests on (plain floats, ints and strings).
    """

    check: str
    severity: str
    verdict: str
    fix: str = ""
    evidence: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON-ready plain Python values (non-finite floats as ``None``)."""
        return {
            "check": self.check,
            "severity": self.severity,
            "verdict": self.verdict,
            "fix": self.fix,
            "evidence": plain(self.evidence),
        }


def plain(value: Any) -> Any:
    """``value`` with numpy scalars/arrays as Python floats/ints/lists, non-finite as None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in np.asarray(value, dtype=object).tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def names_text(names: list[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (
        f" and {len(names) - limit} more" if len(names) > limit else ""
    )


def lr_text(lr: float | None) -> str:
    return "" if lr is None else f"{lr:g}"


def label_finding(error: ValueError) -> Finding:
    """The targets do not fit the outputs or the loss (the data checks' message)."""
    message = str(error)
    verdict, _, fix = message.partition(" Fix: ")
    return Finding(
        "labels",
        "error",
        f"label/output mismatch: {verdict.rstrip('.')}",
        fix.rstrip(".") + "." if fix else "make the targets fit the model's outputs and loss.",
        {"message": message},
    )


def output_loss_finding(name: str, out0: np.ndarray, y: np.ndarray) -> Finding | None:
    """Outputs squashed for a logits loss, or class targets under a regression loss."""
    classes = np.issubdtype(y.dtype, np.integer) and y.ndim == 1
    lo, hi = float(np.min(out0)), float(np.max(out0))
    evidence = {"loss": name, "output_min": lo, "output_max": hi}
    if out0.ndim == 2 and out0.shape[-1] > 1:
        sums = np.sum(out0, axis=-1)
        evidence["rows_sum_to_1"] = bool(np.allclose(sums, 1.0, atol=1e-3))
    # Small logits of a freshly initialised head also lie in [-1, 1] (or, zero-initialised,
    # in [0, 1]): only outputs strictly inside (0, 1), or rows summing to 1, are squashed.
    squashed = (0.0 < lo and hi < 1.0) or evidence.get("rows_sum_to_1", False)
    hints = [
        h
        for h in output_loss_hints(name, out0, y, classes)
        if "[-1, 1]" not in h and ("[0, 1]" not in h or squashed)
    ]
    if not hints:
        return None
    text = hints[0].removeprefix("output layer / loss mismatch: ")
    why, _, fix = text.rpartition("; ") if "; " in text else (text, "", "")
    if evidence.get("rows_sum_to_1"):
        why += " and every row sums to 1 (a softmax output)"
    return Finding("output_loss", "error", f"output/loss mismatch: {why}", fix, evidence)


def init_loss_finding(name: str, loss: float, expected: float | None, y: np.ndarray) -> Finding:
    """The loss at initialisation against ``ln C`` (classification) or ``var(y)``."""
    if expected is not None:
        ok = abs(loss - expected) <= INIT_LOSS_TOLERANCE * expected
        ev = {"initial_loss": loss, "expected": expected, "baseline": f"ln C for {name}"}
        if ok:
            return Finding(
                "init_loss", "info", f"loss at init {loss:.3g} ~ ln C = {expected:.3g}.", "", ev
            )
        return Finding(
            "init_loss",
            "warning",
            f"loss at init {loss:.3g} is far from ln C = {expected:.3g}: the head starts "
            "over-confident (or squashed)",
            "initialise the output layer with smaller weights (or zeros); check the input scale.",
            ev,
        )
    if name in ("mse", "mae") and np.issubdtype(y.dtype, np.floating):
        var = float(np.var(y))
        ceiling = float(np.mean(np.square(y)))  # what always predicting 0 would score
        ev = {"initial_loss": loss, "target_variance": var, "zero_prediction_loss": ceiling}
        if name == "mse" and loss > (1 + INIT_LOSS_TOLERANCE) * max(ceiling, 1e-12):
            return Finding(
                "init_loss",
                "warning",
                f"loss at init {loss:.3g} is far above the target variance {var:.3g} (and "
                f"{ceiling:.3g}, the loss of predicting 0): the outputs start too large",
                "initialise the output layer with smaller weights; standardise the targets.",
                ev,
            )
        return Finding(
            "init_loss", "info", f"loss at init {loss:.3g}, target variance {var:.3g}.", "", ev
        )
    return Finding(
        "init_loss",
        "info",
        f"loss at init {loss:.3g} (no baseline for {name}).",
        "",
        {"initial_loss": loss},
    )


def deep_plain_normalised(flow: GradientFlow, signal: SignalPropagation | None) -> bool:
    """A deep net with normalisation layers and no skips: its normalised activations are
    healthy, so gradients that explode or vanish come from the depth itself."""
    finding = depth_findings(flow, signal)
    return (
        bool(finding)
        and finding[0].check == "depth_without_skips"
        and any("Norm" in r.kind for r in flow.layers)
    )


def flow_findings(flow: GradientFlow, depth_is_cause: bool = False) -> list[Finding]:
    """Dead, exploding, saturated and vanishing layers at initialisation (exploding and
    vanishing left to the depth finding where ``depth_is_cause``)."""
    out = []
    hidden = [r for r in flow.layers if r.name not in flow.output_layers]
    act = flow.activation or "hidden"

    def layers(verdict: str) -> list[Any]:
        return [r for r in hidden if r.verdict == verdict]

    if dead := layers("dead"):
        worst = max(r.dead_fraction for r in dead)
        out.append(Finding(
            "dead_units", "error",
            f"{worst:.0%} of the {act} units in {names_text([r.name for r in dead])} are dead at "
            f"initialisation (0 for every example; threshold {DEAD_FRACTION:.0%})",
            "standardise the inputs, use He init (kernel_init='he'), a zero/small positive "
            "bias, or leaky_relu.",
            {"layers": [r.name for r in dead], "max_dead_fraction": worst},
        ))  # fmt: skip
    if (exploding := layers("exploding")) and not depth_is_cause:
        worst = max(r.grad_ratio for r in exploding)
        out.append(Finding(
            "exploding_gradients", "error",
            "gradients explode at initialisation: dLoss/dO in "
            f"{names_text([r.name for r in exploding])} is up to {worst:.3g}x the output layer's "
            f"(threshold {EXPLODING_RATIO:g})",
            "use a smaller initialisation (He for ReLU, Glorot/LeCun for tanh), normalisation "
            "layers, or gradient clipping (optax.clip_by_global_norm).",
            {"layers": [r.name for r in exploding], "max_grad_ratio": worst},
        ))  # fmt: skip
    if saturated := layers("saturated"):
        worst = max(r.saturated_fraction for r in saturated)
        out.append(Finding(
            "saturation", "error",
            f"{worst:.0%} of the {act} activations in {names_text([r.name for r in saturated])} "
            f"({len(saturated)}/{len(hidden)} hidden layers) sit at their limits at "
            f"initialisation (threshold {SATURATED_FRACTION:.0%}): their gradient is ~0",
            "the initial weights are too large: use Glorot/LeCun init (kernel_init='glorot' "
            "or 'lecun', not N(0, 1)) and standardise the inputs.",
            {"layers": [r.name for r in saturated], "max_saturated_fraction": worst},
        ))  # fmt: skip
    if (vanishing := layers("vanishing")) and not depth_is_cause:
        worst = min(r.grad_ratio for r in vanishing)
        out.append(Finding(
            "vanishing_gradients", "error",
            f"gradients vanish at initialisation: dLoss/dO in {len(vanishing)}/{len(hidden)} "
            f"hidden layers ({names_text([r.name for r in vanishing])}) is below "
            f"{VANISHING_RATIO:g}x the output layer's (smallest {worst:.3g}): those layers "
            "barely learn",
            "use ReLU with He init instead of saturating activations, fewer layers, "
            "BatchNorm, or skip connections (residual=True).",
            {"layers": [r.name for r in vanishing], "min_grad_ratio": worst},
        ))  # fmt: skip
    return out


def depth_findings(flow: GradientFlow, signal: SignalPropagation | None) -> list[Finding]:
    """Signal propagation of a deep net, and depth without skip connections."""
    weighted = [r for r in flow.layers if "Norm" not in r.kind]
    if signal is None or not weighted:
        return []
    ratios = signal.residual_variance / np.where(signal.variance > 0, signal.variance, np.nan)
    ratios = ratios[np.isfinite(ratios)]
    carried = float(np.median(ratios)) if ratios.size else math.nan
    growth = float(signal.variance[-1] / signal.variance[0]) if signal.variance[0] > 0 else math.nan
    first = weighted[0].grad_ratio
    ev = {
        "weighted_layers": len(weighted),
        "median_residual_to_total_variance": carried,
        "variance_growth": growth,
        "first_layer_grad_ratio": first,
        "exploding_layers": flow.count("exploding"),
        "vanishing_layers": flow.count("vanishing"),
    }
    out = []
    # h + f(h) keeps most of its input (small var(out - in)) and its variance grows.
    skips = math.isfinite(carried) and carried < NO_SKIP_RATIO and growth >= 1.0
    if skips and not (math.isfinite(growth) and growth < 1e6):
        out.append(Finding(
            "signal_propagation", "error",
            f"the residual stream's variance grows {growth:.3g}x over {len(signal.names)} blocks: "
            "the signal explodes with depth",
            "add normalisation (BatchNorm) to the residual branches or scale them down "
            "(e.g. zero-initialise the last norm of each block).",
            ev,
        ))  # fmt: skip
    elif skips:
        out.append(Finding(
            "signal_propagation", "info",
            "skip connections carry the signal: var(block output - input) / var(output) "
            f"{carried:.2g} (median), variance grows {growth:.3g}x over "
            f"{len(signal.names)} points.",
            "", ev,
        ))  # fmt: skip
    elif not (1 / DEPTH_RATIO <= first <= DEPTH_RATIO):
        way = "grows" if first > 1 else "shrinks"
        out.append(Finding(
            "depth_without_skips", "error",
            f"depth without skips: {len(weighted)} weighted layers and no sign of skip "
            f"connections (var(out - in) / var(out) {carried:.2g}, variance growth "
            f"{growth:.3g}x); the gradient {way} to {first:.3g}x the output layer's at the "
            "first layer",
            "add skip connections (residual=True; CifarResNet(plain=False)) and normalisation, "
            "or use fewer layers.",
            ev,
        ))  # fmt: skip
    else:
        out.append(Finding(
            "depth_without_skips", "info",
            f"{len(weighted)} weighted layers without skips; first-layer gradient ratio "
            f"{first:.3g} (within {1 / DEPTH_RATIO:g}..{DEPTH_RATIO:g}).",
            "", ev,
        ))  # fmt: skip
    return out
