"""Datasets and input pipelines: ``load``, ``batches``, bundled datasets, augmentation.

Bundled datasets (:data:`BUNDLED`) are generated locally, without network access, by
TFDS builders (:mod:`jdl.data.builders`) into ``array_record`` files in a cache
directory, and read by index without TensorFlow. Every example is a dict with ``"x"``
(inputs) and ``"y"`` (targets); TFDS catalog datasets get their supervised keys renamed
to these. :func:`from_arrays` makes such a source of arrays you already hold.
:func:`batches` turns any such source into shuffled, per-process batches.

Example:
    >>> import jdl.data
    >>> train = jdl.data.load("digits", "train")
    >>> batch = next(jdl.data.batches(train, batch_size=64))
    >>> batch["x"].shape, batch["y"].shape
    ((64, 8, 8, 1), (64,))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jdl._core.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; at run time see __getattr__
    from jdl.data.arrays import ArraySource, as_source, from_arrays
    from jdl.data.augment import gaussian_noise, random_crop, random_flip
    from jdl.data.cache import resolve_data_dir
    from jdl.data.coffee import coffee_demand
    from jdl.data.errors import (
        DatasetNotPreparedError,
        RemoteCodeError,
        UnknownDatasetError,
        UnknownSplitError,
    )
    from jdl.data.info import DatasetInfo, dataset_info
    from jdl.data.pipeline import batches, epoch_order
    from jdl.data.prepare import BUNDLED
    from jdl.data.sources import SupervisedSource, as_arrays, load

#: Where each public name lives: importing :mod:`jdl.data` imports none of them (nor
#: TensorFlow Datasets or Grain); each is imported from its module when first used.
_WHERE = {
    "ArraySource": "jdl.data.arrays",
    "as_arrays": "jdl.data.sources",
    "as_source": "jdl.data.arrays",
    "batches": "jdl.data.pipeline",
    "BUNDLED": "jdl.data.prepare",
    "coffee_demand": "jdl.data.coffee",
    "dataset_info": "jdl.data.info",
    "DatasetInfo": "jdl.data.info",
    "DatasetNotPreparedError": "jdl.data.errors",
    "epoch_order": "jdl.data.pipeline",
    "from_arrays": "jdl.data.arrays",
    "gaussian_noise": "jdl.data.augment",
    "load": "jdl.data.sources",
    "random_crop": "jdl.data.augment",
    "random_flip": "jdl.data.augment",
    "RemoteCodeError": "jdl.data.errors",
    "resolve_data_dir": "jdl.data.cache",
    "SupervisedSource": "jdl.data.sources",
    "UnknownDatasetError": "jdl.data.errors",
    "UnknownSplitError": "jdl.data.errors",
}

__all__ = [
    "ArraySource",
    "BUNDLED",
    "DatasetInfo",
    "DatasetNotPreparedError",
    "RemoteCodeError",
    "SupervisedSource",
    "UnknownDatasetError",
    "UnknownSplitError",
    "as_arrays",
    "as_source",
    "batches",
    "coffee_demand",
    "dataset_info",
    "epoch_order",
    "from_arrays",
    "gaussian_noise",
    "load",
    "random_crop",
    "random_flip",
    "resolve_data_dir",
]

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
