"""A small summary of a dataset: splits, shapes, dtypes and number of classes."""

from __future__ import annotations

import dataclasses
import os
from typing import Literal

import numpy as np
import tensorflow_datasets as tfds

from jdl.data.catalog import _catalog_builder, _check_name, _supervised_keys
from jdl.data.errors import UnknownSplitError
from jdl.data.prepare import BUNDLED, _prepare

__all__ = ["DatasetInfo", "dataset_info"]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What later code needs to know about a dataset, as seen through ``"x"``/``"y"``.

    Attributes:
        name: The name passed to :func:`jdl.data.load`.
        description: Where the data comes from and what the features mean.
        splits: Split name -> number of examples, in the order train, validation, test,
            then others alphabetically. Empty for a catalog dataset whose data is not
            prepared (TFDS only knows the split sizes after preparation).
        x_shape: Shape of one example's ``"x"`` (``None`` for a variable dimension).
        x_dtype: NumPy dtype of ``"x"``.
        y_shape: Shape of one example's ``"y"`` (``()`` for a class label).
        y_dtype: NumPy dtype of ``"y"``.
        num_classes: Number of classes when ``"y"`` is a class label, else ``None``.
        supervised_keys: The dataset's own feature names renamed to ``("x", "y")``:
            ``("x", "y")`` for bundled datasets, e.g. ``("image", "label")`` for MNIST.
        bundled: Whether this is one of jdl's bundled datasets.
    """

    name: str
    description: str
    splits: dict[str, int]
    x_shape: tuple[int | None, ...]
    x_dtype: np.dtype
    y_shape: tuple[int | None, ...]
    y_dtype: np.dtype
    num_classes: int | None
    supervised_keys: tuple[str, str]
    bundled: bool

    @property
    def task(self) -> Literal["classification", "regression"]:
        """``"classification"`` when ``num_classes`` is set, else ``"regression"``."""
        return "regression" if self.num_classes is None else "classification"

    def num_examples(self, split: str) -> int:
        """Number of examples of one split.

        Args:
            split: A split name, e.g. ``"train"``.

        Returns:
            The split's size.

        Raises:
            UnknownSplitError: If the dataset has no such split (or its sizes are not
                known because the data is not prepared).
        """
        if split not in self.splits:
            raise UnknownSplitError(
                f"dataset {self.name!r} has no split {split!r}; known splits: {list(self.splits)}"
            )
        return self.splits[split]


_SPLIT_ORDER = {"train": 0, "validation": 1, "test": 2}


def _split_rank(split: str) -> tuple[int, str]:
    # TFDS returns splits in a different order before and after a reload; use a fixed
    # one: train, validation, test, then the rest alphabetically.
    return _SPLIT_ORDER.get(split, len(_SPLIT_ORDER)), split


def summarize(builder: tfds.core.DatasetBuilder, name: str, *, bundled: bool) -> DatasetInfo:
    """Builds a :class:`DatasetInfo` from a TFDS builder.

    Args:
        builder: The dataset's builder.
        name: The name users passed.
        bundled: Whether it is a bundled jdl dataset.

    Returns:
        The summary.

    Raises:
        ValueError: If the builder has no usable supervised keys.
    """
    x_key, y_key = _supervised_keys(builder)
    features = builder.info.features
    x_feature, y_feature = features[x_key], features[y_key]
    num_classes = (
        int(y_feature.num_classes) if isinstance(y_feature, tfds.features.ClassLabel) else None
    )
    sizes = {str(s): int(info.num_examples) for s, info in builder.info.splits.items()}
    splits = {s: sizes[s] for s in sorted(sizes, key=_split_rank)}
    return DatasetInfo(
        name=name,
        description=str(builder.info.description),
        splits=splits,
        x_shape=tuple(x_feature.shape),
        x_dtype=np.dtype(x_feature.np_dtype),
        y_shape=tuple(y_feature.shape),
        y_dtype=np.dtype(y_feature.np_dtype),
        num_classes=num_classes,
        supervised_keys=(x_key, y_key),
        bundled=bundled,
    )


def dataset_info(
    name: str, data_dir: str | os.PathLike[str] | None = None, *, allow_remote_code: bool = False
) -> DatasetInfo:
    """Describes a dataset: split sizes, ``x``/``y`` shapes and dtypes, number of classes.

    For a bundled dataset this prepares it first if needed (a few seconds at most, once),
    exactly like :func:`jdl.data.load`. For a TFDS catalog dataset it reads the metadata
    only; its split sizes are known only when its data is prepared in ``data_dir``.

    Args:
        name: A bundled name (see :data:`jdl.data.BUNDLED`) or a TFDS catalog name.
        data_dir: As in :func:`jdl.data.load`.
        allow_remote_code: As in :func:`jdl.data.load`: allow a namespaced TFDS name,
            which is then described from its prepared files only (nothing is fetched).

    Returns:
        A :class:`DatasetInfo`.

    Raises:
        UnknownDatasetError: If ``name`` is neither bundled nor in the TFDS catalog.
        TypeError: If ``name`` is not a string.
        ValueError: If a catalog dataset has no (input, target) supervised keys.
        RemoteCodeError: A namespaced TFDS name without ``allow_remote_code``.
        DatasetNotPreparedError: A namespaced TFDS dataset not prepared in ``data_dir``.

    Example:
        >>> info = dataset_info("iris")
        >>> info.num_classes, info.x_shape, info.splits
        (3, (4,), {'train': 120, 'test': 30})
    """
    _check_name(name)
    if name in BUNDLED:
        return summarize(_prepare(name, data_dir), name, bundled=True)
    builder = _catalog_builder(name, data_dir, allow_remote_code=allow_remote_code)
    return summarize(builder, name, bundled=False)
