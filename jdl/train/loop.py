"""``fit``: the Keras-like loop, as sugar over jdl's public pieces (``evaluate`` is in
:mod:`jdl.train.evaluation`).

``fit`` = :func:`create_state` + :func:`train_step` compiled by :func:`parallelize` +
a feed of batches + callbacks. Nothing here is needed to train with jdl; it is the
short way to do what the pieces do.
"""

from __future__ import annotations

import functools
import math
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdl import losses as losses_lib
from jdl.data import as_source
from jdl.train.callback_base import check_callbacks
from jdl.train.callbacks import Callback, Checkpoint, Run, TerminateOnNaN
from jdl.train.compile_cache import enable_compile_cache
from jdl.train.debug import DebugMonitor, warn_non_finite_loss
from jdl.train.feed import _check_data_on_device
from jdl.train.history import History
from jdl.train.interrupt import PREEMPTED, StopOnSignal
from jdl.train.optim import as_optimizer
from jdl.train.parallel import ParallelStep, parallelize
from jdl.train.precision import check_precision, step_options, with_loss_scaling
from jdl.train.resume import (
    ResumePoint,
    callback_states,
    encode,
    kept_states,
    load_callback_states,
    restore_run,
    run_config,
)
from jdl.train.runner import (
    EpochRunner,
    check_run_settings,
    default_metrics,
    plan_run,
)
from jdl.train.state import TrainState, check_variables, create_state, state_from_variables
from jdl.train.step import eval_step, train_step

__all__ = ["fit"]


def _start_from(
    state: TrainState, variables: Mapping[str, Any], optimizer: optax.GradientTransformation
) -> TrainState:
    """``state`` with the given variables (checked against the fresh init) and a new optimiser."""
    if not isinstance(variables, Mapping) or "params" not in variables:
        raise ValueError(
            'fit variables= must be a mapping with a "params" entry (and "batch_stats" for '
            f"models with BatchNorm), got {type(variables).__name__}"
            + (f" with keys {sorted(variables)}" if isinstance(variables, Mapping) else "")
        )
    expected = {"params": state.params, "batch_stats": state.batch_stats}
    given = check_variables(expected, variables, "fit variables=")
    # In the model's dtypes, copied: the state is donated to the train step, the caller's
    # arrays must survive it. The key stays the fresh state's (``seed``'s).
    cast = jax.tree.map(lambda ref, v: jnp.asarray(v, dtype=ref.dtype), expected, given)
    return state_from_variables(state.model, optimizer, cast).replace(rng=state.rng)


