"""A persistent compilation cache: compiled programs kept on disk across processes.

Every new process compiles ``fit``'s train and evaluation steps (and the small programs
around them: initialisation, shuffling, metric means) again. With a cache directory, JAX
stores each compiled executable there under a key of its program, compiler options and
versions, and a later process that compiles the same program loads it instead. This is
JAX's own persistent cache (``jax_compilation_cache_dir``); :func:`enable_compile_cache`
sets it up so that the short CPU compilations of small models are cached too (JAX's
default skips programs that compile in under a second).

JAX opens its cache once per process, at the first compilation after a directory is set:
one process uses one directory. Asking for a second one is refused rather than silently
ignored.

The cache is trusted: an executable read from it is run as is, so never point it at a
directory that others can write to.

Example:
    >>> import tempfile
    >>> directory = tempfile.mkdtemp()
    >>> enable_compile_cache(directory) == enable_compile_cache(directory)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

__all__ = ["enable_compile_cache", "compile_cache_dir"]

_enabled: Path | None = None
"""The directory :func:`enable_compile_cache` set in this process, if any."""


def _jax_cache_opened() -> bool:
    """Whether JAX has already opened its persistent cache in this process."""
    try:
        from jax._src import compilation_cache
    except ImportError:  # pragma: no cover - a JAX without the module
        return False
    return bool(getattr(compilation_cache, "is_initialized", lambda: False)())


def compile_cache_dir() -> Path | None:
    """The persistent compilation cache directory of this process, if one is set.

    Returns:
        The directory set by :func:`enable_compile_cache` (or, failing that, through JAX's
        own ``jax_compilation_cache_dir`` / ``$JAX_COMPILATION_CACHE_DIR``), or ``None``.
    """
    if _enabled is not None:
        return _enabled
    configured = jax.config.jax_compilation_cache_dir
    return Path(configured) if configured else None


def enable_compile_cache(directory: str | os.PathLike, *, min_compile_time: float = 0.0) -> Path:
    """Keep compiled programs in ``directory`` and reuse them in later processes.

    Sets JAX's persistent compilation cache to ``directory`` (created if missing) and
    caches every program that takes at least ``min_compile_time`` seconds to compile, of
    any size. Call it before training; :func:`jdl.fit`, :func:`jdl.train.sweep` and the
    ``jdl train --compile-cache DIR`` command call it for you. Calling it again with the
    same directory does nothing (``min_compile_time`` is updated).

    Args:
        directory: the cache folder. Entries are keyed by program, compiler options,
            device kind and the jax/jaxlib versions, so one folder can serve many models
            and machines; delete it to clear the cache.
        min_compile_time: programs that compile faster than this many seconds are not
            written (JAX's own default is 1 s, which skips most CPU programs of small
            models: the reason for the default of 0 here).

    Returns:
        The cache directory, as an absolute path.

    Raises:
        ValueError: if this process already uses another cache directory (JAX reads the
            setting once per process: use a new process for another directory), or if
            ``min_compile_time`` is negative.
        NotADirectoryError: if ``directory`` exists and is not a folder.
    """
    global _enabled
    path = Path(directory).expanduser().absolute()
    if not isinstance(min_compile_time, int | float) or min_compile_time < 0:
        raise ValueError(
            f"min_compile_time must be a number of seconds >= 0; got {min_compile_time!r}."
        )
    current = _enabled
    if current is None and _jax_cache_opened() and jax.config.jax_compilation_cache_dir:
        current = Path(jax.config.jax_compilation_cache_dir).expanduser().absolute()
    if current is not None and current.resolve() != path.resolve():
        raise ValueError(
            f"This process already keeps its compilation cache in {current}; got "
            f"compile_cache={str(path)!r}. JAX opens its cache once per process: use one "
            "directory per process (start a new one for another directory)."
        )
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            f"compile_cache must be a directory; {path} exists and is not a folder."
        )
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    _enabled = path
    return path
