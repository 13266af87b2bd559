"""``gradient_flow``: one report -- gradients, activations and a verdict for every layer.

Verdicts, checked in this order (the first that applies wins); thresholds are module
constants you can read or monkey-patch:

1. ``"exploding"`` if the layer's gradient or activation is not finite.
2. ``"dead"`` if at least :data:`DEAD_FRACTION` (50 %) of its units output exactly zero for
   the whole batch (see :mod:`jdl.analysis.activations`).
3. ``"exploding"`` if the gradient reaching the layer's output, ``rms(dLoss/dO_k)``, is
   above :data:`EXPLODING_RATIO` (1e3) times the one at the output layer: on its way down
   from the loss the back-propagated signal has grown a thousand-fold. This comes before
   saturation: a layer whose gradient explodes needs a smaller initialisation or clipping
   whatever its units do, and saturated units alone make gradients shrink, not grow.
4. ``"saturated"`` if at least :data:`SATURATED_FRACTION` (50 %) of its tanh/sigmoid
   activations sit at their limits (``|tanh| > 0.99``; ``sigmoid < 0.01`` or ``> 0.99``).
   Saturation is the usual *cause* of a vanishing gradient, so it is named before it.
5. ``"vanishing"`` if that ratio is below :data:`VANISHING_RATIO` (1e-3): the signal has
   shrunk a thousand-fold.
6. ``"healthy"`` otherwise.

A layer's activation is ``activation(output)`` of the layer (or of the normalisation layer
called right after it); for a pre-activation residual net (``MLP(residual="pre")``, whose
activation reads the residual stream ``z``, not a layer output) it is ``activation(z)``,
which the model sows as ``"<layer>:preactivation"``.

The ratio compares *activation* gradients (``dLoss/dO_k``, obtained with Flax's
``perturb``), the quantity the chain rule multiplies layer by layer. Where a layer's output
cannot be instrumented (inside a recurrent ``scan``) its parameter-gradient norm is compared
with the output layer's instead.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import flax.linen as nn

from jdl.analysis._probe import probe

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DEAD_FRACTION",
    "EXPLODING_RATIO",
    "SATURATED_FRACTION",
    "VANISHING_RATIO",
    "VERDICTS",
    "GradientFlow",
    "LayerReport",
    "gradient_flow",
]

#: Fraction of units dead (zero for the whole batch) from which a layer is "dead".
DEAD_FRACTION = 0.5
#: Fraction of saturated tanh/sigmoid activations from which a layer is "saturated".
SATURATED_FRACTION = 0.5
#: A layer is "vanishing" when ``rms(dL/dO_k) / rms(dL/dO_output)`` is below this.
VANISHING_RATIO = 1e-3
#: A layer is "exploding" when ``rms(dL/dO_k) / rms(dL/dO_output)`` is above this.
EXPLODING_RATIO = 1e3
#: Every verdict the report can give.
VERDICTS = ("healthy", "vanishing", "exploding", "dead", "saturated")


@dataclasses.dataclass(frozen=True)
class LayerReport:
    """One row of a :class:`GradientFlow` report.

    Attributes:
      name: layer path.
      kind: module class name (``"Dense"``, ``"Conv"``, ``"BatchNorm"``...).
      grad_norm: norm of the parameter gradient.
      param_norm: norm of the parameters.
      update_ratio: ``|update| / |params|`` for the optimiser given (``nan`` without one).
      activation_grad_rms: ``rms(dLoss/dO)`` of the layer output.
      grad_ratio: that, relative to the output layer (the number the verdict reads).
      activation_mean, activation_std: statistics of the layer's activation.
      dead_fraction, saturated_fraction: see :mod:`jdl.analysis.activations`.
      verdict: one of :data:`VERDICTS`.
      counts, edges: activation histogram (``None`` where not captured).
    """

    name: str
    kind: str
    grad_norm: float
    param_norm: float
    update_ratio: float
    activation_grad_rms: float
    grad_ratio: float
    activation_mean: float
    activation_std: float
    dead_fraction: float
    saturated_fraction: float
    verdict: str
    counts: Any = None
    edges: Any = None


def _verdict(grad_ratio: float, grad: float, std: float, dead: float, saturated: float) -> str:
    if not (math.isfinite(grad) and (math.isnan(std) or math.isfinite(std))):
        return "exploding"
    if dead >= DEAD_FRACTION:
        return "dead"
    if not math.isnan(grad_ratio) and (
        not math.isfinite(grad_ratio) or grad_ratio > EXPLODING_RATIO
    ):
        return "exploding"
    if saturated >= SATURATED_FRACTION:
        return "saturated"
    if not math.isnan(grad_ratio) and grad_ratio < VANISHING_RATIO:
        return "vanishing"
    return "healthy"


class GradientFlow:
    """The report of :func:`gradient_flow`.

    Attributes:
      layers: list of :class:`LayerReport`, in forward order.
      loss: the loss on the batch.
      activation: the hidden activation analysed (name) or ``None``.
      output_layers: the layers of the output group (their histograms are of the logits,
        not of an activation; :meth:`plot` leaves them out of the activation panel).

    ``str(report)`` is a table; :meth:`plot` draws it; :meth:`summary` explains it in words.
    """

    def __init__(
        self,
        layers: list[LayerReport],
        loss: float,
        activation: str | None,
        output_layers: tuple[str, ...] = (),
    ) -> None:
        self.layers = layers
        self.loss = loss
        self.activation = activation
        self.output_layers = tuple(output_layers)

    def __getitem__(self, name: str) -> LayerReport:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"No layer {name!r}; layers are {[x.name for x in self.layers]}.")

    @property
    def verdicts(self) -> dict[str, str]:
        """``{layer path: verdict}`` in forward order."""
        return {layer.name: layer.verdict for layer in self.layers}

    def count(self, verdict: str) -> int:
        """How many layers got ``verdict``."""
        return sum(layer.verdict == verdict for layer in self.layers)

    def summary(self) -> str:
        """A few sentences: which layers are unhealthy and the likely reason."""
        n = len(self.layers)
        if n == 0:
            return "No layers with parameters."
        lines = []
        first, last = self.layers[0], self.layers[-1]
        if last.grad_norm > 0:
            lines.append(
                f"Gradient norm, first layer / last layer: {first.grad_norm / last.grad_norm:.3g}."
            )
        reasons = {
            "vanishing": "the back-propagated gradient shrinks more than "
            f"{1 / VANISHING_RATIO:.0f}x on its way down: these layers barely learn",
            "exploding": "the back-propagated gradient grows more than "
            f"{EXPLODING_RATIO:.0f}x (or is not finite): steps will overshoot",
            "dead": "most units output 0 for every example: no gradient passes through them",
            "saturated": "most tanh/sigmoid units sit at their limits where the derivative is "
            "~0: gradients vanish through them",
        }
        for verdict, why in reasons.items():
            names = [x.name for x in self.layers if x.verdict == verdict]
            if names:
                shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
                lines.append(f"{len(names)}/{n} layers {verdict} ({shown}): {why}.")
        if self.count("healthy") == n:
            lines.append(f"All {n} layers healthy.")
        return "\n".join(lines)

    def __str__(self) -> str:
        head = (
            f"{'layer':<22} {'grad norm':>10} {'dL/dO rms':>10} {'ratio':>9} {'act std':>9} "
            f"{'dead':>5} {'sat':>5}  verdict"
        )
        rows = [head, "-" * len(head)]
        for r in self.layers:
            rows.append(
                f"{r.name:<22} {r.grad_norm:>10.3g} {r.activation_grad_rms:>10.3g} "
                f"{r.grad_ratio:>9.2g} {r.activation_std:>9.3g} {r.dead_fraction:>5.0%} "
                f"{r.saturated_fraction:>5.0%}  {r.verdict}"
            )
        rows.append(f"loss {self.loss:.4g}")
        return "\n".join(rows)

    __repr__ = __str__

    def plot(
        self, *, fig: Figure | None = None, max_histograms: int = 6, title: str | None = None
    ) -> Figure:
        """Gradient norms by depth (log scale) and activation histograms of a few layers.

        Args:
          fig: draw into this figure (default: a new one); it gets matplotlib's
            constrained layout, so a ``fig.suptitle`` added later still fits.
          max_histograms: at most this many hidden layers' histograms (evenly spaced).
          title: the figure's title (``fig.suptitle``), laid out above the panels.

        Returns:
          The matplotlib ``Figure``.
        """
        from jdl.analysis.plots import _plot_gradient_flow

        return _plot_gradient_flow(self, fig=fig, max_histograms=max_histograms, title=title)


def gradient_flow(
    model: nn.Module,
    variables: Any,
    batch: dict,
    loss: str | Callable,
    *,
    activation: Any = "auto",
    optimizer: Any = None,
    layers: Any = None,
    train: bool = True,
    seed: int = 0,
    bins: int = 40,
) -> GradientFlow:
    """Gradients, activations and a verdict for every layer, from one compiled pass.

    Args:
      model: any ``flax.linen`` module (jdl's MLP, CNN, RNNClassifier, ResNet, CifarResNet,
        or your own).
      variables: ``{"params": ...}`` (plus ``"batch_stats"``), a ``TrainState`` or ``History``.
      batch: a dict with ``"x"`` and ``"y"`` (and ``"lengths"`` for a model that takes them).
      loss: a jdl loss name or ``(outputs, y) -> scalar``.
      activation: the hidden activation; ``"auto"`` reads ``model.activation`` (jdl MLP/CNN);
        give it for models that don't have that field (e.g. ``"relu"`` for a ResNet).
      optimizer: optional optax transformation (or ``(name, lr)``) for the update ratios.
      layers: restrict the report to these layer paths.
      train: training mode (BatchNorm on batch statistics, running averages untouched).
      seed: dropout seed.
      bins: histogram bins.

    Returns:
      A :class:`GradientFlow` whose ``.layers`` are in forward order; verdicts follow the
      thresholds documented in this module.

    Raises:
      KeyError: for an unknown layer path or a batch without ``"x"``/``"y"``.
      ValueError: if the batch does not fit the model or the loss is not a scalar.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jdl.nn import MLP
      >>> model = MLP(widths=(32,) * 30, num_outputs=2, activation="sigmoid",
      ...             kernel_init="standard")
      >>> v = model.init(jax.random.key(0), jnp.ones((1, 4)), train=False)
      >>> batch = {"x": jax.random.normal(jax.random.key(1), (16, 4)), "y": jnp.arange(16) % 2}
      >>> report = gradient_flow(model, v, batch, "cross_entropy")
      >>> report.layers[0].verdict
      'vanishing'
    """
    result = probe(
        model,
        variables,
        batch,
        loss,
        layers=layers,
        activation=activation,
        train=train,
        seed=seed,
        bins=bins,
        optimizer=optimizer,
    )
    nan = math.nan
    ref_act = next(
        (
            result.act_grad_rms[x.name]
            for x in reversed(result.layers)
            if x.name in result.act_grad_rms
        ),
        nan,
    )
    ref_grad = result.grad_norm[result.layers[-1].name] if result.layers else nan
    reports = []
    for layer in result.layers:
        name = layer.name
        grad = result.grad_norm.get(name, nan)
        agrad = result.act_grad_rms.get(name, nan)
        if not math.isnan(agrad) and ref_act > 0:
            ratio = agrad / ref_act
        elif ref_grad > 0:
            ratio = grad / ref_grad
        else:
            ratio = nan
        std = result.std.get(name, nan)
        dead = result.dead.get(name, 0.0)
        sat = result.saturated.get(name, 0.0)
        pn = result.param_norm[name]
        un = result.update_norm.get(name, nan)
        counts, edges = result.hist.get(name, (None, None))
        reports.append(
            LayerReport(
                name=name,
                kind=layer.kind,
                grad_norm=grad,
                param_norm=pn,
                update_ratio=un / pn if pn > 0 else nan,
                activation_grad_rms=agrad,
                grad_ratio=ratio,
                activation_mean=result.mean.get(name, nan),
                activation_std=std,
                dead_fraction=dead,
                saturated_fraction=sat,
                verdict=_verdict(ratio, grad, std, dead, sat),
                counts=counts,
                edges=edges,
            )
        )
    return GradientFlow(reports, result.loss, result.activation, result.output_layers)
