"""The error of a checkpoint save that hit a full disk (:func:`jdl.train.save_state`).

A full disk reaches a save as Orbax's, TensorStore's or Python's own error
(:func:`jdl._core.files.no_space_left` tells them apart); :func:`no_space_error` turns it
into one ``OSError(ENOSPC)`` naming the step, the directory and what is left, after
removing the save's partial files.
"""

from __future__ import annotations

import contextlib
import errno
import threading
import time
from collections.abc import Callable
from pathlib import Path

import jax

from jdl.train.checkpoint_paths import checkpoint_path


def no_space_error(
    directory: str | Path,
    step: int,
    err: BaseException,
    threads: set[threading.Thread],
    latest_step: Callable[[str | Path], int | None],
) -> OSError:
    """The error of a save that hit a full disk, its partial files removed (one process).

    Orbax writes into ``<step>.orbax-checkpoint-tmp*`` and renames it only when complete,
    so the checkpoints already there are untouched; the partial one only takes space. Its
    writer threads (Orbax's ``Thread`` subclasses started since ``threads``) may still be at
    work when the error reaches here: they are waited for (10 s at most) before it is
    removed. ``latest_step`` reads the latest complete checkpoint's step, for the message.
    """
    path = checkpoint_path(directory)  # local or remote (gs://...)
    partials = list(path.glob(f"{step}.orbax-checkpoint-tmp*"))
    if jax.process_count() == 1:
        deadline = time.monotonic() + 10
        for thread in set(threading.enumerate()) - threads:
            if type(thread) is threading.Thread:  # a pool's or event loop's: stays alive
                continue
            with contextlib.suppress(Exception):  # Orbax's join re-raises the thread's error
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for partial in path.glob(f"{step}.orbax-checkpoint-tmp*"):
            with contextlib.suppress(OSError):  # what is left is named in the message
                partial.rmtree(missing_ok=True)
    left = [str(p) for p in path.glob(f"{step}.orbax-checkpoint-tmp*")]
    try:
        latest = latest_step(directory)
    except Exception:  # the message must not fail in turn
        latest = None
    kept = (
        "there is no earlier checkpoint"
        if latest is None
        else f"the latest complete checkpoint, step {latest}, is untouched"
    )
    if left:
        partial = f"Its partial files are left in {', '.join(left)} (delete them to free space)"
    else:
        partial = "Its partial files were removed" if partials else "Nothing of it was written"
    return OSError(
        errno.ENOSPC,
        f"No space left on device to save checkpoint step {step} in {directory} "
        f"({why(err)}). {partial}; {kept}. Free some space (or save into another directory) "
        f"and resume.",
    )


def why(err: BaseException) -> str:
    """An Orbax/TensorStore/JSON error as one short line (its spec dump cut)."""
    text = " ".join(str(err).split(" [tensorstore_spec=")[0].split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
