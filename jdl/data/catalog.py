"""Access to datasets of the TFDS catalog (``"mnist"``, ``"cifar10"``, ...).

Names without a namespace are datasets whose builder code ships with TFDS itself. A name
with a namespace (``"huggingface:mnist"``, ``"kaggle:..."``, any TFDS community namespace)
makes TFDS fetch builder code from elsewhere and run it (for ``huggingface:``, through the
Hugging Face ``datasets`` library, which also talks to the Hub): jdl refuses those unless
the caller passes ``allow_remote_code=True``, and checks this before TFDS is asked anything.
Without ``download=True`` nothing touches the network: a namespaced dataset is then looked up
only among files already prepared in ``data_dir``, without its builder code (TFDS 4.9 cannot
find namespaced datasets that way, so it is reported as not prepared; ``download=True`` reuses
prepared data but lets TFDS reach the network for the builder).
"""

from __future__ import annotations

import difflib
import os
import re
import shlex

import tensorflow_datasets as tfds

from jdl.data._cleanup import no_tfds_tempdirs
from jdl.data.cache import describe_data_dir, resolve_data_dir
from jdl.data.errors import DatasetNotPreparedError, RemoteCodeError, UnknownDatasetError
from jdl.data.prepare import BUNDLED

# A TFDS version right after the dataset name ("cifar10:3.0.2", "mnist:3.*.*") is no namespace.
_VERSION = re.compile(r"^(\d+|\*)(\.(\d+|\*)){2}$")


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


def _namespace(name: str) -> str | None:
    """The TFDS namespace of ``name`` (``"huggingface"`` in ``"huggingface:mnist/c:1.0.0"``)."""
    head = name.split("/", 1)[0]
    namespace, sep, rest = head.partition(":")
    if not sep or _VERSION.match(rest):
        return None
    return namespace


def _check_remote_code(name: str, allow_remote_code: bool) -> str | None:
    """The namespace of ``name``; refuses a namespaced name unless ``allow_remote_code``.

    Raises:
        RemoteCodeError: ``name`` has a namespace and ``allow_remote_code`` is false.
    """
    namespace = _namespace(name)
    if namespace is not None and not allow_remote_code:
        via = " (through the Hugging Face `datasets` library)" if namespace == "huggingface" else ""
        raise RemoteCodeError(
            f"Dataset {name!r} is in the TFDS namespace {namespace!r}: TFDS would fetch its "
            f"builder code from outside TFDS{via} and run it. jdl does that only on request: "
            "pass allow_remote_code=True if you trust the source (with download=True to fetch "
            "the data too). Datasets without a namespace ('mnist', 'cifar10') ship their code "
            "with TFDS and need no such permission."
        )
    return namespace


def _not_prepared(
    name: str, data_dir: str | os.PathLike[str] | None, *, remote: bool = False
) -> DatasetNotPreparedError:
    """The error for a catalog dataset with no prepared data in the data directory.

    It names the directory and how it was chosen (:func:`jdl.data.cache.describe_data_dir`),
    and the ways to get the data there: ``download=True`` from Python, ``--download`` from
    the command line, or a copy of files TFDS prepared elsewhere.

    Args:
        name: The dataset name the user gave.
        data_dir: The ``data_dir`` the user gave (``None``: the environment or default).
        remote: Whether ``name`` is in a TFDS namespace (the Python call then needs
            ``allow_remote_code=True``, and the command line has no way to pass it).
    """
    root, how = describe_data_dir(data_dir)
    given = "" if data_dir is None else f", data_dir={os.fspath(data_dir)!r}"
    call = f"jdl.data.load({name!r}{given}, download=True"
    if remote:
        call += ", allow_remote_code=True)"
        ways = f"from Python, {call}"
    else:
        option = "" if data_dir is None else f" --data-dir {shlex.quote(os.fspath(data_dir))}"
        ways = (
            f"from Python, {call}); from the command line, python -m jdl train --dataset "
            f"{shlex.quote(name)}{option} --download"
        )
    return DatasetNotPreparedError(
        f"TFDS dataset {name!r} is not prepared locally in {root} (the data directory, {how}), "
        "and jdl touches the network only when asked to download. To download and prepare it "
        f"there once (needs network access): {ways}. Without network, copy in the files of a "
        f"machine that prepared it (TFDS' folder {name.split(':')[0]}/<version>/ of array_record "
        f"files, e.g. in ~/tensorflow_datasets after tfds.builder({name!r}, "
        "file_format='array_record').download_and_prepare()), or point $JDL_DATA_DIR or "
        "data_dir at a directory that holds them."
    )


def _catalog_builder(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    allow_remote_code: bool = False,
) -> tfds.core.DatasetBuilder:
    """Returns the TFDS builder of a catalog dataset, set up to read ``array_record`` files.

    Nothing is downloaded or generated here. A namespaced name (see the module docstring)
    needs ``allow_remote_code``; without ``download`` it is read from prepared files only.

    Args:
        name: A TFDS name, optionally with config and version (``"mnist"``,
            ``"cifar10:3.0.2"``).
        data_dir: The data directory, or ``None`` for :func:`jdl.data.resolve_data_dir`'s
            default (``$JDL_DATA_DIR``, else jdl's cache): the one bundled datasets use.
        download: Whether the caller will let TFDS download (a namespaced builder may then
            be fetched and run).
        allow_remote_code: Allow namespaced names, whose builder code TFDS fetches.

    Returns:
        The builder.

    Raises:
        UnknownDatasetError: If TFDS has no dataset called ``name``.
        RemoteCodeError: A namespaced name without ``allow_remote_code``.
        DatasetNotPreparedError: A namespaced dataset without ``download`` whose files are
            not prepared in ``data_dir``.
    """
    _check_name(name)
    namespace = _check_remote_code(name, allow_remote_code)
    kwargs = {"data_dir": os.fspath(resolve_data_dir(data_dir))}  # one cache for all datasets
    if namespace is not None and not download:
        from tensorflow_datasets.core import read_only_builder

        try:  # the prepared files only: no builder code, no network
            with no_tfds_tempdirs():
                return read_only_builder.builder_from_files(name, **kwargs)
        except tfds.core.DatasetNotFoundError:
            raise _not_prepared(name, data_dir, remote=True) from None
    try:
        # An unprepared builder makes an (empty) tmp*tfds directory that TFDS never removes.
        with no_tfds_tempdirs():
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
