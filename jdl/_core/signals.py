"""Installing and restoring SIGINT/SIGTERM handlers, the way both of jdl's deferrals do.

:class:`jdl.train.interrupt.StopOnSignal` (inside ``fit``'s loop) and the command line's
``DeferSignals`` (around it) each note a signal instead of letting Python raise it
anywhere. Both install their handler only in the main thread (``signal.signal`` works
nowhere else), never over a signal that is ignored on purpose or handled outside Python
(which could not be restored), and put the previous handlers back afterwards. This module
imports nothing but the standard library, so the command line can use it before JAX loads.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["SIGNALS", "install_handlers", "restore_handlers"]

#: The signals jdl defers: Ctrl-C and a polite kill (a scheduler's preemption).
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install_handlers(handler: Callable[[int, Any], Any]) -> dict[int, Any]:
    """Install ``handler`` for :data:`SIGNALS`; returns the handlers it replaced.

    Nothing is installed outside the main thread, or over a signal whose handler is
    ``SIG_IGN`` or was set outside Python (``None``): those are left as they are.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for sig in SIGNALS:
        old = signal.getsignal(sig)
        if old is None or old is signal.SIG_IGN:
            continue
        previous[sig] = old
        signal.signal(sig, handler)
    return previous


def restore_handlers(previous: dict[int, Any]) -> None:
    """Put back (and forget) the handlers :func:`install_handlers` replaced."""
    while previous:
        sig, old = previous.popitem()
        signal.signal(sig, old)
