"""``fit(debug=True)``: stop at the first step that produced NaN or inf, and name its cause.

With ``debug=True`` the compiled train step also counts, on the device, the non-finite
values of its input batch, of every layer's output, of the loss, of every gradient and of
every updated variable (:mod:`jdl.train.nonfinite`). Those counts travel with the other
per-step metrics and are fetched with them every ``log_every`` steps -- no extra host
synchronisation. :class:`DebugMonitor` reads each fetch and, at the first step with any
non-finite value, raises :class:`NonFiniteError` naming the step, its batch, and the first
input field, layer, gradient and variable that went non-finite::

    jdl.fit(model, data, ..., debug=True)
    # NonFiniteError: fit(debug=True): the first non-finite value appeared at step 11
    # (epoch 2, its batch 3 of 8: examples 64-95 of the epoch's order); every earlier
    # step was finite.
    # Cause: layer Dense_1 produced it (the input and every earlier layer were finite).
    #   - input batch: finite
    #   - first non-finite layer output (forward order): Dense_1 (96 values; 1 of 3 ...)
    #   ...
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from jdl._core.tree import SEP
from jdl.train.nonfinite import DEBUG_PREFIX, DebugLayout, describe_non_finite

__all__ = ["DebugMonitor", "NonFiniteError"]


class NonFiniteError(FloatingPointError):
    """Training produced NaN or inf (raised by ``jdl.fit(debug=True)``).

    Attributes:
        step: the global (1-based) step that first produced a non-finite value.
        epoch: its (1-based) epoch.
        batch: the (0-based) index of its batch in the epoch.
        examples: ``(start, stop)``: the batch's positions in the epoch's order of examples.
        inputs: ``{field: count}`` of the batch's non-finite input values (empty if finite).
        example: the position, in the epoch's order, of the first example with a
            non-finite input (``None`` if the inputs were finite).
        layer: the first layer (module path, forward order) whose output was non-finite.
        gradient: the first parameter path with a non-finite gradient (``None`` if none).
        variable: the first variable path non-finite after the update (``None`` if none).
        loss_finite: whether that step's loss was finite.
    """

    def __init__(self, message: str, **details: Any):
        super().__init__(message)
        self.step: int = details["step"]
        self.epoch: int = details["epoch"]
        self.batch: int = details["batch"]
        self.examples: tuple[int, int] = details["examples"]
        self.inputs: dict[str, int] = details["inputs"]
        self.example: int | None = details["example"]
        self.layer: str | None = details["layer"]
        self.gradient: str | None = details["gradient"]
        self.variable: str | None = details["variable"]
        self.loss_finite: bool = details["loss_finite"]


def _forward_order(paths: Sequence[str], layers: Sequence[str]) -> list[int]:
    """Indices of ``paths`` (``"params/<layer>/<leaf>"``) by their layer's forward position
    (paths of no known layer last, in tree order)."""
    rank = {name: i for i, name in enumerate(layers)}

    def key(i: int) -> tuple[int, int]:
        module = paths[i].split(SEP, 1)[-1].rpartition(SEP)[0]
        return rank.get(module, len(rank)), i

    return sorted(range(len(paths)), key=key)


def _first(names: Sequence[str], counts: np.ndarray, order: Sequence[int], what: str) -> tuple:
    """``(first bad name, phrase)`` for one count vector, in ``order``."""
    bad = [i for i in order if counts[i] > 0]
    if not bad:
        return None, "finite"
    first = names[bad[0]]
    shown = ", ".join(names[i] for i in bad[1:3]) + (", ..." if len(bad) > 3 else "")
    rest = f"; then {shown}" if shown else ""
    return first, (
        f"{first} ({int(counts[bad[0]])} values; {len(bad)} of {len(names)} {what} "
        f"non-finite{rest})"
    )


@dataclasses.dataclass
class DebugMonitor:
    """Reads the ``"debug/..."`` metrics of ``train_step(..., debug=True)`` on each fetch.

    Args:
        layout: what each count names (:class:`jdl.train.nonfinite.DebugLayout`).
        batch_size: the global batch size.
        steps_per_epoch: optimiser steps per epoch.
    """

    layout: DebugLayout
    batch_size: int
    steps_per_epoch: int

    @classmethod
    def for_run(cls, model: Any, state: Any, plan: Any) -> DebugMonitor:
        """The monitor of a :class:`jdl.train.runner.RunPlan` training ``model`` from ``state``."""
        layout = DebugLayout.of(model, state, plan.sample)
        return cls(layout, plan.batch_size, plan.steps_per_epoch)

    def check(self, first_step: int, fetched: dict[str, np.ndarray]) -> None:
        """Take the debug entries out of ``fetched`` (in place, so they are neither
        averaged, recorded nor shown) and raise at the first step with a non-finite value.

        Args:
            first_step: the global (1-based) step of the rows' first.
            fetched: per-step metrics, one row per step (as :class:`MetricBuffer` fetches).

        Raises:
            NonFiniteError: naming that step, its batch, and the first input field, layer,
                gradient and variable that went non-finite.
            ValueError: at the first step (before any non-finite one) whose batch holds
                integer class labels outside ``[0, num_outputs)``.
        """
        debug = {k[len(DEBUG_PREFIX) :]: fetched.pop(k) for k in list(fetched)
                 if k.startswith(DEBUG_PREFIX)}  # fmt: skip
        if not debug:
            return
        loss = np.asarray(fetched.get("loss", np.zeros(len(debug["loss"]))), np.float64)
        bad = ~np.isfinite(loss) | (debug["loss"] > 0) | (debug["first_example"] >= 0)
        for name in ("inputs", "layers", "grads", "variables"):
            bad |= np.asarray(debug[name]).reshape(len(bad), -1).sum(axis=1) > 0
        if "labels" in debug:  # class labels outside the outputs: wrong, if finite
            labels = np.asarray(debug["labels"]).reshape(len(bad), 4)
            wrong = np.flatnonzero(labels[:, 0] > 0)
            if wrong.size and not (bad[: wrong[0]].any()):
                raise self._label_error(first_step + int(wrong[0]), labels[wrong[0]])
        rows = np.flatnonzero(bad)
        if rows.size:
            row = {k: np.asarray(v[rows[0]]) for k, v in debug.items()}
            raise self._error(first_step + int(rows[0]), row, bool(np.isfinite(loss[rows[0]])))

    def _label_error(self, step: int, labels: np.ndarray) -> ValueError:
        count, lo, hi, width = (int(v) for v in labels)
        epoch, batch = (step - 1) // self.steps_per_epoch + 1, (step - 1) % self.steps_per_epoch
        start = batch * self.batch_size
        return ValueError(
            f"fit(debug=True): the batch of step {step} (epoch {epoch}, its batch {batch + 1} of "
            f"{self.steps_per_epoch}: examples {start}-{start + self.batch_size - 1} of the "
            f"epoch's order) holds {count} class label(s) outside [0, {width}) for a model with "
            f"{width} outputs (labels from {lo} to {hi}); cross-entropy would read them as "
            "all-zero targets. Fix the labels, or give the model as many outputs as classes."
        )

    def _error(self, step: int, row: dict[str, np.ndarray], data_loss_finite: bool) -> Exception:
        lay = self.layout
        epoch, batch = (step - 1) // self.steps_per_epoch + 1, (step - 1) % self.steps_per_epoch
        start = batch * self.batch_size
        examples = (start, start + self.batch_size)
        inputs = {k: int(c) for k, c in zip(lay.inputs, row["inputs"], strict=True) if c > 0}
        position = int(row["first_example"])
        example = start + position if position >= 0 else None
        loss_finite = data_loss_finite and int(row["loss"]) == 0
        layers = list(range(len(lay.layers)))
        layer, layer_text = _first(lay.layers, row["layers"], layers, "layers")
        forward = _forward_order(lay.grads, lay.layers)
        gradient, grad_text = _first(lay.grads, row["grads"], forward, "parameters")
        variables = _forward_order(lay.variables, lay.layers)
        variable, var_text = _first(lay.variables, row["variables"], variables, "variables")
        if inputs:
            where = ", ".join(f"{k!r} ({c} values)" for k, c in inputs.items())
            input_text = f"NON-FINITE: {where}; the first in example {example} of the epoch"
            cause = (
                "the input batch itself held NaN/inf (the model was fed it; check the data "
                "pipeline)"
            )
        else:
            input_text = "finite"
            if layer is not None:
                cause = f"layer {layer} produced it (the input and every earlier layer were finite)"
            elif not loss_finite:
                cause = "the loss produced it from finite model outputs"
            elif gradient is not None:
                cause = f"the backward pass produced it (the forward pass was finite): {gradient}"
            else:
                cause = f"the optimiser update produced it (gradients finite): {variable}"
        lines = [
            f"fit(debug=True): the first non-finite value appeared at step {step} (epoch "
            f"{epoch}, its batch {batch + 1} of {self.steps_per_epoch}: examples "
            f"{examples[0]}-{examples[1] - 1} of the epoch's order); every earlier step of this "
            "run was finite.",
            f"Cause: {cause}.",
            f"  - input batch: {input_text}",
            f"  - first non-finite layer output (forward order): {layer_text}",
            f"  - loss: {'finite' if loss_finite else 'NON-FINITE'}",
            f"  - first non-finite gradient: {grad_text}",
            f"  - first non-finite variable after the update: {var_text}",
        ]
        return NonFiniteError(
            "\n".join(lines),
            step=step, epoch=epoch, batch=batch, examples=examples, inputs=inputs,
            example=example, layer=layer, gradient=gradient, variable=variable,
            loss_finite=loss_finite,
        )  # fmt: skip


def warn_non_finite_loss(run: Any, value: float) -> bool:
    """``fit``'s default when a loss goes NaN/inf without ``TerminateOnNaN`` or ``debug``:
    one warning, at the first epoch whose mean training loss is not finite, naming the
    state's first non-finite parameter; training goes on. Returns ``False`` (warn no more).
    """
    warnings.warn(
        f"fit: the mean training loss of epoch {run.epoch} is {value} (step {run.step}); "
        f"{describe_non_finite(run.state)}. Training goes on: add "
        "jdl.train.callbacks.TerminateOnNaN() to stop at the first such step, or pass "
        "debug=True to stop there and name the input, layer and parameter that went "
        "non-finite first.",
        stacklevel=3,
    )
    return False
