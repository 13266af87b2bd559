"""Pure training and evaluation steps: ``(state, batch) -> (state, metrics)``.

The steps are plain functions of their arguments. Bind the options with
``functools.partial`` and compile with :func:`jdl.train.parallelize` (or ``jax.jit``)::

    step = functools.partial(jdl.train.train_step, loss_fn="cross_entropy",
                             metrics=("accuracy",))
    step = jdl.train.parallelize(step, "jit")
    state, metrics = step(state, batch)

Inside ``jax.pmap`` / ``shard_map`` pass ``axis_name``: gradients, losses and metrics are
then averaged over that axis, and models that declare a ``bn_axis_name`` field (every
jdl model does) compute their BatchNorm statistics over the whole global batch. jdl's
dropout layers (those of every jdl model) then draw, on each device, its rows of the mask
``jax.jit`` draws for the global batch, so all strategies train alike; a model's own
``flax.linen.Dropout`` layers get a key with the device index folded in instead (masks as
random, but not jit's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jdl import losses as losses_lib
from jdl import metrics as metrics_lib
from jdl.nn._layers import GLOBAL_DROPOUT_RNG, global_dropout_masks
from jdl.train.nonfinite import COLLECTION, LayerCounter, debug_metrics, watched_apply
from jdl.train.precision import compute_dtype, loss_scale, mixed_apply
from jdl.train.state import TrainState, model_input, model_kwargs

__all__ = ["train_step", "eval_step", "bind_axis_name", "MASK_KEY"]

Batch = dict[str, Any]
MASK_KEY = "mask"
"""Batch key of the optional boolean mask ``(batch,)`` marking real (unpadded) examples."""


def bind_axis_name(model: nn.Module, axis_name: str | None) -> nn.Module:
    """The model with its BatchNorm layers synchronised over ``axis_name``.

    Models that declare a dataclass field ``bn_axis_name`` (all jdl models) are cloned
    with it set; other modules are returned unchanged (give their ``nn.BatchNorm`` layers
    ``axis_name=`` yourself when you train them under ``pmap``).
    """
    if axis_name is None:
        return model
    names = {f.name for f in dataclasses.fields(model)}
    if "bn_axis_name" in names and model.bn_axis_name != axis_name:
        return model.clone(bn_axis_name=axis_name)
    return model


def _metric_fns(metrics: Sequence[str | Callable] | None) -> dict[str, Callable]:
    out = {}
    for metric in metrics or ():
        fn = metrics_lib.get(metric)
        out[metric if isinstance(metric, str) else getattr(fn, "__name__", "metric")] = fn
    return out


def _targets(batch: Batch) -> jax.Array:
    if "y" not in batch:
        raise KeyError(
            f'A training batch needs "y" (targets) next to "x"; got keys {sorted(batch)}.'
        )
    return batch["y"]


def _check_scalar(loss: jax.Array) -> jax.Array:
    if jnp.ndim(loss) != 0:
        raise ValueError(
            f"The loss function must return a scalar; it returned shape {jnp.shape(loss)}."
        )
    return loss


def _pmean(tree: Any, axis_name: str | None) -> Any:
    return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def train_step(
    state: TrainState,
    batch: Batch,
    *,
    loss_fn: str | Callable[..., jax.Array],
    metrics: Sequence[str | Callable] | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    axis_name: str | None = None,
    debug: bool = False,
    precision: str = "float32",
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimiser update on one batch.

    Runs the model in training mode (dropout on, BatchNorm on batch statistics and
    updating its running averages), differentiates ``loss_fn(outputs, y)`` plus the
    optional penalties ``l1 * jdl.losses.l1(params) + l2 * jdl.losses.l2(params)``
    (biases and BatchNorm parameters excluded), and applies the optimiser.

    Args:
        state: the current :class:`TrainState`.
        batch: a dict with ``"x"`` (inputs), ``"y"`` (targets) and optionally ``"lengths"``
            (passed to models that take ``lengths``, see :func:`jdl.train.model_kwargs`).
        loss_fn: a jdl loss name (``"cross_entropy"``, ``"mse"``, ...) or a function
            ``(outputs, targets) -> scalar``.
        metrics: metric names or functions ``(outputs, targets) -> scalar`` computed on
            the same forward pass (e.g. ``("accuracy",)``).
        l1: coefficient of the L1 penalty.
        l2: coefficient of the L2 penalty.
        axis_name: the mapped axis under ``pmap``/``shard_map``; gradients, metrics and
            BatchNorm statistics are then averaged over it, and jdl's dropout layers draw
            the masks of the global batch (``jax.jit``'s).
        debug: also count, on the device, the NaN/inf values of the batch's float fields,
            of every layer's output, of the loss, of every parameter's gradient and of every
            variable after the update, as the ``"debug/..."`` metrics of
            :mod:`jdl.train.nonfinite` (what ``jdl.fit(debug=True)`` reads). ``False``
            compiles exactly the plain step.
        precision: ``"float32"``, or ``"bfloat16"`` / ``"float16"`` to compute the forward
            and backward passes in that dtype with float32 parameters, loss and metrics
            (:mod:`jdl.train.precision`). With an optimiser wrapped in
            :func:`jdl.train.dynamic_loss_scale` (what ``fit`` does for float16) the loss is
            scaled before differentiation.

    Returns:
        ``(new_state, metrics)`` where ``metrics`` holds ``"loss"`` (the data loss, without
        penalties) and each requested metric, as device scalars (and, with ``debug``, the
        ``"debug/..."`` count vectors).

    Raises:
        ValueError: if the loss is not a scalar.
        KeyError: if the batch lacks ``"x"`` or ``"y"``.
    """
    loss = losses_lib.get(loss_fn)
    metric_fns = _metric_fns(metrics)
    model = bind_axis_name(state.model, axis_name)
    x, y = model_input(batch), _targets(batch)
    inputs = model_kwargs(model, batch)
    dropout_key = jax.random.fold_in(state.rng, state.step)
    rngs = {"dropout": dropout_key}
    if axis_name is not None:  # jdl's Dropout draws jit's masks; other layers fold the device
        rngs = {
            "dropout": jax.random.fold_in(dropout_key, jax.lax.axis_index(axis_name)),
            GLOBAL_DROPOUT_RNG: dropout_key,
        }
    has_bn = bool(state.batch_stats)
    counter = LayerCounter() if debug else None
    dtype = compute_dtype(precision)
    scale = loss_scale(state.opt_state)

    def objective(params: Any) -> tuple[jax.Array, tuple[jax.Array, Any, Any]]:
        variables = {"params": params}
        if has_bn:
            variables["batch_stats"] = state.batch_stats
        outputs, updates = mixed_apply(
            model,
            variables,
            x,
            dtype,
            apply=lambda *args, **kwargs: watched_apply(counter, *args, **kwargs),
            **inputs,
            train=True,
            rngs=rngs,
            mutable=["batch_stats"] if has_bn else [],
        )
        data_loss = _check_scalar(loss(outputs, y))
        total = data_loss
        if l1:
            total = total + l1 * losses_lib.l1(params)
        if l2:
            total = total + l2 * losses_lib.l2(params)
        if debug:  # the total loss (with penalties) is checked too
            updates = {**updates, "total": total}
        if scale is not None:  # float16: the optimiser unscales the gradients
            total = total * scale
        return total, (data_loss, outputs, updates)

    with global_dropout_masks(axis_name):
        grads, (data_loss, outputs, updates) = jax.grad(objective, has_aux=True)(state.params)
    grads = _pmean(grads, axis_name)
    new_state = state.apply_gradients(grads, batch_stats=updates.get("batch_stats", {}))
    out = {"loss": data_loss}
    for name, fn in metric_fns.items():
        out[name] = fn(outputs, y)
    out = _pmean(out, axis_name)
    if debug:
        out.update(debug_metrics(
            batch=batch, total_loss=updates["total"], grads=grads,
            variables={"params": new_state.params, "batch_stats": new_state.batch_stats},
            counter=counter, sown=updates[COLLECTION], axis_name=axis_name,
            labels=y, outputs=outputs,
        ))  # fmt: skip
    return new_state, out


