"""Checks of the data ``fit``, ``evaluate`` and ``sweep`` are handed, before anything compiles.

Bad data never trains (or evaluates) silently: each check raises at the boundary, naming the
dataset, what was expected and what was found, and how to fix it. ``fit``, ``evaluate`` and
``sweep`` all run :func:`check_data`, so they refuse the same data the same way.

- **Inputs and targets hold numbers** (bools, integers, floats): strings, objects, dates
  are refused with their dtype named, not with jax's "Error interpreting argument".
- **Finite values**: NaN or inf in ``x``, or in floating-point targets, are refused with
  the number of examples holding them and the first one's index (a single NaN turns the
  loss, and then every parameter, into NaN).
- **Targets fit the model's outputs and the loss**: the model's output shape is worked
  out once with ``jax.eval_shape`` (abstract: nothing is compiled or run), then

  - ``cross_entropy`` needs at least two outputs: its softmax over one output is always 1,
    so a regression (or one-logit binary) model would get loss 0 and accuracy 1 whatever
    it predicts -- refused, naming ``mse`` and ``binary_cross_entropy``;
  - ``cross_entropy`` with class indices: integer labels in ``[0, num_outputs)`` -- a
    label ``10`` (or ``-1``) with 10 outputs would silently become an all-zero one-hot
    target; with one-hot / soft targets: class probabilities (values in ``[0, 1]``, rows
    summing to 1: multi-label rows belong to ``binary_cross_entropy``) and as many classes
    as outputs;
  - ``binary_cross_entropy``: targets in ``[0, 1]``;
  - every jdl loss: target and output shapes that fit the loss's own shape rule
    (:func:`jdl._core.reduce.check_same_shape` for ``mse``/``mae``/``binary_cross_entropy``:
    equal shapes, or a ``(batch,)`` target against a ``(batch, 1)`` output -- never a
    silent broadcast such as ``(batch, 5)`` outputs against ``(batch,)`` targets).

  A loss that is not one of jdl's (a function of your own) gets no target checks: its
  contract is not known here. A jdl loss with settings bound by ``functools.partial``
  (e.g. ``label_smoothing``) is checked as the loss.
- **Class metrics fit the model and the targets**: ``accuracy``, ``top_k_accuracy``,
  ``precision``, ``recall`` and ``f1`` (given in ``metrics=``) take the argmax of the
  outputs, so they need at least two outputs (a one-output model always predicts class 0:
  accuracy 1.0 on regression targets) and targets that are class indices or probability
  rows, not regression values (:func:`check_metrics`).

Where the whole dataset is held in memory as NumPy arrays (:func:`jdl.data.from_arrays`,
``(x, y)`` tuples, the bundled datasets) every example is checked, in one vectorised pass;
a streamed source (read through Grain) has its first batch checked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jdl import losses as losses_lib
from jdl import metrics as metrics_lib
from jdl._core.checks import describe_dtype, is_numeric_dtype
from jdl.train.feed import _ArrayFeed, _eval_batches

__all__: list[str] = []

#: The fields of a batch that are checked (``"mask"``, ``"lengths"`` are jdl's own).
_FIELDS = (("x", "inputs"), ("y", "targets"))


def data_arrays(feed: Any, first: Mapping[str, np.ndarray] | None = None) -> tuple[dict, bool]:
    """The arrays to check for a feed: all of it where it is in memory, else a first batch.

    Args:
        feed: a feed from ``jdl.train.feed._make_feed``.
        first: its first batch if already read (else one evaluation batch is read).

    Returns:
        ``({"x": ..., "y": ...}, whole)``: ``whole`` says the arrays are the whole dataset.
    """
    if isinstance(feed, _ArrayFeed):
        return feed.arrays, True
    if first is None:
        first = next(_eval_batches(feed, min(len(feed), 256)))
    return {k: np.asarray(first[k]) for k, _ in _FIELDS}, False


def _where(whole: bool) -> str:
    return "" if whole else " of the first batch"


def check_arrays(arrays: Mapping[str, np.ndarray], name: str, whole: bool) -> None:
    """Numbers only, and finite floats, in ``arrays["x"]`` and ``arrays["y"]`` (if present).

    Raises:
        TypeError: for a field that does not hold numbers or bools (its dtype named).
        ValueError: for NaN or inf, with the number of examples holding them and the
            first one's index.
    """
    for field, role in _FIELDS:
        if field not in arrays:  # inputs alone (jdl.train.predict)
            continue
        a = np.asarray(arrays[field])
        if not is_numeric_dtype(a.dtype):
            raise TypeError(
                f"{role} must be numeric arrays; got dtype {a.dtype} ({describe_dtype(a.dtype)}) "
                f"for field {field!r} of {name}. Encode them as numbers before training (e.g. "
                "class names as indices: np.unique(names, return_inverse=True)[1])."
            )
        if not jnp.issubdtype(a.dtype, jnp.inexact) or np.isfinite(a).all():
            continue
        bad = ~np.isfinite(a).reshape(len(a), -1).all(axis=1)
        raise ValueError(
            f"{name} {field} holds NaN or inf in {int(bad.sum())} of {len(a)} examples"
            f"{_where(whole)}, the first at index {int(np.argmax(bad))}; training on them "
            "turns the loss and then the parameters into NaN. Drop or impute those examples "
            f"first (e.g. keep = np.isfinite({field}).all(axis=tuple(range(1, {field}.ndim))))."
        )


def model_output(
    model: Any, x: np.ndarray, name: str
) -> tuple[jax.ShapeDtypeStruct | Any, dict[str, Any]]:
    """The model's output and fresh variables for a sample batch ``x``, abstractly.

    ``jax.eval_shape`` of ``model.init_with_output``: shapes and dtypes only, nothing is
    compiled or run.

    Returns:
        ``(output, variables)`` as ``jax.ShapeDtypeStruct`` trees.

    Raises:
        ValueError: if the inputs do not fit the model (their shape and the model's
            error named).
    """

    def init(x: jax.Array) -> Any:
        key = jax.random.PRNGKey(0)
        return model.init_with_output({"params": key, "dropout": key}, x, train=False)

    try:
        return jax.eval_shape(init, x)
    except Exception as err:  # re-raised with the data's shape named
        raise ValueError(
            f"The {name} batches do not fit the model: inputs of shape "
            f"(batch, {', '.join(map(str, np.shape(x)[1:]))}) -> {err}"
        ) from err


def _applied_output(
    model: Any, variables: Any, x: np.ndarray, name: str, trained_on: tuple[Any, Any]
) -> Any:
    """The output of the model, with the variables the training inputs give it, for ``x``
    (abstractly); a ValueError naming both datasets' inputs if ``x`` does not fit."""
    try:
        return jax.eval_shape(lambda v, xx: model.apply(v, xx, train=False), variables, x)
    except Exception as err:  # re-raised with both shapes named
        shape, dtype = trained_on
        raise ValueError(
            f"The {name} inputs do not fit the model as the training inputs shape it: "
            f"training examples have shape {tuple(shape)} ({dtype}), {name} examples "
            f"{tuple(x.shape[1:])} ({x.dtype}) -> {err}"
        ) from err