def fit(
    model: Any,
    train: Sequence[Any],
    *,
    batch_size: int,
    optimizer: optax.GradientTransformation | tuple[str, float],
    loss: str | Callable,
    epochs: int | None = None,
    steps: int | None = None,
    validation: Sequence[Any] | None = None,
    callbacks: Sequence[Callback] = (),
    strategy: str | None = None,
    seed: int = 0,
    verbose: int = 1,
    metrics: Sequence[str | Callable] | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    log_every: int = 50,
    eval_batch_size: int | None = None,
    shuffle: bool = True,
    resume: bool = False,
    variables: Mapping[str, Any] | None = None,
    debug: bool = False,
    precision: str = "float32",
    on_sigterm: str = "exit",
    mesh: jax.sharding.Mesh | None = None,
    sharding_rules: Sequence[tuple[str, Any]] = (),
    compile_cache: str | os.PathLike | None = None,
    data_on_device: bool | None = None,
) -> History:
    """Train a model on a dataset; return its :class:`History`.

    Args:
        model: a ``flax.linen`` module with ``__call__(x, *, train)``.
        train: a random-access data source whose examples are dicts with ``"x"``, ``"y"``
            (e.g. ``jdl.data.load("mnist1d")``), or an ``(x, y)`` tuple of arrays, as Keras
            takes (shorthand for :func:`jdl.data.from_arrays` ``(x, y)``).
        batch_size: the global batch size; the last partial batch of each epoch is
            dropped so every step has the same shape (one compilation).
        optimizer: an optax transformation (e.g. ``jdl.train.optimizer("adam", 1e-3)``) or
            a ``(name, learning_rate)`` pair such as ``("adam", 1e-3)`` (see
            :func:`jdl.train.as_optimizer`).
        loss: a jdl loss or its name (``"cross_entropy"``, ``"mse"``, ...).
        epochs: number of passes over ``train``.
        steps: number of optimiser steps instead (or as well: the run stops at whichever
            comes first). One of ``epochs`` / ``steps`` is required.
        validation: a data source (or ``(x, y)`` tuple of arrays) evaluated (exactly,
            every example once) after each epoch; its numbers are recorded as ``val_<name>``.
        callbacks: :class:`jdl.train.callbacks.Callback` objects.
        strategy: ``"jit"``, ``"sharded"``, ``"pmap"`` or ``"fsdp"`` (parameters and
            optimiser state sharded over a ``("data", "fsdp")`` mesh of all devices, see
            :func:`jdl.train.parallelize`); default by device count.
        seed: the seed of the parameters, dropout and shuffling.
        verbose: 0 is silent. 1 (the default) shows a tqdm progress bar whose postfix is
            the running mean over the epoch so far of the loss and each metric, and prints
            one line per epoch above it, Keras-style, with the epoch's recorded values
            (those of its :class:`History` row: the epoch means, the ``val_*`` metrics,
            what callbacks add such as ``learning_rate``) to 4 significant digits, e.g.
            ``epoch 3/10  1.2 s  loss 0.1234  accuracy 0.912  val_loss 0.2  val_accuracy
            0.9``; the bar is cleared at the end, leaving the lines. When ``sys.stderr``
            (where it writes, as tqdm does) is not a terminal -- piped to a file, a CI log
            -- it writes no carriage-return updates and behaves as 2. 2 prints only the
            line per epoch. ``False`` / ``True`` are 0 / 1; anything else is refused. In
            a multi-process run only process 0 shows anything (on the others it is 0). See
            :mod:`jdl.train.progress`.
        metrics: metric names/functions; default accuracy for classification losses.
        l1, l2: penalty coefficients (weights only, not biases or BatchNorm).
        log_every: fetch metrics from the device every this many steps (never per step).
        eval_batch_size: batch size for validation (default ``max(batch_size, 256)``),
            rounded up to a multiple of the devices (the padding is masked).
        shuffle: reshuffle the training data each epoch.
        resume: continue from the latest checkpoint of the ``Checkpoint`` callback.
        variables: start from these variables (``{"params": ..., "batch_stats": ...}``,
            e.g. pretrained weights or another run's ``History.variables``) instead of a
            fresh initialisation; the optimiser state is new and the step count starts at 0.
            They must have exactly the model's structure and shapes. The caller's arrays are
            copied, never donated.
        debug: check every step on the device for NaN/inf -- in the input batch, every
            layer's output, the loss, every gradient and every updated variable -- and stop
            at the first step that has any with a :class:`jdl.train.NonFiniteError` naming
            the step, its batch's examples, and the first input field, layer (module path)
            and parameter path that went non-finite (:mod:`jdl.train.debug`). The counts
            travel with the metrics, fetched every ``log_every`` steps (no extra host
            synchronisation); the step computes more, so use it to find a divergence, not to
            train. Without it, a NaN/inf epoch loss warns once (naming the first non-finite
            parameter) and training goes on, unless :class:`~jdl.train.callbacks.TerminateOnNaN`
            stops it.
        precision: ``"float32"`` (the default), ``"bfloat16"`` or ``"float16"``: float32
            parameters, optimiser state and BatchNorm statistics, the forward and backward
            passes computed in the lower precision, the loss and metrics in float32
            (:mod:`jdl.train.precision`). ``"float16"`` adds dynamic loss scaling (a step
            whose gradients overflow is skipped). bfloat16 pays off where the hardware
            computes it natively (TPUs, recent GPUs); XLA:CPU emulates it, slower.
        on_sigterm: what a SIGTERM (a cluster's preemption notice) does once the run has
            stopped at a step boundary and each ``Checkpoint`` has saved: ``"exit"`` (the
            default) raises ``SystemExit(143)``, ``"return"`` returns the history with
            ``stop_reason == "preempted"``, so the script exits 0 and resumes with
            ``resume=True``. In a multi-process run every process stops after the same step
            (JAX's preemption service; :mod:`jdl.train.interrupt`).
        mesh: the device mesh of ``"sharded"`` (a 1-D ``"data"`` mesh) or ``"fsdp"`` (a
            ``("data", "fsdp")`` mesh, e.g. ``jdl.train.fsdp_mesh((2, 4))``); default: all
            devices (see :func:`jdl.train.parallelize`).
        sharding_rules: for ``"fsdp"``, ``(regex, PartitionSpec)`` pairs placing the state
            leaves whose path matches (first match wins) before the FSDP rule places the
            rest (:func:`jdl.train.state_shardings`).
        compile_cache: a directory for JAX's persistent compilation cache
            (:func:`jdl.train.enable_compile_cache`): the compiled steps are written there,
            and a later process training the same model with the same settings loads them
            instead of compiling again. One directory per process.
        data_on_device: hold the training data on the devices and gather each batch there
            (no host-to-device copy per step; each epoch sends only its order of indices,
            the same batches as from the host, so the same results). ``None`` (the
            default) does so for a source held in memory (``(x, y)`` arrays,
            :func:`jdl.data.from_arrays`, a small or ``in_memory`` dataset) under the
            ``"jit"`` or ``"sharded"`` strategy in one process when the data take at most
            2 GiB per device and at most a quarter of a device's memory where the device
            reports it; otherwise batches come from the host. ``True`` places the data
            whatever their size, ``False`` never. The data are replicated on every
            device of the strategy. On CPU the devices' memory is the host's: arrays
            aligned to 64 bytes (those jdl reads into memory) are used in place, others
            are copied once.

    Returns:
        A :class:`History`: per-epoch ``metrics``, the final ``state`` and ``variables``.

    Raises:
        ValueError: for a dataset smaller than one batch, neither epochs nor steps, a
            batch that does not fit the model, and the like — naming what was expected.
            The data (training and validation) is checked before anything compiles: NaN
            or inf, and targets that do not fit the model's outputs under ``loss`` (class
            labels outside ``[0, num_outputs)``, targets outside ``[0, 1]`` for
            ``binary_cross_entropy``, shapes that would broadcast) are refused, with the
            range found and the fix (:mod:`jdl.train.data_checks`).
            Also for a ``compile_cache`` other than the one this process already uses,
            and for ``data_on_device=True`` with a streamed source, ``strategy="pmap"``
            or ``"fsdp"``, or several processes (or a ``data_on_device`` that is not
            ``None``, ``True`` or ``False``). And, under ``strategy="pmap"``, for a model
            with BatchNorm layers whose ``axis_name`` is not ``"batch"`` (per-device
            statistics; the layers and the fix are named), before the first step.
        TypeError: for inputs or targets that are not numbers (strings, objects, dates).
        NonFiniteError: with ``debug=True``, at the first step that produced NaN or inf.
        KeyboardInterrupt: on SIGINT (Ctrl-C) while training, after stopping at a step
            boundary and letting each ``Checkpoint`` save that step (resumable exactly);
            ``SystemExit(143)`` likewise on SIGTERM (unless ``on_sigterm="return"``). See
            :mod:`jdl.train.interrupt`.

    In a multi-process run (``jax.distributed``), a device call that fails while training
    or validating -- typically because another process died -- ends the process at once
    with one line on stderr and exit status 75 (``jdl.train._peers.PEER_LOST_EXIT``),
    instead of a wait for ``jax.distributed``'s heartbeat timeout and an abort.
    """
    if compile_cache is not None:  # before anything compiles
        enable_compile_cache(compile_cache)
    check_precision(precision)
    _check_data_on_device(data_on_device)
    if on_sigterm not in ("exit", "return"):
        raise ValueError(f'on_sigterm must be "exit" or "return"; got {on_sigterm!r}.')
    train = as_source(train, "train")
    validation = None if validation is None else as_source(validation, "validation")
    optimizer = with_loss_scaling(as_optimizer(optimizer), precision)
    check_run_settings("fit", l1=l1, l2=l2, eval_batch_size=eval_batch_size, verbose=verbose)
    check_callbacks(callbacks)
    plan = plan_run(
        "fit", model, train, validation, batch_size, epochs, steps, log_every, seed, loss, metrics
    )
    metrics = default_metrics(loss) if metrics is None else tuple(metrics)
    if resume and variables is not None:
        raise ValueError(
            "fit got resume=True and variables=: a resumed run continues from its checkpoint; "
            "pass one or the other."
        )
    state = create_state(model, optimizer, plan.sample, seed)
    if variables is not None:
        state = _start_from(state, variables, optimizer)
    history = History(config=_config(model, batch_size, epochs, steps, loss, metrics, seed, l1, l2))
    history.config["precision"] = precision
    config = run_config(history.config, model, state.opt_state, shuffle=shuffle)
    if resume:
        point = restore_run(
            state, history, callbacks, config, plan.total_steps, plan.steps_per_epoch
        )
    else:
        point = ResumePoint(state)
    train_fn, eval_fn = _steps(
        loss, metrics, l1, l2, strategy, debug, precision, mesh, tuple(sharding_rules)
    )
    monitor = DebugMonitor.for_run(model, point.state, plan) if debug else None
    warn_nan = not debug and not any(isinstance(cb, TerminateOnNaN) for cb in callbacks)
    runner = EpochRunner(
        plan, train_fn, point.state, seed=seed, shuffle=shuffle, log_every=log_every,
        verbose=verbose, data_on_device=data_on_device,
    )  # fmt: skip
    runner.metrics.carry(*point.sums)
    run = Run(
        history=history,
        epoch=point.epoch,
        step=runner.step,
        total_steps=plan.total_steps,
        steps_per_epoch=plan.steps_per_epoch,
        get_state=lambda: train_fn.unreplicate(runner.state),
        set_state=lambda s: setattr(runner, "state", train_fn.put_state(s)),
        stop_training=point.stop_reason is not None,
        stop_reason=point.stop_reason,
    )
    runner.on_fetch = functools.partial(_on_metrics, run, runner, callbacks, monitor)
    # Checkpoints save after every other callback has seen the epoch, and before any
    # other callback changes the state at the end of training.
    savers = [cb for cb in callbacks if isinstance(cb, Checkpoint)]
    others = [cb for cb in callbacks if not isinstance(cb, Checkpoint)]
    for cb in callbacks:
        cb.on_train_begin(run)
    load_callback_states(callbacks, point.callbacks, point.kept)
    # The callbacks' states as of the last complete epoch: what a checkpoint saves.
    boundary = {"states": callback_states(callbacks), "kept": kept_states(callbacks)}
    run.checkpoint_extras = functools.partial(_extras, run, runner, config, boundary)
    if any(cb.every_steps for cb in savers):  # checkpoints inside epochs, between steps
        runner.on_step = functools.partial(_save_steps, run, runner, savers)
    val_feed = plan.validation
    # SIGINT/SIGTERM only set a flag while training: the run stops at a step boundary,
    # the Checkpoint callbacks save, then fit raises (jdl/train/interrupt.py).
    with StopOnSignal() as signals:

        def stop() -> bool:
            return run.stop_training or signals.check(runner.step)

        for epoch in range(point.epoch, plan.num_epochs):
            if stop():
                break
            run.epoch = epoch + 1
            logs = runner.train_epoch(epoch, stop=stop)
            run.step = runner.step
            inside = run.step < run.epoch * plan.steps_per_epoch and not runner.done
            if signals.received is not None and inside:
                break  # interrupted inside the epoch: saved as a partial one, not recorded
            if val_feed is not None:
                val = runner.evaluate(eval_fn, val_feed, eval_batch_size or max(batch_size, 256))
                logs.update({f"val_{k}": v for k, v in val.items()})
            logs = {k: float(v) for k, v in logs.items()}
            if warn_nan and not math.isfinite(logs.get("loss", 0.0)):
                warn_nan = warn_non_finite_loss(run, logs["loss"])  # once
            for cb in callbacks:
                cb.on_epoch_end(run, logs)
            history.append(run.epoch, run.step, logs)
            runner.end_epoch(logs)  # the line shows the row just recorded
            for cb in others:
                cb.on_epoch_recorded(run)
            if run.step == run.epoch * plan.steps_per_epoch:
                boundary.update(states=callback_states(callbacks), kept=kept_states(callbacks))
            for cb in savers:
                cb.on_epoch_recorded(run)
            if stop() or runner.done:
                break
        runner.close()
        # Interrupted: only the checkpoints' end (a save), as with any exception.
        for cb in savers if signals.received is not None else savers + others:
            cb.on_train_end(run)
        if on_sigterm == "return" and signals.received == signal.SIGTERM:
            run.stop_reason = PREEMPTED
        else:
            signals.raise_if_received(run.step, [cb.directory for cb in savers])
    history.stop_reason = run.stop_reason
    history.state = run.get_state()
    return history


