"""Access to datasets of the TFDS catalog (``"mnist"``, ``"cifar10"``, ...)."""

from __future__ import annotations

import difflib
import os

import tensorflow_datasets as tfds

from jdl.data.errors import UnknownDatasetError
from jdl.data.prepare import BUNDLED


def _check_name(name: object) -> str:
    """Returns ``name`` if it is a non-empty string.

    Args:
        name: What the caller passed as a dataset name.

    Returns:
        ``name``, unchanged.

    Raises:
        TypeError: If ``name`` is not a string.
        UnknownDatasetError: If ``name`` is empty.
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str, got {type(name).__name__}: {name!r}")
    if not name:
        raise UnknownDatasetError(_unknown_message(name))
    return name


def _unknown_message(name: str) -> str:
    try:
        known = list(BUNDLED) + tfds.list_builders(with_community_datasets=False)
    except Exception:  # Suggestions are a nicety, never the error.
        known = list(BUNDLED)
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"Unknown dataset {name!r}.{hint} Bundled datasets (generated locally, no network): "
        f"{list(BUNDLED)}. Any other name must be a TFDS catalog dataset (e.g. 'mnist', "
        "'cifar10'); those need their data prepared in the array_record format in data_dir "
        "first, which needs network access or a pre-filled data_dir."
    )


def _catalog_builder(
    name: str, data_dir: str | os.PathLike[str] | None = None
) -> tfds.core.DatasetBuilder:
    """Returns the TFDS builder of a catalog dataset, set up to read ``array_record`` files.

    Nothing is downloaded or generated here.

    Args:
        name: A TFDS name, optionally with config and version (``"mnist"``,
            ``"cifar10:3.0.2"``).
        data_dir: TFDS data directory, or ``None`` for TFDS' default (``$TFDS_DATA_DIR``,
            else ``~/tensorflow_datasets``).

    Returns:
        The builder.

    Raises:
        UnknownDatasetError: If TFDS has no dataset called ``name``.
    """
    _check_name(name)
    kwargs = {} if data_dir is None else {"data_dir": os.fspath(data_dir)}
    try:
        return tfds.builder(name, file_format="array_record", **kwargs)
    except tfds.core.DatasetNotFoundError:
        raise UnknownDatasetError(_unknown_message(name)) from None


def _supervised_keys(builder: tfds.core.DatasetBuilder) -> tuple[str, str]:
    """Returns the ``(input, target)`` feature names of a builder's supervised keys.

    Args:
        builder: A TFDS builder.

    Returns:
        The two top-level feature names, e.g. ``("image", "label")``.

    Raises:
        ValueError: If the dataset declares no supervised keys, or keys that are not a
            flat pair of feature names.
    """
    keys = builder.info.supervised_keys
    features = list(builder.info.features.keys())
    if keys is None:
        raise ValueError(
            f"TFDS dataset {builder.name!r} declares no supervised keys (its features are "
            f"{features}); jdl.data.load needs an (input, target) pair to map to 'x'/'y'."
        )
    if len(keys) != 2 or not all(isinstance(k, str) for k in keys):
        raise ValueError(
            f"TFDS dataset {builder.name!r} has supervised keys {keys!r}; jdl.data.load "
            "supports a flat pair of feature names (input, target) only."
        )
    return keys[0], keys[1]
