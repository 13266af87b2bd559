"""``diagnose``: "why doesn't my network train?" in one call.

:func:`diagnose` runs, on a sample of the data, every analysis of :mod:`jdl.analysis` that
applies to the model and the data, and turns their reports into a list of findings, most
severe first, each with its evidence, a one-line verdict and a fix:

1. **labels** -- the targets against the model's outputs and the loss, before anything runs
   (the checks :func:`jdl.fit` applies: class labels in ``[0, num_outputs)``, one-hot
   widths, targets in ``[0, 1]`` for binary cross-entropy, shapes). A mismatch is reported
   and every check that needs the loss is skipped.
2. **output_loss** -- outputs already in ``[0, 1]`` (a softmax/sigmoid output) for a logits
   loss, or class targets under a regression loss (:func:`overfit_check`'s hints).
3. **init_loss** -- the loss at initialisation against ``ln C`` (classification) or the
   target variance (regression).
4. **dead_units / exploding_gradients / saturation / vanishing_gradients** -- the layers
   :func:`gradient_flow` gives those verdicts at initialisation.
5. **depth_without_skips / signal_propagation** -- for nets of at least 20 weighted layers:
   :func:`signal_propagation` tells whether blocks carry their input (skips) and whether the
   residual stream explodes; a deep plain net whose first-layer gradient is 10x off the
   output layer's is flagged.
6. **overfit / dead_after_training** -- :func:`overfit_check` on a few examples with *your*
   optimiser and learning rate, then :func:`activation_stats` of the trained model: units
   that died during training.
7. **learning_rate** -- :func:`lr_find` with your optimiser: a learning rate past the edge of
   stability, or 100x below the suggestion, is flagged and the suggestion given.

Severities: ``"error"`` (the network will not train, or badly), ``"warning"`` (it trains,
worse than it could), ``"info"`` (a passed check with its numbers).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import jax
import numpy as np
import optax

from jdl.analysis import _diagnose_checks as checks_lib
from jdl.analysis import _diagnose_training as training_lib
from jdl.analysis._diagnose_checks import CHECKS, SEVERITIES, Finding
from jdl.analysis._layers import apply_model, batch_extras
from jdl.analysis.activations import activation_stats
from jdl.analysis.flow import GradientFlow, gradient_flow
from jdl.analysis.lr_range import LRFinder, lr_find
from jdl.analysis.overfit import OverfitResult, _loss_name, expected_initial_loss, overfit_check
from jdl.analysis.scanning import _as_arrays, initial_state
from jdl.analysis.signal import signal_propagation
from jdl.train import as_optimizer
from jdl.train.data_checks import check_arrays, check_targets, model_output

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["STAGES", "Diagnosis", "Finding", "diagnose"]

#: The stages :func:`diagnose` can run (``stages=``), in order.
STAGES = ("data", "init", "depth", "overfit", "lr_find")


class Diagnosis:
    """The report of :func:`diagnose`.

    Attributes:
      findings: :class:`Finding` s, most severe first (within a severity, causes before the
        symptoms they produce).
      skipped: ``{stage: reason}`` for the stages that did not run.
      details: the analyses' own reports (``"gradient_flow"``, ``"activations_after"``,
        ``"overfit"``, ``"lr_find"``, ``"signal"``), for :meth:`plot`; not serialised.

    ``print(diagnosis)`` is a text report; ``to_dict`` / ``to_json`` serialise it.
    """

    def __init__(
        self,
        findings: Sequence[Finding],
        skipped: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        order = {c: i for i, c in enumerate(CHECKS)}
        for f in findings:
            if f.severity not in SEVERITIES:
                raise ValueError(f"severity must be one of {SEVERITIES}; got {f.severity!r}.")
        self.findings = sorted(
            findings,
            key=lambda f: (SEVERITIES.index(f.severity), order.get(f.check, len(order))),
        )
        self.skipped = dict(skipped or {})
        self.details = dict(details or {})

    @property
    def healthy(self) -> bool:
        """Whether no finding is of severity ``"error"`` or ``"warning"``."""
        return not self.problems

    ok = healthy

    @property
    def problems(self) -> list[Finding]:
        """The findings of severity ``"error"`` or ``"warning"``, most severe first."""
        return [f for f in self.findings if f.severity != "info"]

    @property
    def top(self) -> Finding | None:
        """The most severe finding (``None`` when there are none)."""
        return self.findings[0] if self.findings else None

    def __getitem__(self, check: str) -> Finding:
        for f in self.findings:
            if f.check == check:
                return f
        raise KeyError(f"No finding {check!r}; found {[f.check for f in self.findings]}.")

    def __contains__(self, check: object) -> bool:
        return any(f.check == check for f in self.findings)

    def __str__(self) -> str:
        errors = sum(f.severity == "error" for f in self.findings)
        warns = sum(f.severity == "warning" for f in self.findings)
        head = (
            "Diagnosis: healthy (no errors or warnings)"
            if self.healthy
            else f"Diagnosis: {errors} error(s), {warns} warning(s)"
        )
        lines = [head]
        for f in self.findings:
            lines.append(f"[{f.severity.upper():<7}] {f.check}: {f.verdict}")
            if f.fix:
                lines.append(f"          fix: {f.fix}")
            shown = {
                k: v
                for k, v in f.evidence.items()
                if not isinstance(v, (list, dict)) and not (isinstance(v, str) and len(v) > 40)
            }
            if shown:
                lines.append("          evidence: " + ", ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in shown.items()
                ))  # fmt: skip
        for stage, why in self.skipped.items():
            lines.append(f"[SKIPPED] {stage}: {why}")
        return "\n".join(lines)

    __repr__ = __str__

    def to_dict(self) -> dict[str, Any]:
        """The report as plain Python values (``json.dumps``-ready)."""
        return {
            "healthy": self.healthy,
            "findings": [f.to_dict() for f in self.findings],
            "skipped": dict(self.skipped),
        }

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as JSON text (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnosis:
        """A report from :meth:`to_dict`'s output (without the analyses' details).

        Raises:
          KeyError: if ``data`` has no ``"findings"``.
        """
        if not isinstance(data, dict) or "findings" not in data:
            raise KeyError(f'expected a dict with "findings"; got {type(data).__name__}.')
        return cls([Finding(**f) for f in data["findings"]], data.get("skipped"))

    def plot(self, *, fig: Figure | None = None, title: str | None = None) -> Figure:
        """One figure, four panels: gradient ratios and dead fractions by layer, the overfit
        loss curve and the learning-rate range test (panels of stages that did not run say
        so).

        Args:
          fig: draw into this figure (default: a new one, constrained layout).
          title: the figure's title (``fig.suptitle``).

        Returns:
          The matplotlib ``Figure``.
        """
        from jdl.analysis._diagnose_plot import plot_diagnosis

        return plot_diagnosis(self, fig=fig, title=title)


def _optimizer(optimizer: Any, learning_rate: float | None) -> tuple[Any, float | None, Any]:
    """``(transformation, learning rate or None, what lr_find can take or None)``."""
    if isinstance(optimizer, tuple) and len(optimizer) == 2 and isinstance(optimizer[0], str):
        if learning_rate is not None:
            raise ValueError(
                f"optimizer={optimizer!r} already sets the learning rate; got also "
                f"learning_rate={learning_rate}."
            )
        return as_optimizer(optimizer), float(optimizer[1]), optimizer[0]
    if isinstance(optimizer, str) or (
        callable(optimizer) and not isinstance(optimizer, optax.GradientTransformation)
    ):
        if learning_rate is None:
            raise ValueError(
                f"optimizer={optimizer!r} needs learning_rate= (the one to diagnose); got none."
            )
        return as_optimizer(optimizer, learning_rate), float(learning_rate), optimizer
    return as_optimizer(optimizer, learning_rate), None, None


def _sample(arrays: dict[str, np.ndarray], n: int, seed: int) -> dict[str, np.ndarray]:
    idx = np.random.default_rng(seed).permutation(len(arrays["x"]))[:n]
    return {k: v[idx] for k, v in arrays.items()}


def _after_training(
    model: nn.Module,
    batch: dict[str, np.ndarray],
    result: OverfitResult,
    examples: int,
    flow: GradientFlow,
    finder: LRFinder | None,
    lr: float | None,
    activation: Any,
    details: dict[str, Any],
) -> list[Finding]:
    """The findings of the overfit run: activation statistics of the trained model on the
    whole sample (units that died), the learning rate against lr_find, the check itself."""
    after = activation_stats(model, result.variables, batch, activation=activation)
    details.update(overfit=result, activations_after=after)
    died = training_lib.died_layers(flow, after)
    return training_lib.training_findings(result, died, finder, lr, flow.activation, examples)


def diagnose(
    model: nn.Module,
    data: Any,
    loss: str | Callable = "cross_entropy",
    *,
    optimizer: Any = ("adam", 1e-3),
    learning_rate: float | None = None,
    variables: Any = None,
    batch_size: int = 256,
    overfit_examples: int = 8,
    overfit_steps: int = 300,
    lr_find_steps: int = 100,
    stages: Sequence[str] = STAGES,
    activation: Any = "auto",
    seed: int = 0,
) -> Diagnosis:
    """Run every analysis that applies and say why the network does (not) train.

    Args:
      model: any ``flax.linen`` module taking ``(x, *, train)``.
      data: ``{"x", "y"}`` arrays, an ``(x, y)`` pair or an in-memory data source.
      loss: a jdl loss name or function.
      optimizer: what is diagnosed: a ``(name, learning_rate)`` pair, a name or a function
        ``learning_rate -> transformation`` with ``learning_rate=``, or an optax
        transformation (then lr_find, which must set the rate, is skipped).
      learning_rate: the learning rate, for a name or function ``optimizer``.
      variables: start from these variables (default: a fresh initialisation from ``seed``).
      batch_size: at most this many examples (a random sample) for every analysis.
      overfit_examples: examples the overfit check must memorise.
      overfit_steps: steps of the overfit check.
      lr_find_steps: steps of the learning-rate range test.
      stages: the stages to run, a subset of :data:`STAGES` (``"depth"`` runs only for
        nets of at least 20 weighted layers). The targets are always checked against the
        outputs first; ``"data"`` adds the output/loss check.
      activation: the hidden activation (``"auto"`` reads ``model.activation``).
      seed: initialisation and sampling seed.

    Returns:
      A :class:`Diagnosis`: ``print`` it; ``.healthy``, ``.findings``, ``.plot()``.

    Raises:
      TypeError: for data that is not arrays/a source, or non-numeric inputs or targets.
      KeyError: for a dict without ``"x"``/``"y"``.
      ValueError: for unknown stages, inputs that do not fit the model, or an optimizer name
        without a learning rate.

    Example:
      >>> import numpy as np
      >>> from jdl.nn import MLP
      >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
      >>> d = diagnose(MLP(widths=(16,), num_outputs=3), {"x": x, "y": np.arange(64) % 5},
      ...              stages=("data",))
      >>> d.top.check
      'labels'
    """
    unknown = [s for s in stages if s not in STAGES]
    if unknown or isinstance(stages, str):
        raise ValueError(f"stages must be a subset of {STAGES}; got {stages!r}.")
    if isinstance(data, (str, bytes)) or data is None:
        raise TypeError(
            f'data must be {{"x", "y"}} arrays, an (x, y) pair or a data source; got '
            f"{type(data).__name__}."
        )
    tx, lr, finder_opt = _optimizer(optimizer, learning_rate)
    arrays = _sample(_as_arrays(data), batch_size, seed)
    check_arrays(arrays, "data", True)  # numbers only, finite: raised at the boundary
    x, y = arrays["x"], arrays["y"]
    output, _ = model_output(model, x[:1], "data")  # inputs that do not fit: raised here
    name = _loss_name(loss)
    findings: list[Finding] = []
    skipped: dict[str, str] = {}
    details: dict[str, Any] = {}
    try:
        check_targets(y, output, loss, "data", True)
    except ValueError as err:
        findings.append(checks_lib.label_finding(err))
        reason = "skipped: the targets do not fit the outputs (see labels)"
        return Diagnosis(findings, {s: reason for s in stages if s != "data"}, details)

    variables = initial_state(model, optax.identity(), x, seed, variables).variables
    batch = dict(arrays)
    extras = batch_extras(model, batch)
    if "data" in stages:
        out0 = jax.device_get(
            jax.jit(lambda v, xx: apply_model(model, v, xx, train=False, extras=extras)[0])(
                variables, x
            )
        )
        if isinstance(out0, (np.ndarray, jax.Array)) and (f := checks_lib.output_loss_finding(
            name, np.asarray(out0), y
        )):  # fmt: skip
            findings.append(f)
    flow = None
    if {"init", "depth", "overfit"} & set(stages):
        flow = gradient_flow(model, variables, batch, loss, activation=activation, train=True)
        details["gradient_flow"] = flow
    signal = None
    if "depth" in stages:
        weighted = [r for r in flow.layers if "Norm" not in r.kind]
        if len(weighted) >= checks_lib.DEEP_LAYERS:
            signal = signal_propagation(model, variables, batch, train=True, seed=seed)
            details["signal"] = signal
            findings += checks_lib.depth_findings(flow, signal)
        else:
            skipped["depth"] = f"{len(weighted)} weighted layers (< {checks_lib.DEEP_LAYERS})"
    if "init" in stages:
        expected = expected_initial_loss(name, tuple(output.shape))
        findings.append(checks_lib.init_loss_finding(name, flow.loss, expected, y))
        findings += checks_lib.flow_findings(flow, checks_lib.deep_plain_normalised(flow, signal))
    finder = None
    if "lr_find" in stages:
        if finder_opt is None:
            skipped["lr_find"] = "the optimizer is a ready transformation: give it as a name"
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # no edge: the finding says so
                finder = lr_find(
                    model, batch, loss, optimizer=finder_opt, steps=lr_find_steps,
                    variables=variables, seed=seed,
                )  # fmt: skip
            details["lr_find"] = finder
    if "overfit" in stages:
        tiny = {k: v[:overfit_examples] for k, v in batch.items()}
        result = overfit_check(
            model, tiny, loss, optimizer=tx, steps=overfit_steps, variables=variables, seed=seed
        )
        findings += _after_training(
            model, batch, result, len(tiny["x"]), flow, finder, lr, activation, details
        )
    elif finder is not None:
        skipped["learning_rate"] = "needs the overfit stage (training with the given rate)"
    return Diagnosis(findings, skipped, details)
