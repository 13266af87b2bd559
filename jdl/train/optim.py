"""Optimisers and learning-rate schedules for the common cases.

Any ``optax.GradientTransformation`` works everywhere in jdl; :func:`optimizer` builds
the usual ones by name, with a schedule and gradient clipping, in one call.

Example:
    >>> from jdl.train import optimizer
    >>> tx = optimizer("adam", 1e-3, schedule="warmup_cosine", total_steps=1000,
    ...                warmup_steps=100, clip=1.0)
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import optax

from jdl._core.checks import is_number
from jdl._core.memo import BoundedCache, is_hashable
from jdl.losses import kernel_mask

__all__ = ["OPTIMIZERS", "SCHEDULES", "as_optimizer", "learning_rate", "make_schedule", "optimizer"]

OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": lambda lr, **kw: optax.sgd(lr, **kw),
    "momentum": lambda lr, momentum=0.9, nesterov=False, **kw: optax.sgd(
        lr, momentum=momentum, nesterov=nesterov, **kw
    ),
    "adam": lambda lr, **kw: optax.adam(lr, **kw),
    "adamw": lambda lr, **kw: optax.adamw(lr, **kw),
    "rmsprop": lambda lr, **kw: optax.rmsprop(lr, **kw),
    "adagrad": lambda lr, **kw: optax.adagrad(lr, **kw),
}
"""Optimiser factories by name; each takes the learning rate (or schedule) first."""

SCHEDULES = ("constant", "cosine", "warmup_cosine", "step")
"""The schedule names :func:`make_schedule` understands (``-`` may stand for ``_``)."""


def _check_learning_rate(learning_rate: Any) -> Any:
    """``learning_rate`` if it is a finite positive number (or a JAX array, e.g. a rate traced
    by :func:`jdl.train.sweep`, passed unchecked), else a clear error.

    Raises:
        TypeError: for a string, a bool or anything else that is not a number.
        ValueError: for zero, a negative rate, NaN or infinity.

    Example:
        >>> _check_learning_rate(0.01)
        0.01
        >>> _check_learning_rate("0.01")
        Traceback (most recent call last):
        ...
        TypeError: learning_rate must be a number (e.g. 0.01); got the str '0.01'.
    """
    if isinstance(learning_rate, jax.Array):
        return learning_rate
    if not is_number(learning_rate):
        raise TypeError(
            f"learning_rate must be a number (e.g. 0.01); got the "
            f"{type(learning_rate).__name__} {learning_rate!r}."
        )
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite positive number; got {learning_rate}.")
    return learning_rate


def make_schedule(
    name: str,
    learning_rate: float,
    *,
    total_steps: int | None = None,
    warmup_steps: int = 0,
    final_fraction: float = 0.0,
    boundaries: Sequence[int] = (),
    decay: float = 0.1,
) -> optax.Schedule:
    """A learning-rate schedule by name.

    Args:
        name: ``"constant"``; ``"cosine"`` (cosine decay from ``learning_rate`` to
            ``final_fraction * learning_rate`` over ``total_steps``); ``"warmup_cosine"``
            (linear warm-up from 0 over ``warmup_steps``, then cosine decay until
            ``total_steps``); ``"step"`` (multiply by ``decay`` at each step count in
            ``boundaries``).
        learning_rate: the peak (or constant) learning rate.
        total_steps: length of the run; required by the cosine schedules.
        warmup_steps: warm-up length for ``"warmup_cosine"``.
        final_fraction: final learning rate as a fraction of the peak (cosine schedules).
        boundaries: step counts at which ``"step"`` decays the learning rate.
        decay: the factor applied at each boundary of ``"step"``.

    Returns:
        An ``optax.Schedule`` (a function from step count to learning rate).

    Raises:
        ValueError: for an unknown name, or a missing/invalid ``total_steps``.
    """
    name = name.replace("-", "_")
    if name not in SCHEDULES:
        raise ValueError(f"Unknown schedule {name!r}; expected one of {list(SCHEDULES)}.")
    _check_learning_rate(learning_rate)
    if name == "constant":
        return optax.constant_schedule(learning_rate)
    if name == "step":
        if not boundaries:
            raise ValueError("The 'step' schedule needs `boundaries` (step counts), got none.")
        return optax.piecewise_constant_schedule(learning_rate, {int(b): decay for b in boundaries})
    if total_steps is None or total_steps <= warmup_steps:
        raise ValueError(
            f"The {name!r} schedule needs total_steps > warmup_steps ({warmup_steps}); "
            f"got total_steps={total_steps}."
        )
    if name == "cosine":
        return optax.cosine_decay_schedule(learning_rate, total_steps, alpha=final_fraction)
    return optax.warmup_cosine_decay_schedule(
        0.0,
        learning_rate,
        warmup_steps,
        total_steps,
        end_value=final_fraction * learning_rate,
    )


#: Optimisers already made, by their arguments: the same arguments give the same
#: transformation object, so a second ``fit(optimizer=("adam", 1e-3))`` reuses the first's
#: compiled steps (a ``TrainState``'s optimiser is part of what ``jax.jit`` caches on).
_OPTIMIZERS_MADE = BoundedCache(64)


def _typed(value: Any) -> Any:
    """``value`` with its type, recursively (``1`` is not ``True``), for a cache key."""
    if isinstance(value, list | tuple):
        return (type(value), tuple(_typed(v) for v in value))
    if isinstance(value, dict):
        return (dict, tuple(sorted((k, _typed(v)) for k, v in value.items())))
    return (type(value), value)


def _memoised(make: Callable[..., optax.GradientTransformation]) -> Callable[..., Any]:
    """``make``, returning the transformation it made before for the same arguments.

    Arguments that are not hashable (a traced learning rate in ``sweep``) make one anew.
    """
    signature = inspect.signature(make)

    @functools.wraps(make)
    def made(*args: Any, **kwargs: Any) -> optax.GradientTransformation:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        key = _typed(dict(bound.arguments))
        if not is_hashable(key):
            return make(*args, **kwargs)
        made_before = _OPTIMIZERS_MADE.get(key)
        return (
            made_before
            if made_before is not None
            else _OPTIMIZERS_MADE.put(key, make(*args, **kwargs))
        )

    return made


@_memoised
def optimizer(
    name: str,
    learning_rate: float | optax.Schedule,
    *,
    schedule: str | None = None,
    clip: float | None = None,
    weight_decay: float | None = None,
    coupled_weight_decay: float | None = None,
    total_steps: int | None = None,
    warmup_steps: int = 0,
    boundaries: Sequence[int] = (),
    decay: float = 0.1,
    **kwargs: Any,
) -> optax.GradientTransformation:
    """Build a common optimiser by name.

    Args:
        name: ``"sgd"``, ``"momentum"`` (SGD with momentum 0.9 unless ``momentum=`` is
            given), ``"adam"``, ``"adamw"``, ``"rmsprop"`` or ``"adagrad"``.
        learning_rate: a float, or an optax schedule (then ``schedule`` must be None).
        schedule: optional schedule name (see :func:`jdl.train.make_schedule`) applied to
            ``learning_rate``.
        clip: if given, gradients are clipped to this global norm first.
        weight_decay: if given, *decoupled* weight decay (Loshchilov & Hutter, 2019) on
            matrices and kernels only (not biases or BatchNorm parameters): every step
            subtracts ``learning_rate * weight_decay * w`` next to the optimiser's own
            update, outside its adaptive scaling, as ``optax.adamw`` does (``"adam"`` with
            ``weight_decay`` equals ``optax.adamw`` masked to kernels; for ``"adamw"`` it is
            adamw's own decay). With plain SGD this equals L2 regularisation.
        coupled_weight_decay: if given, L2 regularisation through the optimiser instead:
            ``coupled_weight_decay * w`` is added to the gradient *before* the optimiser
            (what ``torch.optim.Adam(weight_decay=...)`` does), kernels only. Under an
            adaptive optimiser this decays large-gradient weights less than decoupled decay.
            Either decay may be a JAX array, as when ``jdl.train.sweep(params=
            {"weight_decay": [...]})`` traces it; its sign is then not checked.
        total_steps, warmup_steps, boundaries, decay: forwarded to the schedule.
        **kwargs: forwarded to the optax optimiser (e.g. ``b1``, ``momentum``).

    Returns:
        An ``optax.GradientTransformation`` with the learning rate injected as a
        hyper-parameter, so :func:`learning_rate` can read it from the state. The same
        arguments return the same object (the last 64 are kept), so a second ``fit`` with
        them reuses the first's compiled steps.

    Raises:
        ValueError: for an unknown optimiser or schedule name, or a non-positive
            learning rate.
        TypeError: for a keyword argument the optax optimiser does not take (checked
            here, not when the optimiser state is first made).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}.")
    if schedule is not None:
        if callable(learning_rate):
            raise ValueError("Give either a schedule name or a schedule callable, not both.")
        learning_rate = make_schedule(
            schedule,
            learning_rate,
            total_steps=total_steps,
            warmup_steps=warmup_steps,
            boundaries=boundaries,
            decay=decay,
        )
    elif not callable(learning_rate):
        _check_learning_rate(learning_rate)
    for label, value in (
        ("weight_decay", weight_decay),
        ("coupled_weight_decay", coupled_weight_decay),
    ):
        if value is None or isinstance(value, jax.Array):  # traced by sweep: unchecked
            continue
        if not (is_number(value) and value >= 0):
            raise ValueError(f"{label} must be a non-negative number; got {value!r}.")
    factory = _with_decay(OPTIMIZERS[name], name, weight_decay, kwargs)
    try:  # optax.inject_hyperparams calls the factory only at init: check its keywords now
        factory(1.0)
    except TypeError as exc:
        raise TypeError(
            f"optimizer {name!r} does not take the keyword argument(s) {sorted(kwargs)}: {exc}"
        ) from exc
    base = optax.inject_hyperparams(factory)(learning_rate=learning_rate)
    parts = []
    if clip is not None:
        if clip <= 0:
            raise ValueError(f"clip must be a positive gradient norm; got {clip}.")
        parts.append(optax.clip_by_global_norm(clip))
    if _acts(coupled_weight_decay):
        parts.append(optax.add_decayed_weights(coupled_weight_decay, mask=kernel_mask))
    parts.append(base)
    return optax.chain(*parts) if len(parts) > 1 else base


