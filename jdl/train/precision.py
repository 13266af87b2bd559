"""Mixed precision: float32 parameters, bfloat16 or float16 computation.

``jdl.fit(..., precision="bfloat16")`` (also :func:`jdl.train.sweep` and the CLI's
``--precision``) keeps the parameters, the optimiser state and the BatchNorm running
statistics in float32 and runs the model's forward and backward passes in the lower
precision:

- a model with a ``dtype`` field (every jdl model, and most Flax layers) is cloned with
  ``dtype=<compute dtype>``: Flax casts the float32 parameters to it for each operation,
  and :class:`flax.linen.BatchNorm` still reduces its statistics in float32;
- a module without one gets its parameters and floating inputs cast instead;
- its outputs are cast back to float32 before the loss, so the loss, its reduction and the
  metrics are computed in float32; gradients arrive in float32 (the parameters' dtype).

``"float16"`` has a far smaller range than bfloat16 (largest finite value 65,504; values
below ~6e-8 round to zero), so small gradients underflow. It adds *dynamic loss scaling*
(:func:`dynamic_loss_scale`, an optax-style wrapper of the optimiser): the loss is
multiplied by a scale before differentiation and the gradients divided by it; a step whose
unscaled gradients are not all finite is skipped (parameters and optimiser state unchanged)
and halves the scale, and every ``growth_interval`` finite steps double it.

``"float32"`` (the default) compiles exactly the plain step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

__all__ = [
    "PRECISIONS",
    "LossScaleState",
    "check_precision",
    "compute_dtype",
    "compute_model",
    "dynamic_loss_scale",
    "loss_scale",
    "mixed_apply",
    "with_loss_scaling",
]

#: The accepted ``precision`` values and the computation dtype each stands for.
PRECISIONS: dict[str, Any] = {
    "float32": jnp.float32,
    "bfloat16": jnp.bfloat16,
    "float16": jnp.float16,
}


def check_precision(precision: Any) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ``ValueError`` naming them.

    Args:
        precision: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
    """
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {', '.join(map(repr, PRECISIONS))}; got {precision!r}."
        )
    return precision


def step_options(precision: str) -> dict[str, str]:
    """The keyword ``train_step`` / ``eval_step`` take for ``precision``: none for
    ``"float32"``, so the step compiled is exactly the plain one (and the compiled-step
    caches see the same function).

    Args:
        precision: one of :data:`PRECISIONS`.
    """
    return {} if check_precision(precision) == "float32" else {"precision": precision}


def compute_dtype(precision: str) -> Any | None:
    """The computation dtype of ``precision``; ``None`` for ``"float32"`` (nothing to cast).

    Args:
        precision: one of :data:`PRECISIONS`.
    """
    check_precision(precision)
    return None if precision == "float32" else PRECISIONS[precision]


def _has_dtype_field(model: nn.Module) -> bool:
    return dataclasses.is_dataclass(model) and any(
        f.name == "dtype" for f in dataclasses.fields(model)
    )


def _cast_floating(tree: Any, dtype: Any) -> Any:
    def cast(leaf: Any) -> Any:
        if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.astype(dtype)
        return leaf

    return jax.tree.map(cast, tree)


def compute_model(model: nn.Module, dtype: Any | None) -> tuple[nn.Module, bool]:
    """The model to run in ``dtype``, and whether its parameters must be cast by the caller.

    Args:
        model: a ``flax.linen`` module.
        dtype: the computation dtype (``None``: the model as it is).

    Returns:
        ``(model.clone(dtype=dtype), False)`` for a module with a ``dtype`` field (Flax
        casts the parameters op by op), ``(model, True)`` for one without (cast its
        parameters and inputs, e.g. with ``jax.tree.map``), ``(model, False)`` for ``None``.
    """
    if dtype is None:
        return model, False
    if _has_dtype_field(model):
        return model.clone(dtype=dtype), False
    return model, True


def _plain_apply(model: nn.Module, variables: Any, *args: Any, **kwargs: Any) -> Any:
    return model.apply(variables, *args, **kwargs)