def _per_example(shape: tuple[int, ...]) -> str:
    """``(batch, 10)`` for ``(64, 10)``; ``(batch,)`` for ``(64,)``."""
    return "(batch" + ("".join(f", {d}" for d in shape[1:]) if len(shape) > 1 else ",") + ")"


def _outside(bad: np.ndarray) -> str:
    """``"3 example(s) outside, the first at index 17"`` for a per-element mask ``bad``."""
    rows = bad.reshape(len(bad), -1).any(axis=1)
    return f"{int(rows.sum())} example(s) outside, the first at index {int(np.argmax(rows))}"


def _class_labels(y: np.ndarray, width: int, name: str, whole: bool) -> None:
    """Integer class indices in ``[0, width)`` for ``cross_entropy``."""
    if not np.issubdtype(y.dtype, np.integer):
        example = y.reshape(-1)[0].item() if y.size else None
        raise ValueError(
            f"{name} labels for cross_entropy must be integer class indices in [0, {width}) "
            f"(the model has {width} outputs); found {y.dtype} labels (e.g. {example!r}). "
            "Convert them with y.astype(np.int32), or pass one-hot / probability targets "
            f"of shape (batch, {width})."
        )
    lo, hi = int(y.min()), int(y.max())
    if lo >= 0 and hi < width:
        return
    if lo >= 0 and hi == width and lo == 1:
        fix = f"the labels look 1-based (1 to {width}): subtract 1"
    elif lo >= 0:
        fix = (
            f"the data has at least {hi + 1} classes: give the model num_outputs={hi + 1} "
            f"(it has {width})"
        )
    else:
        fix = "negative labels are not classes (-1 for 'unlabelled'?): drop or remap them"
    raise ValueError(
        f"{name} labels must be class indices in [0, {width}) for a model with {width} "
        f"outputs (its output shape is {_per_example((0, width))}); found labels from {lo} "
        f"to {hi}{_where(whole)}: {_outside((y < 0) | (y >= width))}. Fix: {fix}."
    )