def _acts(decay: Any) -> bool:
    """Whether a decay is applied: a non-zero number, or any JAX array (maybe traced)."""
    return isinstance(decay, jax.Array) or (decay is not None and decay != 0)


def _with_decay(
    factory: Callable[..., optax.GradientTransformation],
    name: str,
    weight_decay: float | None,
    kwargs: dict[str, Any],
) -> Callable[[Any], optax.GradientTransformation]:
    """``learning_rate -> transformation`` with decoupled weight decay, if any.

    optax's optimisers end in ``scale(-learning_rate)``; built with a learning rate of 1 and
    followed by ``-weight_decay * w`` and ``scale(learning_rate)``, the update is
    ``-learning_rate * (direction + weight_decay * w)`` -- ``optax.adamw``'s form.
    """
    if not _acts(weight_decay):
        return lambda learning_rate: factory(learning_rate, **kwargs)
    if name == "adamw":
        return lambda learning_rate: factory(
            learning_rate, **{"weight_decay": weight_decay, "mask": kernel_mask, **kwargs}
        )
    return lambda learning_rate: optax.chain(
        factory(1.0, **kwargs),
        optax.add_decayed_weights(-weight_decay, mask=kernel_mask),
        optax.scale(learning_rate),
    )


def learning_rate(opt_state: optax.OptState) -> float | None:
    """The current learning rate stored in an optimiser state, if it records one.

    Works for optimisers built by :func:`optimizer` (and any state produced by
    ``optax.inject_hyperparams`` with a ``learning_rate`` hyper-parameter), searching
    through chains and wrappers.

    Args:
        opt_state: an optax optimiser state.

    Returns:
        The learning rate as a JAX scalar, or ``None`` if the state does not record one.
    """
    found = []

    def visit(node: Any) -> None:
        hyper = getattr(node, "hyperparams", None)
        if isinstance(hyper, dict) and "learning_rate" in hyper:
            found.append(hyper["learning_rate"])
            return
        if isinstance(node, tuple | list):
            for child in node:
                visit(child)
        elif isinstance(node, dict):
            for child in node.values():
                visit(child)
        elif hasattr(node, "inner_state"):
            visit(node.inner_state)

    visit(opt_state)
    return found[0] if found else None


