"""``load``: a random-access data source of ``{"x", "y"}`` examples, and ``as_arrays``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from jdl.data._access import (
    check_index,
    check_indices,
    check_source,
    read_all,
    read_examples,
)
from jdl.data.errors import UnknownSplitError
from jdl.data.stacking import _stack_examples, empty_batch

if TYPE_CHECKING:  # TensorFlow Datasets is imported by load, when first used
    import tensorflow_datasets as tfds

    from jdl.data.info import DatasetInfo

__all__ = ["SupervisedSource", "as_arrays", "load"]


def _as_numpy(value: Any, dtype: np.dtype) -> np.ndarray:
    if dtype.kind in "biufc":
        return np.asarray(value, dtype=dtype)
    return np.asarray(value)


class _Decoded:
    """A :class:`SupervisedSource`'s wrapped examples, decoded (what it reads into memory)."""

    def __init__(self, source: SupervisedSource) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source.source)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return self.source._read([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, np.ndarray]]:
        return self.source._read(list(indices))


class SupervisedSource:
    """One split of a dataset, read by index, with examples ``{"x": ..., "y": ...}``.

    A thin wrapper around a TFDS data source (``builder.as_data_source(split)``) that
    keeps only the dataset's supervised keys, renamed to ``"x"`` (inputs) and ``"y"``
    (targets), as NumPy arrays of the dtypes in :attr:`info`. It implements the
    random-access protocol (``len``, ``[i]``, ``__getitems__``), so it works with
    :func:`jdl.data.batches`, ``grain.MapDataset.source`` and PyTorch-style loaders, and
    it pickles (for worker processes) when the wrapped source does.

    With ``in_memory=True`` every example is decoded once, at construction, into two
    arrays; reads are then plain NumPy indexing (decoding a TFDS record costs tens of
    microseconds, indexing an array well under one), which matters for small datasets
    that are read many times per second.

    Attributes:
        source: The wrapped TFDS data source.
        split: The split expression it reads, e.g. ``"train"`` or ``"train+test"``.
        info: The dataset's :class:`~jdl.data.DatasetInfo` (``info.num_classes``, ...).
    """

    def __init__(
        self, source: Sequence[Any], *, split: str, info: DatasetInfo, in_memory: bool = False
    ) -> None:
        """Wraps ``source``.

        Args:
            source: A random-access source whose examples are dicts holding the keys
                ``info.supervised_keys``.
            split: The split expression ``source`` reads.
            info: The dataset summary; gives the keys to rename and the dtypes.
            in_memory: Decode every example now and serve reads from memory.
        """
        self.source = source
        self.split = split
        self.info = info
        self._arrays: dict[str, np.ndarray] | None = None
        if in_memory:
            self._arrays = self._read_all()

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self.info.name

    @property
    def in_memory(self) -> bool:
        """Whether the examples are held in memory as arrays."""
        return self._arrays is not None

    def __len__(self) -> int:
        return len(self.source)

    def _read_all(self) -> dict[str, np.ndarray]:
        n = len(self.source)
        if n == 0:
            shapes = {"x": self.info.x_shape, "y": self.info.y_shape}
            dtypes = {"x": self.info.x_dtype, "y": self.info.y_dtype}
            return {k: np.empty((0, *(d or 0 for d in shapes[k])), dtypes[k]) for k in ("x", "y")}
        return read_all(_Decoded(self))

    def _index(self, index: Any) -> int:
        return check_index(index, len(self), f"{self.name!r}/{self.split}")

    def _convert(self, example: Any) -> dict[str, np.ndarray]:
        x_key, y_key = self.info.supervised_keys
        return {
            "x": _as_numpy(example[x_key], self.info.x_dtype),
            "y": _as_numpy(example[y_key], self.info.y_dtype),
        }

    def _read(self, keys: list[int]) -> list[dict[str, np.ndarray]]:
        return [self._convert(example) for example in read_examples(self.source, keys)]

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        """Returns example ``index`` as ``{"x": np.ndarray, "y": np.ndarray}``.

        Raises:
            TypeError: If ``index`` is not an integer.
            IndexError: If ``index`` is out of range.
        """
        i = self._index(index)
        if self._arrays is not None:
            return {key: np.array(value[i]) for key, value in self._arrays.items()}
        return self._convert(self.source[i])

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, np.ndarray]]:
        """Returns several examples at once (one batched read when the source allows)."""
        keys = [self._index(i) for i in indices]
        if self._arrays is not None:
            return [self[i] for i in keys]
        return self._read(keys)

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Returns the examples at ``indices`` stacked: ``{"x": (k, ...), "y": (k, ...)}``.

        Equivalent to stacking ``[self[i] for i in indices]``, but a single array
        indexing when the source is in memory. :func:`jdl.data.batches` and
        :func:`jdl.data.as_arrays` use it.

        Args:
            indices: Integer indices (negative ones count from the end); may be empty.

        Returns:
            Freshly allocated arrays, in the order of ``indices``.

        Raises:
            TypeError: If ``indices`` are not integers.
            IndexError: If an index is out of range.
        """
        idx = check_indices(indices, len(self), f"{self.name!r}/{self.split}")
        if self._arrays is not None:
            return {key: value[idx] for key, value in self._arrays.items()}
        if idx.size == 0:
            return empty_batch(self._read([0])[0])
        return _stack_examples(self._read(idx.tolist()))

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        memory = ", in_memory=True" if self.in_memory else ""
        return (
            f"SupervisedSource(name={self.name!r}, split={self.split!r}, len={len(self)}{memory})"
        )


def _check_split(split: str, info: DatasetInfo) -> None:
    if not info.splits:  # Unknown before a catalog dataset is prepared: let TFDS decide.
        return
    for part in split.split("+"):
        base = part.split("[", 1)[0].strip()
        if base != "all" and base not in info.splits:
            raise UnknownSplitError(
                f"Unknown split {base!r} in {split!r} for dataset {info.name!r}; available "
                f"splits: {list(info.splits)} (TFDS split expressions such as 'train[:80%]' "
                "or 'train+test' also work)."
            )


def _check_not_empty(builder: tfds.core.DatasetBuilder, name: str, split: str) -> None:
    """A split expression that selects no examples (``"train[:0]"``) is an error, said so."""
    if not builder.info.splits:
        return
    try:
        count = builder.info.splits[split].num_examples
    except (KeyError, ValueError, AssertionError):  # TFDS parses it again below, and says why
        return
    if count == 0:
        sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
        raise ValueError(
            f"Split {split!r} of dataset {name!r} selects no examples (the splits hold "
            f"{sizes}); check the slice, e.g. 'train[:80%]'."
        )


def load(
    name: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    in_memory: bool | None = None,
    allow_remote_code: bool = False,
) -> SupervisedSource:
    """Loads one split of a dataset as a random-access source of ``{"x", "y"}`` examples.

    Bundled datasets (:data:`jdl.data.BUNDLED`: ``"iris"``, ``"digits"``, ``"mnist1d"``,
    ``"coffee"``) are generated locally on first use (no network) into the cache
    directory and reused afterwards. Any other name is looked up in the TFDS catalog and
    read with TFDS' random-access data source; its supervised keys (e.g.
    ``("image", "label")``) are renamed to ``"x"``/``"y"``. Catalog datasets keep their
    stored dtypes (MNIST images stay ``uint8``): normalise them in the ``transform`` of
    :func:`jdl.data.batches`.

    Args:
        name: A bundled name or a TFDS catalog name (optionally with config/version,
            ``"cifar10:3.0.2"``).
        split: A split name or TFDS split expression: ``"train"``, ``"test"``,
            ``"train+test"``, ``"train[:80%]"``, ...
        data_dir: Where the data lives, for bundled and catalog datasets alike: by
            default ``$JDL_DATA_DIR``, else ``$XDG_CACHE_HOME/jdl/datasets``, else
            ``~/.cache/jdl/datasets`` (see :func:`jdl.data.resolve_data_dir`). TFDS' own
            directory (``~/tensorflow_datasets``) is not searched: pass it as
            ``data_dir`` to read datasets prepared there.
        download: Catalog datasets only: if their data is not prepared, let TFDS
            download and prepare it in ``array_record`` format (needs network access;
            some datasets also need TensorFlow to prepare). With ``download=False`` (the
            default) nothing touches the network: unprepared data is an error. Ignored for
            bundled datasets, which never need the network.
        in_memory: Decode the whole split into memory once so that reads are plain
            array indexing (see :class:`SupervisedSource`). Default: ``True`` for the
            bundled datasets (at most a few MB), ``False`` for catalog datasets.
        allow_remote_code: Allow names in a TFDS namespace (``"huggingface:mnist"``,
            ``"kaggle:..."``, community namespaces), whose builder code TFDS fetches from
            outside TFDS and runs; refused by default. Without ``download=True`` such a
            dataset is only looked up among prepared files, without its code and without
            the network.

    Returns:
        A :class:`SupervisedSource`: ``len(source)``, ``source[i] -> {"x": ..., "y": ...}``
        and ``source.info`` (a :class:`~jdl.data.DatasetInfo`).

    Raises:
        UnknownDatasetError: If ``name`` is neither bundled nor in the TFDS catalog.
        UnknownSplitError: If ``split`` names a split the dataset does not have.
        DatasetNotPreparedError: If a catalog dataset's data is not prepared in
            ``data_dir`` (and ``download`` is false); the message names the directory, how
            it was chosen (``data_dir``, ``$JDL_DATA_DIR`` or the default) and how to get
            the data (``download=True``, ``python -m jdl train --download``, or a copy).
        RemoteCodeError: If ``name`` is in a TFDS namespace and ``allow_remote_code`` is
            false (checked before TFDS is asked anything).
        TypeError: If ``name`` or ``split`` is not a string.
        ValueError: If a catalog dataset has no (input, target) supervised keys.

    Example:
        >>> train = load("iris")
        >>> len(train), train[0]["x"].shape, train.info.num_classes
        (120, (4,), 3)
    """
    # Here, not at the top: SupervisedSource and as_arrays need no TensorFlow Datasets.
    import tensorflow_datasets as tfds

    from jdl.data._cleanup import no_tfds_tempdirs
    from jdl.data.catalog import _catalog_builder, _check_name, _not_prepared, _supervised_keys
    from jdl.data.info import summarize
    from jdl.data.prepare import BUNDLED, _is_prepared, _prepare

    _check_name(name)
    if not isinstance(split, str):
        raise TypeError(
            f"split must be a str such as 'train' or 'train+test', got "
            f"{type(split).__name__}: {split!r}"
        )
    bundled = name in BUNDLED
    builder = (
        _prepare(name, data_dir)
        if bundled
        else _catalog_builder(
            name, data_dir, download=download, allow_remote_code=allow_remote_code
        )
    )
    _supervised_keys(builder)  # Fail early, before touching any data.
    if not bundled and download and not _is_prepared(builder):
        with no_tfds_tempdirs():
            builder.download_and_prepare(
                file_format="array_record",
                download_config=tfds.download.DownloadConfig(try_download_gcs=False),
            )
    info = summarize(builder, name, bundled=bundled)
    _check_split(split, info)
    _check_not_empty(builder, name, split)
    try:
        source = builder.as_data_source(split=split)
    except Exception as err:
        if not bundled and not _is_prepared(builder):
            raise _not_prepared(name, data_dir) from err
        raise
    if in_memory is None:
        in_memory = bundled
    return SupervisedSource(source, split=split, info=info, in_memory=bool(in_memory))


def as_arrays(source: Sequence[Any]) -> dict[str, np.ndarray]:
    """Reads a whole (small) source into arrays, in order.

    The source is read in chunks of examples (one ``get_batch`` or ``__getitems__`` call
    each, where it has them) into arrays allocated once, so reading takes about the
    memory of the result, not a list of examples and a stacked copy of it.

    Args:
        source: A random-access source of dict examples, e.g. from :func:`load`.

    Returns:
        ``{key: array}`` with every example stacked along axis 0 in index order, e.g.
        ``{"x": (N, ...), "y": (N, ...)}``.

    Raises:
        ValueError: If ``source`` is empty.
        TypeError: If ``source`` does not support ``len`` and indexing, or its examples
            are not dicts.

    Example:
        >>> arrays = as_arrays(load("coffee", "test"))
        >>> arrays["x"].shape, arrays["y"].shape
        ((128, 1), (128, 1))
    """
    check_source(source)
    n = len(source)
    if n == 0:
        raise ValueError(f"cannot convert an empty source to arrays: {source!r}")
    return read_all(source)
