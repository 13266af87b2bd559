"""``evaluate``: a model's loss and metrics over a whole dataset, every example once.

It checks what it is handed as ``fit`` does -- the data (:mod:`jdl.train.data_checks`) and
the variables against the model -- before anything compiles.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

from jdl.data import as_source
from jdl.data._access import check_supervised
from jdl.train.data_checks import check_data
from jdl.train.feed import _make_feed
from jdl.train.parallel import parallelize
from jdl.train.runner import check_model, check_positive_ints, default_metrics, evaluate_sums
from jdl.train.state import TrainState, check_variables, state_from_variables
from jdl.train.step import eval_step

__all__ = ["evaluate"]


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
            :class:`TrainState` of this model (one of another model is refused).
        data: a random-access data source with ``"x"``/``"y"`` examples (e.g.
            :func:`jdl.data.load`), or an ``(x, y)`` tuple of arrays (see
            :func:`jdl.data.from_arrays`); not a generator or a :func:`jdl.data.batches`
            iterator -- evaluate batches the data itself.
        loss: a jdl loss or its name. The default, ``"cross_entropy"``, is for classifiers
            with one output per class; a model with one output (regression, or a single
            logit of two classes) must name its loss (``"mse"``, ``"mae"``,
            ``"binary_cross_entropy"``): cross-entropy over one output would always be 0,
            so it is refused, as are targets that are not class labels or probabilities.
        metrics: metric names/functions; default :func:`default_metrics` of the loss.
            Class metrics (``accuracy``, ...) are refused for a one-output model and for
            regression targets (see :mod:`jdl.train.data_checks`).
        batch_size: the (global) evaluation batch size, rounded up to a multiple of the
            devices of ``strategy`` (the padding is masked), so any size works on any
            device count.
        strategy: as in :func:`jdl.train.parallelize`.

    Returns:
        ``{"loss": ..., <metric>: ...}`` as Python floats.

    Raises:
        TypeError: for inputs or targets that are not numbers, or ``data`` that is not a
            random-access source or ``(x, y)`` arrays (a dict, a generator, a batch
            iterator: the message says what to pass).
        ValueError: for variables that do not fit the model (every differing path and
            shape listed), NaN/inf in the data, inputs that do not fit the model,
            targets that do not fit its outputs and ``loss`` (e.g. class labels outside
            ``[0, num_outputs)``, ``cross_entropy`` with a one-output model), or class
            metrics that cannot apply; see :mod:`jdl.train.data_checks`; or a
            :class:`TrainState` whose model is not ``model`` (the fields that differ named).
    """
    check_model("evaluate", model)
    check_positive_ints(batch_size=batch_size)
    data = as_source(data, "data")
    check_supervised(data, "data")
    feed = _make_feed(data)
    # numbers, finite, fitting the model, the loss and the metrics (never silently wrong)
    _, _, expected = check_data(model, feed, loss, "data", metrics=metrics)
    state = checked_state("evaluate", model, variables, expected)
    metrics = default_metrics(loss) if metrics is None else tuple(metrics)
    step = parallelize(
        functools.partial(eval_step, loss_fn=loss, metrics=metrics), strategy, donate=False
    )
    means = evaluate_sums(step, state, feed, batch_size)
    return {k: float(v) for k, v in means.items()}


def checked_state(caller: str, model: Any, variables: Any, expected: Any) -> TrainState:
    """The state ``caller`` (``evaluate``, ``predict``) runs: a given :class:`TrainState`, or
    one built from variables, checked against the model's ``expected`` variables.

    Raises:
        ValueError: for variables that do not fit the model (every differing path and
            shape listed), or a ``TrainState`` of another model (the fields that differ).
    """
    if isinstance(variables, TrainState):
        state = variables
    else:
        state = state_from_variables(model, None, variables, copy=False)
    check_variables(expected, state.variables, f"{caller} variables")
    if state.model != model:  # a TrainState's model is what would run: refuse another
        raise ValueError(
            f"{caller} got a TrainState of another model than the one given "
            f"({_model_difference(model, state.model)}); pass that state's own model "
            f"(state.model), or its variables (state.variables) to {caller} with this model."
        )
    return state


def _model_difference(given: Any, other: Any) -> str:
    """How two models differ, in words: their classes, or the fields that differ."""
    if type(given) is not type(other):
        return f"{type(given).__name__} given, the state's is a {type(other).__name__}"
    fields = [f.name for f in dataclasses.fields(given) if f.name not in ("parent", "name")]
    diffs = [f"{k}={getattr(given, k)!r} given, the state's {getattr(other, k)!r}"
             for k in fields if getattr(given, k) != getattr(other, k)]  # fmt: skip
    return f"{type(given).__name__}: " + ("; ".join(diffs) or "the same fields")
