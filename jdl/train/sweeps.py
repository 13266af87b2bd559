"""Train many configurations at once: one model, K settings, one compiled program.

:func:`sweep` stacks K copies of the training state along a leading axis and runs
:func:`jdl.train.train_step` under ``jax.vmap``: every step of every configuration is
one call of one compiled function, on the same batch. On small models this is much
faster than K separate runs of :func:`jdl.fit` (one compilation instead of K, one
dispatch per step instead of K, and wider matrix products that use the hardware
better); ``benchmarks/`` and the test suite measure the ratio.

What can differ between configurations: the learning rate (``learning_rates``), the
seed of the initial parameters and of dropout (``seeds``), and a multiplier on the
initial weight matrices (``init_scales``). The configurations are the Cartesian
product of the three lists. All configurations see the same batches in the same
order (shuffled with ``data_seed``), so differences come from the setting alone.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdl import losses as losses_lib
from jdl.data import as_source
from jdl.train.feed import _make_feed
from jdl.train.history import History, metric_mode
from jdl.train.optim import as_optimizer
from jdl.train.runner import EpochRunner, RunPlan, default_metrics, plan_run
from jdl.train.state import TrainState, create_state
from jdl.train.step import eval_step, train_step

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


__all__ = ["SweepResult", "sweep"]


@dataclass
class SweepResult:
    """What :func:`sweep` returns: one :class:`History` per configuration.

    Attributes:
        configs: the configurations, in order, e.g. ``[{"learning_rate": 0.1, "seed": 0,
            "init_scale": 1.0}, ...]``.
        histories: one :class:`jdl.train.History` per configuration (same order), each
            with its per-epoch metrics and its final ``state`` / ``variables``.
    """

    configs: list[dict[str, float]]
    histories: list[History] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.configs)

    def __getitem__(self, index: int) -> History:
        return self.histories[index]

    def final(self, metric: str) -> np.ndarray:
        """The last epoch's value of ``metric`` for every configuration, shape ``(K,)``."""
        self._check_metric(metric)
        return np.array([h.metrics[metric][-1] for h in self.histories])

    def best(self, metric: str, mode: str = "auto") -> tuple[dict[str, float], History]:
        """The configuration whose final ``metric`` is best, and its history.

        Args:
            metric: a recorded metric, e.g. ``"val_accuracy"`` or ``"loss"``.
            mode: ``"max"``, ``"min"``, or ``"auto"`` (:func:`jdl.train.metric_mode`: max
                for accuracies, min otherwise).
                NaN (a diverged run) never wins.
        """
        values = self.final(metric)
        mode = metric_mode(metric, mode)
        if np.all(np.isnan(values)):
            raise ValueError(f"Every configuration has NaN {metric!r}: all runs diverged.")
        index = int(np.nanargmax(values) if mode == "max" else np.nanargmin(values))
        return self.configs[index], self.histories[index]

    def table(self, metrics: Sequence[str] | None = None) -> str:
        """A plain-text table: one row per configuration, its settings and final metrics."""
        names = list(metrics) if metrics is not None else list(self.histories[0].metrics)
        for name in names:
            self._check_metric(name)
        keys = list(self.configs[0])
        header = [*keys, *names]
        rows = [
            [f"{c[k]:g}" for k in keys] + [f"{h.metrics[n][-1]:.4g}" for n in names]
            for c, h in zip(self.configs, self.histories, strict=True)
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(s.rjust(w) for s, w in zip(r, widths, strict=True)) for r in rows]
        head = "  ".join(s.rjust(w) for s, w in zip(header, widths, strict=True))
        return "\n".join([head, "-" * len(head), *lines])

    def __str__(self) -> str:
        return self.table()

    def plot(self, metric: str = "loss", *, ax: Axes | None = None) -> Figure:
        """One curve per configuration of ``metric`` by epoch; returns the ``Figure``."""
        import matplotlib.pyplot as plt

        self._check_metric(metric)
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        varying = [k for k in self.configs[0] if len({c[k] for c in self.configs}) > 1]
        for config, history in zip(self.configs, self.histories, strict=True):
            label = ", ".join(f"{k}={config[k]:g}" for k in varying) or "run"
            ax.plot(history.epochs, history.metrics[metric], marker="o", ms=3, label=label)
        ax.set(xlabel="epoch", ylabel=metric, title=f"sweep: {metric.replace('_', ' ')}")
        if "loss" in metric:
            ax.set_yscale("log")
        ax.legend(fontsize="small")
        ax.figure.tight_layout()
        return ax.figure

    def _check_metric(self, metric: str) -> None:
        known = self.histories[0].metrics if self.histories else {}
        if metric not in known:
            raise KeyError(f"No metric {metric!r} was recorded; recorded: {sorted(known)}.")


