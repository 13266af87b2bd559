"""Reduce the learning rate when a monitored metric has stopped improving.

The learning rate lives in the optimiser state (:func:`jdl.train.optimizer` builds every
optimiser with ``optax.inject_hyperparams``), so changing it is replacing one scalar of
``opt_state`` between epochs: nothing is recompiled and the step stays pure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import optax
from tqdm.auto import tqdm

from jdl.train.callback_base import Callback, Run
from jdl.train.history import metric_mode
from jdl.train.optim import learning_rate

__all__ = ["ReduceLROnPlateau"]


def _injected(node: Any, key: str) -> bool:
    """Whether an optimiser state holds ``key`` among its injected hyper-parameters."""
    if isinstance(getattr(node, key, None), dict) and "learning_rate" in getattr(node, key):
        return True
    if isinstance(node, tuple | list):
        return any(_injected(child, key) for child in node)
    if isinstance(node, dict):
        return any(_injected(child, key) for child in node.values())
    return False


def _scale_learning_rates(node: Any, fn: Callable[[Any], Any]) -> Any:
    """``node`` (an optax state) with ``fn`` applied to every injected learning rate.

    Walks chains, named-tuple wrappers (masked, multi-transform, ``MultiSteps``, ...)
    and dicts; the dtype of each learning rate is kept, so the step does not recompile.
    """
    hyper = getattr(node, "hyperparams", None)
    if isinstance(hyper, dict) and "learning_rate" in hyper:
        old = jnp.asarray(hyper["learning_rate"])
        new = jnp.asarray(fn(old), dtype=old.dtype)
        return node._replace(hyperparams={**hyper, "learning_rate": new})
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return type(node)(*(_scale_learning_rates(child, fn) for child in node))
    if isinstance(node, tuple | list):
        return type(node)(_scale_learning_rates(child, fn) for child in node)
    if isinstance(node, dict):
        return {k: _scale_learning_rates(v, fn) for k, v in node.items()}
    return node


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving.

    Keras' callback of the same name, with its rules: after each epoch, a value better
    than the best so far (by more than ``min_delta``) resets the wait; otherwise, outside
    a cool-down, the wait grows, and when it reaches ``patience`` every injected learning
    rate becomes ``max(lr * factor, min_lr)``, the wait resets and ``cooldown`` epochs
    follow in which the wait does not grow. A learning rate already at ``min_lr`` stays.
    (One difference from Keras, where the epoch that ends a cool-down already counts, so
    that ``cooldown=1`` changes nothing: here, as in PyTorch, ``cooldown=n`` skips ``n``
    epochs.)

    The optimiser must record its learning rate as a fixed hyper-parameter: every
    optimiser from :func:`jdl.train.optimizer` with a float learning rate (and no
    ``schedule``), or any optax transformation built with
    ``optax.inject_hyperparams(...)(learning_rate=...)``. The new rate is written into the
    state (``opt_state``), so it is saved by :class:`jdl.train.Checkpoint` and continues
    after ``resume=True``; the callback's own counters are saved with the checkpoint too
    (:meth:`state_dict`; for checkpoints without them they are rebuilt from the restored
    history).

    Each epoch's row records, as ``learning_rate``, the rate that epoch trained with (so
    a reduction at the end of epoch 3 first shows in epoch 4's row). With ``verbose=1``
    each reduction is also printed, e.g. ``Epoch 3: ReduceLROnPlateau reducing learning
    rate to 0.01.`` (With :class:`~jdl.train.callbacks.LearningRateLogger` as well, list
    the logger first, or it records the rate after the reduction.)

    Args:
        monitor: the epoch metric to watch (e.g. ``"val_loss"``, ``"val_accuracy"``).
        factor: what to multiply the learning rate by, ``0 < factor < 1``.
        patience: epochs without improvement before the learning rate is reduced.
        min_delta: the smallest change that counts as an improvement.
        cooldown: epochs after a reduction during which the wait does not grow.
        min_lr: the learning rate is never reduced below this.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (:func:`jdl.train.metric_mode`: max for
            accuracies, F1, precision and recall, min otherwise).
        verbose: 1 prints each reduction; 0 is silent.

    Attributes:
        reductions: ``(epoch, new_learning_rate)`` of each reduction made in this run.

    Raises:
        ValueError: for ``factor`` outside ``(0, 1)``, a negative ``patience``,
            ``cooldown`` or ``min_lr``, an unknown ``mode``; and, when training begins,
            for an optimiser whose state records no fixed learning rate (the message says
            how to build one that does).
        KeyError: at the end of an epoch whose logs lack ``monitor``.

    Example:
        >>> from jdl.train.callbacks import ReduceLROnPlateau
        >>> plateau = ReduceLROnPlateau("val_loss", factor=0.5, patience=3, min_lr=1e-5)
        >>> # jdl.fit(..., optimizer=jdl.train.optimizer("adam", 1e-3), callbacks=[plateau])
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        mode: str = "auto",
        verbose: int = 1,
    ):
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be between 0 and 1 (exclusive); got {factor}.")
        for name, value in (("patience", patience), ("cooldown", cooldown), ("min_lr", min_lr)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0; got {value}.")
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.min_delta = abs(min_delta)
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.mode = metric_mode(monitor, mode)
        self.verbose = verbose
        self._reset()

    def _reset(self) -> None:
        self.best = -math.inf if self.mode == "max" else math.inf
        self.wait = 0
        self.cooldown_counter = 0
        self.reductions: list[tuple[int, float]] = []

    def _check_optimizer(self, opt_state: optax.OptState) -> None:
        if learning_rate(opt_state) is None:
            raise ValueError(
                "ReduceLROnPlateau found no learning rate in the optimiser state, so it "
                "cannot change it. Build the optimiser with jdl.train.optimizer(name, lr) "
                "(e.g. jdl.train.optimizer('adam', 1e-3)) or wrap an optax one as "
                "optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)."
            )
        if _injected(opt_state, "hyperparams_states"):
            raise ValueError(
                "ReduceLROnPlateau needs a fixed learning rate, but the optimiser's learning "
                "rate is a schedule (recomputed every step, so a reduction would be "
                "overwritten). Drop the schedule (jdl.train.optimizer(name, lr) without "
                "schedule=) or drop ReduceLROnPlateau."
            )

    def _observe(self, value: float) -> bool:
        """Update the counters with one epoch's value; whether to reduce now."""
        if self.mode == "max":
            improved = value > self.best + self.min_delta
        else:
            improved = value < self.best - self.min_delta
        if improved:
            self.best, self.wait = value, 0
        if improved or self.cooldown_counter > 0:
            self.cooldown_counter = max(self.cooldown_counter - 1, 0)
            return False
        self.wait += 1
        return self.wait >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """``best``, ``wait`` and ``cooldown_counter`` (see
        :meth:`jdl.train.callbacks.Callback.state_dict`); the learning rate itself is in the
        optimiser state, and :attr:`reductions` lists those of the current run only."""
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (replacing the counters replayed from the
        history at :meth:`on_train_begin`)."""
        self.best = float(state["best"])
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])

    def _reduced(self) -> None:
        self.cooldown_counter = self.cooldown
        self.wait = 0

    def on_train_begin(self, run: Run) -> None:
        self._check_optimizer(run.state.opt_state)
        self._reset()
        # A resumed run: replay the restored epochs (the learning rate is already in the
        # restored optimiser state; only the counters are rebuilt).
        for value in run.history.metrics.get(self.monitor, ()):
            if not math.isnan(value) and self._observe(value):
                self._reduced()

    def on_epoch_end(self, run: Run, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise KeyError(
                f"ReduceLROnPlateau monitors {self.monitor!r}, but the epoch logs hold "
                f"{sorted(logs)}; pass validation data for 'val_*' metrics."
            )
        state = run.state
        old = float(learning_rate(state.opt_state))
        logs["learning_rate"] = old
        if not self._observe(logs[self.monitor]):
            return
        if old <= self.min_lr * (1 + 1e-6):
            return
        opt_state = _scale_learning_rates(
            state.opt_state, lambda lr: jnp.maximum(lr * self.factor, self.min_lr)
        )
        run.set_state(state.replace(opt_state=opt_state))
        new = float(learning_rate(opt_state))
        self.reductions.append((run.epoch, new))
        self._reduced()
        if self.verbose:
            tqdm.write(f"Epoch {run.epoch}: ReduceLROnPlateau reducing learning rate to {new:.4g}.")