def eval_step(
    state: TrainState,
    batch: Batch,
    *,
    loss_fn: str | Callable[..., jax.Array],
    metrics: Sequence[str | Callable] | None = None,
    axis_name: str | None = None,
    precision: str = "float32",
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Loss and metrics on one batch, model in evaluation mode; the state is unchanged.

    If the batch carries a boolean ``"mask"`` (shape ``(batch,)``), padded examples are
    ignored. The returned numbers are *sums* over the real examples together with their
    ``"count"``, so results from batches of different sizes add up exactly: divide the
    accumulated sums by the accumulated count (``jdl.evaluate`` does).

    Args:
        state: the :class:`TrainState` to evaluate.
        batch: a dict with ``"x"``, ``"y"`` and optionally ``"mask"`` and ``"lengths"``
            (passed to models that take ``lengths``, see :func:`jdl.train.model_kwargs`).
        loss_fn: a jdl loss name or function ``(outputs, targets, *, where=None) -> scalar``.
        metrics: metric names or functions, as in :func:`train_step`; functions must
            accept ``where=``.
        axis_name: the mapped axis under ``pmap``/``shard_map``; sums are added over it.
        precision: the computation dtype, as in :func:`train_step` (loss and metrics are
            float32).

    Returns:
        ``(state, sums)`` where ``sums`` holds ``"count"``, ``"loss"`` and each metric,
        each already multiplied by the count.
    """
    loss = losses_lib.get(loss_fn)
    metric_fns = _metric_fns(metrics)
    model = bind_axis_name(state.model, axis_name)
    x, y = model_input(batch), _targets(batch)
    outputs = mixed_apply(
        model, state.variables, x, compute_dtype(precision), **model_kwargs(model, batch),
        train=False,
    )  # fmt: skip
    where = batch.get(MASK_KEY)
    if where is None:
        where = jnp.ones((jnp.shape(x)[0],), bool)
    count = jnp.sum(where.astype(jnp.float32))
    sums = {"count": count, "loss": _check_scalar(loss(outputs, y, where=where)) * count}
    for name, fn in metric_fns.items():
        sums[name] = fn(outputs, y, where=where) * count
    if axis_name is not None:
        sums = jax.lax.psum(sums, axis_name)
    return state, sums


# Read by jdl.train.parallelize: an evaluation step returns the state unchanged, so it is
# compiled to return only its metrics (no state copies, nothing donated).
eval_step.updates_state = False