def _optimizer_factory(
    optimizer: Any, learning_rates: Sequence[float] | None
) -> Callable[[Any], optax.GradientTransformation]:
    """``learning_rate -> transformation`` for :func:`sweep` (checked now, on the first rate)."""
    if learning_rates is None:
        tx = as_optimizer(optimizer, learning_rate_arg="learning_rates")
        return lambda lr: tx
    if len(learning_rates):
        as_optimizer(optimizer, learning_rates[0], learning_rate_arg="learning_rates")
    return lambda lr: as_optimizer(optimizer, lr, learning_rate_arg="learning_rates")


def _grid(
    learning_rates: Sequence[float] | None,
    seeds: Sequence[int] | None,
    init_scales: Sequence[float] | None,
) -> list[dict[str, float]]:
    for name, values in (
        ("learning_rates", learning_rates),
        ("seeds", seeds),
        ("init_scales", init_scales),
    ):
        if values is not None and len(values) == 0:
            raise ValueError(f"{name} must not be empty.")
    lrs = list(learning_rates) if learning_rates is not None else [math.nan]
    for lr in lrs:
        if not math.isnan(lr) and lr <= 0:
            raise ValueError(f"learning rates must be positive; got {lr}.")
    configs = []
    for lr, seed, scale in itertools.product(lrs, seeds or [0], init_scales or [1.0]):
        config = {"learning_rate": float(lr), "seed": int(seed), "init_scale": float(scale)}
        if learning_rates is None:
            del config["learning_rate"]
        configs.append(config)
    return configs


def _scale_kernels(params: Any, scale: jax.Array) -> Any:
    mask = losses_lib.kernel_mask(params)
    return jax.tree_util.tree_map(lambda p, m: p * scale if m else p, params, mask)


def _best_loss(fetched: dict[str, np.ndarray]) -> dict[str, str]:
    """The progress bar's postfix: the lowest finite loss of the last step fetched."""
    last = fetched["loss"][-1]
    finite = last[np.isfinite(last)]
    return {"best loss": f"{finite.min():.4g}" if finite.size else "nan"}


def _vmapped(
    model: Any,
    factory: Callable[[jax.Array], optax.GradientTransformation],
    configs: list[dict[str, float]],
    lrs: jax.Array,
    plan: RunPlan,
    loss: str | Callable,
    metrics: Sequence[str | Callable],
    l1: float,
    l2: float,
) -> tuple[Callable[..., Any], Callable[..., Any], dict[str, Any]]:
    """``(train_all, eval_all, fields)``: the vmapped, compiled training and evaluation
    steps over K stacked states, and the K initial states' arrays."""
    scales = jnp.asarray([c["init_scale"] for c in configs], jnp.float32)
    keys = jnp.stack([jax.random.PRNGKey(c["seed"]) for c in configs])
    sample = plan.sample

    @jax.jit
    def init_all(keys: jax.Array, lrs: jax.Array, scales: jax.Array) -> dict[str, Any]:
        def one(key: jax.Array, lr: jax.Array, scale: jax.Array) -> dict[str, Any]:
            state = create_state(model, factory(lr), sample, key)
            params = _scale_kernels(state.params, scale)
            state = state.replace(params=params, opt_state=state.tx.init(params))
            return state.arrays

        return jax.vmap(one)(keys, lrs, scales)

    def as_state(fields: dict[str, Any], lr: jax.Array) -> TrainState:
        return TrainState(**fields, model=model, tx=factory(lr))

    loss_fn = losses_lib.get(loss)
    step_one = functools.partial(train_step, loss_fn=loss_fn, metrics=metrics, l1=l1, l2=l2)

    @functools.partial(jax.jit, donate_argnums=0)
    def train_all(
        fields: dict[str, Any], lrs: jax.Array, batch: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, jax.Array]]:
        def one(
            fields: dict[str, Any], lr: jax.Array
        ) -> tuple[dict[str, Any], dict[str, jax.Array]]:
            new, out = step_one(as_state(fields, lr), batch)
            return new.arrays, out

        return jax.vmap(one)(fields, lrs)

    eval_one = functools.partial(eval_step, loss_fn=loss_fn, metrics=metrics)

    @jax.jit
    def eval_all(
        fields: dict[str, Any], lrs: jax.Array, batch: dict[str, Any]
    ) -> dict[str, jax.Array]:
        return jax.vmap(lambda f, lr: eval_one(as_state(f, lr), batch)[1])(fields, lrs)

    return train_all, eval_all, init_all(keys, lrs, scales)


