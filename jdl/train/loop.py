"""``fit`` and ``evaluate``: the Keras-like loop, as sugar over jdl's public pieces.

``fit`` = :func:`create_state` + :func:`train_step` compiled by :func:`parallelize` +
a feed of batches + callbacks. Nothing here is needed to train with jdl; it is the
short way to do what the pieces do.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jdl import losses as losses_lib
from jdl.train.callbacks import Callback, Run
from jdl.train.checkpoint import Checkpoint, restore_state
from jdl.train.feed import epoch_batches, eval_batches, make_feed
from jdl.train.history import History
from jdl.train.parallel import parallelize
from jdl.train.state import TrainState, create_state
from jdl.train.step import eval_step, train_step

__all__ = ["default_metrics", "evaluate", "fit"]


def default_metrics(loss: str | Callable) -> tuple[str, ...]:
    """The metrics ``fit`` reports by default for a loss: accuracy for classification."""
    fn = losses_lib.get(loss)
    if fn is losses_lib.cross_entropy:
        return ("accuracy",)
    if fn is losses_lib.binary_cross_entropy:
        return ("binary_accuracy",)
    return ()


def _check_source(name: str, source: Any) -> None:
    if not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
        raise TypeError(
            f"{name} must be a random-access data source (len() and [i], e.g. "
            f"jdl.data.load(...)); got {type(source).__name__}."
        )
    example = source[0]
    if not isinstance(example, dict) or "x" not in example or "y" not in example:
        found = sorted(example) if isinstance(example, dict) else type(example).__name__
        raise ValueError(f'{name} examples must be dicts with "x" and "y"; got {found}.')


def _check_batch_fits_model(model, state_like_x: np.ndarray) -> None:
    """Run the model abstractly on a batch so a shape mismatch fails before training."""
    jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), state_like_x)


def _plan(caller, model, train, validation, batch_size, epochs, steps, log_every, seed):
    """Check a run's settings and data; return its feed, length and a one-example sample.

    Shared by :func:`fit` and :func:`jdl.train.sweep`: ``(feed, steps_per_epoch,
    total_steps, num_epochs, sample)``, raising a ``ValueError`` that names the problem.
    """
    if epochs is None and steps is None:
        raise ValueError(f"{caller} needs `epochs` or `steps` (how long to train); got neither.")
    for name, value in (("epochs", epochs), ("steps", steps), ("batch_size", batch_size)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    if log_every < 1:
        raise ValueError(f"log_every must be a positive integer; got {log_every!r}.")
    _check_source("train", train)
    if validation is not None:
        _check_source("validation", validation)
    feed = make_feed(train)
    steps_per_epoch = len(feed) // batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"The training set has {len(feed)} examples, fewer than one batch of "
            f"{batch_size}; use batch_size <= {len(feed)}."
        )
    total_steps = steps if epochs is None else epochs * steps_per_epoch
    if steps is not None:
        total_steps = min(total_steps, steps)
    num_epochs = math.ceil(total_steps / steps_per_epoch)

    first = next(epoch_batches(feed, batch_size, seed=seed, epoch=0, shuffle=False))
    sample = jax.tree_util.tree_map(lambda a: a[:1], first)
    try:
        _check_batch_fits_model(model, sample["x"])
    except Exception as err:  # re-raised with the data's shape named
        raise ValueError(
            f"The training batches do not fit the model: inputs of shape "
            f"(batch, {', '.join(map(str, np.shape(sample['x'])[1:]))}) -> {err}"
        ) from err
    return feed, steps_per_epoch, total_steps, num_epochs, sample


def _fetch(pending: list[dict[str, jax.Array]]) -> dict[str, np.ndarray]:
    """All pending per-step metrics, copied to the host together, stacked there.

    ``jax.device_get`` starts every copy before waiting for any; stacking on the device
    instead would dispatch one operation per step and metric (slower on CPU).
    """
    host = jax.device_get(pending)
    return {k: np.stack([np.asarray(m[k]) for m in host]) for k in host[0]}


def evaluate(
    model: Any,
    variables: dict[str, Any] | TrainState,
    data: Sequence[Any],
    *,
    loss: str | Callable = "cross_entropy",
    metrics: Sequence[str | Callable] | None = None,
    batch_size: int = 256,
    strategy: str | None = None,
) -> dict[str, float]:
    """Loss and metrics of a model over a whole dataset, every example counted once.

    Batches have one fixed shape (one compilation); the last one is padded and masked.

    Args:
        model: the ``flax.linen`` module.
        variables: its variables (``{"params": ..., "batch_stats": ...}``) or a
            :class:`TrainState`.
        data: a data source with ``"x"``/``"y"`` examples.
        loss: a jdl loss or its name.
        metrics: metric names/functions; default :func:`default_metrics` of the loss.
        batch_size: the (global) evaluation batch size.
        strategy: as in :func:`jdl.train.parallelize`.

    Returns:
        ``{"loss": ..., <metric>: ...}`` as Python floats.
    """
    _check_source("data", data)
    if isinstance(variables, TrainState):
        state = variables
    else:
        state = TrainState(
            step=jnp.zeros((), jnp.int32),
            params=variables["params"],
            batch_stats=variables.get("batch_stats", {}),
            opt_state=(),
            rng=jax.random.PRNGKey(0),
            model=model,
            tx=optax.identity(),
        )
    metrics = default_metrics(loss) if metrics is None else tuple(metrics)
    step = parallelize(
        functools.partial(eval_step, loss_fn=loss, metrics=metrics), strategy, donate=False
    )
    return _evaluate_with(step, state, make_feed(data), batch_size)


def _evaluate_with(step, state, feed, batch_size) -> dict[str, float]:
    totals = None
    for batch in eval_batches(feed, batch_size):
        _, sums = step(state, batch)
        totals = sums if totals is None else jax.tree_util.tree_map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    count = float(totals.pop("count"))
    return {k: float(v) / count for k, v in totals.items()}


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
    # The same comparison (and flat "collection/module/leaf" paths) as jdl.pretrained's loaders.
    from jdl.pretrained._tree import compare_shapes, flatten

    expected = {"params": state.params, "batch_stats": state.batch_stats}
    given = {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
    want = {k: np.shape(v) for k, v in flatten(expected).items()}
    got = {k: np.shape(v) for k, v in flatten(given).items()}
    missing, unexpected, mismatched = compare_shapes(want, got)
    problems = [f"missing {k} {want[k]}" for k in missing]
    problems += [f"unexpected {k} {got[k]}" for k in unexpected]
    problems += [f"{k}: shape {got} given, the model has {shape}" for k, shape, got in mismatched]
    if problems:
        raise ValueError(
            f"fit variables= do not fit the model ({len(problems)} problem(s)): "
            + "; ".join(problems)
        )
    # Copies in the model's dtypes: the state is donated to the train step, the caller's
    # arrays must survive it.
    fresh = jax.tree.map(lambda ref, v: jnp.array(v, dtype=ref.dtype, copy=True), expected, given)
    return state.replace(
        params=fresh["params"],
        batch_stats=fresh["batch_stats"],
        opt_state=optimizer.init(fresh["params"]),
    )


def fit(
    model: Any,
    train: Sequence[Any],
    *,
    batch_size: int,
    optimizer: optax.GradientTransformation,
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
) -> History:
    """Train a model on a dataset; return its :class:`History`.

    Args:
        model: a ``flax.linen`` module with ``__call__(x, *, train)``.
        train: a random-access data source whose examples are dicts with ``"x"``, ``"y"``
            (e.g. ``jdl.data.load("mnist1d")``).
        batch_size: the global batch size; the last partial batch of each epoch is
            dropped so every step has the same shape (one compilation).
        optimizer: an optax transformation (e.g. ``jdl.train.optimizer("adam", 1e-3)``).
        loss: a jdl loss or its name (``"cross_entropy"``, ``"mse"``, ...).
        epochs: number of passes over ``train``.
        steps: number of optimiser steps instead (or as well: the run stops at whichever
            comes first). One of ``epochs`` / ``steps`` is required.
        validation: a data source evaluated (exactly, every example once) after each
            epoch; its numbers are recorded as ``val_<name>``.
        callbacks: :class:`jdl.train.callbacks.Callback` objects.
        strategy: ``"jit"``, ``"sharded"``, ``"pmap"``; default by device count.
        seed: the seed of the parameters, dropout and shuffling.
        verbose: 1 shows a tqdm progress bar with live metrics; 0 is silent.
        metrics: metric names/functions; default accuracy for classification losses.
        l1, l2: penalty coefficients (weights only, not biases or BatchNorm).
        log_every: fetch metrics from the device every this many steps (never per step).
        eval_batch_size: batch size for validation (default ``max(batch_size, 256)``).
        shuffle: reshuffle the training data each epoch.
        resume: continue from the latest checkpoint of the ``Checkpoint`` callback.
        variables: start from these variables (``{"params": ..., "batch_stats": ...}``,
            e.g. pretrained weights or another run's ``History.variables``) instead of a
            fresh initialisation; the optimiser state is new and the step count starts at 0.
            They must have exactly the model's structure and shapes. The caller's arrays are
            copied, never donated.

    Returns:
        A :class:`History`: per-epoch ``metrics``, the final ``state`` and ``variables``.

    Raises:
        ValueError: for a dataset smaller than one batch, neither epochs nor steps, a
            batch that does not fit the model, and the like — naming what was expected.
    """
    feed, steps_per_epoch, total_steps, num_epochs, sample = _plan(
        "fit", model, train, validation, batch_size, epochs, steps, log_every, seed
    )
    loss_fn = losses_lib.get(loss)
    metrics = default_metrics(loss) if metrics is None else tuple(metrics)
    if resume and variables is not None:
        raise ValueError(
            "fit got resume=True and variables=: a resumed run continues from its checkpoint; "
            "pass one or the other."
        )
    state = create_state(model, optimizer, sample, seed)
    if variables is not None:
        state = _start_from(state, variables, optimizer)

    history = History(
        config={
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
    )
    val_feed = make_feed(validation) if validation is not None else None
    eval_batch_size = eval_batch_size or max(batch_size, 256)
    start_epoch = 0
    checkpoints = [c for c in callbacks if isinstance(c, Checkpoint)]
    if resume:
        if not checkpoints:
            raise ValueError("resume=True needs a jdl.train.callbacks.Checkpoint callback.")
        restored = restore_state(checkpoints[0].directory, state)
        if restored is not None:
            state, meta = restored
            saved = History.from_dict(meta["history"])
            history.metrics, history.epochs, history.steps = (
                saved.metrics,
                saved.epochs,
                saved.steps,
            )
            start_epoch = int(meta["epoch"])

    train_fn = parallelize(
        functools.partial(train_step, loss_fn=loss_fn, metrics=metrics, l1=l1, l2=l2), strategy
    )
    eval_fn = parallelize(
        functools.partial(eval_step, loss_fn=loss_fn, metrics=metrics),
        train_fn.strategy,
        donate=False,
        mesh=train_fn.mesh,
    )
    current = {"state": train_fn.put_state(state)}
    run = Run(
        history=history,
        epoch=start_epoch,
        step=int(state.step),
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        get_state=lambda: train_fn.unreplicate(current["state"]),
        set_state=lambda s: current.update(state=train_fn.put_state(s)),
    )
    for cb in callbacks:
        cb.on_train_begin(run)

    bar = tqdm(
        total=total_steps, initial=run.step, disable=verbose < 1, unit="step", dynamic_ncols=True
    )
    pending: list[dict[str, jax.Array]] = []
    pending_start = run.step + 1
    epoch_sums: dict[str, float] = {}
    epoch_count = 0

    def flush():
        nonlocal pending, pending_start, epoch_count
        if not pending:
            return
        fetched = _fetch(pending)
        for cb in callbacks:
            cb.on_metrics(run, pending_start, fetched)
        for k, v in fetched.items():
            epoch_sums[k] = epoch_sums.get(k, 0.0) + float(np.sum(v))
        epoch_count += len(pending)
        bar.update(len(pending))
        bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in fetched.items()}, refresh=False)
        pending_start += len(pending)
        pending = []

    for epoch in range(start_epoch, num_epochs):
        run.epoch = epoch + 1
        bar.set_description(f"epoch {run.epoch}/{num_epochs}")
        epoch_sums, epoch_count = {}, 0
        skip = run.step - epoch * steps_per_epoch
        for batch in epoch_batches(
            feed, batch_size, seed=seed, epoch=epoch, shuffle=shuffle, skip=max(skip, 0)
        ):
            if run.step >= total_steps or run.stop_training:
                break
            current["state"], step_metrics = train_fn(current["state"], batch)
            run.step += 1
            pending.append(step_metrics)
            if len(pending) >= log_every:
                flush()
        flush()
        logs = {k: v / max(epoch_count, 1) for k, v in epoch_sums.items()}
        if val_feed is not None:
            val = _evaluate_with(eval_fn, current["state"], val_feed, eval_batch_size)
            logs.update({f"val_{k}": v for k, v in val.items()})
        for cb in callbacks:
            cb.on_epoch_end(run, logs)
        history.append(run.epoch, run.step, logs)
        for cb in callbacks:
            cb.on_epoch_recorded(run)
        if run.stop_training or run.step >= total_steps:
            break
    bar.close()
    for cb in callbacks:
        cb.on_train_end(run)
    history.stop_reason = run.stop_reason
    history.state = run.get_state()
    return history