def _extras(
    run: Run, runner: EpochRunner, config: dict[str, Any], boundary: dict[str, Any]
) -> dict[str, Any]:
    """What a checkpoint saves beside the state and history for an exact resumption."""
    extras = {"config": encode(config), "callbacks": boundary["states"]}
    extras["kept_states"] = boundary["kept"]
    extras["stop_reason"] = run.stop_reason
    if run.step < run.epoch * run.steps_per_epoch:  # a partial epoch: keep its sums
        sums, count = runner.metrics.epoch_sums()
        extras["partial"] = {"sums": encode({k: float(v) for k, v in sums.items()}),
                             "count": count}  # fmt: skip
    return extras


def _steps(
    loss: str | Callable,
    metrics: Sequence[str | Callable],
    l1: float,
    l2: float,
    strategy: str | None,
    debug: bool = False,
    precision: str = "float32",
    mesh: jax.sharding.Mesh | None = None,
    rules: tuple[tuple[str, Any], ...] = (),
) -> tuple[ParallelStep, ParallelStep]:
    """The compiled training step (counting NaN/inf with ``debug``) and, on the same
    devices and mesh, the evaluation step, both computing in ``precision``."""
    loss_fn = losses_lib.get(loss)
    mixed = step_options(precision)
    options = {"debug": True, **mixed} if debug else mixed
    train_fn = parallelize(
        functools.partial(train_step, loss_fn=loss_fn, metrics=metrics, l1=l1, l2=l2, **options),
        strategy,
        mesh=mesh,
        rules=rules,
    )
    if rules and train_fn.strategy != "fsdp":
        raise ValueError(
            f'sharding_rules place parameters for strategy="fsdp"; this run uses '
            f"{train_fn.strategy!r}."
        )
    eval_fn = parallelize(
        functools.partial(eval_step, loss_fn=loss_fn, metrics=metrics, **mixed),
        train_fn.strategy,
        donate=False,
        mesh=train_fn.mesh,
        rules=rules,
    )
    return train_fn, eval_fn