def sweep(
    model: Any,
    train: Sequence[Any],
    *,
    batch_size: int,
    loss: str | Callable,
    optimizer: Any,
    learning_rates: Sequence[float] | None = None,
    seeds: Sequence[int] | None = None,
    init_scales: Sequence[float] | None = None,
    epochs: int | None = None,
    steps: int | None = None,
    validation: Sequence[Any] | None = None,
    metrics: Sequence[str | Callable] | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    data_seed: int = 0,
    shuffle: bool = True,
    log_every: int = 50,
    eval_batch_size: int | None = None,
    verbose: int = 1,
) -> SweepResult:
    """Train K configurations of one model at once with ``jax.vmap``.

    The configurations are the Cartesian product of ``learning_rates``, ``seeds`` and
    ``init_scales`` (each defaults to a single value). Their states are stacked along a
    leading axis and trained by one compiled, vmapped :func:`jdl.train.train_step`. Every
    configuration sees the same batches (shuffled with ``data_seed``), so configuration
    ``{"learning_rate": lr, "seed": s}`` trains as ``jdl.fit(..., seed=s)`` with that
    learning rate would when ``s == data_seed`` (``fit`` uses one seed for both). A
    configuration that diverges (NaN) does not disturb the others.

    Args:
        model: a ``flax.linen`` module with ``__call__(x, *, train)``.
        train: a random-access data source of ``{"x", "y"}`` examples, or an ``(x, y)``
            tuple of arrays (see :func:`jdl.data.from_arrays`).
        batch_size: the batch size (the last partial batch of an epoch is dropped).
        loss: a jdl loss or its name.
        optimizer: a name for :func:`jdl.train.optimizer` (e.g. ``"adam"``), a function
            ``learning_rate -> optax.GradientTransformation`` (e.g.
            ``lambda lr: optax.sgd(lr, momentum=0.9)``), or — when ``learning_rates`` is
            not given — a ready optax transformation or a ``(name, learning_rate)`` pair
            (the forms of :func:`jdl.train.as_optimizer`).
        learning_rates: learning rates to try (required with a name or a function).
        seeds: seeds of the initial parameters and dropout (default ``[0]``).
        init_scales: multipliers applied to the initial weight matrices and kernels
            (biases and BatchNorm parameters untouched; default ``[1.0]``).
        epochs: passes over ``train``; or ``steps``: optimiser steps (one is required).
        validation: a data source (or ``(x, y)`` tuple of arrays) evaluated exactly after
            each epoch (``val_*`` metrics).
        metrics: metric names/functions (default accuracy for classification losses).
        l1, l2: weight penalty coefficients, as in :func:`jdl.fit`.
        data_seed: the seed of the shuffling shared by all configurations.
        shuffle: reshuffle every epoch.
        log_every: fetch metrics from the device every this many steps.
        eval_batch_size: validation batch size (default ``max(batch_size, 256)``).
        verbose: 1 shows a progress bar; 0 is silent.

    Returns:
        A :class:`SweepResult` with ``configs`` and one ``History`` per configuration.

    Raises:
        ValueError: for empty or invalid settings, neither epochs nor steps, or a dataset
            smaller than one batch.

    Example:
        >>> import jdl
        >>> result = jdl.train.sweep(  # doctest: +SKIP
        ...     jdl.nn.MLP(widths=(64,), num_outputs=10), jdl.data.load("digits"),
        ...     batch_size=64, loss="cross_entropy", optimizer="sgd",
        ...     learning_rates=[0.01, 0.1, 1.0], epochs=5)
        >>> print(result.table(["loss", "accuracy"]))  # doctest: +SKIP
    """
    train = as_source(train, "train")
    validation = None if validation is None else as_source(validation, "validation")
    plan = plan_run(
        "sweep", model, train, validation, batch_size, epochs, steps, log_every, data_seed
    )
    configs = _grid(learning_rates, seeds, init_scales)
    factory = _optimizer_factory(optimizer, learning_rates)
    metrics = default_metrics(loss) if metrics is None else tuple(metrics)
    lrs = jnp.asarray([c.get("learning_rate", 1.0) for c in configs], jnp.float32)
    train_all, eval_all, init = _vmapped(model, factory, configs, lrs, plan, loss, metrics, l1, l2)
    histories = [
        History(config={**config, "model": type(model).__name__, "batch_size": batch_size})
        for config in configs
    ]
    val_feed = _make_feed(validation) if validation is not None else None
    runner = EpochRunner(
        plan,
        lambda fields, batch: train_all(fields, lrs, batch),
        init,
        seed=data_seed,
        shuffle=shuffle,
        log_every=log_every,
        step=0,
        verbose=verbose,
        postfix=_best_loss,
    )
    for epoch in range(plan.num_epochs):
        description = f"sweep of {len(configs)}: epoch {epoch + 1}/{plan.num_epochs}"
        logs = runner.train_epoch(epoch, description=description)
        if val_feed is not None:
            val = runner.evaluate(
                lambda f, batch: (f, eval_all(f, lrs, batch)),
                val_feed,
                eval_batch_size or max(batch_size, 256),
            )
            logs.update({f"val_{k}": v for k, v in val.items()})
        for i, history in enumerate(histories):
            history.append(epoch + 1, runner.step, {k: float(v[i]) for k, v in logs.items()})
        if runner.done:
            break
    runner.close()
    fields = jax.device_get(runner.state)
    for i, (config, history) in enumerate(zip(configs, histories, strict=True)):
        one = jax.tree_util.tree_map(lambda a, i=i: jnp.asarray(a[i]), fields)
        history.state = TrainState(**one, model=model, tx=factory(config.get("learning_rate", 1.0)))
    return SweepResult(configs=configs, histories=histories)