def _unit_interval(y: np.ndarray, what: str, name: str, whole: bool) -> None:
    """Targets in ``[0, 1]`` (bools always are)."""
    if y.dtype == bool or y.size == 0:
        return
    lo, hi = y.min(), y.max()
    if lo >= 0 and hi <= 1:
        return
    raise ValueError(
        f"{name} targets for {what} must lie in [0, 1]; found values from {lo} to {hi}"
        f"{_where(whole)}: {_outside((y < 0) | (y > 1))}. For class indices "
        "0..k-1 use loss='cross_entropy' with a model of num_outputs=k."
    )


def _shape_fix(fn: Callable, out: tuple[int, ...], y: np.ndarray) -> str:
    """How to make targets of ``y``'s shape fit outputs of shape ``out`` for ``fn``."""
    if fn is losses_lib.cross_entropy:
        if np.issubdtype(y.dtype, np.integer) and y.ndim == len(out):
            return "for class indices pass labels of shape (batch,), not one-hot integers"
        if y.ndim == len(out):
            return f"give the model num_outputs={y.shape[-1]} (one per class of the targets)"
        return "pass integer class indices of shape (batch,) or one-hot targets (batch, k)"
    if y.ndim <= 2:
        width = 1 if y.ndim == 1 else y.shape[-1]
        return f"give the model num_outputs={width} (one output per target value)"
    return f"use a model whose outputs have the targets' shape {_per_example(y.shape)}"


def _probability_rows(y: np.ndarray, what: str, name: str, whole: bool, fix: str) -> None:
    """Targets of shape ``(batch, ..., k)`` that are class probabilities: in ``[0, 1]``,
    each row (the last axis) summing to 1 -- one-hot or soft targets."""
    if y.size == 0:
        return
    values = y.astype(np.float64)
    lo, hi = values.min(), values.max()
    if lo < 0 or hi > 1:
        raise ValueError(
            f"{name} targets of shape {_per_example(y.shape)} for {what} must be class "
            f"probabilities (one-hot or soft) in [0, 1]; found values from {lo:g} to {hi:g}"
            f"{_where(whole)}: {_outside((values < 0) | (values > 1))}. Fix: {fix}."
        )
    sums = values.sum(axis=-1)
    bad = np.abs(sums - 1) > 1e-3
    if bad.any():
        raise ValueError(
            f"{name} targets of shape {_per_example(y.shape)} for {what} must be class "
            "probabilities (one-hot or soft), each row summing to 1; found rows summing to "
            f"{sums.min():g} to {sums.max():g}{_where(whole)}: "
            f"{_outside(bad).replace('outside', 'off')}. Fix: {fix}."
        )


