"""``predict``: a model's outputs for every example of a dataset, batched as ``evaluate`` does.

The batches have one fixed shape (one compilation); the last one is padded and its padding
dropped from the result, so every example's output comes back exactly once, in order. What
is handed over is checked first, as ``evaluate`` checks it: the inputs (numbers, finite,
fitting the model) and the variables (every path and shape).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jdl.data import ArraySource, as_source
from jdl.data._access import check_source
from jdl.train.data_checks import check_arrays, model_output
from jdl.train.evaluation import checked_state
from jdl.train.feed import _ArrayFeed, _eval_batches, _make_feed
from jdl.train.parallel import parallelize
from jdl.train.runner import check_model, check_positive_ints, eval_chunk
from jdl.train.state import TrainState, model_input, model_kwargs
from jdl.train.step import bind_axis_name

__all__ = ["predict"]


def predict(
    model: Any,
    variables: Mapping[str, Any] | TrainState,
    data: Any,
    *,
    batch_size: int = 256,
    strategy: str | None = None,
) -> np.ndarray:
    """The model's outputs (logits, or regression values) for every example, in order.

    Inference mode (``train=False``: no dropout, BatchNorm on its running statistics), in
    batches of ``batch_size`` on the devices of ``strategy``; nothing per example in Python.

    Args:
        model: the ``flax.linen`` module.
        variables: its variables (``{"params": ..., "batch_stats": ...}``), a
            :class:`TrainState` or ``history.variables``.
        data: the inputs: an array of shape ``(num_examples, ...)``, an ``(x, y)`` tuple
            (``y`` is ignored), or a random-access source whose examples hold ``"x"`` (and
            ``"lengths"`` for models that take them), e.g. ``jdl.data.load(...)``.
        batch_size: the (global) batch size, rounded up to a multiple of the devices
            (the padding's outputs are dropped), so any size works on any device count.
        strategy: as in :func:`jdl.train.parallelize` (default: ``"sharded"`` over all
            devices when there are several). Every process gets every output.

    Returns:
        A NumPy array of shape ``(num_examples, *output_shape)`` (a tree of such arrays for
        a model with several outputs). Class probabilities are ``jax.nn.softmax(outputs)``;
        classes ``outputs.argmax(-1)``.

    Raises:
        TypeError: for a model that is not a flax module, inputs that are not numbers, or
            data that is none of the above (a generator: the message says what to pass).
        ValueError: for NaN/inf inputs, inputs that do not fit the model, variables that do
            not fit it (every differing path and shape listed), a :class:`TrainState` of
            another model, or a bad ``batch_size``.

    Example:
        >>> import jax, numpy as np
        >>> from jdl import nn
        >>> model = nn.MLP(widths=(8,), num_outputs=3)
        >>> x = np.ones((5, 4), np.float32)
        >>> variables = model.init(jax.random.key(0), x[:1], train=False)
        >>> predict(model, variables, x, batch_size=2).shape
        (5, 3)
    """
    check_model("predict", model)
    check_positive_ints(batch_size=batch_size)
    feed = _input_feed(data)
    if isinstance(feed, _ArrayFeed):
        arrays, whole = feed.arrays, True
    else:  # streamed: its first batch
        arrays, whole = {"x": next(_eval_batches(feed, min(len(feed), 256)))["x"]}, False
    check_arrays(arrays, "data", whole)
    _, expected = model_output(model, np.asarray(arrays["x"][:1]), "data")
    state = checked_state("predict", model, variables, expected)
    step = parallelize(_predict_step, strategy, donate=False, updates_state=False)
    chunk = eval_chunk(step, batch_size)  # rounded up to the devices; padding dropped
    outputs = [step(state, batch)[1] for batch in _eval_batches(feed, chunk)]
    host = jax.device_get(outputs)  # one transfer, after every batch is queued
    stacked = jax.tree.map(lambda *parts: np.concatenate(parts), *host)
    return jax.tree.map(lambda a: a[: len(feed)], stacked)


def _input_feed(data: Any) -> Any:
    """A feed of ``{"x": ...}`` examples (and ``"lengths"``), from what ``predict`` takes."""
    if isinstance(data, tuple) and len(data) == 2:
        data = as_source(data, "data")
    if isinstance(data, ArraySource):
        return _ArrayFeed({k: v for k, v in data.arrays.items() if k != "y"})
    if hasattr(data, "shape") and hasattr(data, "dtype") and not isinstance(data, Sequence):
        x = np.asarray(data)
        if x.ndim == 0 or len(x) == 0:
            raise ValueError(f"predict data must hold examples along axis 0; got shape {x.shape}")
        return _ArrayFeed({"x": x})
    check_source(data, "data")
    if len(data) == 0:
        raise ValueError("predict data is empty.")
    first = data[0]
    if not isinstance(first, Mapping) or "x" not in first:
        found = sorted(first) if isinstance(first, Mapping) else type(first).__name__
        raise TypeError(f'predict data examples must be dicts with "x"; the first is {found}')
    return _make_feed(data)


def _predict_step(state: TrainState, batch: dict, *, axis_name: str | None = None) -> Any:
    """``(state, outputs)`` for one batch; under ``pmap`` every device gets all outputs."""
    model = bind_axis_name(state.model, axis_name)
    out = model.apply(state.variables, model_input(batch), **model_kwargs(model, batch),
                      train=False)  # fmt: skip
    if axis_name is not None:
        out = jax.tree.map(lambda a: jax.lax.all_gather(a, axis_name, tiled=True), out)
    return state, out
