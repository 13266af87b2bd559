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
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jdl import losses as losses_lib
from jdl.train.feed import epoch_batches, eval_batches, make_feed
from jdl.train.history import History
from jdl.train.loop import _plan, default_metrics
from jdl.train.optim import optimizer as make_optimizer
from jdl.train.state import TrainState, create_state
from jdl.train.step import eval_step, train_step

__all__ = ["SweepResult", "sweep"]

_FIELDS = ("step", "params", "batch_stats", "opt_state", "rng")


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
            mode: ``"max"``, ``"min"``, or ``"auto"`` (max for accuracies, min otherwise).
                NaN (a diverged run) never wins.
        """
        values = self.final(metric)
        if mode == "auto":
            mode = "max" if "acc" in metric else "min"
        if mode not in ("max", "min"):
            raise ValueError(f'mode must be "max", "min" or "auto"; got {mode!r}.')
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

    def plot(self, metric: str = "loss", *, ax=None):
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
    optimizer: str | Callable[[float], optax.GradientTransformation] | optax.GradientTransformation,
    learning_rates: Sequence[float] | None,
) -> Callable[[Any], optax.GradientTransformation]:
    if isinstance(optimizer, str):
        return lambda lr: make_optimizer(optimizer, lr)
    if isinstance(optimizer, optax.GradientTransformation):
        if learning_rates is not None:
            raise ValueError(
                "To sweep learning rates, pass `optimizer` as a name (e.g. 'adam') or a "
                "function learning_rate -> optax transformation (e.g. "
                "lambda lr: optax.adam(lr)); got a ready-made optax transformation."
            )
        return lambda lr: optimizer
    if callable(optimizer):
        if learning_rates is None:
            raise ValueError(
                "An optimizer factory needs `learning_rates` (the values to call it with)."
            )
        return optimizer
    raise TypeError(
        "optimizer must be a name, a function learning_rate -> optax transformation, or an "
        f"optax transformation; got {type(optimizer).__name__}."
    )


def _grid(learning_rates, seeds, init_scales) -> list[dict[str, float]]:
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


def _scale_kernels(params, scale):
    mask = losses_lib.kernel_mask(params)
    return jax.tree_util.tree_map(lambda p, m: p * scale if m else p, params, mask)


def sweep(
    model: Any,
    train: Sequence[Any],
    *,
    batch_size: int,
    loss: str | Callable,
    optimizer: str | Callable[[float], optax.GradientTransformation] | optax.GradientTransformation,
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
        train: a random-access data source of ``{"x", "y"}`` examples.
        batch_size: the batch size (the last partial batch of an epoch is dropped).
        loss: a jdl loss or its name.
        optimizer: a name for :func:`jdl.train.optimizer` (e.g. ``"adam"``), a function
            ``learning_rate -> optax.GradientTransformation`` (e.g.
            ``lambda lr: optax.sgd(lr, momentum=0.9)``), or — when ``learning_rates`` is
            not given — a ready optax transformation.
        learning_rates: learning rates to try (required with a name or a function).
        seeds: seeds of the initial parameters and dropout (default ``[0]``).
        init_scales: multipliers applied to the initial weight matrices and kernels
            (biases and BatchNorm parameters untouched; default ``[1.0]``).
        epochs: passes over ``train``; or ``steps``: optimiser steps (one is required).
        validation: a data source evaluated exactly after each epoch (``val_*`` metrics).
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
    feed, steps_per_epoch, total_steps, num_epochs, sample = _plan(
        "sweep", model, train, validation, batch_size, epochs, steps, log_every, data_seed
    )
    factory = _optimizer_factory(optimizer, learning_rates)
    configs = _grid(learning_rates, seeds, init_scales)
    num_configs = len(configs)
    loss_fn = losses_lib.get(loss)
    metrics = default_metrics(loss) if metrics is None else tuple(metrics)

    lrs = jnp.asarray([c.get("learning_rate", 1.0) for c in configs], jnp.float32)
    scales = jnp.asarray([c["init_scale"] for c in configs], jnp.float32)
    keys = jnp.stack([jax.random.PRNGKey(c["seed"]) for c in configs])

    @jax.jit
    def init_all(keys, lrs, scales):
        def one(key, lr, scale):
            state = create_state(model, factory(lr), sample, key)
            params = _scale_kernels(state.params, scale)
            state = state.replace(params=params, opt_state=state.tx.init(params))
            return {f: getattr(state, f) for f in _FIELDS}

        return jax.vmap(one)(keys, lrs, scales)

    def as_state(fields, lr):
        return TrainState(**fields, model=model, tx=factory(lr))

    step_one = functools.partial(train_step, loss_fn=loss_fn, metrics=metrics, l1=l1, l2=l2)

    @functools.partial(jax.jit, donate_argnums=0)
    def train_all(fields, lrs, batch):
        def one(fields, lr):
            new, out = step_one(as_state(fields, lr), batch)
            return {f: getattr(new, f) for f in _FIELDS}, out

        return jax.vmap(one)(fields, lrs)

    eval_one = functools.partial(eval_step, loss_fn=loss_fn, metrics=metrics)

    @jax.jit
    def eval_all(fields, lrs, batch):
        return jax.vmap(lambda f, lr: eval_one(as_state(f, lr), batch)[1])(fields, lrs)

    fields = init_all(keys, lrs, scales)
    histories = [
        History(config={**config, "model": type(model).__name__, "batch_size": batch_size})
        for config in configs
    ]
    val_feed = make_feed(validation) if validation is not None else None
    eval_batch_size = eval_batch_size or max(batch_size, 256)

    bar = tqdm(total=total_steps, disable=verbose < 1, unit="step", dynamic_ncols=True)
    step = 0

    def flush(pending, sums):
        """Fetch the pending per-step metrics in one transfer; add them to ``sums``."""
        fetched = jax.device_get(jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *pending))
        for name, values in fetched.items():  # values: (steps, K)
            sums[name] = sums.get(name, 0.0) + np.sum(values, axis=0)
        bar.update(len(pending))
        last = fetched["loss"][-1]
        finite = last[np.isfinite(last)]
        bar.set_postfix({"best loss": f"{finite.min():.4g}" if finite.size else "nan"})
        return len(pending)

    for epoch in range(num_epochs):
        bar.set_description(f"sweep of {num_configs}: epoch {epoch + 1}/{num_epochs}")
        sums: dict[str, np.ndarray] = {}
        count = 0
        pending: list[dict[str, jax.Array]] = []
        for batch in epoch_batches(feed, batch_size, seed=data_seed, epoch=epoch, shuffle=shuffle):
            if step >= total_steps:
                break
            fields, out = train_all(fields, lrs, batch)
            step += 1
            pending.append(out)
            if len(pending) >= log_every:
                count += flush(pending, sums)
                pending = []
        if pending:
            count += flush(pending, sums)
        rows = [{k: float(v[i]) / count for k, v in sums.items()} for i in range(num_configs)]
        if val_feed is not None:
            totals = None
            for batch in eval_batches(val_feed, eval_batch_size):
                part = eval_all(fields, lrs, batch)
                totals = part if totals is None else jax.tree_util.tree_map(jnp.add, totals, part)
            totals = jax.device_get(totals)
            n = totals.pop("count")
            for i, row in enumerate(rows):
                row.update({f"val_{k}": float(v[i] / n[i]) for k, v in totals.items()})
        for history, row in zip(histories, rows, strict=True):
            history.append(epoch + 1, step, row)
        if step >= total_steps:
            break
    bar.close()

    fields = jax.device_get(fields)
    for i, (config, history) in enumerate(zip(configs, histories, strict=True)):
        one = jax.tree_util.tree_map(lambda a, i=i: jnp.asarray(a[i]), fields)
        history.state = TrainState(**one, model=model, tx=factory(config.get("learning_rate", 1.0)))
    return SweepResult(configs=configs, histories=histories)
