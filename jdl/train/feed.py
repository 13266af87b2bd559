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

:func:`_on_device` puts an in-memory training feed on the devices once (a
:class:`_DeviceFeed`, what ``fit(..., data_on_device=...)`` chooses): each epoch then
sends only its order of indices (4 bytes per example) to the devices, and every batch is
gathered there by a small compiled function next to the step -- the same examples in the
same order as the host feed, so the same results bit for bit, with no host-to-device
copy of a batch per step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

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


_DEVICE_BYTES_CAP = 2 << 30
"""The most bytes ``data_on_device=None`` (auto) puts on each device: the smaller of this
and a quarter of the device's memory, where the device reports it."""


def _device_budget(device: Any) -> int:
    """The bytes of data auto placement allows on ``device`` (see :data:`_DEVICE_BYTES_CAP`)."""
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001 -- backends without memory statistics (CPU)
        stats = {}
    limit = stats.get("bytes_limit")
    return min(_DEVICE_BYTES_CAP, int(limit) // 4) if limit else _DEVICE_BYTES_CAP


def _gather_rows(arrays: dict[str, jax.Array], order: jax.Array, step: jax.Array) -> dict:
    rows = order[step]
    return {k: jnp.take(v, rows, axis=0, mode="clip") for k, v in arrays.items()}


@functools.lru_cache(maxsize=16)
def _gather_for(mesh: jax.sharding.Mesh | None) -> Callable[..., dict[str, jax.Array]]:
    """The compiled gather (one per mesh, so a later ``fit`` reuses its compilations):
    batches split over the mesh's ``"data"`` axis, or on one device for ``None``."""
    if mesh is None:
        return jax.jit(_gather_rows)
    return jax.jit(_gather_rows, out_shardings=NamedSharding(mesh, PartitionSpec("data")))


class _DeviceFeed:
    """An :class:`_ArrayFeed` whose arrays are also held on the devices, replicated.

    Args:
        feed: the host feed (kept: evaluation, the data checks and resumption read it).
        mesh: the ``"data"`` mesh of the ``"sharded"`` strategy (the arrays are replicated
            over it and every gathered batch is split over it), or ``None`` for one device
            (JAX's default device, as ``jax.jit`` uses).
    """

    def __init__(self, feed: _ArrayFeed, mesh: jax.sharding.Mesh | None = None) -> None:
        self.host = feed
        self.num_examples = feed.num_examples
        # one device: JAX's default one, uncommitted, so the arrays follow the state
        self._where = None if mesh is None else NamedSharding(mesh, PartitionSpec())
        # On CPU, arrays aligned to 64 bytes (those jdl.data loads) are used in place.
        self.arrays = jax.device_put(feed.arrays, self._where, may_alias=True)
        self._gather = _gather_for(mesh)

    def __len__(self) -> int:
        return self.num_examples

    def batches(
        self, order: np.ndarray, batch_size: int, skip: int
    ) -> Iterator[dict[str, jax.Array]]:
        """The batches ``order[s * batch_size : (s + 1) * batch_size]`` from step ``skip``,
        gathered on the devices; ``order`` goes to the devices once, as int32."""
        steps = len(order) // batch_size
        if skip >= steps:
            return
        rows = np.asarray(order[: steps * batch_size], np.int32).reshape(steps, batch_size)
        rows = jax.device_put(rows, self._where)
        for s in range(skip, steps):
            yield self._gather(self.arrays, rows, np.int32(s))


def _check_data_on_device(value: Any) -> None:
    """Raise a ``ValueError`` unless ``value`` is ``None``, ``True`` or ``False``."""
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"data_on_device must be None (automatic), True or False; got {value!r}.")


def _on_device(
    feed: Any, step: Any, data_on_device: bool | None, batch_size: int | None = None
) -> Any:
    """``feed`` on the devices (a :class:`_DeviceFeed`) where ``data_on_device`` asks for it.

    ``None`` (auto) places an in-memory feed on the devices when ``step`` is a
    single-process ``"jit"`` or ``"sharded"`` :class:`jdl.train.ParallelStep` and the
    data take at most :func:`_device_budget` bytes per device; anything else keeps the
    host feed. ``True`` places it whatever its size, ``False`` never. A ``batch_size``
    that is not a multiple of the step's ``batch_multiple`` keeps the host feed, whose
    first step refuses it with the strategy's own message.

    Raises:
        ValueError: for ``data_on_device=True`` with a streamed (not in-memory) source,
            the ``"pmap"`` strategy, a step that is not a ``ParallelStep``, or more than
            one process -- which of these, and what to do instead.
    """
    if data_on_device is False or isinstance(feed, _DeviceFeed):
        return feed
    strategy = getattr(step, "strategy", None)
    why = None
    if not isinstance(feed, _ArrayFeed):
        why = "the training source is streamed, not held in memory"
    elif jax.process_count() > 1:
        why = f"this is a multi-process run ({jax.process_count()} processes)"
    elif strategy not in ("jit", "sharded"):
        why = f'the strategy is {strategy!r} (only "jit" and "sharded" gather on device)'
    if why is not None:
        if data_on_device is None:
            return feed
        raise ValueError(
            f"data_on_device=True, but {why}; pass data_on_device=None (or False) to feed "
            "batches from the host."
        )
    if batch_size is not None and batch_size % step.batch_multiple:
        return feed
    mesh = step.mesh if strategy == "sharded" else None
    nbytes = sum(v.nbytes for v in feed.arrays.values())
    device = mesh.devices.flat[0] if mesh is not None else jax.devices()[0]
    if data_on_device is None and nbytes > _device_budget(device):
        return feed
    return _DeviceFeed(feed, mesh)


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
    feed: _DeviceFeed | _ArrayFeed | Sequence[Any],
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    skip: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    """The training batches of epoch ``epoch`` (0-based): full global batches only.

    Each process yields its contiguous slice of every global batch (as
    :func:`jdl.data.batches` does). ``skip`` drops the first batches (for resuming). A
    :class:`_DeviceFeed` yields the same batches as device arrays (one process only).
    """
    n = len(feed)
    steps = n // batch_size
    if isinstance(feed, _DeviceFeed):
        order = epoch_order(n, seed, epoch) if shuffle else np.arange(n)
        yield from feed.batches(order, batch_size, skip)
        return
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
