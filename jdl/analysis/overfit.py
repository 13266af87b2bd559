"""``overfit_check``: can the model memorise a handful of examples? ("overfit first")

Before training a model on a whole dataset, make sure it can drive the loss to ~0 on three
or four examples: a correct model with a correct loss and a sane learning rate always can.
If it can't, something is wired wrong, and it is much cheaper to find out now.

The check trains with a compiled ``lax.scan`` (:func:`jdl.analysis.scan_fit`) and passes when
the final loss is at most ``rel_tolerance x`` the initial loss (default 1 %) or below
``abs_tolerance`` (1e-3), and -- for class-index targets -- every example is classified
correctly. It also compares the loss at initialisation with its expected value: a softmax
head over ``C`` balanced classes should start near ``ln C`` (``ln 2`` for binary
cross-entropy); a start more than 50 % away from it is flagged (the head's initial scale is
off: over-confident random predictions cost extra steps and can kill units).

Hints on failure (each only when its evidence is there):

- *output layer / loss mismatch*: cross-entropy losses take logits, but all outputs lie in
  ``[0, 1]`` (or ``[-1, 1]``) -- an output sigmoid/softmax/tanh is squashing them; or a
  regression loss (``mse``/``mae``) is fed one-hot class targets;
- *learning rate*: the loss became NaN/inf or ended above where it started (too high), or
  fell by less than 10 % (too low, or gradients don't arrive -- see ``gradient_flow``);
- *dead units*: layers where at least 90 % of the ReLUs output zero for all the examples.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdl import losses as losses_lib
from jdl.analysis._layers import apply_model, batch_extras, batch_xy
from jdl.analysis.flow import gradient_flow
from jdl.analysis.scanning import initial_state, scan_fit
from jdl.train import TrainState, as_optimizer

__all__ = ["OverfitResult", "overfit_check"]

#: Dead fraction from which a layer is named in the "dead units" hint (higher than the
#: report's 50 %: with a handful of examples a live unit is often silent on all of them).
DEAD_HINT_FRACTION = 0.9
#: Relative deviation of the initial loss from ``ln C`` beyond which the head is flagged.
INIT_LOSS_TOLERANCE = 0.5


@dataclasses.dataclass
class OverfitResult:
    """Result of :func:`overfit_check`.

    Attributes:
      passed: whether the examples were memorised.
      initial_loss: loss at initialisation.
      expected_initial_loss: ``ln C`` for a balanced ``C``-class softmax head (``ln 2`` for
        binary cross-entropy), ``None`` for other losses.
      initial_loss_ok: whether the initial loss is within 50 % of the expected value
        (``None`` when there is none).
      final_loss: loss after training.
      accuracy: final accuracy on the examples (``None`` for non-class targets).
      steps: number of steps trained.
      losses: the loss of every step.
      hints: likely causes, most likely first (empty when passed).
      variables: the trained variables.
    """

    passed: bool
    initial_loss: float
    expected_initial_loss: float | None
    initial_loss_ok: bool | None
    final_loss: float
    accuracy: float | None
    steps: int
    losses: np.ndarray
    hints: list[str]
    variables: Any = dataclasses.field(repr=False, default=None)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        status = "PASSED" if self.passed else "FAILED"
        lines = [
            f"overfit check {status}: loss {self.initial_loss:.4g} -> {self.final_loss:.4g} in "
            f"{self.steps} steps"
            + ("" if self.accuracy is None else f", accuracy {self.accuracy:.0%}")
        ]
        if self.expected_initial_loss is not None:
            flag = "ok" if self.initial_loss_ok else "FAR FROM EXPECTED"
            lines.append(
                f"initial loss {self.initial_loss:.4g} vs expected "
                f"{self.expected_initial_loss:.4g} ({flag})"
            )
        lines += [f"hint: {h}" for h in self.hints]
        return "\n".join(lines)

    __repr__ = __str__


def _loss_name(loss: Any) -> str:
    if isinstance(loss, str):
        return loss
    return getattr(loss, "__name__", "custom")


def overfit_check(
    model: nn.Module,
    batch: dict,
    loss: str | Callable = "cross_entropy",
    *,
    optimizer: optax.GradientTransformation | tuple[str, float] | None = None,
    steps: int = 300,
    rel_tolerance: float = 0.01,
    abs_tolerance: float = 1e-3,
    num_classes: int | None = None,
    variables: Any = None,
    seed: int = 0,
) -> OverfitResult:
    """Try to memorise a few examples; pass/fail, the loss reached and hints on failure.

    Args:
      model: any ``flax.linen`` module taking ``(x, *, train)``.
      batch: a dict with ``"x"`` and ``"y"`` (and ``"lengths"`` for a model that takes them)
        holding a handful of examples (3-10).
      loss: a jdl loss name or function.
      optimizer: an optax transformation or a ``(name, learning_rate)`` pair (see
        :func:`jdl.train.as_optimizer`); default Adam with learning rate 1e-2.
      steps: number of full-batch steps.
      rel_tolerance: pass when ``final <= rel_tolerance * initial`` ...
      abs_tolerance: ... or ``final <= abs_tolerance``.
      num_classes: number of classes for the ``ln C`` check; default: the model's output
        width for ``cross_entropy`` (2 for binary cross-entropy).
      variables: start from these variables (default: a fresh initialisation).
      seed: initialisation seed.

    Returns:
      An :class:`OverfitResult` (truthy when passed); ``print`` it for a summary.

    Example:
      >>> import numpy as np
      >>> from jdl.nn import MLP
      >>> x = np.random.default_rng(0).normal(size=(3, 8)).astype("float32")
      >>> result = overfit_check(MLP(widths=(32,), num_outputs=10), {"x": x, "y": np.arange(3)})
      >>> result.passed
      True
    """
    x, y = batch_xy(batch)
    extras = batch_extras(model, batch)
    tx = as_optimizer(optimizer) if optimizer is not None else optax.adam(1e-2)
    run = scan_fit(
        model,
        {"x": x, "y": y, **extras},
        loss,
        optimizer=tx,
        steps=steps,
        seed=seed,
        variables=variables,
        metrics=(),
    )
    losses = run.losses
    initial = float(losses[0])
    final = float(run.metrics["loss"])
    name = _loss_name(loss)
    classes = jnp.issubdtype(y.dtype, jnp.integer) and y.ndim == 1
    state = run.state

    @jax.jit
    def outputs(v: dict[str, Any]) -> jax.Array:
        return apply_model(state.model, v, x, train=False, extras=extras)[0]

    first_vars = initial_state(model, optax.identity(), x, seed, variables).variables
    out0 = np.asarray(outputs(first_vars))
    out1 = np.asarray(outputs(state.variables))
    accuracy = None
    if classes and out1.ndim == 2 and out1.shape[-1] > 1:
        accuracy = float(np.mean(np.argmax(out1, -1) == np.asarray(y)))

    expected = expected_initial_loss(name, out0.shape, num_classes)
    init_ok = None
    if expected is not None:
        init_ok = abs(initial - expected) <= INIT_LOSS_TOLERANCE * expected

    passed = math.isfinite(final) and (final <= rel_tolerance * initial or final <= abs_tolerance)
    if accuracy is not None:
        passed = passed and accuracy == 1.0

    hints: list[str] = []
    if not passed:
        arrays = {"x": x, "y": y, **extras}
        hints = _hints(name, loss, out0, y, losses, initial, final, classes, state, arrays)
    if init_ok is False:
        hints.append(
            f"the loss at initialisation is {initial:.3g}, far from the expected "
            f"ln C = {expected:.3g}: the output layer starts over-confident (or squashed); "
            "initialise the head with smaller weights (or zeros)."
        )
    return OverfitResult(
        passed=bool(passed),
        initial_loss=initial,
        expected_initial_loss=expected,
        initial_loss_ok=init_ok,
        final_loss=final,
        accuracy=accuracy,
        steps=steps,
        losses=losses,
        hints=hints,
        variables=state.variables,
    )


def expected_initial_loss(
    name: str, output_shape: tuple[int, ...], num_classes: int | None = None
) -> float | None:
    """The loss a balanced classification head should start near: ``ln C`` for
    ``cross_entropy`` over ``C`` classes (default: the output width), ``ln 2`` for
    ``binary_cross_entropy``; ``None`` for other losses."""
    if name == "cross_entropy":
        c = num_classes or (output_shape[-1] if len(output_shape) >= 2 else None)
        return math.log(c) if c and c > 1 else None
    if name == "binary_cross_entropy":
        return math.log(2)
    return None


def output_loss_hints(name: str, out0: np.ndarray, y: Any, classes: bool) -> list[str]:
    """The output layer / loss mismatches that the outputs at initialisation show.

    Args:
      name: the loss name.
      out0: the model's outputs at initialisation.
      y: the targets.
      classes: whether ``y`` holds class indices.

    Returns:
      The hints (empty when the outputs fit the loss).
    """
    hints = []
    if name in ("cross_entropy", "binary_cross_entropy"):
        lo, hi = float(np.min(out0)), float(np.max(out0))
        if lo >= 0.0 and hi <= 1.0:
            hints.append(
                f"output layer / loss mismatch: every output lies in [0, 1] ({lo:.3g}..{hi:.3g})"
                f" -- the model squashes its outputs (sigmoid/softmax), but {name} expects raw "
                "logits; remove the output activation."
            )
        elif lo >= -1.0 and hi <= 1.0:
            hints.append(
                f"output layer / loss mismatch: every output lies in [-1, 1] -- a tanh (or "
                f"similar) output activation limits the logits {name} needs; remove it."
            )
    elif name in ("mse", "mae"):
        yy = np.asarray(y)
        one_hot = yy.ndim == 2 and set(np.unique(yy)).issubset({0, 1}) and yy.shape[-1] > 1
        if one_hot or classes:
            squashed = float(np.min(out0)) >= 0 and float(np.max(out0)) <= 1
            hints.append(
                f"output layer / loss mismatch: the targets look like classes but the loss "
                f"is {name}"
                + (" on squashed (sigmoid) outputs" if squashed else "")
                + "; use logits with cross_entropy for classification."
            )
    return hints


def _hints(
    name: str,
    loss: str | Callable,
    out0: np.ndarray,
    y: jax.Array,
    losses: np.ndarray,
    initial: float,
    final: float,
    classes: bool,
    state: TrainState,
    arrays: dict[str, jax.Array],
) -> list[str]:
    hints = output_loss_hints(name, out0, y, classes)
    finite = np.isfinite(losses)
    if not finite.all() or not math.isfinite(final):
        hints.append(
            "learning rate too high: the loss became NaN/inf; lower it 10x (or check the "
            "inputs for NaN/huge values)."
        )
    elif final > initial:
        hints.append("learning rate too high: the loss ended above where it started; lower it.")
    elif final > 0.9 * initial:
        hints.append(
            f"learning rate too low (or no gradient arrives): the loss only went "
            f"{initial:.3g} -> {final:.3g}; raise it 10x, and check gradient_flow for "
            "vanishing/dead layers."
        )
    try:
        report = gradient_flow(
            state.model, state.variables, arrays, losses_lib.get(loss), train=False
        )
    except Exception:  # pragma: no cover - diagnostics must never hide the result
        report = None
    if report is not None:
        dead = [r.name for r in report.layers if r.dead_fraction >= DEAD_HINT_FRACTION]
        if dead:
            hints.append(
                f"dead units: most ReLUs in {', '.join(dead[:4])} output 0 for every example; "
                "lower the learning rate, use He init or a leaky activation."
            )
        vanishing = [r.name for r in report.layers if r.verdict in ("vanishing", "saturated")]
        if vanishing and not dead:
            hints.append(
                f"gradients vanish/saturate in {', '.join(vanishing[:4])}: check the "
                "initialisation (He for ReLU, Glorot for tanh) or add BatchNorm/skips."
            )
    if not hints:
        hints.append("no obvious cause found: train longer (steps=) or raise the learning rate.")
    return hints