_by_name = optimizer  # as_optimizer's argument ``optimizer`` hides the function


def _forms() -> str:
    return (
        "an optax.GradientTransformation (e.g. optax.adam(1e-3)) or optax.MultiSteps, a "
        "(name, learning_rate) "
        f"pair, a name (one of {sorted(OPTIMIZERS)}) or a function learning_rate -> optax "
        "transformation (e.g. lambda lr: optax.sgd(lr, momentum=0.9))"
    )


def as_optimizer(
    optimizer: Any,
    learning_rate: float | optax.Schedule | None = None,
    *,
    learning_rate_arg: str = "learning_rate",
    **kwargs: Any,
) -> optax.GradientTransformation:
    """The optax transformation that an ``optimizer=`` argument stands for.

    Every jdl entry point that takes an optimiser reads it through this function, so each
    accepts the same forms:

    - an ``optax.GradientTransformation``, used as it is, or an ``optax.MultiSteps``
      (gradient accumulation: the inner optimiser steps once every ``k`` calls, on the
      mean of their gradients), used as its ``gradient_transformation()``;
    - a ``(name, learning_rate)`` pair: ``optimizer(name, learning_rate)``;
    - a name (a key of :data:`OPTIMIZERS`), with the entry point's own learning rate (a
      sweep's ``learning_rates``, the range of :func:`jdl.analysis.lr_find`):
      :func:`optimizer` ``(name, learning_rate, **kwargs)``;
    - a function ``learning_rate -> optax.GradientTransformation`` (the learning rate may
      be a schedule or a traced value), called with that learning rate.

    Args:
        optimizer: one of the forms above.
        learning_rate: the learning rate (or schedule) the entry point sets, if it sets
            one; names and functions need it, ready transformations refuse it.
        learning_rate_arg: how the entry point names its learning rate (for messages),
            e.g. ``"learning_rates"``.
        **kwargs: forwarded to a named optimiser (e.g. ``momentum=0.9``).

    Returns:
        An ``optax.GradientTransformation``.

    Raises:
        TypeError: for anything else (the message lists the forms and the names), or a
            function that does not return a transformation.
        ValueError: for an unknown name, a name or function without a learning rate, a
            ready transformation or pair given a second learning rate, or ``kwargs``
            with a form other than a name.

    Example:
        >>> tx = as_optimizer(("sgd", 0.1))
        >>> as_optimizer("adam", 1e-3) is not None, as_optimizer(tx) is tx
        (True, True)
        >>> as_optimizer("adma", 1e-3)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Unknown optimizer 'adma'; expected one of ['adagrad', 'adam', ...].
    """
    if isinstance(optimizer, optax.MultiSteps):
        optimizer = optimizer.gradient_transformation()
    is_pair = isinstance(optimizer, tuple) and len(optimizer) == 2 and isinstance(optimizer[0], str)
    if kwargs and not isinstance(optimizer, str):
        raise ValueError(
            f"optimizer keyword arguments {sorted(kwargs)} apply to a named optimiser only; "
            f"got optimizer of type {type(optimizer).__name__}."
        )
    if isinstance(optimizer, optax.GradientTransformation) or is_pair:
        if learning_rate is not None:
            raise ValueError(
                f"To set the learning rate from `{learning_rate_arg}`, pass `optimizer` as a "
                "name (e.g. 'adam') or a function learning_rate -> optax transformation (e.g. "
                "lambda lr: optax.adam(lr)); got a ready-made optax transformation."
            )
        return optimizer if not is_pair else as_optimizer(optimizer[0], optimizer[1])
    if isinstance(optimizer, str) or callable(optimizer):
        if isinstance(optimizer, str) and optimizer not in OPTIMIZERS:
            raise ValueError(
                f"Unknown optimizer {optimizer!r}; expected one of {sorted(OPTIMIZERS)}."
            )
        if learning_rate is None:
            what = repr(optimizer) if isinstance(optimizer, str) else "function"
            raise ValueError(
                f"The optimizer {what} needs `{learning_rate_arg}` (the learning rate to build "
                f"it with); or pass a ({what}, learning_rate) pair or an optax transformation."
                if isinstance(optimizer, str)
                else f"An optimizer function needs `{learning_rate_arg}` (the learning rate to "
                "call it with); or pass an optax transformation."
            )
        if isinstance(optimizer, str):
            return _by_name(optimizer, learning_rate, **kwargs)
        tx = optimizer(learning_rate)
        if not isinstance(tx, optax.GradientTransformation):
            raise TypeError(
                "The optimizer function must return an optax.GradientTransformation; it "
                f"returned {type(tx).__name__}."
            )
        return tx
    raise TypeError(
        f"optimizer must be {_forms()}; got the {type(optimizer).__name__} {optimizer!r}."
    )