def _config(
    model: Any,
    batch_size: int,
    epochs: int | None,
    steps: int | None,
    loss: str | Callable,
    metrics: Sequence[str | Callable],
    seed: int,
    l1: float,
    l2: float,
) -> dict[str, Any]:
    """The run's settings, as ``History.config`` records them."""
    loss_fn = losses_lib.get(loss)
    return {
        "model": type(model).__name__,
        "batch_size": batch_size,
        "epochs": epochs,
        "steps": steps,
        "loss": loss if isinstance(loss, str) else getattr(loss_fn, "__name__", "loss"),
        "metrics": [m if isinstance(m, str) else m.__name__ for m in metrics],
        "seed": seed,
        "l1": l1,
        "l2": l2,
    }


def _on_metrics(
    run: Run,
    runner: EpochRunner,
    callbacks: Sequence[Callback],
    monitor: DebugMonitor | None,
    first_step: int,
    fetched: dict[str, np.ndarray],
) -> None:
    """Hand freshly fetched per-step metrics to the callbacks (after ``debug``'s check,
    which takes its entries out)."""
    if monitor is not None:
        monitor.check(first_step, fetched)
    run.step = runner.step
    for cb in callbacks:
        cb.on_metrics(run, first_step, fetched)


def _save_steps(run: Run, runner: EpochRunner, savers: Sequence[Checkpoint], step: int) -> None:
    """After a step: the checkpoints ``every_steps`` asks for inside an epoch (one at an
    epoch's end is saved with the epoch's row, one at the run's end by ``on_train_end``)."""
    due = [cb for cb in savers if cb.due_at(step)]
    if not due or step % run.steps_per_epoch == 0 or runner.done or run.stop_training:
        return
    runner.metrics.flush()  # the partial epoch's sums, and the callbacks see its metrics
    run.step = runner.step
    if run.stop_training:  # a callback stopped the run on those metrics: it ends as such
        return
    for cb in due:
        cb.save(run)
