"""A multi-process run whose peer died: one clear line and a prompt non-zero exit.

In a ``jax.distributed`` run every step holds collectives with the other processes. When
one dies (killed, crashed, preempted), the survivors' next collective fails within a
fraction of a second (gloo: "Connection reset by peer"); but if that error is simply
raised, the interpreter's exit then waits in ``jax.distributed``'s shutdown barrier for
the dead process until its heartbeat times out (about a minute), and aborts the
process (SIGABRT) with a long native trace. :func:`exit_if_peer_lost` turns that into one
line on stderr and ``os._exit(PEER_LOST_EXIT)`` at once: nothing more can be computed
with a missing peer, and the scheduler (or the user) restarts the job, which resumes
from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator

import jax

#: The exit status of a process that lost a peer (``EX_TEMPFAIL``: a retry may succeed).
PEER_LOST_EXIT = 75

_PEER_ERRORS = ("connection", "peer", "gloo", "unavailable", "heartbeat", "socket")


def peer_lost_message(error: BaseException) -> str:
    """The line a process prints before exiting on ``error`` (a failed device call)."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    me, count = jax.process_index(), jax.process_count()
    others = [i for i in range(count) if i != me]
    peer = f"process {others[0]}" if len(others) == 1 else f"one of processes {others}"
    address = re.search(r"\[[^\]]+\]:\d+", first)
    if address:
        peer += f" (at {address.group(0)})"
    if any(word in first.lower() for word in _PEER_ERRORS):
        cause = f"most likely {peer} died or lost its connection"
    else:
        cause = f"the other processes cannot go on without this one ({peer} will fail too)"
    return (
        f"jdl: process {me} of {count}: a device computation failed: {first}\n"
        f"jdl: {cause}; exiting with status {PEER_LOST_EXIT} now rather than waiting for "
        f"jax.distributed's shutdown. Restart the job (resume=True continues from the last "
        f"checkpoint).\n"
    )


@contextlib.contextmanager
def exit_if_peer_lost() -> Iterator[None]:
    """Around the steps of a multi-process run: on a ``JaxRuntimeError``, print
    :func:`peer_lost_message` and ``os._exit(PEER_LOST_EXIT)`` (stdout and stderr flushed
    first). In a single-process run errors propagate unchanged."""
    if jax.process_count() == 1:
        yield
        return
    try:
        yield
    except jax.errors.JaxRuntimeError as error:
        message = peer_lost_message(error)
        try:
            sys.stdout.flush()
            sys.stderr.write(message)
            sys.stderr.flush()
        finally:
            os._exit(PEER_LOST_EXIT)
