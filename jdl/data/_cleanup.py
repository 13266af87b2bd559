"""Cleaning up after interrupted preparations, and after TFDS' temporary directories (private).

Two kinds of leftovers:

* A bundled dataset's preparation that is killed (``SIGKILL``, out of memory, power loss:
  anything that skips Python's ``finally`` blocks) leaves TFDS' ``incomplete.*``
  directory next to the final version directory and jdl's ``.downloads-<builder>-*``
  directory in the cache. Both are only ever used while their preparation holds the
  builder's file lock (``<data_dir>/.<builder>.lock``), and an ``flock`` lock is released
  by the kernel when its process dies; so whoever holds that lock knows that every such
  directory of that builder belongs to no live preparation, and removes it
  (:func:`remove_stale`). Download directories named ``.downloads-XXXXXXXX`` (earlier
  jdl versions named them without the builder) may belong to any bundled dataset; they
  are removed only while no preparation of any bundled dataset holds its lock.
* Constructing a TFDS builder whose data is not prepared yet calls
  ``DatasetInfo.initialize_from_bucket``, which makes a ``tmp*tfds`` directory in the
  system temporary directory (``tempfile.mkdtemp("tfds")``) and never removes it, even
  when it copies nothing into it (always, when TFDS' GCS access is disabled, its
  default). jdl's bundled builders skip that GCS lookup altogether
  (:class:`LocalDatasetInfo`); around jdl's calls into TFDS for catalog datasets,
  :func:`no_tfds_tempdirs` records the directories that TFDS makes in *this* call and
  removes those that are still empty afterwards. Directories made by other threads,
  other processes or by TFDS calls outside jdl are never touched; a non-empty one is
  kept, because TFDS reads dataset metadata from it lazily.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tensorflow_datasets as tfds

from jdl.data.cache import file_lock

_LOG = logging.getLogger(__name__)

#: Prefix of the temporary download directory of one bundled dataset's preparation.
_DOWNLOADS = ".downloads-"
#: TFDS' prefix of the directory a dataset version is written into before its rename.
_INCOMPLETE = "incomplete."
#: ``tempfile``'s random names (8 characters of ``[a-z0-9_]``): jdl's old download names.
_LEGACY_DOWNLOADS = re.compile(rf"^{re.escape(_DOWNLOADS)}[a-z0-9_]{{8}}$")


def lock_path(root: Path, builder_name: str) -> Path:
    """The lock file that a preparation of builder ``builder_name`` in ``root`` holds."""
    return root / f".{builder_name}.lock"


def downloads_prefix(builder_name: str) -> str:
    """Prefix of the temporary download directory of a preparation of ``builder_name``."""
    return f"{_DOWNLOADS}{builder_name}-"


def _entries(directory: Path) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def leftovers(root: Path, builder: tfds.core.DatasetBuilder) -> list[Path]:
    """The ``incomplete.*`` and ``.downloads-<builder>-*`` entries of ``builder`` in ``root``.

    Only meaningful while the builder's lock is held (see the module docstring): then none
    of them belongs to a live preparation.
    """
    builder_dir = Path(builder.data_path).parent  # <root>/<name>[/<config>]
    prefix = downloads_prefix(builder.name)
    return [p for p in _entries(builder_dir) if p.name.startswith(_INCOMPLETE)] + [
        p for p in _entries(root) if p.name.startswith(prefix)
    ]


def legacy_downloads(root: Path) -> list[Path]:
    """Download directories that jdl named without their builder (``.downloads-XXXXXXXX``)."""
    return [p for p in _entries(root) if _LEGACY_DOWNLOADS.match(p.name)]


def _remove(path: Path, name: str) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return
    except OSError as err:
        _LOG.warning(
            "Could not remove %s, left by an interrupted preparation of jdl dataset %r: %s",
            path,
            name,
            err,
        )
        return
    _LOG.info("Removed %s, left by an interrupted preparation of jdl dataset %r", path, name)


def remove_stale(
    root: Path,
    builder: tfds.core.DatasetBuilder,
    name: str,
    other_builders: list[str],
) -> list[Path]:
    """Removes what interrupted preparations of ``builder`` left in ``root``.

    The caller must hold ``builder``'s lock (:func:`lock_path`). Old-style download
    directories (:func:`legacy_downloads`) are removed too, but only if the locks of all
    ``other_builders`` can be taken at once without waiting (so no preparation of any
    bundled dataset is running in ``root``); otherwise they are left for a later call.

    Args:
        root: The cache directory.
        builder: The builder whose lock the caller holds.
        name: The dataset's short name, for the log.
        other_builders: Names of the other bundled builders that share ``root``.

    Returns:
        The paths it tried to remove.
    """
    stale = leftovers(root, builder)
    for path in stale:
        _remove(path, name)
    legacy = legacy_downloads(root)
    if legacy:
        with contextlib.ExitStack() as stack:
            held = all(
                stack.enter_context(file_lock(lock_path(root, other), blocking=False))
                for other in other_builders
            )
            if held:
                for path in legacy:
                    _remove(path, name)
                stale += legacy
            else:
                _LOG.debug("Another jdl dataset is being prepared in %s: keeping %s", root, legacy)
    return stale


class LocalDatasetInfo(tfds.core.DatasetInfo):
    """A ``DatasetInfo`` that never looks for pre-computed metadata on TFDS' GCS bucket.

    For datasets generated locally (jdl's bundled ones), which are not on the bucket:
    TFDS' lookup would only make (and leave) an empty ``tmp*tfds`` directory in the
    system temporary directory.
    """

    def initialize_from_bucket(self) -> None:
        """Does nothing: the dataset is generated locally, never fetched from GCS."""


#: The ``tmp*tfds`` directories TFDS made in the current context, while one is recorded.
_CREATED: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "jdl_tfds_tempdirs", default=None
)
_INSTALL_LOCK = threading.Lock()


class _RecordingTempfile:
    """Stands in for :mod:`tempfile` inside ``tensorflow_datasets.core.dataset_info``.

    Every attribute is the real module's; ``mkdtemp`` also records, in the current
    :func:`no_tfds_tempdirs` context (if any), the directories made with TFDS' ``"tfds"``
    suffix. Outside such a context it behaves exactly like :func:`tempfile.mkdtemp`.
    """

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def mkdtemp(self, suffix: Any = None, prefix: Any = None, dir: Any = None) -> Any:  # noqa: A002
        path = self._module.mkdtemp(suffix, prefix, dir)
        created = _CREATED.get()
        if created is not None and suffix == "tfds":
            created.append(os.fspath(path))
        return path


def _install_recorder() -> None:
    from tensorflow_datasets.core import dataset_info

    with _INSTALL_LOCK:
        current = getattr(dataset_info, "tempfile", None)
        if current is not None and not isinstance(current, _RecordingTempfile):
            dataset_info.tempfile = _RecordingTempfile(current)


@contextlib.contextmanager
def no_tfds_tempdirs() -> Iterator[None]:
    """Removes the empty ``tmp*tfds`` directories TFDS makes in this block, in this thread.

    Only directories created by TFDS' ``DatasetInfo.initialize_from_bucket`` during the
    block, in the current thread (or context), are considered; each is removed with
    :func:`os.rmdir`, so one holding files (metadata TFDS copied from GCS and may still
    read) is kept. Nesting is fine: each block cleans what was made inside it.
    """
    _install_recorder()
    created: list[str] = []
    token = _CREATED.set(created)
    try:
        yield
    finally:
        _CREATED.reset(token)
        for path in created:
            try:
                os.rmdir(path)
            except FileNotFoundError:
                continue
            except OSError:  # not empty: TFDS may still read metadata from it
                _LOG.debug("Keeping TFDS' temporary directory %s: it is not empty", path)
                continue
            _LOG.debug("Removed TFDS' empty temporary directory %s", path)