def _one_output(what: str, consequence: str, fix: str) -> ValueError:
    """The error for a softmax/argmax over a single output (always 1 / class 0)."""
    return ValueError(
        f"{what} works over the model's outputs along the last axis (softmax or argmax), "
        "but the model has 1 output: its softmax is always 1 and its argmax always class 0, "
        f"so {consequence} whatever the model predicts (silently wrong). Fix: {fix}."
    )


_ONE_OUTPUT_FIX = (
    "for regression use loss='mse' (or 'mae'), metrics mae / rmse; for two classes use "
    "loss='binary_cross_entropy' (a sigmoid of the one output, targets 0/1) with the "
    "binary_accuracy metric, or give the model num_outputs=2 for cross_entropy"
)

#: jdl's metrics that take the argmax over the outputs' last axis (class predictions).
_ARGMAX_METRICS = ("accuracy", "top_k_accuracy", "precision", "recall", "f1")


def _width(output: Any, n: int) -> tuple[tuple[int, ...], int]:
    """The output shape for ``n`` examples, and its last axis' length (1 for ``(n,)``)."""
    out = (n, *output.shape[1:])
    return out, out[-1] if len(out) > 1 else 1


def check_metrics(y: np.ndarray, output: Any, metrics: Any, name: str, whole: bool) -> None:
    """Targets ``y`` and the model's (abstract) ``output`` against jdl's class metrics.

    ``accuracy``, ``top_k_accuracy``, ``precision``, ``recall`` and ``f1`` compare the
    argmax of the outputs with the class of each target: they need at least two outputs
    (the argmax of one is always class 0, so a regression model would score 1.0), and
    targets that are class indices or class probabilities (one-hot / soft rows), not
    regression values. Metrics of the user's own get no checks.

    Raises:
        ValueError: for an argmax metric with a one-output model, or with targets shaped
            like the outputs that are not probability rows -- naming the metric, what was
            found and the fix (``binary_accuracy``, ``mae``/``rmse``).
    """
    if metrics is None or not isinstance(output, jax.ShapeDtypeStruct):
        return
    argmax = {metrics_lib.METRICS[k]: k for k in _ARGMAX_METRICS}
    y = np.asarray(y)
    out, width = _width(output, len(y))
    for metric in metrics:
        fn = metrics_lib.get(metric)
        fn = fn.func if isinstance(fn, functools.partial) else fn
        if fn not in argmax:
            continue
        what = f"the {argmax[fn]!r} metric"
        if len(out) > 1 and width == 1:
            raise _one_output(
                what,
                f"{argmax[fn]} would compare class 0 with every target (1.0 on regression targets)",
                "binary_accuracy for one output that is a logit of two classes; mae or rmse "
                "for regression",
            )
        if y.shape == out:
            _probability_rows(
                y, what, name, whole,
                "for regression targets use the mae or rmse metrics; for class labels pass "
                "integer indices of shape (batch,) or one-hot rows",
            )  # fmt: skip


