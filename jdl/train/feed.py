"""Feeding batches to a training loop: deterministic epochs, exact resumption.

:func:`_epoch_batches` yields the training batches of one epoch. Small sources (the
bundled datasets, anything up to ``_IN_MEMORY_BYTES``) are read once into NumPy arrays
(:func:`jdl.data.from_arrays` sources are used as they are) and batched by fancy
indexing — no per-example Python work per step — while larger
sources stream through :func:`jdl.data.batches` (Grain). Either way epoch ``e`` visits
the examples in the order ``jdl.data.epoch_order(n, seed, e)`` (streamed, as
``batches(..., seed=seed, start_epoch=e)``), so the same examples give the same batches held
in memory or streamed, and a run resumed at an epoch boundary sees exactly the batches the
uninterrupted run would have seen.

:func:`_eval_batches` yields every example exactly once, in order, in batches of a
fixed shape: the last batch is padded and carries a boolean ``"mask"``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import jax
import numpy as np

from jdl.data import ArraySource, as_arrays, batches, epoch_order
from jdl.data._access import read_batch

_IN_MEMORY_BYTES = 1 << 30
"""Sources estimated below this size are loaded into memory once by :func:`_make_feed`."""


def _estimated_bytes(source: Sequence[Any]) -> int:
    example = source[0]
    return len(source) * sum(np.asarray(v).nbytes for v in example.values())


class _ArrayFeed:
    """A source held as NumPy arrays: ``{"x": (n, ...), "y": (n, ...)}``."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.num_examples = len(next(iter(arrays.values())))

    def __len__(self) -> int:
        return self.num_examples

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The examples at ``indices``, stacked."""
        return {k: v[indices] for k, v in self.arrays.items()}


def _make_feed(source: Sequence[Any]) -> _ArrayFeed | Sequence[Any]:
    """An :class:`_ArrayFeed` for a small source, else the source itself (streamed)."""
    if isinstance(source, _ArrayFeed):
        return source
    if len(source) == 0:
        raise ValueError("The dataset is empty.")
    if isinstance(source, ArraySource):  # already arrays: no copy, whatever the size
        return _ArrayFeed(source.arrays)
    if _estimated_bytes(source) <= _IN_MEMORY_BYTES:
        return _ArrayFeed(as_arrays(source))
    return source


def _shard(n: int) -> slice:
    """This process's contiguous part of a global batch of ``n`` examples.

    Raises:
        ValueError: if ``n`` does not split evenly over the processes.
    """
    i, count = jax.process_index(), jax.process_count()
    if n % count:
        raise ValueError(
            f"A global batch of {n} examples does not split evenly over {count} processes; "
            f"use a batch size that is a multiple of {count}."
        )
    return slice(n * i // count, n * (i + 1) // count)


def _epoch_batches(
    feed: _ArrayFeed | Sequence[Any],
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    skip: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    """The training batches of epoch ``epoch`` (0-based): full global batches only.

    Each process yields its contiguous slice of every global batch (as
    :func:`jdl.data.batches` does). ``skip`` drops the first batches (for resuming).
    """
    n = len(feed)
    steps = n // batch_size
    if isinstance(feed, _ArrayFeed):
        order = epoch_order(n, seed, epoch) if shuffle else np.arange(n)
        part = _shard(batch_size)
        for s in range(skip, steps):
            yield feed.take(order[s * batch_size : (s + 1) * batch_size][part])
        return
    it = batches(feed, batch_size, shuffle=shuffle, seed=seed, start_epoch=epoch, num_epochs=1)
    for s, batch in enumerate(it):
        if s >= skip:
            yield batch


def _eval_batches(
    feed: _ArrayFeed | Sequence[Any], batch_size: int
) -> Iterator[dict[str, np.ndarray]]:
    """Every example once, in order, in batches of exactly ``batch_size`` (global).

    The last batch is padded by repeating example 0; its ``"mask"`` is ``False`` on the
    padding. Each process yields its slice of every global batch.
    """
    n = len(feed)
    part = _shard(batch_size)
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size)
        mask = idx < n
        idx = np.where(mask, idx, 0)[part]
        if isinstance(feed, _ArrayFeed):
            batch = feed.take(idx)
        else:
            batch = read_batch(feed, idx)
        batch["mask"] = mask[part]
        yield batch
