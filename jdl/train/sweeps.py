"""Train many configurations at once: one model, K settings, one compiled program.

:func:`sweep` stacks K copies of the training state along a leading axis and runs
:func:`jdl.train.train_step` under ``jax.vmap``: every step of every configuration is
one call of one compiled function, on the same batch. On small models this is much
faster than K separate runs of :func:`jdl.fit` (one compilation instead of K, one
dispatch per step instead of K, and wider matrix products that use the hardware
better); ``benchmarks/`` and the test suite measure the ratio.

What can differ between configurations: the learning rate (``learning_rates``), the
seed of the initial parameters and of dropout (``seeds``), a multiplier on the initial
weight matrices (``init_scales``), and any hyper-parameter that keeps every shape the
same (``params``: the optimiser's ``momentum`` or ``weight_decay``, the loss's
``label_smoothing``, a model field; see :mod:`jdl.train.hparams` for where each goes and
what cannot be traced). The configurations are the Cartesian product of all the lists.
All configurations see the same batches in the same order (shuffled with ``data_seed``),
so differences come from the setting alone. In one process the sweep runs on one device;
in a multi-process run (``jax.distributed``) each process reads its part of every global
batch and the step is data-parallel over the devices of all processes (the ``"sharded"``
strategy of :func:`jdl.train.parallelize`, as ``fit`` uses it), so every process reports
the numbers of the one-process sweep. Settings that change shapes (widths, depth,
batch size) need one run each: :func:`jdl.train.search`.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdl import losses as losses_lib
from jdl.data import as_source
from jdl.train.compile_cache import enable_compile_cache
from jdl.train.history import History
from jdl.train.hparams import Hyper
from jdl.train.optim import _check_learning_rate
from jdl.train.parallel import parallelize
from jdl.train.precision import check_precision, step_options, with_loss_scaling
from jdl.train.results import SweepResult
from jdl.train.runner import EpochRunner, RunPlan, check_run_settings, default_metrics, plan_run
from jdl.train.state import TrainState, create_state
from jdl.train.step import eval_step, train_step

__all__ = ["SweepResult", "sweep"]

Factory = Callable[[Any, Mapping[str, Any]], optax.GradientTransformation]


def _grid(
    learning_rates: Sequence[float] | None,
    seeds: Sequence[int] | None,
    init_scales: Sequence[float] | None,
    hyper: Hyper,
) -> list[dict[str, float]]:
    for name, values in (
        ("learning_rates", learning_rates),
        ("seeds", seeds),
        ("init_scales", init_scales),
    ):
        if values is not None and len(values) == 0:
            raise ValueError(f"{name} must not be empty.")
    lrs = list(learning_rates) if learning_rates is not None else [math.nan]
    if learning_rates is not None:
        for lr in lrs:
            _check_learning_rate(lr)
    configs = []
    grid = itertools.product(lrs, seeds or [0], init_scales or [1.0], *hyper.values.values())
    for lr, seed, scale, *values in grid:
        config = {"learning_rate": float(lr), "seed": int(seed), "init_scale": float(scale)}
        if learning_rates is None:
            del config["learning_rate"]
        configs.append({**config, **dict(zip(hyper.values, values, strict=True))})
    return configs


def _scale_kernels(params: Any, scale: jax.Array) -> Any:
    mask = losses_lib.kernel_mask(params)
    return jax.tree_util.tree_map(lambda p, m: p * scale if m else p, params, mask)


def _best_config(means: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    """What the progress display shows of K configurations' means: those of the one with
    the lowest ``val_loss`` (``loss`` while training or without validation), NaN ignored,
    labelled with its index into ``SweepResult.configs``."""
    key = "val_loss" if "val_loss" in means else "loss"
    ranked = np.where(np.isnan(means[key]), np.inf, means[key])
    best = int(np.argmin(ranked))
    return f"best config {best}", {k: float(np.asarray(v)[best]) for k, v in means.items()}


def _loss_scaled(
    factory: Factory, precision: str, lr: Any, h: dict[str, Any]
) -> optax.GradientTransformation:
    """``factory(lr, h)``, with dynamic loss scaling for float16 (:func:`with_loss_scaling`)."""
    return with_loss_scaling(factory(lr, h), precision)


def _settings(configs: list[dict[str, float]], hyper: Hyper) -> dict[str, Any]:
    """What varies per configuration inside the program, stacked: ``{"lr", "h": {...}}``."""

    def stack(key: str) -> jax.Array:
        return jnp.asarray([c.get(key, 1.0) for c in configs], jnp.float32)

    return {"lr": stack("learning_rate"), "h": {k: stack(k) for k in hyper.values}}


def _vmapped(
    model: Any,
    factory: Factory,
    hyper: Hyper,
    configs: list[dict[str, float]],
    plan: RunPlan,
    loss: str | Callable,
    metrics: Sequence[str | Callable],
    l1: float,
    l2: float,
    precision: str = "float32",
) -> tuple[Callable[..., Any], Callable[..., Any], dict[str, Any]]:
    """``(train_fn, eval_fn, fields)``: the vmapped training and evaluation steps over K
    stacked states (the stacked :func:`_settings` compiled in), computing in
    ``precision``, compiled by :func:`jdl.train.parallelize`, and the K initial states'
    arrays."""
    mixed = step_options(precision)
    scales = jnp.asarray([c["init_scale"] for c in configs], jnp.float32)
    keys = jnp.stack([jax.random.PRNGKey(c["seed"]) for c in configs])
    sample = plan.sample
    loss_fn = losses_lib.get(loss)

    def as_state(fields: dict[str, Any], s: dict[str, Any]) -> TrainState:
        return TrainState(**fields, model=hyper.model(model, s["h"]), tx=factory(s["lr"], s["h"]))

    @jax.jit
    def init_all(keys: jax.Array, settings: dict[str, Any], scales: jax.Array) -> dict[str, Any]:
        def one(key: jax.Array, s: dict[str, Any], scale: jax.Array) -> dict[str, Any]:
            state = create_state(hyper.model(model, s["h"]), factory(s["lr"], s["h"]), sample, key)
            params = _scale_kernels(state.params, scale)
            state = state.replace(params=params, opt_state=state.tx.init(params))
            return state.arrays

        return jax.vmap(one)(keys, settings, scales)

    settings = _settings(configs, hyper)
    constants = jax.tree_util.tree_map(np.asarray, settings)  # compiled in, on any device

    def train_all(
        fields: dict[str, Any], batch: dict[str, Any], *, settings: Any, axis_name: None = None
    ) -> tuple[dict[str, Any], dict[str, jax.Array]]:
        def one(f: dict[str, Any], s: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
            step = functools.partial(
                train_step, loss_fn=hyper.loss(loss_fn, s["h"]), metrics=metrics, l1=l1, l2=l2,
                **mixed,
            )  # fmt: skip
            new, out = step(as_state(f, s), batch)
            return new.arrays, out

        return jax.vmap(one)(fields, settings)

    def eval_all(
        fields: dict[str, Any], batch: dict[str, Any], *, settings: Any, axis_name: None = None
    ) -> tuple[dict[str, Any], dict[str, jax.Array]]:
        def one(f: dict[str, Any], s: dict[str, Any]) -> dict[str, jax.Array]:
            loss_one = hyper.loss(loss_fn, s["h"])
            return eval_step(as_state(f, s), batch, loss_fn=loss_one, metrics=metrics, **mixed)[1]

        return fields, jax.vmap(one)(fields, settings)

    # One device in one process; across processes data-parallel over all their devices
    # (each process feeds its part of every global batch, as in ``fit``), so that every
    # process trains on the whole global batch and reports the same numbers.
    # The settings (a dict: not hashable) keep these steps out of parallelize's cache of
    # compiled steps: they are this sweep's alone and go with it.
    strategy = "sharded" if jax.process_count() > 1 else "jit"
    train_fn = parallelize(
        functools.partial(train_all, settings=constants), strategy, updates_state=True
    )
    eval_fn = parallelize(
        functools.partial(eval_all, settings=constants),
        strategy,
        donate=False,
        updates_state=False,
        mesh=train_fn.mesh,
    )
    return train_fn, eval_fn, init_all(keys, settings, scales)


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
    params: Mapping[str, Sequence[float]] | None = None,
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
    precision: str = "float32",
    compile_cache: str | os.PathLike | None = None,
) -> SweepResult:
    """Train K configurations of one model at once with ``jax.vmap``.

    The configurations are the Cartesian product of ``learning_rates``, ``seeds``,
    ``init_scales`` (each defaults to a single value) and every list in ``params``. Their
    states are stacked along a leading axis and trained by one compiled, vmapped
    :func:`jdl.train.train_step`. Every configuration sees the same batches (shuffled
    with ``data_seed``), so configuration ``{"learning_rate": lr, "seed": s}`` trains as
    ``jdl.fit(..., seed=s)`` with that learning rate would when ``s == data_seed``
    (``fit`` uses one seed for both). A configuration that diverges (NaN) does not
    disturb the others.

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
            (the forms of :func:`jdl.train.as_optimizer`). With optimiser
            hyper-parameters in ``params``, a name or pair gets them as keywords and a
            function is called as ``optimizer(learning_rate, **those)``.
        learning_rates: learning rates to try (required with a name or a function).
        seeds: seeds of the initial parameters and dropout (default ``[0]``).
        init_scales: multipliers applied to the initial weight matrices and kernels
            (biases and BatchNorm parameters untouched; default ``[1.0]``).
        params: other hyper-parameters to try, ``name -> list of numbers``, e.g.
            ``{"momentum": [0.0, 0.9], "weight_decay": [0.0, 1e-4]}``. A name that is a
            field of the model goes to the model, a keyword of the loss (e.g.
            ``label_smoothing``) to the loss, any other to the optimiser. Each is traced:
            one that the code reading it needs as a Python number (a dropout rate of the
            jdl models) is refused before training starts, with a pointer to
            :func:`jdl.train.search`.
        epochs: passes over ``train``; or ``steps``: optimiser steps (one is required).
        validation: a data source (or ``(x, y)`` tuple of arrays) evaluated exactly after
            each epoch (``val_*`` metrics).
        metrics: metric names/functions (default accuracy for classification losses).
        l1, l2: weight penalty coefficients, as in :func:`jdl.fit`.
        data_seed: the seed of the shuffling shared by all configurations.
        shuffle: reshuffle every epoch.
        log_every: fetch metrics from the device every this many steps.
        eval_batch_size: validation batch size (default ``max(batch_size, 256)``),
            rounded up to a multiple of the devices (the padding is masked).
        verbose: the display of :func:`jdl.fit` (0, 1 or 2: a bar and a line per epoch,
            lines only when ``sys.stderr`` is not a terminal, a line per epoch; see
            :mod:`jdl.train.progress`), showing one configuration: the bar the running
            means of the one with the lowest running mean loss, each epoch's line the
            recorded values of the one with the lowest ``val_loss`` (``loss`` without
            validation), NaN ignored, e.g. ``sweep of 4: epoch 2/5  0.8 s  best config 1
            loss 0.3  accuracy 0.9  val_loss 0.35  val_accuracy 0.88``, where ``config 1``
            is ``result.configs[1]`` (``result.histories[1]`` records those values).
        precision: ``"float32"``, ``"bfloat16"`` or ``"float16"``: the computation dtype
            of every configuration, as for :func:`jdl.fit` (:mod:`jdl.train.precision`).
        compile_cache: a directory for JAX's persistent compilation cache, as for
            :func:`jdl.fit` (:func:`jdl.train.enable_compile_cache`).

    Returns:
        A :class:`SweepResult` with ``configs`` (every swept setting named) and one
        ``History`` per configuration; each history's ``state`` holds that
        configuration's model and optimiser, built with its values.

    Raises:
        ValueError: for empty or invalid settings, a hyper-parameter that cannot be
            traced or changes shapes, neither epochs nor steps, or a dataset smaller than
            one batch.

    Example:
        >>> import jdl
        >>> result = jdl.train.sweep(  # doctest: +SKIP
        ...     jdl.nn.MLP(widths=(64,), num_outputs=10), jdl.data.load("digits"),
        ...     batch_size=64, loss="cross_entropy", optimizer="sgd",
        ...     learning_rates=[0.01, 0.1], params={"momentum": [0.0, 0.9]}, epochs=5)
        >>> print(result.table(["loss", "accuracy"]))  # doctest: +SKIP
    """
    if compile_cache is not None:  # before anything compiles
        enable_compile_cache(compile_cache)
    check_precision(precision)
    train = as_source(train, "train")
    validation = None if validation is None else as_source(validation, "validation")
    check_run_settings("sweep", l1=l1, l2=l2, eval_batch_size=eval_batch_size, verbose=verbose)
    plan = plan_run(
        "sweep", model, train, validation, batch_size, epochs, steps, log_every, data_seed,
        loss, metrics
    )  # fmt: skip
    loss_fn = losses_lib.get(loss)
    hyper = Hyper.route(params, model, loss_fn)
    configs = _grid(learning_rates, seeds, init_scales, hyper)
    factory = hyper.optimizer(optimizer, swept_lr=learning_rates is not None)
    first_lr = configs[0].get("learning_rate", 1.0)
    if hyper:
        hyper.check(model, loss_fn, factory, plan.sample, first_lr)
    else:
        factory(first_lr, {})  # a bad optimiser fails here, before anything compiles
    metrics = default_metrics(loss) if metrics is None else tuple(metrics)
    scaled = functools.partial(_loss_scaled, factory, precision)
    train_fn, eval_fn, init = _vmapped(
        model, scaled, hyper, configs, plan, loss, metrics, l1, l2, precision
    )
    common = {"model": type(model).__name__, "batch_size": batch_size, "precision": precision}
    histories = [History(config={**config, **common}) for config in configs]
    val_feed = plan.validation
    runner = EpochRunner(
        plan,
        train_fn,
        init,
        seed=data_seed,
        shuffle=shuffle,
        log_every=log_every,
        step=0,
        verbose=verbose,
        summary=_best_config,
    )
    for epoch in range(plan.num_epochs):
        description = f"sweep of {len(configs)}: epoch {epoch + 1}/{plan.num_epochs}"
        logs = runner.train_epoch(epoch, description=description)
        if val_feed is not None:
            val = runner.evaluate(eval_fn, val_feed, eval_batch_size or max(batch_size, 256))
            logs.update({f"val_{k}": v for k, v in val.items()})
        for i, history in enumerate(histories):
            history.append(epoch + 1, runner.step, {k: float(v[i]) for k, v in logs.items()})
        runner.end_epoch(logs)
        if runner.done:
            break
    runner.close()
    fields = jax.device_get(train_fn.unreplicate(runner.state))
    for i, (config, history) in enumerate(zip(configs, histories, strict=True)):
        one = jax.tree_util.tree_map(lambda a, i=i: jnp.asarray(a[i]), fields)
        h = {k: config[k] for k in hyper.values}
        history.state = TrainState(
            **one,
            model=hyper.model(model, h),
            tx=scaled(config.get("learning_rate", 1.0), h),
        )
    return SweepResult(configs=configs, histories=histories)
