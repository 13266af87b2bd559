"""Checkpoint directories: their paths as ``etils.epath.Path`` (what Orbax takes),
local or remote, the steps they hold, setting unreadable ones aside, and the check that
every process of a multi-process run sees the same directory.

``pathlib`` turns ``gs://bucket/run`` into the local path ``gs:/bucket/run``; an
``epath.Path`` keeps it a remote path all the way into Orbax and TensorStore. Every
checkpoint function of :mod:`jdl.train` takes its directory through :func:`checkpoint_path`.

With several processes Orbax saves collectively: each process decides from its own view
of the directory whether (and which step) to save, so a directory that is not one
directory for all of them (a local disk per host) ends in a crash deep inside Orbax (a
``sync_global_devices`` name mismatch) or a hang. :func:`check_shared` finds that out
before the first save or restore and says so on every process.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING

import jax
import numpy as np

if TYPE_CHECKING:
    from etils import epath

#: A URL that ``pathlib`` collapsed: ``gs://b/x`` became ``gs:/b/x``.
_COLLAPSED_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/[^/]")
#: Directories this process has checked with :func:`check_shared` (their ``str``).
_SHARED: set[str] = set()


def checkpoint_path(directory: str | os.PathLike[str]) -> epath.Path:
    """``directory`` as an ``etils.epath.Path``: ``gs://…`` (and other remote) paths
    stay remote, local ones are unchanged.

    Args:
        directory: a local path, or a URL of a store Orbax can write (``gs://bucket/x``).

    Returns:
        The path (relative local paths stay relative).

    Raises:
        TypeError: if ``directory`` is not a string or path.
        ValueError: if it is a ``pathlib`` path that holds a collapsed URL (``gs:/b/x``,
            what ``pathlib.Path("gs://b/x")`` makes): pass the URL as a string.
    """
    from etils import epath

    if not isinstance(directory, str | os.PathLike):
        raise TypeError(
            f"A checkpoint directory must be a string or path; got "
            f"{type(directory).__name__} {directory!r}."
        )
    if isinstance(directory, PurePath) and not isinstance(directory, epath.Path):
        if _COLLAPSED_URL.match(str(directory)):
            raise ValueError(
                f"Checkpoint directory {str(directory)!r} is a URL that pathlib collapsed "
                f"(pathlib.Path turns '//' into '/'); pass the URL as a string, e.g. "
                f"{re.sub(':/', '://', str(directory), count=1)!r}."
            )
    return epath.Path(directory)


def is_remote(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a URL (``gs://…``, ``s3://…``) rather than a local path.

    Args:
        path: a checkpoint directory (as :func:`checkpoint_path` takes it).

    Returns:
        ``True`` for an object-store URL.
    """
    return "://" in str(checkpoint_path(path))


def check_shared(directory: str | os.PathLike[str]) -> None:
    """Make sure every process of a multi-process run sees the same ``directory``.

    Process 0 writes a marker file with a random name into the directory (creating it), its
    name is broadcast to every process, and each says whether it sees the file; then the
    marker is removed. It is done once per directory and process (later calls return at
    once) and does nothing in a single-process run. Remote directories are checked too:
    an object store is one store for all, but each process may still have been handed
    another path (a time stamp in it, say). Every process must call it, in the same order
    (it is a collective, like Orbax's saves).

    Args:
        directory: the checkpoint directory.

    Raises:
        ValueError: on every process, if some process does not see process 0's marker: the
            message names the directory (as this process sees it) and those processes.
        OSError: on every process, if process 0 cannot write into the directory.
    """
    if jax.process_count() == 1:
        return
    path = checkpoint_path(directory)
    if str(path) in _SHARED:
        return
    from jax.experimental import multihost_utils

    # No step below may raise on one process only: the others would wait for it forever.
    token, failed = np.zeros(16, np.uint8), None
    if jax.process_index() == 0:
        try:
            written = np.frombuffer(secrets.token_bytes(16), np.uint8)
            path.mkdir(parents=True, exist_ok=True)
            (path / _marker(written)).write_text("")
            token = written
        except OSError as err:  # all zeros tells the others
            failed = err
    token = np.asarray(multihost_utils.broadcast_one_to_all(token), np.uint8)
    if not token.any():
        reason = f" ({type(failed).__name__}: {failed})" if failed is not None else ""
        raise OSError(
            f"Checkpoint directory {path}: process 0 cannot write into it{reason}, so no "
            f"process checkpoints there."
        ) from failed
    marker = path / _marker(token)
    sees = np.asarray(multihost_utils.process_allgather(np.array(_sees(marker)))).reshape(-1)
    if jax.process_index() == 0:  # every process has looked (the gather waited for them)
        marker.unlink(missing_ok=True)
    blind = [int(i) for i in np.flatnonzero(~sees.astype(bool))]
    if blind:
        who = ", ".join(map(str, blind))
        raise ValueError(
            f"Checkpoint directory {path} is not shared by all processes: process(es) "
            f"{who} of {jax.process_count()} do not see process 0's files in it (this is "
            f"process {jax.process_index()}'s path). Checkpoints of a multi-process run need "
            f"one directory that every process sees: a shared filesystem or an object "
            f"store (gs://...)."
        )
    _SHARED.add(str(path))


def set_aside(directory: str | os.PathLike[str], steps: Sequence[int]) -> list[epath.Path]:
    """Rename checkpoints of ``directory`` out of Orbax's sight, without deleting them.

    ``<directory>/<step>`` becomes ``<directory>/<step>.corrupt`` (``.corrupt-2``, ... if
    that is taken), so a later save of the same step does not collide with it and
    ``max_to_keep`` neither counts nor removes it. With several processes the primary one
    renames, the others wait for it.

    Args:
        directory: the checkpoint directory.
        steps: the checkpoints to move (those not there are ignored).

    Returns:
        The new paths, ``etils.epath.Path`` (on the primary process; empty elsewhere).
    """
    check_shared(directory)
    moved = []
    if jax.process_index() == 0:
        for step in steps:
            path = checkpoint_path(directory) / str(int(step))
            if not path.is_dir():
                continue
            target, n = path.with_name(f"{int(step)}.corrupt"), 2
            while target.exists():
                target, n = path.with_name(f"{int(step)}.corrupt-{n}"), n + 1
            path.rename(target)
            moved.append(target)
    if jax.process_count() > 1:
        import orbax.checkpoint as ocp

        ocp.multihost.sync_global_processes("jdl_checkpoint_set_aside")
    return moved


def latest_step(directory: str | os.PathLike[str]) -> int | None:
    """The step of the latest checkpoint in ``directory``; ``None`` if it holds none.

    Only the directory names are read: a checkpoint that cannot be restored still counts
    (:func:`restore_state` skips it), until it is moved aside (:func:`set_aside`).

    Args:
        directory: a checkpoint directory (it need not exist), local or remote.

    Returns:
        The largest step, or ``None``.
    """
    return max(_committed_steps(directory), default=None)


def _committed_steps(directory: str | os.PathLike[str]) -> list[int]:
    """The steps of the committed checkpoints in ``directory``, read from its entries'
    names alone.

    Orbax writes a step into ``<step>.orbax-checkpoint-tmp-<n>`` and renames it to
    ``<step>`` once complete, so a plain integer name is a committed checkpoint. No entry
    is opened or stat-ed: another process may save (and delete old steps under
    ``max_to_keep``) while this one reads, which made Orbax's own listing, which stats each
    step, fail with ``FileNotFoundError``.
    """
    try:  # epath lists a remote directory too (os.listdir would look for a local one)
        names = [entry.name for entry in checkpoint_path(directory).iterdir()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [int(name) for name in names if name.isascii() and name.isdigit()]


def _sees(marker: epath.Path) -> bool:
    """Whether this process sees ``marker`` (``False`` if it cannot even look)."""
    try:
        return marker.exists()
    except Exception:  # noqa: BLE001 - e.g. no backend for the URL here: it does not see it
        return False


def _marker(token: np.ndarray) -> str:
    return f".jdl-shared-{bytes(token.tolist()).hex()}"
