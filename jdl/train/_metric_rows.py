"""Per-step training metrics kept on the device and fetched every ``log_every`` steps
(:class:`MetricBuffer`), written into a buffer on the device by the compiled step.

Fetching ``log_every`` steps of metrics one array at a time costs a host round of work per
array (two metrics, 50 steps: 100 copies, ~15-40 µs each on a CPU). Instead the training
step is compiled with a ring buffer of ``log_every`` rows per metric (at most an epoch's
steps: an epoch ends with a fetch) as an extra, donated argument: each step writes its
metrics into row ``written % capacity`` and counts the row on the device, so nothing but
the step is dispatched per step, and a fetch is one small transfer per metric
(:func:`read_rows`). The rows are the per-step values themselves, so callbacks, the debug
checks, the progress bar and the epoch means see exactly what they saw when every step's
metrics were fetched separately.

Only the ``"jit"`` strategy of :func:`jdl.train.parallelize` is compiled this way (one
device: the buffer needs no placement); other steps keep the per-step metrics
(:func:`row_writer` returns ``None``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jdl._core.memo import BoundedCache

Metrics = dict[str, Any]
Rows = dict[str, Any]
"""``{"written": int32 scalar, "values": {name: (capacity, *shape)}}``."""

#: The compiled row-writing steps, by the compiled step they wrap (itself cached by
#: ``jdl.train.parallel``), so a second ``fit`` with the same settings compiles nothing.
_WRITERS = BoundedCache(64)


def _writing(step: Callable[[Any, Any], tuple[Any, dict[str, Any]]]) -> Callable:
    """``(state, batch, rows) -> (state, rows)``: ``step`` with its metrics written into
    ``rows`` at row ``written % capacity`` (the capacity is the rows' static length)."""

    def write(state: Any, batch: Any, rows: Rows) -> tuple[Any, Rows]:
        state, metrics = step(state, batch)
        written = rows["written"]
        values = {
            name: jax.lax.dynamic_update_index_in_dim(
                buf, metrics[name].astype(buf.dtype), written % buf.shape[0], 0
            )
            for name, buf in rows["values"].items()
        }
        return state, {"written": written + 1, "values": values}

    # compiled under the step's name: ``jax.log_compiles`` shows ``jit(train_step)``
    write.__name__ = write.__qualname__ = getattr(step, "__name__", "step")
    return write


class RowWriter:
    """A training step that writes its metrics into a device buffer (see the module).

    Args:
        compiled: the ``"jit"`` strategy's compiled step ``(state, batch) -> (state,
            metrics)`` (:attr:`jdl.train.ParallelStep.compiled`).
    """

    def __init__(self, compiled: Callable) -> None:
        self.compiled = compiled
        writer = _WRITERS.get(compiled)
        if writer is None:
            writer = _WRITERS.put(compiled, jax.jit(_writing(compiled), donate_argnums=(0, 2)))
        self.writer = writer

    def start(self, state: Any, batch: Any, capacity: int) -> tuple[Any, Rows]:
        """``state`` and a zeroed buffer of ``capacity`` rows for the metrics the step
        returns on ``(state, batch)``.

        The shapes are traced, not computed (the trace is the one the compilation reuses);
        the zeros are made on the host and placed, uncommitted, on the default device, as
        a fresh state's arrays are: host arrays in the first call and device arrays in
        the next would compile the step twice.
        """
        metrics = jax.eval_shape(self.compiled, state, batch)[1]
        values = {k: np.zeros((capacity, *m.shape), m.dtype) for k, m in metrics.items()}
        rows = {"written": np.zeros((), np.int32), "values": values}
        return state, jax.device_put(rows)

    def __call__(self, state: Any, batch: Any, rows: Rows) -> tuple[Any, Rows]:
        """One step: the new state and the buffer with this step's row written (the
        state's and the buffer's device arrays are donated)."""
        return self.writer(state, batch, rows)


def row_writer(train_fn: Any) -> RowWriter | None:
    """A :class:`RowWriter` for a :class:`jdl.train.ParallelStep` training step under the
    ``"jit"`` strategy; ``None`` for anything else (whose metrics are fetched per step)."""
    if getattr(train_fn, "strategy", None) != "jit" or not getattr(
        train_fn, "updates_state", False
    ):
        return None
    return RowWriter(train_fn.compiled)


def read_rows(rows: Rows, written: int, count: int) -> dict[str, np.ndarray]:
    """The last ``count`` rows written (``written`` in all), oldest first, on the host:
    one transfer per metric.

    Raises:
        ValueError: if ``count`` exceeds the buffer's capacity (rows were overwritten).
    """
    host = jax.device_get(rows["values"])
    capacity = len(next(iter(host.values())))
    if count > capacity:
        raise ValueError(
            f"The metric buffer holds {capacity} steps; {count} were asked for (rows "
            f"overwritten before they were read)."
        )
    index = (written - count + np.arange(count)) % capacity
    return {name: values[index] for name, values in host.items()}


def fetch(pending: list[Metrics]) -> dict[str, np.ndarray]:
    """Per-step metrics copied to the host together and stacked there (axis 0: steps).

    ``jax.device_get`` starts every copy before waiting for any; stacking on the device
    instead would dispatch one operation per step and metric (slower on CPU).
    """
    host = jax.device_get(pending)
    return {k: np.stack([np.asarray(m[k]) for m in host]) for k in host[0]}


class MetricBuffer:
    """Per-step metrics kept on the device, fetched every ``log_every`` steps: as the
    steps returned them (:meth:`add`), or as rows the compiled step wrote into one device
    buffer (:meth:`add_row`, one transfer per metric).

    Args:
        log_every: fetch after this many steps.
        on_fetch: called with ``(first_step, fetched)`` after each fetch, where
            ``fetched[name]`` has one row per step and ``first_step`` is the 1-based step
            of its first row.
    """

    def __init__(
        self,
        log_every: int,
        on_fetch: Callable[[int, dict[str, np.ndarray]], None],
        *,
        first_step: int = 1,
    ) -> None:
        self.log_every = log_every
        self.on_fetch = on_fetch
        self.next_step = first_step
        self._pending: list[Metrics] = []
        self.rows: Rows | None = None  # the device buffer of add_row's steps
        self._written = 0  # rows written into it (as the device counts them)
        self._unread = 0  # of which not fetched yet
        self._sums: dict[str, np.ndarray] = {}
        self._count = 0
        self.last_sums: tuple[dict[str, np.ndarray], int] = ({}, 0)

    def add(self, metrics: Metrics) -> None:
        """Keep one step's metrics; fetch when ``log_every`` are pending."""
        self._pending.append(metrics)
        if len(self._pending) >= self.log_every:
            self.flush()

    def add_row(self, rows: Rows) -> None:
        """One more step whose metrics the compiled step wrote into ``rows``, the device
        buffer of ``log_every`` rows (``jdl.train._metric_rows``) that replaces
        :attr:`rows`; fetch when ``log_every`` are unread (before any is overwritten)."""
        self.rows = rows
        self._written += 1
        self._unread += 1
        if self._unread >= self.log_every:
            self.flush()

    def flush(self) -> None:
        """Fetch every pending step now."""
        count = len(self._pending) + self._unread
        if not count:
            return
        if self._pending:
            fetched = fetch(self._pending)
        else:  # one transfer per metric
            fetched = read_rows(self.rows, self._written, self._unread)
        self.on_fetch(self.next_step, fetched)
        for name, values in fetched.items():
            total = np.sum(values, axis=0, dtype=np.float64)
            self._sums[name] = self._sums.get(name, 0.0) + total
        self._count += count
        self.next_step += count
        self._pending = []
        self._unread = 0

    def running_means(self, fetched: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The means over the epoch so far, counting ``fetched`` (rows not yet added: what
        ``on_fetch`` is called with); from the host copies, nothing more is fetched."""
        count = self._count + len(next(iter(fetched.values())))
        return {
            k: (self._sums.get(k, 0.0) + np.sum(v, axis=0, dtype=np.float64)) / count
            for k, v in fetched.items()
        }

    def take_means(self) -> dict[str, np.ndarray]:
        """The mean of every metric since the last call (after a flush); then reset.

        The sums and the count they were divided by stay readable as :attr:`last_sums`
        (a checkpoint of a partial epoch keeps them, see :meth:`carry`).
        """
        self.flush()
        means = {k: v / max(self._count, 1) for k, v in self._sums.items()}
        self.last_sums = (self._sums, self._count)
        self._sums, self._count = {}, 0
        return means

    def epoch_sums(self) -> tuple[dict[str, np.ndarray], int]:
        """The metric sums and step count of the epoch so far (fetching what is pending):
        those being gathered inside an epoch, else those of the epoch :meth:`take_means`
        just ended (what a checkpoint of a partial epoch keeps)."""
        self.flush()
        return (self._sums, self._count) if self._count else self.last_sums

    def carry(self, sums: dict[str, Any], count: int) -> None:
        """Start from the sums of ``count`` steps already taken (a resumed partial epoch),
        so the epoch's means are those of the uninterrupted run."""
        self._sums = {k: np.asarray(v, np.float64) for k, v in sums.items()}
        self._count = count