def check_targets(y: np.ndarray, output: Any, loss: str | Callable, name: str, whole: bool) -> None:
    """Targets ``y`` against the model's (abstract) ``output`` for jdl's losses.

    Raises:
        ValueError: for targets whose shape does not fit the outputs under the loss, class
            labels that are not integers in ``[0, num_outputs)`` (``cross_entropy``), or
            targets outside ``[0, 1]`` (``binary_cross_entropy``, one-hot
            ``cross_entropy``) -- naming the range found, the model's output width and
            the fix.
    """
    call = losses_lib.get(loss)  # a jdl loss, or one with settings bound (functools.partial)
    fn = call.func if isinstance(call, functools.partial) else call
    if fn not in losses_lib.LOSSES.values() or not isinstance(output, jax.ShapeDtypeStruct):
        return  # a loss of the user's own, or a model with several outputs: not ours
    y = np.asarray(y)
    out, width = _width(output, len(y))
    if fn is losses_lib.cross_entropy and len(out) > 1 and width == 1:
        raise _one_output(
            "loss='cross_entropy'", "the loss would be 0 and accuracy 1", _ONE_OUTPUT_FIX
        )
    if fn is losses_lib.cross_entropy and len(out) > 1 and y.shape == out[:-1]:
        _class_labels(y, width, name, whole)
        return
    try:  # the loss's own shape rule, applied abstractly
        jax.eval_shape(
            call, jax.ShapeDtypeStruct(out, output.dtype), jax.ShapeDtypeStruct(y.shape, y.dtype)
        )
    except (ValueError, TypeError) as err:
        reason = str(err).rstrip(".")
        raise ValueError(
            f"{name} targets of shape {_per_example(y.shape)} (dtype {y.dtype}) do not fit "
            f"the model's outputs of shape {_per_example(out)} under {fn.__name__} ({reason}). "
            f"Fix: {_shape_fix(fn, out, y)}."
        ) from None
    if fn is losses_lib.binary_cross_entropy or fn is losses_lib.cross_entropy:
        _unit_interval(y, fn.__name__, name, whole)
    if fn is losses_lib.cross_entropy:  # and rows that sum to 1
        _probability_rows(
            y, "cross_entropy", name, whole,
            "for several labels per example (multi-label) use loss='binary_cross_entropy'; "
            "for regression use loss='mse'; for class indices 0..k-1 pass integer labels of "
            "shape (batch,) to a model of num_outputs=k",
        )  # fmt: skip


def check_data(
    model: Any,
    feed: Any,
    loss: str | Callable | None,
    name: str,
    *,
    first: Mapping[str, np.ndarray] | None = None,
    known: tuple[Any, Any, Any] | None = None,
    metrics: Any = None,
) -> tuple[Any, Any, Any]:
    """Every check of this module on one dataset; returns what it worked out.

    Args:
        model: the ``flax.linen`` module.
        feed: the dataset's feed (``jdl.train.feed._make_feed``).
        loss: the loss (a jdl loss, its name, or a function: only jdl's losses get target
            checks); ``None`` skips the target checks.
        name: the dataset's name in messages (``"train"``, ``"validation"``, ``"data"``).
        first: the feed's first batch, if already read.
        known: what an earlier call returned, reused where the inputs have the same
            per-example shape and dtype (no second abstract run of the model).
        metrics: the metrics the caller was given (names or functions; jdl's class
            metrics get :func:`check_metrics`); ``None`` (the loss's defaults, which fit
            it) checks none.

    Returns:
        ``(input_struct, output, variables)``: the per-example input shape and dtype, and
        the model's abstract output and fresh variables (from :func:`model_output`).

    Raises:
        TypeError: for inputs or targets that are not numbers.
        ValueError: for non-finite values, inputs that do not fit the model, targets
            that do not fit its outputs (see :func:`check_targets`), or class metrics that
            cannot mean anything for them (see :func:`check_metrics`).
    """
    arrays, whole = data_arrays(feed, first)
    return check_arrays_against(model, arrays, loss, name, whole, known=known, metrics=metrics)


def check_arrays_against(
    model: Any,
    arrays: Mapping[str, np.ndarray],
    loss: str | Callable | None,
    name: str,
    whole: bool,
    *,
    known: tuple[Any, Any, Any] | None = None,
    metrics: Any = None,
) -> tuple[Any, Any, Any]:
    """:func:`check_data` on arrays already read: all of a dataset (``whole``) or a batch.

    Returns and raises as :func:`check_data`.
    """
    check_arrays(arrays, name, whole)
    x = np.asarray(arrays["x"])
    signature = (x.shape[1:], x.dtype)
    if known is not None and known[0] == signature:
        output, variables = known[1], known[2]
    elif known is not None:  # other inputs than the training set's: apply its variables
        variables = known[2]
        output = _applied_output(model, variables, x[:1], name, known[0])
    else:
        output, variables = model_output(model, x[:1], name)
    if loss is not None:
        check_targets(arrays["y"], output, loss, name, whole)
    check_metrics(arrays["y"], output, metrics, name, whole)
    return signature, output, variables
