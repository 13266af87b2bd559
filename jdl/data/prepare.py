"""Prepare a bundled dataset once into the cache directory, then reuse it."""

from __future__ import annotations

import errno
import logging
import os
import sys
import tempfile

import tensorflow_datasets as tfds

from jdl._core.files import no_space_left
from jdl.data import _cleanup
from jdl.data.builders import BUILDERS
from jdl.data.cache import file_lock, resolve_data_dir
from jdl.data.errors import UnknownDatasetError

__all__ = ["BUNDLED"]

_LOG = logging.getLogger(__name__)

#: Names of the datasets that ship with jdl (generated locally, no network needed).
BUNDLED: tuple[str, ...] = tuple(BUILDERS)


def _is_prepared(builder: tfds.core.DatasetBuilder) -> bool:
    """Whether a builder's data is fully written in its ``data_dir``."""
    # TFDS only renames complete datasets into place, so an existing version directory
    # is a complete one; checking existence first also avoids TFDS' "Variant folder ...
    # has no dataset_info.json" warning before the first preparation.
    return builder.data_path.exists() and builder.is_prepared()


def _prepare(
    name: str, data_dir: str | os.PathLike[str] | None = None
) -> tfds.core.GeneratorBasedBuilder:
    """Returns the TFDS builder of a bundled dataset, generating its files if needed.

    The first call generates the dataset (in ``array_record`` files) under the cache
    directory (see :func:`jdl.data.resolve_data_dir`) and says so in one line on stderr
    (``jdl: preparing dataset 'mnist1d' (bundled with jdl: generated locally, no
    download) in <dir> -- once; ...``; TFDS' own "Downloading and preparing dataset
    Unknown size ..." lines, untrue here, are silenced by the builders); later calls find
    the files and generate (and print) nothing. Generation is atomic: TFDS writes into a temporary
    ``incomplete.*`` directory next to the final one and renames it only after every
    split is written, and removes it if generation fails, so no half-written dataset is
    ever visible. An exclusive file lock (``<data_dir>/.<builder name>.lock``) makes
    concurrent processes wait for the first one instead of generating twice; where
    locks do not work, a process that loses the race reuses the winner's copy.

    A preparation that is killed outright (``SIGKILL``, out of memory) cannot clean up:
    its ``incomplete.*`` directory and its ``.downloads-<builder name>-*`` directory stay.
    The next preparation or load of the dataset that holds the lock removes them (and
    logs each one at INFO level): the kernel releases a dead process's lock, so while
    the lock is held no live process can be using them. Nothing is removed where the
    lock cannot be taken (no ``fcntl``), nor while another process holds it.

    Args:
        name: A bundled dataset name, one of :data:`BUNDLED`.
        data_dir: Cache directory, or ``None`` for :func:`jdl.data.resolve_data_dir`'s
            default.

    Returns:
        The prepared builder; ``builder.as_data_source(split)`` reads a split.

    Raises:
        UnknownDatasetError: If ``name`` is not a bundled dataset.
        OSError: ``errno.ENOSPC``, if the cache directory's disk (or quota) is full: the
            message says "No space left on device" and names the dataset and directory.
            Nothing half-written is left that a later load would take as prepared.
    """
    if name not in BUILDERS:
        raise UnknownDatasetError(
            f"{name!r} is not a bundled dataset; bundled datasets: {list(BUNDLED)}"
        )
    cls = BUILDERS[name]
    root = resolve_data_dir(data_dir)
    lock = _cleanup.lock_path(root, cls.name)
    others = [other.name for other in BUILDERS.values() if other is not cls]
    builder = cls(data_dir=os.fspath(root), file_format="array_record")
    if _is_prepared(builder):
        if _cleanup.leftovers(root, builder) or _cleanup.legacy_downloads(root):
            # Left by a killed preparation (before another process prepared the dataset):
            # remove them, unless a preparation holds the lock right now (never wait).
            with file_lock(lock, blocking=False) as locked:
                if locked:
                    _cleanup.remove_stale(root, builder, name, others)
        return builder
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(lock) as locked:
        # Another process may have prepared it while this one waited for the lock:
        # a fresh builder reads the dataset_info it wrote.
        builder = cls(data_dir=os.fspath(root), file_format="array_record")
        if locked:
            # No live process is preparing this dataset here: what an earlier, killed
            # preparation left (incomplete.*, .downloads-<builder>-*) is stale.
            _cleanup.remove_stale(root, builder, name, others)
        if not _is_prepared(builder):
            _LOG.info("Preparing jdl dataset %r in %s", name, root)
            _announce(name, root)
            # TFDS creates a download directory even when nothing is downloaded: give it
            # a temporary one so the cache holds only datasets. Its name carries the
            # builder's, so that only this dataset's lock holder removes it if this
            # process is killed before its own clean-up.
            try:
                with tempfile.TemporaryDirectory(
                    prefix=_cleanup.downloads_prefix(cls.name), dir=root
                ) as downloads:
                    builder.download_and_prepare(
                        download_dir=downloads,
                        file_format="array_record",
                        # Never ask GCS for a copy: that would touch the network.
                        download_config=tfds.download.DownloadConfig(try_download_gcs=False),
                    )
            except Exception as err:
                # Where file locks do not work (some network file systems), another
                # process may have renamed its complete copy into place first, making
                # this one's final rename fail: use that copy.
                builder = cls(data_dir=os.fspath(root), file_format="array_record")
                if not _is_prepared(builder):
                    if no_space_left(err):
                        raise _no_space(name, root, err) from err
                    raise
                _LOG.info("jdl dataset %r was prepared concurrently; reusing it", name)
    return builder


def _announce(name: str, root: os.PathLike[str]) -> None:
    """Tells the user, on stderr, that a bundled dataset is being generated (once).

    The one line a first load prints (TFDS' own "Downloading and preparing ..." lines are
    silenced by the builders: nothing is downloaded). On stderr, so that it stays out of
    a program's own output.
    """
    print(
        f"jdl: preparing dataset {name!r} (bundled with jdl: generated locally, no download) "
        f"in {os.fspath(root)} -- once; later loads reuse it.",
        file=sys.stderr,
        flush=True,
    )


def _no_space(name: str, root: os.PathLike[str], err: BaseException) -> OSError:
    """The error of a preparation that hit a full disk (TFDS removed its partial files)."""
    text = " ".join(str(err).split())[:200]
    why = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return OSError(
        errno.ENOSPC,
        f"No space left on device in {root} to prepare jdl dataset {name!r} ({why}). Nothing "
        f"half-written was kept; free some space, or set data_dir (or JDL_DATA_DIR) to a "
        f"directory with room, and load it again.",
    )
