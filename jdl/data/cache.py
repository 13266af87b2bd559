"""Where datasets are cached (bundled and catalog alike), and a lock so only one process
prepares them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from jdl._core.cache import cache_dir

__all__ = ["resolve_data_dir"]

#: Environment variable that overrides the default cache directory of datasets.
_ENV_VAR = "JDL_DATA_DIR"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Returns the directory that holds jdl's prepared datasets, bundled and TFDS catalog.

    The first of these that is set wins:

    1. the ``data_dir`` argument;
    2. the ``JDL_DATA_DIR`` environment variable;
    3. ``$XDG_CACHE_HOME/jdl/datasets`` (when ``XDG_CACHE_HOME`` is an absolute path);
    4. ``~/.cache/jdl/datasets``.

    The directory is not created here; it is created when a dataset is first prepared.

    Args:
        data_dir: An explicit directory, or ``None`` to use the defaults above.

    Returns:
        The absolute path, with ``~`` expanded.

    Raises:
        TypeError: If ``data_dir`` is neither ``None``, a string nor a path.
        ValueError: If ``data_dir`` is the empty string.
        NotADirectoryError: If a file (not a directory) is already at that path.

    Example:
        >>> resolve_data_dir("/tmp/jdl-data")
        PosixPath('/tmp/jdl-data')
    """
    if data_dir is not None:
        if not isinstance(data_dir, str | os.PathLike):
            raise TypeError(
                f"data_dir must be a str, a path or None, got {type(data_dir).__name__}: "
                f"{data_dir!r}"
            )
        if os.fspath(data_dir) == "":
            raise ValueError("data_dir must be a non-empty path (or None for the default), got ''")
        return _a_directory(Path(data_dir).expanduser().absolute())
    return _a_directory(cache_dir("datasets", _ENV_VAR))


def describe_data_dir(data_dir: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """The directory :func:`resolve_data_dir` returns, and how it was chosen, in words.

    For messages that name the data directory: ``"chosen by the data_dir argument
    (--data-dir on the command line)"``, ``"chosen by $JDL_DATA_DIR"``, or jdl's default
    (saying what would choose another).

    Args:
        data_dir: As in :func:`resolve_data_dir`.

    Returns:
        ``(directory, how it was chosen)``.

    Raises:
        TypeError: As :func:`resolve_data_dir`.
        ValueError: As :func:`resolve_data_dir`.
        NotADirectoryError: As :func:`resolve_data_dir`.
    """
    root = resolve_data_dir(data_dir)
    if data_dir is not None:
        how = "chosen by the data_dir argument (--data-dir on the command line)"
    elif os.environ.get(_ENV_VAR, ""):
        how = f"chosen by ${_ENV_VAR}"
    else:
        how = (
            "jdl's default, as neither data_dir (--data-dir on the command line) nor "
            f"${_ENV_VAR} is set"
        )
    return root, how


def _a_directory(path: Path) -> Path:
    """``path``, unless something other than a directory is already there."""
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            f"data_dir must be a directory (it is created if missing); {str(path)!r} is a file."
        )
    return path


@contextlib.contextmanager
def file_lock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Holds an exclusive advisory lock on ``path`` (created if missing) while in the block.

    Used so that several processes on one machine (e.g. the processes of a multi-host
    job) do not prepare the same dataset at the same time: the first one prepares it,
    the others wait and then reuse it. The lock is an ``flock`` lock, which the kernel
    releases when its process dies, so a held lock always belongs to a live process. On
    platforms without ``fcntl`` (Windows) this does not lock; TFDS'
    write-to-a-temporary-directory-then-rename still keeps half-written data invisible
    there.

    Args:
        path: The lock file. Its parent directory must exist.
        blocking: Wait for the lock (the default); if false and another process (or
            another open of the file) holds it, do not wait.

    Yields:
        Whether the lock is held for the block: ``False`` without ``fcntl``, or when
        ``blocking`` is false and someone else holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield False
        return
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