def mixed_apply(
    model: nn.Module,
    variables: dict[str, Any],
    x: Any,
    dtype: Any | None,
    *,
    apply: Callable[..., Any] = _plain_apply,
    **kwargs: Any,
) -> Any:
    """``apply(model, variables, x, **kwargs)`` computed in ``dtype``, outputs in float32.

    With ``dtype=None`` it is exactly that call. Otherwise the model computes in ``dtype``
    (see :func:`compute_model`), floating inputs are cast to it, and the outputs (the first
    element when ``mutable`` makes ``apply`` return a pair) come back as float32; mutable
    collections (BatchNorm statistics) keep their own dtype.

    Args:
        model: a ``flax.linen`` module.
        variables: its variables (float32 parameters).
        x: the input batch.
        dtype: the computation dtype, or ``None``.
        apply: how to apply the model (default ``model.apply(variables, x, **kwargs)``).
        **kwargs: passed on to ``apply`` (``train=``, ``rngs=``, ``mutable=``, ...).
    """
    if dtype is None:
        return apply(model, variables, x, **kwargs)
    run, cast_params = compute_model(model, dtype)
    if cast_params:
        variables = {**variables, "params": _cast_floating(variables["params"], dtype)}
    result = apply(run, variables, _cast_floating(x, dtype), **kwargs)
    if kwargs.get("mutable"):
        outputs, updates = result
        return _cast_floating(outputs, jnp.float32), updates
    return _cast_floating(result, jnp.float32)


class LossScaleState(NamedTuple):
    """State of :func:`dynamic_loss_scale`: the current scale, the finite steps since it
    last changed, and the wrapped optimiser's state."""

    scale: jax.Array
    good_steps: jax.Array
    inner: optax.OptState


class _Scaled(optax.GradientTransformation):
    """A transformation made by :func:`dynamic_loss_scale` (so it is not wrapped twice)."""


def dynamic_loss_scale(
    inner: optax.GradientTransformation,
    *,
    initial_scale: float = 2.0**15,
    growth_interval: int = 2000,
    factor: float = 2.0,
    min_scale: float = 1.0,
) -> optax.GradientTransformation:
    """Wrap an optimiser for dynamic loss scaling (float16 training).

    The step multiplies the loss by :func:`loss_scale` of the optimiser state before
    differentiating; this transformation divides the gradients by the same scale. If any
    unscaled gradient is not finite the step is skipped -- zero updates, ``inner``'s state
    unchanged -- and the scale is divided by ``factor`` (not below ``min_scale``); after
    ``growth_interval`` finite steps in a row it is multiplied by ``factor``.

    Args:
        inner: the optimiser to apply to the unscaled gradients.
        initial_scale: the first scale (2**15, as is usual for float16).
        growth_interval: finite steps between two increases.
        factor: how much the scale grows or shrinks.
        min_scale: the smallest scale.

    Returns:
        An ``optax.GradientTransformation`` whose state is a :class:`LossScaleState`.
    """
    if not (initial_scale > 0 and factor > 1 and min_scale > 0 and growth_interval >= 1):
        raise ValueError(
            "dynamic_loss_scale needs initial_scale > 0, factor > 1, min_scale > 0 and "
            f"growth_interval >= 1; got {initial_scale}, {factor}, {min_scale}, "
            f"{growth_interval}."
        )

    def init(params: Any) -> LossScaleState:
        return LossScaleState(
            jnp.asarray(initial_scale, jnp.float32), jnp.zeros((), jnp.int32), inner.init(params)
        )

    def update(grads: Any, state: LossScaleState, params: Any = None) -> tuple[Any, LossScaleState]:
        grads = jax.tree.map(lambda g: g / state.scale.astype(g.dtype), grads)
        finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        safe = jax.tree.map(lambda g: jnp.where(finite, g, jnp.zeros_like(g)), grads)
        updates, new_inner = inner.update(safe, state.inner, params)
        updates = jax.tree.map(lambda u: jnp.where(finite, u, jnp.zeros_like(u)), updates)
        new_inner = jax.tree.map(
            lambda new, old: jnp.where(finite, new, old), new_inner, state.inner
        )
        grow = finite & (state.good_steps + 1 >= growth_interval)
        scale = jnp.where(
            finite,
            jnp.where(grow, state.scale * factor, state.scale),
            jnp.maximum(state.scale / factor, min_scale),
        )
        good = jnp.where(finite & ~grow, state.good_steps + 1, 0)
        return updates, LossScaleState(scale.astype(jnp.float32), good.astype(jnp.int32), new_inner)

    return _Scaled(init, update)


def with_loss_scaling(
    tx: optax.GradientTransformation, precision: str
) -> optax.GradientTransformation:
    """``tx`` wrapped in :func:`dynamic_loss_scale` for ``"float16"``; ``tx`` itself otherwise
    (bfloat16 has float32's range: no scaling needed).

    Args:
        tx: the optimiser.
        precision: one of :data:`PRECISIONS`.
    """
    if check_precision(precision) != "float16" or isinstance(tx, _Scaled):
        return tx  # (one already scaling its loss is not wrapped twice)
    return dynamic_loss_scale(tx)


def loss_scale(opt_state: Any) -> jax.Array | None:
    """The current loss scale of an optimiser state from :func:`dynamic_loss_scale`
    (``None`` for any other state: no scaling).

    Args:
        opt_state: a ``TrainState.opt_state``.
    """
    return opt_state.scale if isinstance(opt_state, LossScaleState) else None
