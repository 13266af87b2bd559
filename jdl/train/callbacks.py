"""Callbacks: small objects that :func:`jdl.fit` calls at fixed points of a run.

Write your own by subclassing :class:`Callback` and overriding any hook. Every hook
receives the :class:`Run` — the live view of the training run — and may set
``run.stop_training = True`` (with ``run.stop_reason``) to end it after the current step.

Metrics reach callbacks when they are fetched from the device, every ``log_every``
steps and at each epoch's end, never per step: training never waits on the host.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from jdl.train.checkpoint import latest_step, save_state
from jdl.train.history import History, metric_mode
from jdl.train.optim import learning_rate
from jdl.train.state import TrainState

__all__ = [
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "LearningRateLogger",
    "Run",
    "TerminateOnNaN",
]


@dataclass
class Run:
    """The state of a running :func:`jdl.fit`, as seen by callbacks.

    Attributes:
        history: the :class:`History` being filled.
        epoch: the current (1-based) epoch.
        step: the global step count after the last step taken.
        total_steps: the number of steps the run will take if not stopped.
        steps_per_epoch: optimiser steps per epoch.
        stop_training: set to ``True`` to stop after the current step.
        stop_reason: a message saying why training stopped.
        get_state: returns the current state as a plain :class:`TrainState`.
        set_state: replaces the current state (e.g. to restore the best weights).
    """

    history: History
    epoch: int
    step: int
    total_steps: int
    steps_per_epoch: int
    get_state: Callable[[], TrainState]
    set_state: Callable[[TrainState], None]
    stop_training: bool = False
    stop_reason: str | None = None

    @property
    def state(self) -> TrainState:
        """The current plain :class:`TrainState`."""
        return self.get_state()

    def stop(self, reason: str) -> None:
        """Ask the loop to stop after the current step, recording why."""
        self.stop_training = True
        self.stop_reason = reason


class Callback:
    """Base class: override the hooks you need; each does nothing by default."""

    def on_train_begin(self, run: Run) -> None:
        """Called once before the first step (after resuming, if resuming)."""

    def on_metrics(self, run: Run, first_step: int, metrics: dict[str, np.ndarray]) -> None:
        """Called when per-step training metrics are fetched from the device.

        Args:
            run: the run.
            first_step: the global step number (1-based) of ``metrics[...][0]``.
            metrics: per-step values, one array entry per step since the last fetch.
        """

    def on_epoch_end(self, run: Run, logs: dict[str, float]) -> None:
        """Called after each epoch (and its validation) with the epoch's numbers.

        Callbacks may add entries to ``logs`` (they are recorded in the history).
        """

    def on_epoch_recorded(self, run: Run) -> None:
        """Called after the epoch's row (with every callback's additions) is in the history."""

    def on_train_end(self, run: Run) -> None:
        """Called once after the last step."""


class TerminateOnNaN(Callback):
    """Stop training as soon as the loss is NaN or infinite, naming the step.

    The check runs whenever metrics are fetched, on every step's loss since the last
    fetch, so the step reported is exact (training may have run up to ``log_every - 1``
    steps past it). The run's ``stop_reason`` (and ``History.stop_reason``) reads e.g.
    ``"loss became nan at step 17 (epoch 2)"``.
    """

    def __init__(self, monitor: str = "loss"):
        self.monitor = monitor

    def on_metrics(self, run: Run, first_step: int, metrics: dict[str, np.ndarray]) -> None:
        values = metrics.get(self.monitor)
        if values is None:
            return
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            step = first_step + int(bad[0])
            epoch = (step - 1) // run.steps_per_epoch + 1
            value = "nan" if np.isnan(values[bad[0]]) else "inf"
            run.stop(f"{self.monitor} became {value} at step {step} (epoch {epoch})")
            warnings.warn(f"TerminateOnNaN: {run.stop_reason}; training stopped.", stacklevel=2)


class EarlyStopping(Callback):
    """Stop when a monitored epoch metric has stopped improving.

    Args:
        monitor: the metric to watch (e.g. ``"val_loss"``, ``"val_accuracy"``).
        patience: epochs without improvement to wait before stopping.
        min_delta: the smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (:func:`jdl.train.metric_mode`: max for
            names containing "acc").
        restore_best: at the end of training, put back the state of the best epoch.

    Raises:
        ValueError: for a negative patience or an unknown mode.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best: bool = False,
    ):
        if patience < 0:
            raise ValueError(f"patience must be >= 0; got {patience}.")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = abs(min_delta)
        self.mode = metric_mode(monitor, mode)
        self.restore_best = restore_best

    def on_train_begin(self, run: Run) -> None:
        self.best = -math.inf if self.mode == "max" else math.inf
        self.best_epoch = None
        self.wait = 0
        self.best_state = None

    def _improved(self, value: float) -> bool:
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def on_epoch_end(self, run: Run, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise KeyError(
                f"EarlyStopping monitors {self.monitor!r}, but the epoch logs hold "
                f"{sorted(logs)}; pass validation data for 'val_*' metrics."
            )
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, run.epoch, 0
            if self.restore_best:
                # A copy: the live state's buffers are donated to the next step.
                self.best_state = jax.tree_util.tree_map(lambda x: x.copy(), run.state)
        else:
            self.wait += 1
            if self.wait > self.patience:
                run.stop(
                    f"{self.monitor} did not improve for {self.wait} epochs "
                    f"(best {self.best:.6g} at epoch {self.best_epoch})"
                )

    def on_train_end(self, run: Run) -> None:
        if self.restore_best and self.best_state is not None:
            run.set_state(self.best_state)


class LearningRateLogger(Callback):
    """Record, as ``learning_rate``, the learning rate used by each epoch's last step.

    Works with optimisers from :func:`jdl.train.optimizer` (or any optax state that
    records a ``learning_rate`` hyper-parameter through ``optax.inject_hyperparams``).
    """

    def on_epoch_end(self, run: Run, logs: dict[str, float]) -> None:
        lr = learning_rate(run.state.opt_state)
        if lr is None:
            raise ValueError(
                "LearningRateLogger found no learning rate in the optimiser state; build "
                "the optimiser with jdl.train.optimizer(...) or optax.inject_hyperparams."
            )
        logs["learning_rate"] = float(lr)


class Checkpoint(Callback):
    """Save the training state with Orbax every ``every`` epochs and at the end.

    With ``jdl.fit(..., resume=True)`` a run continues from the latest checkpoint in
    ``directory``: the state, the history so far and the position in the data are
    restored, so the final parameters equal those of an uninterrupted run.

    Args:
        directory: where checkpoints go (created if needed).
        every: save every this many epochs.
        max_to_keep: keep only the most recent checkpoints (``None`` keeps all).

    Raises:
        ValueError: if ``every`` is not positive.
    """

    def __init__(self, directory: str | Path, every: int = 1, max_to_keep: int | None = 3):
        if every < 1:
            raise ValueError(f"every must be a positive number of epochs; got {every}.")
        self.directory = Path(directory)
        self.every = every
        self.max_to_keep = max_to_keep

    def save(self, run: Run) -> None:
        """Save the run's current state and history now."""
        save_state(
            self.directory,
            run.state,
            metadata={"history": run.history.to_dict(), "epoch": run.epoch},
            max_to_keep=self.max_to_keep,
        )

    def on_epoch_recorded(self, run: Run) -> None:
        if run.epoch % self.every == 0:
            self.save(run)

    def on_train_end(self, run: Run) -> None:
        if latest_step(self.directory) != run.step:
            self.save(run)
