"""Callbacks: small objects that :func:`jdl.fit` calls at fixed points of a run.

Write your own by subclassing :class:`Callback` and overriding any hook. Every hook
receives the :class:`Run` — the live view of the training run — and may set
``run.stop_training = True`` (with ``run.stop_reason``) to end it after the current step.

Metrics reach callbacks when they are fetched from the device, every ``log_every``
steps and at each epoch's end, never per step: training never waits on the host.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jdl._core.checks import is_int
from jdl.train.callback_base import Callback, Run
from jdl.train.checkpoint import latest_step, restore_state, save_state, set_aside
from jdl.train.checkpoint_paths import check_shared, checkpoint_path
from jdl.train.ema import EMA
from jdl.train.history import metric_mode
from jdl.train.nonfinite import describe_non_finite, non_finite_leaves
from jdl.train.optim import learning_rate
from jdl.train.plateau import ReduceLROnPlateau
from jdl.train.state import TrainState
from jdl.train.tensorboard import TensorBoard

__all__ = [
    "EMA",
    "BestCheckpoint",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "LearningRateLogger",
    "ReduceLROnPlateau",
    "Run",
    "TensorBoard",
    "TerminateOnNaN",
]


class TerminateOnNaN(Callback):
    """Stop training as soon as the loss is NaN or infinite, naming the step.

    The check runs whenever metrics are fetched, on every step's loss since the last
    fetch, so the step reported is exact (training may have run up to ``log_every - 1``
    steps past it). The run's ``stop_reason`` (and ``History.stop_reason``, and the
    warning) reads e.g. ``"loss became nan at step 17 (epoch 2); at step 20, first
    non-finite parameter: params/Dense_0/bias (16 of 16 values; 4 of 4 arrays non-finite)"``:
    the parameters are read once, when it triggers. To find the input batch, layer and
    parameter that went non-finite *first*, train with ``jdl.fit(..., debug=True)``.
    """

    def __init__(self, monitor: str = "loss"):
        self.monitor = monitor

    def on_metrics(self, run: Run, first_step: int, metrics: dict[str, np.ndarray]) -> None:
        values = metrics.get(self.monitor)
        if values is None:
            return
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            step = first_step + int(bad[0])
            epoch = (step - 1) // run.steps_per_epoch + 1
            value = "nan" if np.isnan(values[bad[0]]) else "inf"
            state = run.state
            where = f"at step {int(np.max(state.step))}, {describe_non_finite(state)}"
            run.stop(f"{self.monitor} became {value} at step {step} (epoch {epoch}); {where}")
            warnings.warn(f"TerminateOnNaN: {run.stop_reason}; training stopped.", stacklevel=2)


class EarlyStopping(Callback):
    """Stop when a monitored epoch metric has stopped improving.

    Args:
        monitor: the metric to watch (e.g. ``"val_loss"``, ``"val_accuracy"``).
        patience: stop after this many epochs in a row without improvement (Keras'
            rule: with ``patience=2`` and the best at epoch 8, training stops after epoch
            10; ``patience=0`` stops, like ``1``, after the first epoch without one).
        min_delta: the smallest change that counts as an improvement (an epoch improves
            if it beats the best by more than ``min_delta``).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (:func:`jdl.train.metric_mode`: max for
            names containing "acc").
        restore_best: at the end of training, put back the state of the best epoch.

    Its best value, best epoch and wait are saved with each :class:`Checkpoint`
    (:meth:`state_dict`), and so is, with ``restore_best``, the best epoch's state
    (:meth:`kept_state`: the checkpoint holds two states then), so a resumed run stops at
    the epoch the uninterrupted one would and restores the same state.

    Raises:
        ValueError: for a negative patience or an unknown mode.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best: bool = False,
    ):
        if patience < 0:
            raise ValueError(f"patience must be >= 0; got {patience}.")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = abs(min_delta)
        self.mode = metric_mode(monitor, mode)
        self.restore_best = restore_best

    def on_train_begin(self, run: Run) -> None:
        self.best = -math.inf if self.mode == "max" else math.inf
        self.best_epoch = None
        self.wait = 0
        self.best_state = None

    def state_dict(self) -> dict[str, Any]:
        """``best``, ``best_epoch`` and ``wait`` (see :meth:`Callback.state_dict`)."""
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (see :meth:`Callback.load_state_dict`)."""
        self.best = float(state["best"])
        self.best_epoch = state["best_epoch"]
        self.wait = int(state["wait"])

    def kept_state(self) -> TrainState | None:
        """The best epoch's state, with ``restore_best`` (saved with the checkpoint)."""
        return self.best_state if self.restore_best else None

    def load_kept_state(self, state: TrainState) -> None:
        """Take back the best epoch's state from the checkpoint."""
        if self.restore_best:
            self.best_state = state

    def _improved(self, value: float) -> bool:
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def on_epoch_end(self, run: Run, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise KeyError(
                f"EarlyStopping monitors {self.monitor!r}, but the epoch logs hold "
                f"{sorted(logs)}; pass validation data for 'val_*' metrics."
            )
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, run.epoch, 0
            if self.restore_best:
                # A copy: the live state's buffers are donated to the next step.
                self.best_state = jax.tree_util.tree_map(lambda x: x.copy(), run.state)
        else:
            self.wait += 1
            if self.wait >= self.patience:
                run.stop(
                    f"{self.monitor} did not improve for {self.wait} epochs "
                    f"(best {self.best:.6g} at epoch {self.best_epoch})"
                )

    def on_train_end(self, run: Run) -> None:
        if self.restore_best and self.best_state is not None:
            run.set_state(self.best_state)


class LearningRateLogger(Callback):
    """Record, as ``learning_rate``, the learning rate used by each epoch's last step.

    Works with optimisers from :func:`jdl.train.optimizer` (or any optax state that
    records a ``learning_rate`` hyper-parameter through ``optax.inject_hyperparams``).
    """

    def on_epoch_end(self, run: Run, logs: dict[str, float]) -> None:
        lr = learning_rate(run.state.opt_state)
        if lr is None:
            raise ValueError(
                "LearningRateLogger found no learning rate in the optimiser state; build "
                "the optimiser with jdl.train.optimizer(...) or optax.inject_hyperparams."
            )
        logs["learning_rate"] = float(lr)


class Checkpoint(Callback):
    """Save the training state with Orbax every ``every`` epochs (and/or every
    ``every_steps`` steps) and at the end.

    With ``jdl.fit(..., resume=True)`` a run continues from the latest checkpoint in
    ``directory``: the state, the history so far, the position in the data (mid-epoch
    too) and every callback's :meth:`~Callback.state_dict` are restored, so the run ends
    as the uninterrupted one would. Each checkpoint records the run's configuration, and a
    resumed run that asks for other settings than a longer run is refused
    (:class:`jdl.train.ResumeMismatchError`). A state with NaN or inf parameters is not
    saved (a warning names the step).

    In :func:`jdl.fit` its ``on_epoch_recorded`` runs after every other callback's and its
    ``on_train_end`` before them, so it saves the training state with every callback's
    update for the epoch, never a state another callback swapped in at the end.

    The two intervals combine: a checkpoint is saved at the end of every ``every``-th
    epoch *and* after every step that is a multiple of ``every_steps`` (so a killed run
    loses at most ``every_steps`` steps). A multiple of ``every_steps`` that ends an epoch is
    saved once, at the epoch's end (with its validation and callbacks); one inside an epoch
    is saved right after the step, with the partial epoch's metric sums, and resumes
    exactly mid-epoch. ``every=None`` saves by steps only. Saving by steps waits for the
    device only at those steps.

    A resumed run that finds the latest checkpoints unreadable continues from the newest
    readable one (with a warning per unreadable one, see :func:`jdl.train.restore_state`);
    before its first save, this callback renames the unreadable ones to
    ``<step>.corrupt`` (never deleting them), so the new checkpoints can take their steps.

    With several processes, ``directory`` must be one directory that every process sees (a
    shared filesystem, or an object store such as ``gs://bucket/run``): at the start of
    training process 0 writes a marker file there, and if some process does not see it
    every process stops with a ``ValueError`` saying so, before anything is saved.

    Args:
        directory: where checkpoints go (created if needed): a local path or an
            object-store URL (``gs://bucket/run``, kept remote all the way into Orbax).
        every: save every this many epochs; ``None``: not by epochs.
        max_to_keep: keep only the most recent checkpoints (``None`` keeps all).
        every_steps: also save every this many optimiser steps (``None``: not by steps).

    Attributes:
        unreadable: the steps a resumed run skipped as unreadable, renamed at the next save.

    Raises:
        ValueError: if ``every`` or ``every_steps`` is not ``None`` or a positive integer,
            if both are ``None``, or if ``max_to_keep`` is not ``None`` or positive; at the
            start of a multi-process run, if not every process sees ``directory``.
        TypeError: if ``directory`` is not a string or path.
    """

    def __init__(
        self,
        directory: str | Path,
        every: int | None = 1,
        max_to_keep: int | None = 3,
        *,
        every_steps: int | None = None,
    ):
        for name, value, unit in (
            ("every", every, "epochs"),
            ("every_steps", every_steps, "steps"),
        ):
            if value is not None and (not is_int(value) or value < 1):
                raise ValueError(
                    f"Checkpoint {name} must be a positive number of {unit} or None; got {value!r}."
                )
        if every is None and every_steps is None:
            raise ValueError(
                "Checkpoint needs every (epochs) or every_steps (steps), or both; got "
                "every=None and every_steps=None."
            )
        if max_to_keep is not None and (not is_int(max_to_keep) or max_to_keep < 1):
            raise ValueError(
                f"Checkpoint max_to_keep must be a positive integer or None (keep all); "
                f"got {max_to_keep!r}."
            )
        self.directory = checkpoint_path(directory)
        self.every = every
        self.every_steps = every_steps
        self.max_to_keep = max_to_keep
        self.unreadable: list[int] = []
        self._skipped: int | None = None  # the step last refused for non-finite values

    def on_train_begin(self, run: Run) -> None:
        """With several processes, check that they all see ``directory``."""
        check_shared(self.directory)

    def save(self, run: Run) -> None:
        """Save the run's current state and history now (with what ``run`` adds for an
        exact resumption: its configuration and the callbacks' states).

        A state whose parameters or BatchNorm statistics are not all finite is not saved
        (a warning names the step), so a resumed run never continues from NaN.
        """
        self._set_aside()
        state = run.state
        step = int(np.max(state.step))
        bad = _non_finite(state)
        if bad:
            if step != self._skipped:
                latest = latest_step(self.directory)
                kept = "none is there yet" if latest is None else f"step {latest} is kept"
                warnings.warn(
                    f"Checkpoint: not saving step {step} in {self.directory}: {bad} hold "
                    f"NaN or inf, and a resumed run must not continue from them; the latest "
                    f"checkpoint: {kept}.",
                    stacklevel=2,
                )
            self._skipped = step
            return
        extras_of = getattr(run, "checkpoint_extras", None)
        extras = dict(extras_of()) if extras_of is not None else {}
        kept = extras.pop("kept_states", None)
        metadata = {"history": run.history.to_dict(), "epoch": run.epoch, **extras}
        save_state(
            self.directory, state, metadata=metadata, max_to_keep=self.max_to_keep, extra=kept
        )

    def on_epoch_recorded(self, run: Run) -> None:
        by_epochs = self.every is not None and run.epoch % self.every == 0
        if by_epochs or self.due_at(run.step):
            self.save(run)

    def due_at(self, step: int) -> bool:
        """Whether ``every_steps`` asks for a checkpoint after global step ``step``."""
        return self.every_steps is not None and step > 0 and step % self.every_steps == 0

    def on_train_end(self, run: Run) -> None:
        self._set_aside()
        if latest_step(self.directory) != run.step and self._skipped != run.step:
            self.save(run)

    def _set_aside(self) -> None:
        """Rename the unreadable checkpoints a resumed run skipped (before saving anew)."""
        if not self.unreadable:
            return
        moved = set_aside(self.directory, self.unreadable)
        self.unreadable = []
        if moved:
            warnings.warn(
                f"Checkpoint: renamed the unreadable checkpoint(s) "
                f"{', '.join(str(p) for p in moved)} (kept, not deleted) before saving anew "
                f"in {self.directory}.",
                stacklevel=3,
            )


def _non_finite(state: TrainState) -> str:
    """Which of the state's parameters / BatchNorm statistics hold NaN or inf ('' if none)."""
    bad = list(non_finite_leaves({"params": state.params, "batch_stats": state.batch_stats}))
    if len(bad) > 3:
        return ", ".join(bad[:3]) + f" and {len(bad) - 3} more"
    return ", ".join(bad)


class BestCheckpoint(Callback):
    """Keep one checkpoint: the state of the best epoch so far by a monitored metric.

    Keras' ``ModelCheckpoint(save_best_only=True)``. After each epoch whose ``monitor``
    improved on the best so far (by more than ``min_delta``), the state is saved with
    Orbax into ``directory``, replacing the previous best; its metadata records the
    epoch, the value and the history up to it. :meth:`restore` reads it back.

    It is a callback of its own, not an option of :class:`Checkpoint`, because the two
    answer different questions: ``fit(..., resume=True)`` continues from the *latest*
    state, which :class:`Checkpoint` keeps, while this keeps the *best*, which a resumed
    run must never restart from. Use both, with different directories, to be able to
    resume and keep the best (``BestCheckpoint`` ignores ``resume``; on a resumed run it
    takes the best value so far from the restored history, so an earlier, better epoch is
    not overwritten). A fresh run replaces whatever ``directory`` held at its first epoch.

    Args:
        directory: where the best checkpoint goes (created if needed), a local path or an
            object-store URL (``gs://...``); not the directory of a :class:`Checkpoint`.
            With several processes, one that every process sees (as for
            :class:`Checkpoint`).
        monitor: the epoch metric to watch (e.g. ``"val_loss"``, ``"val_accuracy"``).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (:func:`jdl.train.metric_mode`).
        min_delta: the smallest change that counts as an improvement.

    Attributes:
        best: the best value so far (``±inf`` before the first epoch).
        best_epoch: the epoch it was reached in (``None`` before).

    Raises:
        KeyError: at the end of an epoch whose logs lack ``monitor`` (naming those there).
        ValueError: at the start of a multi-process run, if not every process sees
            ``directory``.
        TypeError: if ``directory`` is not a string or path.

    Example::

        best = BestCheckpoint("runs/best", monitor="val_accuracy")
        history = jdl.fit(..., validation=test, callbacks=[Checkpoint("runs/latest"), best])
        state, meta = best.restore(history.state)   # meta["epoch"], meta["value"]
    """

    def __init__(
        self,
        directory: str | Path,
        monitor: str = "val_loss",
        mode: str = "auto",
        min_delta: float = 0.0,
    ):
        self.directory = checkpoint_path(directory)
        self.monitor = monitor
        self.mode = metric_mode(monitor, mode)
        self.min_delta = abs(min_delta)
        self.best = -math.inf if self.mode == "max" else math.inf
        self.best_epoch: int | None = None

    def on_train_begin(self, run: Run) -> None:
        check_shared(self.directory)
        self.best = -math.inf if self.mode == "max" else math.inf
        self.best_epoch = None
        if any(not math.isnan(v) for v in run.history.metrics.get(self.monitor, ())):
            self.best_epoch, self.best = run.history.best(self.monitor, self.mode)

    def state_dict(self) -> dict[str, Any]:
        """``best`` and ``best_epoch`` (see :meth:`Callback.state_dict`)."""
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (the best so far by this callback's rule,
        ``min_delta`` included, rather than the history's best)."""
        self.best = float(state["best"])
        self.best_epoch = state["best_epoch"]

    def on_epoch_recorded(self, run: Run) -> None:
        values = run.history.metrics.get(self.monitor)
        if values is None:
            raise KeyError(
                f"BestCheckpoint monitors {self.monitor!r}, but the epoch logs hold "
                f"{sorted(run.history.metrics)}; pass validation data for 'val_*' metrics."
            )
        value = values[-1]
        better = (
            value > self.best + self.min_delta
            if self.mode == "max"
            else value < self.best - self.min_delta
        )
        if better:
            self.best, self.best_epoch = value, run.epoch
            save_state(
                self.directory,
                run.state,
                metadata={
                    "epoch": run.epoch,
                    "monitor": self.monitor,
                    "value": value,
                    "history": run.history.to_dict(),
                },
                max_to_keep=1,
            )

    def restore(self, like: TrainState) -> tuple[TrainState, dict[str, Any]]:
        """The best state saved, in the structure of ``like``, and its metadata.

        Args:
            like: a state of the same model and optimiser (e.g. ``history.state``).

        Returns:
            ``(state, metadata)``; ``metadata`` holds ``"epoch"``, ``"monitor"``,
            ``"value"`` and ``"history"`` (a :meth:`jdl.train.History.to_dict`).

        Raises:
            FileNotFoundError: if no best checkpoint has been saved in ``directory``.
            jdl.train.CheckpointMismatchError: if it does not fit ``like``.
        """
        restored = restore_state(self.directory, like)
        if restored is None:
            raise FileNotFoundError(
                f"No best checkpoint in {self.directory}: train with this callback first."
            )
        return restored
