"""The callback protocol: :class:`Run` (the live view of a run) and :class:`Callback`.

The two names every callback module needs, kept apart from the callbacks themselves so
that callbacks may live in modules of their own (:mod:`jdl.train.plateau`,
:mod:`jdl.train.ema`) while :mod:`jdl.train.callbacks` re-exports them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from jdl.train.history import History
from jdl.train.state import TrainState

__all__ = ["Callback", "Run"]


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
