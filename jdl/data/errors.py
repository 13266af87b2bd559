"""Exceptions raised by :mod:`jdl.data`.

Each one subclasses a built-in exception (``ValueError``, ``FileNotFoundError`` or
``PermissionError``) so callers can catch either the precise jdl error or the familiar
built-in one.
"""

from __future__ import annotations

__all__ = [
    "DatasetNotPreparedError",
    "RemoteCodeError",
    "UnknownDatasetError",
    "UnknownSplitError",
]


class UnknownDatasetError(ValueError):
    """A dataset name is neither a bundled jdl dataset nor in the TFDS catalog."""


class UnknownSplitError(ValueError):
    """A split name does not exist in the dataset (the message lists the splits)."""


class DatasetNotPreparedError(FileNotFoundError):
    """A TFDS catalog dataset has no prepared ``array_record`` data in ``data_dir``."""


class RemoteCodeError(PermissionError):
    """A dataset whose builder code TFDS would fetch and run was asked for without opt-in.

    Raised for namespaced TFDS names (``"huggingface:mnist"``, community namespaces) unless
    ``allow_remote_code=True`` is passed to :func:`jdl.data.load` or
    :func:`jdl.data.dataset_info`.
    """
