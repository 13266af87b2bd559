"""Ctrl-C (SIGINT) and SIGTERM in ``python -m jdl train``: act at safe points only.

Python raises ``KeyboardInterrupt`` wherever the main thread is when SIGINT arrives. Inside
XLA's compilation (``jdl.fit`` builds the state and its step before it trains) that ended
in a segmentation fault after a long traceback; inside a checkpoint save, in two traces
through Orbax. :func:`jdl.fit` already defers a signal to the next step boundary while it
trains (:mod:`jdl.train.interrupt`); :class:`DeferSignals` does the same for everything the
command does around that loop (imports, loading the data, compiling, evaluating, writing
files): the first signal is only noted, and :meth:`DeferSignals.check` raises
:class:`Stopped` at the next safe point. A second signal (or one that reaches the command
while ``fit`` is already stopping on an earlier one) stops at once: one line, then
:func:`os._exit` with the signal's status. Not by raising ``KeyboardInterrupt``, which
inside an import of JAX, a compilation or an Orbax save crashed the process (a
segmentation fault) or left traces; every file of the run directory is written
atomically, so an exit at any moment leaves each whole or absent.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from jdl._core.signals import install_handlers, restore_handlers


def exit_status(signum: int) -> int:
    """The shell's exit status for a process ended by signal ``signum`` (130, 143)."""
    return 128 + signum


class Stopped(Exception):
    """The command stopped at a safe point because of a deferred signal.

    Attributes:
        signum: the signal's number.
        signal_name: ``"SIGINT"`` or ``"SIGTERM"``.
        where: what the command was doing (``"before training"``, ...).
    """

    def __init__(self, signum: int, where: str) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        self.where = where
        super().__init__(f"stopped by {self.signal_name} {where}")


class DeferSignals:
    """Context manager: note SIGINT/SIGTERM for the ``with`` block; act on them at safe points.

    Handlers are installed only in the main thread, never over a signal that is ignored or
    handled outside Python, and the previous ones are restored on exit.

    Attributes:
        received: the first signal's number (``None`` before any).
        urgent: when true, a signal (the first one too) stops at once; set while
            :func:`jdl.fit` trains, where a signal that reaches this handler means ``fit``
            has already taken one (its own handler puts this one back after the first).
        describe: returns what has been written so far, for the line printed when a
            signal stops the process at once (e.g. ``"runs/x holds config.json"``).
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.urgent = False
        self.describe: Callable[[], str] = lambda: "nothing written"
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> DeferSignals:
        self._previous = install_handlers(self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        restore_handlers(self._previous)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None and not self.urgent:
            self.received = signum
            return
        try:
            written = self.describe()
        except Exception as err:  # the exit must happen regardless
            written = f"(what was written could not be listed: {err})"
        name = signal.Signals(signum).name
        print(f"stopped at once by a second {name}: {written}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_status(signum))

    def check(self, where: str) -> None:
        """Raise :class:`Stopped` (saying ``where``) if a signal has been noted."""
        if self.received is not None:
            raise Stopped(self.received, where)
