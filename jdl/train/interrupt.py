"""SIGINT (Ctrl-C) and SIGTERM while :func:`jdl.fit` trains: stop at a step boundary, save,
then raise (issue #19).

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when SIGINT
arrives: inside a JAX garbage-collection callback (where it is swallowed: training ran on
to the end) or inside Orbax's thread pools during a save (which then hung on "cannot
schedule new futures after shutdown"). While ``fit`` trains, its handlers only note the
signal; the loop stops before its next step (or, if the epoch's last step has run, after
the epoch is recorded), each :class:`jdl.train.callbacks.Checkpoint` saves the state at
that step (mid-epoch with the partial epoch's sums, so ``resume=True`` continues exactly),
and then ``fit`` raises:

- ``KeyboardInterrupt`` for SIGINT, as Ctrl-C always does (an uncaught one: status 130);
- ``SystemExit(143)`` (128 + SIGTERM) for SIGTERM, so an uncaught one ends the process
  with the status a SIGTERM gives, after ``finally`` blocks have run.

Both carry ``signal_name``, ``step``, ``checkpoints`` and ``message`` (see :func:`stopped`).

The first signal puts the previous handlers back, so a second one acts at once as it
would without ``fit`` (a second Ctrl-C raises ``KeyboardInterrupt`` right there, a second
SIGTERM kills with the default action). Handlers are installed only in the main thread of a
single-process run, never over a signal that is ignored or handled outside Python, and the
previous ones are restored when ``fit`` returns or raises.

In a multi-process run (``jax.distributed``) one process stopping on its own would wait for
its peers in their next collective. There SIGTERM -- the preemption notice of SLURM,
Kubernetes and Cloud TPU -- is taken by JAX's preemption service (on by default:
``jax_enable_preemption_service``), and ``fit`` asks it before every step
(``jax.experimental.multihost_utils.reached_preemption_sync_point``): once any process
got the notice, every process stops after the same step, the checkpoints are saved
together, and each process raises ``SystemExit(143)`` (or returns, with
``fit(..., on_sigterm="return")``). SIGINT is not synchronised there: it acts as it
always does.

``fit(..., on_sigterm="return")`` makes a SIGTERM end ``fit`` normally instead, after the
save, with ``History.stop_reason == "preempted"``: a script then exits 0 and its next run
resumes with ``resume=True``.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import jax

from jdl._core.signals import install_handlers, restore_handlers

__all__ = ["PREEMPTED", "StopOnSignal", "stopped"]


def stopped(signum: int, step: int, checkpoints: dict[str, int | None]) -> BaseException:
    """The exception ``fit`` raises after stopping on signal ``signum`` at ``step``.

    A plain ``KeyboardInterrupt`` (SIGINT) or ``SystemExit(143)`` (SIGTERM), so that an
    uncaught one ends a script with the same status as the signal would (Python gives a
    *subclass* of ``KeyboardInterrupt`` status 1), with these attributes:

    - ``signal_name``: ``"SIGINT"`` or ``"SIGTERM"``;
    - ``step``: the step the run stopped after;
    - ``checkpoints``: each ``Checkpoint`` directory -> its latest step (``None``: none);
    - ``message``: one line saying all that.
    """
    name = signal.Signals(signum).name
    if not checkpoints:
        where = "no Checkpoint callback, nothing saved"
    else:
        where = "; ".join(
            f"checkpoint of step {s} in {d}" if s is not None else f"no checkpoint in {d}"
            for d, s in checkpoints.items()
        )
    message = f"training stopped by {name} after step {step}: {where}"
    err = SystemExit(128 + signum) if signum == signal.SIGTERM else KeyboardInterrupt(message)
    err.signal_name, err.step, err.checkpoints, err.message = name, step, checkpoints, message
    return err


#: ``History.stop_reason`` of a run that ``fit(..., on_sigterm="return")`` ended on SIGTERM.
PREEMPTED = "preempted"


def _preemption_service() -> bool:
    """Whether this multi-process run has JAX's preemption sync manager."""
    from jax._src import distributed

    return getattr(distributed.global_state, "preemption_sync_manager", None) is not None


class StopOnSignal:
    """Context manager: note SIGINT/SIGTERM instead of raising, for the ``with`` block.

    Attributes:
        received: the signal number noted (``None`` before any).
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._synchronised = False
        self._checked: int | None = None

    def __enter__(self) -> StopOnSignal:
        if jax.process_count() > 1:
            # One process stopping on its own would wait for its peers in the next
            # collective (or the checkpoint's barrier) while they train on: a hang instead
            # of an exit. JAX's preemption service makes every process stop at one step.
            self._synchronised = _preemption_service()
            return self
        self._previous = install_handlers(self._note)  # main thread only, see there
        return self

    def check(self, step: int) -> bool:
        """Whether to stop before the step after ``step``: a signal was noted or, in a
        multi-process run, every process has reached the preemption sync point.

        Call it before every step, with the same steps on every process (repeated calls
        for one step ask the preemption service once).
        """
        if self.received is None and self._synchronised and self._checked != step:
            self._checked = step
            from jax.experimental import multihost_utils

            if multihost_utils.reached_preemption_sync_point(step):
                self.received = signal.SIGTERM
        return self.received is not None

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        self._restore()  # a second signal acts as it would without fit

    def _restore(self) -> None:
        restore_handlers(self._previous)

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def raise_if_received(self, step: int, directories: Sequence[str | Path]) -> None:
        """Raise :func:`stopped`'s exception if a signal was noted, naming ``step`` and the
        latest checkpoint of each directory."""
        if self.received is None:
            return
        from jdl.train.checkpoint import latest_step

        raise stopped(self.received, step, {str(d): latest_step(d) for d in directories})
