"""The callback protocol: :class:`Run` (the live view of a run) and :class:`Callback`.

The two names every callback module needs, kept apart from the callbacks themselves so
that callbacks may live in modules of their own (:mod:`jdl.train.plateau`,
:mod:`jdl.train.ema`) while :mod:`jdl.train.callbacks` re-exports them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
        checkpoint_extras: returns what a :class:`~jdl.train.callbacks.Checkpoint` saves
            beside the state for an exact resumption (the run's configuration, every
            callback's :meth:`Callback.state_dict` as of the last complete epoch, the
            metric sums of a partial last epoch); set by :func:`jdl.fit` (``None`` outside it:
            nothing extra).
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
    checkpoint_extras: Callable[[], dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def state(self) -> TrainState:
        """The current plain :class:`TrainState`."""
        return self.get_state()

    def stop(self, reason: str) -> None:
        """Ask the loop to stop after the current step, recording why."""
        self.stop_training = True
        self.stop_reason = reason


class Callback:
    """Base class: override the hooks you need; each does nothing by default.

    A callback that keeps state across epochs (a best value, a wait counter) also
    overrides :meth:`state_dict` and :meth:`load_state_dict`, so that
    ``fit(..., resume=True)`` continues it exactly: :class:`~jdl.train.callbacks.Checkpoint`
    saves every callback's ``state_dict()`` with the checkpoint, and a resumed run hands it
    back to the callback of the same class (and the same rank among callbacks of that
    class) right after :meth:`on_train_begin`. A callback that keeps a whole training state
    (``EarlyStopping(restore_best=True)``) also overrides :meth:`kept_state` and
    :meth:`load_kept_state`.
    """

    def state_dict(self) -> dict[str, Any]:
        """The callback's state across epochs, as JSON-serialisable data (default: none).

        Floats may be ``inf`` or ``nan`` (they are encoded for JSON); arrays are not allowed.
        """
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (called on resume, after
        :meth:`on_train_begin`); the default ignores it."""

    def kept_state(self) -> TrainState | None:
        """A training state the callback keeps across epochs (e.g. the best epoch's, for
        ``EarlyStopping(restore_best=True)``), saved in the checkpoint beside the run's;
        default none. It must have the run's structure (a copy of an earlier ``run.state``).
        """
        return None

    def load_kept_state(self, state: TrainState) -> None:
        """Take back the :meth:`kept_state` of the checkpoint (on resume, after
        :meth:`load_state_dict`); the default ignores it."""

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


def check_callbacks(callbacks: Any) -> None:
    """Raise a TypeError unless ``callbacks`` is a sequence of :class:`Callback` objects."""
    if isinstance(callbacks, Callback):
        raise TypeError(
            f"callbacks must be a list of Callback objects; got one {type(callbacks).__name__} "
            f"(pass callbacks=[{type(callbacks).__name__}(...)])."
        )
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(
                f"callbacks[{i}] must be a jdl.train.callbacks.Callback (e.g. "
                f"TerminateOnNaN()); got the {type(cb).__name__} {cb!r:.80}."
            )
