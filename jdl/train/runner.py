"""The epoch loop that :func:`jdl.fit` and :func:`jdl.train.sweep` share.

Both check their settings and data the same way (:func:`plan_run`), train epoch by epoch
on ``jdl.train.feed._epoch_batches`` with a compiled step, keep the per-step metrics
on the device and fetch them together every ``log_every`` steps
(``jdl.train._metric_rows.MetricBuffer``),
and evaluate exactly on ``jdl.train.feed._eval_batches`` (:func:`evaluate_sums`).
:class:`EpochRunner` is that loop; what differs -- callbacks and checkpoints in ``fit``,
K stacked configurations in ``sweep`` -- stays with the callers.

Metrics may be scalars (``fit``) or carry a leading configuration axis (``sweep``): every
reduction here is over steps or examples only, so both come out per configuration.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import flax.linen as flax_nn
import jax
import jax.numpy as jnp
import numpy as np

from jdl import losses as losses_lib
from jdl._core.checks import is_int, is_number
from jdl.data._access import check_supervised
from jdl.train._metric_rows import MetricBuffer, row_writer
from jdl.train._peers import exit_if_peer_lost
from jdl.train.data_checks import check_data
from jdl.train.feed import _ArrayFeed, _epoch_batches, _eval_batches, _make_feed, _on_device
from jdl.train.progress import Progress, Summary, check_verbose

__all__ = ["default_metrics"]

Metrics = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """How long a run is and what it reads (from :func:`plan_run`).

    Attributes:
        feed: the training feed (``jdl.train.feed._make_feed``).
        batch_size: the global training batch size.
        steps_per_epoch: full batches per epoch (the last partial batch is dropped).
        total_steps: the steps the run trains for.
        num_epochs: the epochs it takes (the last one may be partial).
        sample: one training example as a batch of one (for initialisation).
        validation: the validation feed (``None`` without validation data).
    """

    feed: _ArrayFeed | Any
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    num_epochs: int
    sample: dict[str, np.ndarray]
    validation: _ArrayFeed | Any = None


def default_metrics(loss: str | Callable) -> tuple[str, ...]:
    """The metrics ``fit`` and ``sweep`` report by default for a loss: accuracy for
    classification losses, none otherwise."""
    fn = losses_lib.get(loss)
    if fn is losses_lib.cross_entropy:
        return ("accuracy",)
    if fn is losses_lib.binary_cross_entropy:
        return ("binary_accuracy",)
    return ()


def check_positive_ints(**values: Any) -> None:
    """Raise a ValueError naming each of ``values`` that is not ``None`` or an int >= 1."""
    for name, value in values.items():
        if value is not None and (not is_int(value) or value < 1):
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")


def check_model(caller: str, model: Any) -> None:
    """Raise a TypeError unless ``model`` is a ``flax.linen.Module``."""
    if not isinstance(model, flax_nn.Module):
        raise TypeError(
            f"{caller} model must be a flax.linen.Module (e.g. jdl.nn.MLP(widths=(64,), "
            f"num_outputs=10)); got the {type(model).__name__} {model!r:.80}."
        )


def check_run_settings(
    caller: str, *, l1: Any, l2: Any, eval_batch_size: int | None = None, verbose: Any = 1
) -> None:
    """Check the settings ``fit`` and ``sweep`` share beyond :func:`plan_run`'s.

    Raises:
        ValueError: a penalty coefficient that is not a finite number >= 0 (a JAX array,
            as when ``sweep`` traces it, is accepted unchecked), an ``eval_batch_size``
            that is not a positive integer, or a ``verbose`` that is not 0, 1 or 2
            (``False`` / ``True`` are 0 / 1; :func:`jdl.train.progress.check_verbose`).
    """
    check_verbose(caller, verbose)
    check_positive_ints(eval_batch_size=eval_batch_size)
    for name, value in (("l1", l1), ("l2", l2)):
        if isinstance(value, jax.Array):
            continue
        if not (is_number(value) and math.isfinite(value) and value >= 0):
            raise ValueError(
                f"{caller} {name} must be a finite penalty coefficient >= 0; got {value!r}."
            )


def plan_run(
    caller: str,
    model: Any,
    train: Any,
    validation: Any,
    batch_size: int,
    epochs: int | None,
    steps: int | None,
    log_every: int,
    seed: int,
    loss: str | Callable | None = None,
    metrics: Any = None,
) -> RunPlan:
    """Check a run's settings and data; return its :class:`RunPlan`.

    ``caller`` (``"fit"``, ``"sweep"``) names the entry point in the errors. The training
    and validation data are checked against the model and ``loss`` by
    :func:`jdl.train.data_checks.check_data` (numbers only, finite, inputs that fit the
    model, targets that fit its outputs), all of an in-memory dataset, the first batch of
    a streamed one; ``loss=None`` skips the target checks. ``metrics`` (as the caller was
    given them) get :func:`jdl.train.data_checks.check_metrics`.

    Raises:
        ValueError: neither ``epochs`` nor ``steps``, a setting that is not a positive
            integer, a training set smaller than one batch, batches that do not fit the
            model (with the data's shape named), non-finite values, or targets that do not
            fit the model's outputs and the loss (e.g. class labels outside
            ``[0, num_outputs)``).
        TypeError: for a source that is not random-access (from the source check), or
            inputs or targets that are not numbers.
    """
    check_model(caller, model)
    if epochs is None and steps is None:
        raise ValueError(f"{caller} needs `epochs` or `steps` (how long to train); got neither.")
    check_positive_ints(epochs=epochs, steps=steps, batch_size=batch_size, log_every=log_every)
    check_supervised(train, "train")
    if validation is not None:
        check_supervised(validation, "validation")
    feed = _make_feed(train)
    steps_per_epoch = len(feed) // batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"The training set has {len(feed)} examples, fewer than one batch of "
            f"{batch_size}; use batch_size <= {len(feed)}."
        )
    total_steps = steps if epochs is None else epochs * steps_per_epoch
    if steps is not None:
        total_steps = min(total_steps, steps)
    first = next(_epoch_batches(feed, batch_size, seed=seed, epoch=0, shuffle=False))
    sample = jax.tree_util.tree_map(lambda a: a[:1], first)
    # before anything compiles: numbers, finite, fitting the model (abstractly) and loss
    known = check_data(model, feed, loss, "training", first=first, metrics=metrics)
    val_feed = None
    if validation is not None:
        val_feed = _make_feed(validation)
        check_data(model, val_feed, loss, "validation", known=known, metrics=metrics)
    num_epochs = math.ceil(total_steps / steps_per_epoch)
    return RunPlan(feed, batch_size, steps_per_epoch, total_steps, num_epochs, sample, val_feed)


def eval_chunk(step: Any, batch_size: int) -> int:
    """The evaluation or prediction batch size ``step`` runs for a requested one.

    An evaluation batch is only a chunk of the data (the last one is padded and masked
    anyway), so ``batch_size`` is rounded up to a multiple of what ``step`` splits batches
    over -- its ``batch_multiple`` (:attr:`jdl.train.ParallelStep.batch_multiple`), or the
    process count for a plain function -- rather than refused: the defaults (256) work on
    any device count. Training batches are not rounded: their size is part of the math.
    """
    multiple = getattr(step, "batch_multiple", None) or jax.process_count()
    return -(-batch_size // multiple) * multiple


def evaluate_sums(
    eval_fn: Callable[[Any, dict[str, np.ndarray]], tuple[Any, Metrics]],
    state: Any,
    feed: _ArrayFeed | Any,
    batch_size: int,
) -> dict[str, np.ndarray]:
    """Every example of ``feed`` once through ``eval_fn``; each metric's mean over them.

    ``eval_fn(state, batch) -> (state, sums)`` returns per-batch sums with their
    ``"count"`` (as :func:`jdl.train.eval_step` does); the sums are added on the device and
    divided by the total count on the host. ``batch_size`` is rounded up by
    :func:`eval_chunk` (the padding is masked), so any size works on any device count.
    """
    totals = None
    for batch in _eval_batches(feed, eval_chunk(eval_fn, batch_size)):
        _, sums = eval_fn(state, batch)
        totals = sums if totals is None else jax.tree_util.tree_map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    count = np.asarray(totals.pop("count"), np.float64)
    return {k: np.asarray(v, np.float64) / count for k, v in totals.items()}


class EpochRunner:
    """Trains a state epoch by epoch with a compiled step, on a :class:`RunPlan`.

    Args:
        plan: the run's plan.
        train_fn: the compiled step ``(state, batch) -> (state, metrics)``; a
            :class:`jdl.train.ParallelStep` places the state with its ``put_state``, and
            under ``"jit"`` its step runs compiled with a device buffer it writes its
            metrics into (``jdl.train._metric_rows``: no per-step metric arrays).
        state: the state to start from.
        seed: the shuffling seed.
        shuffle: reshuffle every epoch.
        log_every: fetch the metrics every this many steps.
        step: the step the state is at (default: read from ``state.step``, non-zero when
            resuming).
        verbose: the display (:mod:`jdl.train.progress`): 0 none, 1 a bar with the
            epoch's running means and a line per epoch (lines only when ``sys.stderr`` is
            not a terminal), 2 a line per epoch.
        summary: ``means -> (label, values)``, what the display shows of a set of metric
            means (default: each metric as it is); ``sweep`` picks one configuration.
        on_fetch: also called with ``(first_step, fetched)`` after every fetch (may be set
            later, as the attribute ``on_fetch``).
        data_on_device: put an in-memory training feed on the devices once and gather
            each batch there (``jdl.train.feed._on_device``): ``None`` decides by size and
            strategy, ``True`` forces it, ``False`` (the default) feeds from the host.

    Attributes:
        on_step: if set, called with the global step count after every step (the step's
            metrics may still be on the device; nothing waits for them unless it does).
    """

    def __init__(
        self,
        plan: RunPlan,
        train_fn: Callable[[Any, dict[str, np.ndarray]], tuple[Any, Metrics]],
        state: Any,
        *,
        seed: int,
        shuffle: bool,
        log_every: int,
        step: int | None = None,
        verbose: int = 1,
        summary: Summary | None = None,
        on_fetch: Callable[[int, dict[str, np.ndarray]], None] | None = None,
        data_on_device: bool | None = False,
    ) -> None:
        self.plan = plan
        self.train_fn = train_fn
        self.feed = _on_device(plan.feed, train_fn, data_on_device, plan.batch_size)
        put_state = getattr(train_fn, "put_state", None)
        self.state = put_state(state) if put_state is not None else state
        step = int(np.max(state.step)) if step is None else step
        self.step = step
        self.seed = seed
        self.shuffle = shuffle
        self.on_fetch = on_fetch
        self.progress = Progress(verbose, plan.total_steps, step, summary)
        self.metrics = MetricBuffer(log_every, self._fetched, first_step=step + 1)
        self._writer = row_writer(train_fn)  # metrics into a device buffer ("jit")
        self.on_step: Callable[[int], None] | None = None

    @property
    def done(self) -> bool:
        """Whether the run has trained all its steps."""
        return self.step >= self.plan.total_steps

    def _fetched(self, first_step: int, fetched: dict[str, np.ndarray]) -> None:
        if self.on_fetch is not None:
            self.on_fetch(first_step, fetched)
        if self.progress.bar is not None and fetched:
            steps = len(next(iter(fetched.values())))
            self.progress.update(steps, self.metrics.running_means(fetched))

    def _batches(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        skip = max(self.step - epoch * self.plan.steps_per_epoch, 0)
        return _epoch_batches(
            self.feed,
            self.plan.batch_size,
            seed=self.seed,
            epoch=epoch,
            shuffle=self.shuffle,
            skip=skip,
        )

    def train_epoch(
        self, epoch: int, *, stop: Callable[[], bool] = lambda: False, description: str = ""
    ) -> dict[str, np.ndarray]:
        """Train epoch ``epoch`` (0-based; resumes mid-epoch from ``step``).

        Stops early when the run is done or ``stop()`` says so (checked before each step).

        In a multi-process run, a failed device call (a dead peer) ends the process with
        one clear line (``jdl.train._peers.exit_if_peer_lost``).

        Returns:
            The mean of every training metric over the epoch's steps.
        """
        self.progress.start_epoch(description or f"epoch {epoch + 1}/{self.plan.num_epochs}")
        with exit_if_peer_lost():
            for batch in self._batches(epoch):
                if self.done or stop():
                    break
                if self._writer is None:
                    self.state, step_metrics = self.train_fn(self.state, batch)
                    self.step += 1  # before a fetch: on_fetch sees the step count
                    self.metrics.add(step_metrics)
                else:
                    rows = self.metrics.rows
                    if rows is None:
                        # an epoch ends with a fetch: never more unread rows than its steps
                        capacity = min(self.metrics.log_every, self.plan.steps_per_epoch)
                        self.state, rows = self._writer.start(self.state, batch, capacity)
                    self.state, rows = self._writer(self.state, batch, rows)
                    self.step += 1
                    self.metrics.add_row(rows)
                if self.on_step is not None:
                    self.on_step(self.step)
            return self.metrics.take_means()

    def evaluate(
        self,
        eval_fn: Callable[[Any, dict[str, np.ndarray]], tuple[Any, Metrics]],
        feed: _ArrayFeed | Any,
        batch_size: int,
    ) -> dict[str, np.ndarray]:
        """:func:`evaluate_sums` of the current state (a dead peer: as in
        :meth:`train_epoch`)."""
        with exit_if_peer_lost():
            return evaluate_sums(eval_fn, self.state, feed, batch_size)

    def end_epoch(self, logs: dict[str, Any]) -> str | None:
        """Show the epoch's line for its recorded ``logs`` (the means
        :meth:`train_epoch` returned, the validation metrics, what callbacks added).

        Returns:
            The line, or ``None`` with ``verbose=0``.
        """
        return self.progress.end_epoch(logs)

    def close(self) -> None:
        """Close the progress display (the epoch lines stay)."""
        self.progress.close()
