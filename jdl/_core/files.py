"""Atomic file writes: a temporary file in the destination folder, renamed into place.

:func:`os.replace` is atomic on POSIX and Windows, so a reader sees either the old file or
the complete new one, and a crash (or an exception while writing) never leaves a
half-written file under the final name -- nor a temporary file beside it.
:func:`atomic_directory` does the same for a folder of files.

Also :func:`no_space_left`, which tells a full disk apart from other write errors.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` only on success.

    The destination folder is created if needed. On any exception the temporary file is
    removed and ``path`` is untouched. The temporary name ends in ``.tmp``, so writers that
    pick a format by extension (``matplotlib``'s ``savefig``) must be told the format.

    Example:
      >>> import pathlib, tempfile
      >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
      >>> with atomic_path(target) as tmp:
      ...     _ = tmp.write_text("done")
      >>> target.read_text()
      'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; move it to ``path`` only on success.

    As :func:`atomic_path`, for a folder of files written together: on any exception the
    temporary folder is removed and ``path`` is untouched, so readers see the old folder or
    the complete new one, never a part. A folder already at ``path`` is replaced (the
    caller decides whether it may be): it is first renamed aside, then the new one renamed
    into place, then the old one deleted -- between the two renames ``path`` is briefly
    absent, never half-written.

    Example:
      >>> import pathlib, tempfile
      >>> target = pathlib.Path(tempfile.mkdtemp()) / "model"
      >>> with atomic_directory(target) as tmp:
      ...     _ = (tmp / "a.txt").write_text("done")
      >>> sorted(p.name for p in target.iterdir())
      ['a.txt']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual permissions
    try:
        yield tmp
        if path.exists() or path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old / path.name, path)  # put the old folder back
                os.rmdir(old)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`); return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


#: What the libraries under jdl say when a write hits a full disk or quota: the C library's
#: messages (quoted by TensorStore and ArrayRecord), and TFDS' own free-space check.
_NO_SPACE_TEXTS = ("No space left on device", "Disk quota exceeded", "Not enough disk space")


def no_space_left(err: BaseException) -> bool:
    """Whether ``err``, or an exception it was raised from, says the disk (or quota) is full.

    A full disk reaches jdl as Python's ``OSError`` (``ENOSPC``, ``EDQUOT``), as
    TensorStore's ``ValueError`` or ArrayRecord's ``RuntimeError`` quoting "No space left on
    device", or as TFDS' "Not enough disk space"; each of them counts.

    Example:
      >>> no_space_left(OSError(errno.ENOSPC, "No space left on device"))
      True
      >>> no_space_left(ValueError("bad shape"))
      False
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(current) for text in _NO_SPACE_TEXTS):
            return True
        current = current.__cause__ or current.__context__
    return False
