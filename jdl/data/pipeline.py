"""``batches``: shuffled, sharded, batched iteration over a random-access source (grain)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jdl._core.checks import check_int
from jdl.data._access import check_source, is_in_memory, read_batch, read_examples
from jdl.data.stacking import _stack_examples, empty_batch

__all__ = ["batches", "epoch_order"]

Example = Mapping[str, Any]
Batch = dict[str, np.ndarray]

# Threads used by default for sources that read from disk. In-memory sources are read
# synchronously: indexing an array is cheaper than handing work to a thread.
_DEFAULT_IO_THREADS = min(4, os.cpu_count() or 1)


def epoch_order(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of the examples in one epoch, identical on every process.

    Args:
        num_examples: Number of examples.
        seed: The user's seed.
        epoch: Epoch number, from 0.

    Returns:
        ``np.random.default_rng(np.random.SeedSequence([seed, epoch])).permutation(n)``.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, epoch]))
    return rng.permutation(num_examples)


class _BatchIndices:
    """Maps a step number to this process' example indices of that global batch.

    Step ``s`` is batch ``s % batches_per_epoch`` of epoch
    ``start_epoch + s // batches_per_epoch``.
    Each epoch's order is one NumPy permutation (microseconds, versus tens of
    microseconds per example for an index-by-index shuffle), computed on demand and
    cached for the epochs in progress.
    """

    def __init__(
        self,
        num_examples: int,
        batch_size: int,
        batches_per_epoch: int,
        *,
        shuffle: bool,
        seed: int,
        shard_index: int,
        shard_count: int,
        start_epoch: int = 0,
    ) -> None:
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.batches_per_epoch = batches_per_epoch
        self.shuffle = shuffle
        self.seed = seed
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.start_epoch = start_epoch
        self._lock = threading.Lock()
        self._cached: dict[int, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:  # Picklable for grain worker processes.
        state = self.__dict__.copy()
        del state["_lock"]
        state["_cached"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_examples)
        with self._lock:
            if epoch not in self._cached:
                # Keep two epochs: prefetching threads may straddle an epoch boundary.
                if len(self._cached) >= 2:
                    del self._cached[min(self._cached)]
                self._cached[epoch] = epoch_order(self.num_examples, self.seed, epoch)
            return self._cached[epoch]

    def __call__(self, step: int, _: Any = None) -> np.ndarray:
        epoch, batch = divmod(step, self.batches_per_epoch)
        epoch += self.start_epoch
        start = batch * self.batch_size
        global_batch = self._order(epoch)[start : min(start + self.batch_size, self.num_examples)]
        # Full batches split into equal parts; a final partial batch of r examples
        # splits into near-equal contiguous parts (sizes differ by at most one).
        r = len(global_batch)
        lo = r * self.shard_index // self.shard_count
        hi = r * (self.shard_index + 1) // self.shard_count
        return global_batch[lo:hi]


class _LoadBatch:
    """Reads the examples at some indices, applies ``transform``, stacks them."""

    def __init__(
        self, source: Sequence[Example], transform: Callable[[Example], Example] | None
    ) -> None:
        self.source = source
        self.transform = transform

    def _read(self, indices: list[int]) -> list[Example]:
        examples = read_examples(self.source, indices)
        if self.transform is not None:
            examples = [self.transform(example) for example in examples]
            for out in examples:
                if not isinstance(out, Mapping):
                    raise TypeError(
                        "transform must return a dict of arrays (e.g. {'x': ..., 'y': ...}), "
                        f"it returned a {type(out).__name__}"
                    )
        return examples

    def __call__(self, indices: np.ndarray) -> Batch:
        if self.transform is None:
            return read_batch(self.source, indices)  # e.g. one indexing for in-memory sources
        if len(indices) == 0:
            # This process' share of a final partial batch is empty: return zero-length
            # arrays with the structure of a (transformed) example.
            return empty_batch(self._read([0])[0])
        return _stack_examples(self._read([int(i) for i in indices]))


def batches(
    source: Sequence[Example],
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    num_epochs: int | None = 1,
    start_epoch: int = 0,
    drop_remainder: bool = True,
    transform: Callable[[Example], Example] | None = None,
    shard_index: int | None = None,
    shard_count: int | None = None,
    num_threads: int | None = None,
) -> Iterator[Batch]:
    """Iterates over a source in (global) batches of stacked NumPy arrays.

    Built on ``grain.MapDataset``. Each epoch the example indices are shuffled the same
    way on every process: epoch ``e`` visits the examples in the order
    :func:`epoch_order` ``(len(source), seed, e)`` (one NumPy permutation), which is
    cut into global batches of ``batch_size`` examples, and this process reads only its
    contiguous part of each global batch: ``batch_size // shard_count`` examples,
    process ``i`` getting examples ``[i * b, (i + 1) * b)`` of the global batch. Stacking
    the parts of processes ``0 .. shard_count - 1`` in order rebuilds the global batch.
    Each epoch is batched separately (a batch never mixes two epochs) and is shuffled
    differently from the others, deterministically; ``shuffle=False`` keeps index order.
    The first epoch is epoch ``start_epoch``: a loop resumed at the start of epoch ``e``
    passes ``start_epoch=e`` and sees the batches the uninterrupted run would have seen.

    With ``drop_remainder=True`` the last ``len(source) % batch_size`` examples of each
    (shuffled) epoch are skipped, so every batch has the same shape. With
    ``drop_remainder=False`` each epoch ends with a smaller global batch of ``r``
    examples, split into contiguous near-equal parts: process ``i`` gets examples
    ``[r * i // shard_count, r * (i + 1) // shard_count)`` (sizes differ by at most
    one; a process gets a zero-length batch when ``r < shard_count``), so every process
    yields the same number of batches.

    Sources that read from disk are read ahead by background threads (``num_threads``);
    ``transform`` (and the source's ``__getitem__``) must then be thread-safe, as pure
    functions are. In-memory sources (``load(...)`` of a bundled dataset,
    :func:`jdl.data.from_arrays`, lists) are read
    synchronously, which is fastest for them; JAX's asynchronous dispatch already
    overlaps building the next batch with the device computing the current step.

    Args:
        source: A random-access source of dict examples (``len`` and ``[i]``), e.g. from
            :func:`jdl.data.load`.
        batch_size: The global batch size (over all processes), >= 1.
        shuffle: Shuffle the examples each epoch; if false, use index order.
        seed: Non-negative integer; the same seed gives the same order, on every process.
        num_epochs: Number of passes over the data, >= 1, or ``None`` to repeat forever.
        start_epoch: The number of the first epoch, >= 0 (its order is
            ``epoch_order(len(source), seed, start_epoch)``); epochs count on from it.
        drop_remainder: Drop each epoch's last, partial global batch.
        transform: Function applied to each example (a dict) before batching; returns a
            dict. E.g. ``lambda ex: {"x": ex["x"] / 255, "y": ex["y"]}``.
        shard_index: This process' index in ``[0, shard_count)``; default
            ``jax.process_index()``.
        shard_count: Number of processes sharing each global batch; default
            ``jax.process_count()``. Must divide ``batch_size``.
        num_threads: Threads preparing batches ahead of time; ``0`` reads synchronously.
            Default: ``0`` for in-memory sources, else ``min(4, os.cpu_count())``.

    Returns:
        An iterator of dicts of NumPy arrays with a leading batch axis, e.g.
        ``{"x": (batch_size // shard_count, ...), "y": (batch_size // shard_count, ...)}``.

    Raises:
        TypeError: If an argument has the wrong type (e.g. ``batch_size=2.0``, a
            non-callable ``transform``, a source without ``len``).
        ValueError: If ``batch_size < 1``, ``batch_size`` exceeds the number of examples
            while ``drop_remainder=True`` (nothing would be yielded), the source is empty,
            ``num_epochs < 1``, ``start_epoch < 0``, ``seed < 0``, ``shard_count < 1``,
            ``shard_index`` is outside ``[0, shard_count)``, ``shard_count`` does not
            divide ``batch_size``, or ``num_threads < 0``.

    Example:
        >>> from jdl.data import load
        >>> train = load("iris")  # 120 examples
        >>> [batch["x"].shape for batch in batches(train, 32, num_epochs=2, seed=1)]
        [(32, 4), (32, 4), (32, 4), (32, 4), (32, 4), (32, 4)]
    """
    check_source(source)
    num_examples = len(source)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    if num_epochs is not None:
        num_epochs = check_int("num_epochs", num_epochs, minimum=1)
    start_epoch = check_int("start_epoch", start_epoch, minimum=0)
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
    if num_examples == 0:
        raise ValueError(f"source is empty: {source!r}")
    if drop_remainder and batch_size > num_examples:
        raise ValueError(
            f"batch_size {batch_size} is larger than the {num_examples} examples of the "
            "source, so drop_remainder=True would yield no batch; use a batch_size <= "
            f"{num_examples} or drop_remainder=False"
        )
    if shard_count is None:
        shard_count = jax.process_count()
    shard_count = check_int("shard_count", shard_count, minimum=1)
    if shard_index is None:
        shard_index = jax.process_index()
    shard_index = check_int("shard_index", shard_index, minimum=0)
    if shard_index >= shard_count:
        raise ValueError(
            f"shard_index must be in [0, {shard_count}) for shard_count={shard_count}, "
            f"got {shard_index}"
        )
    if batch_size % shard_count:
        raise ValueError(
            f"the global batch_size {batch_size} must be divisible by shard_count "
            f"{shard_count} (the number of processes); e.g. use batch_size "
            f"{(batch_size // shard_count + 1) * shard_count}"
        )

    import grain  # here, not at the top: importing jdl.data (and jdl.fit) stays light

    if num_threads is None:
        num_threads = 0 if is_in_memory(source) else _DEFAULT_IO_THREADS
    num_threads = check_int("num_threads", num_threads, minimum=0)
    read_options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=2 * num_threads)

    if drop_remainder:
        batches_per_epoch = num_examples // batch_size
    else:
        batches_per_epoch = -(-num_examples // batch_size)
    steps = grain.MapDataset.range(batches_per_epoch).repeat(num_epochs)
    index_fn = _BatchIndices(
        num_examples,
        batch_size,
        batches_per_epoch,
        shuffle=shuffle,
        seed=seed,
        shard_index=shard_index,
        shard_count=shard_count,
        start_epoch=start_epoch,
    )
    loaded = steps.map_with_index(index_fn).map(_LoadBatch(source, transform))
    return iter(loaded.to_iter_dataset(read_options))
